//! A token server for distribution's `auth: token` (the scheme of Docker Hub, GHCR, ...): it
//! checks a client's basic credentials and answers with a JWT for the scope asked.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::require_program;

/// Issuer and audience (the registry's `service`) the registry is configured to accept.
pub const ISSUER: &str = "test-issuer";
pub const SERVICE: &str = "test-registry";
/// The certificate of the signing key, in the directory given to [`TokenServer::start`]; the
/// registry's `rootcertbundle`.
pub const CERT: &str = "token-cert.pem";
const KEY: &str = "token-key.pem";

/// Answers `GET /token?scope=...` with a JWT (RS256, signed by openssl with a key whose
/// certificate the registry trusts, sent in `x5c`) when the request carries the right basic
/// credentials, 401 otherwise. Stops on drop.
pub struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// What every answer needs: the credentials to expect and the key to sign with.
struct Issuer {
    expected_auth: String,
    user: String,
    /// The signing certificate, DER in base64, for the JWT's `x5c` header.
    x5c: String,
    key: PathBuf,
}

impl TokenServer {
    /// Makes a signing key and its certificate ([`CERT`]) in `dir`, then serves on a free
    /// loopback port.
    pub fn start(dir: &Path, user: &str, password: &str) -> Result<TokenServer> {
        require_program("openssl");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=test token issuer"])
            .args(["-keyout", KEY, "-out", CERT])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!("openssl failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let pem = std::fs::read_to_string(dir.join(CERT))?;
        let issuer = Issuer {
            expected_auth: format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
            user: user.to_owned(),
            x5c: pem.lines().filter(|l| !l.starts_with("-----")).collect(),
            key: dir.join(KEY),
        };
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = issuer.answer(conn);
            }
        });
        Ok(TokenServer { addr, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

impl Issuer {
    fn answer(&self, mut conn: TcpStream) -> Result<()> {
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
                authorized = value.trim() == self.expected_auth;
            }
        }
        if !authorized {
            let body = json!({"details": "invalid credentials"});
            return respond(&mut conn, "401 Unauthorized", &body);
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = claims(&self.user, &scope(target), now);
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
        respond(
            &mut conn,
            "200 OK",
            &json!({"token": token, "expires_in": 3600}),
        )
    }

    /// RS256: an RSA signature of the SHA-256 of `input`, by openssl.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("running openssl")?;
        openssl
            .stdin
            .take()
            .context("openssl stdin")?
            .write_all(input)?;
        let out = openssl.wait_with_output()?;
        if !out.status.success() {
            bail!("openssl dgst -sign failed");
        }
        Ok(out.stdout)
    }
}

/// The `scope` of a token request target (`/token?scope=repository%3ANAME%3Apull%2Cpush&...`),
/// URL-decoded as far as scopes need.
fn scope(target: &str) -> String {
    target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("scope="))
        .unwrap_or_default()
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%2F", "/")
}

/// The JWT claims granting `user` the actions of `scope` (`repository:NAME:pull,push`) for an
/// hour, valid from a minute before `now` (clock skew).
fn claims(user: &str, scope: &str, now: u64) -> serde_json::Value {
    let mut parts = scope.splitn(3, ':');
    let (_, name, actions) = (parts.next(), parts.next(), parts.next());
    let actions: Vec<&str> = actions
        .unwrap_or_default()
        .split(',')
        .filter(|a| !a.is_empty())
        .collect();
    json!({
        "iss": ISSUER,
        "sub": user,
        "aud": SERVICE,
        "exp": now + 3600,
        "nbf": now - 60,
        "iat": now - 60,
        "jti": now.to_string(),
        "access": [{"type": "repository", "name": name.unwrap_or_default(), "actions": actions}],
    })
}

fn respond(conn: &mut TcpStream, status: &str, body: &serde_json::Value) -> Result<()> {
    let body = body.to_string();
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_grant_the_scope_asked() {
        let push =
            scope("/token?service=test-registry&scope=repository%3Aacme%2Fapp%3Apull%2Cpush");
        assert_eq!(push, "repository:acme/app:pull,push");
        let granted = claims("ci", &push, 1_000);
        assert_eq!(
            granted["access"],
            json!([{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}])
        );
        assert_eq!(
            (&granted["sub"], &granted["exp"], &granted["nbf"]),
            (&json!("ci"), &json!(4_600), &json!(940))
        );
        // No scope (a login check): a token for nothing.
        let login = scope("/token?service=test-registry");
        assert_eq!(
            claims("ci", &login, 1_000)["access"][0]["actions"],
            json!([])
        );
    }
}
