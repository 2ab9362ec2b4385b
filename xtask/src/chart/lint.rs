//! Every chart check: Helm lint and render, Kubernetes schemas, policy, alert rule tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{CHART_DIR, chart_field};
use crate::tools;

/// Fixtures the checks use: values files, refused values, checkov settings, alert rule tests.
pub const TESTS_DIR: &str = "charts/tests";
const ENGINE: &str = "xtask/src/chart/helm_engine.py";
/// Node tools (README generator, CRD validators), pinned by package-lock.json.
const NODE_TOOLS: &str = "xtask/node";
const NODE_DIR: &str = "target/node";
const CRD_VALIDATE: &str = include_str!("crd_validate.mjs");
/// Release and namespace of every render: a namespace of its own, as the README installs it
/// (checkov rightly flags `default`).
pub const RELEASE: &str = "visit-tracker";
pub const NAMESPACE: &str = "visit-tracker";

/// Kinds no Kubernetes release defines: their schemas come with their operators' CRDs.
pub const CRD_KINDS: &[&str] = &[
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "AlertmanagerConfig",
    "ExternalSecret",
    "HTTPRoute",
];

/// Series the service exports on /metrics (histograms by base name). The chart tests compare
/// this list with a real scrape of the service, so it cannot drift from the code.
pub const SERVICE_METRICS: &[&str] = &[
    "http_requests_total",
    "http_request_duration_seconds",
    "redis_errors_total",
    "build_info",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// Histograms among SERVICE_METRICS: queried as `_bucket`, `_sum` and `_count`.
pub const SERVICE_HISTOGRAMS: &[&str] = &["http_request_duration_seconds"];

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

/// Runs every chart check: Helm render and lint, Kubernetes and CRD schemas, checkov policy,
/// alert rule tests, dashboard queries, metric names, refused values, and the README.
#[derive(Debug, Args)]
pub struct Lint {
    /// Regenerate the README's Parameters table from values.yaml instead of failing when stale.
    #[arg(long)]
    pub fix_readme: bool,
}

impl Lint {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let work = sh.current_dir().join("target/chart-lint");
        let engine = Engine::new(sh)?;
        step("render (Helm engine)");
        let rendered = engine.render_all(sh, &work.join("rendered"))?;
        let (oldest, newest) = kube_versions(sh)?;
        step(&format!(
            "helm lint --strict (Kubernetes {oldest} and {newest})"
        ));
        engine.lint(sh, &[&oldest, &newest])?;
        step(&format!(
            "kubernetes-validate --strict (Kubernetes {oldest} and {newest})"
        ));
        validate_kubernetes(sh, &engine, &rendered, &[&oldest, &newest])?;
        step("checkov");
        checkov(sh, &engine, &rendered)?;
        step("promtool check rules and test rules");
        alert_rules(sh, &rendered, &work)?;
        step("dashboard PromQL (promtool)");
        dashboard_queries(sh, &work)?;
        step("metric names");
        metric_names(sh, &rendered)?;
        step("bad values are refused");
        engine.refuse_bad_values(sh)?;
        step("README parameters");
        readme(sh, &work, self.fix_readme)?;
        eprintln!("\nchart lint: all checks passed");
        Ok(())
    }
}

/// The chart policy alone (rendered chart under checkov), for `cargo xtask security-scan`.
pub fn policy(sh: &Shell) -> Result<()> {
    let engine = Engine::new(sh)?;
    let rendered = engine.render_all(sh, &sh.current_dir().join("target/chart-policy"))?;
    checkov(sh, &engine, &rendered)
}

fn step(name: &str) {
    eprintln!("\n==> chart lint: {name}");
}

/// The Helm v4 engine (helm-python-sdk, driven by helm_engine.py) and the venv it lives in.
pub struct Engine {
    bin: PathBuf,
    script: PathBuf,
}

/// One rendered values case: its label and the multi-document manifest file.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub label: String,
    pub path: PathBuf,
}

impl Engine {
    pub fn new(sh: &Shell) -> Result<Engine> {
        Ok(Engine {
            bin: tools::venv(sh)?,
            script: sh.current_dir().join(ENGINE),
        })
    }

