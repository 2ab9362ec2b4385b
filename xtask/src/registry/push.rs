//! What a push sends, and the one loop that sends it.
//!
//! A [`PushSet`] is blobs, manifests by digest with their exact bytes (children first, the root
//! last) and the tags that point at the root: an OCI image layout and a chart package both
//! become one. [`push`] logs in and first reads what it must not overwrite: an exact-version tag
//! (`1.2.3`, a chart's `0.4.2`) that already points at another digest refuses the whole push
//! before anything is sent, and floating tags (`1.2`, `1`, `latest`) are set only when the
//! version moves them forward ([`TagPlan`]). Then it checks every blob with HEAD, uploads the
//! missing ones, puts the manifests by digest and the tags last, so a failed push moves no tag,
//! and a push run again after a failure sends only what is still missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Digest, MediaType};

use super::client::Repo;
use super::error::{ErrorKind, RegistryError, Step};
use super::name::{Reference, Tag};
use super::progress::{Event, Progress};
use super::tags::{Left, TagPlan};

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// A file, read when the blob is uploaded (a layout's `blobs/sha256/...`).
    File(PathBuf),
    Bytes(bytes::Bytes),
}

/// A blob to push: a config or a layer.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub source: BlobSource,
    /// What the blob is, in progress lines (`config`, `chart`); `None` says nothing.
    pub label: Option<&'static str>,
}

impl Blob {
    /// A blob held in memory; its digest is computed here.
    pub fn from_bytes(bytes: impl Into<bytes::Bytes>, label: Option<&'static str>) -> Blob {
        let bytes = bytes.into();
        Blob {
            digest: digest_of(&bytes),
            size: bytes.len() as u64,
            source: BlobSource::Bytes(bytes),
            label,
        }
    }

    fn load(&self) -> Result<bytes::Bytes> {
        match &self.source {
            // No local re-hash: the registry computes the digest of what it receives and
            // refuses a mismatch (DIGEST_INVALID), so a corrupted file still fails the push.
            BlobSource::File(path) => std::fs::read(path)
                .map(bytes::Bytes::from)
                .with_context(|| format!("reading {}", path.display())),
            BlobSource::Bytes(bytes) => Ok(bytes.clone()),
        }
    }
}

/// A manifest or index with its exact bytes: the registry stores these bytes, so its digest
/// there is the one computed here.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: MediaType,
    pub bytes: bytes::Bytes,
}

impl Manifest {
    /// A manifest of these bytes; its digest is computed here.
    pub fn new(media_type: MediaType, bytes: impl Into<bytes::Bytes>) -> Manifest {
        let bytes = bytes.into();
        Manifest {
            digest: digest_of(&bytes),
            media_type,
            bytes,
        }
    }
}

fn digest_of(bytes: &[u8]) -> Digest {
    crate::image::oci::sha256_digest(bytes)
        .parse()
        .expect("sha256:<hex> is a valid digest")
}

/// Everything one push sends.
#[derive(Debug, Clone, Default)]
pub struct PushSet {
    /// Every blob the manifests reference, each once.
    pub blobs: Vec<Blob>,
    /// Children before parents; the last one is the root, which the tags point at.
    pub manifests: Vec<Manifest>,
    /// Set last, all on the root. Without tags the root is pushed by digest. Exact versions
    /// among them never move; floating tags move only forward (see [`push`]).
    pub tags: Vec<Tag>,
}

