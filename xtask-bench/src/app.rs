//! Load test of the service against the Redis ceiling measured in the same run.
//!
//! `redis-benchmark -t incr -c 64` says how fast this machine's Redis can count; `wrk -c 64`
//! with POST /api/visits says how much of that the service delivers. Both run in alternating
//! rounds and the medians are reported, so one burst of load from a neighbour does not decide
//! the figures. Figures only, no pass/fail on speed: the targets are printed next to them.
//!
//! The binary under load is the one users run: the amd64 binary inside the image (`--build
//! image`, the default), or the host's glibc release build for comparison; `--compare` loads
//! both in the same rounds. `--callgrind` counts instructions per POST instead, which does not
//! depend on what else the machine is doing.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use testkit::{free_port, wait_for_port};
use xshell::{Shell, cmd};
use xtask::bench::{CALLGRIND_CONTROL, REDIS_BENCHMARK, VALGRIND, WRK};
use xtask::ci::{REDIS_CLI, REDIS_SERVER};
use xtask::image::build::Build as ImageBuild;
use xtask::image::layout::Layout;
use xtask::image::oci::{BINARY_PATH, Platform};
use xtask::tools::need;
use xtask::workspace::Workspace;

use crate::measure::median;

/// Targets from the issue: share of the Redis ceiling (one worker, two or more), p99 latency,
/// peak memory, and the image binary's CPU per POST against the glibc build's.
const TARGET_RATIO_ONE_WORKER: f64 = 0.8;
const TARGET_RATIO_MORE_WORKERS: f64 = 0.75;
const TARGET_P99_MS: f64 = 3.0;
const TARGET_RSS_MIB: f64 = 20.0;
const TARGET_CPU_IMAGE_OVER_GLIBC: f64 = 1.10;

/// How long redis-server and the service may take to listen.
const STARTUP: Duration = Duration::from_secs(20);
/// Under valgrind the service starts some fifty times slower.
const STARTUP_UNDER_VALGRIND: Duration = Duration::from_secs(180);

/// The Redis key the service counts POSTs in (default `REDIS_KEY_PREFIX`).
const TOTAL_KEY: &str = "{visit-tracker}:total";

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

/// Which build of the service is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// The amd64 binary of the image: static musl with mimalloc, as shipped.
    Image,
    /// The host's glibc release build (`cargo build --release`), for comparison.
    Glibc,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Image => "image",
            Variant::Glibc => "glibc",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Variant::Image => "the image's amd64 binary (static musl, mimalloc): what ships",
            Variant::Glibc => "the host's glibc release build",
        }
    }
}

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
    /// The binary to load: the image's (built now as `image build` builds it, or taken from
    /// `--layout`), or the host's glibc build.
    #[arg(long, value_enum, default_value_t = Variant::Image)]
    build: Variant,
    /// Load the image's binary and the glibc build in the same rounds, alternating which goes
    /// first, and print both with the ratio of their CPU per POST.
    #[arg(long, conflicts_with = "build")]
    compare: bool,
    /// Take the image's binary from this OCI image layout (as `image build` wrote it) instead
    /// of building the image.
    #[arg(long, value_name = "DIR")]
    layout: Option<PathBuf>,
    /// Count user-space instructions per POST under callgrind (valgrind) instead of timing:
    /// one wrk run of `--seconds` per build, exact and independent of the machine's load.
    #[arg(long)]
    callgrind: bool,
}

/// What one load generator measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One build under wrk in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub figures: Figures,
    /// CPU time (user + system) per POST, in µs: the service's and Redis's.
    pub cpu_us: [f64; 2],
}

/// One round: the Redis ceiling, then each build under wrk, in the order `builds` gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub redis: Figures,
    /// One entry per build, in the run's order of builds (not the round's order of loading).
    pub services: Vec<Loaded>,
}

impl Round {
    pub fn ratio(&self, build: usize) -> f64 {
        self.services[build].figures.rps / self.redis.rps
    }
}

