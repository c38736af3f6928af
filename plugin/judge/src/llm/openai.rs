//! Any OpenAI-compatible `chat/completions` endpoint, with `response_format` `json_schema`
//! in strict mode.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::answer::json_schema;
use super::prompt::Prompt;
use super::provider::{Provider, ProviderError, RetryPolicy, send};
use super::secret::{ExposeSecret, SecretRef};

/// Settings for an OpenAI-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenAiConfig {
    /// API root including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`; optional for local servers without auth.
    pub api_key: Option<SecretRef>,
}

/// The OpenAI-compatible provider.
pub struct OpenAi {
    config: OpenAiConfig,
    client: reqwest::Client,
    retry: RetryPolicy,
}

/// Name of the response format (letters, digits, `_`, `-` as the API requires).
pub const SCHEMA_NAME: &str = "canary_verdict";

impl OpenAi {
    pub fn new(config: OpenAiConfig, client: reqwest::Client, retry: RetryPolicy) -> Self {
        Self {
            config,
            client,
            retry,
        }
    }

    /// The request body.
    pub fn body(model: &str, prompt: &Prompt) -> Value {
        json!({
            "model": model,
            "messages": [
                { "role": "system", "content": prompt.system },
                { "role": "user", "content": prompt.user }
            ],
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": SCHEMA_NAME,
                    "strict": true,
                    "schema": json_schema()
                }
            }
        })
    }
}

#[derive(Deserialize)]
struct Response {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    refusal: Option<String>,
}

/// Extracts the answer text from a chat completion body.
pub fn answer_text(body: &[u8]) -> Result<String, ProviderError> {
    let r: Response =
        serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let Some(choice) = r.choices.into_iter().next() else {
        return Err(ProviderError::Malformed("no choices".into()));
    };
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
        return Err(ProviderError::Refused(crate::verdict::truncate(
            &refusal, 200,
        )));
    }
    match choice.finish_reason.as_deref() {
        None | Some("stop") => {}
        Some(other) => return Err(ProviderError::Refused(format!("finish_reason {other}"))),
    }
    choice
        .message
        .content
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ProviderError::Malformed("message has no content".into()))
}

#[async_trait]
impl Provider for OpenAi {
    fn describe(&self) -> String {
        format!("openai-compatible {}", self.config.model)
    }

    fn secrets(&self) -> Vec<String> {
        self.config
            .api_key
            .as_ref()
            .and_then(|k| k.load().ok())
            .map(|s| vec![s.expose_secret().to_string()])
            .unwrap_or_default()
    }

    async fn ask(&self, prompt: &Prompt, deadline: Instant) -> Result<String, ProviderError> {
        let auth = match &self.config.api_key {
            Some(k) => {
                let key = k.load()?;
                let mut v = reqwest::header::HeaderValue::from_str(&format!(
                    "Bearer {}",
                    key.expose_secret()
                ))
                .map_err(|_| {
                    ProviderError::Malformed("API key is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let body = Self::body(&self.config.model, prompt);
        let bytes = send(
            || {
                let mut r = self.client.post(&url).json(&body);
                if let Some(a) = &auth {
                    r = r.header(reqwest::header::AUTHORIZATION, a.clone());
                }
                r
            },
            self.retry,
            deadline,
        )
        .await?;
        answer_text(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_content_and_refusals() {
        let ok = br#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{}","refusal":null},"finish_reason":"stop"}]}"#;
        assert_eq!(answer_text(ok).unwrap(), "{}");
        let refused = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help"},"finish_reason":"stop"}]}"#;
        assert!(matches!(
            answer_text(refused),
            Err(ProviderError::Refused(_))
        ));
        let cut = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"{\"pro"},"finish_reason":"length"}]}"#;
        assert!(matches!(answer_text(cut), Err(ProviderError::Refused(_))));
        assert!(matches!(
            answer_text(br#"{"choices":[]}"#),
            Err(ProviderError::Malformed(_))
        ));
    }
}
