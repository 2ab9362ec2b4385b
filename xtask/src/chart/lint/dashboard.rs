//! The Grafana dashboard: every panel and variable query, with Grafana's variables replaced, must
//! parse as PromQL (`promtool check rules` on them as recording rules).

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::chart::CHART_DIR;
use crate::tools;

/// The dashboard JSON, relative to the chart.
const DASHBOARD: &str = "dashboards/visit-tracker.json";

/// Every dashboard query, with Grafana's variables replaced, as a recording rule that
/// `promtool check rules` parses.
pub fn check(sh: &Shell, work: &Path) -> Result<()> {
    let promtool = tools::need(sh, &super::rules::PROMTOOL)?;
    let exprs = dashboard_exprs(sh)?;
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            serde_json::json!({ "record": format!("dashboard:query_{i}"), "expr": grafana_to_promql(expr) })
        })
        .collect();
    let file = work.join("dashboard-rules.yaml");
    std::fs::create_dir_all(work)?;
    let doc = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    tools::write_atomic(&file, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    cmd!(sh, "{promtool} check rules {file}")
        .run()
        .context("a dashboard query does not parse as PromQL")
}

/// (where, expression) of every panel target and templating query of the chart's dashboard.
pub fn dashboard_exprs(sh: &Shell) -> Result<Vec<(String, String)>> {
    let path = sh.current_dir().join(CHART_DIR).join(DASHBOARD);
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    Ok(panel_exprs(&json))
}

/// Panel target expressions (nested rows included) and variable queries, labelled by where.
pub fn panel_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("untitled");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("panel {title:?}"), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    // Variables filled by `label_values(<series selector>, <label>)` query the selector.
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = var["query"].as_str().unwrap_or_default();
        let args = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'));
        if let Some((selector, _label)) = args.and_then(|a| a.rsplit_once(',')) {
            let name = var["name"].as_str().unwrap_or("?");
            out.push((format!("variable ${name}"), selector.trim().to_owned()));
        }
    }
    out
}

/// Grafana's template variables replaced with values PromQL accepts.
pub fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${job}", "job")
        .replace("$job", "job")
        .replace("${namespace}", "namespace")
        .replace("$namespace", "namespace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_variables_become_valid_promql() {
        assert_eq!(
            grafana_to_promql(r#"rate(x{job="$job", namespace="${namespace}"}[$__rate_interval])"#),
            r#"rate(x{job="job", namespace="namespace"}[5m])"#
        );
    }

    #[test]
    fn panels_are_found_in_rows_too() {
        let dash = serde_json::json!({"panels": [
            {"title": "a", "targets": [{"expr": "up"}]},
            {"title": "row", "panels": [{"title": "b", "targets": [{"expr": "build_info"}]}]}
        ], "templating": {"list": [
            {"name": "job", "query": "label_values(build_info{namespace=\"$namespace\"}, job)"},
            {"name": "datasource", "query": "prometheus"}
        ]}});
        let exprs: Vec<String> = panel_exprs(&dash).into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            exprs,
            ["up", "build_info", "build_info{namespace=\"$namespace\"}"]
        );
    }
}
