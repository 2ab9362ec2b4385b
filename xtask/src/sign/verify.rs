//! `cargo xtask verify`: checks a published image (or chart) against a public key: the signature
//! of the manifest the reference names, every attestation's signature and subject, that each SBOM
//! lists what its platform's binary embeds, and with `--rebuild` that the provenance's commit
//! rebuilds to the same index digest. Each failure says what differs.
//!
//! The checks are steps over one [`Context`] (what the reference resolved to): [`STEPS`] lists
//! them in order; the rebuild ([`rebuild`]) is the last, run only when asked (it takes minutes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use oci_spec::image::{
    ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_VERSION, Descriptor, Digest, ImageIndex,
    ImageManifest, MediaType,
};
use p256::ecdsa::VerifyingKey;
use serde_json::Value;
use xshell::{Shell, cmd};

use super::target::ImageRef;
use super::{attach, dsse, keys, referrers, resolve, simple};
use crate::attest::statement::{CYCLONEDX_BOM, SLSA_PROVENANCE_V1};
use crate::attest::{binary_from_layer, embedded_dependencies, provenance, sbom};
use crate::image::build::Build;
use crate::image::oci::{BINARY_PATH, Platform};
use crate::registry::name::Reference;
use crate::registry::progress::Quiet;
use crate::registry::{Fetched, RegistryArgs, Repo};
use crate::term::short_digest;
use crate::workspace::Workspace;

