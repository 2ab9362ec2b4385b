//! A real OCI registry for tests: Debian's `docker-registry` (distribution v2) on a free loopback
//! port with its own storage, optionally behind htpasswd or token auth and TLS, killed on drop.
//! What push tests use around it has its own file: the token server, a throttling proxy, and a
//! synthetic image layout to push.

mod layout;
mod proxy;
mod token;

pub use layout::write_test_layout;
pub use proxy::SlowProxy;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{free_port, require_program, wait_for_port};
use token::TokenServer;

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
        require_program("docker-registry");
        let dir = tempfile::Builder::new().prefix("registry-").tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("storage"))?;
        let (auth, token_server) = auth_config(root, &options)?;
        let tls = if options.tls {
            tls_config(root)?
        } else {
            String::new()
        };
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

/// The `auth:` section of the registry's configuration for `options`, and the token server it
/// names (bearer auth), which must live as long as the registry.
fn auth_config(root: &Path, options: &Options) -> Result<(String, Option<TokenServer>)> {
    let Some((user, password)) = &options.user else {
        return Ok((String::new(), None));
    };
    if options.bearer {
        let server = TokenServer::start(root, user, password)?;
        let auth = format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    \
             issuer: {}\n    rootcertbundle: {}\n",
            server.addr(),
            token::SERVICE,
            token::ISSUER,
            root.join(token::CERT).display()
        );
        return Ok((auth, Some(server)));
    }
    require_program("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .context("running htpasswd")?;
    if !out.status.success() {
        bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(root.join("htpasswd"), out.stdout)?;
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
        root.join("htpasswd").display()
    );
    Ok((auth, None))
}

/// The `tls:` lines of the registry's `http:` section, with the test certificates of
/// [`crate::tls`] written to `dir`, and the CA also as `certs.d/ca.crt` (the layout
/// `skopeo --cert-dir` reads).
fn tls_config(dir: &Path) -> Result<String> {
    crate::tls::make_certificates(dir)?;
    std::fs::create_dir_all(dir.join("certs.d"))?;
    std::fs::copy(dir.join(crate::tls::CA_CERT), dir.join("certs.d/ca.crt"))?;
    Ok(format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        dir.join(crate::tls::SERVER_CERT).display(),
        dir.join(crate::tls::SERVER_KEY).display()
    ))
}
