//! The `sandcanary-proxy` binary under test, started through the test kit on free loopback ports
//! with the local backend. Its "sandbox server" is this very bench executable in the upstream role,
//! so the proxy starts, pools and deletes it exactly as it would `node deploy/sandbox/server.js`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use sandcanary_testkit::ProxyBuilder;

use super::{admin, upstream};

/// The session API token the benchmarks configure (never a real secret).
pub const SESSION_TOKEN: &str = "proxybench-session-token";

/// The sandbox id the static identity gives every 127.0.0.1 client.
pub const BENCH_ID: &str = "bench";

pub struct ProxyProcess {
    // Declared before `_tmp` so that the proxy stops before its sandbox directory goes.
    process: sandcanary_testkit::ProxyProcess,
    pub data: SocketAddr,
    pub admin: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl ProxyProcess {
    /// Starts the proxy with static identity (`127.0.0.1` -> [`BENCH_ID`]) plus `extra` environment,
    /// and waits until `/readyz` answers 200.
    pub async fn start(extra: &[(&str, &str)]) -> Result<Self> {
        let exe = std::env::current_exe().context("current_exe")?;
        let tmp = tempfile::Builder::new().prefix("proxybench-").tempdir()?;
        let process = ProxyBuilder::new(env!("CARGO_BIN_EXE_sandcanary-proxy"))
            .env("BACKEND", "local")
            .env("IDENTITY", "static")
            .env("IDENTITY_STATIC", format!("127.0.0.1={BENCH_ID}"))
            .env("SESSION_API_TOKEN", SESSION_TOKEN)
            .env("LOCAL_NODE", &exe)
            .env("LOCAL_SANDBOX_SERVER", &exe)
            .env("LOCAL_TMP_DIR", tmp.path())
            .env("LOCAL_WARM_POOL", "0")
            .env("LOCAL_MAX_SANDBOXES", "2")
            .env("IDLE_TTL", "1h")
            // One tenant opens thousands of connections here (wrk, 10,000 WebSockets): no per-tenant cap.
            .env("TENANT_MAX_CONNECTIONS", "0")
            // Benchmarks end with connections still open; do not wait long for them at exit.
            .env("WS_SHUTDOWN_GRACE", "1s")
            .env("SHUTDOWN_GRACE", "2s")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            // Inherited by the sandbox children the local backend starts: they become the upstream.
            .env(upstream::ROLE_ENV, upstream::ROLE_UPSTREAM)
            .envs(extra.iter().copied())
            .ready_path("/readyz")
            .ready_timeout(Duration::from_secs(30))
            .echo_log(true)
            .log_file(false)
            .start_async()
            .await?;
        Ok(Self {
            data: process.data(),
            admin: process.admin(),
            process,
            _tmp: tmp,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Ensures the bench session through the session API and returns its sandbox's address, which is
    /// what "direct" measurements talk to.
    pub async fn ensure_bench(&self) -> Result<SocketAddr> {
        admin::ensure(self.admin, SESSION_TOKEN, BENCH_ID).await
    }

    /// Resident set size of the proxy process itself (not its children), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid())
    }
}

/// VmRSS of `pid` from /proc, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}
