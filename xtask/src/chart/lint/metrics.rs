//! Metric names: every series the alert rules and the dashboard query must be one the service
//! exports (a scrape of the real binary's /metrics) or one a standard monitoring stack provides.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use xshell::Shell;

use super::dashboard::{dashboard_exprs, grafana_to_promql};
use super::rules::prometheus_rules;
use super::service::scrape_metrics;
use crate::chart::engine::Rendered;

/// Series from elsewhere in a standard monitoring stack that the rules and dashboard may use.
pub const CLUSTER_METRICS: &[(&str, &str)] = &[
    ("up", "Prometheus, per scrape target"),
    ("kube_pod_status_ready", "kube-state-metrics"),
    (
        "kube_pod_container_status_restarts_total",
        "kube-state-metrics",
    ),
    (
        "kube_pod_container_status_last_terminated_reason",
        "kube-state-metrics",
    ),
    ("kube_pod_container_resource_limits", "kube-state-metrics"),
    (
        "container_memory_working_set_bytes",
        "the kubelet's cAdvisor",
    ),
];

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label
/// names (inside `{}` or after by/without/on/ignoring/group_*), durations or strings.
pub fn metric_names_in(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
        // Aggregations may take `by (...)` before their parenthesis.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut braces = 0usize;
    let mut brackets = 0usize;
    let mut skip_label_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '(' if skip_label_list => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_label_list = false;
            }
            _ if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let preceded_by_digit = start > 0 && chars[start - 1].is_ascii_digit();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let is_call = chars.get(next) == Some(&'(');
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) {
                    skip_label_list = true;
                } else if braces == 0
                    && brackets == 0
                    && !preceded_by_digit
                    && !is_call
                    && !KEYWORDS.contains(&lower.as_str())
                {
                    names.insert(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// The lint step: the series the chart uses against a scrape of the service.
pub fn check(sh: &Shell, rendered: &[Rendered]) -> Result<()> {
    let used = used_series(sh, rendered)?;
    let exposition = scrape_metrics(sh)?;
    let exposed = exposed_series(&exposition);
    let unknown = unexported(&used, &exposed);
    ensure!(
        unknown.is_empty(),
        "series the service does not export and CLUSTER_METRICS (xtask/src/chart/lint/metrics.rs) \
         does not list: {}",
        unknown.join(", ")
    );
    eprintln!(
        "{} metric uses, all exported ({} series in the service's /metrics)",
        used.len(),
        exposed.len()
    );
    Ok(())
}

/// (series, where) for every metric name in the rendered alert rules and the dashboard queries.
pub fn used_series(sh: &Shell, rendered: &[Rendered]) -> Result<BTreeSet<(String, String)>> {
    let mut used = BTreeSet::new();
    let rules = prometheus_rules(rendered)?;
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let expr = rule["expr"].as_str().unwrap_or_default();
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap_or("rule");
            used.extend(
                metric_names_in(expr)
                    .into_iter()
                    .map(|m| (m, format!("alert {name}"))),
            );
        }
    }
    for (place, expr) in dashboard_exprs(sh)? {
        used.extend(
            metric_names_in(&grafana_to_promql(&expr))
                .into_iter()
                .map(|m| (m, format!("dashboard {place}"))),
        );
    }
    ensure!(
        !used.is_empty(),
        "no metric names found in the alert rules and the dashboard"
    );
    Ok(used)
}

/// `series (where)` for each use of a series that neither `exposed` nor CLUSTER_METRICS has.
pub fn unexported(used: &BTreeSet<(String, String)>, exposed: &BTreeSet<String>) -> Vec<String> {
    used.iter()
        .filter(|(m, _)| !exposed.contains(m) && !CLUSTER_METRICS.iter().any(|(c, _)| c == m))
        .map(|(m, place)| format!("{m} ({place})"))
        .collect()
}

/// Sample names in a Prometheus or OpenMetrics text exposition (`name{labels} value`).
pub fn exposed_series(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_functions_labels_and_keywords() {
        let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="x", status=~"5.."}[5m]))) > 0.5
            and on (namespace, pod) (kube_pod_status_ready{condition!="true"} == 1) or absent(up{job="a"} offset 5m)
            / ignoring (le) group_left (version) count by (version) (build_info)"#;
        let names: Vec<String> = metric_names_in(expr).into_iter().collect();
        assert_eq!(
            names,
            [
                "build_info",
                "http_request_duration_seconds_bucket",
                "kube_pod_status_ready",
                "up"
            ]
        );
    }

    #[test]
    fn exposed_series_are_read_from_the_text_format() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\nh_bucket{le=\"0.1\"} 2\nh_sum 0.3\n\n# EOF\n";
        let names: Vec<String> = exposed_series(text).into_iter().collect();
        assert_eq!(names, ["h_bucket", "h_sum", "x_total"]);
    }

    #[test]
    fn a_series_nobody_exports_is_named_with_where_it_is_used() {
        let exposed = exposed_series("x_total 1\nh_bucket{le=\"+Inf\"} 2\n");
        let used: BTreeSet<(String, String)> = [
            ("x_total", "alert A"),
            ("h_bucket", "dashboard panel \"p\""),
            ("kube_pod_status_ready", "alert B"),
            ("h_count", "alert C"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .into();
        assert_eq!(unexported(&used, &exposed), ["h_count (alert C)"]);
    }
}