    /// A program from the venv (checkov, kubernetes-validate, ...).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    fn python(&self) -> PathBuf {
        self.bin.join("python")
    }

    /// Renders defaults, each values-<env>.yaml and charts/tests/all-on.yaml into `out`.
    pub fn render_all(&self, sh: &Shell, out: &Path) -> Result<Vec<Rendered>> {
        let cases = render_cases(sh)?;
        let args: Vec<String> = cases
            .iter()
            .map(|(label, values)| format!("{label}={values}"))
            .collect();
        let (python, script) = (self.python(), &self.script);
        if out.exists() {
            std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
        }
        cmd!(
            sh,
            "{python} {script} render {CHART_DIR} {out} {RELEASE} {NAMESPACE} {args...}"
        )
        .run()
        .context("rendering the chart with the Helm engine")?;
        Ok(cases
            .into_iter()
            .map(|(label, _)| Rendered {
                path: out.join(format!("{label}.yaml")),
                label,
            })
            .collect())
    }

    /// `helm lint --strict` with every values case, for each Kubernetes version.
    pub fn lint(&self, sh: &Shell, kube_versions: &[&str]) -> Result<()> {
        let values: Vec<String> = render_cases(sh)?.into_iter().map(|(_, v)| v).collect();
        let (python, script) = (self.python(), &self.script);
        for version in kube_versions {
            let values = &values;
            cmd!(
                sh,
                "{python} {script} lint {CHART_DIR} {version} {values...}"
            )
            .run()
            .with_context(|| format!("helm lint --strict for Kubernetes {version}"))?;
        }
        Ok(())
    }

    /// Each charts/tests/bad-values file must be refused with its `# expect:` message.
    pub fn refuse_bad_values(&self, sh: &Shell) -> Result<()> {
        let dir = sh.current_dir().join(TESTS_DIR).join("bad-values");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
        files.sort();
        ensure!(
            !files.is_empty(),
            "no bad values files in {}",
            dir.display()
        );
        let (python, script) = (self.python(), &self.script);
        cmd!(sh, "{python} {script} refuse {CHART_DIR} {files...}")
            .quiet()
            .run()
            .context("a bad values file was not refused as expected")
    }

    /// Loads a packaged chart like `helm install` does and renders it; returns the engine's JSON.
    pub fn load_archive(&self, sh: &Shell, archive: &Path) -> Result<Value> {
        let (python, script) = (self.python(), &self.script);
        let out = cmd!(sh, "{python} {script} load {archive} {RELEASE} {NAMESPACE}")
            .read()
            .with_context(|| format!("the Helm engine could not load {}", archive.display()))?;
        serde_json::from_str(&out).context("reading the Helm engine's load report")
    }

    /// Helm's own `helm package` into `dest`; returns the archive's path.
    pub fn helm_package(&self, sh: &Shell, dest: &Path) -> Result<PathBuf> {
        let (python, script) = (self.python(), &self.script);
        let out = cmd!(sh, "{python} {script} helm-package {CHART_DIR} {dest}")
            .read()
            .context("helm package (Helm engine)")?;
        Ok(PathBuf::from(out.trim()))
    }
}

