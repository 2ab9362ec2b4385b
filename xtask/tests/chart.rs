//! The chart checks of `cargo xtask chart lint` and `chart package`, run through the library with
//! the real engines (Helm v4 via helm-python-sdk, kubernetes-validate, checkov, promtool, the
//! README generator). The chart is rendered once and shared by every test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use xshell::Shell;
use xtask::chart::engine::{Engine, Rendered};
use xtask::chart::lint::{
    crds, dashboard, kubernetes, manifest, metrics, policy, readme, rules, service, values,
};
use xtask::chart::package;

fn shell() -> Shell {
    let sh = Shell::new().expect("a shell");
    sh.change_dir(testkit::workspace_root());
    sh
}

/// A scratch directory of this test run under target/tmp, one per use.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chart-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&shell()).expect("the venv with the Helm engine"))
}

/// Every values case, rendered once by the Helm engine.
fn rendered() -> &'static [Rendered] {
    static RENDERED: OnceLock<Vec<Rendered>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        engine()
            .render_all(&shell(), &scratch("rendered"))
            .expect("rendering the chart")
    })
}

fn case(label: &str) -> Vec<Value> {
    let r = rendered().iter().find(|r| r.label == label).expect(label);
    manifest::load_documents(&r.path).expect("reading the rendered manifest")
}

fn object<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// `selector` (matchLabels or a plain map) picks pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let map = selector.get("matchLabels").unwrap_or(selector);
    let map = map.as_object().expect("a label map");
    !map.is_empty() && map.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// CPU in millicores or memory in bytes, for comparing requests with limits.
fn quantity(q: &Value) -> f64 {
    let s = match q {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (suffix, factor) in [
        ("m", 0.001),
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
    ] {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().expect("a number") * factor;
        }
    }
    s.parse().expect("a plain quantity")
}

