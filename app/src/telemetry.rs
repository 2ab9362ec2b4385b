//! Logging: JSON lines (or text for humans) on stdout, filtered by `RUST_LOG`. Lines are
//! written by a background thread, so a request never waits for a write(2) to stdout, and in
//! batches, so a busy service wakes that thread a few hundred times a second, not per line.

use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Bytes that wake the writer at once; below this it waits up to [`LINGER`] for more.
const BATCH: usize = 64 * 1024;
/// How long a line may wait for others to share its write(2).
const LINGER: Duration = Duration::from_millis(10);
/// Bytes waiting when stdout is slower than the logging; then logging waits (lines are never
/// dropped).
const CAPACITY: usize = 4 * 1024 * 1024;

/// The lines between the loggers and the writer thread.
struct Queue {
    state: Mutex<State>,
    /// Wakes the writer: first line into an empty queue, a full batch, or a flush.
    ready: Condvar,
    /// Wakes loggers waiting for room and `flush` callers waiting for their lines.
    written: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// Bytes queued and bytes written since the start: `flush` waits until the second catches
    /// up with the first as it was when it was called.
    queued: u64,
    done: u64,
    /// A flush is waiting: write without lingering.
    urgent: bool,
}

static QUEUE: OnceLock<Queue> = OnceLock::new();

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Background::start());
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        // Colours only for a terminal: escape codes in a log file are noise.
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
    }
}

/// Waits until every line logged so far is on stdout. Call before the process exits.
pub fn flush() {
    if let Some(queue) = QUEUE.get() {
        let mut state = queue.lock();
        let target = state.queued;
        if state.done < target {
            state.urgent = true;
            queue.ready.notify_one();
            let _state = queue
                .written
                .wait_while(state, |s| s.done < target)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Queue {
    /// A panic while holding the lock cannot leave the bytes half-updated in a way that matters
    /// for logs, so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: &[u8]) {
        let mut state = self.lock();
        if state.lines.len() >= CAPACITY {
            state = self
                .written
                .wait_while(state, |s| s.lines.len() >= CAPACITY)
                .unwrap_or_else(|e| e.into_inner());
        }
        let before = state.lines.len();
        state.lines.extend_from_slice(line);
        state.queued += line.len() as u64;
        let wake = before == 0 || (before < BATCH && state.lines.len() >= BATCH);
        drop(state);
        if wake {
            self.ready.notify_one();
        }
    }

    /// The writer thread: takes everything queued, writes it, repeats.
    fn write_out(&self) {
        let mut out = std::io::stdout().lock();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let mut state = self
                .ready
                .wait_while(self.lock(), |s| s.lines.is_empty())
                .unwrap_or_else(|e| e.into_inner());
            if state.lines.len() < BATCH && !state.urgent {
                state = self
                    .ready
                    .wait_timeout_while(state, LINGER, |s| s.lines.len() < BATCH && !s.urgent)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut state.lines, &mut batch);
            state.urgent = false;
            drop(state);
            // Nowhere to report a failed write to stdout; the bytes count as handled.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            let written = batch.len() as u64;
            batch.clear();
            self.lock().done += written;
            self.written.notify_all();
        }
    }
}

/// The writer handed to tracing: each formatted event arrives in one `write` call.
#[derive(Clone, Copy)]
struct Background(&'static Queue);

impl Background {
    fn start() -> Self {
        let mut first = false;
        let queue = QUEUE.get_or_init(|| {
            first = true;
            Queue {
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
                written: Condvar::new(),
            }
        });
        // One writer only: two would interleave batches out of order.
        if first {
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(|| queue.write_out())
                .expect("starting the log writer thread");
        }
        Self(queue)
    }
}

impl Write for Background {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Background {
    type Writer = Background;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
