//! Registry access shared by `image push` and `chart push` (and whatever pushes next), split by
//! concern as go-containerregistry does: [`name`] (repository names, tags), [`auth`] (flags and
//! credentials), [`client`] (oci-client, TLS, retries), [`error`] (typed failures),
//! [`progress`] (events the caller renders) and [`push`] (what to send, and the one loop that
//! sends it).

pub mod auth;
pub mod client;
pub mod error;
pub mod name;
pub mod progress;
pub mod push;

pub use auth::RegistryArgs;
pub use client::{Fetched, Repo};
pub use error::RegistryError;
pub use name::{OciUrl, RepositoryName, Tag};
pub use progress::{Event, Progress};
pub use push::{Blob, BlobSource, Manifest, PushSet, Pushed, push};