impl AppBench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        need(sh, &REDIS_SERVER)?;
        need(sh, &REDIS_CLI)?;
        need(sh, &WRK)?;
        if self.callgrind {
            need(sh, &VALGRIND)?;
            need(sh, &CALLGRIND_CONTROL)?;
        } else {
            need(sh, &REDIS_BENCHMARK)?;
        }
        let workspace = Workspace::current()?;
        let work = sh.create_temp_dir()?;
        let variants = if self.compare {
            vec![Variant::Image, Variant::Glibc]
        } else {
            vec![self.build]
        };
        let binaries = variants
            .iter()
            .map(|v| self.binary(sh, workspace, *v, work.path()))
            .collect::<Result<Vec<_>>>()?;

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
        let script = work.path().join("post.lua");
        std::fs::write(&script, WRK_SCRIPT)?;
        let load = Load {
            sh,
            redis_port,
            script: &script,
            connections: self.connections,
            threads: self.threads,
        };

        if self.callgrind {
            let mut counts = Vec::new();
            for (variant, binary) in variants.iter().zip(&binaries) {
                counts.push((*variant, self.callgrind(&load, binary, work.path())?));
            }
            println!("{}", callgrind_report(&counts));
            return Ok(());
        }

        let mut services = Vec::new();
        for (variant, binary) in variants.iter().zip(&binaries) {
            eprintln!(
                "bench app: {} with {} tokio worker thread(s)",
                variant.describe(),
                self.workers
            );
            services.push(Service::start(&load, binary, self.workers, None)?);
        }
        let mut rounds = Vec::new();
        let mut failures = 0;
        for round in 1..=self.rounds {
            eprintln!(
                "bench app: round {round}/{}: redis-benchmark -t incr -c {} -n {}, then wrk -t{} -c{} -d{}s POST /api/visits on {}",
                self.rounds,
                self.connections,
                self.requests,
                self.threads,
                self.connections,
                self.seconds,
                variants
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(" and ")
            );
            let (connections, requests) = (self.connections.to_string(), self.requests.to_string());
            let csv = cmd!(
                sh,
                "redis-benchmark -h 127.0.0.1 -p {port} -t incr -c {connections} -n {requests} --csv"
            )
            .read()
            .context("running redis-benchmark")?;
            let ceiling = parse_redis_benchmark(&csv)?;
            let mut loaded = vec![None; services.len()];
            for i in loading_order(services.len(), round) {
                let (measured, failed) = load.measure(&services[i], redis.id(), self.seconds)?;
                failures += failed;
                loaded[i] = Some(measured);
            }
            rounds.push(Round {
                redis: ceiling,
                services: loaded.into_iter().flatten().collect(),
            });
        }
        let rss_mib = services
            .iter()
            .map(|s| Ok(peak_rss_kib(s.process.id())? as f64 / 1024.0))
            .collect::<Result<Vec<_>>>()?;
        let counted = cmd!(sh, "redis-cli -p {port} get {TOTAL_KEY}")
            .read()
            .unwrap_or_default();
        drop(services);
        drop(redis);

        println!("{}", report(&variants, &rounds, &rss_mib, self.workers));
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

    /// The binary of `variant`, ready to run.
    fn binary(
        &self,
        sh: &Shell,
        workspace: &Workspace,
        variant: Variant,
        work: &Path,
    ) -> Result<PathBuf> {
        match variant {
            Variant::Glibc => {
                let cargo = xtask::cargo();
                eprintln!("bench app: building the glibc release binary");
                // Without what `cargo run` set for this benchmark, as a build typed in a shell.
                xtask::without_cargo_run_env(cmd!(
                    sh,
                    "{cargo} build --release --quiet --package visit-tracker"
                ))
                .run()
                .context("building the release binary")?;
                Ok(workspace.target_directory.join("release/visit-tracker"))
            }
            Variant::Image => {
                let layout = match &self.layout {
                    Some(dir) => dir.clone(),
                    None => {
                        // amd64 only, into a layout of its own: the default layout (both
                        // platforms) stays as `image build` left it.
                        eprintln!(
                            "bench app: building the image (linux/amd64) as `image build` does"
                        );
                        let built = ImageBuild {
                            platform: vec![Platform::Amd64],
                            output: Some(workspace.target_directory.join("bench-app/oci")),
                            version: None,
                            source_date_epoch: None,
                            profile: "release".into(),
                        }
                        .build(sh, workspace)?;
                        built.output
                    }
                };
                let binary = work.join("visit-tracker-image");
                std::fs::write(&binary, image_binary(&layout, Platform::Amd64)?)
                    .with_context(|| format!("writing {}", binary.display()))?;
                make_executable(&binary)?;
                eprintln!(
                    "bench app: the image's binary from {} (linux/amd64 layer, /{BINARY_PATH})",
                    layout.display()
                );
                Ok(binary)
            }
        }
    }

    /// Runs `binary` under callgrind, loads it with wrk for `--seconds` after a warm-up, and
    /// returns the user-space instructions per POST counted between the two.
    fn callgrind(&self, load: &Load<'_>, binary: &Path, work: &Path) -> Result<f64> {
        let out = work.join(format!("callgrind.{}.out", std::process::id()));
        let service = Service::start(load, binary, self.workers, Some(&out))?;
        let sh = load.sh;
        let pid = service.process.id().to_string();
        eprintln!("bench app: callgrind: warming up for 2 s");
        load.wrk(&service, 2)?;
        settle(load)?;
        let before = load.total()?;
        cmd!(sh, "callgrind_control --zero {pid}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()?;
        eprintln!("bench app: callgrind: counting for {} s", self.seconds);
        load.wrk(&service, self.seconds)?;
        // Requests still in flight when wrk stopped are counted in Redis, not by wrk.
        let after = settle(load)?;
        cmd!(sh, "callgrind_control --dump {pid}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()?;
        drop(service);
        let posts = after - before;
        ensure!(posts > 0, "no POST counted under callgrind");
        let dump = callgrind_dump(&out)?;
        let text = std::fs::read_to_string(&dump)
            .with_context(|| format!("reading {}", dump.display()))?;
        let instructions = parse_callgrind_total(&text)
            .with_context(|| format!("no totals in {}", dump.display()))?;
        eprintln!(
            "bench app: callgrind: {instructions} instructions for {posts} POSTs ({})",
            dump.display()
        );
        Ok(instructions as f64 / posts as f64)
    }
}

/// The file `callgrind_control --dump` wrote for `--callgrind-out-file=out`: `out.1`.
fn callgrind_dump(out: &Path) -> Result<PathBuf> {
    let mut name = out.as_os_str().to_owned();
    name.push(".1");
    let dump = PathBuf::from(name);
    ensure!(
        dump.is_file(),
        "callgrind wrote no dump at {} (valgrind's output above may say why)",
        dump.display()
    );
    Ok(dump)
}

/// Which build goes first in each round: alternating, so neither always follows
/// redis-benchmark and neither always has the warmer caches.
fn loading_order(builds: usize, round: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..builds).collect();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// The load generator and the Redis it counts in.
struct Load<'a> {
    sh: &'a Shell,
    redis_port: u16,
    script: &'a Path,
    connections: u32,
    threads: u32,
}

