//! The LLM judge: a model explains and may veto, the statistics stay the backstop.
//!
//! The prompt carries the statistical verdict and the comparison table (trusted numbers) and
//! the failure reasons and optional pod logs (untrusted, fenced; see [`prompt`]). The answer
//! must parse against the schema in [`answer`]. Below the confidence threshold, or on a
//! timeout, an HTTP or protocol error, or an answer outside the schema, the statistical verdict
//! is returned instead and the summary says so.

pub mod a2a;
pub mod answer;
pub mod gemini;
pub mod openai;
pub mod prompt;
pub mod provider;
pub mod secret;

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::judge::Judge;
use crate::model::Comparison;
use crate::statistical::{JudgeConfigError, StatisticalConfig, StatisticalJudge};
use crate::verdict::{SUMMARY_MAX, Verdict, VerdictPhase, truncate};

use self::a2a::{A2a, A2aConfig};
use self::answer::Answer;
use self::gemini::{Gemini, GeminiConfig};
use self::openai::{OpenAi, OpenAiConfig};
use self::prompt::{ContextText, Limits, PromptInput};
use self::provider::{Provider, RetryPolicy};

/// Which service answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProviderConfig {
    Gemini(GeminiConfig),
    /// Any OpenAI-compatible chat completions endpoint.
    Openai(OpenAiConfig),
    A2a(A2aConfig),
}

/// How much the model's answer may change the statistical verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The model can make the verdict stricter, never more lenient: it cannot turn a statistical
    /// Failed into a pass, a rejection turns Successful into Inconclusive (a human looks) and
    /// Inconclusive into Failed.
    #[default]
    Conservative,
    /// The model decides: promote gives Successful, otherwise Failed (as the predecessor plugin
    /// did, but only above the confidence threshold).
    Decisive,
}

/// Settings of the LLM judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LlmConfig {
    pub provider: ProviderConfig,
    /// Answers below this confidence (0-100) are not used.
    #[serde(default = "default_threshold")]
    #[schemars(range(max = 100))]
    pub confidence_threshold: u8,
    #[serde(default)]
    pub mode: Mode,
    /// Budget for the whole exchange, retries included.
    #[serde(default = "default_timeout")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub timeout_seconds: f64,
    /// Retries on 429 and 5xx only.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Operator's note appended to the prompt (trusted: it comes from the template).
    pub extra_prompt: Option<String>,
    /// Bytes of each extra context text (pod logs) kept.
    #[serde(default = "default_context_bytes")]
    #[schemars(range(min = 1))]
    pub max_context_bytes: usize,
    /// The statistical judge used for the prompt and as the fallback.
    #[serde(default)]
    pub statistical: StatisticalConfig,
}

fn default_threshold() -> u8 {
    70
}
fn default_timeout() -> f64 {
    60.0
}
fn default_retries() -> u32 {
    2
}
fn default_context_bytes() -> usize {
    8 * 1024
}

impl LlmConfig {
    /// A config with defaults around a provider.
    pub fn new(provider: ProviderConfig) -> Self {
        Self {
            provider,
            confidence_threshold: default_threshold(),
            mode: Mode::default(),
            timeout_seconds: default_timeout(),
            max_retries: default_retries(),
            extra_prompt: None,
            max_context_bytes: default_context_bytes(),
            statistical: StatisticalConfig::default(),
        }
    }

    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        let bad = |field: &str, why: &str| JudgeConfigError::Invalid {
            field: field.into(),
            why: why.into(),
        };
        if self.confidence_threshold > 100 {
            return Err(bad("confidenceThreshold", "must be between 0 and 100"));
        }
        if !(self.timeout_seconds.is_finite()
            && self.timeout_seconds > 0.0
            && self.timeout_seconds <= 3600.0)
        {
            return Err(bad("timeoutSeconds", "must be between 0 and 3600"));
        }
        if self.max_retries > 10 {
            return Err(bad("maxRetries", "must be at most 10"));
        }
        if self.max_context_bytes > 256 * 1024 {
            return Err(bad("maxContextBytes", "must be at most 262144"));
        }
        let check_url = |field: &str, url: &str| {
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(())
            } else {
                Err(bad(field, "must be an http(s) URL"))
            }
        };
        let secret = |field: &str, s: &secret::SecretRef| {
            s.check().map_err(|e| match e {
                secret::SecretError::Invalid { field: f, why } if !f.is_empty() => {
                    bad(&format!("{field}.{f}"), &why)
                }
                e => bad(field, &e.to_string()),
            })
        };
        match &self.provider {
            ProviderConfig::Gemini(g) => {
                check_url("provider.baseUrl", &g.base_url)?;
                if g.model.trim().is_empty() || g.model.contains(['/', '?', '#', ' ']) {
                    return Err(bad("provider.model", "must be a plain model name"));
                }
                secret("provider.apiKey", &g.api_key)?;
            }
            ProviderConfig::Openai(o) => {
                check_url("provider.baseUrl", &o.base_url)?;
                if o.model.trim().is_empty() {
                    return Err(bad("provider.model", "must not be empty"));
                }
                if let Some(k) = &o.api_key {
                    secret("provider.apiKey", k)?;
                }
            }
            ProviderConfig::A2a(a) => {
                check_url("provider.url", &a.url)?;
                if let Some(k) = &a.token {
                    secret("provider.token", k)?;
                }
            }
        }
        self.statistical
            .validate()
            .map_err(
                |JudgeConfigError::Invalid { field, why }| JudgeConfigError::Invalid {
                    field: format!("statistical.{field}"),
                    why,
                },
            )
    }
}

