//! `cargo xtask release` against a real registry (Debian's docker-registry), in a clone of this
//! checkout, releasing small test layouts (`--layout`, `--no-attest`) instead of building the
//! image: every release publishes its own chart version, a release run again changes nothing, a
//! version once published never points at other bytes, and a backport leaves `1` and `latest`
//! alone.

use std::path::{Path, PathBuf};
use std::process::Output;

use testkit::describe;
use testkit::registry::{Registry, write_test_layout};
use xshell::{Shell, cmd};

/// A clone of this checkout's HEAD: the releases bump versions and pin digests in its files.
fn clone(dir: &Path) -> PathBuf {
    let sh = Shell::new().unwrap();
    let root = testkit::workspace_root();
    let clone = dir.join("checkout");
    cmd!(sh, "git clone --quiet --shared {root} {clone}")
        .run()
        .unwrap();
    clone
}

/// `cargo xtask ARGS` in `checkout`, with no credentials or GitHub outputs from the caller.
fn xtask(checkout: &Path, args: &[&str]) -> Output {
    let docker_config = checkout.join("target/no-docker-config");
    testkit::task(env!("CARGO_BIN_EXE_xtask"), checkout, &docker_config)
        .args(args)
        // The clone builds in its own target directory.
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap()
}

/// Sets the app crate's version in the clone, as a version bump commit would (the lock file
/// too, so `--locked` cargo calls of the release accept it).
fn set_crate_version(checkout: &Path, version: &str) {
    let edit = |file: &str, prefix: &str| {
        let path = checkout.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text
            .find(prefix)
            .unwrap_or_else(|| panic!("{file}: no {prefix:?}"))
            + prefix.len();
        let end = at + text[at..].find('"').unwrap();
        std::fs::write(&path, format!("{}{version}{}", &text[..at], &text[end..])).unwrap();
    };
    edit("Cargo.toml", "[workspace.package]\nversion = \"");
    edit("Cargo.lock", "name = \"visit-tracker\"\nversion = \"");
}

fn succeeded(out: Output) -> Output {
    assert!(out.status.success(), "{}", describe(&out));
    out
}

fn said(out: &Output, expected: &str) {
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(expected),
        "expected {expected:?} on stderr; {}",
        describe(out)
    );
}

/// The digest of what the registry serves as `reference`, read with skopeo.
fn digest_at(reference: &str) -> Option<String> {
    let out = testkit::skopeo_raw(reference);
    out.status
        .success()
        .then(|| format!("sha256:{}", xtask::tools::hex_digest(&out.stdout)))
}

