//! Shared parts of the proxy benchmarks: the stand-in sandbox (upstream), a running proxy process,
//! a small admin-API client, latency summaries and process limits.
//!
//! Every bench binary includes this module but uses only some of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod admin;
pub mod limits;
pub mod nginx;
pub mod proxy;
pub mod report;
pub mod stats;
pub mod upstream;
pub mod wrk;

/// Runs the stand-in sandbox instead of the benchmark when the proxy's local backend started this
/// executable as its "node" (see [`proxy::ProxyProcess`]). Returns true if it did.
pub fn run_role_if_upstream() -> bool {
    if std::env::var_os(upstream::ROLE_ENV).is_some_and(|v| v == upstream::ROLE_UPSTREAM) {
        if let Err(e) = upstream::run_from_env() {
            eprintln!("proxybench upstream: {e:#}");
            std::process::exit(1);
        }
        return true;
    }
    false
}

/// The entry of the bench binaries that start the proxy: the stand-in sandbox when the proxy started
/// this executable as one, else `run` on a current-thread runtime at the nice value asked for.
pub fn main<F: std::future::Future<Output = anyhow::Result<()>>>(
    run: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    if run_role_if_upstream() {
        return Ok(());
    }
    if let Some(n) = limits::apply_nice_from_env()? {
        println!("running at nice {n} ({})", limits::NICE_ENV);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}
