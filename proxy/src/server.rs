//! Wiring: listeners, the accept loop, the reaper, and graceful shutdown.
//!
//! Shutdown order: stop accepting; let in-flight HTTP finish (SHUTDOWN_GRACE); give open WebSockets
//! their own grace (WS_SHUTDOWN_GRACE), then close them; stop the reaper; let the backend stop what it
//! owns (the local backend's child processes); stop the admin port last so probes see the drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::admin::{self, AdminState};
use crate::admission::Admission;
use crate::backend::Backend;
use crate::backend::isola::IsolaBackend;
use crate::backend::kars::KarsBackend;
use crate::backend::local::LocalBackend;
use crate::backend::sandbox_claim::SandboxClaimBackend;
use crate::backend::substrate::SubstrateBackend;
use crate::config::{BackendConfig, Config};
use crate::forward::{ForwardConfig, Forwarder};
use crate::identity::{Chain, Identity};
use crate::metrics::Metrics;
use crate::replicas::{Leadership, Shared};
use crate::session::{SessionConfig, SessionManager};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{var}: cannot listen on {addr}: {source}")]
    Bind {
        var: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Neither KUBECONFIG nor the in-cluster service account gave a usable client.
    #[error("no Kubernetes client (KUBECONFIG or in-cluster configuration): {0}")]
    Kube(#[source] kube::Error),
    /// `backend_for` was given no client for a backend that keeps its sandboxes in Kubernetes.
    #[error("BACKEND: the {0} backend needs a Kubernetes client")]
    NoKube(&'static str),
    #[error(transparent)]
    Identity(#[from] crate::identity::NoKubeClient),
    #[error("LEADER_ELECTION: the {0} backend cannot share sandboxes between replicas")]
    NotShareable(&'static str),
    #[error("LEADER_ELECTION: {0}")]
    Election(#[source] crate::replicas::leader::ElectionError),
}

/// A Kubernetes client from KUBECONFIG (or ~/.kube/config) or, in a pod, the service account: the
/// same code in and out of a cluster.
pub async fn kube_client() -> Result<kube::Client, StartError> {
    kube::Client::try_default().await.map_err(StartError::Kube)
}

/// Builds the backend the configuration names; cluster backends need `kube`.
pub fn backend_for(
    cfg: &Config,
    kube: Option<kube::Client>,
) -> Result<Arc<dyn Backend>, StartError> {
    let kube = || {
        kube.clone()
            .ok_or(StartError::NoKube(cfg.backend.kind().as_str()))
    };
    Ok(match &cfg.backend {
        BackendConfig::Local(s) => Arc::new(LocalBackend::new(s.clone())),
        BackendConfig::SandboxClaim(s) => Arc::new(SandboxClaimBackend::new(kube()?, s.clone())),
        BackendConfig::Isola(s) => Arc::new(IsolaBackend::new(kube()?, s.clone())),
        BackendConfig::KarsSandbox(s) => Arc::new(KarsBackend::new(kube()?, s.clone())),
        BackendConfig::Substrate(s) => Arc::new(SubstrateBackend::new(s.clone())),
    })
}

/// A running proxy.
pub struct Running {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub sessions: SessionManager,
    pub backend: Arc<dyn Backend>,
    pub metrics: Metrics,
    /// `None` when both admission limits are off.
    pub admission: Option<Arc<Admission>>,
    stop: CancellationToken,
    done: JoinHandle<()>,
}

impl Running {
    /// Begins a graceful shutdown (as SIGTERM does).
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until the shutdown has finished.
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Starts the proxy with the backend and identity the configuration names.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let kube = if cfg.needs_kube() {
        Some(kube_client().await?)
    } else {
        None
    };
    let backend = backend_for(&cfg, kube.clone())?;
    let identity: Arc<dyn Identity> = Arc::new(Chain::with_kube(&cfg, kube.clone())?);
    start_parts(cfg, backend, identity, kube).await
}

/// Starts the proxy with a given backend and identity (tests use scripted ones).
pub async fn start_with(
    cfg: Config,
    backend: Arc<dyn Backend>,
    identity: Arc<dyn Identity>,
) -> Result<Running, StartError> {
    start_parts(cfg, backend, identity, None).await
}

async fn start_parts(
    cfg: Config,
    backend: Arc<dyn Backend>,
    identity: Arc<dyn Identity>,
    kube: Option<kube::Client>,
) -> Result<Running, StartError> {
    let data = bind(cfg.listen_addr).map_err(|source| StartError::Bind {
        var: "LISTEN_ADDR",
        addr: cfg.listen_addr,
        source,
    })?;
    let admin_listener = bind(cfg.metrics_addr).map_err(|source| StartError::Bind {
        var: "METRICS_ADDR",
        addr: cfg.metrics_addr,
        source,
    })?;
    let data_addr = data.local_addr().expect("bound socket has an address");
    let admin_addr = admin_listener
        .local_addr()
        .expect("bound socket has an address");

    let metrics = Metrics::new();
    let sessions = SessionManager::new(
        backend.clone(),
        SessionConfig {
            ensure_timeout: cfg.ensure_timeout,
            wait_timeout: cfg.session_wait_timeout,
            idle_ttl: cfg.idle_ttl,
            delete_timeout: cfg.delete_timeout,
        },
        metrics.clone(),
    );
    let election_stop = CancellationToken::new();
    let election = match &cfg.replicas {
        None => {
            metrics.leader.set(1);
            None
        }
        Some(rc) => {
            let store = backend
                .activity_store()
                .ok_or(StartError::NotShareable(backend.name()))?;
            let client = match kube {
                Some(c) => c,
                None => kube_client().await?,
            };
            let (leadership, task) =
                Leadership::elect(client, &rc.election, metrics.clone(), election_stop.clone())
                    .await
                    .map_err(StartError::Election)?;
            info!(
                lease = %rc.election.lease_name,
                namespace = %rc.election.namespace,
                identity = %rc.election.identity,
                activity_interval = ?rc.activity_interval,
                "joined the leader election; activity is shared through the sandbox objects"
            );
            sessions.share(Shared {
                store,
                leadership,
                activity_interval: rc.activity_interval,
                replica: rc.election.identity.clone(),
            });
            Some(task)
        }
    };
    sessions.reconcile().await;
    let reaper = tokio::spawn(sessions.clone().run_reaper(cfg.idle_check_interval));
    let recorder = tokio::spawn(sessions.clone().run_recorder());

    let admission = cfg
        .admission
        .enabled()
        .then(|| Admission::new(cfg.admission.clone(), sessions.clone(), metrics.clone()));
    let forwarder = Forwarder::new(
        identity.clone(),
        sessions.clone(),
        admission.clone(),
        metrics.clone(),
        ForwardConfig::from(&cfg),
    );
    let stop = CancellationToken::new();
    let http_conns = TaskTracker::new();

    let accept = tokio::spawn(accept_loop(
        data,
        forwarder.clone(),
        stop.clone(),
        http_conns.clone(),
        cfg.read_header_timeout,
        cfg.max_header_bytes,
    ));

    let admin_stop = CancellationToken::new();
    let admin_app = admin::router(AdminState {
        sessions: sessions.clone(),
        identity,
        metrics: metrics.clone(),
        token: cfg.session_api_token.clone(),
        admission: admission.clone(),
    });
    let admin_task = {
        let admin_stop = admin_stop.clone();
        tokio::spawn(async move {
            let r = axum::serve(admin_listener, admin_app)
                .with_graceful_shutdown(async move { admin_stop.cancelled().await })
                .await;
            if let Err(e) = r {
                warn!(error = %e, "admin server failed");
            }
        })
    };
    info!(data = %data_addr, admin = %admin_addr, backend = backend.name(), "listening");

    let running_admission = admission.clone();
    let done = {
        let stop = stop.clone();
        let sessions = sessions.clone();
        let backend = backend.clone();
        let (grace, ws_grace) = (cfg.shutdown_grace, cfg.ws_shutdown_grace);
        tokio::spawn(async move {
            stop.cancelled().await;
            info!("shutting down");
            let _ = accept.await;
            if let Some(a) = &admission {
                a.close();
            }
            http_conns.close();
            if tokio::time::timeout(grace, http_conns.wait())
                .await
                .is_err()
            {
                warn!(grace = ?grace, "in-flight HTTP requests did not finish in time");
            }
            let ws = forwarder.websockets();
            ws.close();
            if !ws.is_empty() {
                info!(open = ws.len(), grace = ?ws_grace, "waiting for open WebSockets");
            }
            if tokio::time::timeout(ws_grace, ws.wait()).await.is_err() {
                warn!(
                    open = ws.len(),
                    "closing WebSockets still open after the grace period"
                );
                forwarder.close_websockets();
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.wait()).await;
            }
            sessions.shutdown();
            let _ = reaper.await;
            let _ = recorder.await;
            election_stop.cancel();
            if let Some(task) = election {
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
            backend.shutdown().await;
            admin_stop.cancel();
            let _ = admin_task.await;
            info!("stopped");
        })
    };

    Ok(Running {
        data_addr,
        admin_addr,
        sessions,
        backend,
        metrics,
        admission: running_admission,
        stop,
        done,
    })
}

/// Binds a listener. The IPv6 wildcard (`[::]:port`, and `:port`, as in Go) listens on both
/// families (IPV6_V6ONLY off, whatever the system default), so that IPv4 and IPv6 callers of a
/// dual-stack cluster reach the proxy; where the kernel has no IPv6 it falls back to `0.0.0.0`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let dual = matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified());
    let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) if dual && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            warn!(addr = %addr, "no IPv6 on this host; listening on IPv4 only");
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            return bind(v4);
        }
        Err(e) => return Err(e),
    };
    if dual {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    forwarder: Arc<Forwarder>,
    stop: CancellationToken,
    conns: TaskTracker,
    read_header_timeout: Duration,
    max_header_bytes: usize,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let forwarder = forwarder.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| forwarder.clone().handle(req, peer));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(read_header_timeout)
                .max_buf_size(max_header_bytes.max(8192))
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                debug!(peer = %peer, error = %e, "client connection ended with an error");
            }
        });
    }
}
