//! Static checks of `.github/`: GitHub's schemas (offline, check-jsonschema's vendored copies),
//! zizmor with zero findings, and the repository's own rules: actions pinned to the release
//! commits and node24 runtimes listed in `.github/actions.toml`, least privilege, timeouts, every
//! step a `cargo xtask` call unless GitHub-only, registry names lower-cased, CI publishing the
//! image it tested, `rust-toolchain.toml` pinning the compiler the image is built with, and every
//! job's tools on GitHub's runner (.github/runner-inventory.yml) or installed by the job's
//! `cargo xtask setup` step before the task that needs them.

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
            // A job calling a workflow has no timeout of its own (its jobs have theirs).
            assert!(
                job["timeout-minutes"].is_u64() || job["uses"].is_string(),
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
            for step in job["steps"].as_array().into_iter().flatten() {
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                let github_only = step["if"].as_str().is_some_and(|c| c.contains("!env.ACT"));
                let xtask = run.trim_start().starts_with("cargo xtask ");
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

/// A TOML file of the repository, parsed by the venv's Python (tomllib), as JSON.
fn load_toml(path: &str) -> Value {
    let out = Command::new(venv_tool(&xtask::tools::VENV_PYTHON))
        .current_dir(workspace_root())
        .args([
            "-c",
            "import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))",
            path,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `.github/actions.toml`: each action the workflows use, its release, commit and runtime.
fn pinned_actions() -> Value {
    load_toml(".github/actions.toml")
}

/// Every step that uses an action, in every workflow: (workflow, job, step).
fn action_steps() -> Vec<(&'static str, String, Value)> {
    let mut steps = Vec::new();
    for path in WORKFLOWS {
        let wf = load(path);
        for (name, job) in wf["jobs"].as_object().unwrap() {
            if let Some(uses) = job["uses"].as_str() {
                assert!(
                    uses.starts_with("$/"),
                    "{path}: job {name} calls {uses}: only this repository's workflows, as `$/...`"
                );
                continue;
            }
            for step in job["steps"].as_array().unwrap() {
                if step["uses"].is_string() {
                    steps.push((path, name.clone(), step.clone()));
                }
            }
        }
    }
    steps
}

#[test]
fn every_action_is_listed_pinned_to_its_release_commit_and_runs_on_node24() {
    let listed = pinned_actions();
    let listed = listed["action"]
        .as_array()
        .expect(".github/actions.toml: no [[action]] entries");
    let entry = |name: &str| listed.iter().find(|a| a["uses"] == name);
    // A composite runs what it uses: each nested action is listed and runs on node24 itself.
    for action in listed {
        let name = action["uses"].as_str().unwrap();
        match action["runs-using"].as_str() {
            Some("node24") => {}
            Some("composite") => {
                let nested = action["composite-uses"].as_array().unwrap_or_else(|| {
                    panic!(".github/actions.toml: {name} is composite but lists no composite-uses")
                });
                for inner in nested {
                    let inner = inner.as_str().unwrap();
                    let runs = entry(inner).map(|a| &a["runs-using"]);
                    assert_eq!(
                        runs,
                        Some(&Value::from("node24")),
                        ".github/actions.toml: {name} uses {inner}, which is not listed as node24"
                    );
                }
            }
            other => panic!(
                ".github/actions.toml: {name} runs on {other:?}; GitHub is removing node20: \
                 update it to a node24 release"
            ),
        }
    }

    let mut used = std::collections::BTreeSet::new();
    for path in WORKFLOWS {
        let text = std::fs::read_to_string(workspace_root().join(path)).unwrap();
        let comments = xtask::act::action_refs(&text);
        for r in &comments {
            let name = match &r.path {
                Some(p) => format!("{}/{}/{p}", r.owner, r.repo),
                None => format!("{}/{}", r.owner, r.repo),
            };
            let action = entry(&name).unwrap_or_else(|| {
                panic!(
                    "{path}: {name} is not listed in .github/actions.toml (tag, commit, runs-using)"
                )
            });
            assert_eq!(
                r.git_ref,
                action["commit"].as_str().unwrap(),
                "{path}: {name} is pinned to {}, .github/actions.toml says {} ({}): update both \
                 together",
                r.git_ref,
                action["commit"],
                action["version"]
            );
            assert_eq!(
                r.version,
                action["version"].as_str().unwrap(),
                "{path}: {name}@{}: the `# version` comment disagrees with .github/actions.toml",
                r.git_ref
            );
            used.insert(name);
        }
        // The line scan above and the parsed YAML see the same actions: none hides from it.
        for (_, job, step) in action_steps().iter().filter(|(p, ..)| *p == path) {
            let uses = step["uses"].as_str().unwrap();
            assert!(
                comments.iter().any(|r| r.uses() == uses),
                "{path}: job {job}: `uses: {uses}` is not a pinned remote action"
            );
        }
    }
    for action in listed {
        let name = action["uses"].as_str().unwrap();
        let nested_only = listed.iter().any(|a| {
            a["composite-uses"]
                .as_array()
                .is_some_and(|n| n.iter().any(|i| i == name))
        });
        assert!(
            used.contains(name) || nested_only,
            ".github/actions.toml lists {name}, which no workflow uses: remove it"
        );
    }
}

#[test]
fn actions_get_the_inputs_actions_toml_requires() {
    let listed = pinned_actions();
    for action in listed["action"].as_array().unwrap() {
        let Some(required) = action["with"].as_object() else {
            continue;
        };
        let name = action["uses"].as_str().unwrap();
        let steps: Vec<_> = action_steps()
            .into_iter()
            .filter(|(.., step)| step["uses"].as_str().unwrap().split('@').next() == Some(name))
            .collect();
        assert!(!steps.is_empty(), "{name} is not used");
        for (path, job, step) in steps {
            for (input, value) in required {
                assert_eq!(
                    &step["with"][input], value,
                    "{path}: job {job}: {name} must set `{input}: {value}` (.github/actions.toml)"
                );
            }
        }
    }
}

/// The variables a workflow sets from the repository's owner or name, which GitHub gives in the
/// owner's case (`Acme`), where OCI repository names must be lower-case.
fn owner_cased(env: &Value) -> Vec<String> {
    env.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.as_str().is_some_and(|v| v.contains("github.repository")))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Every use of `$name` in `script` not written `${name,,}` (bash's lower-case expansion).
fn not_lower_cased(script: &str, name: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, _) in script.match_indices('$') {
        let rest = &script[i + 1..];
        let braced = rest.strip_prefix('{');
        let ident: String = braced
            .unwrap_or(rest)
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident != name {
            continue;
        }
        let lowered = braced.is_some_and(|b| b[ident.len()..].starts_with(",,}"));
        if !lowered {
            bad.push(script[i..].lines().next().unwrap_or_default().to_owned());
        }
    }
    bad
}

#[test]
fn not_lower_cased_finds_every_plain_use() {
    assert!(not_lower_cased("x \"${IMAGE,,}\" y", "IMAGE").is_empty());
    assert!(not_lower_cased("${IMAGES} $IMAGE_X", "IMAGE").is_empty());
    assert_eq!(not_lower_cased("a $IMAGE", "IMAGE"), ["$IMAGE"]);
    assert_eq!(not_lower_cased("${IMAGE%%/*}", "IMAGE"), ["${IMAGE%%/*}"]);
    assert_eq!(not_lower_cased("${IMAGE}", "IMAGE"), ["${IMAGE}"]);
}

#[test]
fn registry_names_from_the_owner_are_lower_cased_where_used() {
    let mut checked = 0;
    for path in WORKFLOWS {
        let wf = load(path);
        for (name, job) in wf["jobs"].as_object().unwrap() {
            let mut vars = owner_cased(&wf["env"]);
            vars.extend(owner_cased(&job["env"]));
            for step in job["steps"].as_array().into_iter().flatten() {
                let mut vars = vars.clone();
                vars.extend(owner_cased(&step["env"]));
                assert!(
                    !step["with"].to_string().contains("github.repository"),
                    "{path}: job {name}: an action input from the owner's name keeps its case: \
                     pass a lower-cased value (a step output) instead"
                );
                let Some(run) = step["run"].as_str() else {
                    continue;
                };
                for var in &vars {
                    let bad = not_lower_cased(run, var);
                    assert!(
                        bad.is_empty(),
                        "{path}: job {name}: ${var} holds the owner's name in its case (`Acme`), \
                         OCI names are lower-case: write ${{{var},,}}: {bad:?}"
                    );
                    checked += usize::from(run.contains(&format!("${{{var},,}}")));
                }
            }
        }
    }
    // ci.yml's publish and release.yml's build and sign name the registry from the owner.
    assert!(checked >= 2, "only {checked} lower-cased uses found");
}

#[test]
fn caches_are_saved_only_on_main() {
    for (path, job, step) in action_steps() {
        if step["uses"]
            .as_str()
            .unwrap()
            .starts_with("Swatinem/rust-cache@")
        {
            assert_eq!(
                step["with"]["save-if"], "${{ github.ref == 'refs/heads/main' }}",
                "{path}: job {job}: rust-cache must save only on main (`save-if`), so a pull \
                 request never writes a cache main builds from"
            );
        }
    }
}

#[test]
fn ci_publishes_the_image_e2e_tested() {
    let ci = load(".github/workflows/ci.yml");
    let jobs = &ci["jobs"];
    let steps = |job: &str| jobs[job]["steps"].as_array().unwrap().clone();
    let runs = |job: &str| -> Vec<String> {
        steps(job)
            .iter()
            .filter_map(|s| s["run"].as_str().map(str::to_owned))
            .collect()
    };
    let artifact = |job: &str, action: &str| -> Vec<Value> {
        steps(job)
            .into_iter()
            .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .map(|s| s["with"].clone())
            .collect()
    };
    let uploaded = artifact("image", "actions/upload-artifact@");
    assert_eq!(uploaded.len(), 1, "the image job uploads its layout once");
    let name = &uploaded[0]["name"];
    assert!(
        runs("image")
            .iter()
            .any(|r| r.contains("cargo xtask image build")
                && r.contains(uploaded[0]["path"].as_str().unwrap())),
        "the image job uploads the layout it built"
    );
    for job in ["e2e", "publish"] {
        let downloads = artifact(job, "actions/download-artifact@");
        assert!(
            downloads.iter().any(|w| &w["name"] == name),
            "ci.yml: {job} does not download the image job's artifact {name}"
        );
        assert!(
            !runs(job).iter().any(|r| r.contains("image build")),
            "ci.yml: {job} rebuilds the image instead of using the image job's layout"
        );
    }

    let needs: Vec<&str> = jobs["publish"]["needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for job in ["test", "security-scan", "image", "chart", "e2e"] {
        assert!(needs.contains(&job), "ci.yml: publish does not need {job}");
    }
    // e2e names the index it tested; publish refuses any other, before sending anything.
    let output = jobs["e2e"]["outputs"]["digest"]
        .as_str()
        .unwrap_or_default();
    assert!(output.contains("steps.load.outputs.digest"), "{output}");
    assert!(
        runs("e2e")
            .iter()
            .any(|r| r.contains("digest=") && r.contains("kind load")),
        "ci.yml: e2e does not report the digest it loaded into kind"
    );
    let push = steps("publish")
        .into_iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("image push")))
        .expect("ci.yml: publish has no `image push` step");
    assert!(
        push["run"]
            .as_str()
            .unwrap()
            .contains("--expect-digest \"${TESTED_DIGEST}\""),
        "{push}"
    );
    assert_eq!(
        push["env"]["TESTED_DIGEST"],
        "${{ needs.e2e.outputs.digest }}"
    );
    // A failed e2e leaves what is needed to see why in the log.
    let dump = steps("e2e")
        .into_iter()
        .find(|s| s["if"].as_str().is_some_and(|c| c.contains("failure()")))
        .expect("ci.yml: e2e dumps nothing on failure");
    let dump = dump["run"].as_str().unwrap();
    for what in ["get events", "describe pods", "kubectl logs"] {
        assert!(
            dump.contains(what),
            "ci.yml: e2e's failure dump lacks {what}"
        );
    }
}

#[test]
fn jobs_set_up_before_their_tasks() {
    for path in WORKFLOWS {
        let wf = load(path);
        for (name, job) in wf["jobs"].as_object().unwrap() {
            let runs: Vec<&str> = job["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["run"].as_str())
                .filter(|r| r.trim_start().starts_with("cargo xtask "))
                .collect();
            let Some(first) = runs.first() else {
                continue;
            };
            assert!(
                first.trim_start().starts_with("cargo xtask setup "),
                "{path}: job {name} runs `{}` before any `cargo xtask setup TASK...`",
                first.trim()
            );
        }
    }
}

#[test]
fn toolchain_file_pins_a_release_with_the_image_targets() {
    let file = load_toml("rust-toolchain.toml");
    let toolchain = &file["toolchain"];
    let channel = toolchain["channel"].as_str().unwrap_or_default();
    // An exact release: `stable` would follow whatever the machine has, and the image with it.
    assert!(
        semver::Version::parse(channel).is_ok(),
        "rust-toolchain.toml: channel `{channel}` is not an exact release like 1.95.0"
    );
    let list = |key: &str| -> Vec<&str> {
        toolchain[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    for component in ["rustfmt", "clippy"] {
        assert!(
            list("components").contains(&component),
            "rust-toolchain.toml: no {component}, which `cargo xtask test` runs"
        );
    }
    let build = xtask::task_defaults::<xtask::image::build::Build>().unwrap();
    for platform in build.platform {
        assert!(
            list("targets").contains(&platform.rust_target()),
            "rust-toolchain.toml: no target {} for the image's {platform}",
            platform.rust_target()
        );
    }
    // The workspace promises to build with its rust-version; the pin must honour it.
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .unwrap();
    let msrv = semver::Version::parse(&format!("{msrv}.0")).unwrap();
    assert!(semver::Version::parse(channel).unwrap() >= msrv);
}

/// A job's `needs`, as a list whether written as one name or several.
fn needs(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::String(n) => vec![n.clone()],
        Value::Array(n) => n
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The release in jobs by privilege: CI on the tagged commit first, then build (packages), then
/// sign (OIDC, attestations), then the GitHub release (contents), one release at a time.
#[test]
fn release_runs_after_ci_in_jobs_by_privilege() {
    let release = load(".github/workflows/release.yml");
    let jobs = release["jobs"].as_object().unwrap();
    let names: Vec<&String> = jobs.keys().collect();
    assert_eq!(
        names,
        ["build", "ci", "publish", "sign"],
        "release.yml jobs"
    );
    let perms = |job: &str| release["jobs"][job]["permissions"].clone();
    use serde_json::json;
    assert_eq!(
        perms("build"),
        json!({"contents": "read", "packages": "write"})
    );
    assert_eq!(
        perms("sign"),
        json!({"contents": "read", "id-token": "write", "attestations": "write",
               "packages": "write"})
    );
    assert_eq!(perms("publish"), json!({"contents": "write"}));
    // Each job after the one before; publish also reads build's outputs.
    assert_eq!(needs(&release["jobs"]["build"]), ["ci"]);
    assert_eq!(needs(&release["jobs"]["sign"]), ["build"]);
    let publish = needs(&release["jobs"]["publish"]);
    assert!(
        publish.contains(&"sign".to_owned()),
        "publish needs {publish:?}"
    );
    assert!(
        publish.iter().all(|n| n == "sign" || n == "build"),
        "{publish:?}"
    );
    // Only build compiles and pushes; the key-less signing compiles nothing.
    let runs = |job: &str| -> String {
        release["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(runs("build").contains("cargo xtask release "));
    assert!(
        runs("publish").contains("--prerelease"),
        "{}",
        runs("publish")
    );
    assert!(
        runs("publish").contains("--latest=false"),
        "{}",
        runs("publish")
    );
    assert!(
        runs("sign").contains("cosign sign --yes"),
        "{}",
        runs("sign")
    );
    assert_eq!(
        release["concurrency"],
        json!({"group": "release", "cancel-in-progress": false}),
        "one release at a time, never cancelled"
    );

    // ci.yml on the tagged commit, as a called workflow; its main-only publish stays main-only.
    let ci_job = &release["jobs"]["ci"];
    assert_eq!(ci_job["uses"], "$/.github/workflows/ci.yml");
    assert!(
        ci_job.get("secrets").is_none(),
        "ci.yml needs no secret passed on"
    );
    let ci = load(".github/workflows/ci.yml");
    // PyYAML reads YAML 1.1, where the key `on` is the boolean true.
    let on = ci.get("on").or_else(|| ci.get("true")).unwrap();
    assert!(
        on.as_object().unwrap().contains_key("workflow_call"),
        "ci.yml cannot be called (on: workflow_call)"
    );
    let publish_if = ci["jobs"]["publish"]["if"].as_str().unwrap_or_default();
    assert!(
        publish_if.contains("github.ref == 'refs/heads/main'"),
        "ci.yml publish would run for a release tag: {publish_if}"
    );
    // GitHub refuses to start a run whose called jobs ask for more than the calling job grants,
    // `if` or not: the ci job grants exactly the most each permission is asked for there.
    let rank = |level: &str| match level {
        "write" => 2,
        "read" => 1,
        _ => 0,
    };
    let mut most = serde_json::Map::new();
    for job in ci["jobs"].as_object().unwrap().values() {
        for (perm, level) in job["permissions"].as_object().unwrap() {
            let level = level.as_str().unwrap();
            let held = most.get(perm).and_then(Value::as_str).unwrap_or("none");
            if rank(level) > rank(held) {
                most.insert(perm.clone(), level.into());
            }
        }
    }
    assert_eq!(ci_job["permissions"], Value::Object(most));
}

/// The sign job's steps under act: the keyless ones (Sigstore's OIDC, GitHub's attestation
/// store) only on GitHub; the key-signing ones wherever a key is given, so act's release run
/// signs with a throwaway key; the key reaches `cargo xtask` through its environment (`env://`),
/// never a file.
#[test]
fn release_signs_keyless_on_github_and_with_a_key_under_act_too() {
    let release = load(".github/workflows/release.yml");
    let steps = release["jobs"]["sign"]["steps"].as_array().unwrap();
    let mut keyed = 0;
    for step in steps {
        let cond = step["if"].as_str().unwrap_or_default();
        let uses = step["uses"].as_str().unwrap_or_default();
        let run = step["run"].as_str().unwrap_or_default();
        let keyless = uses.starts_with("sigstore/cosign-installer@")
            || uses.starts_with("actions/attest@")
            || run.contains("cosign ");
        if keyless {
            assert!(
                cond.contains("!env.ACT"),
                "sign: a GitHub-only step runs under act: {step}"
            );
        }
        if run.contains("COSIGN_PRIVATE_KEY") || cond.contains("HAS_KEY") {
            assert_eq!(
                cond, "${{ env.HAS_KEY == 'true' }}",
                "sign: a key step must run wherever a key is given, act included: {step}"
            );
            keyed += 1;
        }
        if run.contains("--key") {
            for line in run.lines().filter(|l| l.contains("--key")) {
                assert!(
                    line.contains("--key env://COSIGN_PRIVATE_KEY"),
                    "sign: the key goes through the environment, never a file: {line}"
                );
            }
            assert_eq!(
                step["env"]["COSIGN_PRIVATE_KEY"], "${{ secrets.COSIGN_PRIVATE_KEY }}",
                "{step}"
            );
        }
    }
    // The checkout, the setup and the signing itself.
    assert_eq!(keyed, 3, "{steps:#?}");
    // The evidence the key steps attach is downloaded under act too.
    let download = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/download-artifact@"))
        })
        .unwrap();
    assert!(download.get("if").is_none(), "{download}");
}

/// On GitHub the test job runs the whole suite: `cargo xtask test` as it is, with nothing that
/// narrows it (XTASK_TEST_ONLY is only for `cargo xtask act`, which would otherwise run the act
/// tests inside act again).
#[test]
fn ci_test_job_runs_the_whole_suite() {
    let ci = load(".github/workflows/ci.yml");
    let runs: Vec<&str> = ci["jobs"]["test"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert_eq!(runs, ["cargo xtask setup test", "cargo xtask test"]);
    for path in WORKFLOWS {
        assert!(
            !read(path).contains("XTASK_TEST_ONLY"),
            "{path} narrows the test suite"
        );
    }
}
