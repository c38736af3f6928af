//! The seam between the LLM judge and a model service, and the HTTP policy all providers share:
//! a hard deadline, retries only on 429 and 5xx, waiting as long as the server asks.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use super::prompt::Prompt;
use super::secret::SecretError;

/// Something that answers a prompt with the schema's JSON text.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Provider and model, for the summary (`gemini gemini-2.5-flash`).
    fn describe(&self) -> String;

    /// Secrets this provider sends, so the prompt builder can redact them from measured text.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Sends the prompt and returns the answer text (to be parsed against the schema).
    async fn ask(&self, prompt: &Prompt, deadline: Instant) -> Result<String, ProviderError>;
}

/// What went wrong talking to a model. Bodies are cut short and never contain our key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("timed out")]
    Timeout,
    #[error("rate limited (HTTP 429){}", retry_hint(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error HTTP {status}: {body}")]
    Server { status: u16, body: String },
    #[error("request rejected HTTP {status}: {body}")]
    Client { status: u16, body: String },
    #[error("transport error: {0}")]
    Transport(String),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("model refused or was blocked: {0}")]
    Refused(String),
    #[error("agent error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("credentials: {0}")]
    Secret(#[from] SecretError),
}

fn retry_hint(d: &Option<Duration>) -> String {
    d.map_or(String::new(), |d| format!(", retry after {}s", d.as_secs()))
}

/// Retry policy shared by the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (only for 429 and 5xx, never for other errors).
    pub max_retries: u32,
    /// Wait when the server gives no hint, doubled per retry.
    pub base_delay: Duration,
    /// Longest wait we accept from a server hint.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these APIs and is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Google's `RetryInfo.retryDelay` (`"20s"`, `"1.5s"`) from an error body.
pub fn google_retry_delay(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["details"].as_array()?.iter().find_map(|d| {
        let s = d["retryDelay"].as_str()?.strip_suffix('s')?;
        let secs: f64 = s.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    })
}

fn snippet(body: &[u8]) -> String {
    crate::verdict::truncate(&String::from_utf8_lossy(body), 200)
}

/// One failed attempt: the error, and how long the server asked us to wait before the next.
struct Failed {
    error: ProviderError,
    hint: Option<Duration>,
}

impl Failed {
    fn fatal(error: ProviderError) -> Self {
        Self { error, hint: None }
    }

    /// 429 and 5xx are worth another try; nothing else is.
    fn retryable(&self) -> bool {
        matches!(
            self.error,
            ProviderError::RateLimited { .. } | ProviderError::Server { .. }
        )
    }

    fn status(&self) -> u16 {
        match self.error {
            ProviderError::RateLimited { .. } => 429,
            ProviderError::Server { status, .. } => status,
            _ => 0,
        }
    }
}

/// Sends a request built by `build` until it succeeds, fails for good, or the deadline passes.
/// Returns the body of a 2xx response. The waits double from `base_delay`; a server's hint
/// (`Retry-After`, Google's `retryDelay`) replaces the computed wait; either is capped at `max_delay`,
/// and a wait that would overrun the deadline ends the retries.
pub async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
    policy: RetryPolicy,
    deadline: Instant,
) -> Result<bytes::Bytes, ProviderError> {
    let once = || async {
        let now = Instant::now();
        if now >= deadline {
            return Err(Failed::fatal(ProviderError::Timeout));
        }
        let remaining = deadline - now;
        let response = tokio::time::timeout(remaining, build().timeout(remaining).send()).await;
        let response = match response {
            Err(_) => return Err(Failed::fatal(ProviderError::Timeout)),
            Ok(Err(e)) if e.is_timeout() => return Err(Failed::fatal(ProviderError::Timeout)),
            Ok(Err(e)) => return Err(Failed::fatal(ProviderError::Transport(without_url(&e)))),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            read_bounded(response),
        )
        .await
        {
            Err(_) => return Err(Failed::fatal(ProviderError::Timeout)),
            Ok(Err(e)) => return Err(Failed::fatal(e)),
            Ok(Ok(b)) => b,
        };
        if status.is_success() {
            return Ok(body);
        }
        let hint = retry_after(&headers).or_else(|| google_retry_delay(&body));
        let error = if status == StatusCode::TOO_MANY_REQUESTS {
            ProviderError::RateLimited { retry_after: hint }
        } else if status.is_server_error() {
            ProviderError::Server {
                status: status.as_u16(),
                body: snippet(&body),
            }
        } else {
            ProviderError::Client {
                status: status.as_u16(),
                body: snippet(&body),
            }
        };
        Err(Failed { error, hint })
    };
    let backoff = ExponentialBuilder::new()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_retries as usize);
    let mut attempt = 0u32;
    once.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(Failed::retryable)
        .adjust(|f: &Failed, wait| {
            // `None` from the backoff: the retries are spent, whatever the server hints.
            let wait = f.hint.unwrap_or(wait?).min(policy.max_delay);
            if Instant::now() + wait >= deadline {
                // waiting as asked would overrun the deadline: give up now rather than hammer
                tracing::warn!(
                    status = f.status(),
                    wait_ms = wait.as_millis() as u64,
                    "llm: not retrying, deadline too close"
                );
                return None;
            }
            Some(wait)
        })
        .notify(|f: &Failed, wait| {
            tracing::warn!(
                status = f.status(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                "llm: retrying"
            );
            attempt += 1;
        })
        .await
        .map_err(|f| f.error)
}

/// Largest response body accepted; an answer is a few hundred bytes, so anything near this is
/// broken or hostile and must not exhaust memory.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

async fn read_bounded(mut response: reqwest::Response) -> Result<bytes::Bytes, ProviderError> {
    let mut body = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ProviderError::Malformed(format!(
                        "response body larger than {MAX_BODY_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) if e.is_timeout() => return Err(ProviderError::Timeout),
            Err(e) => return Err(ProviderError::Transport(without_url(&e))),
        }
    }
}

/// reqwest errors print the URL; ours may carry a key in the query for some gateways, so drop it.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retry_hints() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
        let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
        assert_eq!(google_retry_delay(body), Some(Duration::from_millis(1500)));
        assert_eq!(google_retry_delay(b"not json"), None);
    }
}