/// Verifies the signature and attestations of images and charts with a public key.
#[derive(Debug, Args)]
pub struct Verify {
    /// What to verify: HOST/REPO:TAG or HOST/REPO@sha256:<hex> (an image index, an image, a
    /// chart), each checked on its own.
    #[arg(value_name = "REF", required = true)]
    pub targets: Vec<ImageRef>,
    /// The public key (e.g. cosign.pub).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Also check out the provenance's commit into a temporary git worktree, rebuild the image
    /// there (this checkout's target directory, so dependencies are not recompiled) and compare
    /// the index digest with the published one. References with the same commit and build
    /// parameters share one rebuild.
    #[arg(long)]
    pub rebuild: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Verify {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let key_path = sh.current_dir().join(&self.key);
        let key = keys::read_public_key(&key_path)?;
        let rebuild = match self.rebuild {
            true => Some(Rebuilder::new(sh, Workspace::current()?)),
            false => None,
        };
        let mut failed = Vec::new();
        for target in &self.targets {
            let repo = Repo::open(&self.registry, &target.repo)?;
            let report = verify_with(&repo, target, &key, rebuild.as_ref())?;
            eprintln!(
                "verify {target} ({}, {}) with {}",
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
            let failures: Vec<String> = report
                .checks
                .iter()
                .filter_map(|c| c.result.as_ref().err().map(|f| format!("{}: {f}", c.name)))
                .collect();
            if failures.is_empty() {
                println!("{}@{}", target.repo, report.digest);
            } else {
                failed.push(format!(
                    "{target} failed verification ({} of {} checks):\n  - {}",
                    failures.len(),
                    report.checks.len(),
                    failures.join("\n  - ")
                ));
            }
        }
        if !failed.is_empty() {
            bail!("{}", failed.join("\n"));
        }
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
    /// An SBOM that does not list what the platform's binary embeds: each difference names the
    /// crate and version.
    SbomDiffers {
        platform: String,
        differences: Vec<String>,
    },
    /// The binary of a platform with an SBOM could not be read from its layer.
    Binary { platform: String, problem: String },
    /// The rebuild of `commit` gave another index: what differs, by platform manifest, layer and
    /// config.
    RebuildDiffers {
        commit: String,
        published: Digest,
        rebuilt: String,
        differences: Vec<String>,
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
            Failure::SbomDiffers {
                platform,
                differences,
            } => write!(
                f,
                "{platform}: the SBOM does not list what the binary embeds: {}",
                differences.join("; ")
            ),
            Failure::Binary { platform, problem } => write!(f, "{platform}: {problem}"),
            Failure::RebuildDiffers {
                commit,
                published,
                rebuilt,
                differences,
            } => write!(
                f,
                "digest differs after rebuild of {commit}: published {published}, rebuilt \
                 {rebuilt}: {}",
                differences.join("; ")
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
    /// Where to rebuild, when `--rebuild` asks for it.
    pub rebuild: Option<&'a Rebuilder<'a>>,
}

/// What a rebuild needs: a shell and the checkout whose git repository has the commit and whose
/// target directory holds compiled dependencies; and the images rebuilt so far in this run.
pub struct Rebuilder<'a> {
    pub sh: &'a Shell,
    pub workspace: &'a Workspace,
    rebuilt: std::cell::RefCell<Vec<(BuildParams, crate::image::oci::Image)>>,
}

impl<'a> Rebuilder<'a> {
    pub fn new(sh: &'a Shell, workspace: &'a Workspace) -> Rebuilder<'a> {
        Rebuilder {
            sh,
            workspace,
            rebuilt: Default::default(),
        }
    }

    /// The image `params` build, rebuilt once per run for the same parameters (wherever read).
    fn image(&self, params: &BuildParams) -> Result<crate::image::oci::Image> {
        let same = |p: &BuildParams| BuildParams {
            from: "",
            ..p.clone()
        };
        if let Some((_, image)) = self
            .rebuilt
            .borrow()
            .iter()
            .find(|(p, _)| same(p) == same(params))
        {
            eprintln!("verify: {} was rebuilt above", short_commit(&params.commit));
            return Ok(image.clone());
        }
        let image = rebuild_image(self, params)?;
        self.rebuilt
            .borrow_mut()
            .push((params.clone(), image.clone()));
        Ok(image)
    }
}

/// A check over the context; registry failures are errors (the check could not be made), what
/// differs is a failed [`Check`].
pub type Step = fn(&Context) -> Result<Vec<Check>>;

/// The checks, in order.
pub const STEPS: &[Step] = &[signature, attestations, sboms, rebuild];

/// Resolves `target` and runs every step but the rebuild.
pub fn verify(repo: &Repo, target: &ImageRef, key: &VerifyingKey) -> Result<Report> {
    verify_with(repo, target, key, None)
}

/// Resolves `target` and runs every step, the rebuild with `rebuild` if given.
pub fn verify_with(
    repo: &Repo,
    target: &ImageRef,
    key: &VerifyingKey,
    rebuild: Option<&Rebuilder>,
) -> Result<Report> {
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
        rebuild,
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
        subjects.push((p.digest().clone(), platform_name(p)));
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
                (Ok((predicate_type, _, _)), _) => format!("attestation {predicate_type}"),
                (Err(_), Some(predicate_type)) => format!("attestation {predicate_type}"),
                (Err(_), None) => "attestation".to_owned(),
            };
            checks.push(Check {
                name,
                result: result.map(|(_, detail, _)| {
                    format!("{detail}, about {what} {}", short_digest(digest))
                }),
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

/// The platform an index entry is for, as `os/arch`.
fn platform_name(entry: &Descriptor) -> String {
    entry
        .platform()
        .as_ref()
        .map(|p| format!("{}/{}", p.os(), p.architecture()))
        .unwrap_or_else(|| "a manifest of the index".to_owned())
}

/// An attestation that verified: its predicate type, a line on what passed, the statement's bytes.
type Verified = (String, String, Vec<u8>);

/// One referrer of `subject`: what verified, or what differs.
fn attestation(
    cx: &Context,
    subject: &Digest,
    artifact: &Digest,
) -> Result<Result<Verified, Failure>> {
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
    let verified = match dsse::verify(&envelope, cx.key) {
        Ok(statement) => statement,
        Err(e) => return Ok(problem(e.to_string())),
    };
    let statement = match dsse::Statement::parse(&verified) {
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
        verified,
    )))
}

/// The statements of type `predicate_type` attached to `subject` whose envelopes verify with the
/// key and name it (the attestations step reports those that do not), as JSON.
fn verified_statements(cx: &Context, subject: &Digest, predicate_type: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for entry in cx.repo.referrers(subject)?.manifests() {
        let artifact_type = entry.artifact_type().as_ref().map(|t| t.to_string());
        if artifact_type.as_deref() != Some(referrers::IN_TOTO_ARTIFACT_TYPE) {
            continue;
        }
        if let Ok((stated, _, bytes)) = attestation(cx, subject, entry.digest())?
            && stated == predicate_type
        {
            out.push(serde_json::from_slice(&bytes).context("a verified statement is JSON")?);
        }
    }
    Ok(out)
}

/// Each platform with an SBOM: the binary in its layer embeds exactly the crates the SBOM lists.
fn sboms(cx: &Context) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for entry in &cx.platforms {
        let platform = platform_name(entry);
        let boms = verified_statements(cx, entry.digest(), CYCLONEDX_BOM)?;
        if boms.is_empty() {
            continue;
        }
        let name = format!("sbom {platform}");
        let binary = match platform_binary(cx, entry.digest())? {
            Ok(binary) => binary,
            Err(problem) => {
                checks.push(Check {
                    name,
                    result: Err(Failure::Binary { platform, problem }),
                });
                continue;
            }
        };
        let embedded = match embedded_dependencies(&binary) {
            Ok(embedded) => embedded,
            Err(e) => {
                checks.push(Check {
                    name,
                    result: Err(Failure::Binary {
                        platform,
                        problem: format!("/{BINARY_PATH}: {e:#}"),
                    }),
                });
                continue;
            }
        };
        for bom in boms {
            let differences = sbom_differences(&embedded, &bom["predicate"])?;
            let result = if differences.is_empty() {
                Ok(format!(
                    "lists the {} crates /{BINARY_PATH} embeds",
                    embedded.packages.len()
                ))
            } else {
                Err(Failure::SbomDiffers {
                    platform: platform.clone(),
                    differences,
                })
            };
            checks.push(Check {
                name: name.clone(),
                result,
            });
        }
    }
    Ok(checks)
}

/// The binary of the platform manifest `digest`, read from its one layer; or why it cannot be.
fn platform_binary(cx: &Context, digest: &Digest) -> Result<Result<Vec<u8>, String>> {
    let Some(fetched) = cx
        .repo
        .block_on(cx.repo.manifest(&Reference::Digest(digest.clone()), &Quiet))?
    else {
        return Ok(Err(format!("the manifest {digest} is not in the registry")));
    };
    let manifest: ImageManifest = match serde_json::from_slice(&fetched.bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("the manifest {digest} is not valid: {e}"))),
    };
    let [layer] = manifest.layers().as_slice() else {
        return Ok(Err(format!(
            "{} layers, `image build` writes one",
            manifest.layers().len()
        )));
    };
    let bytes = cx.repo.blob(layer.digest())?;
    Ok(binary_from_layer(&bytes).map_err(|e| {
        // A layer that is not a tar makes the reader quote its bytes: keep the text only.
        let why: String = format!("{e:#}")
            .chars()
            .take_while(|c| !c.is_control() && *c != char::REPLACEMENT_CHARACTER)
            .collect();
        format!(
            "reading /{BINARY_PATH} from the layer {}: {why}",
            short_digest(layer.digest())
        )
    }))
}

