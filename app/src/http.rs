//! The HTTP side: routes, their handlers, the one error type, and the middleware that limits,
//! measures and logs every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::timeout::TimeoutLayer;

use crate::metrics::{Metrics, RequestLabels};
use crate::store::{Store, StoreError, Visits};

/// The longest `/api/visits/daily` window: a year, leap day included.
pub const MAX_DAYS: u32 = 366;

/// Every route, so the metrics' `route` label is one of these or `unmatched`, never a raw path.
/// All are static paths: a request matches a route exactly when its path equals it.
const ROUTES: [&str; 6] = [
    "/",
    "/api/visits",
    "/api/visits/daily",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// The routes under the concurrency limit: the rest (probes, scrapes, 404s) must still answer
/// when the API is overloaded.
const LIMITED_ROUTES: [&str; 3] = ["/", "/api/visits", "/api/visits/daily"];

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    /// Set when shutdown begins; `/readyz` fails from then on.
    pub shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics: Metrics::new(),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// Counts and logs a Redis failure; the client only learns that Redis is unavailable.
    fn redis_failed(&self, err: StoreError) -> ApiError {
        self.metrics.redis_error();
        tracing::warn!(redis = %self.store.target(), error = %err, "redis call failed");
        ApiError::RedisUnavailable
    }
}

/// Limits applied to the API routes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_body_bytes: usize,
}

/// The service: the router behind one [`Observe`] layer, a request deadline and the body
/// limit for extractors.
///
/// The layers wrap the whole router once instead of each route (`Router::layer`), and
/// `Observe` is a plain tower service instead of `middleware::from_fn`: per request and layer
/// those box a future and clone a boxed service, which was 17 of a POST's 41 allocations.
pub fn app(
    state: Arc<AppState>,
    limits: Limits,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let router = Router::new()
        .route("/", get(index).head(index_head))
        .route("/api/visits", get(read_visits).post(count_visit))
        .route("/api/visits/daily", get(daily_visits))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    ServiceBuilder::new()
        .layer(ObserveLayer {
            state,
            api_slots: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            max_body_bytes: limits.max_body_bytes as u64,
        })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .service(router)
}

/// The one error type: a status and a small JSON body. 5xx bodies say nothing more.
#[derive(Debug)]
pub enum ApiError {
    RedisUnavailable,
    Overloaded,
    BadRequest(&'static str),
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::RedisUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try again"),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

async fn index(State(state): State<Arc<AppState>>) -> Result<Html<String>, ApiError> {
    let visits = state
        .store
        .count(Utc::now())
        .await
        .map_err(|e| state.redis_failed(e))?;
    // Only numbers go into the page: nothing user-supplied to escape.
    Ok(Html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>visit-tracker</title></head>\n\
         <body>\n<h1>Hello, visitor number {}!</h1>\n<p>{} visits today.</p>\n</body>\n</html>\n",
        visits.total, visits.today
    )))
}

/// HEAD must be safe: link checkers and uptime monitors do not count as visitors.
async fn index_head() -> Html<&'static str> {
    Html("")
}

async fn read_visits(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let visits = state
        .store
        .read(Utc::now())
        .await
        .map_err(|e| state.redis_failed(e))?;
    Ok(visits_response(&visits))
}

async fn count_visit(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let visits = state
        .store
        .count(Utc::now())
        .await
        .map_err(|e| state.redis_failed(e))?;
    Ok(visits_response(&visits))
}

/// The counters as `Json(visits)` answers them, byte for byte, written directly: serde_json
/// escapes every key and string character by character, which was a fifth of the cost of
/// answering a POST.
fn visits_response(visits: &Visits) -> Response {
    let (mut total, mut today) = (itoa::Buffer::new(), itoa::Buffer::new());
    let quoted;
    let (open, last_visit, close) = match &visits.last_visit {
        // An RFC 3339 time never needs escaping; anything else goes through serde_json.
        Some(time) if !time.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') => {
            ("\"", time.as_str(), "\"")
        }
        Some(other) => {
            quoted = serde_json::to_string(other).expect("a string serializes");
            ("", quoted.as_str(), "")
        }
        None => ("", "null", ""),
    };
    // One allocation of exactly the body's length: a body shorter than its buffer would cost
    // one more allocation per response where it becomes `Bytes`.
    let body = [
        r#"{"total":"#,
        total.format(visits.total),
        r#","today":"#,
        today.format(visits.today),
        r#","last_visit":"#,
        open,
        last_visit,
        close,
        "}",
    ]
    .concat();
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(Debug, serde::Deserialize)]
struct DailyParams {
    days: Option<u32>,
}

