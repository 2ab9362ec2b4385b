//! Pushes the OCI image layout to a registry: missing blobs, then manifests by digest, tags last.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::Descriptor;
use xshell::{Shell, cmd};

use super::layout::Layout;
use crate::registry::{self, Progress, RegistryArgs, Repo, human, short};

/// Pushes an OCI image layout to a registry: blobs the registry lacks, each platform manifest
/// by digest, then the image index under every tag (tags last, so a failed push moves no tag).
#[derive(Debug, Args)]
pub struct Push {
    /// Where to push: REGISTRY/REPOSITORY, e.g. ghcr.io/owner/visit-tracker.
    #[arg(long, value_name = "REGISTRY/REPO")]
    pub image: String,
    /// A tag to set (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Also derive tags from a git ref like docker/metadata-action: refs/tags/v1.2.3 gives
    /// 1.2.3, 1.2, 1, latest; refs/heads/main gives main, sha-<7>; refs/pull/N/merge gives pr-N.
    #[arg(long, value_name = "REF")]
    pub tags_from_ref: Option<String>,
    /// The commit for sha-<7> tags (default: $GITHUB_SHA, else `git rev-parse HEAD`).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
    /// The OCI image layout to push.
    #[arg(long, value_name = "DIR", default_value = "target/oci/visit-tracker")]
    pub layout: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let (host, repository) = registry::split_repository(&self.image)?;
        let mut tags = self.tags.clone();
        if let Some(git_ref) = &self.tags_from_ref {
            let git_ref = GitRef::parse(git_ref)?;
            // Only branches are tagged with the commit: no git needed for release tags.
            let sha = match (&self.sha, &git_ref) {
                (Some(s), _) => s.clone(),
                (None, GitRef::Branch(_)) => match std::env::var("GITHUB_SHA") {
                    Ok(s) if !s.is_empty() => s,
                    _ => cmd!(sh, "git rev-parse HEAD").quiet().read()?,
                },
                (None, _) => String::new(),
            };
            tags.extend(tags_for(&git_ref, &sha)?);
        }
        let tags = dedup(tags);
        for tag in &tags {
            check_tag(tag)?;
        }
        let layout = sh.current_dir().join(&self.layout);
        let image = read_layout(&layout)?;
        let repo = Repo::open(&self.registry, &host, &repository)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let pushed = runtime.block_on(push(&repo, &image, &tags))?;
        let reference = format!("{host}/{repository}@{}", pushed.digest);
        eprintln!(
            "pushed {reference}: {} blobs uploaded ({}), {} already there; tags: {}",
            pushed.uploaded,
            human(pushed.bytes_sent),
            pushed.present,
            if tags.is_empty() {
                "none".to_owned()
            } else {
                tags.join(", ")
            }
        );
        println!("{reference}");
        crate::github_output(&[
            ("digest", &pushed.digest),
            ("tags", &tags.join(",")),
            ("image", &reference),
        ])?;
        Ok(())
    }
}

/// A git ref as GitHub names it (`GITHUB_REF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Tag(String),
    Branch(String),
    PullRequest(u64),
}

