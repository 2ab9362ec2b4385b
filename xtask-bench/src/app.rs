//! Load test of the service against the Redis ceiling measured in the same run.
//!
//! `redis-benchmark -t incr -c 64` says how fast this machine's Redis can count; `wrk -c 64`
//! with POST /api/visits says how much of that the service delivers. Both run in alternating
//! rounds and the medians are reported, so one burst of load from a neighbour does not decide
//! the figures. Figures only, no pass/fail on speed: the targets are printed next to them.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use testkit::{free_port, wait_for_port};
use xshell::{Shell, cmd};
use xtask::bench::{REDIS_BENCHMARK, WRK};
use xtask::ci::REDIS_SERVER;
use xtask::tools::need;

use crate::measure::median;

/// Targets from the issue: share of the Redis ceiling, p99 latency, peak memory.
const TARGET_RATIO: f64 = 0.7;
const TARGET_P99_MS: f64 = 5.0;
const TARGET_RSS_MIB: f64 = 30.0;

/// How long redis-server and the service may take to listen.
const STARTUP: Duration = Duration::from_secs(20);

/// wrk script: POST /api/visits, then one parseable line with the figures (latency in µs).
const WRK_SCRIPT: &str = r#"wrk.method = "POST"
wrk.path = "/api/visits"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#;

/// Load test of the service against the Redis ceiling measured in the same run.
#[derive(Debug, Args)]
pub struct AppBench {
    /// Concurrent connections for both redis-benchmark and wrk.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// How long wrk loads the service in each round, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// wrk threads. One by default: the same shape of client as redis-benchmark, which drives
    /// its connections from one thread.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// INCRs redis-benchmark sends in each round.
    #[arg(long, default_value_t = 300_000)]
    requests: u32,
    /// Tokio worker threads of the service (`TOKIO_WORKER_THREADS`). One by default: what tokio
    /// starts in a pod under the chart's 500m CPU limit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    workers: u32,
    /// Rounds of redis-benchmark then wrk; the report gives the medians.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

/// What one load generator measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One round: the Redis ceiling, then the service, then what the service's POSTs cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub redis: Figures,
    pub service: Figures,
    /// CPU time (user + system) per POST, in µs: the service's and Redis's.
    pub cpu_us: [f64; 2],
}

impl Round {
    pub fn ratio(&self) -> f64 {
        self.service.rps / self.redis.rps
    }
}

