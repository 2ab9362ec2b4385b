//! The visit counters in Redis: one Lua script updates total, today's count and the last visit
//! together, on keys sharing one hash tag so it also runs in Cluster mode. Concurrent counts
//! share one script call (group commit), each still getting its own numbers.

mod keys;
mod settings;

pub use keys::Keys;
pub use settings::{Credentials, HostPort, InvalidSetting, KeyPrefix, Mode, Settings};

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisError, RedisResult, Script, ServerErrorKind, TlsCertificates,
};

use tokio::sync::oneshot;

use crate::timefmt;

/// Per-day keys outlive the longest window `/api/visits/daily` serves, then Redis drops them.
const DAY_KEY_TTL_SECONDS: u64 = 400 * 24 * 3600;

/// Counts `ARGV[3]` visits of one day atomically: the script runs as one unit, so readers never
/// see the total without the day's count or the last visit. The day's key expires from the call
/// that created it. It answers `"<total> <today>"` after the visits, one bulk string: the
/// client's reply parser spends about twice as much on an array of two integers.
const COUNT_SCRIPT: &str = r"
local n = tonumber(ARGV[3])
local total = redis.call('INCRBY', KEYS[1], n)
local today = redis.call('INCRBY', KEYS[2], n)
if today == n then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
redis.call('SET', KEYS[3], ARGV[1])
return string.format('%d %d', total, today)
";

/// The counters as the API shows them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Visits {
    pub total: u64,
    pub today: u64,
    /// RFC 3339, UTC; `None` before the first visit.
    pub last_visit: Option<String>,
}

/// One day's count for `/api/visits/daily`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DayCount {
    pub date: String,
    pub count: u64,
}

/// Why a Redis call failed. The text is for logs; clients only see "redis unavailable".
/// Clone: every count of a failed batch gets the batch's error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis call failed: {0}")]
    Redis(#[from] RedisError),
}

/// The Redis connection for whichever mode is configured, plus the key names and the deadline.
pub struct Store {
    inner: Arc<Inner>,
}

/// What the store and the task that sends batched counts share.
struct Inner {
    backend: Backend,
    keys: Keys,
    timeout: Duration,
    script: Script,
    target: String,
    /// Serialises (re)connection attempts so a burst of requests makes one, not hundreds.
    connecting: tokio::sync::Mutex<()>,
    counts: Mutex<CountQueue>,
}

/// Counts waiting for the next script call (group commit). Per POST, the script call was
/// most of the service's and Redis's CPU: one call for all counts that arrive while the
/// previous one is in flight costs Redis one script run and the service one command for
/// the lot, and lets one Redis serve many more POSTs.
#[derive(Default)]
struct CountQueue {
    waiting: Vec<PendingCount>,
    /// A task is sending batches; it takes what waits as soon as its call returns.
    sending: bool,
}

/// Should the task sending counts end in a panic, or be dropped with its runtime, the next
/// count starts another instead of waiting for one that is gone.
struct StopSending<'a>(&'a Inner);

impl Drop for StopSending<'_> {
    fn drop(&mut self) {
        self.0.queue().sending = false;
    }
}

/// One request's count, waiting for its batch.
struct PendingCount {
    date: NaiveDate,
    millis: i64,
    /// Its total and today's count after the visit, or the batch's error.
    reply: oneshot::Sender<Result<(u64, u64), StoreError>>,
}

enum Backend {
    /// Standalone, or the master a Sentinel names: one ConnectionManager that reconnects by
    /// itself. With Sentinel the connection is dropped on failover signs and the master looked
    /// up again.
    Single {
        source: Source,
        config: ConnectionManagerConfig,
        conn: RwLock<Option<ConnectionManager>>,
    },
    Cluster {
        client: ClusterClient,
        conn: RwLock<Option<ClusterConnection>>,
    },
}

enum Source {
    Fixed(Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// A cheap clone of the live connection, whatever the mode.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Sends one command and converts its reply, as `Cmd::query_async` does, but straight to
    /// the connection manager's own method: through `ConnectionLike` every call boxes one more
    /// future and makes one more dynamic call.
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        let reply = match self {
            Conn::Single(c) => c.send_packed_command(cmd).await?,
            Conn::Cluster(c) => c.req_packed_command(cmd).await?,
        };
        Ok(redis::from_redis_value(reply.extract_error()?)?)
    }
}

