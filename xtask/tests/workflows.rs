//! Static checks of `.github/`: GitHub's schemas (offline, check-jsonschema's vendored copies),
//! zizmor with zero findings, and the repository's own rules: actions pinned to commit SHAs with
//! their version, least privilege, timeouts, every step a `cargo xtask` call unless GitHub-only,
//! and every job's tools on GitHub's runner (.github/runner-inventory.yml) or installed by the
//! job's `cargo xtask setup` step before the task that needs them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use testkit::workspace_root;
use xtask::setup::inventory::Inventory;
use xtask::setup::workflow::{self, Step};
use xtask::tools::Tool;

const WORKFLOWS: [&str; 2] = [".github/workflows/ci.yml", ".github/workflows/release.yml"];

fn venv_tool(tool: &Tool) -> PathBuf {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(workspace_root());
    xtask::tools::need(&sh, tool).unwrap()
}

/// The workflow as JSON, parsed by PyYAML from the venv (checkov brings it).
fn load(path: &str) -> Value {
    let out = Command::new(venv_tool(&xtask::tools::VENV_PYTHON))
        .current_dir(workspace_root())
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            path,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn workflows_and_dependabot_match_githubs_schemas() {
    for (schema, files) in [
        ("vendor.github-workflows", &WORKFLOWS[..]),
        ("vendor.dependabot", &[".github/dependabot.yml"][..]),
    ] {
        let out = Command::new(venv_tool(&xtask::ci::CHECK_JSONSCHEMA))
            .current_dir(workspace_root())
            .args(["--builtin-schema", schema])
            .args(files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{schema}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn zizmor_finds_nothing() {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(workspace_root());
    let findings = xtask::scan::workflows::scan(&sh).unwrap();
    let text: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert!(findings.is_empty(), "zizmor:\n{}", text.join("\n"));
}

#[test]
fn actions_are_pinned_to_commit_shas_with_their_version() {
    for path in WORKFLOWS {
        let text = std::fs::read_to_string(workspace_root().join(path)).unwrap();
        let refs = xtask::act::action_refs(&text);
        assert!(!refs.is_empty(), "{path} uses no action");
        for r in refs {
            assert!(
                r.git_ref.len() == 40 && r.git_ref.bytes().all(|b| b.is_ascii_hexdigit()),
                "{path}: {} is not pinned to a full commit SHA",
                r.uses()
            );
            assert!(
                r.version.starts_with('v'),
                "{path}: {} has no `# vX.Y.Z` comment",
                r.uses()
            );
        }
    }
}

#[test]
fn jobs_have_least_privilege_timeouts_and_xtask_steps() {
    for path in WORKFLOWS {
        let wf = load(path);
        assert_eq!(
            wf["permissions"],
            serde_json::json!({}),
            "{path}: default permissions must be none"
        );
        assert!(
            wf["concurrency"]["group"].is_string(),
            "{path}: no concurrency group"
        );
        for (name, job) in wf["jobs"].as_object().unwrap() {
            assert!(
                job["timeout-minutes"].is_u64(),
                "{path}: job {name} has no timeout"
            );
            let perms = job["permissions"]
                .as_object()
                .unwrap_or_else(|| panic!("{path}: job {name} sets no permissions"));
            assert!(
                matches!(
                    perms.get("contents").and_then(Value::as_str),
                    Some("read" | "write")
                ),
                "{path}: job {name} must say what it needs of the repository contents"
            );
            for step in job["steps"].as_array().unwrap() {
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                let github_only = step["if"].as_str().is_some_and(|c| c.contains("!env.ACT"));
                let xtask =
                    run.trim_start().starts_with("cargo xtask ") || run.contains("bash .ci/run");
                assert!(
                    xtask || github_only,
                    "{path}: job {name}: a step that act runs must be `cargo xtask ...`: {run}"
                );
                assert!(
                    !run.contains("${{"),
                    "{path}: job {name}: expression in a run script (template injection): {run}"
                );
            }
        }
    }
}

#[test]
fn secrets_only_reach_jobs_that_pull_requests_cannot_trigger() {
    let ci = load(".github/workflows/ci.yml");
    for (name, job) in ci["jobs"].as_object().unwrap() {
        let uses_secrets = job.to_string().contains("secrets.");
        if uses_secrets {
            let cond = job["if"].as_str().unwrap_or("");
            assert!(
                cond.contains("github.event_name == 'push'") && cond.contains("refs/heads/main"),
                "ci.yml job {name} uses secrets but can run for pull requests"
            );
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap()
}

/// What `cargo xtask setup` would install on the runner the inventory describes decides: a task
/// whose tool the runner lacks needs an earlier setup step that installs it, and no setup step may
/// apt-install a package that removes the runner's Docker (containerd.io).
#[test]
fn every_job_finds_its_tools_on_the_runner_or_installs_them_first() {
    let runner = Inventory::load(&workspace_root()).unwrap();
    let ci_run = read(workflow::CI_RUN);
    let (mut problems, mut tasks) = (Vec::new(), BTreeSet::new());
    for path in WORKFLOWS {
        let jobs = workflow::jobs(&read(path), &ci_run).unwrap();
        for job in &jobs {
            for step in &job.steps {
                if let Step::Task { name, .. } = step {
                    tasks.insert(name.as_str().to_owned());
                }
            }
            problems.extend(
                job.problems(&runner)
                    .into_iter()
                    .map(|p| format!("{path}: {p}")),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The pipeline's tasks were all found, so the check above looked at them.
    for task in [
        "test",
        "security-scan",
        "image-build",
        "image-push",
        "chart-lint",
        "release",
    ] {
        assert!(tasks.contains(task), "no job runs `{task}`: {tasks:?}");
    }
}

/// `.ci/run` is the README's test command after `cargo xtask setup test`, and nothing else.
#[test]
fn ci_run_sets_up_for_the_tests_then_runs_them() {
    let steps = workflow::steps_of(&read(workflow::CI_RUN), None);
    assert_eq!(
        steps,
        [
            Step::Setup(vec!["test".into()]),
            Step::Task {
                name: "test".into(),
                line: "test".into()
            }
        ]
    );
    assert!(read("README.md").contains("cargo xtask test "));
}