const BAD_DAYS: &str = "days must be a whole number from 1 to 366";

/// `days` from the query: 7 when absent, refused outside 1..=366.
fn days_param(params: Result<Query<DailyParams>, QueryRejection>) -> Result<u16, ApiError> {
    let Query(params) = params.map_err(|_| ApiError::BadRequest(BAD_DAYS))?;
    match params.days.unwrap_or(7) {
        days @ 1..=MAX_DAYS => Ok(days as u16),
        _ => Err(ApiError::BadRequest(BAD_DAYS)),
    }
}

async fn daily_visits(
    State(state): State<Arc<AppState>>,
    params: Result<Query<DailyParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let days = days_param(params)?;
    let counts = state
        .store
        .daily(Utc::now(), days)
        .await
        .map_err(|e| state.redis_failed(e))?;
    Ok(Json(json!({ "days": counts })).into_response())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_ready = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response()
    };
    if state.shutting_down.load(Ordering::SeqCst) {
        return not_ready("shutting down");
    }
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(err) => {
            let _ = state.redis_failed(err);
            not_ready("redis unavailable")
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Makes [`Observe`] services around the router.
#[derive(Clone)]
struct ObserveLayer {
    state: Arc<AppState>,
    /// One permit per API request in flight (`MAX_CONCURRENT_REQUESTS`).
    api_slots: Arc<Semaphore>,
    max_body_bytes: u64,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// Refuses what must not reach a handler (an API request over the concurrency limit, a
/// declared body over the limit), then measures and logs every request: one histogram
/// observation and one log line each.
#[derive(Clone)]
struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let method = method_label(req.method());
        let route = route_label(req.uri().path());
        // A route matches only its exact path, so the log needs the request's own path only
        // when none matched; cloning the URI otherwise costs an allocation per request.
        let unmatched_uri = (route == UNMATCHED).then(|| req.uri().clone());
        let in_flight = InFlight::enter(self.layer.state.clone());
        let mut permit = None;
        let refused = if declared_length(&req).is_some_and(|n| n > self.layer.max_body_bytes) {
            Some(ApiError::PayloadTooLarge)
        } else if LIMITED_ROUTES.contains(&route) {
            match self.layer.api_slots.clone().try_acquire_owned() {
                Ok(p) => {
                    permit = Some(p);
                    None
                }
                Err(_) => Some(ApiError::Overloaded),
            }
        } else {
            None
        };
        let answer = match refused {
            Some(err) => Answer::Refused {
                response: Some(err.into_response()),
            },
            None => Answer::Routed {
                future: self.inner.call(req),
            },
        };
        ObserveFuture {
            answer,
            start,
            method,
            route,
            unmatched_uri,
            in_flight,
            _permit: permit,
        }
    }
}

pin_project_lite::pin_project! {
    /// One request through [`Observe`]: the router's answer or a refusal, then the
    /// observation. The concurrency permit is held until the answer is ready.
    struct ObserveFuture<F> {
        #[pin]
        answer: Answer<F>,
        start: Instant,
        method: &'static str,
        route: &'static str,
        unmatched_uri: Option<axum::http::Uri>,
        in_flight: InFlight,
        _permit: Option<OwnedSemaphorePermit>,
    }
}

