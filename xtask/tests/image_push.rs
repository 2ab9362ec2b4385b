//! `cargo xtask image push` against a real registry (Debian's docker-registry): what lands there
//! is byte-identical to the layout, re-pushes send nothing, credentials, TLS and failures.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::describe;
use testkit::registry::{Options, Registry, SlowProxy, write_test_layout};

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-Pa55word-xyz";

/// Runs the task binary with a clean credential environment (no host Docker config).
fn xtask(args: &[&str], env: &[(&str, &str)], home: &Path) -> Command {
    let root = testkit::workspace_root();
    let mut cmd = testkit::task(env!("CARGO_BIN_EXE_xtask"), &root, &home.join(".docker"));
    cmd.args(args).env("HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn push(image: &str, layout: &Path, extra: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let layout = layout.to_str().unwrap();
    let mut args = vec!["image", "push", "--image", image, "--layout", layout];
    args.extend_from_slice(extra);
    xtask(&args, env, home).output().unwrap()
}

/// Asserts that the task said `expected` on stderr.
fn assert_said(out: &Output, expected: &str) {
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(expected),
        "expected {expected:?} on stderr; {}",
        describe(out)
    );
}

fn layout(dir: &Path, layer_size: usize) -> (PathBuf, String) {
    let path = dir.join("layout");
    let digest = write_test_layout(&path, layer_size, 7).unwrap();
    (path, digest)
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", xtask::tools::hex_digest(bytes))
}

fn skopeo_inspect_raw(reference: &str, extra: &[&str]) -> Output {
    testkit::require_program("skopeo");
    Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .args(extra)
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap()
}

fn blob_names(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn pushes_both_platforms_and_tags_and_a_repush_uploads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, index_digest) = layout(tmp.path(), 300_000);
    let registry = Registry::start().unwrap();
    let image = format!("{}/team/visit-tracker", registry.addr());
    let outputs = tmp.path().join("github_output");
    let out = push(
        &image,
        &layout,
        &["--tag", "1.2.3", "--tag", "1.2", "--tag", "latest"],
        &[("GITHUB_OUTPUT", outputs.to_str().unwrap())],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{image}@{index_digest}"),
        "{}",
        describe(&out)
    );
    let written = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        written.contains(&format!("digest={index_digest}\n")),
        "{written}"
    );
    assert!(written.contains("tags=1.2.3,1.2,latest\n"), "{written}");
    // release.yml makes the GitHub release "latest" from this.
    assert!(written.contains("latest=true\n"), "{written}");
    // Two layers and two configs.
    assert_eq!(registry.blob_uploads(), 4, "{}", registry.log());

    // The registry serves the index under each tag with the layout's exact bytes.
    for tag in ["1.2.3", "1.2", "latest"] {
        let raw = skopeo_inspect_raw(&format!("{image}:{tag}"), &["--tls-verify=false"]);
        assert!(raw.status.success(), "{}", describe(&raw));
        assert_eq!(sha256_of(&raw.stdout), index_digest, "tag {tag}");
    }

    // Copied back with every platform, the registry's content is the layout's, blob for blob.
    let copy = tmp.path().join("copy");
    let out = Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{image}:1.2.3"))
        .arg(format!("oci:{}:copy", copy.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(blob_names(&copy), blob_names(&layout));
    for name in blob_names(&layout) {
        let (a, b) = (
            layout.join("blobs/sha256").join(&name),
            copy.join("blobs/sha256").join(&name),
        );
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "blob {name}"
        );
    }

    // A second push of the same image: every blob is found with HEAD, none is sent again.
    let log_before = registry.log().len();
    let out = push(&image, &layout, &["--tag", "1.2.3"], &[], tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        registry.blob_uploads(),
        4,
        "{}",
        &registry.log()[log_before..]
    );
    let second = &registry.log()[log_before..];
    assert_eq!(
        second
            .matches("\"HEAD /v2/team/visit-tracker/blobs/")
            .count(),
        4,
        "{second}"
    );
    assert!(
        !second.contains("\"POST /v2/team/visit-tracker/blobs/uploads"),
        "{second}"
    );
    assert_said(&out, "0 blobs uploaded (0 B), 4 already there");
}

