//! The local backend: real Chromium sandboxes as child processes on this machine.
//!
//! A warm pool of started sandboxes makes a cold ensure a matter of binding one to the id; the pool
//! refills in the background. Starts run in tasks of their own, so an ensure that is cancelled never
//! leaks a half-started browser: the sandbox goes to the pool instead.

mod process;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tracing::{info, warn};

pub use process::{SandboxProcess, process_tree};

use super::{Backend, BackendError, Endpoint};

/// Settings of the `local` backend (LOCAL_*).
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub sandbox_server: PathBuf,
    pub node: PathBuf,
    pub chromium: PathBuf,
    pub chromium_args: Vec<String>,
    pub warm_pool: usize,
    pub max_sandboxes: usize,
    pub mcp: bool,
    pub bind: IpAddr,
    pub tmp_dir: PathBuf,
    pub start_timeout: Duration,
}

impl LocalSettings {
    /// Longest LOCAL_TMP_DIR: the sandbox directory (`/<pid>-<seq>`, up to 16 bytes), Playwright's
    /// profile directory and `SingletonSocket` (about 54 bytes) must fit in a 107-byte socket path.
    pub const MAX_TMP_DIR_BYTES: usize = 37;
}

#[derive(Default)]
struct Pool {
    warm: Vec<Arc<SandboxProcess>>,
    assigned: HashMap<String, Arc<SandboxProcess>>,
    starting: usize,
}

impl Pool {
    fn total(&self) -> usize {
        self.warm.len() + self.assigned.len() + self.starting
    }
}

struct Shared {
    cfg: LocalSettings,
    pool: Mutex<Pool>,
    seq: AtomicU64,
    closing: AtomicBool,
}

#[derive(Clone)]
pub struct LocalBackend(Arc<Shared>);

impl LocalBackend {
    pub fn new(mut cfg: LocalSettings) -> Self {
        // Sandboxes run in their own directories, so relative paths must be resolved now.
        if let Ok(p) = std::fs::canonicalize(&cfg.sandbox_server) {
            cfg.sandbox_server = p;
        }
        let b = Self(Arc::new(Shared {
            cfg,
            pool: Mutex::new(Pool::default()),
            seq: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }));
        b.refill();
        b
    }

    /// Sandboxes ready in the pool right now.
    pub fn warm(&self) -> usize {
        self.0.pool.lock().expect("pool lock").warm.len()
    }

