//! `cargo xtask attest`: the evidence a release carries for a built image layout — a CycloneDX SBOM
//! per platform (from what each binary embeds) and the SLSA provenance of the image index.
//!
//! Library surface: [`statement`] (in-toto Statement v1, what DSSE signs), [`sbom`] and
//! [`provenance`] (pure builders), [`attest`] (reads a layout, writes the files, returns the
//! statements to sign). Git, cargo, rustc and the disk are here; the documents are pure.

pub mod provenance;
pub mod sbom;
pub mod statement;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use oci_spec::image::{
    ANNOTATION_CREATED, ANNOTATION_REVISION, ANNOTATION_SOURCE, ANNOTATION_TITLE,
    ANNOTATION_VERSION,
};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::image::build::profile_dir;
use crate::image::layout::Layout;
use crate::image::oci::{BINARY_PATH, Platform};
use crate::workspace::Workspace;
use crate::{cargo, tools};
use provenance::{BuildFacts, BuildTimes, Builder};
use statement::{CYCLONEDX_BOM, Statement, Subject};

/// Write the SBOM of each platform and the provenance of the image index for a built layout.
#[derive(Debug, Args)]
pub struct Attest {
    /// OCI image layout written by `image build` from this checkout
    /// [default: <target-dir>/oci/visit-tracker].
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
    /// The layout's image tag [default: its only image].
    #[arg(long)]
    pub tag: Option<String>,
    /// Where to write sbom-<os>-<arch>.cdx.json (with its statement, sbom-<os>-<arch>.intoto.json)
    /// and provenance.intoto.json
    /// [default: <target-dir>/attest].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The image's name as the statements' subject, e.g. ghcr.io/acme/visit-tracker
    /// [default: the image title, visit-tracker].
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// The git ref that was built, e.g. refs/tags/v1.2.3 (recorded in the provenance).
    #[arg(long, env = "GITHUB_REF", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Cargo profile the layout's binaries were built with; they must be the ones in target/.
    #[arg(long, default_value = "release")]
    pub profile: String,
    /// When the build started, in seconds since the epoch (recorded in the provenance).
    #[arg(long, value_name = "SECONDS")]
    pub started_on: Option<u64>,
    /// When the build finished, in seconds since the epoch (recorded in the provenance).
    #[arg(long, value_name = "SECONDS")]
    pub finished_on: Option<u64>,
}

/// What `attest` wrote, with the statements a signer wraps in DSSE envelopes.
#[derive(Debug, Clone)]
pub struct Attested {
    /// `sha256:<hex>` of the image index.
    pub index_digest: String,
    pub sboms: Vec<PlatformSbom>,
    /// provenance.intoto.json: the statement's bytes.
    pub provenance_path: PathBuf,
    pub provenance: Statement,
}

/// One platform's SBOM.
#[derive(Debug, Clone)]
pub struct PlatformSbom {
    pub platform: Platform,
    /// `sha256:<hex>` of the platform manifest: the SBOM's subject.
    pub manifest_digest: String,
    pub path: PathBuf,
    pub bom: Value,
    /// The SBOM as an in-toto statement about the platform manifest (predicate: the BOM).
    pub statement: Statement,
    /// sbom-<os>-<arch>.intoto.json: the statement's bytes, what `attach --statement` signs.
    pub statement_path: PathBuf,
}

impl Attest {
    pub fn run(self, sh: &Shell) -> Result<()> {
        self.run_attested(sh).map(drop)
    }

    /// Does all `run` does (the files, the report, `$GITHUB_OUTPUT`) and returns what was
    /// written, so `release` signs and records it.
    pub fn run_attested(self, sh: &Shell) -> Result<Attested> {
        let workspace = Workspace::current()?;
        let attested = self.attest(sh, workspace)?;
        let mut outputs = vec![(
            "provenance".to_owned(),
            attested.provenance_path.display().to_string(),
        )];
        println!("index:      {}", attested.index_digest);
        for s in &attested.sboms {
            println!(
                "sbom:       {} ({} {})",
                s.path.display(),
                s.platform,
                s.manifest_digest
            );
            let key = s.platform.name().replace('/', "-");
            outputs.push((format!("sbom-{key}"), s.path.display().to_string()));
            outputs.push((format!("digest-{key}"), s.manifest_digest.clone()));
        }
        println!("provenance: {}", attested.provenance_path.display());
        let outputs: Vec<(&str, &str)> = outputs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        crate::github_output(&outputs)?;
        Ok(attested)
    }