impl GitRef {
    pub fn parse(s: &str) -> Result<GitRef> {
        if let Some(tag) = s.strip_prefix("refs/tags/") {
            return Ok(GitRef::Tag(tag.to_owned()));
        }
        if let Some(branch) = s.strip_prefix("refs/heads/") {
            return Ok(GitRef::Branch(branch.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("refs/pull/") {
            let n = rest.split('/').next().unwrap_or_default();
            return n
                .parse()
                .map(GitRef::PullRequest)
                .with_context(|| format!("`{s}`: expected refs/pull/<number>/merge"));
        }
        bail!(
            "`{s}` is not a full git ref: expected refs/tags/..., refs/heads/... or \
             refs/pull/<n>/merge (what $GITHUB_REF holds)"
        )
    }
}

/// The tags docker/metadata-action would give: a release tag `v1.2.3` gives `1.2.3`, `1.2`, `1`
/// and `latest` (`0.x` never gives a bare `0`; a pre-release gives only itself); a branch its
/// name and `sha-<7>`; a pull request `pr-<n>`; any other git tag its sanitized name.
pub fn tags_for(git_ref: &GitRef, sha: &str) -> Result<Vec<String>> {
    let short_sha = || -> Result<String> {
        ensure!(
            sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "`{sha}` is not a commit hash"
        );
        Ok(format!("sha-{}", sha[..7].to_ascii_lowercase()))
    };
    Ok(match git_ref {
        GitRef::Tag(tag) => {
            let version = tag.strip_prefix('v').unwrap_or(tag);
            match semver::Version::parse(version) {
                Ok(v) if !v.pre.is_empty() => vec![v.to_string()],
                Ok(v) => {
                    let mut tags = vec![v.to_string(), format!("{}.{}", v.major, v.minor)];
                    if v.major > 0 {
                        tags.push(v.major.to_string());
                    }
                    tags.push("latest".to_owned());
                    tags
                }
                Err(_) => vec![sanitize(tag)],
            }
        }
        GitRef::Branch(branch) => vec![sanitize(branch), short_sha()?],
        GitRef::PullRequest(n) => vec![format!("pr-{n}")],
    })
}

/// A ref name as a tag: characters a tag cannot hold become `-` (as metadata-action does).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_start_matches(['.', '-'])
        .to_owned()
}

/// Refuses what the distribution spec does not allow as a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    ensure!(
        ok,
        "invalid tag `{tag}`: a tag is 1 to 128 characters of letters, digits, `_`, `.` and `-`, \
         not starting with `.` or `-`"
    );
    Ok(())
}

fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tags.into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// A blob of the layout: where it is and what it should hash to.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub path: PathBuf,
}

/// A manifest or index, with its exact bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// What a push sends, read from an OCI layout: blobs, manifests with children before parents,
/// and the root (the last manifest) that tags point at.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    pub blobs: Vec<Blob>,
    pub manifests: Vec<Manifest>,
}

impl LayoutImage {
    pub fn root(&self) -> &Manifest {
        self.manifests
            .last()
            .expect("a layout image has a root manifest")
    }
}

/// Reads the image `index.json` points to (the layout `image build` writes: one image index
/// over per-platform manifests), checking the digest of every manifest; blob sizes are checked
/// here, their digests by the registry as it receives them.
pub fn read_layout(dir: &Path) -> Result<LayoutImage> {
    ensure!(
        dir.join("oci-layout").is_file(),
        "{} is not an OCI image layout (no oci-layout file): run `cargo xtask image build` first",
        dir.display()
    );
    let layout = Layout::open(dir)?;
    let entry = layout.entry(None)?;
    let index = layout.image_index(entry)?;
    let mut image = LayoutImage {
        blobs: Vec::new(),
        manifests: Vec::new(),
    };
    for platform in layout.platforms(&index)? {
        let manifest = &platform.manifest;
        for d in std::iter::once(manifest.config()).chain(manifest.layers()) {
            let path = layout.blob_path(d)?;
            let size = std::fs::metadata(&path)
                .with_context(|| format!("blob {} is missing: {}", d.digest(), path.display()))?
                .len();
            ensure!(
                size == d.size(),
                "{}: {size} bytes, but the descriptor says {}",
                path.display(),
                d.size()
            );
            if !image
                .blobs
                .iter()
                .any(|b| b.digest == d.digest().to_string())
            {
                image.blobs.push(Blob {
                    digest: d.digest().to_string(),
                    size,
                    path,
                });
            }
        }
        image
            .manifests
            .push(manifest_of(&layout, &platform.descriptor)?);
    }
    image.manifests.push(manifest_of(&layout, entry)?);
    Ok(image)
}