/// What differs between the crates a binary embeds and the components a CycloneDX document
/// lists (name, version and purl; the workspace's crates have no purl): one line per crate.
pub fn sbom_differences(
    embedded: &auditable_serde::VersionInfo,
    bom: &Value,
) -> Result<Vec<String>> {
    type Listed = BTreeSet<(String, String, Option<String>)>;
    let expected: Listed = embedded
        .packages
        .iter()
        .map(|p| {
            let version = p.version.to_string();
            let purl = match p.source {
                auditable_serde::Source::Local => None,
                _ => Some(sbom::crate_purl(&p.name, &version)),
            };
            (p.name.clone(), version, purl)
        })
        .collect();
    let listed: Listed = sbom::listed_crates(bom)?;
    let name_version = |set: &Listed, n: &str, v: &str| {
        set.iter()
            .find(|(name, version, _)| name == n && version == v)
            .map(|(_, _, purl)| purl.clone())
    };
    let mut out = Vec::new();
    for (name, version, purl) in expected.difference(&listed) {
        match name_version(&listed, name, version) {
            Some(other) => out.push(format!(
                "{name} {version}: purl {}, expected {}",
                other.as_deref().unwrap_or("none"),
                purl.as_deref().unwrap_or("none")
            )),
            None => out.push(format!("{name} {version}: embedded, not in the SBOM")),
        }
    }
    for (name, version, _) in listed.difference(&expected) {
        if name_version(&expected, name, version).is_none() {
            out.push(format!("{name} {version}: in the SBOM, not embedded"));
        }
    }
    Ok(out)
}

/// What the published image was built from and with: the rebuild's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildParams {
    pub commit: String,
    pub version: String,
    pub source_date_epoch: u64,
    pub platforms: Vec<Platform>,
    pub profile: String,
    /// Where they were read: the provenance or the index's annotations.
    pub from: &'static str,
}

