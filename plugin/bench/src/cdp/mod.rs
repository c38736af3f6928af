//! A native Chrome DevTools Protocol client: the dependency-light path to a sandbox that exposes
//! Chromium's DevTools endpoint. A page is a browser context + target + flat session, a navigation is
//! `Page.navigate` until `Page.loadEventFired` (the lifecycle point Playwright calls `load`).

mod browser;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use crate::wire::WireError;
use crate::wire::{Router, RpcSocket, UpgradeRequest};
pub use browser::{ChromiumCommand, ChromiumProcess};

#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("CDP protocol error in {method}: {detail}")]
    Protocol { method: String, detail: String },
    #[error("navigation to {url} failed: {error}")]
    Navigation { url: String, error: String },
    #[error("DevTools discovery at {url}: {detail}")]
    Discovery { url: String, detail: String },
}

struct Waiter {
    method: &'static str,
    session: String,
    reply: oneshot::Sender<Value>,
}

#[derive(Default)]
struct CdpState {
    waiters: Vec<Waiter>,
    /// loaderId -> HTTP status of the document response.
    document_status: HashMap<String, u16>,
}

struct CdpRouter {
    state: Arc<Mutex<CdpState>>,
}

impl Router for CdpRouter {
    fn response(&self, msg: &Value) -> Result<Value, String> {
        if let Some(err) = msg.get("error") {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = err.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(format!("{message} (code {code})"));
        }
        Ok(msg.get("result").cloned().unwrap_or(Value::Null))
    }

    fn event(&self, msg: Value) {
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let session = msg.get("sessionId").and_then(Value::as_str).unwrap_or("");
        let mut state = self.state.lock().expect("lock");
        if method == "Network.responseReceived"
            && msg.pointer("/params/type").and_then(Value::as_str) == Some("Document")
            && let (Some(loader), Some(status)) = (
                msg.pointer("/params/loaderId").and_then(Value::as_str),
                msg.pointer("/params/response/status")
                    .and_then(Value::as_f64),
            )
        {
            state
                .document_status
                .insert(loader.to_string(), status as u16);
        }
        if let Some(i) = state
            .waiters
            .iter()
            .position(|w| w.method == method && w.session == session)
        {
            let w = state.waiters.remove(i);
            let _ = w
                .reply
                .send(msg.get("params").cloned().unwrap_or(Value::Null));
        }
    }

    fn closed(&self, _reason: &str) {
        // Dropping the senders wakes every waiter with an error.
        self.state.lock().expect("lock").waiters.clear();
    }
}

/// A page opened through CDP.
#[derive(Debug, Clone)]
pub struct CdpPage {
    pub context_id: String,
    pub target_id: String,
    pub session_id: String,
}

/// A connected CDP browser session.
pub struct CdpClient {
    socket: RpcSocket,
    state: Arc<Mutex<CdpState>>,
    call_timeout: Duration,
}

impl CdpClient {
    /// Connects to a browser WebSocket URL (`ws://.../devtools/browser/<id>`).
    pub async fn connect(ws_url: &str, timeout: Duration) -> Result<Self, CdpError> {
        let state = Arc::new(Mutex::new(CdpState::default()));
        let router = Arc::new(CdpRouter {
            state: state.clone(),
        });
        let req = UpgradeRequest {
            url: ws_url.to_string(),
            headers: Vec::new(),
            client_version: None,
        };
        let socket = RpcSocket::open(&req, timeout, router).await?;
        Ok(Self {
            socket,
            state,
            call_timeout: Duration::from_secs(60),
        })
    }

