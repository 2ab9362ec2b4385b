//! Registry access shared by `image push` and `chart push`: credentials, TLS, retries (oci-client).
//!
//! Everything on the wire goes through oci-client; this module only decides how to connect
//! (scheme, CA, credentials), retries what is worth retrying, and turns the final error into one
//! sentence that names the registry and the step. Passwords stay inside `oci_client` and are
//! scrubbed from any message that leaves this module.

use std::io::{IsTerminal, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Args;
use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

/// Connection flags shared by every task that talks to a registry.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// User name for the registry; the password is read from standard input (--password-stdin).
    /// Without it: REGISTRY_USERNAME/REGISTRY_PASSWORD, then the Docker config file.
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) from standard input, like `docker login --password-stdin`.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Allow plain HTTP to a registry that is not on a loopback address.
    #[arg(long)]
    pub insecure: bool,
    /// Also trust this CA certificate (PEM) for the registry's TLS certificate.
    #[arg(long, value_name = "PEM_FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// Where the credentials came from: said in errors, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Flags,
    Environment,
    DockerConfig(PathBuf),
    Anonymous,
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Flags => write!(f, "--username/--password-stdin"),
            CredentialSource::Environment => write!(f, "REGISTRY_USERNAME/REGISTRY_PASSWORD"),
            CredentialSource::DockerConfig(p) => write!(f, "{}", p.display()),
            CredentialSource::Anonymous => write!(f, "no credentials (anonymous)"),
        }
    }
}

/// A user name and password; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// Splits `HOST[:PORT]/PATH` (an `oci://` prefix is allowed) into registry and repository.
pub fn split_repository(s: &str) -> Result<(String, String)> {
    let s = s.strip_prefix("oci://").unwrap_or(s).trim_end_matches('/');
    let (host, repo) = s
        .split_once('/')
        .with_context(|| format!("`{s}` is not REGISTRY/REPOSITORY (e.g. ghcr.io/owner/name)"))?;
    if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
        bail!("`{s}` does not start with a registry host (e.g. ghcr.io/owner/name)");
    }
    if repo.contains(['@', ':']) {
        bail!("`{s}`: give the repository without a tag or digest (tags have their own flags)");
    }
    let valid = repo.split('/').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
    });
    if !valid {
        bail!(
            "`{repo}` is not a valid repository name (lower-case letters, digits and `._-` \
             between slashes)"
        );
    }
    Ok((host.to_owned(), repo.to_owned()))
}

/// Whether `registry` (`host[:port]`) names a loopback address, where plain HTTP cannot leave
/// the machine.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Plain HTTP only where asked (`--insecure`) or where it cannot leave the machine (loopback,
/// unless a CA certificate says the loopback registry speaks TLS).
pub fn use_plain_http(registry: &str, insecure: bool, ca_cert: bool) -> bool {
    insecure || (is_loopback(registry) && !ca_cert)
}

/// The keys a Docker config's `auths` may use for `registry`: `docker login` writes Docker Hub
/// as `https://index.docker.io/v1/` and others as `host` or `https://host`.
fn same_registry(key: &str, registry: &str) -> bool {
    fn normal(s: &str) -> &str {
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        let host = s.split('/').next().unwrap_or(s);
        match host {
            "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io",
            other => other,
        }
    }
    normal(key) == normal(registry)
}

/// What a Docker config file says about `registry`: an `auths` entry (base64 `auth`, or
/// `username`/`password`), or the name of a credential helper to ask.
#[derive(Debug, PartialEq, Eq)]
pub enum DockerConfigEntry {
    Credentials(Credentials),
    Helper(String),
    Missing,
}

