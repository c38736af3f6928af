//! A JSON-over-WebSocket call/response socket shared by the Playwright and CDP clients.
//!
//! Both protocols send one JSON object per text frame, match responses to calls by a numeric `id`
//! and interleave events without an id. The socket owns the reader task, so every waiting call is
//! failed with a clear error when the peer closes, sends garbage or never answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use futures::stream::{SplitSink, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{Mutex as AsyncMutex, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Failures of a call over the socket, shared by both protocol clients.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The URL or a header could not be turned into an upgrade request.
    #[error("invalid request for {url}: {detail}")]
    InvalidRequest { url: String, detail: String },
    /// The server answered the upgrade with 428: its Playwright version differs from ours.
    #[error(
        "Playwright version mismatch: server rejected client version {client_version} with HTTP 428: {body}"
    )]
    VersionMismatch {
        client_version: String,
        body: String,
    },
    /// The upgrade got another non-101 answer.
    #[error("WebSocket upgrade to {url} rejected with HTTP {status}: {body}")]
    UpgradeRejected {
        url: String,
        status: u16,
        body: String,
    },
    /// TCP or WebSocket failure before the socket was open.
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    /// No answer in time.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// The connection ended while the call was waiting (or before it was sent).
    #[error("connection closed during {what}: {reason}")]
    Closed { what: String, reason: String },
    /// The server sent something that is not a protocol message; the connection is abandoned.
    #[error("malformed message from server: {detail}")]
    Malformed { detail: String },
    /// The server answered the call with an error.
    #[error("server error in {method}: {message}")]
    Server { method: String, message: String },
}

/// Decides what an incoming message means for a particular protocol.
pub trait Router: Send + Sync + 'static {
    /// Turns a response (a message with an id) into the call's result or the server's error text.
    fn response(&self, msg: &Value) -> Result<Value, String>;
    /// Receives every message without an id.
    fn event(&self, msg: Value);
    /// Called once when the connection ends, for routers that have waiters of their own.
    fn closed(&self, _reason: &str) {}
}

struct Pending {
    method: String,
    reply: oneshot::Sender<Result<Value, WireError>>,
}

#[derive(Default)]
struct Shared {
    pending: HashMap<u64, Pending>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
}

/// An open socket: send calls, await their responses.
pub struct RpcSocket {
    sink: AsyncMutex<SplitSink<Ws, Message>>,
    shared: Arc<Mutex<Shared>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

/// Everything the upgrade request needs.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The Playwright client version announced in `User-Agent`, reported in a 428 error.
    pub client_version: Option<String>,
}

impl RpcSocket {
    /// Opens the WebSocket within `timeout` and starts routing its messages.
    pub async fn open(
        req: &UpgradeRequest,
        timeout: Duration,
        router: Arc<dyn Router>,
    ) -> Result<Self, WireError> {
        let invalid = |detail: String| WireError::InvalidRequest {
            url: req.url.clone(),
            detail,
        };
        let mut request = req
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| invalid(e.to_string()))?;
        for (name, value) in &req.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (ws, _response) = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                return Err(WireError::Timeout {
                    what: format!("WebSocket connect to {}", req.url),
                    after: timeout,
                });
            }
            Ok(Err(e)) => return Err(upgrade_error(req, e)),
            Ok(Ok(ok)) => ok,
        };
        let (sink, mut stream) = ws.split();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            let reason = loop {
                let msg = match stream.next().await {
                    None => break "the server closed the connection".to_string(),
                    Some(Err(e)) => break format!("WebSocket error: {e}"),
                    Some(Ok(m)) => m,
                };
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        break fail_malformed(&reader_shared, "binary frame".into());
                    }
                    Message::Close(frame) => {
                        break match frame {
                            Some(f) => format!(
                                "the server closed the connection ({} {})",
                                f.code, f.reason
                            ),
                            None => "the server closed the connection".to_string(),
                        };
                    }
                    _ => continue,
                };
                let value: Value = match serde_json::from_str(text.as_str()) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(_) => break fail_malformed(&reader_shared, "not a JSON object".into()),
                    Err(e) => break fail_malformed(&reader_shared, format!("invalid JSON: {e}")),
                };
                match value.get("id") {
                    None => router.event(value),
                    Some(id) => {
                        let Some(id) = id.as_u64() else {
                            break fail_malformed(&reader_shared, format!("unexpected id {id}"));
                        };
                        let pending = reader_shared.lock().expect("lock").pending.remove(&id);
                        let Some(p) = pending else {
                            tracing::debug!(id, "response for an unknown call ignored");
                            continue;
                        };
                        let result = router
                            .response(&value)
                            .map_err(|message| WireError::Server {
                                method: p.method.clone(),
                                message,
                            });
                        let _ = p.reply.send(result);
                    }
                }
            };
            router.closed(&reason);
            let mut shared = reader_shared.lock().expect("lock");
            for (_, p) in shared.pending.drain() {
                let _ = p.reply.send(Err(WireError::Closed {
                    what: p.method,
                    reason: reason.clone(),
                }));
            }
            shared.closed.get_or_insert(reason);
        });
        Ok(Self {
            sink: AsyncMutex::new(sink),
            shared,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// Sends a message built by `build` (given the fresh id) and waits up to `timeout` for its response.
    pub async fn call(
        &self,
        method: &str,
        timeout: Duration,
        build: impl FnOnce(u64) -> Value,
    ) -> Result<Value, WireError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut shared = self.shared.lock().expect("lock");
            if let Some(reason) = &shared.closed {
                return Err(WireError::Closed {
                    what: method.to_string(),
                    reason: reason.clone(),
                });
            }
            shared.pending.insert(
                id,
                Pending {
                    method: method.to_string(),
                    reply: tx,
                },
            );
        }
        let text = build(id).to_string();
        let sent = self
            .sink
            .lock()
            .await
            .send(Message::Text(text.into()))
            .await;
        if let Err(e) = sent {
            self.shared.lock().expect("lock").pending.remove(&id);
            return Err(WireError::Closed {
                what: method.to_string(),
                reason: format!("send failed: {e}"),
            });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WireError::Closed {
                what: method.to_string(),
                reason: "the reader stopped".into(),
            }),
            Err(_) => {
                self.shared.lock().expect("lock").pending.remove(&id);
                Err(WireError::Timeout {
                    what: method.to_string(),
                    after: timeout,
                })
            }
        }
    }

    /// Closes the socket politely, without waiting long for the server's close frame.
    pub async fn close(&self) {
        let mut sink = self.sink.lock().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    }
}

impl Drop for RpcSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn fail_malformed(shared: &Mutex<Shared>, detail: String) -> String {
    tracing::warn!(%detail, "malformed message from server");
    let mut shared = shared.lock().expect("lock");
    let reason = format!("malformed message from server: {detail}");
    for (_, p) in shared.pending.drain() {
        let _ = p.reply.send(Err(WireError::Malformed {
            detail: detail.clone(),
        }));
    }
    shared.closed = Some(reason.clone());
    reason
}

fn upgrade_error(req: &UpgradeRequest, e: tokio_tungstenite::tungstenite::Error) -> WireError {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim().to_string())
                .unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            if status == 428 {
                WireError::VersionMismatch {
                    client_version: req
                        .client_version
                        .clone()
                        .unwrap_or_else(|| "(none)".into()),
                    body,
                }
            } else {
                WireError::UpgradeRejected {
                    url: req.url.clone(),
                    status,
                    body,
                }
            }
        }
        other => WireError::Connect {
            url: req.url.clone(),
            detail: other.to_string(),
        },
    }
}