/// The LLM judge.
pub struct LlmJudge {
    config: LlmConfig,
    statistical: StatisticalJudge,
    provider: Box<dyn Provider>,
}

impl LlmJudge {
    /// Builds the judge and its HTTP client (rustls).
    pub fn new(config: LlmConfig) -> Result<Self, JudgeConfigError> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("sandcanary-judge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // The key goes to the configured endpoint only: a redirect would carry Gemini's
            // x-goog-api-key header (which reqwest keeps across hosts) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JudgeConfigError::Invalid {
                field: "provider".into(),
                why: format!("cannot build HTTP client: {e}"),
            })?;
        let retry = RetryPolicy {
            max_retries: config.max_retries,
            ..RetryPolicy::default()
        };
        let provider: Box<dyn Provider> = match config.provider.clone() {
            ProviderConfig::Gemini(c) => Box::new(Gemini::new(c, client, retry)),
            ProviderConfig::Openai(c) => Box::new(OpenAi::new(c, client, retry)),
            ProviderConfig::A2a(c) => Box::new(A2a::new(c, client, retry)),
        };
        Self::with_provider(config, provider)
    }

    /// Builds the judge around any provider (another service, or a test double).
    pub fn with_provider(
        config: LlmConfig,
        provider: Box<dyn Provider>,
    ) -> Result<Self, JudgeConfigError> {
        config.validate()?;
        let statistical = StatisticalJudge::new(config.statistical.clone())?;
        Ok(Self {
            config,
            statistical,
            provider,
        })
    }

    /// Judges with extra untrusted context (e.g. the tails of the stable and canary pod logs).
    pub async fn judge_with_context(&self, input: &Comparison, context: &[ContextText]) -> Verdict {
        let stat = self.statistical.evaluate(input);
        if stat.phase == VerdictPhase::Error {
            let mut v = stat;
            v.judge = "llm".into();
            return v;
        }
        let secrets = self.provider.secrets();
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let prompt = prompt::build(
            &PromptInput {
                comparison: input,
                statistical: &stat,
                extra_prompt: self.config.extra_prompt.as_deref(),
                context,
                secrets: &secret_refs,
                limits: Limits {
                    context_bytes: self.config.max_context_bytes,
                    ..Limits::default()
                },
            },
            prompt::new_nonce(),
        );
        let digest = prompt.digest();
        let provider = self.provider.describe();
        let budget = Duration::from_secs_f64(self.config.timeout_seconds);
        let started = Instant::now();
        let deadline = started + budget;
        let outcome = match tokio::time::timeout(budget, self.provider.ask(&prompt, deadline)).await
        {
            Err(_) => Err(format!("timed out after {:.0}s", budget.as_secs_f64())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(text)) => answer::parse(&text).map_err(|e| e.to_string()),
        };
        // error bodies may echo what we sent (a key in a 401 body): scrub before it is stored
        let outcome = outcome.map_err(|why| prompt::redact(&why, &secret_refs));
        let latency_ms = started.elapsed().as_millis() as u64;
        let mut audit = std::collections::BTreeMap::new();
        audit.insert("llm".to_string(), provider.clone());
        audit.insert("prompt_sha256".to_string(), digest[..16].to_string());
        audit.insert("llm_latency_ms".to_string(), latency_ms.to_string());
        match outcome {
            Err(why) => {
                tracing::warn!(provider = %provider, latency_ms, error = %why, "llm judge falls back to statistical");
                fallback(stat, &why, audit)
            }
            Ok(a) if a.confidence < self.config.confidence_threshold => {
                let why = format!(
                    "confidence {} below threshold {}",
                    a.confidence, self.config.confidence_threshold
                );
                tracing::info!(provider = %provider, latency_ms, confidence = a.confidence, "llm judge falls back to statistical");
                audit.insert("llm_confidence".into(), a.confidence.to_string());
                audit.insert("llm_promote".into(), a.promote.to_string());
                fallback(stat, &why, audit)
            }
            Ok(a) => {
                tracing::info!(provider = %provider, latency_ms, confidence = a.confidence, promote = a.promote, "llm judge answered");
                self.combine(stat, &a, &provider, audit)
            }
        }
    }

    fn combine(
        &self,
        stat: Verdict,
        a: &Answer,
        provider: &str,
        mut audit: std::collections::BTreeMap<String, String>,
    ) -> Verdict {
        let phase = match (self.config.mode, a.promote, stat.phase) {
            (Mode::Decisive, true, _) => VerdictPhase::Successful,
            (Mode::Decisive, false, _) => VerdictPhase::Failed,
            (Mode::Conservative, true, p) => p,
            (Mode::Conservative, false, VerdictPhase::Successful) => VerdictPhase::Inconclusive,
            (Mode::Conservative, false, _) => VerdictPhase::Failed,
        };
        audit.insert("llm_confidence".into(), a.confidence.to_string());
        audit.insert("llm_promote".into(), a.promote.to_string());
        let mut reasons = vec![format!(
            "llm ({provider}): promote={} confidence={}; statistical verdict {} score {:.2}",
            a.promote, a.confidence, stat.phase, stat.score
        )];
        // model output is untrusted text too: bounded here, escaped by whoever renders it
        reasons.extend(
            a.reasons
                .iter()
                .map(|r| format!("llm: {}", truncate(r, 300))),
        );
        reasons.extend(stat.reasons.iter().cloned());
        let summary = truncate(
            &format!(
                "llm: {phase} promote={} conf={} | stat {} {:.2}{}",
                a.promote,
                a.confidence,
                stat.phase,
                stat.score,
                failing_suffix(&stat)
            ),
            SUMMARY_MAX,
        );
        Verdict {
            judge: "llm".into(),
            phase,
            score: stat.score,
            metrics: stat.metrics,
            reasons,
            summary,
            audit,
        }
    }
}

