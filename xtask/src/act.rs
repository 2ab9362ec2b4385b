//! `cargo xtask act`: runs the GitHub workflows locally and offline with act, in host mode.
//!
//! Every third-party `uses:` is mapped (`--local-repository`) to a generated stand-in under
//! `target/act/actions/`, so nothing is fetched; the steps that matter are `cargo xtask ...` and
//! run for real. Stand-ins are inert, except the artifact actions: they keep one run's artifacts
//! under `target/act/artifacts/<workflow>/`, so a job gets what an earlier job of the same run
//! uploaded. The GitHub-only steps (`if: ${{ !env.ACT }}`) are skipped by the workflows.
//!
//! act gets a copy of the workflow (`target/act/workflows/`) when the task changes it: jobs that
//! call a local workflow left out, only the chosen `--job`s and what they need, and with
//! `--runner-path` a job-level `env: PATH:` per job (act passes one PATH to every job of a run,
//! but honours a job's own `PATH` in host mode).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use xshell::{Shell, cmd};

use crate::release::ReleaseTag;
use crate::setup::inventory::Inventory;
use crate::setup::workflow::CI_RUN;
use crate::tools::{self, Needs, Tool};
use crate::workspace::Workspace;

/// act itself, from the venv. The jobs it runs install their own tools (their setup steps).
pub const ACT: Tool = Tool::pip("act");
/// `--runner-path` lists the base system's programs from the package database.
pub const DPKG_QUERY: Tool = Tool::apt("dpkg-query", "dpkg");
pub const DPKG: Tool = Tool::apt("dpkg", "dpkg");
pub const NEEDS: Needs = Needs {
    tools: &[&ACT, &DPKG_QUERY, &DPKG],
    tasks: &[],
};

/// Run a workflow locally with act (offline, host mode, stand-ins for third-party actions).
#[derive(Debug, Args)]
pub struct Act {
    /// The workflow file under .github/workflows/.
    #[arg(long, default_value = "ci.yml")]
    pub workflow: String,
    /// The event to simulate.
    #[arg(long, value_enum, default_value = "pull-request")]
    pub event: Event,
    /// The tag a `tag` event pushes (must match the app crate's version for a real release run).
    #[arg(long, default_value = "v0.0.0", value_name = "vX.Y.Z")]
    pub tag: ReleaseTag,
    /// Run only this job, after the jobs it needs (as act's -j); repeatable, so one run covers
    /// several jobs.
    #[arg(long = "job", value_name = "JOB")]
    pub jobs: Vec<String>,
    /// The registry the workflow pushes to (`vars.REGISTRY`), e.g. 127.0.0.1:5000/acme.
    #[arg(long, value_name = "HOST[:PORT]/PATH")]
    pub registry: Option<String>,
    /// A secret for the workflow, NAME=VALUE or NAME (value from the environment); repeatable.
    /// Values never reach the output: act masks them.
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub secret: Vec<String>,
    /// An environment variable for every step (act's --env), NAME=VALUE; repeatable. Printed:
    /// never a secret.
    #[arg(long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Run each job with PATH reduced to what GitHub's runner has (.github/runner-inventory.yml,
    /// plus the base system every Ubuntu has) and what that job's `cargo xtask setup` steps
    /// install, as found on this machine: a job that relies on something only this machine has
    /// fails here as it would there.
    #[arg(long)]
    pub runner_path: bool,
    /// Only plan: act's dry run (-n) validates the workflow and what would run.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// The event a local run simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Event {
    /// A pull request against main.
    PullRequest,
    /// A push to main.
    Push,
    /// A push of the `--tag` tag (release.yml).
    Tag,
}

