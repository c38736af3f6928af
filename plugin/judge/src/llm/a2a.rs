//! An A2A agent over JSON-RPC 2.0, method `message/send` (A2A protocol 0.3 shapes).
//!
//! Request: one user `Message` with a `text` part (the instructions and the data) and a `data`
//! part carrying the answer's JSON Schema, `configuration.blocking = true` and
//! `acceptedOutputModes = ["application/json"]`. The result may be a `Message` or a `Task`;
//! the answer is the first `data` part (an object) or else the first `text` part, looked for in
//! a completed task's artifacts, then its status message, or in the message's parts.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::answer::json_schema;
use super::prompt::{Prompt, new_nonce};
use super::provider::{Provider, ProviderError, RetryPolicy, send};
use super::secret::{ExposeSecret, SecretRef};

/// Settings for an A2A agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct A2aConfig {
    /// The agent's JSON-RPC endpoint (the `url` of its agent card).
    pub url: String,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<SecretRef>,
}

/// The A2A provider.
pub struct A2a {
    config: A2aConfig,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl A2a {
    pub fn new(config: A2aConfig, client: reqwest::Client, retry: RetryPolicy) -> Self {
        Self {
            config,
            client,
            retry,
        }
    }

    /// The JSON-RPC request.
    pub fn body(prompt: &Prompt, request_id: &str, message_id: &str) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": message_id,
                    "role": "user",
                    "parts": [
                        { "kind": "text", "text": format!("{}\n\n{}", prompt.system, prompt.user) },
                        { "kind": "data", "data": { "responseSchema": json_schema() } }
                    ]
                },
                "configuration": {
                    "acceptedOutputModes": ["application/json"],
                    "blocking": true
                }
            }
        })
    }
}

#[derive(Deserialize)]
struct RpcResponse {
    jsonrpc: String,
    id: Option<Value>,
    result: Option<Value>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
}

fn from_parts(parts: &Value) -> Option<String> {
    let parts = parts.as_array()?;
    parts
        .iter()
        .find(|p| p["kind"] == "data" && p["data"].is_object())
        .map(|p| p["data"].to_string())
        .or_else(|| {
            parts
                .iter()
                .find(|p| p["kind"] == "text")
                .and_then(|p| p["text"].as_str().map(str::to_string))
        })
}

/// Extracts the answer text from a JSON-RPC response to `message/send`.
pub fn answer_text(body: &[u8], request_id: &str) -> Result<String, ProviderError> {
    let r: RpcResponse =
        serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    if r.jsonrpc != "2.0" {
        return Err(ProviderError::Malformed(
            "not a JSON-RPC 2.0 response".into(),
        ));
    }
    if let Some(e) = r.error {
        return Err(ProviderError::Rpc {
            code: e.code,
            message: crate::verdict::truncate(&e.message, 200),
        });
    }
    if r.id.as_ref().and_then(Value::as_str) != Some(request_id) {
        return Err(ProviderError::Malformed(
            "response id does not match the request".into(),
        ));
    }
    let result = r
        .result
        .ok_or_else(|| ProviderError::Malformed("neither result nor error".into()))?;
    match result["kind"].as_str() {
        Some("message") => from_parts(&result["parts"]).ok_or_else(|| {
            ProviderError::Malformed("agent message has no text or data part".into())
        }),
        Some("task") => {
            let state = result["status"]["state"].as_str().unwrap_or("unknown");
            if state != "completed" {
                return Err(ProviderError::Refused(format!(
                    "task ended in state {state}"
                )));
            }
            result["artifacts"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|a| from_parts(&a["parts"]))
                .or_else(|| from_parts(&result["status"]["message"]["parts"]))
                .ok_or_else(|| ProviderError::Malformed("completed task carries no answer".into()))
        }
        _ => Err(ProviderError::Malformed(
            "result is neither a message nor a task".into(),
        )),
    }
}

#[async_trait]
impl Provider for A2a {
    fn describe(&self) -> String {
        "a2a agent".into()
    }

    fn secrets(&self) -> Vec<String> {
        self.config
            .token
            .as_ref()
            .and_then(|k| k.load().ok())
            .map(|s| vec![s.expose_secret().to_string()])
            .unwrap_or_default()
    }

    async fn ask(&self, prompt: &Prompt, deadline: Instant) -> Result<String, ProviderError> {
        let auth = match &self.config.token {
            Some(k) => {
                let key = k.load()?;
                let mut v = reqwest::header::HeaderValue::from_str(&format!(
                    "Bearer {}",
                    key.expose_secret()
                ))
                .map_err(|_| {
                    ProviderError::Malformed("token is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let request_id = new_nonce();
        let body = Self::body(prompt, &request_id, &new_nonce());
        let bytes = send(
            || {
                let mut r = self.client.post(&self.config.url).json(&body);
                if let Some(a) = &auth {
                    r = r.header(reqwest::header::AUTHORIZATION, a.clone());
                }
                r
            },
            self.retry,
            deadline,
        )
        .await?;
        answer_text(&bytes, &request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_message_and_task_results() {
        let msg = br#"{"jsonrpc":"2.0","id":"r1","result":{"kind":"message","messageId":"m","role":"agent","parts":[{"kind":"data","data":{"promote":true}}]}}"#;
        assert_eq!(answer_text(msg, "r1").unwrap(), r#"{"promote":true}"#);
        let task = br#"{"jsonrpc":"2.0","id":"r1","result":{"kind":"task","id":"t","contextId":"c","status":{"state":"completed"},"artifacts":[{"artifactId":"a","parts":[{"kind":"text","text":"{}"}]}]}}"#;
        assert_eq!(answer_text(task, "r1").unwrap(), "{}");
        let failed = br#"{"jsonrpc":"2.0","id":"r1","result":{"kind":"task","id":"t","contextId":"c","status":{"state":"failed"}}}"#;
        assert!(matches!(
            answer_text(failed, "r1"),
            Err(ProviderError::Refused(_))
        ));
        let err =
            br#"{"jsonrpc":"2.0","id":"r1","error":{"code":-32603,"message":"Internal error"}}"#;
        assert!(matches!(
            answer_text(err, "r1"),
            Err(ProviderError::Rpc { code: -32603, .. })
        ));
        assert!(matches!(
            answer_text(msg, "other"),
            Err(ProviderError::Malformed(_))
        ));
    }
}
