//! Sandboxes behind a `sandcanary-proxy`: its admin session API deletes (cold), ensures (warm) and
//! suspends (restore) them; the data port is reached with the token identity headers.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use super::{Endpoint, Prepared, Target, TargetError};
use crate::scenario::Scenario;

/// Settings of a [`ProxyTarget`].
#[derive(Clone)]
pub struct ProxyTargetConfig {
    pub name: String,
    /// Data port base, `ws://host:port/` or `http://host:port/`.
    pub data_url: String,
    /// Admin port base, `http://host:port`.
    pub admin_url: String,
    /// Bearer token of the session API.
    pub admin_token: String,
    /// Bearer token of the data port's token identity mode.
    pub identity_token: String,
    /// Header that names the sandbox id on the data port.
    pub id_header: String,
    /// Prefix of every session id this run creates, so runs never collide.
    pub id_prefix: String,
}

impl std::fmt::Debug for ProxyTargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: never print them.
        f.debug_struct("ProxyTargetConfig")
            .field("name", &self.name)
            .field("data_url", &self.data_url)
            .field("admin_url", &self.admin_url)
            .field("id_header", &self.id_header)
            .field("id_prefix", &self.id_prefix)
            .finish_non_exhaustive()
    }
}

/// A session as the proxy's admin API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub id: String,
    pub state: String,
    #[serde(default)]
    pub sandbox: Option<String>,
}

/// Sandboxes reached through a proxy.
pub struct ProxyTarget {
    config: ProxyTargetConfig,
    http: reqwest::Client,
    current: std::collections::HashMap<Scenario, String>,
    created: Vec<String>,
}

impl ProxyTarget {
    pub fn new(config: ProxyTargetConfig) -> Result<Self, TargetError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(180))
            .build()
            .map_err(|e| TargetError::SessionApi {
                method: "-".into(),
                path: "-".into(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            config,
            http,
            current: Default::default(),
            created: Vec::new(),
        })
    }

    fn id_for(&self, scenario: Scenario, sample: usize) -> String {
        match scenario {
            Scenario::Cold => format!("{}-cold-{sample}", self.config.id_prefix),
            other => format!("{}-{other}", self.config.id_prefix),
        }
    }

    /// Calls the session API; `Ok(None)` for 404 and 204.
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<Option<Session>, TargetError> {
        let url = format!("{}{path}", self.config.admin_url.trim_end_matches('/'));
        let err = |detail: String| TargetError::SessionApi {
            method: method.to_string(),
            path: path.to_string(),
            detail,
        };
        let resp = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.config.admin_token)
            .send()
            .await
            .map_err(|e| err(error_chain(&e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = resp.text().await.map_err(|e| err(error_chain(&e)))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect());
            return Err(err(format!("HTTP {status}: {message}")));
        }
        serde_json::from_str(&body).map(Some).map_err(|e| {
            err(format!(
                "unexpected body ({e}): {}",
                body.chars().take(300).collect::<String>()
            ))
        })
    }

    fn ws_base(&self) -> String {
        let base = self.config.data_url.trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_string()
        };
        format!("{base}/")
    }

    fn http_base(&self) -> String {
        let base = self.config.data_url.trim_end_matches('/');
        match base.strip_prefix("ws://") {
            Some(rest) => format!("http://{rest}"),
            None => base.to_string(),
        }
    }
}