#[test]
fn defaults_are_production_defaults() {
    let docs = case("default");
    let deployment = object(&docs, "Deployment");
    let spec = &deployment["spec"];
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert!(
        spec.get("replicas").is_none(),
        "the HPA owns the replica count"
    );
    let hpa = object(&docs, "HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap() >= 2);
    let metrics: Vec<&str> = hpa["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["resource"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["cpu", "memory"]);
    assert!(hpa["spec"]["behavior"]["scaleDown"].is_object());

    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));

    // Probes never touch a path that counts a visit.
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");

    for resource in ["cpu", "memory"] {
        let request = quantity(&container["resources"]["requests"][resource]);
        let limit = quantity(&container["resources"]["limits"][resource]);
        assert!(
            request <= limit,
            "{resource}: request {request} above limit {limit}"
        );
    }

    // The kubelet waits preStop, then the service drains; both fit in the grace period.
    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let drain: i64 = env
        .iter()
        .find(|(n, _)| *n == "SHUTDOWN_GRACE_SECONDS")
        .map(|(_, v)| v.parse().unwrap())
        .expect("SHUTDOWN_GRACE_SECONDS");
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap();
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > pre_stop + drain);

    // Every variable is one the service reads (app/src/config.rs) or RUST_LOG.
    let known: BTreeSet<&str> = [
        "LISTEN_ADDR",
        "LOG_FORMAT",
        "RUST_LOG",
        "SHUTDOWN_GRACE_SECONDS",
        "REDIS_MODE",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
        "REDIS_TLS",
        "REDIS_CA_CERT",
        "REDIS_KEY_PREFIX",
        "REDIS_TIMEOUT",
        "REDIS_SENTINEL_MASTER",
        "REDIS_SENTINELS",
        "REDIS_CLUSTER_NODES",
    ]
    .into();
    for (name, _) in &env {
        assert!(
            known.contains(name),
            "{name} is not a setting of the service"
        );
    }
    let password = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "REDIS_PASSWORD")
        .expect("REDIS_PASSWORD");
    assert!(
        password["valueFrom"]["secretKeyRef"].is_object(),
        "the password comes from a Secret"
    );

    // Spread over nodes and zones, softly by default, counting this workload's pods.
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    let keys: Vec<&str> = spread
        .iter()
        .map(|c| c["topologyKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    for c in spread {
        assert_eq!(c["whenUnsatisfiable"], "ScheduleAnyway");
        assert!(selects(&c["labelSelector"], labels));
    }

    // Every selector picks the service's pods.
    assert!(selects(&spec["selector"], labels));
    assert!(selects(
        &object(&docs, "Service")["spec"]["selector"],
        labels
    ));
    assert!(selects(
        &object(&docs, "PodDisruptionBudget")["spec"]["selector"],
        labels
    ));
    let netpol = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy" && selects(&d["spec"]["podSelector"], labels))
        .expect("a NetworkPolicy for the service's pods");
    assert_eq!(
        netpol["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(object(&docs, "Service")["spec"]["type"], "ClusterIP");
    assert_eq!(
        object(&docs, "ServiceAccount")["automountServiceAccountToken"],
        false
    );

    // The helm test pod checks /readyz and is not one of the service's pods.
    let test_pod = object(&docs, "Pod");
    assert_eq!(test_pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert!(!selects(&spec["selector"], &test_pod["metadata"]["labels"]));
    let command = test_pod["spec"]["containers"][0]["command"].to_string();
    assert!(command.contains("/readyz"), "{command}");
}

#[test]
fn environments_and_all_on_render_what_they_promise() {
    let prod = case("prod");
    let spread =
        &object(&prod, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert!(
        spread
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["whenUnsatisfiable"] == "DoNotSchedule"),
        "production spreads hard"
    );
    assert_eq!(
        object(&prod, "ExternalSecret")["apiVersion"],
        "external-secrets.io/v1"
    );

    let dev = case("dev");
    assert_eq!(object(&dev, "Deployment")["spec"]["replicas"], 1);
    let redis = object(&dev, "StatefulSet");
    assert_eq!(
        redis["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    assert!(redis["spec"]["volumeClaimTemplates"].is_array());

    let kinds: BTreeSet<String> = case("all-on")
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "AlertmanagerConfig",
        "ConfigMap",
        "Deployment",
        "HTTPRoute",
        "HorizontalPodAutoscaler",
        "Ingress",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "StatefulSet",
    ] {
        assert!(kinds.contains(kind), "all-on renders no {kind}: {kinds:?}");
    }
    let all_on = case("all-on");
    let pod = &object(&all_on, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "redis-ca");
    let env = pod["containers"][0]["env"].as_array().unwrap();
    let ca = env
        .iter()
        .find(|e| e["name"] == "REDIS_CA_CERT")
        .expect("REDIS_CA_CERT");
    assert_eq!(ca["value"], "/etc/visit-tracker/redis-ca/ca.crt");
    let dashboard = object(&all_on, "ConfigMap").clone();
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["visit-tracker.json"].as_str().unwrap();
    let json: Value = serde_json::from_str(json).expect("the dashboard is JSON");
    assert!(!dashboard::panel_exprs(&json).is_empty());
}

#[test]
fn helm_lint_and_kubernetes_schemas_pass_for_oldest_and_newest_kubernetes() {
    let sh = shell();
    let (oldest, newest) = kubernetes::kube_versions(&sh).unwrap();
    engine().lint(&sh, &[&oldest, &newest]).unwrap();
    kubernetes::validate(&sh, rendered(), &[&oldest, &newest]).unwrap();
    crds::validate(&sh, rendered()).unwrap();
}

#[test]
fn schema_checks_reject_invalid_objects() {
    let dir = scratch("invalid");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  ports:\n    - port: http\n  tpye: ClusterIP\n",
    )
    .unwrap();
    let bad = [Rendered {
        label: "bad".into(),
        path,
    }];
    let err = kubernetes::validate(&shell(), &bad, &["1.30.0"]).unwrap_err();
    assert!(
        format!("{err:#}").contains("kubernetes-validate"),
        "{err:#}"
    );

    // A custom resource that breaks its CRD's schema (an operator the matcher does not know).
    let path = dir.join("bad-crd.yaml");
    std::fs::write(
        &path,
        "apiVersion: monitoring.coreos.com/v1alpha1\nkind: AlertmanagerConfig\nmetadata:\n  name: x\n\
         spec:\n  route:\n    receiver: a\n    matchers:\n      - {name: severity, matchType: \"==\", value: critical}\n",
    )
    .unwrap();
    let bad = [Rendered {
        label: "bad-crd".into(),
        path,
    }];
    let err = crds::validate(&shell(), &bad).unwrap_err();
    assert!(format!("{err:#}").contains("CRD schemas"), "{err:#}");
}

#[test]
fn checkov_policy_passes_with_justified_skips() {
    policy::check(&shell(), rendered()).unwrap();
}

#[test]
fn checkov_findings_name_check_file_and_line_and_skips_need_reasons() {
    let dir = scratch("policy-bad");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  namespace: visit-tracker\n\
         spec:\n  containers:\n    - name: c\n      image: busybox\n      securityContext:\n\
         \x20       privileged: true\n",
    )
    .unwrap();
    let bad = [Rendered {
        label: "bad".into(),
        path: path.clone(),
    }];
    let found = policy::checkov(&shell(), &bad).unwrap();
    let privileged = found
        .iter()
        .find(|f| f.rule == "CKV_K8S_16")
        .unwrap_or_else(|| panic!("no CKV_K8S_16 (privileged) finding: {found:?}"));
    assert_eq!(privileged.tool, "checkov");
    assert!(
        privileged.file.ends_with("policy-bad/bad.yaml") && !privileged.file.starts_with('/'),
        "{privileged}"
    );
    assert_eq!(privileged.line, 1, "{privileged}");
    let err = policy::check(&shell(), &bad).unwrap_err();
    assert!(format!("{err:#}").contains("failed check"), "{err:#}");

    // A per-object skip without its reason is refused before checkov runs.
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  annotations:\n\
         \x20   checkov.io/skip1: CKV_K8S_16\n",
    )
    .unwrap();
    let err = policy::check(&shell(), &bad).unwrap_err();
    assert!(format!("{err:#}").contains("gives no reason"), "{err:#}");
}

#[test]
fn alert_rules_fire_and_stay_quiet_and_queries_use_exported_series() {
    let sh = shell();
    rules::check(&sh, rendered(), &scratch("rules")).unwrap();
    dashboard::check(&sh, &scratch("dashboard")).unwrap();
    metrics::check(&sh, rendered()).unwrap();
}

#[test]
fn bad_values_are_refused_with_their_messages() {
    values::refused(&shell(), engine()).unwrap();
}

#[test]
fn chart_readme_is_current() {
    readme::check(&shell(), &scratch("readme"), false).unwrap();
}

#[test]
fn package_is_reproducible_loadable_and_has_helms_file_set() {
    let sh = shell();
    let (a, b) = (scratch("package-a"), scratch("package-b"));
    let first = package::package(&sh, &a).unwrap();
    let second = package::package(&sh, &b).unwrap();
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    assert!(first.ends_with(format!("visit-tracker-{}.tgz", chart_version(&sh))));

    let loaded = engine().load_archive(&sh, &first).unwrap();
    assert_eq!(loaded["name"], "visit-tracker");
    assert_eq!(loaded["version"], chart_version(&sh).as_str());
    assert!(loaded["templates"].as_u64().unwrap() > 5);

    let helms = engine()
        .helm_package(&sh, &scratch("helm-package"))
        .unwrap();
    assert_eq!(entries(&first), entries(&helms));
}

fn chart_version(sh: &Shell) -> String {
    let text = std::fs::read_to_string(sh.current_dir().join("charts/visit-tracker/Chart.yaml"));
    xtask::chart::chart_field(&text.unwrap(), "version").unwrap()
}

fn entries(archive: &Path) -> BTreeSet<String> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .filter(|p| !p.ends_with('/'))
        .collect()
}

