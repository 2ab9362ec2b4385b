//! Metric names: every series the alert rules and the dashboard query must be one the service
//! exports (a scrape of the real binary's /metrics) or one a standard monitoring stack provides.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::dashboard::{dashboard_exprs, grafana_to_promql};
use super::rules::prometheus_rules;
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
    let exposition = scrape_service(sh)?;
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

/// The service's /metrics after one request, from its binary started on a loopback port the OS
/// picks, with Redis absent: /metrics and /healthz never touch Redis, and the request and Redis
/// error series exist without it (Redis errors as a counter at 0).
pub fn scrape_service(sh: &Shell) -> Result<String> {
    let binary = service_binary(sh)?;
    let service = Service::start(sh, &binary)?;
    let (status, _) = http_get(service.addr, "/healthz")?;
    ensure!(status.contains(" 200"), "GET /healthz answered {status}");
    let (status, body) = http_get(service.addr, "/metrics")?;
    ensure!(status.contains(" 200"), "GET /metrics answered {status}");
    Ok(body)
}

/// The service's debug binary, built by cargo (a no-op when it is current).
pub fn service_binary(sh: &Shell) -> Result<PathBuf> {
    let cargo = crate::cargo();
    // cargo's own report of what it built, so the target directory is wherever cargo put it.
    let mut build = cmd!(
        sh,
        "{cargo} build --package visit-tracker --bin visit-tracker --message-format=json-render-diagnostics"
    );
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            build = build.env_remove(name);
        }
    }
    let report = build
        .read()
        .context("building the service (cargo build --package visit-tracker)")?;
    report
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "visit-tracker")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no visit-tracker executable")
}

/// Variables cargo sets for the program it runs (`cargo xtask`, a test) that describe that
/// package. Build scripts watch some of them (ring's: CARGO_PKG_NAME, CARGO_MANIFEST_DIR), so a
/// nested cargo that inherits them rebuilds those crates, and the next outer build again.
fn set_by_cargo_run(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&name)
}

/// The service process, killed on drop.
struct Service {
    child: Child,
    addr: SocketAddr,
}

impl Service {
    /// Starts the binary and waits for its "serving" log line, which names the bound address.
    fn start(sh: &Shell, binary: &Path) -> Result<Service> {
        // A port nothing listens on once the probe socket is closed: Redis refuses at once.
        let redis_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let service = cmd!(sh, "{binary}")
            .env_clear()
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", redis_port.to_string());
        // A process that outlives this call: xshell runs commands to completion, so its Command.
        let mut child = Command::from(service)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so the service never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = serving_addr(&line) {
                    let _ = tx.send(Ok(addr));
                }
                log.push(line);
            }
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let _ = tx.send(Err(format!("{}\n{err}", log.join("\n"))));
        });
        let mut service = Service {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => service.addr = addr,
            Ok(Err(output)) => bail!(
                "{} exited before serving: {}",
                binary.display(),
                output.trim()
            ),
            Err(_) => bail!("{} logged no \"serving\" line in 60 s", binary.display()),
        }
        Ok(service)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bound address in the service's JSON "serving" log line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    let entry: Value = serde_json::from_str(line).ok()?;
    if entry["message"] != "serving" {
        return None;
    }
    entry["listen"].as_str()?.parse().ok()
}

/// A plain HTTP/1.0 GET: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> Result<(String, String)> {
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("connecting to the service at {addr}"))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading GET {path} from {addr}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path} from {addr}: no HTTP response: {response:?}"))?;
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
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

    #[test]
    fn the_nested_build_drops_what_cargo_set_for_the_xtask_only() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_TARGET_TMPDIR",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "PATH"] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }

    #[test]
    fn the_serving_line_gives_the_bound_address() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"serving","listen":"127.0.0.1:4321","version":"0.1.0"}"#;
        assert_eq!(serving_addr(line), Some(([127, 0, 0, 1], 4321).into()));
        assert_eq!(
            serving_addr(r#"{"message":"connected to redis","listen":"127.0.0.1:1"}"#),
            None
        );
        assert_eq!(serving_addr("not json"), None);
    }
}
