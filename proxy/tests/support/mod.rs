//! Shared pieces of the proxy's integration tests: a scriptable backend for session semantics, and
//! configuration helpers. The data path is always real sockets.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sandcanary_proxy::backend::{Authority, Backend, BackendError, Endpoint};
use sandcanary_proxy::config::{Config, RawConfig, RawIdentity, RawLocal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Ensure(String),
    EnsureDone(String),
    Delete(String),
    DeleteDone(String),
    List,
    Suspend(String),
    Resume(String),
}

/// What the next `ensure` does.
#[derive(Clone)]
pub enum Step {
    Ok(Endpoint),
    Err(BackendError),
    /// Waits, then succeeds.
    Slow(Duration, Endpoint),
}

#[derive(Default)]
pub struct Script {
    pub ensure: VecDeque<Step>,
    /// Used when `ensure` is empty.
    pub default_endpoint: Option<Endpoint>,
    pub delete_delay: Duration,
    pub delete_fail: usize,
    /// Ids whose delete never returns.
    pub delete_hang: Vec<String>,
    pub list: Option<Result<Vec<String>, BackendError>>,
}

/// A backend whose every call is logged and whose answers are scripted.
#[derive(Default)]
pub struct FakeBackend {
    pub script: Mutex<Script>,
    pub calls: Mutex<Vec<Call>>,
    pub ensures: AtomicUsize,
    pub cancelled: Arc<AtomicUsize>,
    pub deletes: AtomicUsize,
}

struct CancelGuard(Arc<AtomicUsize>, bool);
impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl FakeBackend {
    pub fn new(default: Endpoint) -> Arc<Self> {
        let b = Self::default();
        b.script.lock().unwrap().default_endpoint = Some(default);
        Arc::new(b)
    }

    pub fn push(&self, step: Step) {
        self.script.lock().unwrap().ensure.push_back(step);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self, f: impl Fn(&Call) -> bool) -> usize {
        self.calls().iter().filter(|c| f(c)).count()
    }

    fn log(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        self.ensures.fetch_add(1, Ordering::SeqCst);
        self.log(Call::Ensure(id.into()));
        let step = {
            let mut s = self.script.lock().unwrap();
            s.ensure
                .pop_front()
                .unwrap_or_else(|| Step::Ok(s.default_endpoint.clone().expect("default endpoint")))
        };
        let mut guard = CancelGuard(self.cancelled.clone(), false);
        let r = match step {
            Step::Ok(e) => Ok(e),
            Step::Err(e) => Err(e),
            Step::Slow(d, e) => {
                tokio::time::sleep(d).await;
                Ok(e)
            }
        };
        guard.1 = true;
        self.log(Call::EnsureDone(id.into()));
        r
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.log(Call::Delete(id.into()));
        let (delay, fail, hang) = {
            let mut s = self.script.lock().unwrap();
            let hang = s.delete_hang.iter().any(|h| h == id);
            // A hanging delete never answers, so it uses up no scripted failure.
            let fail = !hang && s.delete_fail > 0;
            if fail {
                s.delete_fail -= 1;
            }
            (s.delete_delay, fail, hang)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(delay).await;
        self.log(Call::DeleteDone(id.into()));
        if fail {
            Err(BackendError::Failed("scripted delete failure".into()))
        } else {
            Ok(())
        }
    }

    async fn list(&self) -> Result<Vec<String>, BackendError> {
        self.log(Call::List);
        self.script
            .lock()
            .unwrap()
            .list
            .clone()
            .unwrap_or(Ok(vec![]))
    }

    async fn suspend(&self, id: &str) -> Result<(), BackendError> {
        self.log(Call::Suspend(id.into()));
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<(), BackendError> {
        self.log(Call::Resume(id.into()));
        Ok(())
    }
}

pub fn endpoint(ws: SocketAddr, mcp: Option<SocketAddr>, instance: &str) -> Endpoint {
    Endpoint {
        ws: Authority::new(ws.ip().to_string(), ws.port()),
        mcp: mcp.map(|m| Authority::new(m.ip().to_string(), m.port())),
        host_header: None,
        instance: instance.into(),
    }
}

pub fn sandbox_server() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/sandbox/server.js").to_string()
}

/// A configuration for an in-process proxy on ephemeral loopback ports.
pub fn raw_config() -> RawConfig {
    RawConfig {
        listen_addr: Some("127.0.0.1:0".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        session_api_token: Some(SESSION_TOKEN.into()),
        log_format: Some("text".into()),
        identity: RawIdentity {
            identity_static: Some(
                (2..=9)
                    .map(|i| format!("127.0.0.{i}=tenant-{i}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ..Default::default()
        },
        local: RawLocal {
            local_sandbox_server: Some(sandbox_server()),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub const SESSION_TOKEN: &str = "session-api-token-for-tests";
pub const IDENTITY_TOKEN: &str = "identity-token-for-tests-0123";

pub fn config(raw: RawConfig) -> Config {
    Config::from_raw(raw).expect("test configuration is valid")
}

/// Opens a TCP connection from a chosen loopback source address (a "pod").
pub async fn connect_from(source: &str, to: SocketAddr) -> tokio::net::TcpStream {
    sandcanary_testkit::connect_from(source, to).await.unwrap()
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A page server for sandboxes to load: `/` answers a small page titled "sandcanary fixture".
pub async fn fixture_server() -> SocketAddr {
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let (status, body) = if req.uri().path() == "/" {
                        (
                            200,
                            "<!doctype html><html><head><title>sandcanary fixture</title></head><body>Hostname: fixture</body></html>",
                        )
                    } else {
                        (404, "not found")
                    };
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", "text/html")
                            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The result line of test/playwright/client.js or mcp-client.js.
#[derive(Debug)]
pub struct NodeResult {
    pub code: i32,
    pub result: Option<serde_json::Value>,
    pub stderr: String,
}

/// Runs one of the official-client scripts in test/playwright from a chosen source address.
pub async fn run_node(script: &str, source: &str, env: &[(&str, String)]) -> NodeResult {
    let dir = repo_root().join("test/playwright");
    let mut cmd = tokio::process::Command::new("node");
    cmd.current_dir(&dir)
        .arg("-r")
        .arg("./bind-source.js")
        .arg(script)
        .env("SOURCE_IP", source)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .expect("node client finished in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("RESULT is JSON"));
    NodeResult {
        code: out.status.code().unwrap_or(-1),
        result,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
