//! Logging: JSON lines (or text for humans) on stdout, filtered by `RUST_LOG`. Lines are
//! written by a background thread, so a request never waits for a write(2) to stdout.

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Lines waiting for the writer thread; when full, logging waits (lines are never dropped).
const QUEUE: usize = 16 * 1024;

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

static QUEUE_TX: OnceLock<SyncSender<Message>> = OnceLock::new();

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
    if let Some(tx) = QUEUE_TX.get() {
        let (done_tx, done_rx) = sync_channel(1);
        if tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }
}

/// The writer handed to tracing: each formatted event arrives in one `write` call.
#[derive(Clone)]
struct Background(SyncSender<Message>);

impl Background {
    fn start() -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_out(rx))
            .expect("starting the log writer thread");
        let _ = QUEUE_TX.set(tx.clone());
        Self(tx)
    }
}

/// Writes lines as they come, flushing whenever the queue runs empty: batched under load,
/// immediate when idle.
fn write_out(rx: Receiver<Message>) {
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    while let Ok(message) = rx.recv() {
        let mut next = Some(message);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Message::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
}

impl Write for Background {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // If the writer thread is gone the line has nowhere to go; dropping it beats failing.
        let _ = self.0.send(Message::Line(buf.to_vec()));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Background {
    type Writer = Background;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
