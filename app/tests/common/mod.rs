//! Shared by the integration tests: the real `visit-tracker` binary on a free loopback port,
//! its output captured, stopped on drop; and an HTTP client.

#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const STARTUP: Duration = Duration::from_secs(30);

/// The service under test, started as a separate process like in production.
pub struct Service {
    pub addr: SocketAddr,
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Service {
    /// Starts the binary against a standalone Redis on `redis_port` with extra env vars, and
    /// waits until it serves.
    pub fn standalone(redis_port: u16, env: &[(&str, &str)]) -> Service {
        let port = redis_port.to_string();
        let mut all = vec![("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", port.as_str())];
        all.extend_from_slice(env);
        Self::start(&all)
    }

    /// Starts the binary with exactly these env vars (listening on a port the OS picks) and
    /// waits until it serves; panics with its output if it exits instead.
    pub fn start(env: &[(&str, &str)]) -> Service {
        let mut service = Self::spawn(env);
        let deadline = Instant::now() + STARTUP;
        loop {
            // The "serving" log line names the bound address: no race for a free port.
            if let Some(addr) = serving_addr(&service.output()) {
                service.addr = addr;
                return service;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "visit-tracker exited with {status} at startup:\n{}",
                    service.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "visit-tracker did not start serving:\n{}",
                service.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the binary without waiting for it to serve (`addr` is unknown until then).
    pub fn spawn(env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_visit-tracker"));
        cmd.env_clear()
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting visit-tracker");
        let output = Arc::new(Mutex::new(String::new()));
        let readers = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ]
        .into_iter()
        .map(|stream| {
            let output = output.clone();
            std::thread::spawn(move || collect(stream, output))
        })
        .collect();
        Service {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            output,
            readers,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signalling visit-tracker");
    }

    /// Waits for the process to exit (panics after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for visit-tracker") {
                // The pipes close with the process: read them to the end.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "visit-tracker did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the service's JSON "serving" log line.
fn serving_addr(output: &str) -> Option<SocketAddr> {
    let line = output
        .lines()
        .find(|l| l.contains(r#""message":"serving""#))?;
    let start = line.find(r#""listen":""#)? + r#""listen":""#.len();
    let rest = &line[start..];
    rest[..rest.find('"')?].parse().ok()
}

fn collect(mut stream: Box<dyn Read + Send>, output: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        output
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// An HTTP client for the tests (rustls needs its provider even for plain HTTP clients).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building the HTTP client")
}

/// GET `url` and return status and JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// POST `url` (no body) and return status and JSON body.
pub async fn post_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.post(url).send().await.expect("POST");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs to `url` until one is counted (200), e.g. while the service finds Redis again after an
/// outage or a failover; panics with `what` after 30 s.
pub async fn post_until_counted(client: &reqwest::Client, url: &str, what: &str) {
    eventually(what, Duration::from_secs(30), || async {
        post_json(client, url).await.0 == 200
    })
    .await;
}
