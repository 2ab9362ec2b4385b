//! `cargo xtask verify`: checks a published image (or chart) against a public key: the signature
//! of the manifest the reference names, then every attestation's signature and subject. Each
//! failure says what differs.
//!
//! The checks are steps over one [`Context`] (what the reference resolved to): [`STEPS`] lists
//! them in order, and a new check (SBOM against the binary, a rebuild) is one more step.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use oci_spec::image::{Descriptor, Digest, ImageIndex, MediaType};
use p256::ecdsa::VerifyingKey;
use xshell::Shell;

use super::target::ImageRef;
use super::{attach, dsse, keys, referrers, resolve, simple};
use crate::registry::name::Reference;
use crate::registry::progress::Quiet;
use crate::registry::{Fetched, RegistryArgs, Repo};
use crate::term::short_digest;

/// Verifies the signature and attestations of an image or chart with a public key.
#[derive(Debug, Args)]
pub struct Verify {
    /// What to verify: HOST/REPO:TAG or HOST/REPO@sha256:<hex>.
    #[arg(value_name = "REF")]
    pub target: ImageRef,
    /// The public key (e.g. cosign.pub).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Verify {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let key_path = sh.current_dir().join(&self.key);
        let key = keys::read_public_key(&key_path)?;
        let repo = Repo::open(&self.registry, &self.target.repo)?;
        let report = verify(&repo, &self.target, &key)?;
        eprintln!(
            "verify {} ({}, {}) with {}",
            self.target,
            report.digest,
            report.kind,
            self.key.display()
        );
        for check in &report.checks {
            match &check.result {
                Ok(detail) => eprintln!("  ok    {}: {detail}", check.name),
                Err(failure) => eprintln!("  FAIL  {}: {failure}", check.name),
            }
        }
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|f| format!("{}: {f}", c.name)))
            .collect();
        if !failed.is_empty() {
            bail!(
                "{} failed verification ({} of {} checks):\n  - {}",
                self.target,
                failed.len(),
                report.checks.len(),
                failed.join("\n  - ")
            );
        }
        println!("{}@{}", self.target.repo, report.digest);
        Ok(())
    }
}

/// What differs, for one check that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No signature is stored for the digest the reference names now. `signed` lists digests
    /// that signatures with this key name under the same tag: the tag was moved to other bytes.
    SignatureMissing {
        digest: Digest,
        tag: Option<String>,
        signed: Vec<String>,
    },
    /// Signatures are there, but none verifies with the key.
    WrongKey { signatures: usize },
    /// A signature with this key is there, but its payload names another manifest.
    OtherDigest { signed: String, digest: Digest },
    /// A signature with this key for this digest names another repository.
    OtherRepository { identity: String },
    /// An attestation whose envelope does not verify, or is not an in-toto envelope.
    Attestation { artifact: Digest, problem: String },
    /// An attestation listed for `subject` that is about something else.
    SubjectMismatch {
        artifact: Digest,
        subject: Digest,
        names: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::SignatureMissing {
                digest,
                tag,
                signed,
            } if !signed.is_empty() => write!(
                f,
                "signature does not match the digest: the tag {} was moved to other bytes (it \
                 names {digest} now, the key signed {})",
                tag.as_deref().unwrap_or_default(),
                signed.join(", ")
            ),
            Failure::SignatureMissing { digest, .. } => write!(
                f,
                "signature missing: nothing under {} for {digest}",
                attach::signature_tag(digest)
            ),
            Failure::WrongKey { signatures } => write!(
                f,
                "wrong key: {signatures} signature(s) stored, none verifies with this key"
            ),
            Failure::OtherDigest { signed, digest } => write!(
                f,
                "signature does not match the digest: it signs {signed}, the manifest is {digest}"
            ),
            Failure::OtherRepository { identity } => {
                write!(f, "the signature names another repository ({identity})")
            }
            Failure::Attestation { artifact, problem } => {
                write!(f, "artifact {}: {problem}", short_digest(artifact))
            }
            Failure::SubjectMismatch {
                artifact,
                subject,
                names,
            } => write!(
                f,
                "attestation subject mismatch: {} is listed for {subject} but is about {names}",
                short_digest(artifact)
            ),
        }
    }
}

/// One check's name and outcome: what passed, or what differs.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub result: Result<String, Failure>,
}

/// Everything checked about one reference.
#[derive(Debug, Clone)]
pub struct Report {
    pub digest: Digest,
    /// `image index`, `manifest`, ...
    pub kind: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Failure> {
        self.checks
            .iter()
            .filter_map(|c| c.result.as_ref().err())
            .collect()
    }
}

