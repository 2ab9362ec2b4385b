//! Registry access shared by `image push` and `chart push` (and whatever pushes next), split by
//! concern as go-containerregistry does: [`name`] (repository names, tags), [`auth`] (flags and
//! credentials), [`client`] (oci-client, TLS, retries, the read side), [`error`] (typed
//! failures), [`progress`] (events the caller renders), [`tags`] (which tags a push may move)
//! and [`push`] (what to send, and the one loop that sends it).
//!
//! Anything new to put in a registry (a signature under its `sha256-<hex>.sig` tag, an
//! attestation that names its `subject`) is a [`PushSet`] handed to [`push()`]: no second loop.

pub mod auth;
pub mod client;
pub mod error;
pub mod name;
pub mod progress;
pub mod push;
pub mod tags;

pub use auth::RegistryArgs;
pub use client::{Fetched, Repo};
pub use error::RegistryError;
pub use name::{OciUrl, RepositoryName, Tag};
pub use progress::{Event, Progress};
pub use push::{Blob, BlobSource, Manifest, PushSet, Pushed, push};
pub use tags::{Left, TagPlan};