impl Load<'_> {
    /// One wrk run against `service`: its figures, the POSTs made and the failed ones.
    fn wrk(&self, service: &Service, seconds: u32) -> Result<(Figures, u64, u64)> {
        let sh = self.sh;
        let (threads, connections) = (self.threads.to_string(), self.connections.to_string());
        let (seconds, script) = (format!("{seconds}s"), self.script);
        let url = format!("http://{}", service.listen);
        let out = cmd!(
            sh,
            "wrk -t{threads} -c{connections} -d{seconds} -s {script} {url}"
        )
        .read()
        .context("running wrk")?;
        parse_wrk(&out)
    }

    /// Loads `service` for `seconds` and returns its figures and the CPU it and Redis spent per
    /// POST, and the failed requests.
    fn measure(&self, service: &Service, redis_pid: u32, seconds: u32) -> Result<(Loaded, u64)> {
        let pid = service.process.id();
        let before = [cpu_seconds(pid)?, cpu_seconds(redis_pid)?];
        let (figures, posts, failed) = self.wrk(service, seconds)?;
        let after = [cpu_seconds(pid)?, cpu_seconds(redis_pid)?];
        let cpu_us = |i: usize| (after[i] - before[i]) * 1e6 / posts.max(1) as f64;
        Ok((
            Loaded {
                figures,
                cpu_us: [cpu_us(0), cpu_us(1)],
            },
            failed,
        ))
    }

    /// The visits counted in Redis so far.
    fn total(&self) -> Result<u64> {
        let (sh, port) = (self.sh, self.redis_port.to_string());
        let text = cmd!(sh, "redis-cli -p {port} get {TOTAL_KEY}").read()?;
        Ok(text.trim().parse().unwrap_or(0))
    }
}

