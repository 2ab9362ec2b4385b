//! A real OCI registry for tests: Debian's `docker-registry` (distribution v2) on a free loopback
//! port with its own storage, optionally behind htpasswd auth and TLS, killed on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{free_port, require_program, wait_for_port};

/// How a registry is started: plain HTTP and anonymous unless asked otherwise.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// `(username, password)` accepted through htpasswd (bcrypt) basic auth.
    pub user: Option<(String, String)>,
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost` from a test CA.
    pub tls: bool,
    /// With `user`: bearer tokens from a token server (the scheme of Docker Hub, GHCR, ...)
    /// instead of basic auth. The server checks the user's basic credentials and signs a JWT
    /// for the scope asked.
    pub bearer: bool,
}

/// A running `docker-registry serve`. Its storage and log outlive restarts.
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    child: Option<Child>,
    _token_server: Option<TokenServer>,
}

impl Registry {
    /// An anonymous plain-HTTP registry.
    pub fn start() -> Result<Registry> {
        Registry::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Result<Registry> {
        require_program("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new().prefix("registry-").tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("storage"))?;
        let mut auth = String::new();
        let mut token_server = None;
        match &options.user {
            Some((user, password)) if options.bearer => {
                let server = TokenServer::start(root, user, password)?;
                auth = format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: test-registry\n    \
                     issuer: test-issuer\n    rootcertbundle: {}\n",
                    server.addr,
                    root.join("token-cert.pem").display()
                );
                token_server = Some(server);
            }
            Some((user, password)) => {
                require_program("htpasswd", "apache2-utils");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .context("running htpasswd")?;
                if !out.status.success() {
                    bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
                }
                std::fs::write(root.join("htpasswd"), out.stdout)?;
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                    root.join("htpasswd").display()
                );
            }
            None => {}
        }
        let mut tls = String::new();
        if options.tls {
            make_certificate(root)?;
            tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                root.join(crate::tls::SERVER_CERT).display(),
                root.join(crate::tls::SERVER_KEY).display()
            );
        }
        let port = free_port();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{tls}{auth}",
            storage = root.join("storage").display(),
        );
        std::fs::write(root.join("config.yml"), config)?;
        let mut registry = Registry {
            dir,
            port,
            tls: options.tls,
            child: None,
            _token_server: token_server,
        };
        registry.restart()?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The CA certificate (PEM) that signed the server's, when started with TLS.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join(crate::tls::CA_CERT))
    }

    /// A directory holding the certificate as `ca.crt`, for `skopeo --cert-dir` and the like.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// Where the registry stores blobs and manifests.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Everything the registry logged so far, across restarts (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How many blob uploads the registry completed so far (the final `PUT` of an upload).
    pub fn blob_uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/"))
            .count()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Kills the registry (like a crash); storage and port stay for [`Registry::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        self.child = Some(child);
        if let Err(err) = wait_for_port(self.socket_addr(), Duration::from_secs(20)) {
            bail!("{err}; registry log:\n{}", self.log());
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The test certificates of [`crate::tls`], and the CA also as `certs.d/ca.crt` (the layout
/// `skopeo --cert-dir` reads).
fn make_certificate(dir: &Path) -> Result<()> {
    crate::tls::make_certificates(dir)?;
    std::fs::create_dir_all(dir.join("certs.d"))?;
    std::fs::copy(dir.join(crate::tls::CA_CERT), dir.join("certs.d/ca.crt"))?;
    Ok(())
}

/// A TCP proxy in front of a server that can slow the client's upload down, so a test can stop
/// the server while a transfer is surely in flight. Counts the bytes clients send.
pub struct SlowProxy {
    port: u16,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    /// Forwards `127.0.0.1:PORT` to `upstream`, client-to-server at most `bytes_per_sec`.
    pub fn start(upstream: SocketAddr, bytes_per_sec: u64) -> Result<SlowProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue; // dropping `client` closes it: the caller sees a reset
                };
                let sent = sent2.clone();
                let (c2, s2) = (client.try_clone(), server.try_clone());
                if let (Ok(c2), Ok(s2)) = (c2, s2) {
                    std::thread::spawn(move || pipe(c2, s2, Some((bytes_per_sec, sent))));
                    std::thread::spawn(move || pipe(server, client, None));
                }
            }
        });
        Ok(SlowProxy { port, sent, stop })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes clients sent through the proxy so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, limit: Option<(u64, Arc<AtomicU64>)>) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some((rate, sent)) = &limit {
            sent.fetch_add(n as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs_f64(n as f64 / *rate as f64));
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// Writes a small but real two-platform OCI image layout (amd64, arm64) at `dir` with layers of
/// `layer_size` pseudo-random bytes (seeded, so the same seed gives the same image). Returns the
/// index digest. For push tests that need an image, not a runnable one.
pub fn write_test_layout(dir: &Path, layer_size: usize, seed: u64) -> Result<String> {
    use sha2::{Digest, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> Result<(String, usize)> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes)?;
        Ok((format!("sha256:{hex}"), bytes.len()))
    };
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                // xorshift: incompressible enough that sizes mean what they say.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        // Real gzip (of noise, stored): tools sniff the compression and would convert a fake.
        let raw = random(layer_size);
        let diff_id = format!("sha256:{:x}", Sha256::digest(&raw));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        std::io::Write::write_all(&mut gz, &raw)?;
        let (layer, layer_len) = put(&gz.finish()?)?;
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        let (config, config_len) = put(config.as_bytes())?;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{layer_len}}}]}}"#
        );
        let (manifest, manifest_len) = put(manifest.as_bytes())?;
        entries.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest}","size":{manifest_len},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    );
    let (index, index_len) = put(index.as_bytes())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{index}","size":{index_len},"annotations":{{"org.opencontainers.image.ref.name":"test"}}}}]}}"#
        ),
    )?;
    Ok(index)
}

