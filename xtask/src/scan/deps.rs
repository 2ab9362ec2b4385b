//! Dependency scan with cargo-deny: RustSec advisories, licenses, bans and duplicates, sources.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{Finding, line_of, relative};
use crate::cargo;
use crate::tools::{self, Tool};

/// The cargo-deny release the scan and `deny.toml` are written for.
pub const CARGO_DENY_VERSION: &str = "0.20.2";
pub const CARGO_DENY: Tool = Tool::cargo("cargo-deny", CARGO_DENY_VERSION);
/// Copy an offline advisory database snapshot into a scratch git repository.
pub const FIND: Tool = Tool::apt("find", "findutils");
pub const CP: Tool = Tool::apt("cp", "coreutils");

/// The database cargo-deny uses by default; its checkout directory name derives from this URL.
pub const RUSTSEC_URL: &str = "https://github.com/RustSec/advisory-db";

/// The offline database to use: the one given, else `shared/advisory-db` beside the repository
/// (or beside one of its parents, for worktrees kept in a subdirectory) when present.
pub fn advisory_db_dir(root: &Path, given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(dir) => Some(root.join(dir)),
        None => root
            .ancestors()
            .skip(1)
            .take(3)
            .map(|dir| dir.join("shared/advisory-db"))
            .find(|d| d.join("crates").is_dir()),
    }
}

/// Runs cargo-deny over the lockfile of `manifest` and returns its errors as findings.
pub fn scan(sh: &Shell, manifest: &Path, advisory_db: Option<&Path>) -> Result<Vec<Finding>> {
    let deny = tools::need(sh, &CARGO_DENY)?;
    let root = sh.current_dir();
    let config = root.join("deny.toml");
    let manifest = root.join(manifest);
    let lockfile = manifest.with_file_name("Cargo.lock");
    let lock_text = std::fs::read_to_string(&lockfile)
        .with_context(|| format!("reading {}", lockfile.display()))?;
    let work = root.join("target/security-scan");
    std::fs::create_dir_all(&work)?;

    // Our own `cargo metadata` (which may download crates) lets cargo-deny run with --offline:
    // the only network access it would still want is the advisory database.
    let metadata = work.join(format!(
        "metadata-{}.json",
        &tools::hex_digest(manifest.to_string_lossy().as_bytes())[..12]
    ));
    let cargo = cargo();
    let json = cmd!(
        sh,
        "{cargo} metadata --format-version 1 --locked --manifest-path {manifest}"
    )
    .read()
    .with_context(|| format!("cargo metadata for {}", manifest.display()))?;
    tools::write_atomic(&metadata, json.as_bytes())?;

    let mut offline: &[&str] = &[];
    let _dbs = match advisory_db_dir(&root, advisory_db) {
        Some(dir) => {
            let dbs = prepare_offline_db(sh, &dir, &root.join("target/advisory-dbs/offline"))?;
            offline = &["--offline"];
            sh.push_env("XTASK_ADVISORY_DBS", dbs)
        }
        None => {
            eprintln!("security-scan: no offline advisory database; cargo-deny fetches RustSec's");
            sh.push_env(
                "XTASK_ADVISORY_DBS",
                root.join("target/advisory-dbs/online"),
            )
        }
    };
    let output = cmd!(
        sh,
        "{deny} --format json --color never {offline...} --manifest-path {manifest}
            --metadata-path {metadata} --config {config} check"
    )
    .ignore_status()
    .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lock_rel = relative(sh, &lockfile.to_string_lossy());
    let findings = parse_diagnostics(&stderr, &lock_rel, &lock_text);
    if !output.status.success() && findings.is_empty() {
        bail!("cargo-deny failed without reporting a finding:\n{stderr}");
    }
    Ok(findings)
}