impl Act {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let act = tools::need(sh, &ACT)?;
        let root = sh.current_dir();
        let workflow = root.join(".github/workflows").join(&self.workflow);
        let text = std::fs::read_to_string(&workflow)
            .with_context(|| format!("reading {}", workflow.display()))?;
        let work = root.join("target/act");
        // act's dry run (-n) still executes `run:` scripts in host mode; a stub `bash` first on
        // PATH prints each script instead, so the dry run plans everything and runs nothing.
        let stub_dir = work.join("dry-run-bin");
        if self.dry_run {
            std::fs::create_dir_all(&stub_dir)?;
            let stub = stub_dir.join("bash");
            tools::write_atomic(&stub, DRY_RUN_BASH.as_bytes())?;
            std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        let with_stub = |path: &OsStr| -> Result<OsString> {
            Ok(if self.dry_run {
                std::env::join_paths(
                    std::iter::once(stub_dir.clone()).chain(std::env::split_paths(path)),
                )?
            } else {
                path.to_owned()
            })
        };
        // act runs the workflow as written, unless jobs are left out or get their own PATH:
        // then a copy of it.
        let mut wf =
            workflow_json(&text).with_context(|| format!("reading {}", workflow.display()))?;
        let calls = drop_workflow_calls(&mut wf)?;
        if !calls.is_empty() {
            eprintln!(
                "act: {}: left out job(s) {} (they call a workflow of this repository: run \
                 it with `cargo xtask act --workflow FILE`)",
                self.workflow,
                calls.join(", ")
            );
        }
        let left_out = only_jobs(&mut wf, &self.jobs)
            .with_context(|| format!("choosing jobs of {}", workflow.display()))?;
        if self.runner_path {
            let paths = runner_paths(&root, &text, &wf, &work)?;
            for (job, dir) in paths {
                let path = with_stub(dir.as_os_str())?;
                set_job_env(&mut wf, &job, "PATH", &path.to_string_lossy())?;
            }
        }
        let workflow = if calls.is_empty() && left_out.is_empty() && !self.runner_path {
            workflow
        } else {
            let path = work.join("workflows").join(&self.workflow);
            std::fs::create_dir_all(work.join("workflows"))?;
            tools::write_atomic(&path, serde_json::to_string_pretty(&wf)?.as_bytes())?;
            path
        };
        // Artifacts pass between the jobs of one run, as on GitHub: none from an earlier run.
        // One store per workflow, and a dry run (which uploads nothing) leaves it alone: runs of
        // other workflows, or plans, at the same time never empty it under a run.
        let stem = self
            .workflow
            .trim_end_matches(".yml")
            .trim_end_matches(".yaml");
        let artifacts = work.join("artifacts").join(stem);
        if artifacts.exists() && !self.dry_run {
            std::fs::remove_dir_all(&artifacts)
                .with_context(|| format!("removing {}", artifacts.display()))?;
        }
        let mut args = local_repositories(&text, &work.join("actions"), &artifacts)?;
        let event = work.join(format!("event-{:?}.json", self.event).to_lowercase());
        std::fs::create_dir_all(&work)?;
        tools::write_atomic(&event, event_payload(self.event, &self.tag).as_bytes())?;
        args.extend(["-e".into(), event.display().to_string()]);
        for env in &self.env {
            anyhow::ensure!(
                env.split_once('=')
                    .is_some_and(|(name, _)| !name.is_empty()),
                "--env {env}: expected NAME=VALUE"
            );
            args.extend(["--env".into(), env.clone()]);
        }
        if let Some(registry) = &self.registry {
            args.extend(["--var".into(), format!("REGISTRY={registry}")]);
        }
        // Values go to act through its environment and only names on its command line, which
        // is printed and visible to other processes.
        let mut secret_env = Vec::new();
        for secret in &self.secret {
            let (name, value) = match secret.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (secret.as_str(), None),
            };
            if let Some(value) = value {
                secret_env.push(sh.push_env(name, value));
            }
            args.extend(["-s".into(), name.to_owned()]);
        }
        // Builds inside act reuse what is already compiled here (and the venv in it): act's copy
        // of the repository shares this checkout's target directory. The xtask binary built
        // there may then serve this checkout too, which is safe: it finds its checkout at run
        // time (`Workspace::locate`), and the copy's sources are this checkout's.
        let workspace = Workspace::current()?;
        args.extend([
            "--env".into(),
            format!("CARGO_TARGET_DIR={}", workspace.target_directory.display()),
        ]);
        if workspace.build_directory != workspace.target_directory {
            args.extend([
                "--env".into(),
                format!(
                    "CARGO_BUILD_BUILD_DIR={}",
                    workspace.build_directory.display()
                ),
            ]);
        }
        if let Some(db) = crate::scan::deps::advisory_db_dir(&root, None) {
            // act runs in a copy of the repository, where the snapshot is not beside it.
            args.extend([
                "--env".into(),
                format!("XTASK_ADVISORY_DB={}", db.display()),
            ]);
        }
        // act itself, and the jobs without a PATH of their own, use this one.
        let path = with_stub(&std::env::var_os("PATH").unwrap_or_default())?;
        if self.dry_run {
            args.push("-n".into());
        }
        let _path = sh.push_env("PATH", path);
        let event_name = match self.event {
            Event::PullRequest => "pull_request",
            Event::Push | Event::Tag => "push",
        };
        let cache = work.join("cache");
        eprintln!(
            "act: {} on {event_name}{}",
            self.workflow,
            if self.dry_run { " (dry run)" } else { "" }
        );
        // The jobs get act's environment: without what `cargo run` set for this xtask, which no
        // runner has, and which would make their builds rebuild ring and all above it.
        crate::without_cargo_run_env(cmd!(
            sh,
            "{act} {event_name} -W {workflow} -P ubuntu-latest=-self-hosted --action-offline-mode
                --action-cache-path {cache} --no-cache-server {args...}"
        ))
        .run()
        .with_context(|| format!("act run of {} failed", self.workflow))?;
        Ok(())
    }
}

