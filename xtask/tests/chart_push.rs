//! `cargo xtask chart push` against a real registry: the real Helm engine pulls the chart back
//! by version and renders it, and a second push sends no blob.

use std::path::Path;
use std::process::{Command, Output};

use testkit::describe;
use testkit::registry::Registry;
use xtask::chart::engine::Engine;

fn chart_push(repo: &str, package: &Path, home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["chart", "push", "--repo", repo, "--package"])
        .arg(package)
        .current_dir(testkit::workspace_root())
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", home)
        .output()
        .unwrap()
}

#[test]
fn helm_pulls_the_pushed_chart_by_version_and_renders_it() {
    let tmp = tempfile::tempdir().unwrap();
    // The package `cargo xtask chart package` makes, written into the test's own directory.
    let packaged = tmp.path().join("packaged");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["chart", "package", "--out-dir"])
        .arg(&packaged)
        .current_dir(testkit::workspace_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let package = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let version = package
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_prefix("visit-tracker-")
        .unwrap()
        .to_owned();

    let registry = Registry::start().unwrap();
    let repo = format!("oci://{}/charts", registry.addr());
    let out = chart_push(&repo, &package, tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pushed = format!("{}/charts/visit-tracker:{version}@sha256:", registry.addr());
    assert!(stdout.starts_with(&pushed), "{}", describe(&out));
    assert_eq!(
        registry.blob_uploads(),
        2,
        "config and chart: {}",
        registry.log()
    );

    // The real Helm engine pulls it by version, gets the same bytes, loads and renders it.
    let pulled = tmp.path().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    let reference = format!("{repo}/visit-tracker");
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    let info = Engine::new(&sh)
        .unwrap()
        .pull(&sh, &reference, &version, &pulled, true)
        .unwrap();
    assert_eq!(info["name"], "visit-tracker", "{info}");
    assert_eq!(info["version"], version.as_str(), "{info}");
    assert!(info["templates"].as_u64().unwrap() > 3, "{info}");
    let file = pulled.join(info["file"].as_str().unwrap());
    assert_eq!(
        std::fs::read(file).unwrap(),
        std::fs::read(&package).unwrap()
    );

    // Pushed again: both blobs are found, nothing is uploaded, the tag is rewritten in place.
    let out = chart_push(&repo, &package, tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(registry.blob_uploads(), 2, "{}", registry.log());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chart already in the registry"));

    // A repository that is not oci:// is refused with the expected form.
    let out = chart_push(&registry.addr(), &package, tmp.path());
    assert!(!out.status.success());
    assert!(
        describe(&out).contains("expected oci://HOST/PATH"),
        "{}",
        describe(&out)
    );
}
