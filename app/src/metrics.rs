//! Prometheus metrics: requests by method, matched route and status, their latency, Redis
//! errors, build info, and the usual `process_*` series read from /proc at scrape time.

use std::sync::{PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The revision the image build stamps in; a plain `cargo build` says "unknown".
pub const REVISION: &str = match option_env!("VT_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// Latency buckets in seconds: fine below 10 ms where a healthy service lives.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Labels of the request series. All values are static strings or numbers, so recording a
/// request allocates nothing and unknown paths or methods cannot blow up the cardinality.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    redis_errors: Counter,
    /// The two series of every label set seen so far (handles share the families' values).
    /// A request finds its pair in a short list under one read lock, instead of hashing its
    /// labels with SipHash under each family's lock: a thirtieth of a POST's instructions.
    seen: RwLock<Vec<Series>>,
}

/// The request counter and latency histogram of one label set.
struct Series {
    labels: RequestLabels,
    requests: Counter,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        let durations: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by method, matched route and status",
            Unit::Seconds,
            durations.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered right now",
            in_flight.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Redis calls that failed or timed out",
            redis_errors.clone(),
        );
        registry.register(
            "build",
            "Version and git revision of the running binary",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", REVISION),
            ]),
        );
        registry.register_collector(Box::new(ProcessCollector::new()));
        Self {
            registry,
            requests,
            durations,
            in_flight,
            redis_errors,
            seen: RwLock::new(Vec::new()),
        }
    }

    pub fn observe(&self, labels: &RequestLabels, seconds: f64) {
        let seen = self.seen.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = seen.iter().find(|s| s.labels == *labels) {
            series.requests.inc();
            series.duration.observe(seconds);
            return;
        }
        drop(seen);
        let series = Series {
            labels: labels.clone(),
            requests: self.requests.get_or_create_owned(labels),
            duration: self.durations.get_or_create_owned(labels),
        };
        series.requests.inc();
        series.duration.observe(seconds);
        let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        // Another request may have added the same labels meanwhile; one entry is enough.
        if !seen.iter().any(|s| s.labels == *labels) {
            seen.push(series);
        }
    }

    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// The registry in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// `process_*` series as the Prometheus client libraries name them, read at scrape time.
#[derive(Debug)]
struct ProcessCollector {
    start_time_seconds: i64,
}

impl ProcessCollector {
    fn new() -> Self {
        let start = proc_stat_start_time().unwrap_or_else(|| chrono::Utc::now().timestamp());
        Self {
            start_time_seconds: start,
        }
    }
}

/// Clock ticks per second in /proc: USER_HZ is fixed at 100 in the Linux ABI.
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = ProcStat::read();
        let gauges: [(&str, &str, f64); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                status_kib(&status, "VmRSS:") * 1024.0,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                status_kib(&status, "VmSize:") * 1024.0,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                open_fds() as f64,
            ),
            (
                "process_max_fds",
                "Limit of open file descriptors",
                max_fds().unwrap_or(0.0),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                self.start_time_seconds as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        let metric = encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stat.map(|s| s.cpu_seconds).unwrap_or(0.0)).encode(metric)?;
        Ok(())
    }
}

struct ProcStat {
    cpu_seconds: f64,
    start_ticks: u64,
}

impl ProcStat {
    fn read() -> Option<Self> {
        parse_proc_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }
}

/// Fields of /proc/PID/stat after the command name, which may itself contain spaces and ')'.
fn parse_proc_stat(stat: &str) -> Option<ProcStat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
        start_ticks: field(22)?,
    })
}

fn proc_stat_start_time() -> Option<i64> {
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<i64>()
        .ok()?;
    Some(boot + (ProcStat::read()?.start_ticks as f64 / USER_HZ) as i64)
}

/// A `Key:   1234 kB` line of /proc/self/status, in KiB.
fn status_kib(status: &str, key: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_survives_odd_command_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 4 0 12345 0 0";
        let stat = parse_proc_stat(line).unwrap();
        assert_eq!(stat.cpu_seconds, 3.0);
        assert_eq!(stat.start_ticks, 12345);
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t   512 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), 512.0);
        assert_eq!(status_kib(status, "VmHWM:"), 0.0);
    }

    #[test]
    fn each_observation_and_redis_error_counts_once() {
        let metrics = Metrics::new();
        let labels = |status| RequestLabels {
            method: "GET",
            route: "/api/visits",
            status,
        };
        // The first observation of a label set creates its series, later ones reuse them.
        metrics.observe(&labels(200), 0.002);
        metrics.observe(&labels(503), 0.002);
        metrics.observe(&labels(200), 0.002);
        metrics.redis_error();
        let text = metrics.render();
        for series in [
            "http_requests_total{method=\"GET\",route=\"/api/visits\",status=\"200\"} 2",
            "http_requests_total{method=\"GET\",route=\"/api/visits\",status=\"503\"} 1",
            "http_request_duration_seconds_bucket{",
            "http_request_duration_seconds_count{method=\"GET\",route=\"/api/visits\",status=\"200\"} 2",
            "redis_errors_total 1",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }
}
