//! The service end to end: the real binary against a real redis-server, over HTTP.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Service, client, eventually, get_json, post_json, post_until_counted};
use nix::sys::signal::Signal;
use serde_json::json;
use testkit::redis::{AclUser, RedisCluster, RedisSentinel, RedisServer};

#[tokio::test]
async fn counts_visits_and_reports_totals() {
    let redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[]);
    let http = client();

    let (status, body) = get_json(&http, &service.url("/api/visits")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 0);
    assert_eq!(body["today"], 0);
    assert!(body["last_visit"].is_null());

    for expected in 1..=3 {
        let (status, body) = post_json(&http, &service.url("/api/visits")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], expected);
        assert_eq!(body["today"], expected);
    }
    let head = http.head(service.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD / answers without counting");
    let page = http.get(service.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("visitor number 4"));

    let (_, body) = get_json(&http, &service.url("/api/visits")).await;
    assert_eq!(body["total"], 4, "GET must not count");
    assert_eq!(body["today"], 4);
    let last = body["last_visit"]
        .as_str()
        .expect("last_visit after a visit");
    chrono::DateTime::parse_from_rfc3339(last).expect("last_visit is RFC 3339");

    let (status, body) = get_json(&http, &service.url("/api/visits/daily?days=3")).await;
    assert_eq!(status, 200);
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2]["count"], 4, "today is last: {body}");
    assert_eq!(days[0]["count"], 0);

    // The keys share one hash tag, so the script also works in Cluster mode.
    assert_eq!(redis.cli(&["get", "{visit-tracker}:total"]).trim(), "4");

    assert_eq!(get_json(&http, &service.url("/healthz")).await.0, 200);
    assert_eq!(get_json(&http, &service.url("/readyz")).await.0, 200);
}

#[tokio::test]
async fn concurrent_posts_are_counted_exactly_once() {
    const TASKS: usize = 64;
    const POSTS: usize = 2_000;
    let redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[]);
    let http = client();
    let url = service.url("/api/visits");
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (http, url) = (http.clone(), url.clone());
            // Spread POSTS over TASKS: the first POSTS % TASKS tasks do one more.
            let n = POSTS / TASKS + usize::from(task < POSTS % TASKS);
            tokio::spawn(async move {
                let mut counts = Vec::with_capacity(n);
                for _ in 0..n {
                    let (status, body) = post_json(&http, &url).await;
                    assert_eq!(status, 200, "{body}");
                    counts.push((body["total"].as_u64().unwrap(), body["today"].as_u64()));
                }
                counts
            })
        })
        .collect();
    let mut counts = Vec::with_capacity(POSTS);
    for task in tasks {
        counts.extend(task.await.unwrap());
    }
    // Every POST saw its own total and today's count, batched or not: none lost, none
    // counted twice. (A run across midnight would restart today's count.)
    let (mut totals, mut todays): (Vec<u64>, Vec<u64>) = counts
        .into_iter()
        .map(|(total, today)| (total, today.unwrap()))
        .unzip();
    totals.sort_unstable();
    todays.sort_unstable();
    assert_eq!(totals, (1..=POSTS as u64).collect::<Vec<_>>());
    assert_eq!(todays, (1..=POSTS as u64).collect::<Vec<_>>());
    let (_, body) = get_json(&http, &url).await;
    assert_eq!(body["total"], POSTS as u64);
    assert_eq!(body["today"], POSTS as u64);
    assert_eq!(
        redis.cli(&["get", "{visit-tracker}:total"]).trim(),
        POSTS.to_string()
    );
}

/// Starts `n` POSTs while Redis holds every write (`CLIENT PAUSE WRITE`) and waits until the
/// service has them all in flight: the first one's script call waits in Redis, the others
/// wait for the next batch.
async fn posts_held_by_redis(
    redis: &RedisServer,
    service: &Service,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(u16, serde_json::Value)>> {
    redis.cli(&["client", "pause", "60000", "write"]);
    let http = client();
    let posts = (0..n)
        .map(|_| {
            let (http, url) = (http.clone(), service.url("/api/visits"));
            tokio::spawn(async move { post_json(&http, &url).await })
        })
        .collect();
    eventually("the POSTs to be in flight", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), service.url("/metrics"));
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            // The scrape itself is in flight too.
            metric_value(&text, "http_requests_in_flight") > n as f64
        }
    })
    .await;
    posts
}