    /// Waits until the pool holds `n` warm sandboxes (the demo and benchmarks start from a full pool).
    pub async fn wait_warm(&self, n: usize, budget: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + budget;
        while tokio::time::Instant::now() < deadline {
            if self.warm() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The process behind `id`, for tests and the session API.
    pub fn sandbox(&self, id: &str) -> Option<Arc<SandboxProcess>> {
        self.0
            .pool
            .lock()
            .expect("pool lock")
            .assigned
            .get(id)
            .cloned()
    }

    /// Starts sandboxes until the pool is full again (bounded by LOCAL_MAX_SANDBOXES).
    fn refill(&self) {
        loop {
            {
                let mut pool = self.0.pool.lock().expect("pool lock");
                if self.0.closing.load(Ordering::Acquire)
                    || pool.warm.len() + pool.starting >= self.0.cfg.warm_pool
                    || pool.total() >= self.0.cfg.max_sandboxes
                {
                    return;
                }
                pool.starting += 1;
            }
            self.spawn_start(None);
        }
    }

    /// Starts a sandbox in its own task. With `deliver`, the sandbox goes to whoever waits on it; if
    /// nobody does any more (the ensure was cancelled), or without `deliver`, it joins the warm pool.
    fn spawn_start(
        &self,
        deliver: Option<oneshot::Sender<Result<Arc<SandboxProcess>, BackendError>>>,
    ) {
        let this = self.clone();
        let seq = self.0.seq.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(async move {
            let started = process::start(&this.0.cfg, seq).await.map(Arc::new);
            if let Err(e) = &started {
                warn!(sandbox = seq, error = %e, "sandbox failed to start");
            }
            let leftover = match deliver {
                Some(tx) => match tx.send(started) {
                    Ok(()) => None,
                    Err(unclaimed) => unclaimed.ok(),
                },
                None => started.ok(),
            };
            let leftover = match leftover {
                Some(sb) if this.0.closing.load(Ordering::Acquire) => {
                    // Stop it before giving the slot back, so shutdown's wait covers it.
                    sb.terminate().await;
                    None
                }
                other => other,
            };
            let mut pool = this.0.pool.lock().expect("pool lock");
            pool.starting -= 1;
            pool.warm.extend(leftover);
        });
    }

    fn endpoint_of(sb: &SandboxProcess) -> Endpoint {
        sb.endpoint.clone()
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        let mut dead = Vec::new();
        let rx = {
            let mut pool = self.0.pool.lock().expect("pool lock");
            if let Some(sb) = pool.assigned.get(id).cloned() {
                if sb.alive() {
                    if sb.suspended() {
                        sb.resume();
                    }
                    return Ok(Self::endpoint_of(&sb));
                }
                warn!(id, sandbox = %sb.endpoint.instance, "sandbox process is gone; replacing it");
                pool.assigned.remove(id);
                dead.push(sb);
            }
            let mut picked = None;
            while let Some(sb) = pool.warm.pop() {
                if sb.alive() {
                    picked = Some(sb);
                    break;
                }
                dead.push(sb);
            }
            match picked {
                Some(sb) => {
                    pool.assigned.insert(id.to_string(), sb.clone());
                    drop(pool);
                    info!(id, sandbox = %sb.endpoint.instance, "bound a warm sandbox");
                    for d in dead {
                        tokio::spawn(async move { d.terminate().await });
                    }
                    self.refill();
                    return Ok(Self::endpoint_of(&sb));
                }
                None => {
                    if pool.total() >= self.0.cfg.max_sandboxes {
                        return Err(BackendError::Capacity(format!(
                            "all {} local sandboxes are in use (LOCAL_MAX_SANDBOXES={}); retry later",
                            self.0.cfg.max_sandboxes, self.0.cfg.max_sandboxes
                        )));
                    }
                    pool.starting += 1;
                    let (tx, rx) = oneshot::channel();
                    drop(pool);
                    self.spawn_start(Some(tx));
                    rx
                }
            }
        };
        for d in dead {
            tokio::spawn(async move { d.terminate().await });
        }
        let sb = rx
            .await
            .map_err(|_| BackendError::Failed("sandbox start task ended".into()))??;
        {
            let mut pool = self.0.pool.lock().expect("pool lock");
            if let Some(existing) = pool.assigned.get(id).filter(|s| s.alive()).cloned() {
                // Someone bound this id meanwhile (a delete raced a request); keep theirs.
                pool.warm.push(sb);
                return Ok(Self::endpoint_of(&existing));
            }
            pool.assigned.insert(id.to_string(), sb.clone());
        }
        info!(id, sandbox = %sb.endpoint.instance, "started a sandbox (cold)");
        self.refill();
        Ok(Self::endpoint_of(&sb))
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        let sb = self.0.pool.lock().expect("pool lock").assigned.remove(id);
        if let Some(sb) = sb {
            sb.terminate().await;
            info!(id, sandbox = %sb.endpoint.instance, "deleted sandbox");
        }
        self.refill();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, BackendError> {
        let pool = self.0.pool.lock().expect("pool lock");
        Ok(pool
            .assigned
            .iter()
            .filter(|(_, s)| s.alive())
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn suspend(&self, id: &str) -> Result<(), BackendError> {
        let sb = self
            .sandbox(id)
            .ok_or_else(|| BackendError::NotFound(id.into()))?;
        sb.suspend()
    }

    async fn resume(&self, id: &str) -> Result<(), BackendError> {
        let sb = self
            .sandbox(id)
            .ok_or_else(|| BackendError::NotFound(id.into()))?;
        sb.resume();
        Ok(())
    }

    async fn shutdown(&self) {
        self.0.closing.store(true, Ordering::Release);
        let all: Vec<Arc<SandboxProcess>> = {
            let mut pool = self.0.pool.lock().expect("pool lock");
            let mut v: Vec<_> = pool.warm.drain(..).collect();
            v.extend(pool.assigned.drain().map(|(_, s)| s));
            v
        };
        info!(count = all.len(), "stopping local sandboxes");
        futures::future::join_all(all.iter().map(|s| s.terminate())).await;
        // Starts still under way stop their sandbox themselves once they see `closing`.
        let deadline = tokio::time::Instant::now() + self.0.cfg.start_timeout;
        while self.0.pool.lock().expect("pool lock").starting > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
