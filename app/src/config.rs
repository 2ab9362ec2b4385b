//! The service's configuration: one clap struct, so every flag and its environment variable are
//! one definition, documented by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::store::{self, Credentials, HostPort, KeyPrefix};

/// Counts visits in Redis and serves them as a page, a JSON API and Prometheus metrics.
#[derive(Clone, Parser)]
#[command(
    name = "visit-tracker",
    version,
    about,
    after_help = "Logging: RUST_LOG filters (default `info`), LOG_FORMAT picks json or text."
)]
pub struct Config {
    /// Address and port to serve HTTP on.
    #[arg(long = "listen", env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// How Redis is deployed: one server, a Sentinel-managed master, or a Cluster.
    #[arg(long, env = "REDIS_MODE", value_enum, default_value_t = RedisMode::Standalone)]
    pub redis_mode: RedisMode,

    /// Redis host (standalone mode).
    #[arg(long, env = "REDIS_HOST", default_value = "127.0.0.1")]
    pub redis_host: String,

    /// Redis port (standalone mode).
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,

    /// Redis ACL user name (Redis 6+); empty means the default user.
    #[arg(long, env = "REDIS_USERNAME", default_value = "")]
    pub redis_username: String,

    /// Redis password; empty means none. Never logged.
    #[arg(
        long,
        env = "REDIS_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub redis_password: String,

    /// Connect to Redis (and Sentinels) over TLS, verified against the web PKI roots or
    /// --redis-ca-cert.
    #[arg(
        long,
        env = "REDIS_TLS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub redis_tls: bool,

    /// PEM file with the CA certificate(s) that sign the Redis server certificates (with TLS),
    /// instead of the web PKI roots.
    #[arg(long, env = "REDIS_CA_CERT")]
    pub redis_ca_cert: Option<PathBuf>,

    /// Prefix of every key; it becomes the keys' Cluster hash tag, e.g. `{visit-tracker}:total`.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "visit-tracker:")]
    pub redis_key_prefix: KeyPrefix,

    /// Name of the master the Sentinels monitor (sentinel mode).
    #[arg(long, env = "REDIS_SENTINEL_MASTER", default_value = "mymaster")]
    pub redis_sentinel_master: String,

    /// Sentinel addresses, comma-separated host:port (sentinel mode).
    #[arg(long, env = "REDIS_SENTINELS", value_delimiter = ',')]
    pub redis_sentinels: Vec<HostPort>,

    /// ACL user for the Sentinels themselves, when they require one (sentinel mode).
    #[arg(long, env = "REDIS_SENTINEL_USERNAME", default_value = "")]
    pub redis_sentinel_username: String,

    /// Password for the Sentinels themselves, when they require one (sentinel mode). Never logged.
    #[arg(
        long,
        env = "REDIS_SENTINEL_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub redis_sentinel_password: String,

    /// Cluster seed nodes, comma-separated host:port (cluster mode).
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<HostPort>,

    /// Deadline of every Redis call, e.g. `500ms` or `2s`; past it the request fails with 503.
    #[arg(long, env = "REDIS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,

    /// Seconds between SIGTERM and closing the listener, with /readyz already failing, for
    /// load balancers without a preStop hook to notice.
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,

