//! `cargo xtask act`: runs the GitHub workflows locally and offline with act, in host mode.
//!
//! Every third-party `uses:` is mapped (`--local-repository`) to a generated inert stand-in under
//! `target/act/actions/`, so nothing is fetched; the steps that matter are `cargo xtask ...` and
//! run for real. The GitHub-only steps (`if: ${{ !env.ACT }}`) are skipped by the workflows.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use xshell::{Shell, cmd};

use crate::release::ReleaseTag;
use crate::tools::{self, Needs, Tool};
use crate::workspace::Workspace;

/// act itself, from the venv. The jobs it runs install their own tools (their setup steps).
pub const ACT: Tool = Tool::pip("act");
pub const NEEDS: Needs = Needs {
    tools: &[&ACT],
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
    /// Run only this job (act's -j).
    #[arg(long)]
    pub job: Option<String>,
    /// The registry the workflow pushes to (`vars.REGISTRY`), e.g. 127.0.0.1:5000/acme.
    #[arg(long, value_name = "HOST[:PORT]/PATH")]
    pub registry: Option<String>,
    /// A secret for the workflow, NAME=VALUE or NAME (value from the environment); repeatable.
    /// Values never reach the output: act masks them.
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub secret: Vec<String>,
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
        let mut args = local_repositories(&text, &work.join("actions"))?;
        let event = work.join(format!("event-{:?}.json", self.event).to_lowercase());
        std::fs::create_dir_all(&work)?;
        tools::write_atomic(&event, event_payload(self.event, &self.tag).as_bytes())?;
        args.extend(["-e".into(), event.display().to_string()]);
        if let Some(job) = &self.job {
            args.extend(["-j".into(), job.clone()]);
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
        // act's dry run (-n) still executes `run:` scripts in host mode; a stub `bash` first on
        // act's PATH prints each script instead, so the dry run plans everything and runs nothing.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = if self.dry_run {
            args.push("-n".into());
            let stub_dir = work.join("dry-run-bin");
            std::fs::create_dir_all(&stub_dir)?;
            let stub = stub_dir.join("bash");
            tools::write_atomic(&stub, DRY_RUN_BASH.as_bytes())?;
            std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            std::env::join_paths(std::iter::once(stub_dir).chain(std::env::split_paths(&path)))?
        } else {
            path
        };
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
        cmd!(
            sh,
            "{act} {event_name} -W {workflow} -P ubuntu-latest=-self-hosted --action-offline-mode
                --action-cache-path {cache} --no-cache-server {args...}"
        )
        .run()
        .with_context(|| format!("act run of {} failed", self.workflow))?;
        Ok(())
    }
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

/// An inert composite action standing in for `action` under act: it says what it replaces and
/// does nothing else. Steps that must really happen are `cargo xtask` steps, not actions.
pub fn stand_in(action: &ActionRef) -> String {
    format!(
        "# Generated by `cargo xtask act`: an inert local stand-in for {uses}.\n\
         name: stand-in for {uses}\n\
         description: does nothing under act; the real action runs on GitHub\n\
         runs:\n  using: composite\n  steps:\n    - shell: bash\n      \
         run: echo 'stand-in for {uses}, a GitHub-only action, skipped under act'\n",
        uses = action.uses()
    )
}

/// Writes a stand-in for every action of `workflow` under `dir` and returns act's
/// `--local-repository owner/repo@ref=DIR` arguments for them.
pub fn local_repositories(workflow: &str, dir: &Path) -> Result<Vec<String>> {
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
        tools::write_atomic(&action_dir.join("action.yml"), stand_in(&action).as_bytes())?;
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
    use super::*;

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
        let args = local_repositories(WORKFLOW, &dir).unwrap();
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
