//! Real `sandcanary-proxy` processes on the local backend (real Chromium sandboxes) and a
//! delaying TCP relay that plays a regressed canary.
#![allow(dead_code)]

pub mod delay_relay;
pub use delay_relay::DelayRelay;

pub const ADMIN_TOKEN: &str = "canary-test-admin-token-0123456789";
pub const IDENTITY_TOKEN: &str = "canary-test-identity-token-0123456789";

pub use sandcanary_testkit::{ProxyProcess as Proxy, free_port, repo_root};

/// Starts a proxy with the local backend, token identity and the session API on.
pub async fn start_proxy(label: &str) -> Proxy {
    sandcanary_testkit::require_sandbox_node_modules().unwrap();
    sandcanary_testkit::ProxyBuilder::workspace()
        .unwrap()
        .label(format!("canary-{label}"))
        .current_dir(repo_root())
        .env("BACKEND", "local")
        .env("IDENTITY", "token")
        .env("IDENTITY_TOKEN", IDENTITY_TOKEN)
        .env("SESSION_API_TOKEN", ADMIN_TOKEN)
        .env("LOCAL_WARM_POOL", "0")
        .env("LOG_FORMAT", "text")
        .start_async()
        .await
        .unwrap()
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
