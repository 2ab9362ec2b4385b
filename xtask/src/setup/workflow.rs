//! What each job of a workflow runs, as setup sees it: in order, its `cargo xtask setup` steps and
//! the tasks it runs (`.ci/run` counts as what it runs: `setup test`, then `test`). From that and
//! the runner's inventory: whether every task finds its tools, whether a setup step would fight
//! the runner's Docker, and which programs a job may use at all.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use saphyr::{LoadableYamlNode, Yaml};

use super::inventory::Inventory;
use crate::chart::lint::manifest::yaml_to_json;
use crate::tools::{Presence, Tool};

/// The script a step can run instead of `cargo xtask` lines (read from the checkout).
pub const CI_RUN: &str = ".ci/run";

/// One job: its name, its `runs-on` label and what it runs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub name: String,
    pub runs_on: String,
    pub steps: Vec<Step>,
}

/// One `cargo xtask` command of a job, by what setup cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `cargo xtask setup TASK...` (not `--check`, which installs nothing).
    Setup(Vec<String>),
    /// Any other task: its setup name (`chart-lint`) and the command line as written.
    Task { name: String, line: String },
}

/// The jobs of a workflow file's text; `ci_run` is the text of [`CI_RUN`].
pub fn jobs(workflow: &str, ci_run: &str) -> Result<Vec<Job>> {
    let docs = Yaml::load_from_str(workflow).context("parsing the workflow")?;
    let wf = yaml_to_json(docs.first().context("an empty workflow")?)?;
    let jobs = wf["jobs"].as_object().context("the workflow has no jobs")?;
    // A job that calls a workflow runs nothing itself: the called workflow is read on its own.
    Ok(jobs
        .iter()
        .filter(|(_, job)| !job["uses"].is_string())
        .map(|(name, job)| Job {
            name: name.clone(),
            runs_on: job["runs-on"].as_str().unwrap_or_default().to_owned(),
            steps: job["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|step| step["run"].as_str())
                .flat_map(|script| steps_of(script, Some(ci_run)))
                .collect(),
        })
        .collect())
}

/// The `cargo xtask` commands of a shell script, in order; a line that runs `.ci/run` stands for
/// the commands of `ci_run`. Comment lines do not count.
pub fn steps_of(script: &str, ci_run: Option<&str>) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in script.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if let Some(ci_run) = ci_run
            && line.contains(CI_RUN)
        {
            steps.extend(steps_of(ci_run, None));
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("cargo xtask ") {
            rest = &rest[at + "cargo xtask ".len()..];
            let words: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| !matches!(*w, "&&" | "||" | ";" | "|" | "\\"))
                .map(|w| w.trim_end_matches(';'))
                .collect();
            steps.extend(step_of(&words));
        }
    }
    steps
}

/// The step a `cargo xtask` command's words make: a setup step, a task, or nothing (`--check`).
fn step_of(words: &[&str]) -> Option<Step> {
    let (&first, rest) = words.split_first()?;
    if first == "setup" {
        if rest.iter().any(|w| matches!(*w, "--check" | "--dry-run")) {
            return None;
        }
        let tasks: Vec<String> = rest.iter().map(|w| (*w).to_owned()).collect();
        return Some(Step::Setup(if tasks.is_empty() {
            vec![super::DEFAULT_TASK.to_owned()]
        } else {
            tasks
        }));
    }
    let name = match (first, rest.first()) {
        ("image" | "chart" | "bench", Some(sub)) => format!("{first}-{sub}"),
        _ => first.to_owned(),
    };
    Some(Step::Task {
        name,
        line: words.join(" "),
    })
}

impl Job {
    /// What is wrong with this job on the runner the inventory describes: a task whose tools are
    /// neither on the runner nor installed by an earlier setup step, a setup step that would
    /// apt-install a package that removes the runner's Docker, a runner the inventory is not of.
    pub fn problems(&self, runner: &Inventory) -> Vec<String> {
        let job = &self.name;
        let mut problems = Vec::new();
        if !runner.runs_on.contains(&self.runs_on) {
            problems.push(format!(
                "job {job}: runs on `{}`, but the inventory describes {}",
                self.runs_on,
                runner.runs_on.join(", ")
            ));
        }
        let mut installed: Vec<&'static Tool> = Vec::new();
        for step in &self.steps {
            match step {
                Step::Setup(tasks) => {
                    let names: Vec<&str> = tasks.iter().map(String::as_str).collect();
                    let line = format!("cargo xtask setup {}", names.join(" "));
                    let plan = match super::plan(&names, runner) {
                        Ok(plan) => plan,
                        Err(err) => {
                            problems.push(format!("job {job}: `{line}`: {err:#}"));
                            continue;
                        }
                    };
                    for m in &plan {
                        if let Some(package) = m.tool.source.apt_package()
                            && let Some(victim) = runner.conflict(package)
                        {
                            problems.push(format!(
                                "job {job}: `{line}` would apt-get install {package} (for {}), \
                                 which removes the runner's {victim}",
                                m.tool.name
                            ));
                        }
                    }
                    installed.extend(plan.iter().map(|m| m.tool));
                }
                Step::Task { name, line } => match super::tools_for(&[name]) {
                    Err(err) => problems.push(format!("job {job}: `cargo xtask {line}`: {err:#}")),
                    Ok(tools) => {
                        let lacking: Vec<String> = tools
                            .into_iter()
                            .filter(|tool| !runner.has(tool) && !installed.contains(tool))
                            .map(Tool::describe)
                            .collect();
                        if !lacking.is_empty() {
                            problems.push(format!(
                                "job {job}: `cargo xtask {line}` needs {}, which the runner lacks \
                                 and no earlier step installs: run `cargo xtask setup {name}` \
                                 before it",
                                lacking.join(", ")
                            ));
                        }
                    }
                },
            }
        }
        problems
    }

    /// Every program the job may run: the runner's, plus those its setup steps install (for a
    /// run with PATH reduced to exactly these).
    pub fn programs(&self, runner: &Inventory) -> Result<BTreeSet<String>> {
        let mut programs: BTreeSet<String> = runner.programs.keys().cloned().collect();
        for step in &self.steps {
            if let Step::Setup(tasks) = step {
                let names: Vec<&str> = tasks.iter().map(String::as_str).collect();
                programs.extend(
                    super::tools_for(&names)?
                        .iter()
                        .filter_map(|t| t.program())
                        .map(str::to_owned),
                );
            }
        }
        Ok(programs)
    }
}