impl Target for ProxyTarget {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn prepare(
        &mut self,
        scenario: Scenario,
        sample: usize,
    ) -> BoxFuture<'_, Result<Prepared, TargetError>> {
        async move {
            let id = self.id_for(scenario, sample);
            let sessions = reqwest::Method::DELETE;
            match scenario {
                Scenario::Cold => {
                    // Free the previous cold sandbox, and make sure the fresh id has none.
                    if let Some(old) = self.current.get(&scenario).cloned() {
                        self.api(sessions.clone(), &format!("/v1/sessions/{old}"))
                            .await?;
                    }
                    self.api(sessions, &format!("/v1/sessions/{id}")).await?;
                    self.current.insert(scenario, id.clone());
                    self.created.push(id);
                    Ok(Prepared::default())
                }
                Scenario::Warm | Scenario::Mcp | Scenario::Restore => {
                    let path = format!("/v1/sessions/{id}");
                    let existing = self.api(reqwest::Method::GET, &path).await?;
                    let fresh = existing
                        .as_ref()
                        .is_none_or(|s| s.state != "ready" && s.state != "suspended");
                    let session =
                        self.api(reqwest::Method::PUT, &path)
                            .await?
                            .ok_or_else(|| TargetError::SessionApi {
                                method: "PUT".into(),
                                path: path.clone(),
                                detail: "no session in the answer".into(),
                            })?;
                    if !self.created.contains(&id) {
                        self.created.push(id.clone());
                    }
                    self.current.insert(scenario, id.clone());
                    if scenario == Scenario::Restore {
                        let suspended = self
                            .api(reqwest::Method::POST, &format!("{path}/suspend"))
                            .await?
                            .ok_or_else(|| TargetError::SessionApi {
                                method: "POST".into(),
                                path: format!("{path}/suspend"),
                                detail: "session vanished".into(),
                            })?;
                        if suspended.state != "suspended" {
                            return Err(TargetError::SessionApi {
                                method: "POST".into(),
                                path: format!("{path}/suspend"),
                                detail: format!("state is {:?}, not suspended", suspended.state),
                            });
                        }
                    }
                    Ok(Prepared {
                        instance_before: session.sandbox,
                        fresh,
                    })
                }
            }
        }
        .boxed()
    }

    fn open(&mut self, scenario: Scenario) -> BoxFuture<'_, Result<Endpoint, TargetError>> {
        async move {
            let id =
                self.current.get(&scenario).cloned().ok_or_else(|| {
                    TargetError::Unsupported(format!("{scenario} was not prepared"))
                })?;
            Ok(Endpoint {
                ws_url: self.ws_base(),
                headers: vec![
                    (
                        "authorization".to_string(),
                        format!("Bearer {}", self.config.identity_token),
                    ),
                    (self.config.id_header.clone(), id),
                ],
                mcp_url: Some(format!("{}/mcp", self.http_base())),
            })
        }
        .boxed()
    }

    fn observe(
        &mut self,
        scenario: Scenario,
    ) -> BoxFuture<'_, Result<Option<String>, TargetError>> {
        async move {
            let Some(id) = self.current.get(&scenario).cloned() else {
                return Ok(None);
            };
            let session = self
                .api(reqwest::Method::GET, &format!("/v1/sessions/{id}"))
                .await?;
            Ok(session.and_then(|s| s.sandbox))
        }
        .boxed()
    }

    fn shutdown(&mut self) -> BoxFuture<'_, ()> {
        async move {
            let delete = reqwest::Method::DELETE;
            for id in std::mem::take(&mut self.created) {
                if let Err(e) = self
                    .api(delete.clone(), &format!("/v1/sessions/{id}"))
                    .await
                {
                    tracing::warn!(%id, error = %e, "could not delete bench session");
                }
            }
        }
        .boxed()
    }
}

/// An error with its causes, e.g. "error sending request: connection refused".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(data: &str) -> ProxyTarget {
        ProxyTarget::new(ProxyTargetConfig {
            name: "p".into(),
            data_url: data.into(),
            admin_url: "http://127.0.0.1:9090/".into(),
            admin_token: "secret-admin".into(),
            identity_token: "secret-identity".into(),
            id_header: "X-Sandbox-Id".into(),
            id_prefix: "run1".into(),
        })
        .unwrap()
    }

    #[test]
    fn data_url_in_either_scheme_gives_both_bases() {
        for data in ["http://127.0.0.1:9000", "ws://127.0.0.1:9000/"] {
            let t = target(data);
            assert_eq!(t.ws_base(), "ws://127.0.0.1:9000/");
            assert_eq!(t.http_base(), "http://127.0.0.1:9000");
        }
    }

    #[test]
    fn cold_ids_are_fresh_per_sample_others_stable() {
        let t = target("http://127.0.0.1:9000");
        assert_eq!(t.id_for(Scenario::Cold, 3), "run1-cold-3");
        assert_ne!(t.id_for(Scenario::Cold, 3), t.id_for(Scenario::Cold, 4));
        assert_eq!(t.id_for(Scenario::Warm, 3), t.id_for(Scenario::Warm, 9));
        assert_eq!(t.id_for(Scenario::Restore, 0), "run1-restore");
    }

    #[test]
    fn debug_output_hides_tokens() {
        let t = target("http://127.0.0.1:9000");
        let shown = format!("{:?}", t.config);
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[tokio::test]
    async fn unreachable_admin_api_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut t = target("http://127.0.0.1:9000");
        t.config.admin_url = format!("http://127.0.0.1:{port}");
        let e = t.prepare(Scenario::Warm, 0).await.unwrap_err().to_string();
        assert!(e.contains("GET /v1/sessions/run1-warm"), "{e}");
        assert!(
            e.to_lowercase().contains("connect"),
            "the cause is named: {e}"
        );
    }
}