impl BuildParams {
    /// From a SLSA provenance predicate written by `attest` (its external parameters).
    pub fn from_provenance(predicate: &Value) -> Result<BuildParams> {
        let external = &predicate["buildDefinition"]["externalParameters"];
        let text = |key: &str| {
            external[key]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the provenance has no externalParameters.{key}"))
        };
        let platforms = external["platforms"]
            .as_array()
            .context("the provenance has no externalParameters.platforms")?
            .iter()
            .map(|p| {
                p.as_str()
                    .context("externalParameters.platforms: not a string")?
                    .parse()
            })
            .collect::<Result<Vec<Platform>>>()?;
        Ok(BuildParams {
            commit: text("revision")?,
            version: text("version")?,
            source_date_epoch: external["sourceDateEpoch"]
                .as_u64()
                .context("the provenance has no externalParameters.sourceDateEpoch")?,
            platforms,
            profile: text("profile")?,
            from: "the provenance",
        })
    }

    /// From the index's annotations and its platforms (an image without provenance).
    pub fn from_index(index: &ImageIndex) -> Result<BuildParams> {
        let annotations = index.annotations().clone().unwrap_or_default();
        let annotation = |key: &str| {
            annotations
                .get(key)
                .cloned()
                .with_context(|| format!("the image index has no `{key}` annotation"))
        };
        let platforms = index
            .manifests()
            .iter()
            .map(|m| platform_name(m).parse())
            .collect::<Result<Vec<Platform>>>()?;
        Ok(BuildParams {
            commit: annotation(ANNOTATION_REVISION)?,
            version: annotation(ANNOTATION_VERSION)?,
            source_date_epoch: provenance::epoch_of_rfc3339(&annotation(ANNOTATION_CREATED)?)?,
            platforms,
            profile: "release".to_owned(),
            from: "the index annotations",
        })
    }
}

/// With `--rebuild`: the commit rebuilt in a temporary worktree gives the published index digest.
fn rebuild(cx: &Context) -> Result<Vec<Check>> {
    let Some(rebuilder) = cx.rebuild else {
        return Ok(Vec::new());
    };
    if !is_index(&cx.subject.media_type) {
        return Ok(vec![Check {
            name: "rebuild".to_owned(),
            result: Ok("not an image index (a chart, one platform): nothing to rebuild".into()),
        }]);
    }
    let index: ImageIndex = serde_json::from_slice(&cx.subject.bytes)?;
    let provenance = verified_statements(cx, &cx.subject.digest, SLSA_PROVENANCE_V1)?;
    let params = match provenance.first() {
        Some(statement) => BuildParams::from_provenance(&statement["predicate"])?,
        None => BuildParams::from_index(&index)?,
    };
    // It reaches git's command line: a commit id, not an option or a revision expression.
    let commit = &params.commit;
    if !(matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit())) {
        bail!(
            "--rebuild: {} names `{commit}` as the commit, not a git commit id",
            params.from
        );
    }
    let rebuilt = rebuilder.image(&params)?;
    let rebuilt_digest = rebuilt.index.digest.clone();
    let result = if rebuilt_digest == cx.subject.digest.to_string() {
        Ok(format!(
            "{} ({}) rebuilt to the same index digest",
            short_commit(&params.commit),
            params.from
        ))
    } else {
        Err(Failure::RebuildDiffers {
            commit: params.commit.clone(),
            published: cx.subject.digest.clone(),
            rebuilt: rebuilt_digest,
            differences: image_differences(cx, &index, &rebuilt)?,
        })
    };
    Ok(vec![Check {
        name: "rebuild".to_owned(),
        result,
    }])
}

fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// A temporary directory holding a detached git worktree; both go when it is dropped, also
/// when the build in it failed.
struct TempWorktree {
    repo: PathBuf,
    dir: PathBuf,
}

impl TempWorktree {
    fn checkout(sh: &Shell, repo: &Path, commit: &str) -> Result<TempWorktree> {
        let _root = sh.push_dir(repo);
        let object = format!("{commit}^{{commit}}");
        cmd!(sh, "git cat-file -e {object}")
            .quiet()
            .ignore_stderr()
            .run()
            .with_context(|| {
                format!(
                    "--rebuild: commit {commit} is not in the git repository at {} (fetch it \
                     first)",
                    repo.display()
                )
            })?;
        let dir = std::env::temp_dir().join(format!(
            "xtask-verify-{}-{}",
            std::process::id(),
            short_commit(commit)
        ));
        let worktree = TempWorktree {
            repo: repo.to_owned(),
            dir,
        };
        let checkout = worktree.checkout_dir();
        cmd!(sh, "git worktree add --quiet --detach {checkout} {commit}")
            .run()
            .with_context(|| format!("--rebuild: checking out {commit}"))?;
        Ok(worktree)
    }

