//! `cargo xtask chart push` against a real registry: the real Helm engine pulls the chart back
//! by version and renders it, and a second push sends no blob.

use std::path::Path;
use std::process::{Command, Output};

use testkit::describe;
use testkit::registry::Registry;
use xtask::chart::engine::Engine;

fn chart_push(repo: &str, package: &Path, home: &Path) -> Output {
    testkit::task(
        env!("CARGO_BIN_EXE_xtask"),
        &testkit::workspace_root(),
        home,
    )
    .args(["chart", "push", "--repo", repo, "--package"])
    .arg(package)
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

    // Pushed again: both blobs are found, nothing is uploaded, the version stays as it is.
    let out = chart_push(&repo, &package, tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(registry.blob_uploads(), 2, "{}", registry.log());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chart already in the registry"), "{stderr}");
    assert!(
        stderr.contains(&format!("{version} is published as")),
        "{stderr}"
    );

    // Another chart under the same version is refused, naming the version and both digests,
    // and the registry still serves the first.
    let first = stdout.trim().rsplit_once('@').unwrap().1.to_owned();
    let other = tmp.path().join("other.tgz");
    std::fs::write(&other, chart_package(&version, "# changed\n")).unwrap();
    let out = chart_push(&repo, &other, tmp.path());
    assert!(!out.status.success(), "{}", describe(&out));
    let all = describe(&out);
    assert!(
        all.contains(&format!(
            "checking version tag {version}: {version} is a published version: the registry has \
             {version} at {first}, this push is sha256:"
        )),
        "{all}"
    );
    assert_eq!(registry.blob_uploads(), 2, "{}", registry.log());
    let raw = testkit::skopeo_raw(&format!(
        "{}/charts/visit-tracker:{version}",
        registry.addr()
    ));
    assert!(raw.status.success(), "{}", describe(&raw));
    assert_eq!(
        format!("sha256:{}", xtask::tools::hex_digest(&raw.stdout)),
        first
    );

    // A repository that is not oci:// is refused with the expected form.
    let out = chart_push(&registry.addr(), &package, tmp.path());
    assert!(!out.status.success());
    assert!(
        describe(&out).contains("expected oci://HOST/PATH"),
        "{}",
        describe(&out)
    );
}

/// A minimal chart package: `visit-tracker/Chart.yaml` at `version` and a values file.
fn chart_package(version: &str, values: &str) -> Vec<u8> {
    let mut tgz = Vec::new();
    let gz = flate2::write::GzEncoder::new(&mut tgz, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let chart = format!("apiVersion: v2\nname: visit-tracker\nversion: {version}\n");
    for (path, data) in [
        ("visit-tracker/Chart.yaml", chart.as_bytes()),
        ("visit-tracker/values.yaml", values.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    tgz
}