/// Reads `registry`'s entry from the text of a Docker `config.json`.
pub fn docker_config_entry(json: &str, registry: &str) -> Result<DockerConfigEntry> {
    let config: serde_json::Value = serde_json::from_str(json).context("not valid JSON")?;
    if let Some(helper) = config["credHelpers"]
        .as_object()
        .and_then(|h| h.iter().find(|(k, _)| same_registry(k, registry)))
        .and_then(|(_, v)| v.as_str())
    {
        return Ok(DockerConfigEntry::Helper(helper.to_owned()));
    }
    let entry = config["auths"]
        .as_object()
        .and_then(|a| a.iter().find(|(k, _)| same_registry(k, registry)));
    if let Some((key, entry)) = entry {
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .with_context(|| format!("auths.\"{key}\".auth is not base64 of user:password"))?;
            let (username, password) = decoded
                .split_once(':')
                .with_context(|| format!("auths.\"{key}\".auth is not base64 of user:password"))?;
            return Ok(DockerConfigEntry::Credentials(Credentials {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(DockerConfigEntry::Credentials(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }));
        }
        if entry.get("identitytoken").is_some() {
            bail!(
                "auths.\"{key}\" holds only an identity token, which this task cannot use: \
                 set REGISTRY_USERNAME/REGISTRY_PASSWORD instead"
            );
        }
    }
    match config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        Some(store) if entry.is_some() => Ok(DockerConfigEntry::Helper(store.to_owned())),
        _ => Ok(DockerConfigEntry::Missing),
    }
}

/// The Docker config file `docker login` writes: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Credentials for `registry`, in order: flags (password from stdin), the environment, the
/// Docker config file; anonymous when none has any.
pub fn credentials(
    args: &RegistryArgs,
    registry: &str,
) -> Result<(Option<Credentials>, CredentialSource)> {
    if let Some(username) = &args.username {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("reading the password from standard input")?;
        let password = password.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("--password-stdin: standard input was empty");
        }
        let creds = Credentials {
            username: username.clone(),
            password,
        };
        return Ok((Some(creds), CredentialSource::Flags));
    }
    let user = std::env::var("REGISTRY_USERNAME")
        .ok()
        .filter(|s| !s.is_empty());
    let pass = std::env::var("REGISTRY_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty());
    match (user, pass) {
        (Some(username), Some(password)) => {
            let creds = Credentials { username, password };
            return Ok((Some(creds), CredentialSource::Environment));
        }
        (Some(_), None) => bail!("REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not"),
        (None, Some(_)) => bail!("REGISTRY_PASSWORD is set but REGISTRY_USERNAME is not"),
        (None, None) => {}
    }
    let Some(path) = docker_config_path().filter(|p| p.is_file()) else {
        return Ok((None, CredentialSource::Anonymous));
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let source = CredentialSource::DockerConfig(path.clone());
    match docker_config_entry(&text, registry).with_context(|| format!("{}", path.display()))? {
        DockerConfigEntry::Credentials(c) => Ok((Some(c), source)),
        DockerConfigEntry::Helper(helper) => Ok((Some(ask_helper(&helper, registry)?), source)),
        DockerConfigEntry::Missing => Ok((None, CredentialSource::Anonymous)),
    }
}

/// Asks a Docker credential helper (`docker-credential-NAME get`), as `docker` itself does.
fn ask_helper(helper: &str, registry: &str) -> Result<Credentials> {
    let program = format!("docker-credential-{helper}");
    let sh = xshell::Shell::new()?;
    let out = xshell::cmd!(sh, "{program} get")
        .stdin(registry)
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| {
            format!("asking the Docker credential helper `{program}` for {registry}")
        })?;
    let reply: serde_json::Value = serde_json::from_str(&out)
        .with_context(|| format!("`{program} get` did not answer with JSON"))?;
    match (reply["Username"].as_str(), reply["Secret"].as_str()) {
        (Some(u), Some(p)) => Ok(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        }),
        _ => bail!("`{program} get` gave no Username/Secret for {registry}"),
    }
}

