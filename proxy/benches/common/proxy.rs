//! The `sandcanary-proxy` binary under test, started as a child process on free loopback ports with
//! the local backend. Its "sandbox server" is this very bench executable in the upstream role, so the
//! proxy starts, pools and deletes it exactly as it would `node deploy/sandbox/server.js`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper::{Method, StatusCode};

use super::{admin, upstream};

/// The session API token the benchmarks configure (never a real secret).
pub const SESSION_TOKEN: &str = "proxybench-session-token";

/// The sandbox id the static identity gives every 127.0.0.1 client.
pub const BENCH_ID: &str = "bench";

/// A port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct ProxyProcess {
    child: Child,
    pub data: SocketAddr,
    pub admin: SocketAddr,
    tmp: PathBuf,
}

impl ProxyProcess {
    /// Starts the proxy with static identity (`127.0.0.1` -> [`BENCH_ID`]) plus `extra` environment,
    /// and waits until `/readyz` answers 200.
    pub async fn start(extra: &[(&str, &str)]) -> Result<Self> {
        let exe = std::env::current_exe().context("current_exe")?;
        let data: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let tmp = std::env::temp_dir().join(format!("proxybench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandcanary-proxy"));
        cmd.env("LISTEN_ADDR", data.to_string())
            .env("METRICS_ADDR", admin.to_string())
            .env("BACKEND", "local")
            .env("IDENTITY", "static")
            .env("IDENTITY_STATIC", format!("127.0.0.1={BENCH_ID}"))
            .env("SESSION_API_TOKEN", SESSION_TOKEN)
            .env("LOCAL_NODE", &exe)
            .env("LOCAL_SANDBOX_SERVER", &exe)
            .env("LOCAL_TMP_DIR", &tmp)
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
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("start sandcanary-proxy")?;
        let mut p = Self {
            child,
            data,
            admin,
            tmp,
        };
        p.wait_ready(Duration::from_secs(30)).await?;
        Ok(p)
    }

    async fn wait_ready(&mut self, budget: Duration) -> Result<()> {
        let deadline = Instant::now() + budget;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("sandcanary-proxy exited during start-up: {status}");
            }
            if let Ok((StatusCode::OK, _)) =
                admin::call(self.admin, Method::GET, "/readyz", None).await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "sandcanary-proxy not ready on {} within {budget:?}",
                    self.admin
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ensures the bench session through the session API and returns its sandbox's address, which is
    /// what "direct" measurements talk to.
    pub async fn ensure_bench(&self) -> Result<SocketAddr> {
        admin::ensure(self.admin, SESSION_TOKEN, BENCH_ID).await
    }

    /// Resident set size of the proxy process itself (not its children), in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.child.id())
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

impl Drop for ProxyProcess {
    /// SIGTERM (the proxy stops its sandboxes), then SIGKILL if it does not exit in time.
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a pid we own; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.tmp);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("proxybench: sandcanary-proxy did not stop within 15 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}
