//! `sandcanary-plugin`: the Argo Rollouts metric plugin binary. Argo starts it; run by hand it
//! explains that on stderr and exits 1.

use std::sync::Arc;

use goplugin::handshake::HandshakeError;
use goplugin::metric::serve_metric_provider;
use goplugin::server::ServeError;
use sandcanary_plugin::bench_job::SelectedJob;
use sandcanary_plugin::provider::SandcanaryProvider;

fn main() -> std::process::ExitCode {
    goplugin::hclog::init("sandcanary", tracing::Level::INFO);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The operator's rules: a setting that cannot be used stops the plugin, naming the variable.
    let job = match SelectedJob::from_env() {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(error = %e, "invalid plugin configuration in the controller's environment");
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let provider = Arc::new(SandcanaryProvider::new(job));
    let code = match rt.block_on(serve_metric_provider(provider)) {
        Ok(stopped) => {
            tracing::debug!(?stopped, "plugin stopping");
            0
        }
        Err(ServeError::Handshake(e @ HandshakeError::NotLaunchedByHost(_))) => {
            eprintln!("{e}");
            1
        }
        Err(e) => {
            tracing::error!(error = %e, "plugin failed");
            1
        }
    };
    // Exit without waiting for blocked reader threads of a connection that is gone.
    std::process::exit(code);
}