/// An open connection to one repository of one registry.
pub struct Repo {
    client: Client,
    auth: RegistryAuth,
    source: CredentialSource,
    /// Scrubbed from every error message, in case a registry echoes it back.
    secret: Option<String>,
    plain_http: bool,
    pub registry: String,
    pub repository: String,
    /// How often to try a step before giving up, and the first pause between tries.
    pub attempts: u32,
    pub first_backoff: Duration,
}

impl Repo {
    /// Resolves credentials and TLS settings for `registry`/`repository`. Sends nothing yet.
    pub fn open(args: &RegistryArgs, registry: &str, repository: &str) -> Result<Repo> {
        // oci-client is built without a default crypto provider: ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (creds, source) = credentials(args, registry)?;
        let plain = use_plain_http(registry, args.insecure, args.ca_cert.is_some());
        let mut config = ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![registry.to_owned()])
            } else {
                ClientProtocol::Https
            },
            // One request per blob (POST then PUT) instead of 4 MiB PATCHes: fewer round trips.
            use_monolithic_push: true,
            // Bounded waits, so an unreachable or silent registry fails in seconds, not minutes.
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        if let Some(ca) = &args.ca_cert {
            let data =
                std::fs::read(ca).with_context(|| format!("reading --ca-cert {}", ca.display()))?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                bail!("--ca-cert {}: not a PEM certificate", ca.display());
            }
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        // `Client::new` would fall back to a default client on a bad setting; we want the error.
        let client = Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("setting up the client for {registry}: {e}"))?;
        let secret = creds.as_ref().map(|c| c.password.clone());
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Repo {
            client,
            auth,
            source,
            secret,
            plain_http: plain,
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            attempts: 5,
            first_backoff: Duration::from_millis(250),
        })
    }

    fn reference(&self, tag_or_digest: &str) -> Reference {
        let (r, p) = (self.registry.clone(), self.repository.clone());
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(r, p, tag_or_digest.to_owned())
        } else {
            Reference::with_tag(r, p, tag_or_digest.to_owned())
        }
    }

    /// Logs in for pushing (a bearer token from the registry's realm, or basic credentials) and
    /// checks that the registry answers at all.
    pub async fn login(&self) -> Result<()> {
        let reference = self.reference("latest");
        self.retry("logging in", || async {
            self.client
                .auth(&reference, &self.auth, RegistryOperation::Push)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Whether the registry already has the blob `digest` in this repository.
    pub async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let reference = self.reference(digest);
        let step = format!("checking blob {}", short(digest));
        self.retry(&step, || self.client.blob_exists(&reference, digest))
            .await
    }

    /// Uploads one blob, adding the bytes to `progress` as the request body consumes them.
    pub async fn push_blob(
        &self,
        digest: &str,
        data: &bytes::Bytes,
        progress: &Arc<Progress>,
    ) -> Result<()> {
        const CHUNK: usize = 1 << 20;
        let reference = self.reference(digest);
        let step = format!("uploading blob {}", short(digest));
        let size = data.len() as u64;
        self.retry(&step, || {
            // A fresh stream per try: a retry starts a fresh upload session.
            let chunks: Vec<bytes::Bytes> = (0..data.len())
                .step_by(CHUNK)
                .map(|at| data.slice(at..(at + CHUNK).min(data.len())))
                .collect();
            let progress = progress.clone();
            let stream = futures_util::stream::iter(chunks).map(move |chunk| {
                progress.add(chunk.len() as u64);
                Ok::<_, OciDistributionError>(chunk)
            });
            let reference = &reference;
            async move {
                self.client
                    .push_blob_stream(reference, stream, digest, Some(size))
                    .await
                    .map(|_| ())
            }
        })
        .await
    }

    /// Puts a manifest (or index) under `tag_or_digest` with exactly these bytes, so its digest
    /// in the registry is the one computed locally.
    pub async fn push_manifest(
        &self,
        tag_or_digest: &str,
        body: &[u8],
        media_type: &str,
    ) -> Result<()> {
        let reference = self.reference(tag_or_digest);
        let step = format!("putting manifest {}", short(tag_or_digest));
        // Visible ASCII is exactly what a header value accepts, so the parse below cannot fail.
        if media_type.is_empty() || !media_type.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            bail!("media type `{media_type}` is not a valid header value");
        }
        let body = bytes::Bytes::copy_from_slice(body);
        self.retry(&step, || {
            self.client.push_manifest_raw(
                &reference,
                body.clone(),
                media_type.parse().expect("checked"),
            )
        })
        .await
        .map(|_| ())
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of tries (with doubling pauses).
    async fn retry<T, F, Fut>(&self, step: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = oci_client::errors::Result<T>>,
    {
        let mut pause = self.first_backoff;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(err) if attempt < self.attempts && is_transient(&err) => {
                    eprintln!(
                        "  {}: {step} failed ({}), retrying in {pause:?}",
                        self.registry,
                        self.scrub(&one_line(&err))
                    );
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(err) => bail!(self.explain(step, &err, attempt)),
            }
        }
    }

    /// One sentence for a final error: registry, repository, step, what it means, what to do.
    fn explain(&self, step: &str, err: &OciDistributionError, attempts: u32) -> String {
        let (registry, repo) = (&self.registry, &self.repository);
        let detail = self.scrub(&one_line(err));
        let tries = if attempts > 1 {
            format!(" after {attempts} tries")
        } else {
            String::new()
        };
        let what = match status_of(err) {
            Some(401) if self.source == CredentialSource::Anonymous => {
                "the registry requires credentials (401 Unauthorized) and none were found: use \
                 --username/--password-stdin, REGISTRY_USERNAME/REGISTRY_PASSWORD or docker login"
                    .to_owned()
            }
            Some(401) => format!(
                "the registry rejected the credentials (401 Unauthorized; credentials from {})",
                self.source
            ),
            Some(403) => format!(
                "access to {repo} denied (403 Forbidden; credentials from {}): the account may \
                 not push there",
                self.source
            ),
            Some(404) => format!("unknown repository {repo} (404 Not Found)"),
            // What a TLS server answers to plain HTTP.
            Some(400) if self.plain_http => "the registry refused a plain-HTTP request (400 Bad \
                                             Request): if it serves HTTPS, pass --ca-cert FILE"
                .to_owned(),
            Some(code) if code >= 500 || code == 429 => {
                format!("the registry kept failing (HTTP {code}){tries}")
            }
            _ if is_tls(err) => "TLS handshake failed: trust the registry's CA with --ca-cert \
                                 FILE, or use --insecure for a plain-HTTP registry"
                .to_owned(),
            _ if is_connection(err) => format!("unreachable{tries}"),
            _ => String::new(),
        };
        let what = if what.is_empty() {
            detail
        } else {
            format!("{what}: {detail}")
        };
        format!("registry {registry}, repository {repo}: {step}: {what}")
    }

    fn scrub(&self, message: &str) -> String {
        match &self.secret {
            Some(s) if !s.is_empty() => message.replace(s.as_str(), "***"),
            _ => message.to_owned(),
        }
    }
}

/// The HTTP status behind an oci-client error, wherever the crate put it.
fn status_of(err: &OciDistributionError) -> Option<u16> {
    match err {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|e| match e.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::NameUnknown | OciErrorCode::NotFound => Some(404),
                OciErrorCode::Toomanyrequests => Some(429),
                _ => None,
            })
        }
        _ => None,
    }
}