/// What the steps check: the resolved manifest and, for an index, its platform manifests.
pub struct Context<'a> {
    pub repo: &'a Repo,
    pub target: &'a ImageRef,
    pub key: &'a VerifyingKey,
    pub subject: Fetched,
    pub platforms: Vec<Descriptor>,
}

/// A check over the context; registry failures are errors (the check could not be made), what
/// differs is a failed [`Check`].
pub type Step = fn(&Context) -> Result<Vec<Check>>;

/// The checks, in order.
pub const STEPS: &[Step] = &[signature, attestations];

/// Resolves `target` and runs every step.
pub fn verify(repo: &Repo, target: &ImageRef, key: &VerifyingKey) -> Result<Report> {
    let subject = resolve(repo, target)?;
    let (kind, platforms) = if is_index(&subject.media_type) {
        let index: ImageIndex = serde_json::from_slice(&subject.bytes)
            .with_context(|| format!("{target}: the index is not valid JSON"))?;
        let n = index.manifests().len();
        (
            format!("image index, {n} manifests"),
            index.manifests().clone(),
        )
    } else {
        ("manifest".to_owned(), Vec::new())
    };
    let context = Context {
        repo,
        target,
        key,
        subject,
        platforms,
    };
    let mut checks = Vec::new();
    for step in STEPS {
        checks.extend(step(&context)?);
    }
    Ok(Report {
        digest: context.subject.digest,
        kind,
        checks,
    })
}

fn is_index(media_type: &MediaType) -> bool {
    matches!(
        media_type.to_string().as_str(),
        "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"
    )
}

/// The signature of the manifest: some signature under its `.sig` tag verifies with the key and
/// names this digest and repository.
fn signature(cx: &Context) -> Result<Vec<Check>> {
    let digest = &cx.subject.digest;
    let tag = attach::signature_tag(digest);
    let check = |result| {
        Ok(vec![Check {
            name: "signature".to_owned(),
            result,
        }])
    };
    let Some(stored) = cx
        .repo
        .block_on(cx.repo.manifest(&Reference::Tag(tag.clone()), &Quiet))?
    else {
        let signed = match &cx.target.tag {
            Some(_) => signed_elsewhere(cx)?,
            None => Vec::new(),
        };
        return check(Err(Failure::SignatureMissing {
            digest: digest.clone(),
            tag: cx.target.tag.as_ref().map(|t| t.to_string()),
            signed,
        }));
    };
    let signatures = read_signatures(cx, &stored)?;
    let by_key: Vec<&simple::Payload> = signatures
        .iter()
        .filter(|s| s.verified)
        .filter_map(|s| s.payload.as_ref())
        .collect();
    let good = by_key
        .iter()
        .filter(|p| p.critical.image.docker_manifest_digest == digest.to_string())
        .filter(|p| p.repository() == cx.target.repo.to_string())
        .count();
    let result = if good > 0 {
        Ok(format!(
            "{good} of {} signature(s) under {tag} verify with the key",
            signatures.len()
        ))
    } else if let Some(p) = by_key
        .iter()
        .find(|p| p.critical.image.docker_manifest_digest != digest.to_string())
    {
        Err(Failure::OtherDigest {
            signed: p.critical.image.docker_manifest_digest.clone(),
            digest: digest.clone(),
        })
    } else if let Some(p) = by_key.first() {
        Err(Failure::OtherRepository {
            identity: p.critical.identity.docker_reference.clone(),
        })
    } else {
        Err(Failure::WrongKey {
            signatures: signatures.len(),
        })
    };
    check(result)
}

/// One simple-signing layer: its payload (if it parses) and whether its signature verifies.
struct StoredSignature {
    payload: Option<simple::Payload>,
    verified: bool,
}

fn read_signatures(cx: &Context, stored: &Fetched) -> Result<Vec<StoredSignature>> {
    let mut out = Vec::new();
    for layer in attach::layers(stored)? {
        if layer.media_type().to_string() != simple::MEDIA_TYPE {
            continue;
        }
        let payload = cx.repo.blob(layer.digest())?;
        let signature = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(simple::SIGNATURE_ANNOTATION))
            .and_then(|s| B64.decode(s).ok());
        out.push(StoredSignature {
            payload: simple::parse(&payload).ok(),
            verified: signature.is_some_and(|s| keys::verify(cx.key, &payload, &s)),
        });
    }
    Ok(out)
}