impl PushSet {
    /// The manifest the tags point at: the last one.
    pub fn root(&self) -> Option<&Manifest> {
        self.manifests.last()
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The root manifest's digest.
    pub digest: Digest,
    /// The tags that point at the root now: those set, and exact versions that already did.
    pub tags: Vec<Tag>,
    /// Floating tags left where they were, and why.
    pub left: Vec<Left>,
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub present: usize,
    /// Bytes of blob bodies sent, retries included.
    pub bytes_sent: u64,
}

/// Sends `set` to `repo`, reporting to `progress` as it goes. Refused, before anything is
/// sent, when an exact-version tag of the set already points at another digest; the same
/// digest is a success that sends no blob.
pub fn push(repo: &Repo, set: &PushSet, progress: Arc<dyn Progress>) -> Result<Pushed> {
    let root = set.root().context("nothing to push: no manifest")?;
    repo.block_on(send(repo, set, root, progress))
}

async fn send(
    repo: &Repo,
    set: &PushSet,
    root: &Manifest,
    progress: Arc<dyn Progress>,
) -> Result<Pushed> {
    let report: &dyn Progress = &*progress;
    repo.login(report).await?;
    let published = check_versions(repo, set, root, report).await?;
    let plan = if TagPlan::needs_existing(&set.tags) {
        TagPlan::decide(&set.tags, &repo.tags(report).await?)
    } else {
        TagPlan::decide(&set.tags, &[])
    };
    for left in &plan.left {
        report.report(Event::Left(left));
    }
    // Exact versions already at the root stay as they are: putting them again would change
    // nothing here, and registries with immutable tags refuse even that.
    let to_set: Vec<&Tag> = plan.set.iter().filter(|t| !published.contains(t)).collect();
    let exists: Vec<bool> = futures_util::stream::iter(&set.blobs)
        .map(|b| repo.blob_exists(&b.digest, report))
        .buffered(8)
        .try_collect()
        .await?;
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for (b, exists) in set.blobs.iter().zip(exists) {
        if exists {
            present.push(b)
        } else {
            missing.push(b)
        }
    }
    report.report(Event::Uploading {
        blobs: missing.len(),
        bytes: missing.iter().map(|b| b.size).sum(),
    });
    for b in &present {
        report.report(Event::Present(b));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let on_sent: Arc<dyn Fn(u64) + Send + Sync> = {
        let (sent, progress) = (sent.clone(), progress.clone());
        Arc::new(move |bytes| {
            sent.fetch_add(bytes, Ordering::Relaxed);
            progress.report(Event::Sent { bytes });
        })
    };
    futures_util::stream::iter(&missing)
        .map(|b| {
            let on_sent = on_sent.clone();
            async move {
                let data = b.load()?;
                repo.push_blob(&b.digest, &data, on_sent, report).await?;
                report.report(Event::Uploaded(b));
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<()>()
        .await?;
    // With tags, the root goes up under them (which stores it by digest as well). A published
    // root is in the registry with every manifest below it: none is put again.
    let by_digest = set
        .manifests
        .iter()
        .filter(|m| published.is_empty() && (m.digest != root.digest || to_set.is_empty()));
    for m in by_digest {
        let reference = Reference::Digest(m.digest.clone());
        repo.push_manifest(&reference, &m.bytes, &m.media_type, report)
            .await?;
        report.report(Event::Manifest(m));
    }
    for &tag in &to_set {
        let reference = Reference::Tag(tag.clone());
        repo.push_manifest(&reference, &root.bytes, &root.media_type, report)
            .await?;
        report.report(Event::Tagged {
            tag,
            manifest: root,
        });
    }
    Ok(Pushed {
        digest: root.digest.clone(),
        tags: plan.set,
        left: plan.left,
        uploaded: missing.len(),
        present: present.len(),
        bytes_sent: sent.load(Ordering::Relaxed),
    })
}

/// The exact-version tags of `set` that already point at `root`; an error naming the tag and
/// both digests if one points anywhere else. Reads only: nothing is sent before this passes.
async fn check_versions(
    repo: &Repo,
    set: &PushSet,
    root: &Manifest,
    report: &dyn Progress,
) -> Result<Vec<Tag>, RegistryError> {
    let mut published = Vec::new();
    for tag in set.tags.iter().filter(|t| t.version().is_some()) {
        let Some(there) = repo.manifest(&Reference::Tag(tag.clone()), report).await? else {
            continue;
        };
        if there.digest != root.digest {
            return Err(RegistryError {
                registry: repo.name().registry().to_owned(),
                repository: repo.name().repository().to_owned(),
                step: Step::CheckVersion(tag.clone()),
                kind: ErrorKind::VersionPublished {
                    published: there.digest,
                    pushed: root.digest.clone(),
                },
                detail: String::new(),
                attempts: 1,
            });
        }
        report.report(Event::Published {
            tag,
            manifest: root,
        });
        published.push(tag.clone());
    }
    Ok(published)
}