fn is_connection(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(e) => {
            e.status().is_none()
                && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body())
        }
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

fn is_tls(err: &OciDistributionError) -> bool {
    let text = one_line(err).to_lowercase();
    is_connection(err)
        && (text.contains("certificate")
            || text.contains("tls")
            || text.contains("invalidcontenttype"))
}

/// Worth another try: the network or an overloaded registry, not a refusal or a TLS mismatch.
fn is_transient(err: &OciDistributionError) -> bool {
    match status_of(err) {
        Some(code) => code >= 500 || code == 429,
        None => is_connection(err) && !is_tls(err),
    }
}

/// An error and all its causes on one line.
fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// `sha256:0123456789ab` (12 hex digits): enough to tell blobs apart in progress lines.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

/// Human-readable size.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Progress of a push: one line per blob; on a terminal also a live total that redraws.
pub struct Progress {
    tty: bool,
    total: u64,
    sent: AtomicU64,
    last_draw: Mutex<Instant>,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            sent: AtomicU64::new(0),
            last_draw: Mutex::new(Instant::now()),
        }
    }

    /// Counts `n` more bytes sent and redraws the live line.
    pub fn add(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.tick();
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Redraws the live line at most ten times a second (terminal only).
    pub fn tick(&self) {
        if !self.tty {
            return;
        }
        let mut last = self.last_draw.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_millis(100) {
            *last = Instant::now();
            eprint!(
                "\r\x1b[K  uploading: {} of {}",
                human(self.sent()),
                human(self.total)
            );
            let _ = std::io::stderr().flush();
        }
    }

    /// A permanent line (clearing the live one first on a terminal).
    pub fn line(&self, text: &str) {
        let _guard = self.last_draw.lock().unwrap_or_else(|e| e.into_inner());
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("{text}");
    }
}

