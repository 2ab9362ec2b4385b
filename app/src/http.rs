//! The HTTP side: routes, their handlers, the one error type, and the middleware that limits,
//! measures and logs every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use chrono::Utc;
use serde_json::json;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::{Metrics, RequestLabels};
use crate::store::{Store, StoreError};

/// The longest `/api/visits/daily` window: a year, leap day included.
pub const MAX_DAYS: u32 = 366;

/// Every route, so the metrics' `route` label is one of these or `unmatched`, never a raw path.
const ROUTES: [&str; 6] = [
    "/",
    "/api/visits",
    "/api/visits/daily",
    "/healthz",
    "/readyz",
    "/metrics",
];

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

/// The service's router. Health, readiness and metrics are outside the concurrency limit, so
/// probes and scrapes still answer under overload.
pub fn app(state: Arc<AppState>, limits: Limits) -> Router {
    let api = Router::new()
        .route("/", get(index).head(index_head))
        .route("/api/visits", get(read_visits).post(count_visit))
        .route("/api/visits/daily", get(daily_visits))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    limits.max_concurrent_requests,
                )),
        );
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(state.clone(), observe))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    limits.request_timeout,
                ))
                .layer(RequestBodyLimitLayer::new(limits.max_body_bytes)),
        )
        .with_state(state)
}

/// The one error type: a status and a small JSON body. 5xx bodies say nothing more.
#[derive(Debug)]
pub enum ApiError {
    RedisUnavailable,
    Overloaded,
    BadRequest(&'static str),
    NotFound,
    MethodNotAllowed,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::RedisUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try again"),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
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
    Ok(Json(visits).into_response())
}

async fn count_visit(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let visits = state
        .store
        .count(Utc::now())
        .await
        .map_err(|e| state.redis_failed(e))?;
    Ok(Json(visits).into_response())
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

async fn overloaded(_: BoxError) -> ApiError {
    ApiError::Overloaded
}

/// Measures and logs one request: one log line and one histogram observation each.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| **r == m.as_str()))
        .copied()
        .unwrap_or("unmatched");
    let uri = req.uri().clone();
    let in_flight = InFlight::enter(&state.metrics);
    let response = next.run(req).await;
    drop(in_flight);
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe(
        &RequestLabels {
            method,
            route,
            status,
        },
        elapsed.as_secs_f64(),
    );
    tracing::info!(
        method,
        path = log_path(uri.path()),
        route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Keeps `http_requests_in_flight` right even when a client hangs up mid-request.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.in_flight().inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight().dec();
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
    use super::*;

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
