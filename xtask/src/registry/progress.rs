//! What a push reports while it runs. The registry code prints nothing: the task that started the
//! push decides how to show these events (the terminal rendering is `crate::term::PushProgress`).

use std::time::Duration;

use super::error::RegistryError;
use super::name::Tag;
use super::push::{Blob, Manifest};
use super::tags::Left;

/// One thing that happened during a push, in the order it happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The exact version `tag` already points at `manifest` (the root): it stays as it is.
    Published {
        tag: &'a Tag,
        manifest: &'a Manifest,
    },
    /// A floating tag the push leaves where it is (a higher version holds it).
    Left(&'a Left),
    /// The blobs the registry lacks are known; `bytes` is how much they hold together.
    Uploading { blobs: usize, bytes: u64 },
    /// `bytes` more of a blob's body went out (counted again when an upload is retried).
    Sent { bytes: u64 },
    /// The registry already has this blob: it is not sent.
    Present(&'a Blob),
    /// This blob was uploaded.
    Uploaded(&'a Blob),
    /// This manifest was put by its digest.
    Manifest(&'a Manifest),
    /// `tag` now points at `manifest` (the root).
    Tagged {
        tag: &'a Tag,
        manifest: &'a Manifest,
    },
    /// A step failed in a way worth another try, which starts after `pause`.
    Retrying {
        error: &'a RegistryError,
        pause: Duration,
    },
}

/// Receives a push's events. `Send + Sync`: upload bodies report from the HTTP client's tasks.
pub trait Progress: Send + Sync {
    fn report(&self, event: Event<'_>);
}

/// Reports nothing: for reads, which are small and whose final error says how often they were
/// tried.
pub struct Quiet;

impl Progress for Quiet {
    fn report(&self, _: Event<'_>) {}
}