/// (label, values file relative to the root; empty for the defaults).
fn render_cases(sh: &Shell) -> Result<Vec<(String, String)>> {
    let mut cases = vec![("default".to_owned(), String::new())];
    let chart = sh.current_dir().join(CHART_DIR);
    let mut envs: Vec<String> = std::fs::read_dir(&chart)
        .with_context(|| format!("reading {}", chart.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| Some(n.strip_prefix("values-")?.strip_suffix(".yaml")?.to_owned()))
        .collect();
    envs.sort();
    for env in envs {
        cases.push((env.clone(), format!("{CHART_DIR}/values-{env}.yaml")));
    }
    cases.push(("all-on".to_owned(), format!("{TESTS_DIR}/all-on.yaml")));
    Ok(cases)
}

/// Oldest and newest Kubernetes versions of Chart.yaml's kubeVersion.
pub fn kube_versions(sh: &Shell) -> Result<(String, String)> {
    let path = sh.current_dir().join(CHART_DIR).join("Chart.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let constraint = chart_field(&text, "kubeVersion")
        .with_context(|| format!("{}: no kubeVersion", path.display()))?;
    kube_version_bounds(&constraint).with_context(|| format!("{}: kubeVersion", path.display()))
}

/// `>=1.30.0-0 <1.38.0-0` gives `1.30.0` and `1.37.0`: the schemas exist per minor release, and an
/// exclusive upper bound means the minor release before it.
pub fn kube_version_bounds(constraint: &str) -> Result<(String, String)> {
    let mut oldest = None;
    let mut newest = None;
    for part in constraint.split_whitespace() {
        let (op, version) = if let Some(v) = part.strip_prefix(">=") {
            (">=", v)
        } else if let Some(v) = part.strip_prefix("<=") {
            ("<=", v)
        } else if let Some(v) = part.strip_prefix('<') {
            ("<", v)
        } else {
            bail!("`{part}`: expected >=X.Y.Z, <X.Y.Z or <=X.Y.Z");
        };
        let v = semver::Version::parse(version.trim_start_matches('v'))
            .with_context(|| format!("`{part}` is not a semantic version"))?;
        match op {
            ">=" => oldest = Some(format!("{}.{}.0", v.major, v.minor)),
            "<=" => newest = Some(format!("{}.{}.0", v.major, v.minor)),
            _ => {
                let minor = if v.patch == 0 {
                    v.minor.checked_sub(1)
                } else {
                    Some(v.minor)
                };
                let minor = minor.with_context(|| format!("`{part}` leaves no version"))?;
                newest = Some(format!("{}.{minor}.0", v.major));
            }
        }
    }
    match (oldest, newest) {
        (Some(o), Some(n)) => Ok((o, n)),
        _ => bail!("`{constraint}` needs both a lower and an upper bound"),
    }
}

/// Every rendered object under `kubernetes-validate --strict` for each version; CRD kinds must be
/// exactly those in CRD_KINDS (no schema in Kubernetes) and are checked by [`validate_crds`].
pub fn validate_kubernetes(
    sh: &Shell,
    engine: &Engine,
    rendered: &[Rendered],
    versions: &[&str],
) -> Result<()> {
    let validate = engine.tool("kubernetes-validate");
    let files: Vec<&Path> = rendered.iter().map(|r| r.path.as_path()).collect();
    for version in versions {
        let files = &files;
        let out = cmd!(sh, "{validate} --strict --quiet -k {version} {files...}")
            .ignore_status()
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !is_known_crd_warning(l))
            .collect();
        if !out.status.success() || !problems.is_empty() {
            bail!(
                "kubernetes-validate --strict -k {version} found problems:\n{}",
                problems.join("\n")
            );
        }
    }
    validate_crds(sh, rendered)
}

/// kubernetes-validate's "no schema" warning for one of the CRD kinds the chart knows about.
fn is_known_crd_warning(line: &str) -> bool {
    line.contains("Couldn't find schema for kind")
        && CRD_KINDS
            .iter()
            .any(|k| line.contains(&format!("kind {k} with")))
}

/// Custom resources against their CRDs' schemas (types, enums, required fields, patterns), as
/// compiled into the pinned @kubernetes-models packages. CRD schemas allow unknown fields (the
/// API server prunes them), so a misspelt optional field is not caught here.
fn validate_crds(sh: &Shell, rendered: &[Rendered]) -> Result<()> {
    let mut items = Vec::new();
    for r in rendered {
        for doc in load_documents(&r.path)? {
            let kind = doc["kind"].as_str().unwrap_or_default();
            if !CRD_KINDS.contains(&kind) {
                continue;
            }
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            let expected = crd_api_version(kind);
            ensure!(
                Some(api) == expected,
                "{}: {kind} has apiVersion {api}, expected {expected:?}",
                r.path.display()
            );
            let source = format!("{}.yaml", r.label);
            items.push(serde_json::json!({ "source": source, "object": doc }));
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    let dir = node_tools(sh)?;
    let script = dir.join("crd-validate.mjs");
    tools::write_atomic(&script, CRD_VALIDATE.as_bytes())?;
    let input = dir.join(format!("crds-{}.json", std::process::id()));
    tools::write_atomic(&input, &serde_json::to_vec(&items)?)?;
    let result = cmd!(sh, "node {script} {input}")
        .quiet()
        .ignore_stdout()
        .run();
    std::fs::remove_file(&input).ok();
    result.context("custom resources do not match their CRD schemas")?;
    eprintln!("{} custom resources match their CRD schemas", items.len());
    Ok(())
}

fn crd_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ServiceMonitor" | "PodMonitor" | "PrometheusRule" => "monitoring.coreos.com/v1",
        "AlertmanagerConfig" => "monitoring.coreos.com/v1alpha1",
        "ExternalSecret" => "external-secrets.io/v1",
        "HTTPRoute" => "gateway.networking.k8s.io/v1",
        _ => return None,
    })
}

