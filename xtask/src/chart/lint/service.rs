//! The service binary for the metric names check: built by cargo, started on a loopback port
//! with Redis absent, and scraped once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

/// The service's /metrics after one request, from its binary started on a loopback port the OS
/// picks, with Redis absent: /metrics and /healthz never touch Redis, and the request and Redis
/// error series exist without it (Redis errors as a counter at 0).
pub fn scrape_metrics(sh: &Shell) -> Result<String> {
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
    let build = cmd!(
        sh,
        "{cargo} build --package visit-tracker --bin visit-tracker --message-format=json-render-diagnostics"
    );
    let report = crate::without_cargo_run_env(build)
        .read()
        .context("building the service (cargo build --package visit-tracker)")?;
    report
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "visit-tracker")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built no visit-tracker executable")
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
