//! The service's configuration: one clap struct, so every flag and its environment variable are
//! one definition, documented by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

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
    pub redis_key_prefix: String,

    /// Name of the master the Sentinels monitor (sentinel mode).
    #[arg(long, env = "REDIS_SENTINEL_MASTER", default_value = "mymaster")]
    pub redis_sentinel_master: String,

    /// Sentinel addresses, comma-separated host:port (sentinel mode).
    #[arg(long, env = "REDIS_SENTINELS", value_delimiter = ',')]
    pub redis_sentinels: Vec<String>,

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
    pub redis_cluster_nodes: Vec<String>,

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
            .field("redis", &self.redis_target())
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
    /// Where Redis is, as it appears in errors and logs: addresses only, never credentials.
    pub fn redis_target(&self) -> String {
        match self.redis_mode {
            RedisMode::Standalone => format!("{}:{}", self.redis_host, self.redis_port),
            RedisMode::Sentinel => format!(
                "master {:?} via sentinels {}",
                self.redis_sentinel_master,
                self.redis_sentinels.join(",")
            ),
            RedisMode::Cluster => format!("cluster {}", self.redis_cluster_nodes.join(",")),
        }
    }

    /// Checks what clap cannot: the mode's addresses are given and well formed.
    pub fn validate(&self) -> Result<(), String> {
        match self.redis_mode {
            RedisMode::Standalone => {}
            RedisMode::Sentinel => {
                if self.redis_sentinels.is_empty() {
                    return Err("sentinel mode needs REDIS_SENTINELS (host:port,...)".into());
                }
                for a in &self.redis_sentinels {
                    parse_host_port(a).map_err(|e| format!("REDIS_SENTINELS: {e}"))?;
                }
            }
            RedisMode::Cluster => {
                if self.redis_cluster_nodes.is_empty() {
                    return Err("cluster mode needs REDIS_CLUSTER_NODES (host:port,...)".into());
                }
                for a in &self.redis_cluster_nodes {
                    parse_host_port(a).map_err(|e| format!("REDIS_CLUSTER_NODES: {e}"))?;
                }
            }
        }
        crate::store::Keys::new(&self.redis_key_prefix)
            .map_err(|e| format!("REDIS_KEY_PREFIX: {e}"))?;
        if self.max_concurrent_requests == 0 {
            return Err("MAX_CONCURRENT_REQUESTS must be at least 1".into());
        }
        Ok(())
    }
}

/// Splits `host:port` (IPv6 as `[::1]:6379`).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{s:?} has no valid port"))?;
    Ok((host.to_owned(), port))
}

/// Parses `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 2s or 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?} has an unknown unit (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn host_port_accepts_names_and_ipv6() {
        assert_eq!(parse_host_port("redis:6379"), Ok(("redis".into(), 6379)));
        assert_eq!(parse_host_port("[::1]:26379"), Ok(("::1".into(), 26379)));
        assert!(parse_host_port("redis").is_err());
        assert!(parse_host_port(":6379").is_err());
        assert!(parse_host_port("redis:http").is_err());
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
        assert!(sentinel.validate().unwrap_err().contains("REDIS_SENTINELS"));
        let cluster = Config::parse_from([
            "visit-tracker",
            "--redis-mode",
            "cluster",
            "--redis-cluster-nodes",
            "a:1,b",
        ]);
        assert!(
            cluster
                .validate()
                .unwrap_err()
                .contains("REDIS_CLUSTER_NODES")
        );
    }
}
