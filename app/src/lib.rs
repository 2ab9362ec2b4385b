//! visit-tracker: counts visits in Redis and serves them as a page, a JSON API and metrics.
//! `run` wires configuration, Redis and the HTTP server together with graceful shutdown.

pub mod config;
pub mod http;
pub mod metrics;
pub mod store;
pub mod telemetry;
pub mod timefmt;

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::ServiceExt as _;
use axum::serve::ListenerExt;

use crate::config::Config;
use crate::http::{AppState, Limits};
use crate::store::{Store, is_auth_error};

/// Serves until SIGTERM or SIGINT, then drains. Fails at startup on bad configuration, an
/// address already in use, or credentials Redis refuses; an unreachable Redis is not fatal
/// (the service answers 503 and `/readyz` fails until Redis is back).
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let store = Store::new(&config.store_settings()?)?;
    let target = store.target().to_owned();
    // One PING at startup turns bad credentials into a clear error instead of endless 503s.
    match store.ping().await {
        Ok(()) => tracing::info!(redis = %target, "connected to redis"),
        Err(err) if is_auth_error(&err) => bail!(
            "Redis at {target} refused the credentials of user {:?} ({err}): check REDIS_USERNAME and REDIS_PASSWORD",
            if config.redis_username.is_empty() {
                "default"
            } else {
                &config.redis_username
            }
        ),
        Err(err) => {
            tracing::warn!(redis = %target, error = %err, "redis not reachable yet; answering 503 until it is")
        }
    }

    let state = AppState::new(store);
    let service = http::app(
        state.clone(),
        Limits {
            request_timeout: config.request_timeout,
            max_concurrent_requests: config.max_concurrent_requests,
            max_body_bytes: config.max_body_bytes,
        },
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // The bound address, not the configured one: with port 0 the OS picks it.
    let listen = listener.local_addr()?;
    // Responses are small: send them at once instead of waiting for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tracing::info!(
        %listen,
        version = env!("CARGO_PKG_VERSION"),
        revision = metrics::REVISION,
        "serving"
    );

    let delay = Duration::from_secs(config.shutdown_delay_seconds);
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let draining = state.clone();
    axum::serve(listener, service.into_make_service())
        .with_graceful_shutdown(async move {
            let signal = shutdown_signal().await;
            draining.shutting_down.store(true, Ordering::SeqCst);
            tracing::info!(
                signal,
                ?delay,
                ?grace,
                "shutdown started: /readyz fails from now on"
            );
            tokio::time::sleep(delay).await;
            tracing::info!("listener closed; waiting for in-flight requests");
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                tracing::error!(
                    ?grace,
                    "requests still in flight after the grace period; exiting"
                );
                telemetry::flush();
                std::process::exit(1);
            });
        })
        .await
        .context("serving HTTP")?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Waits for SIGTERM (Kubernetes, `docker stop`) or SIGINT (Ctrl-C) and says which.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
