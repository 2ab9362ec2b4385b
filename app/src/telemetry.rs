//! Logging: JSON lines (or text for humans) on stdout, filtered by `RUST_LOG`. Lines are
//! written by a background thread, so a request never waits for a write(2) to stdout, and in
//! batches, so a busy service wakes that thread a few hundred times a second, not per line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;
use crate::timefmt;

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
    match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLayer::new(Background::start()))
            .init(),
        // Colours only for a terminal: escape codes in a log file are noise.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(Background::start())
            .with_ansi(std::io::stdout().is_terminal())
            .init(),
    }
}

/// One JSON object per event: `timestamp`, `level`, the event's fields in the order it gives
/// them (`message` first), then `target`; the shape of tracing-subscriber's flattened JSON.
/// A layer of its own that writes each line into a per-thread `String`: tracing-subscriber's
/// JSON formatter collects the fields into a map of heap-allocated values first (8% of the
/// service's CPU time per request), and its fmt layer passes every piece of a line through two
/// levels of `dyn fmt::Write` (a sixth of the instructions of a POST).
pub struct JsonLayer<W> {
    writer: W,
}

impl<W> JsonLayer<W> {
    pub fn new(writer: W) -> Self {
        Self { writer }
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            // An event logged while one is being formatted (a `Debug` that logs) gets a
            // buffer of its own.
            let (mut own, mut borrowed);
            let line: &mut String = match line.try_borrow_mut() {
                Ok(buffer) => {
                    borrowed = buffer;
                    &mut borrowed
                }
                Err(_) => {
                    own = String::new();
                    &mut own
                }
            };
            line.clear();
            write_line(line, event, Utc::now());
            // Nowhere to report a failed write of a log line.
            let _ = self.writer.make_writer().write_all(line.as_bytes());
        });
    }
}

/// One event as a JSON line, `\n` included.
fn write_line(out: &mut String, event: &Event<'_>, now: DateTime<Utc>) {
    let meta = event.metadata();
    out.push_str(r#"{"timestamp":""#);
    // Microseconds: lines of one request are often within the same millisecond.
    let _ = timefmt::write_rfc3339(out, now, 6);
    out.push_str(r#"","level":""#);
    out.push_str(meta.level().as_str());
    out.push('"');
    event.record(&mut JsonFields { out });
    out.push_str(r#","target":"#);
    write_str(out, meta.target());
    out.push_str("}\n");
}

/// Writes each field as `,"name":value`; strings and `Debug`/`Display` values escaped.
struct JsonFields<'a> {
    out: &'a mut String,
}

impl JsonFields<'_> {
    fn name(&mut self, field: &Field) {
        self.out.push(',');
        write_str(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        write_str(self.out, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        // JSON has no NaN or infinity.
        if value.is_finite() {
            self.out.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            self.out.push_str("null");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        self.out.push('"');
        let _ = write!(Escaped(&mut *self.out), "{value:?}");
        self.out.push('"');
    }
}

/// A JSON string literal.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let _ = Escaped(&mut *out).write_str(s);
    out.push('"');
}

/// Escapes what passes through it for the inside of a JSON string.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Nearly every string needs no escape: one pass over its bytes, then one write.
        if !needs_escape(s.as_bytes()) {
            return self.0.write_str(s);
        }
        // Runs that need no escape go out in one write each.
        let mut start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// Whether any byte of `bytes` must be escaped inside a JSON string (a control character, `"`
/// or `\`). Eight bytes at a time, with the classic "has a byte less than" bit trick: a byte
/// at a time, this scan was a sixth of the cost of a request's log line.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES << 7;
    // Non-zero when some byte of `x` is below `n` (n <= 128); bytes from 0x80 never count.
    let any_below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH_BITS;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_ne_bytes(chunk.try_into().expect("chunks of eight"));
        let found = any_below(x, 0x20)
            | any_below(x ^ (ONES * u64::from(b'"')), 1)
            | any_below(x ^ (ONES * u64::from(b'\\')), 1);
        if found != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::DateTime;

    use super::*;

    /// Formats the events `emit` logs with [`JsonLayer`] and parses each line back.
    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLayer::new(move || Sink(sink.clone())));
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_object_with_typed_fields() {
        let logged = lines(|| {
            tracing::info!(
                method = "POST",
                status = 200u16,
                delta = -3i64,
                duration_ms = 1.25,
                slow = false,
                "request"
            );
            tracing::warn!(error = %"line one\nline \"two\"", nan = f64::NAN, "redis call failed");
        });
        assert_eq!(logged.len(), 2);
        let request = &logged[0];
        assert_eq!(request["level"], "INFO");
        assert_eq!(request["message"], "request");
        assert_eq!(request["method"], "POST");
        assert_eq!(request["status"], 200);
        assert_eq!(request["delta"], -3);
        assert_eq!(request["duration_ms"], 1.25);
        assert_eq!(request["slow"], false);
        assert_eq!(request["target"], module_path!());
        let stamp = request["timestamp"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(stamp).is_ok(), "{stamp}");
        let failure = &logged[1];
        assert_eq!(failure["level"], "WARN");
        assert_eq!(failure["error"], "line one\nline \"two\"");
        assert_eq!(failure["nan"], serde_json::Value::Null);
    }

    #[test]
    fn escapes_are_found_at_every_position() {
        let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(needs_escape(&bytes), special(b), "{b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape("plain text é, 世界 and more".as_bytes()));
    }

    #[test]
    fn strings_are_escaped_for_json() {
        let mut out = String::new();
        write_str(&mut out, "plain é");
        write_str(&mut out, "q\"b\\n\nr\rt\t\u{1}");
        assert_eq!(out, r#""plain é""q\"b\\n\nr\rt\t\u0001""#);
    }
}