/// Script calls Redis ran so far (EVALSHA and EVAL), from `INFO commandstats`.
fn script_calls(redis: &RedisServer) -> u64 {
    let stats = redis.cli(&["info", "commandstats"]);
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn counts_waiting_together_share_one_script_call_with_numbers_of_their_own() {
    const POSTS: usize = 40;
    let redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[("REDIS_TIMEOUT", "60s")]);
    let posts = posts_held_by_redis(&redis, &service, POSTS).await;
    redis.cli(&["client", "unpause"]);
    let mut totals = Vec::new();
    let mut todays = Vec::new();
    for post in posts {
        let (status, body) = post.await.unwrap();
        assert_eq!(status, 200, "{body}");
        totals.push(body["total"].as_u64().unwrap());
        todays.push(body["today"].as_u64().unwrap());
        assert!(body["last_visit"].is_string(), "{body}");
    }
    totals.sort_unstable();
    todays.sort_unstable();
    assert_eq!(totals, (1..=POSTS as u64).collect::<Vec<_>>());
    assert_eq!(todays, (1..=POSTS as u64).collect::<Vec<_>>());
    assert_eq!(redis.cli(&["get", "{visit-tracker}:total"]).trim(), "40");
    // One call for the first POST, one for those that waited behind it.
    let calls = script_calls(&redis);
    assert!(calls <= 3, "{POSTS} POSTs took {calls} script calls");
    // The day's key expires, set by the call that created it.
    let day_keys = redis.cli(&["keys", "{visit-tracker}:day:*"]);
    let day_key = day_keys.lines().next().expect("a day key");
    let ttl: i64 = redis.cli(&["ttl", day_key]).trim().parse().unwrap();
    assert!(ttl > 399 * 24 * 3600, "{day_key} expires in {ttl} s");
    // The metrics count requests, not batches.
    let text = client()
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = parse_exposition(&text);
    let post = r#"http_requests_total{method="POST",route="/api/visits",status="200"}"#;
    assert_eq!(series.get(post), Some(&(POSTS as f64)), "{text}");
}

#[tokio::test]
async fn a_failed_batch_fails_every_count_in_it_and_loses_nothing_acknowledged() {
    const ACKNOWLEDGED: usize = 100;
    const HELD: usize = 30;
    let mut redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[("REDIS_TIMEOUT", "20s")]);
    let http = client();
    let url = service.url("/api/visits");
    let acknowledged: Vec<_> = (0..ACKNOWLEDGED)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { post_json(&http, &url).await })
        })
        .collect();
    for post in acknowledged {
        assert_eq!(post.await.unwrap().0, 200);
    }

    // One batch waits in Redis, the rest queue behind it; then Redis dies (SIGKILL).
    let held = posts_held_by_redis(&redis, &service, HELD).await;
    redis.stop();
    for post in held {
        let (status, body) = post.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "redis unavailable");
    }
    let text = http.get(service.url("/metrics")).send().await.unwrap();
    let series = parse_exposition(&text.text().await.unwrap());
    let post = r#"http_requests_total{method="POST",route="/api/visits",status="503"}"#;
    assert_eq!(series.get(post), Some(&(HELD as f64)));
    assert_eq!(series.get("redis_errors_total"), Some(&(HELD as f64)));

    // Everything acknowledged was written (appendfsync always), nothing of the failed
    // batches was, and the service counts on from there once Redis is back.
    redis.start_again();
    assert_eq!(
        redis.cli(&["get", "{visit-tracker}:total"]).trim(),
        ACKNOWLEDGED.to_string()
    );
    post_until_counted(&http, &url, "the service to reach Redis again").await;
}

