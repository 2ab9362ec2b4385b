//! `cargo xtask attach`: in-toto statements (SBOM, provenance) signed into DSSE envelopes and
//! pushed as OCI 1.1 referrers of the manifest they are about, plus cosign's `.att` form of the
//! same envelopes, which `cosign verify-attestation` reads.
//!
//! Order, so that no tag names what is not complete: the envelopes and the artifact manifests
//! (by digest); then, where the registry did not list them itself (no referrers API), the
//! referrers tag index; then the `.att` tag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use oci_spec::image::Digest;
use p256::ecdsa::SigningKey;
use xshell::Shell;

use super::target::ImageRef;
use super::{attach, dsse, keys, referrers, resolve, simple};
use crate::registry::name::Reference;
use crate::registry::progress::Quiet;
use crate::registry::{self, Blob, Fetched, Progress, PushSet, RegistryArgs, Repo, Tag};
use crate::term::PushProgress;

/// Signs in-toto statements about an image (index or platform manifest) and pushes them as
/// attestations.
#[derive(Debug, Args)]
pub struct Attest {
    /// The manifest the statements are about: HOST/REPO:TAG or HOST/REPO@sha256:<hex>. Each
    /// statement must name its digest as a subject.
    #[arg(value_name = "REF")]
    pub target: ImageRef,
    /// The private key (cosign format), a file or `env://NAME` (the key's text in the variable
    /// NAME); its passphrase comes from COSIGN_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// An in-toto statement (JSON) to sign and attach (repeatable).
    #[arg(long = "statement", value_name = "FILE", required = true)]
    pub statements: Vec<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Attest {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let key = keys::load_private_key(&sh.current_dir(), &self.key)?;
        let statements = self
            .statements
            .iter()
            .map(|p| read_statement(&sh.current_dir().join(p)))
            .collect::<Result<Vec<_>>>()?;
        let repo = Repo::open(&self.registry, &self.target.repo)?;
        let subject = resolve(&repo, &self.target)?;
        let attested = attest(
            &repo,
            &subject,
            &key,
            &statements,
            Arc::new(PushProgress::new()),
        )?;
        let store = match &attested.referrers_tag {
            Some(tag) => format!("referrers tag {tag}"),
            None => "the registry's referrers API".to_owned(),
        };
        eprintln!(
            "attested {}@{}: {} statement(s), listed by {store}; cosign's form under {}",
            self.target.repo,
            subject.digest,
            statements.len(),
            attested.cosign_tag
        );
        for artifact in &attested.artifacts {
            println!("{}@{artifact}", self.target.repo);
        }
        Ok(())
    }
}

/// A statement to attest: where it came from (for messages) and its exact bytes.
#[derive(Debug, Clone)]
pub struct StatementFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

pub fn read_statement(path: &Path) -> Result<StatementFile> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading statement {}", path.display()))?;
    Ok(StatementFile {
        name: path.display().to_string(),
        bytes,
    })
}

/// What attesting did.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The artifact manifests, one per statement, in the order given.
    pub artifacts: Vec<Digest>,
    /// The referrers tag that lists them, or `None` where the registry's API lists them.
    pub referrers_tag: Option<Tag>,
    /// The `.att` tag holding the same envelopes.
    pub cosign_tag: Tag,
}

/// Signs each statement about `subject` into an envelope and pushes it as a referrer and as a
/// cosign attestation. Refuses (before pushing anything) a statement that does not name the
/// subject's digest.
pub fn attest(
    repo: &Repo,
    subject: &Fetched,
    key: &SigningKey,
    statements: &[StatementFile],
    progress: Arc<dyn Progress>,
) -> Result<Attested> {
    let digest = subject.digest.to_string();
    let mut envelopes = Vec::new();
    for file in statements {
        let statement = dsse::Statement::parse(&file.bytes).with_context(|| file.name.clone())?;
        if !statement.names(&digest) {
            bail!(
                "{}: the statement is about {}, not {digest}: attest it to the manifest it names",
                file.name,
                list(&statement.subject_digests())
            );
        }
        let envelope = dsse::sign(key, &file.bytes)?;
        let blob = Blob::from_bytes(serde_json::to_vec(&envelope)?, Some("attestation"));
        envelopes.push((statement.predicate_type, blob));
    }

    // 1. Envelopes and artifact manifests, by digest: no tag moves yet.
    let mut artifacts = PushSet {
        blobs: vec![referrers::empty_config()],
        ..PushSet::default()
    };
    for (predicate_type, blob) in &envelopes {
        artifacts.manifests.push(referrers::artifact(
            referrers::descriptor_of(subject),
            blob,
            predicate_type,
        )?);
        if !artifacts.blobs.iter().any(|b| b.digest == blob.digest) {
            artifacts.blobs.push(blob.clone());
        }
    }
    registry::push(repo, &artifacts, progress.clone())?;
    let digests: Vec<Digest> = artifacts
        .manifests
        .iter()
        .map(|m| m.digest.clone())
        .collect();

    // 2. The referrers tag schema's index lists them, unless the registry's referrers API does.
    let tag = referrers::referrers_tag(&subject.digest);
    let existing = repo.block_on(repo.manifest(&Reference::Tag(tag.clone()), &Quiet))?;
    let entries = artifacts
        .manifests
        .iter()
        .map(referrers::index_entry)
        .collect::<Result<Vec<_>>>()?;
    let referrers_tag = match referrers::add_to_index(existing.as_ref(), &entries)? {
        // Listed there by an earlier run.
        None => Some(tag),
        Some(index) => {
            // Without the API, the registry answers from this same tag index, which lacks them.
            let listed = repo.referrers(&subject.digest)?;
            let by_api = digests
                .iter()
                .all(|d| listed.manifests().iter().any(|m| m.digest() == d));
            if by_api {
                None
            } else {
                let set = PushSet {
                    blobs: Vec::new(),
                    manifests: vec![index],
                    tags: vec![tag.clone()],
                };
                registry::push(repo, &set, progress.clone())?;
                Some(tag)
            }
        }
    };

    // 3. cosign's `.att` tag: the same envelopes as layers, which cosign verify-attestation reads.
    let cosign_tag = attach::attestation_tag(&subject.digest);
    let layers = envelopes
        .iter()
        .map(|(predicate_type, blob)| attach::Layer {
            blob: blob.clone(),
            media_type: referrers::DSSE_MEDIA_TYPE.to_owned(),
            annotations: BTreeMap::from([
                (
                    referrers::COSIGN_PREDICATE_TYPE_ANNOTATION.to_owned(),
                    predicate_type.clone(),
                ),
                // cosign writes it empty on attestations (the signature is in the envelope) and
                // refuses a layer without it.
                (simple::SIGNATURE_ANNOTATION.to_owned(), String::new()),
            ]),
        })
        .collect();
    let existing = repo.block_on(repo.manifest(&Reference::Tag(cosign_tag.clone()), &Quiet))?;
    let same =
        |d: &oci_spec::image::Descriptor, new: &attach::Layer| attach::same_layer(d, new, "");
    if let Some(set) = attach::append(cosign_tag.clone(), existing.as_ref(), layers, same)? {
        registry::push(repo, &set, progress)?;
    }
    Ok(Attested {
        artifacts: digests,
        referrers_tag,
        cosign_tag,
    })
}

fn list(digests: &[String]) -> String {
    if digests.is_empty() {
        "no sha256 subject".to_owned()
    } else {
        digests.join(", ")
    }
}
