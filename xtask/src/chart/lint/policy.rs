//! Policy: checkov over the rendered chart with the chart's one checkov config. `chart lint` fails
//! on any failed check or unexplained skip; `security-scan` reports the failed checks as findings.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::chart::engine::Rendered;
use crate::scan::{Finding, relative};
use crate::tools::{self, Tool};

/// Policy checks over the rendered manifests (also the security scan's chart scanner).
pub const CHECKOV: Tool = Tool::pip("checkov");
/// The checkov settings of every policy run: framework, chart-wide skips with their reasons.
pub const CHECKOV_CONFIG: &str = "charts/tests/checkov.yaml";

/// The lint step: every skip (chart-wide or per object) says why, and checkov finds nothing.
pub fn check(sh: &Shell, rendered: &[Rendered]) -> Result<()> {
    skips_are_justified(sh, rendered)?;
    let failed = checkov(sh, rendered)?;
    for finding in &failed {
        eprintln!("{finding}");
    }
    ensure!(
        failed.is_empty(),
        "checkov found {} failed check(s) in the rendered chart",
        failed.len()
    );
    eprintln!("checkov: no failed checks in {} renders", rendered.len());
    Ok(())
}

/// checkov's failed checks over the rendered cases (all in one directory), as findings at the
/// rendered file and line.
pub fn checkov(sh: &Shell, rendered: &[Rendered]) -> Result<Vec<Finding>> {
    let dir = rendered
        .first()
        .and_then(|r| r.path.parent())
        .context("nothing was rendered")?;
    let checkov = tools::need(sh, &CHECKOV)?;
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
    let found = failed_checks(sh, dir, &report);
    if !output.status.success() && found.is_empty() {
        bail!("checkov failed without reporting a check: {stdout}");
    }
    Ok(found)
}

/// The failed checks of checkov's JSON report: one report per framework (an object, or a list of
/// them when several ran).
fn failed_checks(sh: &Shell, dir: &Path, report: &Value) -> Vec<Finding> {
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

/// Chart-wide skips in the config and `checkov.io/skipN: CKV_ID=why` annotations in the renders
/// must each carry a reason.
pub fn skips_are_justified(sh: &Shell, rendered: &[Rendered]) -> Result<()> {
    let config = sh.current_dir().join(CHECKOV_CONFIG);
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    let bare = unjustified_skips(&text);
    ensure!(
        bare.is_empty(),
        "{}: skip-check entries without a comment saying why: {}",
        config.display(),
        bare.join(", ")
    );
    for r in rendered {
        let text = std::fs::read_to_string(&r.path)
            .with_context(|| format!("reading {}", r.path.display()))?;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("checkov.io/skip") {
                let reason = line
                    .split_once('=')
                    .map(|(_, why)| why.trim())
                    .unwrap_or("");
                ensure!(
                    reason.len() > 3,
                    "{}: `{line}` gives no reason (CKV_ID=why)",
                    r.path.display()
                );
            }
        }
    }
    Ok(())
}

/// `skip-check` entries in checkov.yaml with no comment line right above them.
pub fn unjustified_skips(checkov_yaml: &str) -> Vec<String> {
    let mut bare = Vec::new();
    let mut in_skips = false;
    let mut commented = false;
    for line in checkov_yaml.lines() {
        let trimmed = line.trim();
        if !line.starts_with([' ', '-', '#']) && !trimmed.is_empty() {
            in_skips = trimmed.starts_with("skip-check:");
            commented = false;
            continue;
        }
        if !in_skips {
            continue;
        }
        if trimmed.starts_with('#') {
            commented = true;
        } else if let Some(id) = trimmed.strip_prefix("- ") {
            if !commented {
                bare.push(id.trim().to_owned());
            }
            commented = false;
        }
    }
    bare
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkov_skips_need_a_comment() {
        let text = "framework:\n  - kubernetes\nskip-check:\n  # why\n  - CKV_K8S_15\n  - CKV_K8S_43\n  # because\n  # more\n  - CKV_K8S_35\nquiet: true\n";
        assert_eq!(unjustified_skips(text), vec!["CKV_K8S_43".to_owned()]);
    }
}