/// A token server for distribution's `auth: token`: answers `GET /token?scope=...` with a JWT
/// (RS256, signed by openssl with a key whose certificate the registry trusts, sent in `x5c`)
/// when the request carries the right basic credentials, 401 otherwise.
struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> Result<TokenServer> {
        use base64::Engine;
        require_program("openssl", "openssl");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=test token issuer"])
            .args(["-keyout", "token-key.pem", "-out", "token-cert.pem"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!("openssl failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let pem = std::fs::read_to_string(dir.join("token-cert.pem"))?;
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, dir, user) = (stop.clone(), dir.to_path_buf(), user.to_owned());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = serve_token(conn, &expected, &der_b64, &dir, &user);
            }
        });
        Ok(TokenServer { addr, stop })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_token(
    mut conn: TcpStream,
    expected_auth: &str,
    x5c: &str,
    dir: &Path,
    user: &str,
) -> Result<()> {
    use base64::Engine;
    use std::io::{BufRead, BufReader, Write};
    let url64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorized = value.trim() == expected_auth;
        }
    }
    if !authorized {
        let body = r#"{"details":"invalid credentials"}"#;
        write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    // scope=repository:NAME:pull,push (URL-encoded) -> an access entry for NAME.
    let query = request_line.split_whitespace().nth(1).unwrap_or_default();
    let scope = query
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("scope="))
        .unwrap_or_default()
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%2F", "/");
    let mut parts = scope.splitn(3, ':');
    let (_, name, actions) = (parts.next(), parts.next(), parts.next());
    let actions: Vec<&str> = actions.unwrap_or_default().split(',').collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = format!(r#"{{"typ":"JWT","alg":"RS256","x5c":["{x5c}"]}}"#);
    let claims = format!(
        r#"{{"iss":"test-issuer","sub":"{user}","aud":"test-registry","exp":{},"nbf":{},"iat":{},"jti":"{now}","access":[{{"type":"repository","name":"{}","actions":{}}}]}}"#,
        now + 3600,
        now - 60,
        now - 60,
        name.unwrap_or_default(),
        serde_like_list(&actions)
    );
    let signing_input = format!("{}.{}", url64(header.as_bytes()), url64(claims.as_bytes()));
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("token-key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    openssl
        .stdin
        .take()
        .context("openssl stdin")?
        .write_all(signing_input.as_bytes())?;
    let signature = openssl.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", url64(&signature));
    let body = format!(r#"{{"token":"{token}","expires_in":3600}}"#);
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

fn serde_like_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| format!("\"{s}\""))
        .collect();
    format!("[{}]", quoted.join(","))
}