fn failing_suffix(v: &Verdict) -> String {
    let f = v.failing_metrics();
    if f.is_empty() {
        String::new()
    } else {
        format!(" failing: {}", f.join(","))
    }
}

/// The statistical verdict, marked as a fallback with the reason.
fn fallback(
    stat: Verdict,
    why: &str,
    mut audit: std::collections::BTreeMap<String, String>,
) -> Verdict {
    let why = truncate(why, 120);
    audit.insert("llm_fallback".into(), why.clone());
    let mut v = stat;
    v.judge = "llm->statistical".into();
    v.reasons.insert(
        0,
        format!("LLM answer not used ({why}); statistical verdict applies"),
    );
    v.summary = truncate(
        &format!(
            "llm fallback ({why}): stat {} {:.2}{}",
            v.phase,
            v.score,
            failing_suffix(&v)
        ),
        SUMMARY_MAX,
    );
    v.audit = audit;
    v
}

#[async_trait]
impl Judge for LlmJudge {
    fn name(&self) -> &str {
        "llm"
    }

    async fn judge(&self, input: &Comparison) -> Verdict {
        LlmJudge::judge_with_context(self, input, &[]).await
    }

    async fn judge_with_context(&self, input: &Comparison, context: &[ContextText]) -> Verdict {
        // the inherent method (method resolution prefers it over this trait method)
        LlmJudge::judge_with_context(self, input, context).await
    }
}
