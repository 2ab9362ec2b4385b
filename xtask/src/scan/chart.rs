//! Chart policy: checkov over the chart rendered by the real Helm engine (`chart lint`'s renders),
//! with the chart's own checkov settings (`charts/tests/checkov.yaml`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{Finding, relative};
use crate::tools;

const CHECKOV_CONFIG: &str = "charts/tests/checkov.yaml";

/// Renders the chart like `chart lint` does (defaults, every values-<env>.yaml and
/// charts/tests/all-on.yaml, in the chart's own namespace) under `target/security-scan/chart/`
/// and runs checkov over it, with findings at the rendered file and line.
pub fn scan(sh: &Shell) -> Result<Vec<Finding>> {
    let out = sh.current_dir().join("target/security-scan/chart");
    let engine = crate::chart::lint::Engine::new(sh)?;
    engine
        .render_all(sh, &out)
        .context("rendering the chart for the policy check")?;
    checkov(sh, &out)
}

/// checkov's failed checks over the manifests in `dir`, as findings at the rendered file and line.
pub fn checkov(sh: &Shell, dir: &Path) -> Result<Vec<Finding>> {
    let checkov = tools::python_tool(sh, "checkov")?;
    let output = cmd!(
        sh,
        "{checkov} --config-file {CHECKOV_CONFIG} --directory {dir} --output json"
    )
    .ignore_status()
    .output()
    .context("running checkov")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "checkov printed no JSON report: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    let found = parse(sh, dir, &report);
    if !output.status.success() && found.is_empty() {
        bail!("checkov failed without reporting a check: {stdout}");
    }
    Ok(found)
}

/// One report per framework (an object, or a list of them when several ran).
fn parse(sh: &Shell, dir: &Path, report: &Value) -> Vec<Finding> {
    let reports: Vec<&Value> = match report {
        Value::Array(list) => list.iter().collect(),
        other => vec![other],
    };
    let mut found = Vec::new();
    for r in reports {
        for c in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let file = c["file_path"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/');
            found.push(Finding {
                tool: "checkov",
                rule: c["check_id"].as_str().unwrap_or("checkov").to_owned(),
                message: format!(
                    "{} ({})",
                    c["check_name"].as_str().unwrap_or(""),
                    c["resource"].as_str().unwrap_or("")
                ),
                file: relative(sh, &dir.join(file).to_string_lossy()),
                line: c["file_line_range"][0].as_u64().unwrap_or(1) as u32,
            });
        }
    }
    found
}