/// checkov over every rendered case with charts/tests/checkov.yaml: zero failed checks, and every
/// skip (chart-wide or per object) carries its reason.
pub fn checkov(sh: &Shell, engine: &Engine, rendered: &[Rendered]) -> Result<()> {
    let config = sh.current_dir().join(TESTS_DIR).join("checkov.yaml");
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
        for line in std::fs::read_to_string(&r.path)?.lines() {
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
    let checkov = engine.tool("checkov");
    let dir = rendered
        .first()
        .and_then(|r| r.path.parent())
        .context("nothing was rendered")?;
    cmd!(sh, "{checkov} --config-file {config} -d {dir}")
        .run()
        .context("checkov found failed checks in the rendered chart")
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

/// Every YAML document of a rendered manifest, as JSON values (empty documents dropped).
pub fn load_documents(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs = Yaml::load_from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    docs.iter()
        .map(yaml_to_json)
        .filter(|d| !matches!(d, Ok(Value::Null)))
        .collect::<Result<_>>()
        .with_context(|| format!("reading {}", path.display()))
}

/// A parsed YAML node as JSON (mapping keys become strings).
pub fn yaml_to_json(node: &Yaml) -> Result<Value> {
    Ok(match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => Value::from(s.as_ref()),
        Yaml::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_json).collect::<Result<_>>()?)
        }
        Yaml::Mapping(map) => {
            let mut object = serde_json::Map::new();
            for (k, v) in map {
                let key = match yaml_to_json(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                object.insert(key, yaml_to_json(v)?);
            }
            Value::Object(object)
        }
        Yaml::Tagged(_, inner) => yaml_to_json(inner)?,
        Yaml::Alias(_) | Yaml::BadValue => bail!("unsupported YAML node (alias or bad value)"),
    })
}

