//! A bare Chromium with its DevTools endpoint on a free port, for the CDP path and for opening
//! reports in tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to start Chromium.
#[derive(Debug, Clone)]
pub struct ChromiumCommand {
    pub executable: PathBuf,
    pub ready_timeout: Duration,
}

impl Default for ChromiumCommand {
    fn default() -> Self {
        Self {
            executable: PathBuf::from("/usr/bin/chromium"),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// A running Chromium; killed (and its profile removed) when stopped or dropped.
pub struct ChromiumProcess {
    child: Child,
    ws_url: String,
    profile: PathBuf,
}

impl ChromiumProcess {
    /// Starts Chromium headless with `--remote-debugging-port=0` and reads the DevTools URL from stderr.
    pub async fn start(cmd: &ChromiumCommand) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let profile =
            std::env::temp_dir().join(format!("sandcanary-cdp-{}-{nanos}", std::process::id()));
        let mut child = Command::new(&cmd.executable)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cmd.executable.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut lines = BufReader::new(stderr).lines();
        let find = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        };
        let ws_url = match tokio::time::timeout(cmd.ready_timeout, find).await {
            Ok(Some(url)) => url,
            Ok(None) => {
                let _ = child.kill().await;
                return Err("chromium exited without a DevTools URL".into());
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!("no DevTools URL after {:?}", cmd.ready_timeout));
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            ws_url,
            profile,
        })
    }

    /// Browser WebSocket URL.
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// `http://127.0.0.1:<port>` of the DevTools endpoint.
    pub fn http_url(&self) -> String {
        let rest = self.ws_url.trim_start_matches("ws://");
        let authority = rest.split('/').next().unwrap_or(rest);
        format!("http://{authority}")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
