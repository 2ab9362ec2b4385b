//! The `visit-tracker` binary: reads the configuration, sets up logging and TLS, then runs.

use std::process::ExitCode;

use clap::Parser;
use visit_tracker::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    visit_tracker::telemetry::init(config.log_format);
    // rustls needs one process-wide crypto provider; ring is the one that cross-compiles to musl.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match visit_tracker::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "visit-tracker failed");
            // Also on stderr in plain words, for whoever runs it by hand or reads a crash loop.
            eprintln!("visit-tracker: {err:#}");
            ExitCode::FAILURE
        }
    }
}
