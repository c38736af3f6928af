//! Real `sandcanary-proxy` processes on the local backend (real Chromium sandboxes) and a
//! delaying TCP relay that plays a regressed canary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod delay_relay;
pub use delay_relay::DelayRelay;

pub const ADMIN_TOKEN: &str = "canary-test-admin-token-0123456789";
pub const IDENTITY_TOKEN: &str = "canary-test-identity-token-0123456789";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The proxy binary beside this test's target directory, built with cargo when missing.
pub fn proxy_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let bin = debug_dir.join("sandcanary-proxy");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "sandcanary-proxy"])
            .current_dir(repo_root())
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p sandcanary-proxy failed");
    }
    assert!(bin.exists(), "{} missing after build", bin.display());
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running proxy; SIGTERM on drop so it stops its sandboxes.
pub struct Proxy {
    child: Child,
    pub data: String,
    pub admin: String,
    pub data_port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a proxy with the local backend, token identity and the session API on.
pub async fn start_proxy(label: &str) -> Proxy {
    assert!(
        repo_root()
            .join("deploy/sandbox/node_modules/playwright-core")
            .exists(),
        "run `make setup-node` first: deploy/sandbox/node_modules is missing"
    );
    let (data_port, admin_port) = (free_port(), free_port());
    let log_path = std::env::temp_dir().join(format!("sandcanary-canary-{label}-{data_port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    eprintln!("{label} proxy log: {}", log_path.display());
    let child = Command::new(proxy_binary())
        .current_dir(repo_root())
        .env("LISTEN_ADDR", format!("127.0.0.1:{data_port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("BACKEND", "local")
        .env("IDENTITY", "token")
        .env("IDENTITY_TOKEN", IDENTITY_TOKEN)
        .env("SESSION_API_TOKEN", ADMIN_TOKEN)
        .env("LOCAL_WARM_POOL", "0")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let proxy = Proxy {
        child,
        data: format!("http://127.0.0.1:{data_port}"),
        admin: format!("http://127.0.0.1:{admin_port}"),
        data_port,
    };
    let healthz = format!("{}/healthz", proxy.admin);
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(&healthz).await
            && r.status().is_success()
        {
            return proxy;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{label} proxy never became healthy at {healthz}");
}

/// Token files for the config's `{file: ...}` secret references (no process-wide env changes).
pub struct Secrets {
    pub dir: tempfile::TempDir,
}

impl Secrets {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin"), format!("{ADMIN_TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("identity"), IDENTITY_TOKEN).unwrap();
        std::fs::write(dir.path().join("github"), "ghp_canary_test_token").unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}
