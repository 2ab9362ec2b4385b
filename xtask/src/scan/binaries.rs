//! Audit of what ships: the dependency list each image binary embeds (cargo auditable) checked
//! against the RustSec advisory database with RustSec's own library, the code `cargo audit bin`
//! runs, so the scan covers the binaries as built, not only Cargo.lock.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustsec::Database;
use rustsec::advisory::Informational;
use rustsec::binary_scanning::{BinaryReport, load_deps_from_binary};
use rustsec::report::{Report, Settings};
use xshell::{Shell, cmd};

use super::deps::{CARGO_DENY, RUSTSEC_URL, advisory_db_dir, checkout_dir_name};
use super::{Finding, relative};
use crate::attest::binary_from_layer;
use crate::image::layout::Layout;

const TOOL: &str = "rustsec";

/// A binary to audit and how findings name it.
#[derive(Debug)]
pub struct Binary {
    /// e.g. `linux/amd64 in target/oci/visit-tracker`, or the file's path.
    pub label: String,
    /// Where a finding points when the crate is not in the lockfile.
    pub file: String,
    pub bytes: Vec<u8>,
}

/// Audits `binaries`, or when none are given every platform's binary in the image `layout`.
/// Findings point at the crate's line in the lockfile of `manifest` when it lists the crate.
pub fn scan(
    sh: &Shell,
    layout: &Path,
    binaries: &[PathBuf],
    manifest: &Path,
    advisory_db: Option<&Path>,
) -> Result<Vec<Finding>> {
    let root = sh.current_dir();
    let db = open_database(sh, advisory_db)?;
    let binaries = if binaries.is_empty() {
        from_layout(sh, layout)?
    } else {
        binaries
            .iter()
            .map(|path| {
                let path = root.join(path);
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let file = relative(sh, &path.to_string_lossy());
                Ok(Binary {
                    label: file.clone(),
                    file,
                    bytes,
                })
            })
            .collect::<Result<_>>()?
    };
    let lockfile = root.join(manifest).with_file_name("Cargo.lock");
    let lock_text = std::fs::read_to_string(&lockfile).unwrap_or_default();
    let lock_rel = relative(sh, &lockfile.to_string_lossy());
    let settings = Settings {
        ignore: ignored_advisories(&root.join("deny.toml"))?,
        informational_warnings: vec![
            Informational::Notice,
            Informational::Unmaintained,
            Informational::Unsound,
        ],
        ..Settings::default()
    };
    let mut findings = Vec::new();
    for binary in &binaries {
        let found = audit(&db, binary, &settings, &lock_rel, &lock_text)?;
        eprintln!(
            "security-scan: {}: {} finding(s)",
            binary.label,
            found.len()
        );
        findings.extend(found);
    }
    Ok(findings)
}

/// The findings for one binary: every advisory (vulnerability or informational) that applies to a
/// crate it embeds, or one finding when it embeds no dependency list at all.
pub fn audit(
    db: &Database,
    binary: &Binary,
    settings: &Settings,
    lock_rel: &str,
    lock_text: &str,
) -> Result<Vec<Finding>> {
    let (_, report) = load_deps_from_binary(&binary.bytes, None)
        .with_context(|| format!("{}: reading its dependency list", binary.label))?;
    let lockfile = match report {
        BinaryReport::Complete(lockfile) => lockfile,
        BinaryReport::Incomplete(_) | BinaryReport::None => {
            return Ok(vec![Finding {
                tool: TOOL,
                rule: "no-audit-data".into(),
                message: format!(
                    "{} embeds no dependency list (not built with cargo auditable): its crates \
                     cannot be audited",
                    binary.label
                ),
                file: binary.file.clone(),
                line: 1,
            }]);
        }
    };
    Ok(findings_of(
        &Report::generate(db, &lockfile, settings),
        binary,
        lock_rel,
        lock_text,
    ))
}

fn findings_of(report: &Report, binary: &Binary, lock_rel: &str, lock_text: &str) -> Vec<Finding> {
    let vulnerabilities = report.vulnerabilities.list.iter().map(|v| {
        (
            &v.package,
            v.advisory.id.as_str(),
            v.advisory.title.as_str(),
        )
    });
    let warnings = report.warnings.values().flatten().filter_map(|w| {
        let advisory = w.advisory.as_ref()?;
        Some((&w.package, advisory.id.as_str(), advisory.title.as_str()))
    });
    vulnerabilities
        .chain(warnings)
        .map(|(package, id, title)| {
            let (name, version) = (package.name.as_str(), package.version.to_string());
            let entry = format!("name = \"{name}\"\nversion = \"{version}\"");
            let (file, line) = match lock_text.find(&entry) {
                Some(at) => (
                    lock_rel.to_owned(),
                    lock_text[..at].lines().count() as u32 + 1,
                ),
                None => (binary.file.clone(), 1),
            };
            Finding {
                tool: TOOL,
                rule: id.to_owned(),
                message: format!("{name} {version} in {}: {title}", binary.label),
                file,
                line,
            }
        })
        .collect()
}

/// Each platform's binary in the image layout at `dir` (every image in it).
fn from_layout(sh: &Shell, dir: &Path) -> Result<Vec<Binary>> {
    let layout_dir = sh.current_dir().join(dir);
    if !layout_dir.join("index.json").is_file() {
        bail!(
            "no image layout at {}: run `cargo xtask image build` first (the binaries scan audits \
             what it built), give --binary FILE, or --skip binaries",
            layout_dir.display()
        );
    }
    let layout = Layout::open(&layout_dir)?;
    let shown = relative(sh, &layout_dir.to_string_lossy());
    let mut binaries = Vec::new();
    for entry in layout.index.manifests() {
        let index = layout.image_index(entry)?;
        for platform in layout.platforms(&index)? {
            let name = platform
                .descriptor
                .platform()
                .as_ref()
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .unwrap_or_else(|| platform.descriptor.digest().to_string());
            for layer in platform.manifest.layers() {
                let bytes = binary_from_layer(&layout.read_blob(layer)?)
                    .with_context(|| format!("{shown}: {name}"))?;
                binaries.push(Binary {
                    label: format!("the {name} binary of {shown}"),
                    file: shown.clone(),
                    bytes,
                });
            }
        }
    }
    Ok(binaries)
}

