//! `cargo xtask chart lint`: the chart rendered once by the Helm engine, then every check in
//! [`CHECKS`] over it, one module each. A new check is a module here and one line in the list.

pub mod crds;
pub mod dashboard;
pub mod kubernetes;
pub mod manifest;
pub mod metrics;
pub mod node;
pub mod policy;
pub mod readme;
pub mod rules;
pub mod service;
pub mod values;

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Args;
use xshell::Shell;

use super::engine::{Engine, Rendered};
use crate::tools::{CARGO, NODE, Needs, VENV_PYTHON};

/// `chart lint`: the Helm engine and the checkers in the venv, promtool, the node validators,
/// and cargo for the service whose metric names are checked.
pub const NEEDS: Needs = Needs {
    tools: &[
        &CARGO,
        &VENV_PYTHON,
        &kubernetes::KUBERNETES_VALIDATE,
        &policy::CHECKOV,
        &rules::PROMTOOL,
        &NODE,
        &node::NODE_TOOLS,
    ],
    tasks: &[],
};

/// Runs every chart check: Helm render and lint, Kubernetes and CRD schemas, checkov policy,
/// alert rule tests, dashboard queries, metric names, refused values, and the README.
#[derive(Debug, Args)]
pub struct Lint {
    /// Regenerate the README's Parameters table from values.yaml instead of failing when stale.
    #[arg(long)]
    pub fix_readme: bool,
}

/// What each check gets: the rendered chart and the tools to look at it.
pub struct Context<'a> {
    pub sh: &'a Shell,
    pub engine: &'a Engine,
    /// Every values case, rendered by the Helm engine.
    pub rendered: &'a [Rendered],
    /// Scratch directory under target/ for the files the tools read.
    pub work: &'a Path,
    /// The oldest and newest Kubernetes releases of Chart.yaml's kubeVersion.
    pub kube_versions: [&'a str; 2],
}

/// One check: its name in the output and what it runs.
type Check = fn(&Context) -> Result<()>;

/// Every check, in the order they run.
pub const CHECKS: &[(&str, Check)] = &[
    ("helm lint --strict (oldest and newest Kubernetes)", |c| {
        c.engine.lint(c.sh, &c.kube_versions)
    }),
    (
        "kubernetes-validate --strict (oldest and newest Kubernetes)",
        |c| kubernetes::validate(c.sh, c.rendered, &c.kube_versions),
    ),
    ("custom resources against their CRDs", |c| {
        crds::validate(c.sh, c.rendered)
    }),
    ("checkov", |c| policy::check(c.sh, c.rendered)),
    ("promtool check rules and test rules", |c| {
        rules::check(c.sh, c.rendered, c.work)
    }),
    ("dashboard PromQL (promtool)", |c| {
        dashboard::check(c.sh, c.work)
    }),
    ("metric names (against a scrape of the service)", |c| {
        metrics::check(c.sh, c.rendered)
    }),
    ("bad values are refused", |c| {
        values::refused(c.sh, c.engine)
    }),
    ("README parameters", |c| readme::check(c.sh, c.work, false)),
];

impl Lint {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let work = sh.current_dir().join("target/chart-lint");
        if self.fix_readme {
            // First, so the README is fixed even when a later check fails.
            step("README parameters (--fix-readme)");
            readme::check(sh, &work, true)?;
        }
        let engine = Engine::new(sh)?;
        step("render (Helm engine)");
        let rendered = engine.render_all(sh, &work.join("rendered"))?;
        let (oldest, newest) = kubernetes::kube_versions(sh)?;
        eprintln!("Kubernetes versions of Chart.yaml's kubeVersion: {oldest} and {newest}");
        let context = Context {
            sh,
            engine: &engine,
            rendered: &rendered,
            work: &work,
            kube_versions: [&oldest, &newest],
        };
        for (name, check) in CHECKS {
            step(name);
            check(&context).with_context(|| format!("chart lint: {name}"))?;
        }
        eprintln!("\nchart lint: all checks passed");
        Ok(())
    }
}

fn step(name: &str) {
    eprintln!("\n==> chart lint: {name}");
}
