//! A small MCP client over the streamable-HTTP transport, enough to time @playwright/mcp:
//! initialize, tools/list and a `browser_navigate` call. Answers may come as JSON or as a
//! server-sent-event stream; both are accepted.

use std::time::Duration;

use serde_json::{Value, json};

/// MCP protocol revision we announce.
const PROTOCOL_VERSION: &str = "2025-03-26";

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("HTTP request failed: {0}")]
    Http(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("server error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("tool reported an error: {0}")]
    Tool(String),
}

/// An initialized MCP session.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    session: Option<String>,
    next_id: u64,
}

impl McpClient {
    /// Sends `initialize` and `notifications/initialized`.
    pub async fn initialize(
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<Self, McpError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| McpError::Http(e.to_string()))?;
        let mut client = Self {
            http,
            url: url.to_string(),
            headers: headers.to_vec(),
            session: None,
            next_id: 1,
        };
        client
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "sandcanary-bench", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        client
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(client)
    }

    /// Names of the server's tools.
    pub async fn list_tools(&mut self) -> Result<Vec<String>, McpError> {
        let result = self.request("tools/list", json!({})).await?;
        let tools = result
            .get("tools")
            .and_then(Value::as_array)
            .ok_or_else(|| McpError::Malformed("tools/list result has no tools array".into()))?;
        Ok(tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// Calls `browser_navigate` and returns the text content of the result.
    pub async fn navigate(&mut self, url: &str, timeout: Duration) -> Result<String, McpError> {
        let call = self.request(
            "tools/call",
            json!({"name": "browser_navigate", "arguments": {"url": url}}),
        );
        let result = tokio::time::timeout(timeout, call).await.map_err(|_| {
            McpError::Http(format!("browser_navigate timed out after {timeout:?}"))
        })??;
        let text: String = result
            .get("content")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return Err(McpError::Tool(text.chars().take(300).collect()));
        }
        Ok(text)
    }

    /// Ends the session on the server.
    pub async fn close(self) {
        if let Some(session) = &self.session {
            let mut req = self
                .http
                .delete(&self.url)
                .header("mcp-session-id", session);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            let _ = req.send().await;
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let text = self.post(body).await?;
        let msg = find_response(&text, id)?;
        if let Some(err) = msg.get("error") {
            return Err(McpError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            });
        }
        msg.get("result")
            .cloned()
            .ok_or_else(|| McpError::Malformed(format!("response to {method} has no result")))
    }

    async fn post(&mut self, body: Value) -> Result<String, McpError> {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| McpError::Http(e.to_string()))?;
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(s.to_string());
        }
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| McpError::Http(e.to_string()))?;
        if !status.is_success() {
            return Err(McpError::Status {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        Ok(text)
    }
}

/// Finds the JSON-RPC response with `id` in a JSON body or an SSE stream of `data:` lines.
fn find_response(body: &str, id: u64) -> Result<Value, McpError> {
    let trimmed = body.trim_start();
    let candidates: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(e) => return Err(McpError::Malformed(format!("invalid JSON: {e}"))),
        }
    } else {
        // SSE: an event's data may span several `data:` lines.
        let mut out = Vec::new();
        for event in body.split("\n\n") {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                let v = serde_json::from_str(&data.join("\n")).map_err(|e| {
                    McpError::Malformed(format!("invalid JSON in event stream: {e}"))
                })?;
                out.push(v);
            }
        }
        out
    };
    candidates
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_u64) == Some(id))
        .ok_or_else(|| McpError::Malformed(format!("no response with id {id} in the answer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_responses_in_json_and_sse() {
        let json_body = r#"{"jsonrpc":"2.0","id":3,"result":{"ok":true}}"#;
        assert_eq!(find_response(json_body, 3).unwrap()["result"]["ok"], true);
        let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n\n\
                   event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
        assert!(find_response(sse, 7).is_ok());
        assert!(matches!(find_response(sse, 8), Err(McpError::Malformed(_))));
        assert!(matches!(
            find_response("{nope", 1),
            Err(McpError::Malformed(_))
        ));
    }
}