    /// Deadline of one HTTP request, e.g. `10s`; past it the answer is 503.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Requests served at once; more are refused with 503 at once instead of queueing.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Largest request body accepted, in bytes (the API takes no body).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RedisMode {
    Standalone,
    Sentinel,
    Cluster,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

// Hand-written so the password can never reach a log line through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("redis_mode", &self.redis_mode)
            .field("redis", &self.store_mode().target())
            .field("redis_username", &self.redis_username)
            .field(
                "redis_password",
                &if self.redis_password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("redis_tls", &self.redis_tls)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Checks what clap cannot: the mode's addresses are given, and the limits make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let missing = match self.redis_mode {
            RedisMode::Standalone => None,
            RedisMode::Sentinel if self.redis_sentinels.is_empty() => {
                Some(("sentinel", "REDIS_SENTINELS"))
            }
            RedisMode::Cluster if self.redis_cluster_nodes.is_empty() => {
                Some(("cluster", "REDIS_CLUSTER_NODES"))
            }
            RedisMode::Sentinel | RedisMode::Cluster => None,
        };
        if let Some((mode, variable)) = missing {
            return Err(ConfigError::NoAddresses { mode, variable });
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::Zero {
                variable: "MAX_CONCURRENT_REQUESTS",
            });
        }
        Ok(())
    }

    /// What the store needs, with the CA certificate read from its file.
    pub fn store_settings(&self) -> Result<store::Settings, ConfigError> {
        let ca_cert = match &self.redis_ca_cert {
            Some(path) => Some(
                std::fs::read(path).map_err(|source| ConfigError::Unreadable {
                    variable: "REDIS_CA_CERT",
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        Ok(store::Settings {
            mode: self.store_mode(),
            credentials: Credentials {
                username: self.redis_username.clone(),
                password: self.redis_password.clone(),
            },
            tls: self.redis_tls,
            ca_cert,
            key_prefix: self.redis_key_prefix.clone(),
            timeout: self.redis_timeout,
        })
    }

    fn store_mode(&self) -> store::Mode {
        match self.redis_mode {
            RedisMode::Standalone => {
                store::Mode::Standalone(HostPort::new(&self.redis_host, self.redis_port))
            }
            RedisMode::Sentinel => store::Mode::Sentinel {
                master: self.redis_sentinel_master.clone(),
                sentinels: self.redis_sentinels.clone(),
                credentials: Credentials {
                    username: self.redis_sentinel_username.clone(),
                    password: self.redis_sentinel_password.clone(),
                },
            },
            RedisMode::Cluster => store::Mode::Cluster(self.redis_cluster_nodes.clone()),
        }
    }
}

/// Why the configuration was refused. Values clap parses (durations here, addresses and key
/// prefixes in [`store`]) reach the user through clap, which names the flag and the variable;
/// the checks after parsing name the variable themselves.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{mode} mode needs {variable} (host:port,...)")]
    NoAddresses {
        mode: &'static str,
        variable: &'static str,
    },
    #[error("{variable} must be at least 1")]
    Zero { variable: &'static str },
    #[error("reading {variable} {}", path.display())]
    Unreadable {
        variable: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is not a duration like 500ms, 2s or 1m")]
    NotADuration(String),
    #[error("{0:?} has an unknown unit (use ms, s or m)")]
    UnknownUnit(String),
}

/// Parses `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::NotADuration(s.to_owned()))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(ConfigError::UnknownUnit(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("2s").ok(), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("3").ok(), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m").ok(), Some(Duration::from_secs(60)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn debug_output_never_contains_the_password() {
        let config = Config::parse_from([
            "visit-tracker",
            "--redis-password",
            "s3cret-pw",
            "--redis-sentinel-password",
            "s3ntinel-pw",
        ]);
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-pw") && !debug.contains("s3ntinel-pw"));
    }

    #[test]
    fn every_mode_needs_its_addresses() {
        let sentinel = Config::parse_from(["visit-tracker", "--redis-mode", "sentinel"]);
        let err = sentinel.validate().unwrap_err().to_string();
        assert!(err.contains("REDIS_SENTINELS"), "{err}");
        let cluster = Config::parse_from(["visit-tracker", "--redis-mode", "cluster"]);
        let err = cluster.validate().unwrap_err().to_string();
        assert!(err.contains("REDIS_CLUSTER_NODES"), "{err}");
    }

    #[test]
    fn clap_refuses_bad_addresses_and_prefixes_naming_the_variable() {
        let refused = |flag: &str, value: &str| {
            Config::try_parse_from(["visit-tracker", flag, value])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let err = refused("--redis-cluster-nodes", "a:1,b");
        assert!(
            err.contains("REDIS_CLUSTER_NODES") && err.contains(r#""b" is not host:port"#),
            "{err}"
        );
        let err = refused("--redis-sentinels", "a:1,b:http");
        assert!(
            err.contains("REDIS_SENTINELS") && err.contains("no valid port"),
            "{err}"
        );
        let err = refused("--redis-key-prefix", "{a}");
        assert!(
            err.contains("REDIS_KEY_PREFIX") && err.contains("hash tag"),
            "{err}"
        );
    }

    #[test]
    fn store_settings_carry_the_mode_and_name_an_unreadable_ca_file() {
        let config = Config::parse_from([
            "visit-tracker",
            "--redis-mode",
            "sentinel",
            "--redis-sentinels",
            "a:1, [::1]:2",
        ]);
        let settings = config.store_settings().unwrap();
        assert_eq!(
            settings.mode.target(),
            r#"master "mymaster" via sentinels a:1,[::1]:2"#
        );
        let config =
            Config::parse_from(["visit-tracker", "--redis-ca-cert", "/nonexistent/ca.pem"]);
        let err = config.store_settings().err().expect("no such file");
        assert_eq!(err.to_string(), "reading REDIS_CA_CERT /nonexistent/ca.pem");
    }
}
