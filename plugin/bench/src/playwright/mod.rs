//! A native client for the Playwright wire protocol (the server side of `launchServer`).
//!
//! Only what a bench session needs: initialize, newContext, newPage, Frame.goto, Frame.title and close.
//! The object table follows `__create__` / `__adopt__` / `__dispose__` so that guids named in results
//! (the pre-launched browser, a page's main frame, a navigation's response) can be looked up.

mod objects;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub use crate::wire::WireError;
use crate::wire::{Router, RpcSocket, UpgradeRequest};
use objects::ObjectTable;

/// The Playwright version this client speaks; servers compare major.minor with it.
pub const DEFAULT_CLIENT_VERSION: &str = "1.65.1";

/// How to reach a Playwright server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://host:port/path` of the server (or of a proxy in front of it).
    pub url: String,
    /// Extra upgrade headers, e.g. the proxy's identity headers.
    pub headers: Vec<(String, String)>,
    /// Announced as `User-Agent: Playwright/<version>`; `None` sends no Playwright user agent,
    /// which servers let through without a version check.
    pub client_version: Option<String>,
    /// Bound on the upgrade and on `initialize` together.
    pub connect_timeout: Duration,
    /// Bound on each call other than goto (which uses its own timeout plus a margin).
    pub call_timeout: Duration,
}

impl ConnectOptions {
    /// Options with the defaults the bench uses.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            client_version: Some(DEFAULT_CLIENT_VERSION.to_string()),
            connect_timeout: Duration::from_secs(180),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// Errors of the Playwright client.
#[derive(Debug, thiserror::Error)]
pub enum PlaywrightError {
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A result or object lacked what the protocol promises.
    #[error("protocol error in {method}: {detail}")]
    Protocol { method: String, detail: String },
}

/// When a navigation counts as done (`waitUntil`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitUntil {
    #[default]
    Load,
    DomContentLoaded,
    NetworkIdle,
    Commit,
}

impl WaitUntil {
    fn as_str(self) -> &'static str {
        match self {
            WaitUntil::Load => "load",
            WaitUntil::DomContentLoaded => "domcontentloaded",
            WaitUntil::NetworkIdle => "networkidle",
            WaitUntil::Commit => "commit",
        }
    }
}

/// A page created by [`PlaywrightClient::new_page`].
#[derive(Debug, Clone)]
pub struct Page {
    pub context_guid: String,
    pub page_guid: String,
    pub frame_guid: String,
    /// How long `newContext`, the first of the two calls, took (the rest is `newPage`).
    pub new_context: Duration,
}

/// The outcome of `Frame.goto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Navigation {
    /// HTTP status of the main resource; `None` for navigations without a network response.
    pub status: Option<u16>,
    pub url: Option<String>,
}

struct PlaywrightRouter {
    objects: Arc<Mutex<ObjectTable>>,
}

impl Router for PlaywrightRouter {
    fn response(&self, msg: &Value) -> Result<Value, String> {
        if let Some(err) = msg.get("error") {
            let inner = err.get("error").unwrap_or(err);
            let message = inner
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| inner.to_string());
            let name = inner.get("name").and_then(Value::as_str).unwrap_or("Error");
            return Err(format!("{name}: {message}"));
        }
        Ok(msg.get("result").cloned().unwrap_or(Value::Null))
    }

    fn event(&self, msg: Value) {
        self.objects.lock().expect("lock").apply(&msg);
    }
}

/// A connected, initialized Playwright session.
pub struct PlaywrightClient {
    socket: RpcSocket,
    objects: Arc<Mutex<ObjectTable>>,
    browser_guid: String,
    call_timeout: Duration,
    /// From the start of `connect` to the server's (or proxy's) `101 Switching Protocols`.
    upgraded: Duration,
}

