//! Google Gemini `models/{model}:generateContent` with `responseSchema` (REST, v1beta).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::answer::gemini_schema;
use super::prompt::Prompt;
use super::provider::{Provider, ProviderError, RetryPolicy, send};
use super::secret::{ExposeSecret, SecretRef};

/// Settings for Gemini.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GeminiConfig {
    /// API root, without the version path.
    #[serde(default = "default_base")]
    pub base_url: String,
    pub model: String,
    /// Sent as `x-goog-api-key`.
    pub api_key: SecretRef,
}

fn default_base() -> String {
    "https://generativelanguage.googleapis.com".into()
}

/// The Gemini provider.
pub struct Gemini {
    config: GeminiConfig,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl Gemini {
    pub fn new(config: GeminiConfig, client: reqwest::Client, retry: RetryPolicy) -> Self {
        Self {
            config,
            client,
            retry,
        }
    }

    /// The request body: the system instruction, the user turn and a generation config that
    /// constrains decoding to the answer schema. No tools, so the schema is honoured.
    pub fn body(prompt: &Prompt) -> Value {
        json!({
            "systemInstruction": { "parts": [ { "text": prompt.system } ] },
            "contents": [ { "role": "user", "parts": [ { "text": prompt.user } ] } ],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": gemini_schema(),
                "temperature": 0,
                "candidateCount": 1
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
}

/// Extracts the answer text from a `GenerateContentResponse` body.
pub fn answer_text(body: &[u8]) -> Result<String, ProviderError> {
    let r: Response =
        serde_json::from_slice(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let Some(c) = r.candidates.into_iter().next() else {
        let why = r
            .prompt_feedback
            .and_then(|f| f["blockReason"].as_str().map(str::to_string))
            .unwrap_or_else(|| "no candidates".into());
        return Err(ProviderError::Refused(why));
    };
    match c.finish_reason.as_deref() {
        None | Some("STOP") => {}
        Some(other) => return Err(ProviderError::Refused(format!("finishReason {other}"))),
    }
    let text: String = c
        .content
        .map(|c| c.parts.into_iter().filter_map(|p| p.text).collect())
        .unwrap_or_default();
    if text.is_empty() {
        return Err(ProviderError::Malformed("candidate has no text".into()));
    }
    Ok(text)
}

#[async_trait]
impl Provider for Gemini {
    fn describe(&self) -> String {
        format!("gemini {}", self.config.model)
    }

    fn secrets(&self) -> Vec<String> {
        self.config
            .api_key
            .load()
            .map(|s| vec![s.expose_secret().to_string()])
            .unwrap_or_default()
    }

    async fn ask(&self, prompt: &Prompt, deadline: Instant) -> Result<String, ProviderError> {
        let key = self.config.api_key.load()?;
        let url = format!(
            "{}/v1beta/models/{}:generateContent",
            self.config.base_url.trim_end_matches('/'),
            self.config.model
        );
        let mut key_header = reqwest::header::HeaderValue::from_str(key.expose_secret())
            .map_err(|_| ProviderError::Malformed("API key is not a valid header value".into()))?;
        key_header.set_sensitive(true);
        let body = Self::body(prompt);
        let bytes = send(
            || {
                self.client
                    .post(&url)
                    .header("x-goog-api-key", key_header.clone())
                    .json(&body)
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
    fn extracts_text_and_reports_blocks() {
        let ok = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"{\"a\":"},{"text":"1}"}]},"finishReason":"STOP"}]}"#;
        assert_eq!(answer_text(ok).unwrap(), r#"{"a":1}"#);
        let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
        assert_eq!(
            answer_text(blocked),
            Err(ProviderError::Refused("SAFETY".into()))
        );
        let cut =
            br#"{"candidates":[{"content":{"parts":[{"text":"{"}]},"finishReason":"MAX_TOKENS"}]}"#;
        assert!(matches!(answer_text(cut), Err(ProviderError::Refused(_))));
        assert!(matches!(
            answer_text(b"<html>"),
            Err(ProviderError::Malformed(_))
        ));
    }
}