/// The digests that signatures made with this key name for this reference's tag, found among
/// the repository's other `.sig` tags: where the tag pointed when it was signed.
fn signed_elsewhere(cx: &Context) -> Result<Vec<String>> {
    let identity = cx.target.identity();
    let mut signed = Vec::new();
    for tag in cx.repo.block_on(cx.repo.tags(&Quiet))? {
        let name = tag.as_str();
        if !(name.starts_with("sha256-") && name.ends_with(".sig")) {
            continue;
        }
        let Some(stored) = cx
            .repo
            .block_on(cx.repo.manifest(&Reference::Tag(tag.clone()), &Quiet))?
        else {
            continue;
        };
        for s in read_signatures(cx, &stored)? {
            if let (true, Some(p)) = (s.verified, s.payload)
                && p.critical.identity.docker_reference == identity
                && !signed.contains(&p.critical.image.docker_manifest_digest)
            {
                signed.push(p.critical.image.docker_manifest_digest);
            }
        }
    }
    Ok(signed)
}

/// Every attestation of the manifest (and of each platform manifest of an index): listed as a
/// referrer, an in-toto envelope that verifies with the key, about the manifest it is listed for.
fn attestations(cx: &Context) -> Result<Vec<Check>> {
    let top = if is_index(&cx.subject.media_type) {
        "the index"
    } else {
        "the manifest"
    };
    let mut subjects = vec![(cx.subject.digest.clone(), top.to_owned())];
    for p in &cx.platforms {
        let platform = p
            .platform()
            .as_ref()
            .map(|p| format!("{}/{}", p.os(), p.architecture()))
            .unwrap_or_else(|| "a manifest of the index".to_owned());
        subjects.push((p.digest().clone(), platform));
    }
    let mut checks = Vec::new();
    for (digest, what) in &subjects {
        let listed = cx.repo.referrers(digest)?;
        for entry in listed.manifests() {
            let artifact_type = entry.artifact_type().as_ref().map(|t| t.to_string());
            if artifact_type.as_deref() != Some(referrers::IN_TOTO_ARTIFACT_TYPE) {
                continue;
            }
            let result = attestation(cx, digest, entry.digest())?;
            // The statement's own predicate type once verified; before, what the listing says.
            let listed_type = entry
                .annotations()
                .as_ref()
                .and_then(|a| a.get(referrers::PREDICATE_TYPE_ANNOTATION))
                .cloned();
            let name = match (&result, listed_type) {
                (Ok((predicate_type, _)), _) => format!("attestation {predicate_type}"),
                (Err(_), Some(predicate_type)) => format!("attestation {predicate_type}"),
                (Err(_), None) => "attestation".to_owned(),
            };
            checks.push(Check {
                name,
                result: result
                    .map(|(_, detail)| format!("{detail}, about {what} {}", short_digest(digest))),
            });
        }
    }
    if checks.is_empty() {
        checks.push(Check {
            name: "attestations".to_owned(),
            result: Ok(format!(
                "none listed for {} or its platform manifests",
                short_digest(&cx.subject.digest)
            )),
        });
    }
    Ok(checks)
}

/// One referrer of `subject`: its predicate type and a line on what passed, or what differs.
fn attestation(
    cx: &Context,
    subject: &Digest,
    artifact: &Digest,
) -> Result<Result<(String, String), Failure>> {
    let problem = |problem: String| {
        Err(Failure::Attestation {
            artifact: artifact.clone(),
            problem,
        })
    };
    let Some(fetched) = cx.repo.block_on(
        cx.repo
            .manifest(&Reference::Digest(artifact.clone()), &Quiet),
    )?
    else {
        return Ok(problem("listed, but not in the registry".to_owned()));
    };
    let (stated_subject, layer) = match referrers::parse_artifact(&fetched) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(problem(format!("{e:#}"))),
    };
    if stated_subject.as_ref() != Some(subject) {
        return Ok(Err(Failure::SubjectMismatch {
            artifact: artifact.clone(),
            subject: subject.clone(),
            names: match stated_subject {
                Some(d) => format!("manifest subject {d}"),
                None => "no subject".to_owned(),
            },
        }));
    }
    let envelope = cx.repo.blob(layer.digest())?;
    let statement = match dsse::verify(&envelope, cx.key) {
        Ok(statement) => statement,
        Err(e) => return Ok(problem(e.to_string())),
    };
    let statement = match dsse::Statement::parse(&statement) {
        Ok(s) => s,
        Err(e) => return Ok(problem(format!("{e:#}"))),
    };
    if !statement.names(subject.as_ref()) {
        return Ok(Err(Failure::SubjectMismatch {
            artifact: artifact.clone(),
            subject: subject.clone(),
            names: format!(
                "statement subjects {}",
                statement.subject_digests().join(", ")
            ),
        }));
    }
    Ok(Ok((
        statement.predicate_type,
        format!("signed with the key ({})", short_digest(artifact)),
    )))
}