/// Reads a file to bytes, naming it on failure.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_references_are_split_and_checked() {
        assert_eq!(
            split_repository("ghcr.io/owner/visit-tracker").unwrap(),
            ("ghcr.io".into(), "owner/visit-tracker".into())
        );
        assert_eq!(
            split_repository("oci://127.0.0.1:5000/charts/").unwrap(),
            ("127.0.0.1:5000".into(), "charts".into())
        );
        assert!(split_repository("visit-tracker").is_err());
        assert!(split_repository("owner/visit-tracker").is_err());
        assert!(split_repository("ghcr.io/Owner/x").is_err());
        assert!(split_repository("ghcr.io/owner/x:1.0").is_err());
        assert!(split_repository("ghcr.io/owner//x").is_err());
    }

    #[test]
    fn plain_http_only_for_loopback_or_when_asked() {
        assert!(use_plain_http("127.0.0.1:5000", false, false));
        assert!(use_plain_http("localhost:5000", false, false));
        assert!(use_plain_http("[::1]:5000", false, false));
        assert!(!use_plain_http("127.0.0.1:5000", false, true));
        assert!(!use_plain_http("ghcr.io", false, false));
        assert!(!use_plain_http("10.0.0.1:5000", false, false));
        assert!(use_plain_http("registry.lan:5000", true, false));
    }

    #[test]
    fn docker_config_entries_are_found_like_docker_does() {
        let config = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "ghcr.io": {"username": "me", "password": "tok"},
            "https://quay.io": {"identitytoken": "x"}
        }, "credHelpers": {"gcr.io": "gcloud"}}"#;
        let creds = |u: &str, p: &str| {
            DockerConfigEntry::Credentials(Credentials {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(
            docker_config_entry(config, "docker.io").unwrap(),
            creds("user", "pa:ss")
        );
        assert_eq!(
            docker_config_entry(config, "ghcr.io").unwrap(),
            creds("me", "tok")
        );
        assert_eq!(
            docker_config_entry(config, "gcr.io").unwrap(),
            DockerConfigEntry::Helper("gcloud".into())
        );
        assert_eq!(
            docker_config_entry(config, "other.io").unwrap(),
            DockerConfigEntry::Missing
        );
        assert!(docker_config_entry(config, "quay.io").is_err());
        assert!(docker_config_entry(r#"{"auths":{"x.io":{"auth":"!!"}}}"#, "x.io").is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