impl PlaywrightClient {
    /// Opens the WebSocket and runs `initialize`; this is the timed `connect` phase.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, PlaywrightError> {
        let started = tokio::time::Instant::now();
        let mut headers = vec![("x-playwright-browser".to_string(), "chromium".to_string())];
        if let Some(v) = &opts.client_version {
            headers.push((
                "user-agent".to_string(),
                format!("Playwright/{v} (sandcanary-bench)"),
            ));
        }
        headers.extend(opts.headers.iter().cloned());
        let objects = Arc::new(Mutex::new(ObjectTable::default()));
        let router = Arc::new(PlaywrightRouter {
            objects: objects.clone(),
        });
        let req = UpgradeRequest {
            url: opts.url.clone(),
            headers,
            client_version: opts.client_version.clone(),
        };
        let socket = RpcSocket::open(&req, opts.connect_timeout, router).await?;
        let upgraded = started.elapsed();
        let left = opts.connect_timeout.saturating_sub(started.elapsed());
        let result = socket
            .call("initialize", left.max(Duration::from_millis(1)), |id| {
                json!({"id": id, "guid": "", "method": "initialize",
                       "params": {"sdkLanguage": "javascript"}, "metadata": {}})
            })
            .await?;
        let root = guid_at(&result, "/playwright/guid", "initialize")?;
        let browser_guid = {
            let table = objects.lock().expect("lock");
            table
                .initializer(&root)
                .and_then(|init| init.pointer("/preLaunchedBrowser/guid"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }
        .ok_or_else(|| PlaywrightError::Protocol {
            method: "initialize".into(),
            detail: "the server offers no pre-launched browser (is it a launchServer endpoint?)"
                .into(),
        })?;
        Ok(Self {
            socket,
            objects,
            browser_guid,
            call_timeout: opts.call_timeout,
            upgraded,
        })
    }

    /// Time from the start of [`connect`](Self::connect) to the `101` (the rest was `initialize`).
    pub fn upgrade_time(&self) -> Duration {
        self.upgraded
    }

    /// Guid of the browser the server launched for us.
    pub fn browser_guid(&self) -> &str {
        &self.browser_guid
    }

    async fn call(
        &self,
        guid: &str,
        method: &str,
        params: Value,
        metadata: Value,
        timeout: Duration,
    ) -> Result<Value, PlaywrightError> {
        Ok(self
            .socket
            .call(method, timeout, |id| {
                json!({"id": id, "guid": guid, "method": method, "params": params, "metadata": metadata})
            })
            .await?)
    }

    /// `Browser.newContext` then `BrowserContext.newPage`: the timed `newPage` phase.
    pub async fn new_page(&self) -> Result<Page, PlaywrightError> {
        let started = tokio::time::Instant::now();
        let ctx = self
            .call(
                &self.browser_guid,
                "newContext",
                json!({}),
                json!({}),
                self.call_timeout,
            )
            .await?;
        let new_context = started.elapsed();
        let context_guid = guid_at(&ctx, "/context/guid", "newContext")?;
        let page = self
            .call(
                &context_guid,
                "newPage",
                json!({}),
                json!({}),
                self.call_timeout,
            )
            .await?;
        let page_guid = guid_at(&page, "/page/guid", "newPage")?;
        let frame_guid = self
            .objects
            .lock()
            .expect("lock")
            .initializer(&page_guid)
            .and_then(|init| init.pointer("/mainFrame/guid"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| PlaywrightError::Protocol {
                method: "newPage".into(),
                detail: format!("page {page_guid} has no main frame in the object table"),
            })?;
        Ok(Page {
            context_guid,
            page_guid,
            frame_guid,
            new_context,
        })
    }

    /// `Frame.goto`; the server enforces `timeout`, the client waits a little longer so the server's
    /// own timeout error (with its message) arrives first.
    pub async fn goto(
        &self,
        page: &Page,
        url: &str,
        wait_until: WaitUntil,
        timeout: Duration,
    ) -> Result<Navigation, PlaywrightError> {
        let result = self
            .call(
                &page.frame_guid,
                "goto",
                json!({"url": url, "waitUntil": wait_until.as_str()}),
                json!({"timeout": timeout.as_millis() as u64}),
                timeout + Duration::from_secs(5),
            )
            .await?;
        let Some(guid) = result.pointer("/response/guid").and_then(Value::as_str) else {
            return Ok(Navigation {
                status: None,
                url: None,
            });
        };
        let table = self.objects.lock().expect("lock");
        let init = table
            .initializer(guid)
            .ok_or_else(|| PlaywrightError::Protocol {
                method: "goto".into(),
                detail: format!("response {guid} was never created"),
            })?;
        let status = init
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| PlaywrightError::Protocol {
                method: "goto".into(),
                detail: format!("response {guid} has no numeric status"),
            })?;
        Ok(Navigation {
            status: Some(status),
            url: init.get("url").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// `Frame.title` of the page's main frame.
    pub async fn title(&self, page: &Page) -> Result<String, PlaywrightError> {
        let result = self
            .call(
                &page.frame_guid,
                "title",
                json!({}),
                json!({}),
                self.call_timeout,
            )
            .await?;
        result
            .get("value")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| PlaywrightError::Protocol {
                method: "title".into(),
                detail: "result has no string value".into(),
            })
    }

    /// Evaluates a JavaScript expression in the main frame and returns its value if it is a
    /// number, string or boolean (Playwright's serialized form `{n}`, `{s}`, `{b}`).
    pub async fn evaluate(&self, page: &Page, expression: &str) -> Result<Value, PlaywrightError> {
        let result = self
            .call(
                &page.frame_guid,
                "evaluateExpression",
                json!({"expression": expression, "isFunction": false,
                       "arg": {"value": {"v": "undefined"}, "handles": []}}),
                json!({}),
                self.call_timeout,
            )
            .await?;
        let value = result
            .get("value")
            .ok_or_else(|| PlaywrightError::Protocol {
                method: "evaluateExpression".into(),
                detail: "result has no value".into(),
            })?;
        for key in ["n", "s", "b"] {
            if let Some(v) = value.get(key) {
                return Ok(v.clone());
            }
        }
        Ok(Value::Null)
    }

    /// Chromium's `PerformanceNavigationTiming` of the page's last navigation; `None` when the
    /// page has no navigation entry or its numbers make no sense. Costs one round trip: call it
    /// after the timed part of a sample.
    pub async fn navigation_timing(
        &self,
        page: &Page,
    ) -> Result<Option<crate::breakdown::NavigationTiming>, PlaywrightError> {
        let json = self
            .evaluate(page, crate::breakdown::NAVIGATION_TIMING_JS)
            .await?;
        Ok(json
            .as_str()
            .and_then(crate::breakdown::NavigationTiming::parse))
    }

    /// Number of live objects the server has told us about (for tests of the object table).
    pub fn object_count(&self) -> usize {
        self.objects.lock().expect("lock").len()
    }

    /// Type of a live object.
    pub fn object_type(&self, guid: &str) -> Option<String> {
        self.objects
            .lock()
            .expect("lock")
            .kind(guid)
            .map(str::to_string)
    }

    /// Ends the session the way the Node client's `browser.close()` does: close the WebSocket;
    /// launchServer then disposes our contexts.
    pub async fn close(self) {
        self.socket.close().await;
    }
}

fn guid_at(v: &Value, pointer: &str, method: &str) -> Result<String, PlaywrightError> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| PlaywrightError::Protocol {
            method: method.into(),
            detail: format!("result lacks {pointer}: {v}"),
        })
}