    /// Finds the browser WebSocket URL of an `http://host:port` DevTools endpoint. Chromium only
    /// answers a loopback `Host`, so `localhost` is sent and the returned URL is pointed back at the
    /// address we used.
    pub async fn discover(http_url: &str) -> Result<String, CdpError> {
        let base = url::Url::parse(http_url).map_err(|e| CdpError::Discovery {
            url: http_url.into(),
            detail: e.to_string(),
        })?;
        let err = |detail: String| CdpError::Discovery {
            url: http_url.into(),
            detail,
        };
        let version = base.join("/json/version").map_err(|e| err(e.to_string()))?;
        let body: Value = reqwest::Client::new()
            .get(version)
            .header("host", "localhost")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| err(e.to_string()))?
            .json()
            .await
            .map_err(|e| err(e.to_string()))?;
        let ws = body
            .get("webSocketDebuggerUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no webSocketDebuggerUrl".into()))?;
        let mut ws = url::Url::parse(ws).map_err(|e| err(e.to_string()))?;
        ws.set_host(base.host_str())
            .map_err(|e| err(e.to_string()))?;
        ws.set_port(base.port_or_known_default())
            .map_err(|()| err("cannot set port".into()))?;
        Ok(ws.to_string())
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        session: Option<&str>,
    ) -> Result<Value, CdpError> {
        Ok(self
            .socket
            .call(method, self.call_timeout, |id| {
                let mut msg = json!({"id": id, "method": method, "params": params});
                if let Some(s) = session {
                    msg["sessionId"] = json!(s);
                }
                msg
            })
            .await?)
    }

    /// A fresh context with one page, attached and with Page and Network events on.
    pub async fn new_page(&self) -> Result<CdpPage, CdpError> {
        let ctx = self
            .call(
                "Target.createBrowserContext",
                json!({"disposeOnDetach": true}),
                None,
            )
            .await?;
        let context_id = str_at(&ctx, "browserContextId", "Target.createBrowserContext")?;
        let target = self
            .call(
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context_id}),
                None,
            )
            .await?;
        let target_id = str_at(&target, "targetId", "Target.createTarget")?;
        let attached = self
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
                None,
            )
            .await?;
        let session_id = str_at(&attached, "sessionId", "Target.attachToTarget")?;
        self.call("Page.enable", json!({}), Some(&session_id))
            .await?;
        self.call("Network.enable", json!({}), Some(&session_id))
            .await?;
        Ok(CdpPage {
            context_id,
            target_id,
            session_id,
        })
    }

    /// Navigates and waits for the load event; returns the document's HTTP status.
    pub async fn navigate(
        &self,
        page: &CdpPage,
        url: &str,
        timeout: Duration,
    ) -> Result<Option<u16>, CdpError> {
        let (tx, rx) = oneshot::channel();
        self.state.lock().expect("lock").waiters.push(Waiter {
            method: "Page.loadEventFired",
            session: page.session_id.clone(),
            reply: tx,
        });
        let result = self
            .call("Page.navigate", json!({"url": url}), Some(&page.session_id))
            .await?;
        if let Some(error) = result.get("errorText").and_then(Value::as_str)
            && !error.is_empty()
        {
            return Err(CdpError::Navigation {
                url: url.into(),
                error: error.into(),
            });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                return Err(CdpError::Wire(WireError::Closed {
                    what: "Page.navigate".into(),
                    reason: "connection ended before the load event".into(),
                }));
            }
            Err(_) => {
                return Err(CdpError::Wire(WireError::Timeout {
                    what: "Page.loadEventFired".into(),
                    after: timeout,
                }));
            }
        }
        let loader = result.get("loaderId").and_then(Value::as_str).unwrap_or("");
        Ok(self
            .state
            .lock()
            .expect("lock")
            .document_status
            .get(loader)
            .copied())
    }

    /// `document.title` of the page.
    pub async fn title(&self, page: &CdpPage) -> Result<String, CdpError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": "document.title", "returnByValue": true}),
                Some(&page.session_id),
            )
            .await?;
        r.pointer("/result/value")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CdpError::Protocol {
                method: "Runtime.evaluate".into(),
                detail: format!("no string value in {r}"),
            })
    }

    /// Evaluates an expression in the page and returns its JSON value.
    pub async fn evaluate(&self, page: &CdpPage, expression: &str) -> Result<Value, CdpError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
                Some(&page.session_id),
            )
            .await?;
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// Disposes the page's context.
    pub async fn close_page(&self, page: &CdpPage) -> Result<(), CdpError> {
        self.call(
            "Target.disposeBrowserContext",
            json!({"browserContextId": page.context_id}),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn close(self) {
        self.socket.close().await;
    }
}

fn str_at(v: &Value, key: &str, method: &str) -> Result<String, CdpError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CdpError::Protocol {
            method: method.into(),
            detail: format!("result lacks {key}: {v}"),
        })
}

/// One timed CDP session against a running browser, shaped like a Playwright sample:
/// connect = WebSocket open, newPage = context + target + attach + enables, goto = navigate to load.
pub async fn measure_session(
    ws_url: &str,
    target_name: &str,
    index: usize,
    page_url: &str,
    expect_title: Option<&str>,
) -> crate::scenario::Sample {
    use crate::scenario::{Sample, Scenario};
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut s = Sample {
        target: target_name.to_string(),
        scenario: Scenario::Warm,
        index,
        ok: false,
        error: None,
        connect_ms: None,
        new_page_ms: None,
        goto_ms: None,
        total_ms: None,
        status: None,
        title: None,
        instance: Some(ws_url.to_string()),
        breakdown: None,
    };
    let t0 = tokio::time::Instant::now();
    let client = match CdpClient::connect(ws_url, Duration::from_secs(60)).await {
        Ok(c) => c,
        Err(e) => {
            s.error = Some(format!("connect: {e}"));
            return s;
        }
    };
    let t1 = tokio::time::Instant::now();
    s.connect_ms = Some(ms(t1 - t0));
    let outcome: Result<(), String> = async {
        let page = client
            .new_page()
            .await
            .map_err(|e| format!("newPage: {e}"))?;
        let t2 = tokio::time::Instant::now();
        s.new_page_ms = Some(ms(t2 - t1));
        let status = client
            .navigate(&page, page_url, Duration::from_secs(30))
            .await
            .map_err(|e| format!("goto: {e}"))?;
        let t3 = tokio::time::Instant::now();
        s.goto_ms = Some(ms(t3 - t2));
        s.total_ms = Some(ms(t3 - t0));
        s.status = status;
        if status != Some(200) {
            return Err(format!("goto status {status:?}, expected 200"));
        }
        let title = client
            .title(&page)
            .await
            .map_err(|e| format!("title: {e}"))?;
        s.title = Some(title.clone());
        if let Some(want) = expect_title
            && want != title
        {
            return Err(format!("page title {title:?}, expected {want:?}"));
        }
        client
            .close_page(&page)
            .await
            .map_err(|e| format!("close: {e}"))
    }
    .await;
    client.close().await;
    match outcome {
        Ok(()) => s.ok = true,
        Err(e) => s.error = Some(e),
    }
    s
}