#[test]
fn tags_are_checked_before_anything_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = layout(tmp.path(), 1000);
    let registry = Registry::start().unwrap();
    let image = format!("{}/visit-tracker", registry.addr());
    let before = registry.log();
    let out = push(
        &image,
        &layout,
        &["--tag", "ok", "--tag", "bad:tag"],
        &[],
        tmp.path(),
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert_said(&out, "invalid tag `bad:tag`");
    assert_eq!(registry.log(), before, "nothing may reach the registry");

    // Tags from a git ref: a release tag gives the metadata-action set.
    let out = push(
        &image,
        &layout,
        &["--tags-from-ref", "refs/tags/v0.3.1"],
        &[],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_said(&out, "tags: 0.3.1, 0.3, latest");
}

#[test]
fn credentials_over_tls_from_env_docker_config_and_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, index_digest) = layout(tmp.path(), 20_000);
    let registry = Registry::start_with(Options {
        user: Some((USER.into(), PASSWORD.into())),
        tls: true,
        bearer: false,
    })
    .unwrap();
    let ca = registry.ca_cert().unwrap();
    let ca = ca.to_str().unwrap();
    let image = format!("{}/visit-tracker", registry.addr());
    let tls = ["--tag", "t", "--ca-cert", ca];

    // Right credentials from the environment.
    let env = [("REGISTRY_USERNAME", USER), ("REGISTRY_PASSWORD", PASSWORD)];
    let out = push(&image, &layout, &tls, &env, tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!describe(&out).contains(PASSWORD));

    // From a Docker config file, as `docker login` writes it (base64 user:password).
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    let auth = base64(&format!("{USER}:{PASSWORD}"));
    let config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
        registry.addr()
    );
    std::fs::write(home.join(".docker/config.json"), config).unwrap();
    let out = push(
        &image,
        &layout,
        &["--tag", "from-config", "--ca-cert", ca],
        &[],
        &home,
    );
    assert!(out.status.success(), "{}", describe(&out));

    // From a Docker credential helper named in the config (`credHelpers`), asked like docker does.
    let helpers = tmp.path().join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    let helper = helpers.join("docker-credential-vt-test");
    std::fs::write(
        &helper,
        format!(
            // Docker writes the host without a newline, so `read` sees EOF: test what it read.
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r host\n[ \"$host\" = {} ] || exit 1\n\
             echo '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            registry.addr()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(r#"{{"credHelpers":{{"{}":"vt-test"}}}}"#, registry.addr());
    std::fs::write(home.join(".docker/config.json"), config).unwrap();
    let path = format!("{}:{}", helpers.display(), std::env::var("PATH").unwrap());
    let out = push(
        &image,
        &layout,
        &["--tag", "from-helper", "--ca-cert", ca],
        &[("PATH", &path)],
        &home,
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!describe(&out).contains(PASSWORD));

    // From --password-stdin.
    let mut child = xtask(
        &[
            "image",
            "push",
            "--image",
            &image,
            "--layout",
            layout.to_str().unwrap(),
        ],
        &[],
        tmp.path(),
    )
    .args([
        "--tag",
        "from-stdin",
        "--ca-cert",
        ca,
        "--username",
        USER,
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    let raw = skopeo_inspect_raw(
        &format!("{image}:from-stdin"),
        &[
            "--cert-dir",
            registry.ca_dir().to_str().unwrap(),
            "--creds",
            &format!("{USER}:{PASSWORD}"),
        ],
    );
    assert!(raw.status.success(), "{}", describe(&raw));
    assert_eq!(sha256_of(&raw.stdout), index_digest);

    // Wrong password: a clear refusal naming the registry, non-zero exit, no password anywhere.
    let wrong = "wrong-Pa55word-abc";
    let env = [("REGISTRY_USERNAME", USER), ("REGISTRY_PASSWORD", wrong)];
    let out = push(&image, &layout, &tls, &env, tmp.path());
    assert!(!out.status.success(), "{}", describe(&out));
    let all = describe(&out);
    assert!(
        all.contains(&format!(
            "registry {}, repository visit-tracker",
            registry.addr()
        )),
        "{all}"
    );
    assert!(all.contains("rejected the credentials (401"), "{all}");
    assert!(all.contains("REGISTRY_USERNAME/REGISTRY_PASSWORD"), "{all}");
    assert!(!all.contains(wrong) && !all.contains(PASSWORD), "{all}");

    // No credentials at all: the same clear refusal, saying none were found.
    let out = push(&image, &layout, &tls, &[], tmp.path());
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        describe(&out).contains("requires credentials (401 Unauthorized) and none were found"),
        "{}",
        describe(&out)
    );

    // Without --ca-cert a loopback registry is spoken to in plain HTTP, which a TLS registry
    // refuses: the message names the flag that fixes it.
    let out = push(&image, &layout, &["--tag", "t"], &env, tmp.path());
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        describe(&out).contains("if it serves HTTPS, pass --ca-cert FILE"),
        "{}",
        describe(&out)
    );

    // Trusting the wrong certificate (the server's own, not its CA): TLS verification fails.
    let leaf = registry.ca_cert().unwrap().with_file_name("cert.pem");
    let leaf = leaf.to_str().unwrap();
    let out = push(
        &image,
        &layout,
        &["--tag", "t", "--ca-cert", leaf],
        &env,
        tmp.path(),
    );
    assert!(!out.status.success(), "{}", describe(&out));
    let all = describe(&out);
    assert!(
        all.contains("TLS handshake failed: trust the registry's CA with --ca-cert"),
        "{all}"
    );
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_push_cut_by_a_registry_crash_fails_clearly_and_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    // 2 x 6 MB through a proxy that lets 3 MB/s through: the upload surely runs for seconds.
    let (layout, index_digest) = layout(tmp.path(), 6_000_000);
    let mut registry = Registry::start().unwrap();
    let proxy = SlowProxy::start(registry.socket_addr(), 3_000_000).unwrap();
    let image = format!("{}/visit-tracker", proxy.addr());
    let child = xtask(
        &[
            "image",
            "push",
            "--image",
            &image,
            "--layout",
            layout.to_str().unwrap(),
            "--tag",
            "v1",
        ],
        &[],
        tmp.path(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.bytes_sent() < 1_000_000 {
        assert!(
            Instant::now() < deadline,
            "the push never started uploading"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    registry.stop();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let all = describe(&out);
    assert!(all.contains(&format!("registry {}", proxy.addr())), "{all}");
    assert!(all.contains("uploading blob sha256:"), "{all}");

    registry.restart().unwrap();
    // The tag never moved to a half-pushed image.
    let raw = skopeo_inspect_raw(
        &format!("{}/visit-tracker:v1", registry.addr()),
        &["--tls-verify=false"],
    );
    assert!(!raw.status.success(), "{}", describe(&raw));

    let out = push(&image, &layout, &["--tag", "v1"], &[], tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    let raw = skopeo_inspect_raw(
        &format!("{}/visit-tracker:v1", registry.addr()),
        &["--tls-verify=false"],
    );
    assert!(raw.status.success(), "{}", describe(&raw));
    assert_eq!(sha256_of(&raw.stdout), index_digest);
}

#[test]
fn an_unreachable_registry_fails_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = layout(tmp.path(), 1000);
    let port = testkit::free_port();
    let mut child = xtask(
        &[
            "image",
            "push",
            "--image",
            &format!("127.0.0.1:{port}/x"),
            "--layout",
        ],
        &[],
        tmp.path(),
    )
    .arg(&layout)
    .args(["--tag", "t"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // A guard against hanging forever, not a speed check: the task gives up after a few
    // seconds of retries by design.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the push to an unreachable registry never gave up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let all = describe(&out);
    assert!(
        all.contains(&format!(
            "registry 127.0.0.1:{port}, repository x: logging in: unreachable after 5 tries"
        )),
        "{all}"
    );
}

/// The release image of this checkout (both platforms), built once per test binary. Cargo's
/// cache is shared with the image tests, so this is mostly assembly when they ran first.
fn real_image() -> &'static xtask::image::build::Built {
    static IMAGE: std::sync::OnceLock<xtask::image::build::Built> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        let sh = xshell::Shell::new().unwrap();
        sh.change_dir(testkit::workspace_root());
        let workspace = xtask::workspace::Workspace::load(&sh).unwrap();
        let target = &workspace.target_directory;
        xtask::image::build::Build {
            platform: xtask::image::oci::Platform::ALL.to_vec(),
            output: Some(target.join("oci/visit-tracker-push-test")),
            version: None,
            source_date_epoch: None,
            profile: "release".into(),
        }
        .build(&sh, &workspace)
        .expect("cargo xtask image build")
    })
}

/// `podman` with what it needs on these machines: runc, host network, lowered ulimits.
fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().unwrap()
}

fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_pushed_image_pulls_and_serves_healthz_on_amd64_and_arm64() {
    testkit::require_program("podman");
    testkit::require_program("runc");
    let tmp = tempfile::tempdir().unwrap();
    let built = real_image();
    let registry = Registry::start().unwrap();
    let image = format!("{}/visit-tracker-{}", registry.addr(), std::process::id());
    let out = push(&image, &built.output, &["--tag", "t"], &[], tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    let reference = format!("{image}:t");
    for arch in ["amd64", "arm64"] {
        let out = podman(&[
            "pull",
            "--quiet",
            "--tls-verify=false",
            "--arch",
            arch,
            &reference,
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let out = podman(&["image", "inspect", "--format", "{{.Architecture}}", &id]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            arch,
            "{}",
            describe(&out)
        );

        let port = testkit::free_port();
        let name = format!("push-test-{}-{arch}", std::process::id());
        let listen = format!("LISTEN_ADDR=127.0.0.1:{port}");
        let out = podman(&[
            "run",
            "--detach",
            "--rm",
            "--name",
            &name,
            "--runtime",
            "runc",
            "--network",
            "host",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--env",
            &listen,
            &id,
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        // arm64 runs under qemu-user: a generous start-up allowance on a busy machine.
        let ready = testkit::wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(120));
        let response = ready
            .as_ref()
            .ok()
            .map(|_| get(&format!("127.0.0.1:{port}"), "/healthz"));
        let logs = podman(&["logs", &name]);
        podman(&["rm", "--force", "--time", "0", &name]);
        podman(&["rmi", "--force", &id]);
        ready.unwrap_or_else(|e| panic!("{arch}: {e}\n{}", describe(&logs)));
        let response = response.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{arch}: {response}");
    }
}

#[test]
fn a_bearer_token_registry_takes_the_credentials_and_refuses_wrong_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, index_digest) = layout(tmp.path(), 20_000);
    let registry = Registry::start_with(Options {
        user: Some((USER.into(), PASSWORD.into())),
        tls: false,
        bearer: true,
    })
    .unwrap();
    let image = format!("{}/visit-tracker", registry.addr());
    let env = [("REGISTRY_USERNAME", USER), ("REGISTRY_PASSWORD", PASSWORD)];
    // A version and a floating tag, twice: the reads before the push (tag list, the manifest
    // under the version, absent and then present) take a pull token of their own.
    for round in ["first", "again"] {
        let tags = ["--tag", "1.0.0", "--tag", "latest"];
        let out = push(&image, &layout, &tags, &env, tmp.path());
        assert!(
            out.status.success(),
            "{round}: {}\n{}",
            describe(&out),
            registry.log()
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{image}@{index_digest}")
        );
        assert!(!describe(&out).contains(PASSWORD));
        if round == "again" {
            assert_said(&out, "1.0.0 is published as");
        }
    }

    let wrong = "wrong-Pa55word-abc";
    let env = [("REGISTRY_USERNAME", USER), ("REGISTRY_PASSWORD", wrong)];
    let out = push(&image, &layout, &["--tag", "t"], &env, tmp.path());
    assert!(!out.status.success(), "{}", describe(&out));
    let all = describe(&out);
    assert!(all.contains("rejected the credentials (401"), "{all}");
    assert!(!all.contains(wrong) && !all.contains(PASSWORD), "{all}");
}

#[test]
fn an_owner_in_upper_case_pushes_to_the_lower_case_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, index_digest) = layout(tmp.path(), 1000);
    let registry = Registry::start().unwrap();
    // As GitHub spells an owner: `ghcr.io/${{ github.repository_owner }}/...`.
    let image = format!("{}/Acme/Visit-Tracker", registry.addr());
    let out = push(&image, &layout, &["--tag", "t"], &[], tmp.path());
    assert!(out.status.success(), "{}", describe(&out));
    let lower = format!("{}/acme/visit-tracker", registry.addr());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{lower}@{index_digest}")
    );
    let raw = skopeo_inspect_raw(&format!("{lower}:t"), &["--tls-verify=false"]);
    assert!(raw.status.success(), "{}", describe(&raw));
    assert_eq!(sha256_of(&raw.stdout), index_digest);
}

/// The digest skopeo reads under `tag`, or `None` when the registry has no such tag.
fn digest_at(image: &str, tag: &str) -> Option<String> {
    let raw = skopeo_inspect_raw(&format!("{image}:{tag}"), &["--tls-verify=false"]);
    raw.status.success().then(|| sha256_of(&raw.stdout))
}

/// What the registry logged from `from` on: the requests of one push.
fn requests_since(registry: &Registry, from: usize) -> String {
    registry.log()[from..].to_owned()
}

#[test]
fn exact_versions_never_move_and_floating_tags_only_move_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let layouts: Vec<(PathBuf, String)> = (1..=4)
        .map(|seed| {
            let dir = tmp.path().join(format!("layout-{seed}"));
            let digest = write_test_layout(&dir, 1000, seed).unwrap();
            (dir, digest)
        })
        .collect();
    let [(a, a_digest), (b, b_digest), (c, c_digest), (d, d_digest)] = &layouts[..] else {
        unreachable!()
    };
    let registry = Registry::start().unwrap();
    let image = format!("{}/acme/visit-tracker", registry.addr());
    let release = |layout: &Path, version: &str| {
        let git_ref = format!("refs/tags/v{version}");
        push(
            &image,
            layout,
            &["--tags-from-ref", &git_ref],
            &[],
            tmp.path(),
        )
    };

    let out = release(a, "1.1.0");
    assert!(out.status.success(), "{}", describe(&out));
    assert_said(&out, "tags: 1.1.0, 1.1, 1, latest");
    let uploads = registry.blob_uploads();

    // The same release again: a success that uploads nothing and leaves 1.1.0 as it was; only
    // the floating tags are put again (which completes a release cut off before them).
    let from = registry.log().len();
    let out = release(a, "1.1.0");
    assert!(out.status.success(), "{}", describe(&out));
    assert_said(&out, "1.1.0 is published as");
    assert_said(&out, "0 blobs uploaded (0 B)");
    assert_eq!(registry.blob_uploads(), uploads, "{}", registry.log());
    let requests = requests_since(&registry, from);
    let puts: Vec<&str> = requests
        .lines()
        .filter(|l| l.contains("\"PUT "))
        .filter_map(|l| l.split("/manifests/").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(puts, ["1.1", "1", "latest"], "{requests}");

    // Other bytes under 1.1.0: refused before anything is sent, naming the tag and both digests.
    let from = registry.log().len();
    let out = release(b, "1.1.0");
    assert!(!out.status.success(), "{}", describe(&out));
    assert_said(
        &out,
        &format!(
            "1.1.0 is a published version: the registry has 1.1.0 at {a_digest}, this push is {b_digest}"
        ),
    );
    for tag in ["1.1.0", "1.1", "1", "latest"] {
        assert_eq!(digest_at(&image, tag).as_ref(), Some(a_digest), "{tag}");
    }
    // Read after skopeo's requests, so the registry has logged every request of the push.
    let requests = requests_since(&registry, from);
    assert!(!requests.contains("\"POST "), "{requests}");
    assert!(!requests.contains("\"PUT "), "{requests}");
    assert_eq!(registry.blob_uploads(), uploads);

    // A newer release takes every floating tag.
    let out = release(c, "1.2.0");
    assert!(out.status.success(), "{}", describe(&out));
    for tag in ["1.2.0", "1.2", "1", "latest"] {
        assert_eq!(digest_at(&image, tag).as_ref(), Some(c_digest), "{tag}");
    }

    // A backport takes its own version and minor series, and says what it left alone; its
    // GitHub release is not "latest" either.
    let outputs = tmp.path().join("backport_output");
    let out = push(
        &image,
        d,
        &["--tags-from-ref", "refs/tags/v1.1.5"],
        &[("GITHUB_OUTPUT", outputs.to_str().unwrap())],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let written = std::fs::read_to_string(&outputs).unwrap();
    assert!(written.contains("latest=false\n"), "{written}");
    assert_said(&out, "tags: 1.1.5, 1.1\n");
    assert_said(
        &out,
        "left alone (floating tags move only forward): 1 (the registry has 1.2.0, which is \
         higher); latest (the registry has 1.2.0, which is higher)",
    );
    for (tag, digest) in [
        ("1.1.5", d_digest),
        ("1.1", d_digest),
        ("1", c_digest),
        ("latest", c_digest),
        ("1.1.0", a_digest),
        ("1.2.0", c_digest),
    ] {
        assert_eq!(digest_at(&image, tag).as_ref(), Some(digest), "{tag}");
    }

    // The task reads the whole tag list, page after page: here two tags a page, so all seven
    // come only if it follows the pages.
    let name: xtask::registry::RepositoryName = image.parse().unwrap();
    let mut repo = xtask::registry::Repo::open(&Default::default(), &name).unwrap();
    repo.tags_per_page = 2;
    let tags = repo.block_on(repo.tags(&Quiet)).unwrap();
    let mut tags: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    tags.sort();
    assert_eq!(
        tags,
        ["1", "1.1", "1.1.0", "1.1.5", "1.2", "1.2.0", "latest"]
    );
    let from = registry.log().len();
    let missing = "0.0.1".parse().unwrap();
    let none =
        repo.block_on(repo.manifest(&xtask::registry::name::Reference::Tag(missing), &Quiet));
    assert_eq!(none.unwrap(), None, "{}", requests_since(&registry, from));
}

/// Progress nobody watches.
struct Quiet;

impl xtask::registry::Progress for Quiet {
    fn report(&self, _: xtask::registry::Event<'_>) {}
}