/// Waits until the count in Redis stops moving (the service answered what it had in flight),
/// and returns it.
fn settle(load: &Load<'_>) -> Result<u64> {
    let mut last = load.total()?;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = load.total()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

/// A running service on its own port, against the bench's Redis.
struct Service {
    process: Process,
    listen: SocketAddr,
}

impl Service {
    /// Starts `binary`, under callgrind when `callgrind_out` is given, and waits until it listens.
    fn start(
        load: &Load<'_>,
        binary: &Path,
        workers: u32,
        callgrind_out: Option<&Path>,
    ) -> Result<Service> {
        let sh = load.sh;
        let listen = addr(free_port());
        let cmd = match callgrind_out {
            None => cmd!(sh, "{binary}"),
            Some(out) => {
                let out = format!("--callgrind-out-file={}", out.display());
                cmd!(sh, "valgrind --quiet --tool=callgrind {out} {binary}")
            }
        };
        let cmd = cmd
            .env("LISTEN_ADDR", listen.to_string())
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", load.redis_port.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("TOKIO_WORKER_THREADS", workers.to_string());
        let process = Process::spawn(cmd, "visit-tracker")?;
        let startup = if callgrind_out.is_some() {
            STARTUP_UNDER_VALGRIND
        } else {
            STARTUP
        };
        wait_for_port(listen, startup)?;
        Ok(Service { process, listen })
    }
}

/// The service binary inside the `platform` image of an OCI layout, as the image ships it.
fn image_binary(layout_dir: &Path, platform: Platform) -> Result<Vec<u8>> {
    let layout = Layout::open(layout_dir)?;
    let index = layout.image_index(layout.entry(None)?)?;
    let entry = layout
        .platforms(&index)?
        .into_iter()
        .find(|p| {
            p.descriptor
                .platform()
                .as_ref()
                .is_some_and(|d| d.architecture().to_string() == platform.architecture())
        })
        .with_context(|| {
            format!(
                "{}: the image has no {} manifest (build it with `cargo xtask image build`)",
                layout_dir.display(),
                platform.name()
            )
        })?;
    for layer in entry.manifest.layers() {
        let gz = layout.read_blob(layer)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        for file in archive.entries()? {
            let mut file = file?;
            if file.path()?.as_os_str() == BINARY_PATH {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                return Ok(bytes);
            }
        }
    }
    bail!(
        "{}: no /{BINARY_PATH} in the {} image's layers",
        layout_dir.display(),
        platform.name()
    )
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

/// Each round's figures, then per build the medians against the targets and whether each was
/// met; with two builds, the image's CPU per POST over the glibc build's.
pub fn report(variants: &[Variant], rounds: &[Round], rss_mib: &[f64], workers: u32) -> String {
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let target_ratio = if workers == 1 {
        TARGET_RATIO_ONE_WORKER
    } else {
        TARGET_RATIO_MORE_WORKERS
    };
    let mut out = format!(
        "{:<7} {:>22} {:<6} {:>22} {:>6} {:>22}\n",
        "round",
        "redis INCR/s (p99 ms)",
        "build",
        "service POST/s (p99 ms)",
        "ratio",
        "CPU/POST µs svc, redis"
    );
    for (i, r) in rounds.iter().enumerate() {
        for (b, (variant, s)) in variants.iter().zip(&r.services).enumerate() {
            let (round, redis) = if b == 0 {
                (
                    (i + 1).to_string(),
                    format!("{:>14.0} ({:>5.3})", r.redis.rps, r.redis.p99_ms),
                )
            } else {
                (String::new(), String::new())
            };
            out += &format!(
                "{round:<7} {redis:>22} {:<6} {:>14.0} ({:>5.3}) {:>6.2} {:>13.1}, {:.1}\n",
                variant.name(),
                s.figures.rps,
                s.figures.p99_ms,
                r.ratio(b),
                s.cpu_us[0],
                s.cpu_us[1]
            );
        }
    }
    out += &format!(
        "median of {} rounds, {workers} tokio worker thread(s):\n",
        rounds.len()
    );
    for (b, variant) in variants.iter().enumerate() {
        let of = |f: fn(&Loaded) -> f64| median(rounds.iter().map(|r| f(&r.services[b])));
        let ratio = median(rounds.iter().map(|r| r.ratio(b)));
        let p99 = of(|s| s.figures.p99_ms);
        let rss = rss_mib[b];
        out += &format!(
            "{}: {}\n  \
             ratio service/redis: {ratio:.2} (target >= {target_ratio}: {})\n  \
             POST/s {:.0}, p50 {:.3} ms, p99 {p99:.3} ms (target p99 <= {TARGET_P99_MS} ms: {})\n  \
             CPU per POST: {:.1} µs, redis-server's: {:.1} µs (user + system)\n  \
             peak RSS: {rss:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})\n",
            variant.name(),
            variant.describe(),
            mark(ratio >= target_ratio),
            of(|s| s.figures.rps),
            of(|s| s.figures.p50_ms),
            mark(p99 <= TARGET_P99_MS),
            of(|s| s.cpu_us[0]),
            of(|s| s.cpu_us[1]),
            mark(rss < TARGET_RSS_MIB),
        );
    }
    if let (Some(image), Some(glibc)) = (
        variants.iter().position(|v| *v == Variant::Image),
        variants.iter().position(|v| *v == Variant::Glibc),
    ) {
        // Per round, so both sides of each ratio saw the same neighbours.
        let cpu = median(
            rounds
                .iter()
                .map(|r| r.services[image].cpu_us[0] / r.services[glibc].cpu_us[0]),
        );
        let rps = median(
            rounds
                .iter()
                .map(|r| r.services[image].figures.rps / r.services[glibc].figures.rps),
        );
        out += &format!(
            "image/glibc, median of the rounds' ratios: CPU per POST {cpu:.2} (target <= {TARGET_CPU_IMAGE_OVER_GLIBC:.2}: {}), POST/s {rps:.2}\n",
            mark(cpu <= TARGET_CPU_IMAGE_OVER_GLIBC)
        );
    }
    out.pop();
    out
}

/// Instructions per POST for each build, and their ratio when there are two.
pub fn callgrind_report(counts: &[(Variant, f64)]) -> String {
    let mut out = String::from("user-space instructions per POST (callgrind, all threads):\n");
    for (variant, per_post) in counts {
        out += &format!(
            "  {:<6} {:>8.0}  ({})\n",
            variant.name(),
            per_post,
            variant.describe()
        );
    }
    if let [(_, a), (_, b)] = counts {
        out += &format!(
            "  {}/{}: {:.2}\n",
            counts[0].0.name(),
            counts[1].0.name(),
            a / b
        );
    }
    out.pop();
    out
}

/// The total instruction count of a callgrind dump (its `summary:` or `totals:` line).
pub fn parse_callgrind_total(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
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

    #[test]
    fn callgrind_totals_are_read_from_a_dump() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\npid: 7\ncmd: visit-tracker\n\
                    part: 1\npositions: line\nevents: Ir\nsummary: 366000123\n\nfn=(1) main\n5 12\n\
                    totals: 366000123\n";
        assert_eq!(parse_callgrind_total(dump), Some(366_000_123));
        assert_eq!(parse_callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn builds_take_turns_going_first() {
        assert_eq!(loading_order(2, 1), [0, 1]);
        assert_eq!(loading_order(2, 2), [1, 0]);
        assert_eq!(loading_order(1, 2), [0]);
    }

    fn round(redis_rps: f64, services: &[(f64, f64, f64)]) -> Round {
        let figures = |rps, p99_ms| Figures {
            rps,
            p50_ms: 1.0,
            p99_ms,
        };
        Round {
            redis: figures(redis_rps, 1.0),
            services: services
                .iter()
                .map(|&(rps, p99, cpu)| Loaded {
                    figures: figures(rps, p99),
                    cpu_us: [cpu, 5.0],
                })
                .collect(),
        }
    }

    #[test]
    fn the_report_gives_medians_and_marks_missed_targets() {
        // One disturbed round does not decide: the median ratio is 0.85.
        let rounds = [
            round(100.0, &[(85.0, 2.0, 12.0)]),
            round(100.0, &[(40.0, 9.0, 20.0)]),
            round(100.0, &[(90.0, 2.5, 12.0)]),
        ];
        let text = report(&[Variant::Image], &rounds, &[12.0], 1);
        assert!(text.contains("ratio service/redis: 0.85"), "{text}");
        assert!(text.contains("p99 2.500 ms"), "{text}");
        assert!(!text.contains("MISSED"), "{text}");
        assert!(!text.contains("image/glibc"), "{text}");
        let slow = [round(100.0, &[(50.0, 9.0, 12.0)])];
        assert_eq!(
            report(&[Variant::Image], &slow, &[40.0], 1)
                .matches("MISSED")
                .count(),
            3
        );
        // Two workers have the lower ratio target.
        let two = [round(100.0, &[(77.0, 2.0, 12.0)])];
        assert!(!report(&[Variant::Image], &two, &[12.0], 2).contains("MISSED"));
        assert!(report(&[Variant::Image], &two, &[12.0], 1).contains("MISSED"));
    }

    #[test]
    fn a_comparison_gives_the_ratio_of_cpu_per_post_round_by_round() {
        // Round 2's machine was slower for both: per-round ratios cancel that out.
        let rounds = [
            round(100.0, &[(85.0, 2.0, 11.0), (86.0, 2.0, 10.0)]),
            round(100.0, &[(60.0, 2.0, 22.0), (60.0, 2.0, 20.0)]),
            round(100.0, &[(85.0, 2.0, 13.0), (86.0, 2.0, 10.0)]),
        ];
        let text = report(&[Variant::Image, Variant::Glibc], &rounds, &[9.0, 8.0], 1);
        assert!(
            text.contains(
                "image/glibc, median of the rounds' ratios: CPU per POST 1.10 (target <= 1.10: met)"
            ),
            "{text}"
        );
        assert!(text.contains("\nglibc: "), "{text}");
        let worse = [round(100.0, &[(80.0, 2.0, 12.0), (86.0, 2.0, 10.0)])];
        let text = report(&[Variant::Image, Variant::Glibc], &worse, &[9.0, 8.0], 1);
        assert!(
            text.contains("CPU per POST 1.20 (target <= 1.10: MISSED)"),
            "{text}"
        );
    }

    #[test]
    fn callgrind_report_gives_both_counts_and_their_ratio() {
        let text = callgrind_report(&[(Variant::Image, 29_000.0), (Variant::Glibc, 29_000.0)]);
        assert!(text.contains("image     29000"), "{text}");
        assert!(text.contains("image/glibc: 1.00"), "{text}");
    }
}