/// The rendered PrometheusRule's groups, written as a Prometheus rules file.
fn prometheus_rules(rendered: &[Rendered]) -> Result<Value> {
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

/// `promtool check rules` on the rendered rules and `promtool test rules` with the unit tests in
/// charts/tests/rules/ (their `rule_files` name `rules.yaml`, written next to them here).
pub fn alert_rules(sh: &Shell, rendered: &[Rendered], work: &Path) -> Result<()> {
    let promtool = tools::require("promtool", "prometheus")?;
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

/// Every dashboard query, with Grafana's variables replaced, as a recording rule that
/// `promtool check rules` parses.
pub fn dashboard_queries(sh: &Shell, work: &Path) -> Result<()> {
    let promtool = tools::require("promtool", "prometheus")?;
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

const DASHBOARD: &str = "dashboards/visit-tracker.json";

/// (where, expression) of every panel target and templating query of the dashboard.
fn dashboard_exprs(sh: &Shell) -> Result<Vec<(String, String)>> {
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

/// Metric names the rules and dashboard use must be series the service, Prometheus,
/// kube-state-metrics or cAdvisor export.
pub fn metric_names(sh: &Shell, rendered: &[Rendered]) -> Result<()> {
    let known = known_series();
    let mut used = BTreeSet::new();
    let rules = prometheus_rules(rendered)?;
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let expr = rule["expr"].as_str().unwrap_or_default();
            let name = rule["alert"].as_str().unwrap_or("rule");
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
                .map(|m| (m, place.clone())),
        );
    }
    let unknown: Vec<String> = used
        .iter()
        .filter(|(m, _)| !known.contains(m))
        .map(|(m, place)| format!("{m} ({place})"))
        .collect();
    ensure!(
        unknown.is_empty(),
        "series nobody exports (service: {}; cluster: {}): {}",
        "xtask/src/chart/lint.rs SERVICE_METRICS",
        "CLUSTER_METRICS",
        unknown.join(", ")
    );
    eprintln!("{} metric uses, all exported", used.len());
    Ok(())
}

/// Every series name the rules and dashboard may use.
pub fn known_series() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = SERVICE_METRICS.iter().map(|m| m.to_string()).collect();
    for h in SERVICE_HISTOGRAMS {
        for suffix in ["_bucket", "_sum", "_count"] {
            known.insert(format!("{h}{suffix}"));
        }
    }
    known.extend(CLUSTER_METRICS.iter().map(|(m, _)| m.to_string()));
    known
}

/// Sample names in a Prometheus text exposition (`name{labels} value` or `name value`).
pub fn exposed_series(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Series of SERVICE_METRICS (histograms as `_bucket`, `_sum`, `_count`) missing from a scrape.
pub fn missing_service_series(exposed: &BTreeSet<String>) -> Vec<String> {
    let mut wanted = Vec::new();
    for m in SERVICE_METRICS {
        if SERVICE_HISTOGRAMS.contains(m) {
            wanted.extend(["_bucket", "_sum", "_count"].map(|s| format!("{m}{s}")));
        } else {
            wanted.push(m.to_string());
        }
    }
    wanted.retain(|m| !exposed.contains(m));
    wanted
}

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

/// The README's Parameters table must be what the generator makes from values.yaml now.
pub fn readme(sh: &Shell, work: &Path, fix: bool) -> Result<()> {
    let generator = node_tools(sh)?.join("node_modules/.bin/readme-generator");
    let chart = sh.current_dir().join(CHART_DIR);
    let (values, readme) = (chart.join("values.yaml"), chart.join("README.md"));
    let current =
        std::fs::read(&readme).with_context(|| format!("reading {}", readme.display()))?;
    let scratch = work.join("README.md");
    std::fs::create_dir_all(work)?;
    std::fs::write(&scratch, &current)?;
    cmd!(sh, "{generator} --values {values} --readme {scratch}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("the README generator refused values.yaml's `## @param` comments")?;
    let fresh = std::fs::read(&scratch)?;
    if fresh == current {
        eprintln!("{} is current", readme.display());
        return Ok(());
    }
    if fix {
        tools::write_atomic(&readme, &fresh)?;
        eprintln!("regenerated the Parameters table of {}", readme.display());
        return Ok(());
    }
    bail!(
        "{CHART_DIR}/README.md is stale: values.yaml changed. Run `cargo xtask chart lint --fix-readme`"
    )
}

/// The node tools of xtask/node (README generator, CRD validators), installed with `npm ci` from
/// its package-lock.json into target/node; a stamp skips this when nothing changed.
fn node_tools(sh: &Shell) -> Result<PathBuf> {
    tools::require("node", "nodejs")?;
    tools::require("npm", "npm")?;
    // Tests call this from several threads; one npm ci at a time.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = sh.current_dir();
    let (src, dest) = (root.join(NODE_TOOLS), root.join(NODE_DIR));
    let lock = std::fs::read(src.join("package-lock.json"))
        .with_context(|| format!("reading {NODE_TOOLS}/package-lock.json"))?;
    let wanted = tools::hex_digest(&lock);
    let stamp = dest.join(".lock.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("xtask: installing {NODE_TOOLS} into {NODE_DIR} (npm ci)");
        std::fs::create_dir_all(&dest)?;
        std::fs::copy(src.join("package.json"), dest.join("package.json"))?;
        std::fs::write(dest.join("package-lock.json"), &lock)?;
        let _dir = sh.push_dir(&dest);
        cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error")
            .run()
            .context("npm ci of xtask/node")?;
        std::fs::write(&stamp, wanted)?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_versions_come_from_the_constraint_bounds() {
        let (o, n) = kube_version_bounds(">=1.30.0-0 <1.38.0-0").unwrap();
        assert_eq!((o.as_str(), n.as_str()), ("1.30.0", "1.37.0"));
        let (o, n) = kube_version_bounds(">=1.29.3 <=1.33.1").unwrap();
        assert_eq!((o.as_str(), n.as_str()), ("1.29.0", "1.33.0"));
        assert!(kube_version_bounds(">=1.30.0").is_err());
        assert!(kube_version_bounds("~1.30").is_err());
    }

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
        let text = "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\nh_bucket{le=\"0.1\"} 2\nh_sum 0.3\n\n";
        let names: Vec<String> = exposed_series(text).into_iter().collect();
        assert_eq!(names, ["h_bucket", "h_sum", "x_total"]);
        let mut all: BTreeSet<String> = known_series();
        all.remove("process_open_fds");
        assert_eq!(missing_service_series(&all), ["process_open_fds"]);
        assert!(
            missing_service_series(&exposed_series(text))
                .contains(&"http_request_duration_seconds_count".to_owned())
        );
    }

    #[test]
    fn grafana_variables_become_valid_promql() {
        assert_eq!(
            grafana_to_promql(r#"rate(x{job="$job", namespace="${namespace}"}[$__rate_interval])"#),
            r#"rate(x{job="job", namespace="namespace"}[5m])"#
        );
    }

    #[test]
    fn checkov_skips_need_a_comment() {
        let text = "framework:\n  - kubernetes\nskip-check:\n  # why\n  - CKV_K8S_15\n  - CKV_K8S_43\n  # because\n  # more\n  - CKV_K8S_35\nquiet: true\n";
        assert_eq!(unjustified_skips(text), vec!["CKV_K8S_43".to_owned()]);
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

    #[test]
    fn yaml_documents_convert_to_json() {
        let docs = Yaml::load_from_str("a: 1\nb: [true, x, 1.5]\n---\n").unwrap();
        assert_eq!(
            yaml_to_json(&docs[0]).unwrap(),
            serde_json::json!({"a": 1, "b": [true, "x", 1.5]})
        );
    }
}
