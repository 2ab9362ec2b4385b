//! `cargo xtask release --key` of a real image build against a real registry (Debian's
//! docker-registry), checked by tools we did not write: the real cosign verifies the signatures
//! of the index and the chart and the provenance and SBOM attestations, `check-jsonschema`
//! validates the release record against its committed schema, and `cargo xtask verify` passes.
//! A missing key or a wrong passphrase stops the release before anything is pushed. The image is
//! built once, for linux/amd64 only (a second platform proves nothing more here).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use oci_spec::image::ANNOTATION_REVISION;
use serde_json::Value;
use testkit::describe;
use testkit::registry::Registry;
use xshell::{Shell, cmd};
use xtask::image::build::Build;
use xtask::image::layout::Layout;
use xtask::image::oci::Platform;
use xtask::workspace::Workspace;

const PASSWORD: &str = "release: a passphrase with spaces";
const SLSA: &str = "https://slsa.dev/provenance/v1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";

fn shell() -> Shell {
    let sh = Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    sh
}

/// A release image of this checkout for linux/amd64 and the binary in it.
fn build_image(workspace: &Workspace) -> (PathBuf, PathBuf) {
    let built = Build {
        platform: vec![Platform::Amd64],
        output: Some(
            workspace
                .target_directory
                .join("oci/visit-tracker-release-signed"),
        ),
        version: None,
        source_date_epoch: None,
        profile: "release".into(),
    }
    .build(&shell(), workspace)
    .expect("cargo xtask image build");
    let [(Platform::Amd64, binary)] = built.binaries.as_slice() else {
        panic!("one linux/amd64 binary expected: {:?}", built.binaries);
    };
    (built.output.clone(), binary.clone())
}

/// A clone of this checkout at the commit the layout was built from (the release bumps the chart
/// there; HEAD may have moved since), holding the built binary where `attest` compares it with
/// the image's.
fn clone(dir: &Path, layout: &Path, binary: &Path) -> PathBuf {
    let sh = shell();
    let root = testkit::workspace_root();
    let clone = dir.join("checkout");
    let opened = Layout::open(layout).unwrap();
    let entry = opened.entry(None).unwrap().clone();
    let annotations = opened.image_index(&entry).unwrap().annotations().clone();
    let revision = annotations.unwrap()[ANNOTATION_REVISION].clone();
    cmd!(
        sh,
        "git clone --quiet --shared --no-checkout {root} {clone}"
    )
    .run()
    .unwrap();
    cmd!(sh, "git -C {clone} checkout --quiet {revision}")
        .run()
        .unwrap();
    let target = clone.join("target/x86_64-unknown-linux-musl/release");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(binary, target.join("visit-tracker")).unwrap();
    clone
}

/// `cargo xtask ARGS` in `checkout`, with `COSIGN_PASSWORD` as given and no credentials.
fn xtask(checkout: &Path, args: &[&str], password: Option<&str>, output: &Path) -> Output {
    let docker_config = checkout.join("target/no-docker-config");
    let mut cmd = testkit::task(env!("CARGO_BIN_EXE_xtask"), checkout, &docker_config);
    cmd.args(args)
        // The clone builds in its own target directory.
        .env_remove("CARGO_TARGET_DIR")
        .env("GITHUB_OUTPUT", output);
    if let Some(p) = password {
        cmd.env("COSIGN_PASSWORD", p);
    }
    cmd.output().unwrap()
}

/// The real cosign against the loopback registry: plain HTTP, no transparency log.
fn cosign(args: &[&str], home: &Path) -> Output {
    let bin = xtask::tools::need(&shell(), &xtask::sign::cosign::COSIGN).unwrap();
    let mut all = args.to_vec();
    all.extend(["--insecure-ignore-tlog=true", "--allow-http-registry=true"]);
    Command::new(bin)
        .args(&all)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("COSIGN_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", describe(out));
}

