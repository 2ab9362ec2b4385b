//! Two clones sharing one cargo target directory: `cargo xtask` in each works on its own
//! checkout, even though cargo builds the xtask binary once and reuses it for the other clone.

use std::path::{Path, PathBuf};
use std::process::Output;

use xshell::{Shell, cmd};

/// The cargo that runs the tests, so the clones build with the same toolchain.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A clone of this checkout's HEAD plus one empty commit of its own, so its revision is unique.
fn clone(sh: &Shell, revision: &str, dir: &Path, name: &str) -> String {
    let root = testkit::workspace_root();
    cmd!(sh, "git clone --quiet --no-checkout {root} {dir}")
        .run()
        .unwrap();
    cmd!(sh, "git -C {dir} checkout --quiet --detach {revision}")
        .run()
        .unwrap();
    cmd!(
        sh,
        "git -C {dir} -c user.name=test -c user.email=test@localhost commit --quiet --allow-empty -m {name}"
    )
    .run()
    .unwrap();
    cmd!(sh, "git -C {dir} rev-parse HEAD").read().unwrap()
}

/// `cargo xtask ARGS` in `checkout`, as a user would type it there, building into `target`.
fn xtask(checkout: &Path, target: &Path, args: &[&str]) -> Output {
    let sh = Shell::new().unwrap();
    sh.change_dir(checkout);
    let cargo = cargo();
    cmd!(sh, "{cargo} xtask {args...}")
        .env("CARGO_TARGET_DIR", target)
        // What `cargo test` set for this process is not what a user's shell has.
        .env_remove("CARGO_MANIFEST_DIR")
        // The clones' builds serve only this test: without debug info they compile and link
        // faster.
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .ignore_status()
        .output()
        .unwrap()
}

/// The `org.opencontainers.image.revision` label of the amd64 image in an OCI layout, as skopeo
/// reads it.
fn revision_label(layout: &Path) -> String {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--config", "--override-os", "linux"])
        .args(["--override-arch", "amd64"])
        .arg(format!("oci:{}", layout.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", testkit::describe(&out));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    config["config"]["Labels"]["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or_else(|| panic!("no revision label in {config}"))
        .to_owned()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Clone `b` is made first and `a` second, then `a` builds: `b`'s sources are older than `a`'s
/// build, so cargo runs `a`'s xtask binary in `b` (checked below), as in issue 16. Each clone's
/// image must carry its own revision, and the workflow scan of each must see only its own
/// files: a workflow planted in `b` alone. One platform and the dev profile: what is under test
/// is which checkout the tasks work on, not the release build. The shared target directory is
/// kept between runs (dependencies compile once, on the first run, for several minutes).
#[test]
fn clones_sharing_a_target_directory_each_work_on_their_own_checkout() {
    testkit::require_program("skopeo");
    let sh = Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    let shared_target = xtask::workspace::Workspace::load(&sh)
        .unwrap()
        .target_directory
        .join("shared-by-clones");
    std::fs::create_dir_all(&shared_target).unwrap();
    // The pinned Python tools are this checkout's: a target directory holds the venv.
    let venv = xtask::tools::venv(&sh).unwrap();
    let shared_venv = shared_target.join("venv");
    if !shared_venv.exists() {
        std::os::unix::fs::symlink(venv.parent().unwrap(), &shared_venv).unwrap();
    }
    let revision = cmd!(sh, "git rev-parse HEAD").read().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (a, b): (PathBuf, PathBuf) = (scratch.path().join("a"), scratch.path().join("b"));
    let b_revision = clone(&sh, &revision, &b, "b");
    let a_revision = clone(&sh, &revision, &a, "a");
    assert_ne!(a_revision, b_revision);
    let planted = "planted-in-b-only.yml";
    std::fs::write(
        b.join(".github/workflows").join(planted),
        "# Planted by xtask/tests/workspace.rs: an unpinned action, which zizmor reports.\n\
         name: planted\non: push\npermissions: {}\njobs:\n  planted:\n    runs-on: ubuntu-latest\n    \
         steps:\n      - uses: actions/checkout@v4\n        with:\n          persist-credentials: false\n",
    )
    .unwrap();

    let build = [
        "image",
        "build",
        "--platform",
        "linux/amd64",
        "--profile",
        "dev",
    ];
    let layout = shared_target.join("oci/visit-tracker");
    let scan = ["security-scan", "--only", "workflows"];

    let out = xtask(&a, &shared_target, &build);
    assert!(
        out.status.success(),
        "image build in a: {}",
        testkit::describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("layout: {}", layout.display())),
        "the layout goes to the shared target directory: {stdout}"
    );
    assert_eq!(revision_label(&layout), a_revision, "a's image");
    let out = xtask(&a, &shared_target, &scan);
    let text = testkit::describe(&out);
    assert!(!text.contains(planted), "a's scan saw b's workflow: {text}");

    let binary = shared_target.join("debug/xtask");
    let built_in_a = modified(&binary);

    let out = xtask(&b, &shared_target, &build);
    assert!(
        out.status.success(),
        "image build in b: {}",
        testkit::describe(&out)
    );
    // The setting of issue 16, or the test proves nothing: b ran the binary built in a.
    assert_eq!(
        modified(&binary),
        built_in_a,
        "cargo rebuilt xtask for b, so b did not reuse a's binary: b's sources must be older \
         than a's build"
    );
    assert_eq!(
        revision_label(&layout),
        b_revision,
        "b's image is labelled with another revision (a is {a_revision})"
    );
    let out = xtask(&b, &shared_target, &scan);
    let text = testkit::describe(&out);
    assert!(
        !out.status.success() && text.contains(&format!(".github/workflows/{planted}")),
        "b's scan did not report the workflow planted in b: {text}"
    );
}
