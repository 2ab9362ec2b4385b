//! Real Redis for tests: a standalone `redis-server` (optionally with an ACL user), a Sentinel
//! setup (master, replica, `redis-sentinel`) and a 3-master Cluster, each on free loopback
//! ports with its own temporary directory, killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::{CA_CERT, SERVER_CERT, SERVER_KEY};
use crate::{free_port, require_program};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// An ACL user the server requires; the `default` user is switched off unless it is this user
/// (then this is a plain `requirepass` setup).
#[derive(Clone, Debug)]
pub struct AclUser {
    pub username: String,
    pub password: String,
}

/// One `redis-server` on 127.0.0.1. Writes are persisted with `appendfsync always`, so a
/// [`RedisServer::stop`] + [`RedisServer::start_again`] loses no acknowledged write.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    user: Option<AclUser>,
    tls: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// A plain server without authentication.
    pub fn start() -> RedisServer {
        Self::start_with(None, &[])
    }

    /// A server that only accepts `user` (the default user is off).
    pub fn start_with_user(user: AclUser) -> RedisServer {
        Self::start_with(Some(user), &[])
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1 signed by a fresh test
    /// CA whose certificate is [`RedisServer::ca_cert`].
    pub fn start_tls() -> RedisServer {
        let mut server = Self::start_with(None, &[]);
        server.stop();
        crate::tls::make_certificates(server.dir.path()).expect("making test certificates");
        let port = server.port.to_string();
        server.args.extend(
            [
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                SERVER_CERT,
                "--tls-key-file",
                SERVER_KEY,
                "--tls-ca-cert-file",
                CA_CERT,
                "--tls-auth-clients",
                "no",
            ]
            .map(String::from),
        );
        server.tls = true;
        server.start_again();
        server
    }

    /// The CA certificate (PEM) that signed a TLS server's certificate.
    pub fn ca_cert(&self) -> std::path::PathBuf {
        self.dir.path().join(CA_CERT)
    }

    /// A server with an optional ACL user and extra `redis-server` arguments.
    pub fn start_with(user: Option<AclUser>, extra: &[&str]) -> RedisServer {
        require_program("redis-server");
        let port = free_port();
        let dir = tempfile::Builder::new()
            .prefix("testkit-redis-")
            .tempdir()
            .expect("creating a temporary directory for redis-server");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.path().display().to_string(),
            "--logfile",
            "redis.log",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(user) = &user {
            // One directive per `--user`; its words are the following arguments.
            args.extend([
                "--user".to_owned(),
                user.username.clone(),
                "on".to_owned(),
                format!(">{}", user.password),
                "~*".to_owned(),
                "&*".to_owned(),
                "+@all".to_owned(),
            ]);
            if user.username != "default" {
                args.extend(["--user", "default", "off"].map(String::from));
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer {
            port,
            dir,
            args,
            user,
            tls: false,
            child: None,
        };
        server.start_again();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's own directory (AOF, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL, like a crash); acknowledged writes are on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and directory, and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let addr = self.addr();
        let log = self.dir.path().join("redis.log");
        let child = self
            .child
            .insert(spawn("redis-server", &self.args, self.dir.path()));
        wait_until_answers(child, addr, &log, self.tls);
    }

    /// Runs `redis-cli` against this server (as the ACL user, if any) and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all: Vec<String> = vec!["-p".into(), self.port.to_string()];
        if let Some(user) = &self.user {
            all.extend([
                "--user".into(),
                user.username.clone(),
                "--pass".into(),
                user.password.clone(),
                "--no-auth-warning".into(),
            ]);
        }
        if self.tls {
            all.extend([
                "--tls".into(),
                "--cacert".into(),
                self.ca_cert().display().to_string(),
            ]);
        }
        all.extend(args.iter().map(|s| s.to_string()));
        cli(&all)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A master, one replica and one `redis-sentinel` monitoring them as [`RedisSentinel::MASTER`].
pub struct RedisSentinel {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinel_port: u16,
    sentinel_dir: tempfile::TempDir,
    password: Option<String>,
    sentinel: Child,
}

impl RedisSentinel {
    pub const MASTER: &'static str = "mymaster";

    pub fn start() -> RedisSentinel {
        Self::start_with_password(None)
    }

    /// With a password, the master, the replica and the Sentinel all require it (as the common
    /// Helm charts set them up).
    pub fn start_with_password(password: Option<&str>) -> RedisSentinel {
        require_program("redis-sentinel");
        let user = password.map(|p| AclUser {
            username: "default".into(),
            password: p.into(),
        });
        let master = RedisServer::start_with(user.clone(), &[]);
        let master_port = master.port().to_string();
        let mut replica_args = vec!["--replicaof", "127.0.0.1", &master_port];
        if let Some(p) = password {
            replica_args.extend(["--masterauth", p]);
        }
        let replica = RedisServer::start_with(user, &replica_args);
        let sentinel_port = free_port();
        let sentinel_dir = tempfile::Builder::new()
            .prefix("testkit-sentinel-")
            .tempdir()
            .expect("creating a temporary directory for redis-sentinel");
        // Sentinel rewrites its configuration file, so it lives in the temporary directory.
        let conf = sentinel_dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\nlogfile sentinel.log\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n{auth}",
                dir = sentinel_dir.path().display(),
                name = Self::MASTER,
                auth = password.map_or(String::new(), |p| format!(
                    "requirepass {p}\nsentinel auth-pass {} {p}\n",
                    Self::MASTER
                )),
            ),
        )
        .expect("writing sentinel.conf");
        let mut sentinel = spawn(
            "redis-sentinel",
            &[conf.display().to_string()],
            sentinel_dir.path(),
        );
        wait_until_answers(
            &mut sentinel,
            SocketAddr::from(([127, 0, 0, 1], sentinel_port)),
            &sentinel_dir.path().join("sentinel.log"),
            false,
        );
        let setup = RedisSentinel {
            master,
            replica,
            sentinel_port,
            sentinel_dir,
            password: password.map(String::from),
            sentinel,
        };
        // Ready once the replica is in sync and the Sentinel has discovered it.
        setup.wait_for("the replica to sync", || {
            setup
                .replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
                && setup
                    .sentinel_cli(&["sentinel", "replicas", Self::MASTER])
                    .contains(&setup.replica.port().to_string())
        });
        setup
    }

    pub fn sentinel_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sentinel_port))
    }

    /// Runs `redis-cli` against the Sentinel.
    pub fn sentinel_cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-p".to_owned(), self.sentinel_port.to_string()];
        if let Some(p) = &self.password {
            all.extend(["-a".to_owned(), p.clone(), "--no-auth-warning".to_owned()]);
        }
        all.extend(args.iter().map(|s| s.to_string()));
        cli(&all)
    }

    /// The port of the server the Sentinel currently names as master.
    pub fn master_port(&self) -> u16 {
        let out = self.sentinel_cli(&["sentinel", "get-master-addr-by-name", Self::MASTER]);
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no master address from the Sentinel: {out:?}"))
    }

    /// Forces a failover to the replica and waits until it is complete: the Sentinel names the
    /// replica as master, and the old master has been turned into a replica (until then it
    /// would still accept writes that the resync then discards).
    pub fn failover(&self) {
        let answer = self.sentinel_cli(&["sentinel", "failover", Self::MASTER]);
        assert!(answer.contains("OK"), "SENTINEL FAILOVER refused: {answer}");
        let role = |server: &RedisServer| {
            let out = server.cli(&["role"]);
            out.lines().next().unwrap_or_default().trim().to_owned()
        };
        self.wait_for("the failover to complete", || {
            self.master_port() == self.replica.port()
                && role(&self.replica) == "master"
                && role(&self.master) == "slave"
        });
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !done() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.sentinel_dir.path().join("sentinel.log"))
                    .unwrap_or_default();
                panic!("timed out waiting for {what}; sentinel log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}

/// Three masters with `cluster-enabled yes`, joined by `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                // The bus port is chosen too: port + 10000 may not exist or may be taken.
                let bus = free_port().to_string();
                RedisServer::start_with(
                    None,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-port",
                        &bus,
                    ],
                )
            })
            .collect();
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(nodes.iter().map(|n| n.addr().to_string()));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        cli(&args);
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + START_TIMEOUT;
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// `host:port,host:port,...` of every node, as REDIS_CLUSTER_NODES takes it.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn spawn(program: &str, args: &[String], dir: &Path) -> Child {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"))
}

/// Runs `redis-cli ARGS` and returns stdout; panics with its output when it fails.
fn cli(args: &[String]) -> String {
    require_program("redis-cli");
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running redis-cli");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Waits until the server answers a PING with anything but LOADING (NOAUTH counts: it is up);
/// fails at once with the server's log if it exits. A TLS port only has to accept.
fn wait_until_answers(child: &mut Child, addr: SocketAddr, log: &Path, tls: bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let up = if tls {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        } else {
            ping(addr).is_ok_and(|reply| !reply.starts_with("-LOADING"))
        };
        if up {
            return;
        }
        let why = match child.try_wait() {
            Ok(Some(status)) => format!("it exited with {status}"),
            _ if Instant::now() > deadline => "it did not answer PING in time".to_owned(),
            _ => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("redis at {addr} did not start: {why}\nlog:\n{log}");
    }
}

fn ping(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
