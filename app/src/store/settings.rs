//! What the store needs to reach Redis (mode and addresses, credentials, TLS, key prefix,
//! deadline), and the value types the command line parses straight into: their `FromStr` is
//! clap's value parser, so a bad address or prefix is refused before anything starts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Everything [`crate::store::Store::new`] needs; the configuration builds it.
#[derive(Clone)]
pub struct Settings {
    pub mode: Mode,
    /// Credentials of the data nodes (standalone server, Sentinel-managed master, Cluster).
    pub credentials: Credentials,
    /// TLS to Redis and the Sentinels, verified against the web PKI roots or `ca_cert`.
    pub tls: bool,
    /// PEM CA certificate(s) that sign the servers' certificates, instead of the web PKI roots.
    pub ca_cert: Option<Vec<u8>>,
    pub key_prefix: KeyPrefix,
    /// Deadline of every Redis call.
    pub timeout: Duration,
}

/// How Redis is deployed, with the addresses each deployment needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone(HostPort),
    Sentinel {
        /// The name the Sentinels monitor the master under.
        master: String,
        sentinels: Vec<HostPort>,
        /// Credentials of the Sentinels themselves, when they require any.
        credentials: Credentials,
    },
    /// Seed nodes; the client discovers the rest.
    Cluster(Vec<HostPort>),
}

impl Mode {
    /// Where Redis is, as it appears in errors and logs: addresses only, never credentials.
    pub fn target(&self) -> String {
        let list = |addrs: &[HostPort]| {
            addrs
                .iter()
                .map(HostPort::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Mode::Standalone(addr) => addr.to_string(),
            Mode::Sentinel {
                master, sentinels, ..
            } => format!("master {master:?} via sentinels {}", list(sentinels)),
            Mode::Cluster(nodes) => format!("cluster {}", list(nodes)),
        }
    }
}

/// An ACL user name and password; empty means the default user and no password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

// Hand-written so the password can never reach a log line through `{:?}`.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &password)
            .finish()
    }
}

/// A server address, `host:port` (IPv6 as `[::1]:6379`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for HostPort {
    type Err = InvalidSetting;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| InvalidSetting::NotHostPort(s.to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(InvalidSetting::NoHost(s.to_owned()));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| InvalidSetting::NoPort(s.to_owned()))?;
        Ok(Self::new(host, port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The prefix of every key, e.g. `visit-tracker:`. Without its trailing colons it becomes the
/// keys' Cluster hash tag (`{visit-tracker}:total`), so it must be a valid one.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// The text between the braces of the hash tag: the prefix without its trailing colons.
    pub fn hash_tag(&self) -> &str {
        self.0.trim_end_matches(':')
    }
}

impl FromStr for KeyPrefix {
    type Err = InvalidSetting;

    fn from_str(prefix: &str) -> Result<Self, Self::Err> {
        let tag = prefix.trim_end_matches(':');
        if tag.is_empty() {
            return Err(InvalidSetting::EmptyPrefix);
        }
        if tag.contains(['{', '}']) || tag.chars().any(char::is_whitespace) {
            return Err(InvalidSetting::NotAHashTag(prefix.to_owned()));
        }
        Ok(Self(prefix.to_owned()))
    }
}

// The prefix as it was given, like the string it replaces.
impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Why an address or a key prefix was refused; clap prints it after the variable's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSetting {
    #[error("{0:?} is not host:port")]
    NotHostPort(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} has no valid port")]
    NoPort(String),
    #[error("the key prefix must not be empty")]
    EmptyPrefix,
    #[error("{0:?} must not contain braces or spaces (it becomes the hash tag)")]
    NotAHashTag(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_accepts_names_and_ipv6() {
        assert_eq!("redis:6379".parse(), Ok(HostPort::new("redis", 6379)));
        assert_eq!("[::1]:26379".parse(), Ok(HostPort::new("::1", 26379)));
        assert!("redis".parse::<HostPort>().is_err());
        assert!(":6379".parse::<HostPort>().is_err());
        assert!("redis:http".parse::<HostPort>().is_err());
    }

    #[test]
    fn host_port_prints_as_it_is_written() {
        assert_eq!(HostPort::new("redis", 6379).to_string(), "redis:6379");
        assert_eq!(HostPort::new("::1", 26379).to_string(), "[::1]:26379");
    }

    #[test]
    fn prefixes_that_break_the_hash_tag_are_refused() {
        assert!("".parse::<KeyPrefix>().is_err());
        assert!(":".parse::<KeyPrefix>().is_err());
        assert!("{a}".parse::<KeyPrefix>().is_err());
        assert!("a b".parse::<KeyPrefix>().is_err());
        assert_eq!("shop::".parse::<KeyPrefix>().unwrap().hash_tag(), "shop");
    }

    #[test]
    fn targets_name_addresses_never_credentials() {
        let secret = Credentials {
            username: "sentinel-user".into(),
            password: "s3ntinel-pw".into(),
        };
        let sentinel = Mode::Sentinel {
            master: "mymaster".into(),
            sentinels: vec![HostPort::new("a", 1), HostPort::new("::1", 2)],
            credentials: secret.clone(),
        };
        assert_eq!(
            sentinel.target(),
            r#"master "mymaster" via sentinels a:1,[::1]:2"#
        );
        assert!(!format!("{sentinel:?}").contains("s3ntinel-pw"));
        assert!(!format!("{secret:?}").contains("s3ntinel-pw"));
        let cluster = Mode::Cluster(vec![HostPort::new("a", 1), HostPort::new("b", 2)]);
        assert_eq!(cluster.target(), "cluster a:1,b:2");
    }
}
