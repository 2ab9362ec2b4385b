//! `cargo xtask security-scan` end to end: the real scanners over fixtures and over this repo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use testkit::workspace_root;

/// The scans share target/ (advisory database checkout, cargo-deny's lock): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A committed one-advisory RustSec database: the deterministic reference for findings.
const FIXTURE_DB: &str = "xtask/tests/fixtures/scan/advisory-db";

/// The full RustSec snapshot beside the repository when there is one (a clean clone elsewhere
/// has none), else the fixture database, so the clean-repository scan still runs offline.
fn full_or_fixture_db() -> PathBuf {
    let root = workspace_root();
    xtask::scan::deps::advisory_db_dir(&root, None).unwrap_or_else(|| {
        eprintln!(
            "no RustSec snapshot (shared/advisory-db) beside the repository: dependencies are \
             checked against the fixture database {FIXTURE_DB} only"
        );
        root.join(FIXTURE_DB)
    })
}

/// Runs the scan with `args`, offline: `db` is the advisory database for the dependency scan.
fn scan(args: &[&str], db: Option<&Path>) -> (Output, String) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(workspace_root()).arg("security-scan");
    if let Some(db) = db {
        command.arg("--advisory-db").arg(db);
    }
    let out = command
        .args(args)
        .output()
        .expect("running xtask security-scan");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn vulnerable_lockfile_fails_naming_the_advisory_and_the_crate() {
    let sarif = temp_file("deps.sarif");
    let (out, text) = scan(
        &[
            "--only",
            "deps",
            "--manifest-path",
            "xtask/tests/fixtures/scan/vulnerable/Cargo.toml",
            "--sarif",
            sarif.to_str().unwrap(),
        ],
        Some(Path::new(FIXTURE_DB)),
    );
    assert!(!out.status.success(), "the scan passed:\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("RUSTSEC-2021-0003"))
        .unwrap_or_else(|| panic!("no RUSTSEC-2021-0003 finding:\n{text}"));
    assert!(
        line.starts_with("xtask/tests/fixtures/scan/vulnerable/Cargo.lock:13: ")
            && line.contains("smallvec 1.6.0"),
        "the finding names the crate at its lockfile line: {line}"
    );
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "RUSTSEC-2021-0003");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        13
    );
}

/// A binary built with cargo auditable from the vulnerable fixture embeds smallvec 1.6.0: the
/// binaries scan finds the advisory in the binary itself and points at the lockfile line.
#[test]
fn planted_vulnerable_crate_is_found_in_the_binary() {
    let root = workspace_root();
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(&root);
    xtask::tools::need(&sh, &xtask::image::auditable::CARGO_AUDITABLE).unwrap();
    let target = xtask::workspace::Workspace::load(&sh)
        .unwrap()
        .target_directory
        .join("scan-fixture");
    let manifest = root.join("xtask/tests/fixtures/scan/vulnerable/Cargo.toml");
    // Host target and dev profile: seconds, and the dependency list is the same as for musl.
    xshell::cmd!(
        sh,
        "cargo auditable build --locked --quiet --manifest-path {manifest} --target-dir {target}"
    )
    .run()
    .unwrap();
    let binary = target.join("debug/scan-fixture");
    let sarif = temp_file("binaries.sarif");
    let (out, text) = scan(
        &[
            "--only",
            "binaries",
            "--binary",
            binary.to_str().unwrap(),
            "--manifest-path",
            "xtask/tests/fixtures/scan/vulnerable/Cargo.toml",
            "--sarif",
            sarif.to_str().unwrap(),
        ],
        Some(Path::new(FIXTURE_DB)),
    );
    assert!(!out.status.success(), "the scan passed:\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("RUSTSEC-2021-0003"))
        .unwrap_or_else(|| panic!("no RUSTSEC-2021-0003 finding:\n{text}"));
    assert!(
        line.starts_with(
            "xtask/tests/fixtures/scan/vulnerable/Cargo.lock:13: [rustsec RUSTSEC-2021-0003] \
             smallvec 1.6.0 in "
        ) && line.contains("scan-fixture/debug/scan-fixture"),
        "the finding names the crate, the binary and the lockfile line: {line}"
    );
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(log["runs"][0]["tool"]["driver"]["name"], "rustsec");
    assert_eq!(log["runs"][0]["results"][0]["ruleId"], "RUSTSEC-2021-0003");
}

#[test]
fn planted_fake_key_is_caught_without_printing_it() {
    let fixture = "xtask/tests/fixtures/scan/planted-secret";
    let (out, text) = scan(&["--only", "secrets", "--secrets-path", fixture], None);
    assert!(!out.status.success(), "the scan passed:\n{text}");
    assert!(
        text.contains(&format!(
            "{fixture}/deploy.env:3: [detect-secrets AWS Access Key]"
        )),
        "{text}"
    );
    let key = std::fs::read_to_string(workspace_root().join(fixture).join("deploy.env")).unwrap();
    let key = key.lines().last().unwrap().split('=').nth(1).unwrap();
    assert!(!text.contains(key), "the secret itself was printed");
}

/// Everything but the binaries (tests/attest.rs audits those of a real image build).
#[test]
fn repository_scans_clean_with_fixtures_excluded() {
    let root = workspace_root();
    // The fixtures are tracked, so only the explicit exclusion keeps them out of the scan.
    let tracked = Command::new("git")
        .current_dir(&root)
        .args(["ls-files", "xtask/tests/fixtures/scan"])
        .output()
        .unwrap();
    let tracked = String::from_utf8_lossy(&tracked.stdout);
    assert!(
        tracked.contains("planted-secret/deploy.env"),
        "fixture not tracked: {tracked}"
    );
    let re = xtask::scan::secrets::FIXTURES_EXCLUDED;
    assert_eq!(re, "^xtask/tests/fixtures/");

    let sarif = temp_file("repo.sarif");
    let (out, text) = scan(
        &["--skip", "binaries", "--sarif", sarif.to_str().unwrap()],
        Some(&full_or_fixture_db()),
    );
    assert!(out.status.success(), "the repository has findings:\n{text}");
    for scanner in ["Deps", "Workflows", "Chart", "Secrets"] {
        assert!(
            text.contains(&format!("security-scan: {scanner}: 0 finding(s)")),
            "{scanner} did not run:\n{text}"
        );
    }
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
}