    fn checkout_dir(&self) -> PathBuf {
        self.dir.join("checkout")
    }
}

impl Drop for TempWorktree {
    fn drop(&mut self) {
        let checkout = self.checkout_dir();
        if let Ok(sh) = Shell::new() {
            sh.change_dir(&self.repo);
            let removed = cmd!(sh, "git worktree remove --force {checkout}")
                .quiet()
                .ignore_stderr()
                .run();
            let _ = std::fs::remove_dir_all(&self.dir);
            if removed.is_err() {
                // Only entries whose directory is gone are pruned: this one's now.
                let _ = cmd!(sh, "git worktree prune").quiet().run();
            }
        }
    }
}

/// Checks out `params.commit` into a temporary worktree and builds the image there as published.
fn rebuild_image(rebuilder: &Rebuilder, params: &BuildParams) -> Result<crate::image::oci::Image> {
    let worktree = TempWorktree::checkout(rebuilder.sh, &rebuilder.workspace.root, &params.commit)?;
    let checkout = worktree.checkout_dir();
    let platforms: Vec<&str> = params.platforms.iter().map(|p| p.name()).collect();
    eprintln!(
        "verify: rebuilding {} (from {}: version {}, SOURCE_DATE_EPOCH {}, {}, profile {}) in {}; \
         this takes minutes",
        params.commit,
        params.from,
        params.version,
        params.source_date_epoch,
        platforms.join(", "),
        params.profile,
        checkout.display()
    );
    let sh = Shell::new()?;
    sh.change_dir(&checkout);
    // This checkout's target directory: the dependencies are compiled already, and the build's
    // paths are remapped, so where the target directory is does not reach the bytes.
    sh.set_var("CARGO_TARGET_DIR", &rebuilder.workspace.target_directory);
    let workspace = Workspace::load(&sh)
        .with_context(|| format!("--rebuild: reading the workspace at {}", checkout.display()))?;
    let built = Build {
        platform: params.platforms.clone(),
        output: Some(worktree.dir.join("oci")),
        version: Some(params.version.clone()),
        source_date_epoch: Some(params.source_date_epoch),
        profile: params.profile.clone(),
    }
    .build(&sh, &workspace)
    .with_context(|| format!("--rebuild: building {}", params.commit))?;
    eprintln!("verify: rebuilt index {}", built.image.index.digest);
    Ok(built.image)
}

