//! `cargo xtask sign`: cosign-format signatures of images and charts, by digest, stored as cosign
//! stores them, so `cosign verify --key` (and containers/image) accept them; and `--generate-key`.
//!
//! The pieces: [`keys`] (key pairs, COSIGN_PASSWORD), [`simple`] (the signed payload), [`attach`]
//! (cosign's `.sig`/`.att` tags), [`dsse`] (envelopes of in-toto statements), [`referrers`] (OCI
//! 1.1 artifacts and the referrers tag schema), [`target`] (what a command line names). The other
//! two tasks: [`attest`] and [`verify`]. [`cosign`] installs the cosign the tests check us with.

pub mod attach;
pub mod attest;
pub mod cosign;
pub mod dsse;
pub mod keys;
pub mod referrers;
pub mod simple;
pub mod target;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use oci_spec::image::Digest;
use p256::ecdsa::SigningKey;
use xshell::Shell;

use crate::registry::name::Reference;
use crate::registry::progress::Quiet;
use crate::registry::{self, Blob, Fetched, Progress, RegistryArgs, Repo, Tag};
use crate::term::PushProgress;
use crate::tools::Needs;
use target::ImageRef;

/// `verify --rebuild` checks a commit out (git) and builds the image as `image build` does.
pub const VERIFY_NEEDS: Needs = Needs {
    tools: &[&crate::tools::GIT],
    tasks: &[&crate::image::BUILD_NEEDS],
};

/// `sign`, `attach`, `verify` (and `attest`, which reads a layout and Cargo.lock) talk to registries and do their cryptography in-process.
pub const NEEDS: Needs = Needs {
    tools: &[],
    tasks: &[],
};

/// Signs images and charts by digest with a cosign key, or writes a new key pair.
#[derive(Debug, Args)]
pub struct Sign {
    /// What to sign: HOST/REPO:TAG or HOST/REPO@sha256:<hex> (an image index, an image, a chart),
    /// each signed by the digest it names now.
    #[arg(value_name = "REF", required_unless_present = "generate_key")]
    pub refs: Vec<ImageRef>,
    /// The private key (cosign format), a file or `env://NAME` (the key's text in the variable
    /// NAME); its passphrase comes from COSIGN_PASSWORD.
    #[arg(long, value_name = "FILE", required_unless_present = "generate_key")]
    pub key: Option<PathBuf>,
    /// Write a new key pair instead: PREFIX.key (encrypted with COSIGN_PASSWORD) and PREFIX.pub.
    #[arg(long, conflicts_with_all = ["refs", "key"])]
    pub generate_key: bool,
    /// Where --generate-key writes: PREFIX.key and PREFIX.pub.
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "cosign",
        requires = "generate_key"
    )]
    pub output: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Sign {
    pub fn run(self, sh: &Shell) -> Result<()> {
        if self.generate_key {
            let password = keys::password_from_env()?;
            let prefix = sh.current_dir().join(&self.output);
            let (private, public) = keys::write_key_pair(&prefix, &password)?;
            eprintln!(
                "wrote {} (encrypted with {}) and {}",
                private.display(),
                keys::PASSWORD_ENV,
                public.display()
            );
            println!("{}", public.display());
            return Ok(());
        }
        // The key first: a missing file or a wrong passphrase fails before anything is sent.
        let key = keys::load_private_key(
            &sh.current_dir(),
            self.key.as_ref().expect("clap requires --key"),
        )?;
        // Then every reference, so one that does not resolve stops the run before any push.
        let mut resolved = Vec::new();
        for target in &self.refs {
            let repo = Repo::open(&self.registry, &target.repo)?;
            let subject = resolve(&repo, target)?;
            resolved.push((target, repo, subject));
        }
        for (target, repo, subject) in resolved {
            let signed = sign(&repo, target, &subject, &key, Arc::new(PushProgress::new()))?;
            let what = if signed.pushed {
                "signed"
            } else {
                "already signed with this key:"
            };
            eprintln!("{what} {}@{} ({})", target.repo, subject.digest, signed.tag);
            println!("{}:{}", target.repo, signed.tag);
        }
        Ok(())
    }
}

/// The manifest `target` names now, or an error saying it is not there.
pub fn resolve(repo: &Repo, target: &ImageRef) -> Result<Fetched> {
    match repo.block_on(repo.manifest(&target.reference(), &Quiet))? {
        Some(fetched) => Ok(fetched),
        None => bail!("{target}: no such manifest in the registry (nothing to sign or verify)"),
    }
}

/// What signing did.
#[derive(Debug, Clone)]
pub struct Signed {
    pub digest: Digest,
    /// The signature tag, `sha256-<hex>.sig`.
    pub tag: Tag,
    /// False when the tag already held this signature (nothing was sent).
    pub pushed: bool,
}

/// Signs `subject` (the manifest `target` resolved to) as cosign does and pushes the signature
/// under its `.sig` tag, appended to the signatures already there.
pub fn sign(
    repo: &Repo,
    target: &ImageRef,
    subject: &Fetched,
    key: &SigningKey,
    progress: Arc<dyn Progress>,
) -> Result<Signed> {
    let payload = simple::payload(&target.identity(), &subject.digest);
    let signature = keys::sign(key, &payload);
    let layer = attach::Layer {
        blob: Blob::from_bytes(payload.clone(), Some("signature")),
        media_type: simple::MEDIA_TYPE.to_owned(),
        annotations: BTreeMap::from([(
            simple::SIGNATURE_ANNOTATION.to_owned(),
            B64.encode(&signature),
        )]),
    };
    let tag = attach::signature_tag(&subject.digest);
    let existing = repo.block_on(repo.manifest(&Reference::Tag(tag.clone()), &Quiet))?;
    // cosign's duplicate test: the same payload, already signed by this key.
    let is_duplicate = |d: &oci_spec::image::Descriptor, new: &attach::Layer| {
        attach::same_layer(d, new, simple::SIGNATURE_ANNOTATION)
            && d.annotations()
                .as_ref()
                .and_then(|a| a.get(simple::SIGNATURE_ANNOTATION))
                .and_then(|s| B64.decode(s).ok())
                .is_some_and(|s| keys::verify(key.verifying_key(), &payload, &s))
    };
    let set = attach::append(tag.clone(), existing.as_ref(), vec![layer], is_duplicate)
        .with_context(|| format!("adding to the signatures under {tag}"))?;
    let pushed = set.is_some();
    if let Some(set) = set {
        registry::push(repo, &set, progress)?;
    }
    Ok(Signed {
        digest: subject.digest.clone(),
        tag,
        pushed,
    })
}
