//! Who we are to a registry and how we reach it: the connection flags, then credentials from the
//! flags, the environment, the Docker config file or a Docker credential helper.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Args;

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

#[cfg(test)]
mod tests {
    use super::*;

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