/// What differs between the published index and a rebuild: platform manifests, their layers and
/// configs, or the index itself.
fn image_differences(
    cx: &Context,
    published: &ImageIndex,
    rebuilt: &crate::image::oci::Image,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in &rebuilt.platforms {
        let name = p.platform.name();
        let Some(entry) = published
            .manifests()
            .iter()
            .find(|m| platform_name(m) == name)
        else {
            out.push(format!("{name}: rebuilt, not in the published index"));
            continue;
        };
        if entry.digest().to_string() == p.manifest.digest {
            continue;
        }
        let fetched = cx.repo.block_on(
            cx.repo
                .manifest(&Reference::Digest(entry.digest().clone()), &Quiet),
        )?;
        let Some(manifest) =
            fetched.and_then(|f| serde_json::from_slice::<ImageManifest>(&f.bytes).ok())
        else {
            out.push(format!(
                "{name}: platform manifest {} is not a readable manifest",
                entry.digest()
            ));
            continue;
        };
        let mut found = false;
        let layers = manifest.layers();
        if layers.len() != 1 {
            out.push(format!(
                "{name}: {} layers published, 1 rebuilt",
                layers.len()
            ));
            found = true;
        } else if layers[0].digest().to_string() != p.layer.digest {
            out.push(format!(
                "{name}: layer changed (published {}, rebuilt {})",
                layers[0].digest(),
                p.layer.digest
            ));
            found = true;
        }
        if manifest.config().digest().to_string() != p.config.digest {
            out.push(format!(
                "{name}: config differs (published {}, rebuilt {})",
                manifest.config().digest(),
                p.config.digest
            ));
            found = true;
        }
        if !found {
            out.push(format!(
                "{name}: platform manifest differs (published {}, rebuilt {}) with the same \
                 layer and config",
                entry.digest(),
                p.manifest.digest
            ));
        }
    }
    for entry in published.manifests() {
        let name = platform_name(entry);
        if !rebuilt.platforms.iter().any(|p| p.platform.name() == name) {
            out.push(format!("{name}: published, not rebuilt"));
        }
    }
    if out.is_empty() {
        out.push("the index itself differs (same platform manifests)".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn embedded() -> auditable_serde::VersionInfo {
        let list = json!({"packages": [
            {"name": "app", "version": "0.1.0", "source": "local", "root": true,
             "dependencies": [1, 2]},
            {"name": "itoa", "version": "1.0.19", "source": "crates.io"},
            {"name": "serde", "version": "1.0.200", "source": "crates.io"},
        ]});
        serde_json::from_str(&list.to_string()).unwrap()
    }

    fn bom(components: Value) -> Value {
        json!({ "components": components })
    }

    #[test]
    fn sbom_matching_the_binary_has_no_differences() {
        let listed = bom(json!([
            {"name": "app", "version": "0.1.0"},
            {"name": "itoa", "version": "1.0.19", "purl": "pkg:cargo/itoa@1.0.19"},
            {"name": "serde", "version": "1.0.200", "purl": "pkg:cargo/serde@1.0.200"},
        ]));
        assert_eq!(
            sbom_differences(&embedded(), &listed).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_sbom_difference_names_crate_and_version() {
        let listed = bom(json!([
            {"name": "app", "version": "0.1.0"},
            {"name": "itoa", "version": "1.0.18", "purl": "pkg:cargo/itoa@1.0.18"},
            {"name": "serde", "version": "1.0.200", "purl": "pkg:cargo/serde@1.0.199"},
        ]));
        let differences = sbom_differences(&embedded(), &listed).unwrap();
        assert_eq!(
            differences,
            [
                "itoa 1.0.19: embedded, not in the SBOM",
                "serde 1.0.200: purl pkg:cargo/serde@1.0.199, expected pkg:cargo/serde@1.0.200",
                "itoa 1.0.18: in the SBOM, not embedded",
            ]
        );
        let failure = Failure::SbomDiffers {
            platform: "linux/amd64".into(),
            differences,
        };
        assert!(failure.to_string().starts_with(
            "linux/amd64: the SBOM does not list what the binary embeds: itoa 1.0.19"
        ));
        let err = sbom_differences(&embedded(), &json!({})).unwrap_err();
        assert!(err.to_string().contains("no `components`"), "{err}");
    }

    #[test]
    fn rebuild_parameters_come_from_the_provenance_written_by_attest() {
        let facts = provenance::BuildFacts {
            repository: "https://github.com/acme/visit-tracker".into(),
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            git_ref: None,
            version: "1.2.3".into(),
            platforms: vec![Platform::Amd64],
            source_date_epoch: 1_700_000_000,
            profile: "release".into(),
            rustc_verbose_version: "rustc 1.95.0 (59807616e 2026-04-14)\n".into(),
            tools: Vec::new(),
            lockfile_sha256: "00".repeat(32),
            binaries: Vec::new(),
        };
        let builder = provenance::Builder::from_env(|_| None);
        let predicate = provenance::predicate(&facts, &builder, provenance::BuildTimes::default());
        let params = BuildParams::from_provenance(&predicate).unwrap();
        assert_eq!(
            params,
            BuildParams {
                commit: facts.revision.clone(),
                version: "1.2.3".into(),
                source_date_epoch: 1_700_000_000,
                platforms: vec![Platform::Amd64],
                profile: "release".into(),
                from: "the provenance",
            }
        );
        let err = BuildParams::from_provenance(&json!({})).unwrap_err();
        assert!(
            err.to_string().contains("externalParameters.platforms"),
            "{err}"
        );
    }

    #[test]
    fn cli_takes_rebuild() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "cargo xtask",
            "verify",
            "localhost:5000/team/app:1.2.3",
            "--key",
            "cosign.pub",
            "--rebuild",
        ])
        .unwrap();
        assert!(matches!(
            cli.task,
            crate::Task::Verify(Verify { rebuild: true, .. })
        ));
    }
}