    /// Reads the layout, checks it was built from this checkout, and writes the SBOMs and the
    /// provenance (each file atomically).
    pub fn attest(self, sh: &Shell, workspace: &Workspace) -> Result<Attested> {
        let layout_dir = self.layout.unwrap_or_else(|| workspace.oci_layout());
        let out = self
            .out
            .unwrap_or_else(|| workspace.target_directory.join("attest"));
        let layout = Layout::open(&layout_dir)?;
        let entry = layout.entry(self.tag.as_deref())?.clone();
        let index = layout.image_index(&entry)?;
        let annotations = index.annotations().clone().unwrap_or_default();
        let annotation = |key: &str| {
            annotations.get(key).cloned().with_context(|| {
                format!(
                    "{}: the image index has no `{key}` annotation (not built by `image build`?)",
                    layout_dir.display()
                )
            })
        };
        let revision = annotation(ANNOTATION_REVISION)?;
        let head = cmd!(sh, "git rev-parse HEAD").quiet().read()?;
        ensure!(
            revision == head,
            "{} was built from {revision}, but this checkout is at {head}: attest in the checkout \
             that built it",
            layout_dir.display()
        );
        // The lockfile of the commit, not of the working tree: what a rebuild of the commit uses.
        let lock_bytes = cmd!(sh, "git show {revision}:Cargo.lock")
            .quiet()
            .output()
            .with_context(|| format!("reading Cargo.lock at {revision}"))?
            .stdout;
        let lockfile = String::from_utf8(lock_bytes.clone()).context("Cargo.lock is not UTF-8")?;
        let name = self.image.unwrap_or(annotation(ANNOTATION_TITLE)?);
        let created = provenance::epoch_of_rfc3339(&annotation(ANNOTATION_CREATED)?)?;
        let facts = sbom::CrateFacts {
            checksums: lockfile_checksums(&lockfile)?,
            licenses: licenses(sh)?,
            repository: Some(annotation(ANNOTATION_SOURCE)?),
        };
        let rustc = rustc_verbose_version(sh)?;

        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let mut sboms = Vec::new();
        let mut binaries = Vec::new();
        for platform_entry in layout.platforms(&index)? {
            let descriptor = &platform_entry.descriptor;
            let oci_platform = descriptor.platform().as_ref().with_context(|| {
                format!("{}: index entry without platform", descriptor.digest())
            })?;
            let platform: Platform =
                format!("{}/{}", oci_platform.os(), oci_platform.architecture()).parse()?;
            let [layer] = platform_entry.manifest.layers().as_slice() else {
                bail!("{platform}: expected one layer, as `image build` writes");
            };
            let binary = binary_from_layer(&layout.read_blob(layer)?)
                .with_context(|| format!("{platform}: reading /{BINARY_PATH} from the layer"))?;
            let built = workspace
                .target_directory
                .join(platform.rust_target())
                .join(profile_dir(&self.profile))
                .join(crate::image::build::PACKAGE);
            ensure!(
                std::fs::read(&built).ok().as_deref() == Some(binary.as_slice()),
                "{platform}: the image's binary is not {} (built with another --profile than `{}`, \
                 or rebuilt since?): attest right after `cargo xtask image build`",
                built.display(),
                self.profile
            );
            check_toolchain(&binary, &rustc)
                .with_context(|| format!("{platform}: /{BINARY_PATH}"))?;
            let embedded = embedded_dependencies(&binary)
                .with_context(|| format!("{platform}: /{BINARY_PATH}"))?;
            let manifest_digest = descriptor.digest().to_string();
            let binary_sha256 = tools::hex_digest(&binary);
            let bom = sbom::cyclonedx(
                &sbom::PlatformImage {
                    name: &annotation(ANNOTATION_TITLE)?,
                    platform,
                    manifest_digest: &manifest_digest,
                    created,
                    binary_sha256: &binary_sha256,
                    embedded: &embedded,
                },
                &facts,
            )?;
            let path = out.join(format!(
                "sbom-{}.cdx.json",
                platform.name().replace('/', "-")
            ));
            let mut text = serde_json::to_vec_pretty(&bom)?;
            text.push(b'\n');
            tools::write_atomic(&path, &text)?;
            let statement = Statement::new(
                vec![Subject::sha256(&name, &manifest_digest)?],
                CYCLONEDX_BOM,
                bom.clone(),
            );
            let statement_path = out.join(format!(
                "sbom-{}.intoto.json",
                platform.name().replace('/', "-")
            ));
            tools::write_atomic(&statement_path, &statement.to_bytes())?;
            binaries.push((platform, binary_sha256));
            sboms.push(PlatformSbom {
                platform,
                manifest_digest,
                path,
                bom,
                statement,
                statement_path,
            });
        }

        let index_digest = entry.digest().to_string();
        let facts = BuildFacts {
            repository: annotation(ANNOTATION_SOURCE)?,
            revision,
            git_ref: self.git_ref.filter(|r| !r.is_empty()),
            version: annotation(ANNOTATION_VERSION)?,
            platforms: binaries.iter().map(|(p, _)| *p).collect(),
            source_date_epoch: created,
            profile: self.profile,
            rustc_verbose_version: rustc,
            tools: vec![(
                "cargo-auditable".into(),
                crate::image::auditable::VERSION.into(),
            )],
            lockfile_sha256: tools::hex_digest(&lock_bytes),
            binaries,
        };
        let builder = Builder::from_env(|name| std::env::var(name).ok());
        let times = BuildTimes {
            started_on: self.started_on,
            finished_on: self.finished_on,
        };
        let provenance = provenance::statement(&name, &index_digest, &facts, &builder, times)?;
        let provenance_path = out.join("provenance.intoto.json");
        tools::write_atomic(&provenance_path, &provenance.to_bytes())?;
        Ok(Attested {
            index_digest,
            sboms,
            provenance_path,
            provenance,
        })
    }
}