/// The service binary, started with the environment the chart renders (addresses pointed at the
/// loopback Redis), killed on drop.
struct Service {
    child: std::process::Child,
    port: u16,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A plain HTTP/1.0 GET on loopback: (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[test]
fn the_service_accepts_the_charts_environment_and_exports_every_series_the_chart_uses() {
    let sh = shell();
    let binary = service::service_binary(&sh).expect("building the service");
    let redis = testkit::redis::RedisServer::start();
    let port = testkit::free_port();

    // The default render's environment, as the kubelet would set it; the Secret-backed password is
    // left out because this Redis has none.
    let docs = case("default");
    let container = &object(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let mut command = std::process::Command::new(&binary);
    command.env_clear().stdout(std::process::Stdio::null());
    for var in container["env"].as_array().unwrap() {
        if let Some(value) = var["value"].as_str() {
            command.env(var["name"].as_str().unwrap(), value);
        }
    }
    command
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", redis.port().to_string());
    let service = Service {
        child: command.spawn().expect("starting the service"),
        port,
    };
    testkit::wait_for_port(
        ([127, 0, 0, 1], service.port).into(),
        std::time::Duration::from_secs(30),
    )
    .expect("the service listens with the chart's settings");

    // Every variable the chart sets is one the service reads (clap lists them in --help).
    let help = xshell::cmd!(sh, "{binary} --help").read().unwrap();
    for var in container["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        assert!(
            name == "RUST_LOG" || help.contains(&format!("[env: {name}")),
            "the chart sets {name}, which the service does not read"
        );
    }

    // Traffic first, so the labelled series exist.
    assert!(
        get(port, "/readyz").0.contains(" 200"),
        "ready against Redis"
    );
    assert!(get(port, "/").0.contains(" 200"));
    assert!(get(port, "/api/visits").0.contains(" 200"));
    let (status, exposition) = get(port, "/metrics");
    assert!(status.contains(" 200"), "{status}");
    // The lint's own check, against this scrape of the service running as the chart runs it.
    let used = metrics::used_series(&sh, rendered()).unwrap();
    assert_eq!(
        metrics::unexported(&used, &metrics::exposed_series(&exposition)),
        Vec::<String>::new(),
        "the chart uses series this service does not export:\n{exposition}"
    );
}
