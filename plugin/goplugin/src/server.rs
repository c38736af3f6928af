//! The go-plugin netrpc server: one yamux session on the host's connection, the `Control` and
//! `Dispenser` services on stream 1, and the MuxBroker exchange that gives each dispensed plugin
//! its own stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_yamux::{Config, Session, StreamHandle};

use crate::gob::{GoType, Limits, Value};
use crate::handshake::{self, HandshakeConfig, HandshakeError};
use crate::rpc::{self, CallResult, Reply, Router, Service};

/// How long a broker stream may take to name its id (go-plugin's server waits 5 s).
const BROKER_ID_TIMEOUT: Duration = Duration::from_secs(5);

/// The plugins a binary offers, by the name the host dispenses them under.
#[derive(Clone)]
pub struct ServeConfig {
    pub handshake: HandshakeConfig,
    pub plugins: HashMap<String, Arc<dyn Service>>,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("accepting the host's connection failed: {0}")]
    Accept(std::io::Error),
}

/// Why serving stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The host asked with `Control.Quit`.
    Quit,
    /// The host closed the connection.
    SessionEnded,
}

/// Shared state of one session: broker ids handed out by `Dispense` and not yet claimed.
struct Broker {
    next_id: AtomicU32,
    pending: Mutex<HashMap<u32, Arc<dyn Service>>>,
}

struct Control {
    quit: CancellationToken,
}

impl Service for Control {
    fn call(
        self: Arc<Self>,
        method: &str,
        full: &str,
        _body: Value,
    ) -> BoxFuture<'static, CallResult> {
        let result = match method {
            "Ping" => Ok(Reply::empty_struct()),
            "Quit" => {
                let (tx, rx) = oneshot::channel();
                let quit = self.quit.clone();
                tokio::spawn(async move {
                    let _ = rx.await;
                    // Give the session a moment to put the reply on the socket.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    quit.cancel();
                });
                let mut r = Reply::empty_struct();
                r.written = Some(tx);
                Ok(r)
            }
            _ => Err(rpc::unknown_method(full)),
        };
        Box::pin(async move { result })
    }
}

struct Dispenser {
    plugins: HashMap<String, Arc<dyn Service>>,
    broker: Arc<Broker>,
}

impl Service for Dispenser {
    fn call(
        self: Arc<Self>,
        method: &str,
        full: &str,
        body: Value,
    ) -> BoxFuture<'static, CallResult> {
        let result = if method != "Dispense" {
            Err(rpc::unknown_method(full))
        } else {
            let name = body.as_str().unwrap_or_default().to_string();
            match self.plugins.get(&name) {
                Some(p) => {
                    let id = self.broker.next_id.fetch_add(1, Ordering::Relaxed);
                    self.broker
                        .pending
                        .lock()
                        .expect("broker lock")
                        .insert(id, p.clone());
                    tracing::debug!(plugin = %name, id, "dispensed");
                    Ok(Reply::new(GoType::Uint, Value::Uint(id as u64)))
                }
                None => Err(format!("unknown plugin type: {name}")),
            }
        };
        Box::pin(async move { result })
    }
}

/// Checks the cookie, listens, announces itself on stdout and serves the first connection the
/// host makes until it quits or goes away. The socket file is removed on return.
pub async fn serve(cfg: ServeConfig) -> Result<Stopped, ServeError> {
    handshake::check_cookie(&cfg.handshake)?;
    let listener = handshake::listen()?;
    handshake::announce(&cfg.handshake, &listener.path)?;
    tracing::debug!(socket = %listener.path.display(), "plugin listening");
    ignore_sigint();
    let (conn, _) = listener
        .listener
        .accept()
        .await
        .map_err(ServeError::Accept)?;
    let stopped = serve_connection(conn, &cfg).await;
    drop(listener);
    Ok(stopped)
}

/// Go plugins ignore SIGINT (a terminal's Ctrl-C reaches the whole process group).
fn ignore_sigint() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                tracing::trace!("ignoring SIGINT");
            }
        });
    }
}

/// Runs the yamux server side of one host connection.
pub async fn serve_connection<T>(conn: T, cfg: &ServeConfig) -> Stopped
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let quit = CancellationToken::new();
    let broker = Arc::new(Broker {
        next_id: AtomicU32::new(1),
        pending: Mutex::new(HashMap::new()),
    });
    let control = Router::new()
        .register("Control", Arc::new(Control { quit: quit.clone() }))
        .register(
            "Dispenser",
            Arc::new(Dispenser {
                plugins: cfg.plugins.clone(),
                broker: broker.clone(),
            }),
        );
    let mut session = Session::new_server(conn, Config::default());
    loop {
        tokio::select! {
            _ = quit.cancelled() => return Stopped::Quit,
            next = session.next() => match next {
                Some(Ok(stream)) => on_stream(stream, &control, &broker, cfg.limits),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "yamux session error");
                    return Stopped::SessionEnded;
                }
                None => return Stopped::SessionEnded,
            },
        }
    }
}

fn on_stream(stream: StreamHandle, control: &Router, broker: &Arc<Broker>, limits: Limits) {
    let id = stream.id();
    match id {
        1 => {
            tokio::spawn(rpc::serve(stream, control.clone(), limits));
        }
        3 | 5 => {
            // The host's stdout/stderr sinks: never expect data, but keep draining.
            tokio::spawn(drain(stream));
        }
        _ => {
            tokio::spawn(serve_broker_stream(stream, broker.clone(), limits));
        }
    }
}

async fn drain(mut stream: StreamHandle) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// The MuxBroker exchange: read the 4-byte little-endian id, echo it, then serve the plugin.
async fn serve_broker_stream(mut stream: StreamHandle, broker: Arc<Broker>, limits: Limits) {
    let mut id = [0u8; 4];
    match tokio::time::timeout(BROKER_ID_TIMEOUT, stream.read_exact(&mut id)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "broker stream closed before its id");
            return;
        }
        Err(_) => {
            tracing::warn!(
                stream = stream.id(),
                "broker stream sent no id in time; closing it"
            );
            let _ = stream.shutdown().await;
            return;
        }
    }
    let n = u32::from_le_bytes(id);
    let service = broker.pending.lock().expect("broker lock").remove(&n);
    let Some(service) = service else {
        tracing::warn!(
            id = n,
            "broker stream for an id that was not dispensed; closing it"
        );
        let _ = stream.shutdown().await;
        return;
    };
    if let Err(e) = stream.write_all(&id).await {
        tracing::debug!(error = %e, "broker ack failed");
        return;
    }
    let _ = stream.flush().await;
    rpc::serve(stream, Router::new().register("Plugin", service), limits).await;
}