#[tokio::test]
async fn acl_user_works_and_wrong_credentials_fail_at_startup_naming_the_address() {
    let redis = RedisServer::start_with_user(AclUser {
        username: "tracker".into(),
        password: "right-horse-battery".into(),
    });
    let port = redis.port().to_string();
    let service = Service::standalone(
        redis.port(),
        &[
            ("REDIS_USERNAME", "tracker"),
            ("REDIS_PASSWORD", "right-horse-battery"),
        ],
    );
    let http = client();
    let (status, body) = post_json(&http, &service.url("/api/visits")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
    assert!(!service.output().contains("right-horse-battery"));

    for (user, password) in [("tracker", "wrong-staple"), ("", "wrong-staple")] {
        let mut env = vec![
            ("REDIS_HOST", "127.0.0.1"),
            ("REDIS_PORT", port.as_str()),
            ("REDIS_PASSWORD", password),
        ];
        if !user.is_empty() {
            env.push(("REDIS_USERNAME", user));
        }
        let mut bad = Service::spawn(&env);
        let status = bad.wait_exit(Duration::from_secs(30));
        let output = bad.output();
        assert!(
            !status.success(),
            "started with a wrong password:\n{output}"
        );
        assert!(
            output.contains(&format!(
                "Redis at 127.0.0.1:{port} refused the credentials"
            )),
            "the error must name the address:\n{output}"
        );
        assert!(
            !output.contains("wrong-staple"),
            "password leaked:\n{output}"
        );
    }
}

#[tokio::test]
async fn redis_outage_gives_503_then_recovers_without_restart() {
    let mut redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[("REDIS_TIMEOUT", "1s")]);
    let http = client();
    let url = service.url("/api/visits");
    let mut counted = 0u64;
    for _ in 0..5 {
        assert_eq!(post_json(&http, &url).await.0, 200);
        counted += 1;
    }

    redis.stop();
    for path in ["/api/visits", "/", "/api/visits/daily"] {
        let response = http.get(service.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 503, "{path} while Redis is down");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "redis unavailable");
    }
    assert_eq!(post_json(&http, &url).await.0, 503);
    let (status, body) = get_json(&http, &service.url("/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["reason"], "redis unavailable");
    assert_eq!(get_json(&http, &service.url("/healthz")).await.0, 200);

    redis.start_again();
    // The first calls after the restart may still meet the dead connection; then it is back.
    post_until_counted(&http, &url, "the service to reach Redis again").await;
    counted += 1;
    for _ in 0..3 {
        assert_eq!(post_json(&http, &url).await.0, 200);
        counted += 1;
    }
    let (_, body) = get_json(&http, &url).await;
    assert_eq!(body["total"], counted, "no write lost or doubled");
    assert_eq!(get_json(&http, &service.url("/readyz")).await.0, 200);
    let metrics = http.get(service.url("/metrics")).send().await.unwrap();
    let errors = metric_value(&metrics.text().await.unwrap(), "redis_errors_total");
    assert!(errors >= 5.0, "redis_errors_total = {errors}");
}

#[tokio::test]
async fn readiness_fails_first_when_shutdown_begins() {
    let redis = RedisServer::start();
    let mut service = Service::standalone(redis.port(), &[("SHUTDOWN_DELAY_SECONDS", "5")]);
    let http = client();
    assert_eq!(get_json(&http, &service.url("/readyz")).await.0, 200);

    service.signal(Signal::SIGTERM);
    eventually("/readyz to fail", Duration::from_secs(10), || {
        let (http, url) = (http.clone(), service.url("/readyz"));
        async move {
            get_json(&http, &url).await
                == (
                    503,
                    json!({"status": "not ready", "reason": "shutting down"}),
                )
        }
    })
    .await;
    // Still serving while the load balancers take the pod out.
    assert_eq!(post_json(&http, &service.url("/api/visits")).await.0, 200);
    assert_eq!(get_json(&http, &service.url("/healthz")).await.0, 200);
    let status = service.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", service.output());
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_complete() {
    const IN_FLIGHT: usize = 32;
    let redis = RedisServer::start();
    let mut service = Service::standalone(redis.port(), &[("REDIS_TIMEOUT", "60s")]);
    // Redis holds every write, so the POSTs stay in flight until we let them go.
    let posts = posts_held_by_redis(&redis, &service, IN_FLIGHT).await;

    service.signal(Signal::SIGTERM);
    // Once the listener is closed, shutdown is under way with the POSTs still waiting.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(service.addr).is_ok() {
        assert!(Instant::now() < deadline, "the listener stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.cli(&["client", "unpause"]);

    for post in posts {
        let (status, body) = post.await.unwrap();
        assert_eq!(status, 200, "an in-flight request was cut: {body}");
    }
    let status = service.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", service.output());
    assert_eq!(redis.cli(&["get", "{visit-tracker}:total"]).trim(), "32");
}

#[tokio::test]
async fn metrics_parse_back_with_the_counts_of_the_requests_made() {
    let redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[]);
    let http = client();
    for _ in 0..3 {
        assert_eq!(post_json(&http, &service.url("/api/visits")).await.0, 200);
    }
    assert_eq!(get_json(&http, &service.url("/no/such/page")).await.0, 404);

    let response = http.get(service.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let series = parse_exposition(&text);
    let value = |name: &str| {
        series
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    let post = r#"{method="POST",route="/api/visits",status="200"}"#;
    assert_eq!(value(&format!("http_requests_total{post}")), 3.0);
    assert_eq!(
        value(&format!("http_request_duration_seconds_count{post}")),
        3.0
    );
    assert!(value(&format!("http_request_duration_seconds_sum{post}")) > 0.0);
    let inf = r#"{le="+Inf",method="POST",route="/api/visits",status="200"}"#;
    assert_eq!(
        value(&format!("http_request_duration_seconds_bucket{inf}")),
        3.0
    );
    // Unknown paths share one label value instead of creating a series each.
    assert_eq!(
        value(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert!(!text.contains("/no/such/page"));
    assert_eq!(value("redis_errors_total"), 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&format!(
            r#"build_info{{version="{version}",revision="unknown"}}"#
        )),
        1.0
    );
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") >= 0.0);
    let now = chrono::Utc::now().timestamp() as f64;
    let started = value("process_start_time_seconds");
    assert!(
        started > now - 3600.0 && started <= now + 1.0,
        "start time {started}"
    );
}

#[tokio::test]
async fn bad_input_gets_4xx_never_5xx() {
    let redis = RedisServer::start();
    let service = Service::standalone(redis.port(), &[("MAX_BODY_BYTES", "1024")]);
    let huge_header = format!(
        "GET /api/visits HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "GET /api/visits HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let long_path = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024));
    let cases: Vec<(&str, String, u16)> = vec![
        ("huge header", huge_header, 431),
        ("too many headers", many_headers, 431),
        ("long path", long_path, 414),
        (
            "huge declared body",
            "POST /api/visits HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n".into(),
            413,
        ),
        (
            "made-up method",
            "BREW /api/visits HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            405,
        ),
        (
            "wrong method",
            "DELETE /api/visits HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            405,
        ),
        (
            "traversal",
            "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
        ),
        (
            "encoded nul",
            "GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
        ),
        (
            "trailing slash",
            "GET /api/visits/ HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
        ),
        (
            "bad days",
            "GET /api/visits/daily?days=abc HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
        ),
        (
            "zero days",
            "GET /api/visits/daily?days=0 HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
        ),
        (
            "too many days",
            "GET /api/visits/daily?days=367 HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
        ),
        ("garbage", "GARBAGE\r\n\r\n".into(), 400),
        (
            "bad version",
            "GET / HTTP/9.9\r\nHost: x\r\n\r\n".into(),
            400,
        ),
    ];
    for (what, request, expected) in cases {
        let status = raw_status(service.addr, request.as_bytes());
        assert_eq!(status, Some(expected), "{what}");
    }
    // The refusals are small JSON documents.
    let http = client();
    let (status, body) = get_json(&http, &service.url("/nope")).await;
    assert_eq!((status, body), (404, json!({"error": "not found"})));
    let response = http.put(service.url("/api/visits")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "method not allowed"})
    );
    // Nothing above was counted, and the service still works.
    let (status, body) = get_json(&http, &service.url("/api/visits")).await;
    assert_eq!((status, &body["total"]), (200, &json!(0)));
}

/// Sends raw bytes and returns the status code of the answer, if one came.
fn raw_status(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading everything we send.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `series{labels} value` lines of the text exposition format, keyed by everything before the
/// value. Panics on a line that does not parse.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut series = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("unparsable metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in metrics line {line:?}"));
        series.insert(key.to_owned(), value);
    }
    assert!(
        text.ends_with("# EOF\n"),
        "the exposition must end with # EOF"
    );
    series
}

/// The value of an unlabelled series, 0 if absent.
fn metric_value(text: &str, name: &str) -> f64 {
    parse_exposition(text).get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn sentinel_mode_counts_and_follows_a_failover() {
    // Password-protected throughout, like the common Sentinel charts.
    let setup = RedisSentinel::start_with_password(Some("sentinel-secret"));
    let sentinels = setup.sentinel_addr().to_string();
    let service = Service::start(&[
        ("REDIS_MODE", "sentinel"),
        ("REDIS_SENTINELS", sentinels.as_str()),
        ("REDIS_SENTINEL_MASTER", RedisSentinel::MASTER),
        ("REDIS_PASSWORD", "sentinel-secret"),
        ("REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
        ("REDIS_TIMEOUT", "1s"),
    ]);
    let http = client();
    let url = service.url("/api/visits");
    let mut counted = 0u64;
    for _ in 0..3 {
        let (status, body) = post_json(&http, &url).await;
        assert_eq!(status, 200, "{body}");
        counted += 1;
    }
    assert_eq!(get_json(&http, &service.url("/readyz")).await.0, 200);

    setup.failover();
    // The old master turns replica: writes fail until the service asks the Sentinel again.
    post_until_counted(&http, &url, "writes to reach the new master").await;
    counted += 1;
    let (status, body) = post_json(&http, &url).await;
    assert_eq!(status, 200, "{body}");
    counted += 1;
    assert_eq!(body["total"], counted, "no write lost or doubled");
    assert_eq!(
        setup.replica.cli(&["get", "{visit-tracker}:total"]).trim(),
        counted.to_string(),
        "the writes went to the promoted replica"
    );
    assert!(!service.output().contains("sentinel-secret"));
}

#[tokio::test]
async fn cluster_mode_counts_in_one_slot() {
    let cluster = RedisCluster::start();
    let seeds = cluster.seeds();
    let service = Service::start(&[("REDIS_MODE", "cluster"), ("REDIS_CLUSTER_NODES", &seeds)]);
    let http = client();
    let url = service.url("/api/visits");
    let posts: Vec<_> = (0..100)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { post_json(&http, &url).await.0 })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap(), 200);
    }
    let (status, body) = get_json(&http, &url).await;
    assert_eq!(
        (status, &body["total"], &body["today"]),
        (200, &json!(100), &json!(100))
    );
    let (status, body) = get_json(&http, &service.url("/api/visits/daily?days=2")).await;
    assert_eq!(status, 200);
    assert_eq!(body["days"][1]["count"], 100);
    assert_eq!(get_json(&http, &service.url("/readyz")).await.0, 200);
    // All keys live on the one node that owns the hash tag's slot.
    let holders: Vec<_> = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["dbsize"]).trim() != "0")
        .collect();
    assert_eq!(holders.len(), 1);
    assert_eq!(
        holders[0].cli(&["dbsize"]).trim(),
        "3",
        "total, today, last"
    );
}