fn manifest_of(layout: &Layout, d: &Descriptor) -> Result<Manifest> {
    Ok(Manifest {
        digest: d.digest().to_string(),
        media_type: d.media_type().to_string(),
        bytes: layout.read_blob(d)?,
    })
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub uploaded: usize,
    pub present: usize,
    pub bytes_sent: u64,
}

/// Pushes `image` to `repo`: blobs it lacks (checked with HEAD), manifests by digest, then the
/// root under each tag. Run again after a failure, it sends only what is still missing.
pub async fn push(repo: &Repo, image: &LayoutImage, tags: &[String]) -> Result<Pushed> {
    repo.login().await?;
    let missing: Vec<&Blob> = futures_util::stream::iter(&image.blobs)
        .map(|b| async move { Ok::<_, anyhow::Error>((b, repo.blob_exists(&b.digest).await?)) })
        .buffered(8)
        .try_filter_map(|(b, exists)| async move { Ok((!exists).then_some(b)) })
        .try_collect()
        .await?;
    let total = missing.iter().map(|b| b.size).sum();
    let progress = Arc::new(Progress::new(total));
    for b in image
        .blobs
        .iter()
        .filter(|b| !missing.iter().any(|m| m.digest == b.digest))
    {
        progress.line(&format!("  {}  already in the registry", short(&b.digest)));
    }
    futures_util::stream::iter(&missing)
        .map(|b| {
            let progress = &progress;
            async move {
                // No local re-hash: the registry computes the digest of what it receives and
                // refuses a mismatch (DIGEST_INVALID), so a corrupted layout still fails.
                let data = bytes::Bytes::from(registry::read(&b.path)?);
                repo.push_blob(&b.digest, &data, progress).await?;
                progress.line(&format!(
                    "  {}  uploaded ({})",
                    short(&b.digest),
                    human(b.size)
                ));
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<()>()
        .await?;
    let root = image.root();
    let by_digest = image
        .manifests
        .iter()
        .filter(|m| m.digest != root.digest || tags.is_empty());
    for m in by_digest {
        repo.push_manifest(&m.digest, &m.bytes, &m.media_type)
            .await?;
        progress.line(&format!("  {}  manifest", short(&m.digest)));
    }
    for tag in tags {
        repo.push_manifest(tag, &root.bytes, &root.media_type)
            .await?;
        progress.line(&format!("  {tag} -> {}", short(&root.digest)));
    }
    Ok(Pushed {
        digest: root.digest.clone(),
        uploaded: missing.len(),
        present: image.blobs.len() - missing.len(),
        bytes_sent: progress.sent(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(r: &str) -> Vec<String> {
        tags_for(&GitRef::parse(r).unwrap(), "0123456789abcdef0123").unwrap()
    }

    #[test]
    fn release_tags_follow_metadata_action() {
        assert_eq!(tags("refs/tags/v1.2.3"), ["1.2.3", "1.2", "1", "latest"]);
        assert_eq!(tags("refs/tags/v0.4.1"), ["0.4.1", "0.4", "latest"]);
        assert_eq!(tags("refs/tags/v2.0.0-rc.1"), ["2.0.0-rc.1"]);
        assert_eq!(tags("refs/tags/nightly/2024"), ["nightly-2024"]);
    }

    #[test]
    fn branches_and_pull_requests() {
        assert_eq!(tags("refs/heads/main"), ["main", "sha-0123456"]);
        assert_eq!(tags("refs/heads/feature/x"), ["feature-x", "sha-0123456"]);
        assert_eq!(tags("refs/pull/42/merge"), ["pr-42"]);
        assert!(GitRef::parse("main").is_err());
        assert!(GitRef::parse("refs/pull/x/merge").is_err());
        assert!(tags_for(&GitRef::Branch("main".into()), "xyz").is_err());
    }

    #[test]
    fn invalid_tags_are_refused() {
        for good in ["latest", "1.2.3", "sha-0123456", "_x", &"a".repeat(128)] {
            check_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "ä", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
