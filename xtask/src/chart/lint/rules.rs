//! PromQL alert rules: the rendered PrometheusRule under `promtool check rules`, and the unit
//! tests in charts/tests/rules/ under `promtool test rules` (each alert fires and stays quiet).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::manifest::load_documents;
use crate::chart::TESTS_DIR;
use crate::chart::engine::Rendered;
use crate::tools::{self, Tool};

/// Prometheus' rule checker and unit test runner.
pub const PROMTOOL: Tool = Tool::apt("promtool", "prometheus");

/// `promtool check rules` on the rendered rules and `promtool test rules` with the unit tests in
/// charts/tests/rules/ (their `rule_files` name `rules.yaml`, written next to them here).
pub fn check(sh: &Shell, rendered: &[Rendered], work: &Path) -> Result<()> {
    let promtool = tools::need(sh, &PROMTOOL)?;
    let dir = work.join("rules");
    std::fs::create_dir_all(&dir)?;
    let rules = dir.join("rules.yaml");
    tools::write_atomic(
        &rules,
        serde_json::to_string_pretty(&prometheus_rules(rendered)?)?.as_bytes(),
    )?;
    cmd!(sh, "{promtool} check rules {rules}")
        .run()
        .context("promtool check rules on the rendered PrometheusRule")?;
    let tests_dir = sh.current_dir().join(TESTS_DIR).join("rules");
    let mut tests = Vec::new();
    for entry in
        std::fs::read_dir(&tests_dir).with_context(|| format!("reading {}", tests_dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let copy = dir.join(path.file_name().expect("a file name"));
            std::fs::copy(&path, &copy)?;
            tests.push(copy);
        }
    }
    tests.sort();
    ensure!(
        !tests.is_empty(),
        "no rule tests in {}",
        tests_dir.display()
    );
    cmd!(sh, "{promtool} test rules {tests...}")
        .run()
        .context("promtool test rules (charts/tests/rules/)")
}

/// The PrometheusRule of the all-on render (every rule switched on), as a Prometheus rules file.
pub fn prometheus_rules(rendered: &[Rendered]) -> Result<Value> {
    let all_on = rendered
        .iter()
        .find(|r| r.label == "all-on")
        .context("the all-on case was not rendered")?;
    load_documents(&all_on.path)?
        .into_iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .map(|d| serde_json::json!({ "groups": d["spec"]["groups"] }))
        .with_context(|| format!("{}: no PrometheusRule", all_on.path.display()))
}
