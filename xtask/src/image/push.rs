//! `cargo xtask image push`: the OCI image layout as a push set, with tags from flags or a git
//! ref (the docker/metadata-action scheme); `registry::push` sends it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use oci_spec::image::{Descriptor, Digest};
use xshell::{Shell, cmd};

use super::layout::Layout;
use crate::registry::{self, Blob, BlobSource, Manifest, PushSet, Pushed, RegistryArgs, Repo};
use crate::registry::{RepositoryName, Tag};
use crate::term::{PushProgress, human_size};
use crate::workspace::Workspace;

/// Pushes an OCI image layout to a registry: blobs the registry lacks, each platform manifest
/// by digest, then the image index under every tag (tags last, so a failed push moves no tag).
/// An exact version tag (1.2.3) that already points at another image refuses the push before
/// anything is sent; floating tags (1.2, 1, latest) are set only if no higher version holds
/// them.
#[derive(Debug, Args)]
pub struct Push {
    /// Where to push: REGISTRY/REPOSITORY, e.g. ghcr.io/owner/visit-tracker (lower-cased:
    /// ghcr.io/Acme/Visit-Tracker pushes to ghcr.io/acme/visit-tracker).
    #[arg(long, value_name = "REGISTRY/REPO")]
    pub image: RepositoryName,
    /// A tag to set (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<Tag>,
    /// Also derive tags from a git ref like docker/metadata-action: refs/tags/v1.2.3 gives
    /// 1.2.3, 1.2, 1, latest; refs/heads/main gives main, sha-<7>; refs/pull/N/merge gives pr-N.
    #[arg(long, value_name = "REF")]
    pub tags_from_ref: Option<GitRef>,
    /// The commit for sha-<7> tags (default: $GITHUB_SHA, else `git rev-parse HEAD`).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
    /// The OCI image layout to push [default: <target-dir>/oci/visit-tracker, where `image
    /// build` writes].
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
    /// Refuse to push, before sending anything, unless the layout's image index has this digest:
    /// CI passes the digest its end-to-end test ran, so it publishes what it tested.
    #[arg(long, value_name = "sha256:HEX")]
    pub expect_digest: Option<Digest>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        self.push(sh).map(drop)
    }

    /// Does all `run` does (the push, its report, `$GITHUB_OUTPUT`) and returns what was
    /// pushed, so `release` gets the digest as a value.
    pub fn push(self, sh: &Shell) -> Result<Pushed> {
        let mut tags = self.tags.clone();
        if let Some(git_ref) = &self.tags_from_ref {
            // Only branches are tagged with the commit: no git needed for release tags.
            let sha = match (&self.sha, git_ref) {
                (Some(s), _) => s.clone(),
                (None, GitRef::Branch(_)) => match std::env::var("GITHUB_SHA") {
                    Ok(s) if !s.is_empty() => s,
                    _ => cmd!(sh, "git rev-parse HEAD").quiet().read()?,
                },
                (None, _) => String::new(),
            };
            tags.extend(tags_for(git_ref, &sha)?);
        }
        let layout = match &self.layout {
            Some(dir) => sh.current_dir().join(dir),
            None => Workspace::current()?.oci_layout(),
        };
        let mut image = read_layout(&layout)?;
        if let Some(expected) = &self.expect_digest {
            check_expected_digest(&layout, &image, expected)?;
        }
        image.tags = dedup(tags);
        let repo = Repo::open(&self.registry, &self.image)?;
        let pushed = registry::push(&repo, &image, Arc::new(PushProgress::new()))?;
        let reference = format!("{}@{}", self.image, pushed.digest);
        let tags: Vec<&str> = pushed.tags.iter().map(Tag::as_str).collect();
        eprintln!(
            "pushed {reference}: {} blobs uploaded ({}), {} already there; tags: {}",
            pushed.uploaded,
            human_size(pushed.bytes_sent),
            pushed.present,
            if tags.is_empty() {
                "none".to_owned()
            } else {
                tags.join(", ")
            }
        );
        if !pushed.left.is_empty() {
            let left: Vec<String> = pushed.left.iter().map(ToString::to_string).collect();
            eprintln!(
                "left alone (floating tags move only forward): {}",
                left.join("; ")
            );
        }
        println!("{reference}");
        // `latest` moved to this push (floating tags only move forward, registry::TagPlan): the
        // release job marks its GitHub release "latest" exactly then, so a pre-release or a
        // backport never becomes GitHub's latest release either.
        let latest = tags.contains(&"latest");
        crate::github_output(&[
            ("digest", pushed.digest.as_ref()),
            ("tags", &tags.join(",")),
            ("image", &reference),
            ("latest", if latest { "true" } else { "false" }),
        ])?;
        Ok(pushed)
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

impl std::str::FromStr for GitRef {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<GitRef> {
        GitRef::parse(s)
    }
}

impl std::fmt::Display for GitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitRef::Tag(tag) => write!(f, "refs/tags/{tag}"),
            GitRef::Branch(branch) => write!(f, "refs/heads/{branch}"),
            GitRef::PullRequest(n) => write!(f, "refs/pull/{n}/merge"),
        }
    }
}

