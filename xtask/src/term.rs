//! What the tasks show people on the terminal: sizes and digests as people read them, and the
//! live progress of a registry push.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oci_spec::image::Digest;

use crate::registry::{Event, Progress};

/// `2.31 MiB`: sizes as people compare them.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / f64::from(1 << 10)),
        b => format!("{b} B"),
    }
}

/// `sha256:0123456789ab` (12 hex digits): enough to tell blobs apart in progress lines.
pub fn short_digest(digest: &Digest) -> String {
    let hex = digest.digest();
    format!("{}:{}", digest.algorithm(), &hex[..hex.len().min(12)])
}

/// A push on standard error: one line per blob, manifest and tag; on a terminal also a live
/// total of the bytes sent, redrawn at most ten times a second.
pub struct PushProgress {
    tty: bool,
    total: AtomicU64,
    sent: AtomicU64,
    last_draw: Mutex<Instant>,
}

impl PushProgress {
    pub fn new() -> PushProgress {
        PushProgress {
            tty: std::io::stderr().is_terminal(),
            total: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_draw: Mutex::new(Instant::now()),
        }
    }

    fn tick(&self) {
        if !self.tty {
            return;
        }
        let mut last = self.last_draw.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_millis(100) {
            *last = Instant::now();
            eprint!(
                "\r\x1b[K  uploading: {} of {}",
                human_size(self.sent.load(Ordering::Relaxed)),
                human_size(self.total.load(Ordering::Relaxed))
            );
            let _ = std::io::stderr().flush();
        }
    }

    /// A permanent line (clearing the live one first on a terminal).
    fn line(&self, text: &str) {
        let _guard = self.last_draw.lock().unwrap_or_else(|e| e.into_inner());
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("{text}");
    }
}

impl Default for PushProgress {
    fn default() -> Self {
        PushProgress::new()
    }
}

impl Progress for PushProgress {
    fn report(&self, event: Event<'_>) {
        let label = |l: Option<&str>| l.map(|l| format!("{l} ")).unwrap_or_default();
        match event {
            Event::Uploading { bytes, .. } => self.total.store(bytes, Ordering::Relaxed),
            Event::Sent { bytes } => {
                self.sent.fetch_add(bytes, Ordering::Relaxed);
                self.tick();
            }
            Event::Present(b) => self.line(&format!(
                "  {}  {}already in the registry",
                short_digest(&b.digest),
                label(b.label)
            )),
            Event::Uploaded(b) => self.line(&format!(
                "  {}  {}uploaded ({})",
                short_digest(&b.digest),
                label(b.label),
                human_size(b.size)
            )),
            Event::Manifest(m) => self.line(&format!("  {}  manifest", short_digest(&m.digest))),
            Event::Published { tag, manifest } => self.line(&format!(
                "  {tag} is published as {}: unchanged",
                short_digest(&manifest.digest)
            )),
            Event::Left(left) => self.line(&format!("  {left}: left as it is")),
            Event::Tagged { tag, manifest } => {
                self.line(&format!("  {tag} -> {}", short_digest(&manifest.digest)))
            }
            Event::Retrying { error, pause } => self.line(&format!(
                "  {}: {} failed ({}), retrying in {pause:?}",
                error.registry, error.step, error.detail
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(5 << 20), "5.00 MiB");
    }

    #[test]
    fn short_digests_keep_the_algorithm_and_twelve_digits() {
        let digest: Digest = format!("sha256:{}", "0123456789abcdef".repeat(4))
            .parse()
            .unwrap();
        assert_eq!(short_digest(&digest), "sha256:0123456789ab");
    }
}
