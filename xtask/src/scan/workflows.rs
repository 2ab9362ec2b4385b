//! GitHub workflow audit: zizmor over `.github/`, offline, every finding counts.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{Finding, relative};
use crate::tools::{self, Tool};

/// The workflow auditor.
pub const ZIZMOR: Tool = Tool::pip("zizmor");

/// Runs zizmor over `.github/` (workflows and dependabot.yml) and returns its findings.
pub fn scan(sh: &Shell) -> Result<Vec<Finding>> {
    let zizmor = tools::need(sh, &ZIZMOR)?;
    // --offline: no GitHub API (CI has no token for it, act has no network); --persona regular
    // is zizmor's default set of audits, and every finding at any severity fails the scan.
    let output = cmd!(
        sh,
        "{zizmor} --offline --no-progress --format json --min-severity informational .github"
    )
    .ignore_status()
    .output()
    .context("running zizmor")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Ok(report) = serde_json::from_str::<Value>(&stdout) else {
        bail!(
            "zizmor failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    };
    Ok(parse(sh, &report))
}

/// zizmor's JSON (a list of findings, each with `locations`) as findings at their primary spot.
fn parse(sh: &Shell, report: &Value) -> Vec<Finding> {
    let mut found = Vec::new();
    for f in report.as_array().into_iter().flatten() {
        let locations = f["locations"].as_array();
        let primary = locations
            .and_then(|ls| {
                ls.iter()
                    .find(|l| l["symbolic"]["kind"] == "Primary")
                    .or(ls.first())
            })
            .cloned()
            .unwrap_or(Value::Null);
        let file = primary["symbolic"]["key"]["Local"]["verbatim_path"]
            .as_str()
            .unwrap_or(".github");
        let line = primary["concrete"]["location"]["start_point"]["row"]
            .as_u64()
            .map_or(1, |row| row as u32 + 1);
        let annotation = primary["symbolic"]["annotation"].as_str().unwrap_or("");
        found.push(Finding {
            tool: "zizmor",
            rule: f["ident"].as_str().unwrap_or("zizmor").to_owned(),
            message: format!("{} ({annotation})", f["desc"].as_str().unwrap_or("")),
            file: relative(sh, file),
            line,
        });
    }
    found
}
