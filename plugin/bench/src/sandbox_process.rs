//! One `node deploy/sandbox/server.js` process: started, suspended (SIGSTOP of its whole process
//! tree), resumed and stopped by the bench itself.
//!
//! Playwright starts Chromium in a process group of its own, so signalling the node process group
//! would leave the browser running; the tree is therefore found through `/proc`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to start a sandbox process.
#[derive(Debug, Clone)]
pub struct SandboxCommand {
    /// The node executable.
    pub node: PathBuf,
    /// Path of server.js.
    pub script: PathBuf,
    /// Also start @playwright/mcp on a second port (the local target sets it for the mcp slot only).
    pub mcp: bool,
    /// Bound on start until `SANDBOX_READY`.
    pub ready_timeout: Duration,
}

impl SandboxCommand {
    /// Defaults for the sandbox of the checkout at `root` (see [`crate::repo::Repo`]).
    pub fn from_repo(root: impl Into<PathBuf>) -> Self {
        Self {
            node: PathBuf::from("node"),
            script: root.into().join("deploy/sandbox/server.js"),
            mcp: false,
            ready_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReadyLine {
    ws: String,
    mcp: Option<u16>,
    pid: u32,
}

/// A running sandbox.
pub struct SandboxProcess {
    child: Child,
    pid: u32,
    ws_url: String,
    mcp_port: Option<u16>,
    suspended: bool,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl SandboxProcess {
    /// Starts the process and waits for its `SANDBOX_READY` line.
    pub async fn start(cmd: &SandboxCommand) -> Result<Self, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        // Resolved here, once: node runs in the script's directory, where a relative path would
        // be resolved again.
        let script = std::path::absolute(&cmd.script)
            .map_err(|e| format!("cannot resolve {}: {e}", cmd.script.display()))?;
        let mut command = Command::new(&cmd.node);
        command
            .arg(&script)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("PW_WS_PATH", "/pw")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if cmd.mcp {
            let mcp = free_port().map_err(|e| format!("no free port: {e}"))?;
            command.env("MCP_PORT", mcp.to_string());
        } else {
            command.env_remove("MCP_PORT");
        }
        if let Some(dir) = script.parent() {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start {} {}: {e}",
                cmd.node.display(),
                script.display()
            )
        })?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let wait_ready = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(json) = line.strip_prefix("SANDBOX_READY ") {
                            return serde_json::from_str::<ReadyLine>(json)
                                .map_err(|e| format!("bad SANDBOX_READY line {json:?}: {e}"));
                        }
                    }
                    Ok(None) => return Err("the sandbox exited before it was ready".to_string()),
                    Err(e) => return Err(format!("reading sandbox stdout: {e}")),
                }
            }
        };
        let ready = match tokio::time::timeout(cmd.ready_timeout, wait_ready).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let _ = child.kill().await;
                return Err(e);
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!("sandbox not ready after {:?}", cmd.ready_timeout));
            }
        };
        // Keep draining stdout so the sandbox never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id().unwrap_or(ready.pid);
        tracing::debug!(pid, ws = %ready.ws, "sandbox ready");
        Ok(Self {
            child,
            pid,
            ws_url: ready.ws,
            mcp_port: ready.mcp,
            suspended: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    pub fn mcp_url(&self) -> Option<String> {
        self.mcp_port.map(|p| format!("http://127.0.0.1:{p}/mcp"))
    }

    /// Stops the node process and every descendant (Chromium included), parents first.
    pub fn suspend(&mut self) -> Result<(), String> {
        for pid in process_tree(self.pid) {
            signal(pid, Signal::SIGSTOP)?;
        }
        self.suspended = true;
        Ok(())
    }

    /// Continues the whole tree, children first so the browser is ready when node runs again.
    pub fn resume(&mut self) -> Result<(), String> {
        for pid in process_tree(self.pid).into_iter().rev() {
            signal(pid, Signal::SIGCONT)?;
        }
        self.suspended = false;
        Ok(())
    }

    /// Whether every live process of the tree is in the stopped state (zombies count as stopped).
    pub fn is_stopped(&self) -> bool {
        let tree = process_tree(self.pid);
        !tree.is_empty()
            && tree
                .iter()
                .all(|p| matches!(proc_state(*p), Some('T' | 'Z' | 'X') | None))
    }

    /// Whether the node process still runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks for a clean shutdown (which closes Chromium and its profile), then kills what is left.
    pub async fn stop(mut self) {
        let tree = process_tree(self.pid);
        if self.suspended {
            let _ = self.resume();
        }
        let _ = signal(self.pid, Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(pid = self.pid, "sandbox ignored SIGTERM; killing its tree");
        }
        for pid in tree {
            if proc_state(pid).is_some() {
                let _ = signal(pid, Signal::SIGKILL);
            }
        }
        let _ = self.child.wait().await;
    }
}

fn signal(pid: u32, sig: Signal) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    match kill(Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!("{sig} to {pid}: {e}")),
    }
}

/// State letter from `/proc/<pid>/stat` (R, S, T, Z, ...), `None` if the process is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and its descendants, parents before children.
pub fn process_tree(root: u32) -> Vec<u32> {
    if proc_state(root).is_none() {
        return Vec::new();
    }
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| Some((pid, parent_of(pid)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_in_its_tree() {
        let me = std::process::id();
        assert!(matches!(proc_state(me), Some('R') | Some('S')));
        assert_eq!(process_tree(me).first(), Some(&me));
    }

    #[test]
    fn vanished_process_has_no_tree() {
        assert_eq!(proc_state(u32::MAX - 1), None);
        assert!(process_tree(u32::MAX - 1).is_empty());
    }
}