impl AppBench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        need(sh, &REDIS_SERVER)?;
        need(sh, &REDIS_BENCHMARK)?;
        need(sh, &WRK)?;
        let cargo = xtask::cargo();
        eprintln!("bench app: building the release binary");
        cmd!(
            sh,
            "{cargo} build --release --quiet --package visit-tracker"
        )
        .run()
        .context("building the release binary")?;
        let binary = xtask::workspace::Workspace::current()?
            .target_directory
            .join("release/visit-tracker");
        let work = sh.create_temp_dir()?;

        let redis_port = free_port();
        let port = redis_port.to_string();
        let dir = work.path();
        let redis = Process::spawn(
            cmd!(
                sh,
                "redis-server --port {port} --bind 127.0.0.1 --dir {dir} --save '' --appendonly no --logfile redis.log"
            ),
            "redis-server",
        )?;
        wait_for_port(addr(redis_port), STARTUP)?;

        let listen = addr(free_port());
        let service_cmd = cmd!(sh, "{binary}")
            .env("LISTEN_ADDR", listen.to_string())
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", &port)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("TOKIO_WORKER_THREADS", self.workers.to_string());
        eprintln!(
            "bench app: the service with {} tokio worker thread(s)",
            self.workers
        );
        let service = Process::spawn(service_cmd, "visit-tracker")?;
        wait_for_port(listen, STARTUP)?;

        let script = work.path().join("post.lua");
        std::fs::write(&script, WRK_SCRIPT)?;
        let url = format!("http://{listen}");
        let (connections, requests) = (self.connections.to_string(), self.requests.to_string());
        let (threads, seconds) = (self.threads.to_string(), format!("{}s", self.seconds));
        let mut rounds = Vec::new();
        let mut failures = 0;
        for round in 1..=self.rounds {
            eprintln!(
                "bench app: round {round}/{}: redis-benchmark -t incr -c {connections} -n {requests}, \
                 then wrk -t{threads} -c{connections} -d{seconds} POST /api/visits",
                self.rounds
            );
            let csv = cmd!(
                sh,
                "redis-benchmark -h 127.0.0.1 -p {port} -t incr -c {connections} -n {requests} --csv"
            )
            .read()
            .context("running redis-benchmark")?;
            let ceiling = parse_redis_benchmark(&csv)?;
            let cpu_before = [cpu_seconds(service.id())?, cpu_seconds(redis.id())?];
            let out = cmd!(
                sh,
                "wrk -t{threads} -c{connections} -d{seconds} -s {script} {url}"
            )
            .read()
            .context("running wrk")?;
            let cpu_after = [cpu_seconds(service.id())?, cpu_seconds(redis.id())?];
            let (measured, posts, failed) = parse_wrk(&out)?;
            failures += failed;
            let cpu_us = |i: usize| (cpu_after[i] - cpu_before[i]) * 1e6 / posts.max(1) as f64;
            rounds.push(Round {
                redis: ceiling,
                service: measured,
                cpu_us: [cpu_us(0), cpu_us(1)],
            });
        }
        let rss_mib = peak_rss_kib(service.id())? as f64 / 1024.0;
        let total_key = "{visit-tracker}:total";
        let counted = cmd!(sh, "redis-cli -p {port} get {total_key}")
            .read()
            .unwrap_or_default();
        drop(service);
        drop(redis);

        println!("{}", report(&rounds, rss_mib));
        // Latency on a shared machine says more about its neighbours than about the service.
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load.split_whitespace().next().unwrap_or("?");
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("machine load average {load} on {cores} cores during the run");
        println!("visits counted in Redis: {}", counted.trim());
        if failures > 0 {
            bail!("{failures} requests failed or answered non-2xx under load");
        }
        Ok(())
    }
}

/// Each round's figures, then the medians against the targets and whether each was met.
pub fn report(rounds: &[Round], rss_mib: f64) -> String {
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = format!(
        "{:<7} {:>22} {:>22} {:>6} {:>22}\n",
        "round",
        "redis INCR/s (p99 ms)",
        "service POST/s (p99 ms)",
        "ratio",
        "CPU/POST µs svc, redis"
    );
    for (i, r) in rounds.iter().enumerate() {
        out += &format!(
            "{:<7} {:>14.0} ({:>5.3}) {:>15.0} ({:>5.3}) {:>6.2} {:>13.1}, {:.1}\n",
            i + 1,
            r.redis.rps,
            r.redis.p99_ms,
            r.service.rps,
            r.service.p99_ms,
            r.ratio(),
            r.cpu_us[0],
            r.cpu_us[1]
        );
    }
    let ratio = median(rounds.iter().map(Round::ratio));
    let p50 = median(rounds.iter().map(|r| r.service.p50_ms));
    let p99 = median(rounds.iter().map(|r| r.service.p99_ms));
    out += &format!(
        "median of {} rounds:\n\
         ratio service/redis: {ratio:.2} (target >= {TARGET_RATIO}: {})\n\
         service p50 {p50:.3} ms, p99 {p99:.3} ms (target p99 <= {TARGET_P99_MS} ms: {})\n\
         service CPU per POST: {:.1} µs, redis-server's: {:.1} µs (user + system)\n\
         service peak RSS: {rss_mib:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        rounds.len(),
        mark(ratio >= TARGET_RATIO),
        mark(p99 <= TARGET_P99_MS),
        median(rounds.iter().map(|r| r.cpu_us[0])),
        median(rounds.iter().map(|r| r.cpu_us[1])),
        mark(rss_mib < TARGET_RSS_MIB),
    );
    out
}

/// The INCR line of `redis-benchmark --csv`.
pub fn parse_redis_benchmark(csv: &str) -> Result<Figures> {
    let mut lines = csv.lines().map(|l| {
        l.split(',')
            .map(|f| f.trim_matches('"').to_owned())
            .collect::<Vec<_>>()
    });
    let header = lines.next().context("redis-benchmark printed nothing")?;
    let row = lines
        .find(|r| r.first().is_some_and(|t| t == "INCR"))
        .with_context(|| format!("no INCR line in redis-benchmark output: {csv}"))?;
    let field = |name: &str| -> Result<f64> {
        let i = header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("redis-benchmark output has no {name} column"))?;
        row.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bad {name} in redis-benchmark output: {csv}"))
    };
    Ok(Figures {
        rps: field("rps")?,
        p50_ms: field("p50_latency_ms")?,
        p99_ms: field("p99_latency_ms")?,
    })
}

