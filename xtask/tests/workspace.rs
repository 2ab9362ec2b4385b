//! Two clones sharing one cargo target directory: `cargo xtask` in each works on its own
//! checkout, even though cargo builds the xtask binary once and reuses it for the other clone.

use std::path::{Path, PathBuf};
use std::process::Output;

use xshell::{Shell, cmd};

/// The cargo that runs the tests, so the clones build with the same toolchain.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// A copy of this checkout's working tree (tracked and untracked files, as `git status` sees
/// them) committed as a repository of its own, so its revision is unique. A copy of the working
/// tree, not a clone of HEAD: the xtask binary it builds into the shared target directory is then
/// built from the same sources as this checkout's, whatever the developer has not committed yet.
fn copy_checkout(sh: &Shell, dir: &Path, name: &str) -> String {
    let root = testkit::workspace_root();
    let files = cmd!(
        sh,
        "git -C {root} ls-files -z --cached --others --exclude-standard"
    )
    .read()
    .unwrap();
    for file in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(file);
        if !from.exists() {
            continue; // deleted in the working tree, not yet in the index
        }
        let to = dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    let git = |args: &[&str]| {
        cmd!(sh, "git -C {dir} {args...}")
            .env("GIT_AUTHOR_NAME", "test")
            .env("GIT_AUTHOR_EMAIL", "test@localhost")
            .env("GIT_COMMITTER_NAME", "test")
            .env("GIT_COMMITTER_EMAIL", "test@localhost")
            .quiet()
            .read()
            .unwrap()
    };
    git(&["init", "--quiet"]);
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "-m", name]);
    git(&["rev-parse", "HEAD"])
}

/// `cargo xtask ARGS` in `checkout`, as a user would type it there, building into `target`.
fn xtask(checkout: &Path, target: &Path, args: &[&str]) -> Output {
    let sh = Shell::new().unwrap();
    sh.change_dir(checkout);
    let cargo = cargo();
    // What `cargo test` set for this process is not what a user's shell has.
    xtask::without_cargo_run_env(cmd!(sh, "{cargo} xtask {args...}"))
        .env("CARGO_TARGET_DIR", target)
        .ignore_status()
        .output()
        .unwrap()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copy `b` is made first and `a` second, then `a` builds: `b`'s sources are older than `a`'s
/// build, so cargo runs `a`'s xtask binary in `b` (checked below), as in issue 16. The workflow
/// scan of each must see only its own files: a workflow planted in `b` alone. The copies share
/// this checkout's own target directory, so nothing but the xtask crate itself is compiled, and
/// what lands there is built from this working tree's sources.
#[test]
fn clones_sharing_a_target_directory_each_work_on_their_own_checkout() {
    let sh = Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    let shared_target = xtask::workspace::Workspace::load(&sh)
        .unwrap()
        .target_directory;
    let scratch = tempfile::tempdir().unwrap();
    let (a, b): (PathBuf, PathBuf) = (scratch.path().join("a"), scratch.path().join("b"));
    let b_revision = copy_checkout(&sh, &b, "b");
    let a_revision = copy_checkout(&sh, &a, "a");
    assert_ne!(a_revision, b_revision);
    let planted = "planted-in-b-only.yml";
    std::fs::write(
        b.join(".github/workflows").join(planted),
        "# Planted by xtask/tests/workspace.rs: an unpinned action, which zizmor reports.\n\
         name: planted\non: push\npermissions: {}\njobs:\n  planted:\n    runs-on: ubuntu-latest\n    \
         steps:\n      - uses: actions/checkout@v4\n        with:\n          persist-credentials: false\n",
    )
    .unwrap();
    let scan = ["security-scan", "--only", "workflows"];

    let out = xtask(&a, &shared_target, &scan);
    let text = testkit::describe(&out);
    assert!(out.status.success(), "a's scan: {text}");
    assert!(!text.contains(planted), "a's scan saw b's workflow: {text}");
    let binary = shared_target.join("debug/xtask");
    let built_in_a = modified(&binary);

    let out = xtask(&b, &shared_target, &scan);
    let text = testkit::describe(&out);
    // The setting of issue 16, or the test proves nothing: b ran the binary built in a.
    assert_eq!(
        modified(&binary),
        built_in_a,
        "cargo rebuilt xtask for b, so b did not reuse a's binary: b's sources must be older \
         than a's build"
    );
    assert!(
        !out.status.success() && text.contains(&format!(".github/workflows/{planted}")),
        "b's scan did not report the workflow planted in b: {text}"
    );
}