/// Makes a data-only database snapshot look like the git checkout cargo-deny expects: a local
/// repository (one commit of the snapshot's files) under `dbs_root`, at the directory name
/// cargo-deny derives from the RustSec URL. Rebuilt only when the snapshot's contents change.
fn prepare_offline_db(sh: &Shell, snapshot: &Path, dbs_root: &Path) -> Result<PathBuf> {
    let crates = snapshot.join("crates");
    if !crates.is_dir() {
        bail!(
            "{} is not a RustSec advisory database: it has no `crates/` directory",
            snapshot.display()
        );
    }
    // The file list and the SNAPSHOT note (commit and date) identify a snapshot well enough.
    let listing = cmd!(sh, "find {snapshot} -type f").quiet().read()?;
    let note = std::fs::read_to_string(snapshot.join("SNAPSHOT")).unwrap_or_default();
    let stamp_value = tools::hex_digest(format!("{note}\n{listing}").as_bytes());
    let checkout = dbs_root.join(checkout_dir_name(RUSTSEC_URL));
    let stamp = dbs_root.join(".snapshot.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_value.as_str())
        && checkout.join(".git").is_dir()
    {
        return Ok(dbs_root.to_path_buf());
    }
    eprintln!(
        "security-scan: preparing the offline advisory database from {}",
        snapshot.display()
    );
    // Built beside, then renamed in place: an interrupted run leaves no half database.
    let tmp = dbs_root.join(format!(".building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    cmd!(sh, "cp -R {crates} {tmp}/crates").quiet().run()?;
    {
        let _dir = sh.push_dir(&tmp);
        let _name = sh.push_env("GIT_AUTHOR_NAME", "xtask");
        let _email = sh.push_env("GIT_AUTHOR_EMAIL", "xtask@localhost");
        let _cname = sh.push_env("GIT_COMMITTER_NAME", "xtask");
        let _cemail = sh.push_env("GIT_COMMITTER_EMAIL", "xtask@localhost");
        cmd!(sh, "git init --quiet --initial-branch main")
            .quiet()
            .run()?;
        cmd!(sh, "git add --all").quiet().run()?;
        let message = format!("advisory database snapshot from {}", snapshot.display());
        cmd!(sh, "git commit --quiet --no-gpg-sign -m {message}")
            .quiet()
            .run()?;
    }
    let _ = std::fs::remove_dir_all(&checkout);
    std::fs::rename(&tmp, &checkout)?;
    std::fs::write(&stamp, stamp_value)?;
    Ok(dbs_root.to_path_buf())
}

/// cargo-deny's checkout directory for a database URL: the URL's last path segment, then the
/// XXH64 (seed 0xca80de71) of the lower-cased URL, as `url_to_db_path` in cargo-deny 0.20.
pub fn checkout_dir_name(url: &str) -> String {
    let url = url.to_lowercase();
    let name = url.rsplit('/').next().unwrap_or("empty_");
    let hash = xxhash_rust::xxh64::xxh64(url.as_bytes(), 0xca80de71);
    format!("{name}-{hash:016x}")
}

/// cargo-deny's JSON lines (`--format json`, on stderr) to findings: every `error` diagnostic.
/// Crate findings point at the crate's entry in the lockfile; config findings at `deny.toml`.
pub fn parse_diagnostics(stderr: &str, lock_rel: &str, lock_text: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for line in stderr.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        if v["type"] != "diagnostic" || fields["severity"] != "error" {
            continue;
        }
        let notes: Vec<&str> = fields["notes"]
            .as_array()
            .map(|n| n.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let code = fields["code"].as_str().unwrap_or("cargo-deny");
        let rule = notes
            .iter()
            .find_map(|n| n.strip_prefix("ID: "))
            .unwrap_or(code)
            .to_owned();
        let label = &fields["labels"][0];
        let span = label["span"].as_str().unwrap_or("");
        let mut message = fields["message"].as_str().unwrap_or("").to_owned();
        // The crate comes from the inclusion graph when there is one (license findings), else from
        // a label reading `name version [source]`: point at that crate in the lockfile.
        let krate = &fields["graphs"][0]["Krate"];
        let mut words = span.split_whitespace();
        let named = match (krate["name"].as_str(), krate["version"].as_str()) {
            (Some(name), Some(version)) => (Some(name), Some(version)),
            _ => (words.next(), words.next()),
        };
        let (file, line) = match named {
            (Some(name), Some(version)) if semver::Version::parse(version).is_ok() => {
                message = format!("{name} {version}: {message}");
                let entry = format!("name = \"{name}\"\nversion = \"{version}\"");
                let line = lock_text
                    .find(&entry)
                    .map(|at| lock_text[..at].lines().count() as u32 + 1)
                    .or_else(|| line_of(lock_text, &format!("name = \"{name}\"")))
                    .unwrap_or(1);
                (lock_rel.to_owned(), line)
            }
            _ => (
                "deny.toml".to_owned(),
                label["line"].as_u64().unwrap_or(1) as u32,
            ),
        };
        if !span.is_empty() && !message.contains(span) && file == "deny.toml" {
            message = format!("{message} ({span})");
        }
        findings.push(Finding {
            tool: "cargo-deny",
            rule,
            message,
            file,
            line,
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_dir_matches_cargo_denys_scheme() {
        let name = checkout_dir_name(RUSTSEC_URL);
        assert!(name.starts_with("advisory-db-"), "{name}");
        assert_eq!(name.len(), "advisory-db-".len() + 16);
        assert_eq!(name, checkout_dir_name(&RUSTSEC_URL.to_uppercase()));
    }

    #[test]
    fn advisory_diagnostic_names_id_and_crate_at_its_lockfile_line() {
        let lock = "version = 4\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.5.0\"\n\n\
                    [[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n";
        let stderr = concat!(
            "not json\n",
            r#"{"type":"diagnostic","fields":{"severity":"warning","message":"dup"}}"#,
            "\n",
            r#"{"type":"diagnostic","fields":{"severity":"error","code":"vulnerability","message":"Buffer overflow in SmallVec::insert_many","labels":[{"span":"smallvec 1.6.0 registry+https://github.com/rust-lang/crates.io-index","line":3,"column":1}],"notes":["ID: RUSTSEC-2021-0003","Advisory: https://rustsec.org/advisories/RUSTSEC-2021-0003"]}}"#,
            "\n",
            r#"{"type":"diagnostic","fields":{"severity":"error","code":"rejected","message":"failed to satisfy license requirements","labels":[{"span":"GPL-3.0","line":4,"column":9}]}}"#,
        );
        let found = parse_diagnostics(stderr, "fixture/Cargo.lock", lock);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].rule, "RUSTSEC-2021-0003");
        assert_eq!(found[0].file, "fixture/Cargo.lock");
        assert_eq!(found[0].line, 8);
        assert!(
            found[0]
                .message
                .starts_with("smallvec 1.6.0: Buffer overflow")
        );
        assert_eq!(found[1].rule, "rejected");
        assert_eq!((found[1].file.as_str(), found[1].line), ("deny.toml", 4));
        assert!(found[1].message.contains("GPL-3.0"));
    }
}