/// The `WRK ...` line our script prints; returns the figures, the requests made and the
/// failed ones.
pub fn parse_wrk(out: &str) -> Result<(Figures, u64, u64)> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("WRK "))
        .with_context(|| format!("no figures in wrk output: {out}"))?;
    let field = |name: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in wrk output: {line}"))
    };
    let seconds = field("duration_us")? / 1e6;
    if seconds <= 0.0 {
        bail!("wrk ran for no time: {line}");
    }
    let requests = field("requests")?;
    let figures = Figures {
        rps: requests / seconds,
        p50_ms: field("p50_us")? / 1000.0,
        p99_ms: field("p99_us")? / 1000.0,
    };
    let failures = field("non2xx")? + field("errors")?;
    Ok((figures, requests as u64, failures as u64))
}

/// CPU time (user + system) a running process has used so far, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_seconds(&stat).with_context(|| format!("no utime/stime in {path}: {stat}"))
}

/// utime + stime (fields 14 and 15) of /proc/PID/stat, counted after the command name, which
/// may itself hold spaces and parentheses. Clock ticks are 1/100 s in the Linux ABI.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((ticks(14)? + ticks(15)?) as f64 / 100.0)
}

/// Peak resident memory (VmHWM) of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmHWM in /proc/PID/status")
}

/// A background process killed on drop, so a failed bench leaves nothing running.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(cmd: xshell::Cmd<'_>, name: &str) -> Result<Self> {
        let child = Command::from(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { child })
    }

    fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read_by_column_name() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"INCR\",\"59523.81\",\"0.691\",\"0.088\",\"0.535\",\"1.167\",\"4.423\",\"9.535\"\n";
        assert_eq!(
            parse_redis_benchmark(csv).unwrap(),
            Figures {
                rps: 59523.81,
                p50_ms: 0.535,
                p99_ms: 4.423
            }
        );
        assert!(parse_redis_benchmark("").is_err());
    }

    #[test]
    fn wrk_figures_come_from_the_script_line() {
        let out = "Running 10s test\n  2 threads and 64 connections\nWRK requests=50000 duration_us=10000000 p50_us=1200 p99_us=4100 non2xx=3 errors=1\n";
        let (figures, requests, failures) = parse_wrk(out).unwrap();
        assert_eq!(
            figures,
            Figures {
                rps: 5000.0,
                p50_ms: 1.2,
                p99_ms: 4.1
            }
        );
        assert_eq!((requests, failures), (50000, 4));
        assert!(parse_wrk("no figures").is_err());
    }

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 566 0 0 20 0 3 0 99 1000 500";
        assert_eq!(parse_cpu_seconds(stat), Some(18.0));
        assert_eq!(parse_cpu_seconds("4242 (x) S 1"), None);
    }

    fn round(redis_rps: f64, service_rps: f64, p99_ms: f64) -> Round {
        let figures = |rps| Figures {
            rps,
            p50_ms: 1.0,
            p99_ms,
        };
        Round {
            redis: figures(redis_rps),
            service: figures(service_rps),
            cpu_us: [12.0, 5.0],
        }
    }

    #[test]
    fn the_report_gives_medians_and_marks_missed_targets() {
        // One disturbed round does not decide: the median ratio is 0.80.
        let rounds = [
            round(100.0, 80.0, 2.0),
            round(100.0, 40.0, 9.0),
            round(100.0, 85.0, 2.5),
        ];
        let text = report(&rounds, 12.0);
        assert!(text.contains("ratio service/redis: 0.80"), "{text}");
        assert!(text.contains("p99 2.500 ms"), "{text}");
        assert!(!text.contains("MISSED"), "{text}");
        let slow = [round(100.0, 50.0, 9.0)];
        assert_eq!(report(&slow, 40.0).matches("MISSED").count(), 3);
    }
}
