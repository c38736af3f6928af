//! `sandcanary-proxy`: reads its configuration, starts the proxy, and shuts down gracefully on
//! SIGTERM or SIGINT.

use std::process::ExitCode;

use sandcanary_proxy::config::{Config, LogFormat};
use sandcanary_proxy::server;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sandcanary-proxy: invalid configuration: {e}");
            return ExitCode::from(1);
        }
    };
    init_tracing(cfg.log_format);
    info!(
        backend = cfg.backend.kind().as_str(),
        listen = %cfg.listen_addr,
        admin = %cfg.metrics_addr,
        idle_ttl = ?cfg.idle_ttl,
        identity = ?cfg.identity.kinds(),
        "starting"
    );
    let running = match server::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start");
            return ExitCode::from(1);
        }
    };
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!(signal = "SIGTERM", "received signal"),
        _ = int.recv() => info!(signal = "SIGINT", "received signal"),
    }
    running.shutdown();
    running.wait().await;
    ExitCode::SUCCESS
}