impl Store {
    /// Builds the clients; nothing connects before the first call.
    pub fn new(settings: &Settings) -> RedisResult<Self> {
        let certs = settings.ca_cert.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        });
        let timeout = settings.timeout;
        let data_nodes = &settings.credentials;
        let backend = match &settings.mode {
            Mode::Standalone(addr) => {
                let info = connection_info(address(settings, addr), data_nodes);
                let client = match certs {
                    Some(certs) => Client::build_with_tls(info, certs)?,
                    None => Client::open(info)?,
                };
                single(Source::Fixed(client), timeout)
            }
            Mode::Sentinel {
                master,
                sentinels,
                credentials: sentinel,
            } => {
                let sentinels: Vec<_> = sentinels.iter().map(|a| address(settings, a)).collect();
                let mut builder =
                    SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?;
                if settings.tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
                }
                if let Some(certs) = certs {
                    builder = builder
                        .set_client_to_redis_certificates(certs.clone())
                        .set_client_to_sentinel_certificates(certs);
                }
                if !data_nodes.username.is_empty() {
                    builder = builder.set_client_to_redis_username(&data_nodes.username);
                }
                if !data_nodes.password.is_empty() {
                    builder = builder.set_client_to_redis_password(&data_nodes.password);
                }
                if !sentinel.username.is_empty() {
                    builder = builder.set_client_to_sentinel_username(&sentinel.username);
                }
                if !sentinel.password.is_empty() {
                    builder = builder.set_client_to_sentinel_password(&sentinel.password);
                }
                let client = builder.build()?;
                single(Source::Sentinel(tokio::sync::Mutex::new(client)), timeout)
            }
            Mode::Cluster(nodes) => {
                let nodes = nodes
                    .iter()
                    .map(|a| connection_info(address(settings, a), data_nodes));
                let mut builder = ClusterClient::builder(nodes)
                    // No resend of a command after a connection error: an INCR whose outcome is
                    // unknown must surface as an error, not count twice.
                    .retries(0)
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
                if !data_nodes.username.is_empty() {
                    builder = builder.username(&data_nodes.username);
                }
                if !data_nodes.password.is_empty() {
                    builder = builder.password(&data_nodes.password);
                }
                if settings.tls {
                    builder = builder.tls(redis::TlsMode::Secure);
                }
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                Backend::Cluster {
                    client: builder.build()?,
                    conn: RwLock::new(None),
                }
            }
        };
        let inner = Inner {
            backend,
            keys: Keys::new(&settings.key_prefix),
            timeout,
            script: Script::new(COUNT_SCRIPT),
            target: settings.mode.target(),
            connecting: tokio::sync::Mutex::new(()),
            counts: Mutex::new(CountQueue::default()),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Where Redis is, for messages (never credentials).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// PING within REDIS_TIMEOUT but at most a second: what `/readyz` asks, answered before
    /// a kubelet probe (2 s by default) gives up.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let deadline = self.inner.timeout.min(Duration::from_secs(1));
        self.inner
            .call_within(deadline, |mut c| async move {
                c.query::<()>(&redis::cmd("PING")).await
            })
            .await
    }

    /// Counts one visit at `now` and returns the counters after it, within REDIS_TIMEOUT.
    /// The visit joins the next batch ([`CountQueue`]); it gets its own numbers, as if counted
    /// alone. Never retried: if the outcome is unknown (timeout, dropped connection) the
    /// caller gets the error, and so does every other count of its batch.
    pub async fn count(&self, now: DateTime<Utc>) -> Result<Visits, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start_sending = {
            let mut queue = self.inner.queue();
            queue.waiting.push(PendingCount {
                date: now.date_naive(),
                millis: now.timestamp_millis(),
                reply,
            });
            !std::mem::replace(&mut queue.sending, true)
        };
        if start_sending {
            tokio::spawn(self.inner.clone().send_counts());
        }
        let timeout = self.inner.timeout;
        let (total, today) = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(counted)) => counted?,
            // The sending task is gone without answering: the runtime is shutting down.
            Ok(Err(_)) => {
                return Err(StoreError::Redis(RedisError::from((
                    ErrorKind::Io,
                    "the count was abandoned before Redis answered",
                ))));
            }
            // Not answered in time: it may still be counted (its batch may be in flight),
            // or not (still waiting: the batch leaves it out).
            Err(_) => return Err(StoreError::Timeout(timeout)),
        };
        let mut last_visit = String::with_capacity(24);
        timefmt::write_rfc3339(&mut last_visit, now, 3).expect("writing to a String cannot fail");
        Ok(Visits {
            total,
            today,
            last_visit: Some(last_visit),
        })
    }

    /// Reads the counters without counting.
    pub async fn read(&self, now: DateTime<Utc>) -> Result<Visits, StoreError> {
        let keys = &self.inner.keys;
        let day = keys.day(now.date_naive());
        let (total, today, last): (Option<u64>, Option<u64>, Option<i64>) = self
            .inner
            .call(|mut c| {
                let mut cmd = redis::cmd("MGET");
                cmd.arg(keys.total()).arg(&day).arg(keys.last());
                async move { c.query(&cmd).await }
            })
            .await?;
        Ok(Visits {
            total: total.unwrap_or(0),
            today: today.unwrap_or(0),
            last_visit: last.map(rfc3339),
        })
    }

    /// The counts of the last `days` days, oldest first, today last.
    pub async fn daily(&self, now: DateTime<Utc>, days: u16) -> Result<Vec<DayCount>, StoreError> {
        let today = now.date_naive();
        let dates: Vec<NaiveDate> = (0..u64::from(days))
            .rev()
            .filter_map(|back| today.checked_sub_days(Days::new(back)))
            .collect();
        let counts: Vec<Option<u64>> = self
            .inner
            .call(|mut c| {
                let mut cmd = redis::cmd("MGET");
                for date in &dates {
                    cmd.arg(self.inner.keys.day(*date));
                }
                async move { c.query(&cmd).await }
            })
            .await?;
        Ok(dates
            .iter()
            .zip(counts)
            .map(|(date, count)| DayCount {
                date: date.to_string(),
                count: count.unwrap_or(0),
            })
            .collect())
    }
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, CountQueue> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the waiting counts, one script call per batch, until none wait. Runs as a task
    /// of its own, so a request that gives up cannot take its batch down with it.
    async fn send_counts(self: Arc<Self>) {
        let unexpected_end = StopSending(&self);
        let mut batch = Vec::new();
        loop {
            {
                let mut queue = self.queue();
                // Counts whose request gave up (deadline, client gone) are not sent: for
                // them "not counted" is as true as any answer.
                queue.waiting.retain(|c| !c.reply.is_closed());
                if queue.waiting.is_empty() {
                    queue.sending = false;
                    std::mem::forget(unexpected_end);
                    return;
                }
                // The buffers trade places: no allocation per batch.
                std::mem::swap(&mut queue.waiting, &mut batch);
                // One day's key per call: counts of the next day (a batch across midnight)
                // go in the next call.
                let date = batch[0].date;
                if batch.iter().any(|c| c.date != date) {
                    let later: Vec<_> = batch.extract_if(.., |c| c.date != date).collect();
                    queue.waiting.splice(0..0, later);
                }
            }
            let date = batch[0].date;
            let millis = batch.iter().map(|c| c.millis).max().unwrap_or_default();
            let n = batch.len() as u64;
            match self.count_batch(date, millis, n).await {
                Ok((total, today)) => {
                    // The batch's visits take consecutive numbers, in the order they arrived.
                    for (i, count) in (0..n).zip(batch.drain(..)) {
                        let _ = count.reply.send(Ok((total - n + 1 + i, today - n + 1 + i)));
                    }
                }
                Err(err) => {
                    for count in batch.drain(..) {
                        let _ = count.reply.send(Err(err.clone()));
                    }
                }
            }
        }
    }

    /// Counts `n` visits of `date`, the latest at `millis`, in one script call; returns the
    /// total and the day's count after them.
    async fn count_batch(
        &self,
        date: NaiveDate,
        millis: i64,
        n: u64,
    ) -> Result<(u64, u64), StoreError> {
        let day = self.keys.day_arg(date);
        // EVALSHA as one prebuilt command; NOSCRIPT (Redis restarted or failed over and lost
        // its script cache) means the script did not run, so EVAL, which also caches it, is
        // safe to send.
        let invocation = |verb: &str, script: &str| {
            let mut cmd = Cmd::with_capacity(9, 170 + script.len());
            cmd.arg(verb)
                .arg(script)
                .arg(3)
                .arg(self.keys.total())
                .arg(&day)
                .arg(self.keys.last())
                .arg(millis)
                .arg(DAY_KEY_TTL_SECONDS)
                .arg(n);
            cmd
        };
        let reply: Vec<u8> = self
            .call(|mut c| async move {
                let by_hash = invocation("EVALSHA", self.script.get_hash());
                match c.query(&by_hash).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        c.query(&invocation("EVAL", COUNT_SCRIPT)).await
                    }
                    counted => counted,
                }
            })
            .await?;
        let counts = parse_counts(&reply).filter(|&(total, today)| total >= n && today >= n);
        Ok(counts.ok_or_else(|| {
            RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "the count script answered something other than two counts",
                String::from_utf8_lossy(&reply).into_owned(),
            ))
        })?)
    }

    /// Runs one Redis call on the live connection within REDIS_TIMEOUT (connecting first if
    /// needed) and forgets a Sentinel master that stopped being one.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.call_within(self.timeout, f).await
    }

    async fn call_within<T, F, Fut>(&self, deadline: Duration, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let work = async {
            let conn = self.conn().await?;
            f(conn).await.map_err(StoreError::from)
        };
        let result = match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(deadline)),
        };
        if let Err(StoreError::Redis(err)) = &result {
            self.forget_on(err);
        }
        result
    }

    async fn conn(&self) -> RedisResult<Conn> {
        match self.cached() {
            Some(conn) => Ok(conn),
            // Connecting is rare and its future large: boxed, it stays out of every request's
            // future, which is allocated and moved once per request.
            None => Box::pin(self.connect()).await,
        }
    }

    async fn connect(&self) -> RedisResult<Conn> {
        let _guard = self.connecting.lock().await;
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        match &self.backend {
            Backend::Single {
                source,
                config,
                conn,
            } => {
                let client = match source {
                    Source::Fixed(client) => client.clone(),
                    Source::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await?,
                };
                let manager = ConnectionManager::new_with_config(client, config.clone()).await?;
                *conn.write().unwrap_or_else(|e| e.into_inner()) = Some(manager.clone());
                Ok(Conn::Single(manager))
            }
            Backend::Cluster { client, conn } => {
                let cluster = client.get_async_connection().await?;
                *conn.write().unwrap_or_else(|e| e.into_inner()) = Some(cluster.clone());
                Ok(Conn::Cluster(cluster))
            }
        }
    }

    fn cached(&self) -> Option<Conn> {
        match &self.backend {
            Backend::Single { conn, .. } => conn
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .map(Conn::Single),
            Backend::Cluster { conn, .. } => conn
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .map(Conn::Cluster),
        }
    }

    /// With Sentinel, a READONLY answer or a lost connection means the master may have moved:
    /// drop the connection so the next call asks the Sentinels again. Standalone and Cluster
    /// connections reconnect by themselves.
    fn forget_on(&self, err: &RedisError) {
        if let Backend::Single {
            source: Source::Sentinel(_),
            conn,
            ..
        } = &self.backend
        {
            let moved = err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
                || err.is_connection_dropped()
                || err.is_io_error();
            if moved {
                *conn.write().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
    }
}

/// Whether an error means Redis refused our credentials (a configuration mistake, not an outage).
pub fn is_auth_error(err: &StoreError) -> bool {
    match err {
        StoreError::Redis(e) => {
            e.kind() == ErrorKind::AuthenticationFailed
                || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
        }
        StoreError::Timeout(_) => false,
    }
}

fn single(source: Source, timeout: Duration) -> Backend {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        // Every call already has its deadline (`Store::call_within`); a second timer per
        // command in the client would only cost time.
        .set_response_timeout(None)
        // Reconnection attempts only; the manager never resends a command.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
        // Room for a burst of concurrent requests on the one multiplexed connection.
        .set_pipeline_buffer_size(1024);
    Backend::Single {
        source,
        config,
        conn: RwLock::new(None),
    }
}

/// A server's address, over TLS when the settings ask for it.
fn address(settings: &Settings, addr: &HostPort) -> ConnectionAddr {
    let (host, port) = (addr.host().to_owned(), addr.port());
    if settings.tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// Address plus the data-node credentials.
fn connection_info(addr: ConnectionAddr, credentials: &Credentials) -> ConnectionInfo {
    let mut redis = redis::RedisConnectionInfo::default();
    if !credentials.username.is_empty() {
        redis = redis.set_username(&credentials.username);
    }
    if !credentials.password.is_empty() {
        redis = redis.set_password(&credentials.password);
    }
    addr.into_connection_info()
        .expect("a ConnectionAddr is always valid connection info")
        .set_redis_settings(redis)
}

/// The count script's `"<total> <today>"`.
fn parse_counts(reply: &[u8]) -> Option<(u64, u64)> {
    let space = reply.iter().position(|&b| b == b' ')?;
    Some((digits(&reply[..space])?, digits(&reply[space + 1..])?))
}

/// A decimal number of one or more digits that fits a `u64`.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn rfc3339(millis: i64) -> String {
    let mut text = String::with_capacity(24);
    let time = DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default();
    timefmt::write_rfc3339(&mut text, time, 3).expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_script_answers_two_counts() {
        assert_eq!(parse_counts(b"12 3"), Some((12, 3)));
        assert_eq!(
            parse_counts(b"9007199254740993 1"),
            Some((9_007_199_254_740_993, 1))
        );
        for bad in [
            &b""[..],
            b"12",
            b"12 ",
            b"-1 2",
            b"1e+14 2",
            b"1 2 3",
            b"\xff 2",
        ] {
            assert_eq!(
                parse_counts(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn last_visit_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