/// The file at [`BINARY_PATH`] in a gzip-compressed layer tar.
pub fn binary_from_layer(layer: &[u8]) -> Result<Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() == BINARY_PATH {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
    }
    bail!("the layer has no {BINARY_PATH}")
}

/// The dependency list cargo auditable embedded in `binary` (its `.dep-v0` section).
pub fn embedded_dependencies(binary: &[u8]) -> Result<auditable_serde::VersionInfo> {
    // The app's list is a few KiB; the limits only stop a malicious binary from exhausting memory.
    auditable_info::audit_info_from_slice(binary, 8 << 20).map_err(|e| {
        anyhow::anyhow!(
            "no readable cargo-auditable dependency list ({e}): build with `cargo xtask image build`"
        )
    })
}

/// `(name, version)` → sha256 checksum of every registry package in a Cargo.lock.
pub fn lockfile_checksums(lockfile: &str) -> Result<BTreeMap<(String, String), String>> {
    let lock: rustsec::cargo_lock::Lockfile = lockfile.parse().context("parsing Cargo.lock")?;
    Ok(lock
        .packages
        .into_iter()
        .filter_map(|p| {
            let checksum = p.checksum?.to_string();
            Some(((p.name.to_string(), p.version.to_string()), checksum))
        })
        .collect())
}

/// `(name, version)` → license expression of every package `cargo metadata` knows.
fn licenses(sh: &Shell) -> Result<BTreeMap<(String, String), String>> {
    let cargo = cargo();
    let json = cmd!(sh, "{cargo} metadata --format-version 1 --locked")
        .quiet()
        .read()
        .context("cargo metadata (crate licenses for the SBOM)")?;
    let metadata: Value = serde_json::from_str(&json)?;
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                (
                    p["name"].as_str()?.to_owned(),
                    p["version"].as_str()?.to_owned(),
                ),
                p["license"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

fn rustc_verbose_version(sh: &Shell) -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    cmd!(sh, "{rustc} -vV")
        .quiet()
        .read()
        .context("running `rustc -vV` (the toolchain goes into the provenance)")
}

/// The binary's `.comment` names the rustc that compiled it (`rustc version 1.95.0 (59807616e
/// 2026-04-14)`): it must be the rustc the provenance names.
fn check_toolchain(binary: &[u8], rustc_verbose_version: &str) -> Result<()> {
    let here = rustc_verbose_version.lines().next().unwrap_or_default();
    let Some(version) = here.strip_prefix("rustc ") else {
        bail!("`rustc -vV` printed `{here}`");
    };
    let needle = b"rustc version ";
    let found = binary
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| {
            let rest = &binary[at + needle.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        });
    match found {
        Some(built) if built != version => bail!(
            "built with rustc {built}, but the rustc here is {version}: attest with the \
             toolchain that built the image"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockfile_checksums_cover_registry_packages_only() {
        let lock = r#"version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["itoa"]

[[package]]
name = "itoa"
version = "1.0.19"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"
"#;
        let sums = lockfile_checksums(lock).unwrap();
        assert_eq!(sums.len(), 1);
        assert_eq!(
            sums[&("itoa".to_owned(), "1.0.19".to_owned())],
            "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"
        );
    }

    #[test]
    fn toolchain_mismatch_names_both_versions() {
        let rustc = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n";
        let binary = b"\x7fELF...\0rustc version 1.94.0 (aaaaaaaaa 2026-01-01)\0Linker: LLD";
        let err = check_toolchain(binary, rustc).unwrap_err().to_string();
        assert!(
            err.contains("rustc 1.94.0 (aaaaaaaaa 2026-01-01), but the rustc here is 1.95.0"),
            "{err}"
        );
        let same = b"\0rustc version 1.95.0 (59807616e 2026-04-14)\0";
        check_toolchain(same, rustc).unwrap();
        check_toolchain(b"no comment section", rustc).unwrap();
    }

    #[test]
    fn binary_is_found_in_the_layer_written_by_the_image_assembly() {
        let metadata = crate::image::oci::Metadata {
            title: "t".into(),
            description: "d".into(),
            source: "s".into(),
            url: "u".into(),
            licenses: "MIT".into(),
            version: "0.1.0".into(),
            revision: "r".into(),
            created: 0,
        };
        let image =
            crate::image::oci::assemble(&metadata, &[(Platform::Amd64, b"the binary".to_vec())])
                .unwrap();
        assert_eq!(
            binary_from_layer(&image.platforms[0].layer.bytes).unwrap(),
            b"the binary"
        );
        let err = embedded_dependencies(b"the binary")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no readable cargo-auditable dependency list"),
            "{err}"
        );
    }
}