/// The tags docker/metadata-action would give: a release tag `v1.2.3` gives `1.2.3`, `1.2`, `1`
/// and `latest` (`0.x` never gives a bare `0`; a pre-release gives only itself); a branch its
/// name and `sha-<7>`; a pull request `pr-<n>`; any other git tag its sanitized name. These are
/// the tags asked for: the push sets `1.2`, `1` and `latest` only where 1.2.3 is the highest
/// version of their series in the registry ([`crate::registry::TagPlan`]).
pub fn tags_for(git_ref: &GitRef, sha: &str) -> Result<Vec<Tag>> {
    let short_sha = || -> Result<String> {
        ensure!(
            sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "`{sha}` is not a commit hash"
        );
        Ok(format!("sha-{}", sha[..7].to_ascii_lowercase()))
    };
    let names = match git_ref {
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
    };
    names.iter().map(|name| name.parse()).collect()
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

/// Fails unless the layout's image index (the push set's root) is `expected`.
fn check_expected_digest(layout: &Path, image: &PushSet, expected: &Digest) -> Result<()> {
    let actual = &image
        .root()
        .with_context(|| format!("{}: no image index", layout.display()))?
        .digest;
    ensure!(
        actual == expected,
        "refusing to push {}: its image index is {actual}, but --expect-digest is {expected} \
         (the image that was tested); nothing was sent",
        layout.display()
    );
    Ok(())
}

fn dedup(tags: Vec<Tag>) -> Vec<Tag> {
    let mut seen = std::collections::HashSet::new();
    tags.into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// Reads the image `index.json` points to (the layout `image build` writes: one image index
/// over per-platform manifests) as what a push sends, without tags: the blobs, each platform's
/// manifest, then the index as the root. Every manifest's digest is checked here; blob sizes
/// too, their digests by the registry as it receives them.
pub fn read_layout(dir: &Path) -> Result<PushSet> {
    ensure!(
        dir.join("oci-layout").is_file(),
        "{} is not an OCI image layout (no oci-layout file): run `cargo xtask image build` first",
        dir.display()
    );
    let layout = Layout::open(dir)?;
    let entry = layout.entry(None)?;
    let index = layout.image_index(entry)?;
    let mut image = PushSet::default();
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
            if !image.blobs.iter().any(|b| b.digest == *d.digest()) {
                image.blobs.push(Blob {
                    digest: d.digest().clone(),
                    size,
                    source: BlobSource::File(path),
                    label: None,
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
        digest: d.digest().clone(),
        media_type: d.media_type().clone(),
        bytes: layout.read_blob(d)?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(r: &str) -> Vec<Tag> {
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
    fn only_the_expected_image_index_is_pushed() {
        let index = Manifest::new(oci_spec::image::MediaType::ImageIndex, &b"{}"[..]);
        let tested = index.digest.clone();
        let image = PushSet {
            manifests: vec![index],
            ..PushSet::default()
        };
        let layout = Path::new("target/oci/visit-tracker");
        assert!(check_expected_digest(layout, &image, &tested).is_ok());
        let other: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let err = check_expected_digest(layout, &image, &other)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&tested.to_string()) && err.contains(&other.to_string()),
            "{err}"
        );
        assert!(err.contains("target/oci/visit-tracker"), "{err}");
        // A job that lost the tested digest passes an empty value: refused, never "no check".
        let push = |digest: &str| {
            <crate::Cli as clap::Parser>::try_parse_from([
                "cargo xtask",
                "image",
                "push",
                "--image",
                "ghcr.io/acme/visit-tracker",
                "--expect-digest",
                digest,
            ])
        };
        assert!(push("").is_err());
        assert!(push(tested.as_ref()).is_ok());
    }

    #[test]
    fn git_refs_print_as_they_parse() {
        for r in [
            "refs/tags/v1.2.3",
            "refs/heads/feature/x",
            "refs/pull/42/merge",
        ] {
            assert_eq!(GitRef::parse(r).unwrap().to_string(), r);
        }
    }
}
