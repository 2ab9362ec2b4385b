//! `cargo xtask verify --rebuild` on a real release (built from a clean clone, pushed to Debian's
//! docker-registry, attested, signed): the rebuild in a temporary worktree gives the published
//! index digest and every SBOM lists what the binary embeds; a copy whose layer lost one byte
//! under the same tag, with an SBOM short of one crate, fails, each difference named. One image
//! build and one rebuild (amd64 only; dependencies come from this checkout's target directory).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;
use testkit::describe;
use testkit::registry::Registry;
use xshell::{Shell, cmd};
use xtask::attest::Attest;
use xtask::image::build::Build;
use xtask::image::oci::Platform;
use xtask::workspace::Workspace;

const PASSWORD: &str = "verify-rebuild";

/// Runs the task binary in this checkout, without registry credentials from the environment.
fn xtask(args: &[&str], home: &Path) -> Output {
    let root = testkit::workspace_root();
    testkit::task(env!("CARGO_BIN_EXE_xtask"), &root, &home.join(".docker"))
        .args(args)
        .env("COSIGN_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", describe(out));
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", xtask::tools::hex_digest(bytes))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Copies the layout with one byte of the platform's layer changed (the gzip header's OS byte:
/// the layer still unpacks to the same binary) and the manifest, index and index.json rewritten
/// to the new digests. Returns the new platform manifest digest.
fn tamper(layout: &Path, copy: &Path) -> String {
    let sh = Shell::new().unwrap();
    cmd!(sh, "cp -r {layout} {copy}").run().unwrap();
    let blob = |digest: &str| {
        copy.join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blob(&digest), bytes).unwrap();
        (Value::from(digest), Value::from(bytes.len()))
    };
    let mut outer = read_json(&copy.join("index.json"));
    let mut index = read_json(&blob(outer["manifests"][0]["digest"].as_str().unwrap()));
    let mut manifest = read_json(&blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut layer = std::fs::read(blob(manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(&layer[..2], [0x1f, 0x8b], "the layer is not gzip");
    layer[9] ^= 1;
    (manifest["layers"][0]["digest"], _) = put(&layer);
    let platform = put(&serde_json::to_vec(&manifest).unwrap());
    let platform_digest = platform.0.as_str().unwrap().to_owned();
    (
        index["manifests"][0]["digest"],
        index["manifests"][0]["size"],
    ) = platform;
    (
        outer["manifests"][0]["digest"],
        outer["manifests"][0]["size"],
    ) = put(&serde_json::to_vec(&index).unwrap());
    std::fs::write(copy.join("index.json"), serde_json::to_vec(&outer).unwrap()).unwrap();
    platform_digest
}

#[test]
fn rebuild_gives_the_published_digest_and_names_a_changed_layer() {
    testkit::require_program("skopeo");
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let registry = Registry::start().unwrap();
    let image = format!("{}/acme/visit-tracker", registry.addr());
    let tampered = format!("{}/acme/tampered", registry.addr());

    // The release, from a clean clone of HEAD built into this checkout's target directory.
    let sh = Shell::new().unwrap();
    let root = testkit::workspace_root();
    sh.change_dir(&root);
    let revision = cmd!(sh, "git rev-parse HEAD").read().unwrap();
    let target = Workspace::load(&sh).unwrap().target_directory;
    let checkout = tmp.path().join("checkout");
    cmd!(sh, "git clone --quiet --no-checkout {root} {checkout}")
        .run()
        .unwrap();
    cmd!(sh, "git -C {checkout} checkout --quiet --detach {revision}")
        .run()
        .unwrap();
    let clone_sh = Shell::new().unwrap();
    clone_sh.change_dir(&checkout);
    clone_sh.set_var("CARGO_TARGET_DIR", &target);
    let workspace = Workspace::load(&clone_sh).unwrap();
    let layout = tmp.path().join("oci");
    let built = Build {
        platform: vec![Platform::Amd64],
        output: Some(layout.clone()),
        version: None,
        source_date_epoch: None,
        profile: "release".into(),
    }
    .build(&clone_sh, &workspace)
    .expect("image build");
    let built_secs = started.elapsed().as_secs();
    let attested = Attest {
        layout: Some(layout.clone()),
        tag: None,
        out: Some(tmp.path().join("attest")),
        image: Some(image.clone()),
        git_ref: None,
        profile: "release".into(),
        started_on: None,
        finished_on: None,
    }
    .attest(&clone_sh, &workspace)
    .expect("attest");
    let sbom = &attested.sboms[0];
    let sbom_statement = tmp.path().join("sbom.intoto.json");
    std::fs::write(&sbom_statement, sbom.statement.to_bytes()).unwrap();

    let prefix = tmp.path().join("key");
    let out = xtask(
        &[
            "sign",
            "--generate-key",
            "--output",
            prefix.to_str().unwrap(),
        ],
        home,
    );
    ok(&out, "sign --generate-key");
    let (key, public) = (tmp.path().join("key.key"), tmp.path().join("key.pub"));
    let (key, public) = (key.to_str().unwrap(), public.to_str().unwrap());
    let version = built.tag.to_string();
    let (layout_arg, provenance) = (
        layout.to_str().unwrap(),
        attested.provenance_path.to_str().unwrap(),
    );
    // The same release twice: the second copy's tag is moved below.
    for repo in [&image, &tampered] {
        let reference = format!("{repo}:{version}");
        for args in [
            vec![
                "image", "push", "--image", repo, "--layout", layout_arg, "--tag", &version,
            ],
            vec!["sign", &reference, "--key", key],
            vec![
                "attach",
                &reference,
                "--key",
                key,
                "--statement",
                provenance,
            ],
            vec![
                "attach",
                &format!("{repo}@{}", sbom.manifest_digest),
                "--key",
                key,
                "--statement",
                sbom_statement.to_str().unwrap(),
            ],
        ] {
            ok(&xtask(&args, home), &args[..2].join(" "));
        }
    }

    // One byte of the layer changed, moved under the same tag with skopeo (our push refuses).
    let copy = tmp.path().join("tampered-oci");
    let platform = tamper(&layout, &copy);
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--all", "--preserve-digests"])
        .arg("--dest-tls-verify=false")
        .arg(format!("oci:{}:{version}", copy.display()))
        .arg(format!("docker://{tampered}:{version}"))
        .output()
        .unwrap();
    ok(&out, "skopeo copy of the changed layout");
    // And an SBOM of the changed image that leaves one crate out, signed with the key.
    let mut short: Value = serde_json::from_slice(&sbom.statement.to_bytes()).unwrap();
    short["subject"][0]["digest"]["sha256"] =
        Value::from(platform.strip_prefix("sha256:").unwrap());
    let components = short["predicate"]["components"].as_array_mut().unwrap();
    let left_out = components
        .iter()
        .position(|c| c["purl"].is_string())
        .unwrap();
    let left_out = components.remove(left_out);
    let left_out = format!(
        "{} {}: embedded, not in the SBOM",
        left_out["name"].as_str().unwrap(),
        left_out["version"].as_str().unwrap()
    );
    let short_path = tmp.path().join("short.intoto.json");
    std::fs::write(&short_path, serde_json::to_vec(&short).unwrap()).unwrap();
    let platform_ref = format!("{tampered}@{platform}");
    let args = [
        "attach",
        &platform_ref,
        "--key",
        key,
        "--statement",
        short_path.to_str().unwrap(),
    ];
    ok(&xtask(&args, home), "attach the short SBOM");

    let plain = xtask(
        &["verify", &format!("{tampered}:{version}"), "--key", public],
        home,
    );
    let text = describe(&plain);
    assert!(!plain.status.success(), "plain verify passed: {text}");
    assert!(
        text.contains(&format!("the tag {version} was moved to other bytes")),
        "{text}"
    );
    assert!(text.contains(&left_out), "{text}");

    // Both references in one run: one rebuild serves both.
    let rebuild_started = Instant::now();
    let out = xtask(
        &[
            "verify",
            &format!("{image}:{version}"),
            &format!("{tampered}:{version}"),
            "--key",
            public,
            "--rebuild",
        ],
        home,
    );
    let rebuild_secs = rebuild_started.elapsed().as_secs();
    let text = describe(&out);
    assert!(!out.status.success(), "the changed copy passed: {text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{image}@{}", built.image.index.digest),
        "the release did not pass every check: {text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(the provenance) rebuilt to the same index digest"),
        "{text}"
    );
    assert!(
        stderr.contains("ok    sbom linux/amd64: lists the"),
        "{text}"
    );
    assert_eq!(stderr.matches("verify: rebuilding").count(), 1, "{text}");
    assert!(
        stderr.contains(&format!(
            "digest differs after rebuild of {revision}: published"
        )),
        "{text}"
    );
    assert!(
        stderr.contains(&format!(
            "linux/amd64: layer changed (published {}",
            read_json(
                &copy
                    .join("blobs/sha256")
                    .join(platform.strip_prefix("sha256:").unwrap())
            )["layers"][0]["digest"]
                .as_str()
                .unwrap()
        )),
        "{text}"
    );
    assert!(stderr.contains(&left_out), "{text}");
    // The temporary worktree is gone.
    let worktrees = cmd!(sh, "git worktree list --porcelain").read().unwrap();
    assert!(!worktrees.contains("xtask-verify-"), "{worktrees}");
    eprintln!(
        "verify rebuild test: image build {built_secs} s, verify --rebuild {rebuild_secs} s, \
         all {} s",
        started.elapsed().as_secs()
    );
}