fn refused(out: &Output, what: &str, expected: &str) {
    assert!(!out.status.success(), "{what} succeeded: {}", describe(out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(expected),
        "{what}: expected {expected:?} on stderr; {}",
        describe(out)
    );
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

#[test]
fn a_signed_release_is_verified_by_cosign_and_its_record_by_the_schema() {
    let root = testkit::workspace_root();
    let workspace = Workspace::load(&shell()).unwrap();
    let (layout, binary) = build_image(&workspace);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let checkout = clone(tmp.path(), &layout, &binary);
    let output = tmp.path().join("github-output");
    let registry = Registry::start().unwrap();
    let addr = registry.addr();
    let namespace = format!("{addr}/acme");
    let image = format!("{namespace}/visit-tracker");
    let tag = format!("v{}", workspace.app.version);
    let layout = layout.to_str().unwrap();

    let prefix = tmp.path().join("release");
    let out = xtask(
        &checkout,
        &[
            "sign",
            "--generate-key",
            "--output",
            prefix.to_str().unwrap(),
        ],
        Some(PASSWORD),
        &output,
    );
    ok(&out, "sign --generate-key");
    let (key, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    let release = |key: &Path, password: &str| {
        xtask(
            &checkout,
            &[
                "release",
                &tag,
                "--registry",
                &namespace,
                "--layout",
                layout,
                "--key",
                key.to_str().unwrap(),
            ],
            Some(password),
            &output,
        )
    };

    // Bad input stops the release before its first push: nothing reaches the registry.
    let missing = tmp.path().join("no-such.key");
    refused(
        &release(&missing, PASSWORD),
        "release with a missing key",
        &format!("reading the private key {}", missing.display()),
    );
    refused(
        &release(&key, "not the passphrase"),
        "release with a wrong passphrase",
        "wrong passphrase (COSIGN_PASSWORD)",
    );
    assert_eq!(registry.blob_uploads(), 0, "{}", registry.log());
    let sh = shell();
    let version = &workspace.app.version;
    assert!(
        cmd!(
            sh,
            "skopeo inspect --raw --tls-verify=false docker://{image}:{version}"
        )
        .quiet()
        .ignore_stderr()
        .run()
        .is_err(),
        "a refused release left a tag behind"
    );

    let out = release(&key, PASSWORD);
    ok(&out, "release --key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap());
    assert_eq!(
        path,
        checkout.join(format!("target/release/{tag}.json")),
        "{}",
        describe(&out)
    );
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(
        outputs.contains(&format!("record={}\n", path.display())),
        "{outputs}"
    );

    // The record against its committed schema, by a validator we did not write.
    let venv = root.join("target/venv/bin/check-jsonschema");
    let schema = root.join("xtask/src/release/record.schema.json");
    cmd!(sh, "{venv} --schemafile {schema} {path}")
        .run()
        .unwrap();
    let record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let index = text(&record["image"]["digest"]);
    assert_eq!(text(&record["image"]["repository"]), image);
    let platforms = record["image"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 1, "{record:#}");
    assert_eq!(text(&platforms[0]["platform"]), "linux/amd64");
    let amd64 = text(&platforms[0]["digest"]);
    assert_eq!(
        text(&record["signatures"]["image"]["reference"]),
        format!("{image}:{}.sig", index.replace(':', "-"))
    );
    let chart = format!(
        "{}@{}",
        text(&record["chart"]["repository"]),
        text(&record["chart"]["digest"])
    );
    let provenance = &record["attestations"]["provenance"]["file"];
    assert_eq!(
        text(&provenance["sha256"]),
        xtask::tools::hex_digest(&std::fs::read(text(&provenance["path"])).unwrap())
    );
    let attached: Vec<(&str, &str)> = record["signatures"]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (text(&a["subject"]), text(&a["predicateType"])))
        .collect();
    assert_eq!(attached, [(amd64, CYCLONEDX), (index, SLSA)]);

    // The real cosign: both signatures and both attestations, with the public key.
    let public_key = public.to_str().unwrap();
    let index_ref = format!("{image}@{index}");
    for reference in [&index_ref, &chart] {
        ok(
            &cosign(&["verify", "--key", public_key, reference], &home),
            &format!("cosign verify {reference}"),
        );
    }
    for (reference, predicate_type) in [
        (index_ref.clone(), SLSA),
        (format!("{image}@{amd64}"), CYCLONEDX),
    ] {
        ok(
            &cosign(
                &[
                    "verify-attestation",
                    "--key",
                    public_key,
                    "--type",
                    predicate_type,
                    &reference,
                ],
                &home,
            ),
            &format!("cosign verify-attestation {reference}"),
        );
    }

    // And our own verify, of what the tag names now.
    ok(
        &xtask(
            &checkout,
            &["verify", &format!("{image}:{version}"), "--key", public_key],
            None,
            &output,
        ),
        "cargo xtask verify",
    );
}