/// The database: the offline snapshot when there is one (a plain directory is enough for the
/// library), else RustSec's current database as cargo-deny fetches it for the dependency scan.
fn open_database(sh: &Shell, given: Option<&Path>) -> Result<Database> {
    let root = sh.current_dir();
    let dir = match advisory_db_dir(&root, given) {
        Some(dir) => dir,
        None => {
            let dbs = root.join("target/advisory-dbs/online");
            let deny = crate::tools::need(sh, &CARGO_DENY)?;
            let config = root.join("deny.toml");
            let _dbs = sh.push_env("XTASK_ADVISORY_DBS", &dbs);
            cmd!(sh, "{deny} --config {config} fetch db")
                .run()
                .context("fetching RustSec's advisory database with cargo-deny")?;
            dbs.join(checkout_dir_name(RUSTSEC_URL))
        }
    };
    Database::open(&dir).with_context(|| format!("opening the advisory database {}", dir.display()))
}

/// The advisory IDs `deny.toml` ignores (`[advisories] ignore`, as strings or `{ id = ... }`), so
/// both scans share one list of exceptions.
pub fn ignored_advisories(deny_toml: &Path) -> Result<Vec<rustsec::advisory::Id>> {
    let text = std::fs::read_to_string(deny_toml)
        .with_context(|| format!("reading {}", deny_toml.display()))?;
    parse_ignored(&text).with_context(|| format!("{}: [advisories] ignore", deny_toml.display()))
}

fn parse_ignored(text: &str) -> Result<Vec<rustsec::advisory::Id>> {
    let table: toml::Table = text.parse()?;
    let Some(ignore) = table
        .get("advisories")
        .and_then(|a| a.get("ignore"))
        .and_then(|i| i.as_array())
    else {
        return Ok(Vec::new());
    };
    ignore
        .iter()
        .filter_map(|item| match item {
            toml::Value::String(id) => Some(id.as_str()),
            // `{ crate = "..." }` entries ignore crates, not advisories: cargo-deny's own business.
            toml::Value::Table(t) => t.get("id").and_then(|id| id.as_str()),
            _ => None,
        })
        .map(|id| {
            id.parse()
                .map_err(|e| anyhow::anyhow!("`{id}` is not an advisory ID: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustsec::Lockfile;

    /// A lockfile of `(name, version)` crates from crates.io, for auditing without a binary.
    fn lockfile_of(crates: &[(&str, &str)]) -> Result<Lockfile> {
        let mut text = String::from("version = 4\n");
        for (name, version) in crates {
            text.push_str(&format!(
                "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n\
                 source = \"registry+https://github.com/rust-lang/crates.io-index\"\n"
            ));
        }
        Ok(text.parse()?)
    }

    fn fixture_db() -> Database {
        Database::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan/advisory-db"),
        )
        .unwrap()
    }

    #[test]
    fn deny_toml_ignores_are_shared_with_the_binary_audit() {
        let ids = parse_ignored(
            r#"
[advisories]
ignore = ["RUSTSEC-2021-0003", { id = "RUSTSEC-2020-0001", reason = "n/a" }, { crate = "x" }]
"#,
        )
        .unwrap();
        let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(ids, ["RUSTSEC-2021-0003", "RUSTSEC-2020-0001"]);
        assert!(parse_ignored("[licenses]\n").unwrap().is_empty());
    }

    #[test]
    fn advisories_of_embedded_crates_point_at_the_lockfile_line() {
        let db = fixture_db();
        let lock = lockfile_of(&[("smallvec", "1.6.0"), ("itoa", "1.0.19")]).unwrap();
        let report = Report::generate(&db, &lock, &Settings::default());
        let binary = Binary {
            label: "the linux/amd64 binary of L".into(),
            file: "L".into(),
            bytes: Vec::new(),
        };
        let lock_text = "version = 4\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n";
        let found = findings_of(&report, &binary, "Cargo.lock", lock_text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "Cargo.lock:4: [rustsec RUSTSEC-2021-0003] smallvec 1.6.0 in the linux/amd64 binary \
             of L: Buffer overflow in SmallVec::insert_many"
        );
        // Not in the lockfile: the binary itself is the place.
        let found = findings_of(&report, &binary, "Cargo.lock", "");
        assert_eq!((found[0].file.as_str(), found[0].line), ("L", 1));
        // Ignored in deny.toml: no finding.
        let settings = Settings {
            ignore: vec!["RUSTSEC-2021-0003".parse().unwrap()],
            ..Settings::default()
        };
        let report = Report::generate(&db, &lock, &settings);
        assert!(findings_of(&report, &binary, "Cargo.lock", lock_text).is_empty());
    }

    #[test]
    fn a_binary_without_audit_data_is_a_finding() {
        // This test program: a Rust ELF binary, built without cargo auditable.
        let binary = Binary {
            label: "x".into(),
            file: "x".into(),
            bytes: std::fs::read(std::env::current_exe().unwrap()).unwrap(),
        };
        let found = audit(
            &fixture_db(),
            &binary,
            &Settings::default(),
            "Cargo.lock",
            "",
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "no-audit-data");
    }
}
