//! One sandbox process: `node deploy/sandbox/server.js`, its Chromium, and the directory that is its
//! TMPDIR and HOME (so that everything the browser leaves behind goes away with it).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::LocalSettings;
use crate::backend::{Authority, BackendError, Endpoint};

pub struct SandboxProcess {
    pub seq: u64,
    pub pid: i32,
    pub endpoint: Endpoint,
    dir: PathBuf,
    exited: watch::Receiver<bool>,
    suspended: AtomicBool,
}

impl SandboxProcess {
    pub fn alive(&self) -> bool {
        !*self.exited.borrow()
    }

    pub fn suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Stops every process of the sandbox with SIGSTOP. This keeps the browser's memory: it is a
    /// pause, not a snapshot, and a resumed sandbox continues exactly where it was.
    pub fn suspend(&self) -> Result<(), BackendError> {
        if !self.alive() {
            return Err(BackendError::Failed(format!(
                "sandbox {} has exited",
                self.endpoint.instance
            )));
        }
        signal_tree(self.pid, libc::SIGSTOP);
        self.suspended.store(true, Ordering::Release);
        Ok(())
    }

    pub fn resume(&self) {
        signal_tree(self.pid, libc::SIGCONT);
        self.suspended.store(false, Ordering::Release);
    }

    /// Stops the sandbox and removes its directory. SIGTERM first so that the server closes Chromium
    /// cleanly (a signalled Chromium leaves its profile and Singleton files behind); then SIGKILL for
    /// whatever is left of the tree.
    pub async fn terminate(&self) {
        let tree = process_tree(self.pid);
        if self.suspended() {
            for &p in &tree {
                send(p, libc::SIGCONT);
            }
        }
        if self.alive() {
            send(self.pid, libc::SIGTERM);
            let mut exited = self.exited.clone();
            let _ = tokio::time::timeout(Duration::from_secs(3), exited.wait_for(|e| *e)).await;
        }
        // Anything still running (a browser that ignored the close, helpers) is killed outright.
        let mut leftovers = tree;
        leftovers.extend(process_tree(self.pid));
        for p in leftovers {
            send(p, libc::SIGKILL);
        }
        let mut exited = self.exited.clone();
        let _ = tokio::time::timeout(Duration::from_secs(2), exited.wait_for(|e| *e)).await;
        match tokio::fs::remove_dir_all(&self.dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(dir = %self.dir.display(), error = %e, "could not remove sandbox directory")
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn send(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; ESRCH for a process already gone is fine.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn signal_tree(root: i32, sig: libc::c_int) {
    for p in process_tree(root) {
        send(p, sig);
    }
}

/// `root` and all its descendants, read from /proc. Chromium runs in a process group of its own
/// (Playwright starts it detached), so signalling the server's group would miss it.
pub fn process_tree(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name may hold spaces and parentheses: the fields we want follow the last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
            if let (Some(ppid), Some(state)) = (ppid, state)
                && (state != "Z" || pid == root)
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut queue = VecDeque::from([root]);
    while let Some(p) = queue.pop_front() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                out.push(k);
                queue.push_back(k);
            }
        }
    }
    out
}

fn free_port(bind: IpAddr) -> Result<u16, BackendError> {
    TcpListener::bind((bind, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BackendError::io(format!("no free port on {bind}"), e))
}

/// Starts one sandbox and waits until both of its listeners are up.
pub async fn start(cfg: &LocalSettings, seq: u64) -> Result<SandboxProcess, BackendError> {
    // Kept short: Chromium puts unix sockets under it (see LocalSettings::MAX_TMP_DIR_BYTES).
    let dir = cfg.tmp_dir.join(format!("{}-{seq}", std::process::id()));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| BackendError::io(format!("cannot create {}", dir.display()), e))?;
    let port = free_port(cfg.bind)?;
    let mcp_port = if cfg.mcp {
        Some(free_port(cfg.bind)?)
    } else {
        None
    };

    let mut cmd = Command::new(&cfg.node);
    cmd.arg(&cfg.sandbox_server)
        .env("PORT", port.to_string())
        .env("HOST", cfg.bind.to_string())
        .env("PW_WS_PATH", "/")
        .env("CHROMIUM_PATH", &cfg.chromium)
        .env("CHROMIUM_ARGS", cfg.chromium_args.join(","))
        .env("TMPDIR", &dir)
        .env("HOME", &dir)
        // Tools in the sandbox (the MCP server) write output files to their working directory.
        .current_dir(&dir)
        .env_remove("MCP_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(p) = mcp_port {
        cmd.env("MCP_PORT", p.to_string());
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // If the proxy dies without cleaning up, the server still gets SIGTERM and closes Chromium.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| BackendError::io(format!("cannot start {}", cfg.node.display()), e))?;
    let pid = child
        .id()
        .map(|p| p as i32)
        .ok_or_else(|| BackendError::Failed("sandbox server exited immediately".into()))?;

    let stderr_tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
    if let Some(err) = child.stderr.take() {
        let tail = stderr_tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                debug!(sandbox = seq, "{line}");
                let mut t = tail.lock().expect("stderr tail");
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
    }
    let (exited_tx, exited) = watch::channel(false);
    let stdout = child.stdout.take().expect("stdout is piped");
    tokio::spawn(async move {
        let status = child.wait().await;
        debug!(sandbox = seq, pid, ?status, "sandbox server exited");
        exited_tx.send_replace(true);
    });

    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(cfg.start_timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("SANDBOX_READY ") {
                return true;
            }
            debug!(sandbox = seq, "{line}");
        }
        false
    })
    .await;
    let failure = match ready {
        Ok(true) => None,
        Ok(false) => Some("the sandbox server exited during start-up".to_string()),
        Err(_) => Some(format!(
            "the sandbox server was not ready within LOCAL_START_TIMEOUT ({})",
            crate::config::duration::format(cfg.start_timeout)
        )),
    };
    let sandbox = SandboxProcess {
        seq,
        pid,
        endpoint: Endpoint {
            ws: Authority::new(cfg.bind.to_string(), port),
            mcp: mcp_port.map(|p| Authority::new(cfg.bind.to_string(), p)),
            host_header: None,
            instance: format!("local-{seq}-pid-{pid}"),
        },
        dir,
        exited,
        suspended: AtomicBool::new(false),
    };
    if let Some(reason) = failure {
        sandbox.terminate().await;
        let tail: Vec<String> = stderr_tail
            .lock()
            .expect("stderr tail")
            .iter()
            .cloned()
            .collect();
        return Err(BackendError::Failed(format!(
            "{reason}: {}",
            tail.join(" | ")
        )));
    }
    tokio::spawn(async move {
        // Keep draining stdout so the server never blocks on a full pipe.
        while let Ok(Some(line)) = lines.next_line().await {
            debug!(sandbox = seq, "{line}");
        }
    });
    Ok(sandbox)
}