pin_project_lite::pin_project! {
    #[project = AnswerProj]
    enum Answer<F> {
        Routed { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.answer.project() {
            AnswerProj::Routed { future } => ready!(future.poll(cx))?,
            AnswerProj::Refused { response } => response
                .take()
                .expect("ObserveFuture polled after completion"),
        };
        let elapsed = this.start.elapsed();
        let (method, route) = (*this.method, *this.route);
        let status = response.status().as_u16();
        this.in_flight.0.metrics.observe(
            &RequestLabels {
                method,
                route,
                status,
            },
            elapsed.as_secs_f64(),
        );
        tracing::info!(
            method,
            path = this
                .unmatched_uri
                .as_ref()
                .map_or(route, |uri| log_path(uri.path())),
            route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        Poll::Ready(Ok(response))
    }
}

/// The route a path matches, or `unmatched`: made-up paths must not become label values.
fn route_label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or(UNMATCHED)
}

/// The route label of a path no route matches.
const UNMATCHED: &str = "unmatched";

/// The body length a request declares, if it declares one.
fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Keeps `http_requests_in_flight` right even when a client hangs up mid-request.
struct InFlight(Arc<AppState>);

impl InFlight {
    fn enter(state: Arc<AppState>) -> Self {
        state.metrics.in_flight().inc();
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight().dec();
    }
}

/// A known method's name, or OTHER: made-up methods must not become label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Paths are attacker-chosen: log at most 200 bytes of one.
fn log_path(path: &str) -> &str {
    let mut end = path.len().min(200);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use clap::Parser;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;

    /// The service against a "Redis" at `redis_port`.
    fn service(
        redis_port: u16,
        max_concurrent_requests: usize,
    ) -> (
        Arc<AppState>,
        impl Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static,
    ) {
        let port = redis_port.to_string();
        let config = Config::parse_from(["visit-tracker", "--redis-port", &port]);
        let state = AppState::new(Store::new(&config.store_settings().unwrap()).unwrap());
        let limits = Limits {
            request_timeout: Duration::from_secs(5),
            max_concurrent_requests,
            max_body_bytes: 1024,
        };
        (state.clone(), app(state, limits))
    }

    fn request(method: &str, uri: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    }

    async fn send<S>(service: &S, method: &str, uri: &str) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone,
    {
        service.clone().oneshot(request(method, uri)).await.unwrap()
    }

    #[tokio::test]
    async fn every_route_is_routed_and_labelled_by_its_path() {
        // Requests that every route answers without Redis (none listens on port 1), and none
        // may fall through to 404.
        let (state, service) = service(1, 16);
        let requests = [
            ("HEAD", "/", 200),
            ("PUT", "/api/visits", 405),
            ("GET", "/api/visits/daily?days=0", 400),
            ("GET", "/healthz", 200),
            ("DELETE", "/readyz", 405),
            ("GET", "/metrics", 200),
            ("GET", "/api/visits/", 404),
            ("GET", "//healthz", 404),
        ];
        for (method, uri, status) in requests {
            let response = send(&service, method, uri).await;
            assert_eq!(response.status(), status, "{method} {uri}");
        }
        let text = state.metrics.render();
        for route in ROUTES {
            assert!(
                text.contains(&format!("route=\"{route}\"")),
                "{route} not labelled:\n{text}"
            );
        }
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 2"#),
            "{text}"
        );
        assert!(
            !text.contains("//healthz") && !text.contains("/api/visits/\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn api_requests_over_the_limit_are_refused_but_probes_answer() {
        // A "Redis" that takes connections and never answers: a count waits for it, holding
        // the one API slot.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (state, service) = service(silent.local_addr().unwrap().port(), 1);
        let held = tokio::spawn(service.clone().oneshot(request("POST", "/api/visits")));
        while state.metrics.in_flight().get() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let refused = send(&service, "GET", "/api/visits").await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(refused.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"overloaded, try again"}"#);
        let probe = send(&service, "GET", "/healthz").await;
        assert_eq!(probe.status(), StatusCode::OK);
        held.abort();
    }

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_before_routing() {
        let (_state, service) = service(1, 16);
        let mut big = request("POST", "/api/visits");
        big.headers_mut()
            .insert(header::CONTENT_LENGTH, "1025".parse().unwrap());
        let response = service.oneshot(big).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    fn query(q: &str) -> Result<Query<DailyParams>, QueryRejection> {
        let uri: axum::http::Uri = format!("/api/visits/daily?{q}").parse().unwrap();
        Query::try_from_uri(&uri)
    }

    #[test]
    fn days_defaults_to_a_week_and_is_bounded() {
        assert_eq!(days_param(query("")).unwrap(), 7);
        assert_eq!(days_param(query("days=1")).unwrap(), 1);
        assert_eq!(days_param(query("days=366")).unwrap(), 366);
        for bad in [
            "days=0",
            "days=367",
            "days=-1",
            "days=x",
            "days=99999999999",
        ] {
            assert!(days_param(query(bad)).is_err(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn visits_are_answered_as_json_serializes_them() {
        let cases = [
            Visits {
                total: 0,
                today: 0,
                last_visit: None,
            },
            Visits {
                total: u64::MAX,
                today: 7,
                last_visit: Some("2026-01-31T23:59:59.123Z".into()),
            },
            Visits {
                total: 1,
                today: 1,
                last_visit: Some("q\"b\\n\n\u{1}é".into()),
            },
        ];
        for visits in cases {
            let ours = visits_response(&visits);
            let theirs = Json(visits.clone()).into_response();
            assert_eq!(ours.status(), theirs.status());
            assert_eq!(ours.headers(), theirs.headers());
            let body = |r: Response| axum::body::to_bytes(r.into_body(), 1024);
            assert_eq!(
                body(ours).await.unwrap(),
                body(theirs).await.unwrap(),
                "{visits:?}"
            );
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }

    #[test]
    fn logged_paths_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let cut = log_path(&long);
        assert!(cut.len() <= 200);
        assert!(long.starts_with(cut));
    }
}
