//! The service end to end: the real binary against a real redis-server, over HTTP.

mod common;

use common::{Service, client, get_json, post_json};
use testkit::redis::RedisServer;

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