#[test]
fn releases_publish_their_own_chart_versions_and_never_overwrite_one() {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = clone(tmp.path());
    let layout = |seed: u64| {
        let dir = tmp.path().join(format!("layout-{seed}"));
        let digest = write_test_layout(&dir, 1000, seed).unwrap();
        (dir, digest)
    };
    let registry = Registry::start().unwrap();
    let addr = registry.addr();
    // The owner as GitHub spells it; the registry gets it in lower case.
    let namespace = format!("{addr}/Acme");
    let image = format!("{addr}/acme/visit-tracker");
    let chart = format!("{addr}/acme/charts/visit-tracker");
    let release = |version: &str, layout: &Path| {
        let tag = format!("v{version}");
        let layout = layout.to_str().unwrap();
        xtask(
            &checkout,
            &[
                "release",
                &tag,
                "--registry",
                &namespace,
                "--layout",
                layout,
                // Test layouts hold no binaries to list; tests/attest.rs covers attest.
                "--no-attest",
            ],
        )
    };
    // A version bump as the scheme has it: the crate, and the chart with it.
    let bump = |version: &str| {
        set_crate_version(&checkout, version);
        succeeded(xtask(&checkout, &["chart", "bump", version]));
    };

    let (a, a_digest) = layout(1);
    bump("1.1.0");
    let out = succeeded(release("1.1.0", &a));
    said(&out, "tags: 1.1.0, 1.1, 1, latest");
    // The record of an unsigned release without attestations fits the committed schema too.
    let record = checkout.join("target/release/v1.1.0.json");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().last(),
        record.to_str(),
        "{}",
        describe(&out)
    );
    let root = testkit::workspace_root();
    let check = root.join("target/venv/bin/check-jsonschema");
    let schema = root.join("xtask/src/release/record.schema.json");
    let sh = Shell::new().unwrap();
    cmd!(sh, "{check} --schemafile {schema} {record}")
        .run()
        .unwrap();
    let json = std::fs::read_to_string(&record).unwrap();
    assert!(
        json.contains("\"signatures\": null") && json.contains(&a_digest),
        "{json}"
    );
    assert_eq!(digest_at(&format!("{image}:1.1.0")), Some(a_digest.clone()));
    let chart_1_1_0 = digest_at(&format!("{chart}:1.1.0")).expect("chart 1.1.0 was pushed");
    let uploads = registry.blob_uploads();

    // The same release run again: a success that uploads nothing and changes nothing.
    let out = succeeded(release("1.1.0", &a));
    said(&out, "0 blobs uploaded (0 B)");
    said(&out, "1.1.0 is published as");
    assert_eq!(registry.blob_uploads(), uploads, "{}", registry.log());
    assert_eq!(
        digest_at(&format!("{chart}:1.1.0")).as_ref(),
        Some(&chart_1_1_0)
    );

    // Another image under the released version: refused, and 1.1.0 stays the first image.
    let (b, b_digest) = layout(2);
    let out = release("1.1.0", &b);
    assert!(!out.status.success(), "{}", describe(&out));
    said(
        &out,
        &format!("the registry has 1.1.0 at {a_digest}, this push is {b_digest}"),
    );
    assert_eq!(digest_at(&format!("{image}:1.1.0")), Some(a_digest.clone()));
    assert_eq!(registry.blob_uploads(), uploads, "{}", registry.log());

    // The next app release without a chart change: the crate alone cannot be released (the
    // chart would stay 1.1.0), the bump gives the chart 1.2.0, and 1.1.0 stays as it was.
    let (c, c_digest) = layout(3);
    set_crate_version(&checkout, "1.2.0");
    let out = release("1.2.0", &c);
    assert!(!out.status.success(), "{}", describe(&out));
    said(&out, "run `cargo xtask chart bump 1.2.0`");
    assert_eq!(digest_at(&format!("{image}:1.2.0")), None);
    bump("1.2.0");
    succeeded(release("1.2.0", &c));
    assert!(digest_at(&format!("{chart}:1.2.0")).is_some());
    assert_eq!(digest_at(&format!("{chart}:1.1.0")), Some(chart_1_1_0));
    for tag in ["1.2.0", "1.2", "1", "latest"] {
        assert_eq!(
            digest_at(&format!("{image}:{tag}")).as_ref(),
            Some(&c_digest),
            "{tag}"
        );
    }

    // A backport from the 1.1 line: its own version and 1.1; `1` and `latest` stay on 1.2.0.
    let (d, d_digest) = layout(4);
    let sh = Shell::new().unwrap();
    cmd!(sh, "git -C {checkout} checkout --quiet -- charts")
        .run()
        .unwrap();
    bump("1.1.5");
    let out = succeeded(release("1.1.5", &d));
    said(&out, "tags: 1.1.5, 1.1\n");
    said(
        &out,
        "1 (the registry has 1.2.0, which is higher); latest (the registry has 1.2.0",
    );
    for (tag, digest) in [
        ("1.1.5", &d_digest),
        ("1.1", &d_digest),
        ("1", &c_digest),
        ("latest", &c_digest),
    ] {
        assert_eq!(
            digest_at(&format!("{image}:{tag}")).as_ref(),
            Some(digest),
            "{tag}"
        );
    }
    assert!(digest_at(&format!("{chart}:1.1.5")).is_some());
}