/// A workflow file's text as JSON (which is YAML): what act gets when it runs a copy.
pub fn workflow_json(text: &str) -> Result<serde_json::Value> {
    use saphyr::LoadableYamlNode;
    let docs = saphyr::Yaml::load_from_str(text).context("parsing the workflow")?;
    crate::chart::lint::manifest::yaml_to_json(docs.first().context("an empty workflow")?)
}

fn jobs_mut(wf: &mut serde_json::Value) -> Result<&mut serde_json::Map<String, serde_json::Value>> {
    wf["jobs"]
        .as_object_mut()
        .context("the workflow has no jobs")
}

/// A job's `needs`, whether written as one name or a list.
fn needs_of(job: &serde_json::Value) -> Vec<String> {
    match &job["needs"] {
        serde_json::Value::String(n) => vec![n.clone()],
        serde_json::Value::Array(n) => n
            .iter()
            .filter_map(|n| n.as_str())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Leaves out the jobs that call a workflow of this repository (`uses: $/...` or `./...`), and
/// them from any job's `needs`; returns their names.
///
/// act 0.2.89 runs a called local workflow's jobs inside the caller's run, and `-j JOB` still runs
/// JOB's `needs` first: release.yml's `build` under act would first run all of ci.yml (the whole
/// test suite), whose actions are not mapped to stand-ins either, so offline it fails at once.
/// The called workflow is run under act on its own; the caller runs without it.
pub fn drop_workflow_calls(wf: &mut serde_json::Value) -> Result<Vec<String>> {
    let jobs = jobs_mut(wf)?;
    let dropped: Vec<String> = jobs
        .iter()
        .filter(|(_, job)| {
            job["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("$/") || u.starts_with("./"))
        })
        .map(|(name, _)| name.clone())
        .collect();
    if dropped.is_empty() {
        return Ok(dropped);
    }
    for name in &dropped {
        jobs.remove(name);
    }
    for job in jobs.values_mut() {
        let needs = needs_of(job);
        let Some(job) = job.as_object_mut() else {
            continue;
        };
        if !job.contains_key("needs") {
            continue;
        }
        let kept: Vec<String> = needs.into_iter().filter(|n| !dropped.contains(n)).collect();
        if kept.is_empty() {
            job.remove("needs");
        } else {
            job.insert("needs".into(), kept.into());
        }
    }
    Ok(dropped)
}

/// Keeps `jobs` and the jobs they need (transitively), as act's `-j` does for one job; returns
/// the names left out. No names: every job stays.
pub fn only_jobs(wf: &mut serde_json::Value, jobs: &[String]) -> Result<Vec<String>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let all = jobs_mut(wf)?;
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = jobs.to_vec();
    while let Some(name) = todo.pop() {
        let job = all.get(&name).with_context(|| {
            format!(
                "no job `{name}` (jobs: {})",
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        todo.extend(needs_of(job));
        keep.insert(name);
    }
    let left_out: Vec<String> = all.keys().filter(|n| !keep.contains(*n)).cloned().collect();
    all.retain(|name, _| keep.contains(name));
    Ok(left_out)
}

/// Sets a job-level environment variable (act honours a job's `env: PATH:` in host mode).
pub fn set_job_env(wf: &mut serde_json::Value, job: &str, name: &str, value: &str) -> Result<()> {
    let job_value = jobs_mut(wf)?
        .get_mut(job)
        .with_context(|| format!("no job `{job}`"))?;
    let job_map = job_value
        .as_object_mut()
        .with_context(|| format!("job `{job}` is not a mapping"))?;
    let env = job_map
        .entry("env")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .with_context(|| format!("job `{job}`: `env` is not a mapping"))?;
    env.insert(name.to_owned(), value.into());
    Ok(())
}

/// For every job of `wf` (a copy of the workflow `text`), a directory holding links to the
/// programs that job may use on GitHub's runner: the inventory's, those its setup steps install,
/// and the base system (the files of the packages Debian and Ubuntu mark Essential, which every
/// such machine has), each found on this machine's PATH. A program this machine lacks is left
/// out, so a task needing it fails as it would there.
fn runner_paths(
    root: &Path,
    text: &str,
    wf: &serde_json::Value,
    work: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let runner = Inventory::load(root)?;
    let ci_run =
        std::fs::read_to_string(root.join(CI_RUN)).with_context(|| format!("reading {CI_RUN}"))?;
    let essential = essential_programs()?;
    let mut paths = Vec::new();
    for job in crate::setup::workflow::jobs(text, &ci_run)? {
        if wf["jobs"].get(&job.name).is_none() {
            continue;
        }
        let mut programs = job.programs(&runner)?;
        programs.extend(essential.iter().cloned());
        let dir = work.join("runner-path").join(&job.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let mut linked = 0;
        for program in &programs {
            if let Some(found) = tools::which(program) {
                std::os::unix::fs::symlink(&found, dir.join(program))
                    .with_context(|| format!("linking {program} into {}", dir.display()))?;
                linked += 1;
            }
        }
        eprintln!(
            "act: job {} runs with PATH={} ({linked} of the {} programs the runner and its \
             setup steps give)",
            job.name,
            dir.display(),
            programs.len()
        );
        paths.push((job.name, dir));
    }
    Ok(paths)
}

/// The programs in the bin directories of the installed packages marked Essential.
fn essential_programs() -> Result<BTreeSet<String>> {
    let sh = Shell::new()?;
    let format = "${Package}\t${Essential}\n";
    let dpkg_query = tools::need(&sh, &DPKG_QUERY)?;
    let dpkg = tools::need(&sh, &DPKG)?;
    let listed = cmd!(sh, "{dpkg_query} -W -f {format}")
        .quiet()
        .read()
        .context("listing the installed packages (dpkg-query)")?;
    let essential: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, essential)| *essential == "yes")
        .map(|(package, _)| package)
        .collect();
    let files = cmd!(sh, "{dpkg} -L {essential...}")
        .quiet()
        .read()
        .context("listing the files of the essential packages (dpkg -L)")?;
    Ok(files
        .lines()
        .filter_map(|f| f.rsplit_once('/'))
        .filter(|(dir, _)| ["/bin", "/usr/bin", "/sbin", "/usr/sbin"].contains(dir))
        .map(|(_, name)| name.to_owned())
        .collect())
}

/// Stands in for `bash` during a dry run: act calls `bash ... SCRIPT`; print SCRIPT, run nothing.
const DRY_RUN_BASH: &str = "#!/bin/sh\n\
# Generated by `cargo xtask act --dry-run`: prints the step's script instead of running it.\n\
for script; do :; done\n\
sed -n 's/^..*/would run: &/p' \"$script\"\n";

/// A third-party action a workflow uses: `owner/repo[/path]@ref # version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRef {
    pub owner: String,
    pub repo: String,
    /// The action's directory inside the repository, e.g. `upload-sarif`.
    pub path: Option<String>,
    pub git_ref: String,
    /// The version comment after the ref (`# v4.2.2` gives `v4.2.2`), empty when absent.
    pub version: String,
}

impl ActionRef {
    /// As written after `uses:`.
    pub fn uses(&self) -> String {
        match &self.path {
            Some(p) => format!("{}/{}/{p}@{}", self.owner, self.repo, self.git_ref),
            None => format!("{}/{}@{}", self.owner, self.repo, self.git_ref),
        }
    }
}

/// Every distinct remote action in a workflow's `uses:` lines (local `./` actions and `docker://`
/// images are not remote repositories), in order of first use.
pub fn action_refs(workflow: &str) -> Vec<ActionRef> {
    let mut refs: Vec<ActionRef> = Vec::new();
    for line in workflow.lines() {
        let line = line.trim_start().trim_start_matches("- ");
        let Some(rest) = line.strip_prefix("uses:") else {
            continue;
        };
        let (spec, comment) = match rest.split_once('#') {
            Some((s, c)) => (s.trim(), c.trim()),
            None => (rest.trim(), ""),
        };
        let spec = spec.trim_matches(|c| c == '"' || c == '\'');
        if spec.starts_with("./") || spec.starts_with("docker://") {
            continue;
        }
        let Some((name, git_ref)) = spec.split_once('@') else {
            continue;
        };
        let mut parts = name.splitn(3, '/');
        let (Some(owner), Some(repo)) = (parts.next(), parts.next()) else {
            continue;
        };
        let r = ActionRef {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            path: parts.next().map(str::to_owned),
            git_ref: git_ref.to_owned(),
            version: comment.split_whitespace().next().unwrap_or("").to_owned(),
        };
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    refs
}

/// A composite action standing in for `action` under act. The artifact actions keep a run's
/// artifacts under `artifacts` (upload copies `path` into `<artifacts>/<name>`, download copies
/// it back out), so a job gets what an earlier job of the same run uploaded; every other
/// stand-in says what it replaces and does nothing else. Steps that must really happen are
/// `cargo xtask` steps, not actions.
pub fn stand_in(action: &ActionRef, artifacts: &Path) -> String {
    let uses = action.uses();
    let header = format!(
        "# Generated by `cargo xtask act`: a local stand-in for {uses}.\nname: stand-in for {uses}\n"
    );
    let script = match (action.owner.as_str(), action.repo.as_str()) {
        ("actions", "upload-artifact") => Some((UPLOAD_ARTIFACT, "")),
        ("actions", "download-artifact") => Some((DOWNLOAD_ARTIFACT, ".")),
        _ => None,
    };
    let Some((script, path_default)) = script else {
        return format!(
            "{header}description: does nothing under act; the real action runs on GitHub\n\
             runs:\n  using: composite\n  steps:\n    - shell: bash\n      \
             run: echo 'stand-in for {uses}, a GitHub-only action, skipped under act'\n"
        );
    };
    // A JSON string is a YAML scalar: the store's path needs no quoting rules of its own.
    let store = serde_json::Value::from(artifacts.display().to_string());
    // Inputs reach the script as environment variables, never as text inside it.
    let env = [
        ("NAME", "${{ inputs.name }}".to_owned()),
        ("ARTIFACT_PATH", "${{ inputs.path }}".to_owned()),
        ("STORE", store.to_string()),
    ]
    .iter()
    .map(|(name, value)| format!("        {name}: {value}\n"))
    .collect::<String>();
    format!(
        "{header}description: keeps artifacts under {store} for the jobs of one act run\n\
         inputs:\n  name:\n    default: artifact\n  path:\n    default: \"{path_default}\"\n\
         runs:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n{env}      \
         run: |\n{}",
        indent(script, 8)
    )
}

/// actions/upload-artifact under act, for one file or directory (`ARTIFACT_PATH`): its contents
/// become the artifact `NAME` under `STORE`, replacing an earlier one of that name.
pub const UPLOAD_ARTIFACT: &str = r#"set -euo pipefail
if [ ! -e "$ARTIFACT_PATH" ]; then
  echo "upload-artifact (act stand-in): $ARTIFACT_PATH does not exist, no artifact $NAME" >&2
  exit 1
fi
rm -rf "${STORE:?}/$NAME"
mkdir -p "$STORE/$NAME"
if [ -d "$ARTIFACT_PATH" ]; then
  cp -R "$ARTIFACT_PATH/." "$STORE/$NAME/"
else
  cp "$ARTIFACT_PATH" "$STORE/$NAME/"
fi
echo "upload-artifact (act stand-in): $ARTIFACT_PATH stored as artifact $NAME"
"#;

/// actions/download-artifact under act: the artifact `NAME` of this run, from `STORE` into
/// `ARTIFACT_PATH`, as the real action extracts it.
pub const DOWNLOAD_ARTIFACT: &str = r#"set -euo pipefail
if [ ! -d "$STORE/$NAME" ]; then
  echo "download-artifact (act stand-in): no artifact $NAME in this act run; the job that" \
    "uploads it must run first, in the same run" >&2
  exit 1
fi
mkdir -p "$ARTIFACT_PATH"
cp -R "$STORE/$NAME/." "$ARTIFACT_PATH/"
echo "download-artifact (act stand-in): artifact $NAME extracted into $ARTIFACT_PATH"
"#;

/// `text` with every line indented by `n` spaces: the body of a YAML block scalar.
fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|line| format!("{:n$}{line}\n", ""))
        .collect()
}

/// Writes a stand-in for every action of `workflow` under `dir` (the artifact stand-ins keep
/// their artifacts under `artifacts`) and returns act's `--local-repository owner/repo@ref=DIR`
/// arguments for them.
pub fn local_repositories(workflow: &str, dir: &Path, artifacts: &Path) -> Result<Vec<String>> {
    let mut args = Vec::new();
    for action in action_refs(workflow) {
        let repo_dir = dir.join(format!(
            "{}/{}@{}",
            action.owner, action.repo, action.git_ref
        ));
        let action_dir = match &action.path {
            Some(p) => repo_dir.join(p),
            None => repo_dir.clone(),
        };
        std::fs::create_dir_all(&action_dir)
            .with_context(|| format!("creating {}", action_dir.display()))?;
        tools::write_atomic(
            &action_dir.join("action.yml"),
            stand_in(&action, artifacts).as_bytes(),
        )?;
        let mapping = format!(
            "{}/{}@{}={}",
            action.owner,
            action.repo,
            action.git_ref,
            repo_dir.display()
        );
        if !args.contains(&mapping) {
            args.push("--local-repository".into());
            args.push(mapping);
        }
    }
    Ok(args)
}

/// The event payload act reads (`-e`): what `github.*` holds in the workflow.
pub fn event_payload(event: Event, tag: &ReleaseTag) -> String {
    let value = match event {
        Event::PullRequest => serde_json::json!({
            "pull_request": {
                "number": 1,
                "head": { "ref": "feature" },
                "base": { "ref": "main" },
            },
        }),
        Event::Push => serde_json::json!({ "ref": "refs/heads/main" }),
        Event::Tag => serde_json::json!({ "ref": tag.git_ref().to_string() }),
    };
    serde_json::to_string_pretty(&value).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use saphyr::LoadableYamlNode;

    use super::*;

    #[test]
    fn jobs_calling_a_local_workflow_are_left_out_with_their_needs() {
        let text = "on: push\njobs:\n  ci:\n    uses: $/.github/workflows/ci.yml\n  \
                    build:\n    needs: ci\n    runs-on: x\n    steps: [{run: a}]\n  \
                    sign:\n    needs: [ci, build]\n    runs-on: x\n    steps: [{run: b}]\n";
        let mut wf = workflow_json(text).unwrap();
        assert_eq!(drop_workflow_calls(&mut wf).unwrap(), ["ci"]);
        assert_eq!(wf["on"], "push");
        let jobs: Vec<&String> = wf["jobs"].as_object().unwrap().keys().collect();
        assert_eq!(jobs, ["build", "sign"]);
        assert!(wf["jobs"]["build"].get("needs").is_none(), "{wf}");
        assert_eq!(wf["jobs"]["sign"]["needs"], serde_json::json!(["build"]));
        assert_eq!(wf["jobs"]["sign"]["steps"][0]["run"], "b");
        // A workflow without such jobs runs as it is.
        let ci = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/ci.yml"),
        );
        let mut ci = workflow_json(&ci.unwrap()).unwrap();
        assert!(drop_workflow_calls(&mut ci).unwrap().is_empty());
    }

    #[test]
    fn chosen_jobs_keep_what_they_need_and_get_their_own_env() {
        let text = "on: push\njobs:\n  a: {runs-on: x, steps: [{run: a}]}\n  \
                    b: {needs: a, runs-on: x, env: {K: v}, steps: [{run: b}]}\n  \
                    c: {needs: [b], runs-on: x, steps: [{run: c}]}\n  \
                    d: {runs-on: x, steps: [{run: d}]}\n  e: {needs: d, runs-on: x}\n";
        let all = |wf: &serde_json::Value| -> Vec<String> {
            wf["jobs"].as_object().unwrap().keys().cloned().collect()
        };
        let mut wf = workflow_json(text).unwrap();
        assert_eq!(
            only_jobs(&mut wf, &["c".into(), "d".into()]).unwrap(),
            ["e"]
        );
        assert_eq!(all(&wf), ["a", "b", "c", "d"]);
        let mut wf = workflow_json(text).unwrap();
        assert!(only_jobs(&mut wf, &[]).unwrap().is_empty());
        assert_eq!(all(&wf).len(), 5);
        let err = only_jobs(&mut wf, &["z".into()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("no job `z` (jobs: a, b, c, d, e)"),
            "{err:#}"
        );

        set_job_env(&mut wf, "a", "PATH", "/p/a").unwrap();
        set_job_env(&mut wf, "b", "PATH", "/p/b").unwrap();
        assert_eq!(wf["jobs"]["a"]["env"], serde_json::json!({"PATH": "/p/a"}));
        assert_eq!(
            wf["jobs"]["b"]["env"],
            serde_json::json!({"K": "v", "PATH": "/p/b"})
        );
        assert!(set_job_env(&mut wf, "z", "PATH", "/p").is_err());
    }

    const WORKFLOW: &str = "\
jobs:
  a:
    steps:
      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2
      - uses: github/codeql-action/upload-sarif@181d5eefc20863364f96762470ba6f862bdef56b # v3.29.2
      - uses: ./local
      - uses: docker://alpine:3
      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2
      - run: echo uses: nothing
";

    #[test]
    fn remote_actions_are_found_once_with_path_and_version() {
        let refs = action_refs(WORKFLOW);
        assert_eq!(refs.len(), 2);
        assert_eq!(
            refs[0].uses(),
            "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd"
        );
        assert_eq!(refs[0].version, "v6.0.2");
        assert_eq!(refs[1].path.as_deref(), Some("upload-sarif"));
        assert_eq!(refs[1].repo, "codeql-action");
    }

    #[test]
    fn stand_ins_are_written_where_act_looks_for_them() {
        let dir = std::env::temp_dir().join(format!("xtask-act-{}", std::process::id()));
        let args = local_repositories(WORKFLOW, &dir, &dir.join("artifacts")).unwrap();
        assert_eq!(args.len(), 4);
        assert_eq!(args[0], "--local-repository");
        let sarif_repo = dir.join("github/codeql-action@181d5eefc20863364f96762470ba6f862bdef56b");
        assert_eq!(
            args[3],
            format!(
                "github/codeql-action@181d5eefc20863364f96762470ba6f862bdef56b={}",
                sarif_repo.display()
            )
        );
        let action = std::fs::read_to_string(sarif_repo.join("upload-sarif/action.yml")).unwrap();
        assert!(action.contains("using: composite"), "{action}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The stand-in's one step, as act would run it: its script with the step's environment,
    /// the inputs given as `NAME` and `ARTIFACT_PATH`.
    fn run_stand_in(action: &str, store: &Path, name: &str, path: &Path) -> Result<()> {
        let (repo, _) = action.split_once('@').unwrap();
        let (owner, repo) = repo.split_once('/').unwrap();
        let action = ActionRef {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            path: None,
            git_ref: "0".repeat(40),
            version: "v1.0.0".to_owned(),
        };
        let yaml = stand_in(&action, store);
        let docs = saphyr::Yaml::load_from_str(&yaml).unwrap();
        let doc = crate::chart::lint::manifest::yaml_to_json(&docs[0]).unwrap();
        assert_eq!(doc["runs"]["using"], "composite", "{yaml}");
        let step = &doc["runs"]["steps"][0];
        assert_eq!(step["env"]["STORE"], store.display().to_string(), "{yaml}");
        assert_eq!(step["env"]["NAME"], "${{ inputs.name }}", "{yaml}");
        let script = step["run"].as_str().unwrap();
        let sh = Shell::new()?;
        let out = cmd!(sh, "bash -c {script}")
            .env("STORE", store)
            .env("NAME", name)
            .env("ARTIFACT_PATH", path)
            .quiet()
            .ignore_status()
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    #[test]
    fn artifacts_pass_from_upload_to_download_within_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let layout = dir.path().join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(layout.join("index.json"), "{}").unwrap();
        std::fs::write(layout.join("blobs/sha256/abc"), "blob").unwrap();
        let upload = "actions/upload-artifact@v7";
        let download = "actions/download-artifact@v8";

        run_stand_in(upload, &store, "oci-layout", &layout).unwrap();
        let out = dir.path().join("downloaded");
        run_stand_in(download, &store, "oci-layout", &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("index.json")).unwrap(),
            "{}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("blobs/sha256/abc")).unwrap(),
            "blob"
        );
        // A second upload of the name replaces the first, as in a re-run job.
        std::fs::remove_file(layout.join("blobs/sha256/abc")).unwrap();
        run_stand_in(upload, &store, "oci-layout", &layout).unwrap();
        assert!(!store.join("oci-layout/blobs/sha256/abc").exists());

        // No such artifact, or nothing to upload: the step fails, it never passes empty-handed.
        assert!(run_stand_in(download, &store, "other", &out).is_err());
        assert!(run_stand_in(upload, &store, "x", &dir.path().join("missing")).is_err());
    }

    #[test]
    fn other_stand_ins_do_nothing() {
        let yaml = stand_in(&action_refs(WORKFLOW)[1], Path::new("/nowhere"));
        assert!(yaml.contains("using: composite"), "{yaml}");
        assert!(!yaml.contains("/nowhere"), "{yaml}");
    }

    #[test]
    fn tag_event_carries_the_tag_ref() {
        let tag: ReleaseTag = "v1.2.3".parse().unwrap();
        let payload: serde_json::Value =
            serde_json::from_str(&event_payload(Event::Tag, &tag)).unwrap();
        assert_eq!(payload["ref"], "refs/tags/v1.2.3");
        assert!("1.2.3".parse::<ReleaseTag>().is_err());
        assert!("v1.2".parse::<ReleaseTag>().is_err());
    }
}