#[tokio::test]
async fn tls_mode_verifies_the_server_with_the_given_ca() {
    let redis = RedisServer::start_tls();
    let port = redis.port().to_string();
    let ca = redis.ca_cert().display().to_string();
    let service = Service::start(&[
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", &port),
        ("REDIS_TLS", "true"),
        ("REDIS_CA_CERT", &ca),
    ]);
    let http = client();
    let (status, body) = post_json(&http, &service.url("/api/visits")).await;
    assert_eq!((status, &body["total"]), (200, &json!(1)), "{body}");
    assert_eq!(redis.cli(&["get", "{visit-tracker}:total"]).trim(), "1");

    // Without the CA the certificate is not trusted: the service refuses to talk to Redis.
    let untrusted = Service::start(&[
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", &port),
        ("REDIS_TLS", "true"),
    ]);
    let (status, body) = post_json(&http, &untrusted.url("/api/visits")).await;
    assert_eq!((status, &body["error"]), (503, &json!("redis unavailable")));
}

#[tokio::test]
async fn limits_refuse_overload_time_out_slow_requests_and_bound_shutdown() {
    let redis = RedisServer::start();
    let mut limited = Service::standalone(
        redis.port(),
        &[
            ("MAX_CONCURRENT_REQUESTS", "2"),
            ("REDIS_TIMEOUT", "60s"),
            ("SHUTDOWN_GRACE_SECONDS", "1"),
        ],
    );
    let impatient = Service::standalone(
        redis.port(),
        &[("REQUEST_TIMEOUT", "1s"), ("REDIS_TIMEOUT", "60s")],
    );
    let http = client();
    redis.cli(&["client", "pause", "60000", "write"]);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (http.clone(), limited.url("/api/visits"));
            tokio::spawn(async move { http.post(url).send().await.map(|r| r.status()) })
        })
        .collect();
    eventually("two POSTs in flight", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), limited.url("/metrics"));
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            metric_value(&text, "http_requests_in_flight") > 2.0
        }
    })
    .await;
    // A third is refused at once; probes and scrapes are outside the limit.
    let (status, body) = post_json(&http, &limited.url("/api/visits")).await;
    assert_eq!(
        (status, body),
        (503, json!({"error": "overloaded, try again"}))
    );
    assert_eq!(get_json(&http, &limited.url("/healthz")).await.0, 200);

    // A request past REQUEST_TIMEOUT is answered, not left hanging.
    let response = http
        .post(impatient.url("/api/visits"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);

    // Shutdown does not wait for stuck requests beyond the grace period.
    limited.signal(Signal::SIGTERM);
    let status = limited.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", limited.output());
    assert!(
        limited.output().contains("grace period"),
        "{}",
        limited.output()
    );
    for request in held {
        assert!(
            request.await.unwrap().is_err(),
            "a stuck request was answered"
        );
    }
    redis.cli(&["client", "unpause"]);
}
