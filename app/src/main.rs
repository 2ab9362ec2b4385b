//! The `visit-tracker` binary: reads the configuration, sets up logging and TLS, then runs.

use std::process::ExitCode;

use clap::Parser;
use visit_tracker::config::Config;

/// The image's static musl binary allocates with mimalloc: musl's own allocator made a POST
/// cost about 50% more CPU than the glibc build. glibc's allocator is fast enough as it is.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    visit_tracker::telemetry::init(config.log_format);
    // rustls needs one process-wide crypto provider; ring is the one that cross-compiles to musl.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = visit_tracker::run(config).await;
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "visit-tracker failed");
            // Also on stderr in plain words, for whoever runs it by hand or reads a crash loop.
            eprintln!("visit-tracker: {err:#}");
            ExitCode::FAILURE
        }
    };
    visit_tracker::telemetry::flush();
    code
}
