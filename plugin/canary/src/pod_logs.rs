//! The proxies' pod logs as extra (untrusted) context for the LLM judge.
//!
//! Reading logs is optional and must never decide the analysis: each side is read with a byte cap
//! and a deadline, and any failure becomes an "unavailable" note in the prompt and the metadata.
//! The Kubernetes client sits behind [`LogSource`], so this crate (and a job without `podLogs`)
//! does not depend on kube; the plugin binary supplies the implementation.

use std::time::Duration;

use futures::future::BoxFuture;
use sandcanary_judge::llm::prompt::{ContextText, redact};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::CanaryConfigError;

/// Containers of a service mesh that are never the proxy: skipped when no container is named.
pub const MESH_CONTAINERS: [&str; 2] = ["istio-proxy", "istio-init"];

/// How much more than `maxBytes` is read (and sent as `limitBytes`), so the newest bytes can be
/// kept even when the last `tailLines` lines are longer than `maxBytes`.
pub const READ_FACTOR: u64 = 4;

/// Upper bounds of the `podLogs` settings.
pub const MAX_LOG_BYTES: u64 = 256 * 1024;
pub const MAX_TAIL_LINES: u64 = 10_000;
pub const MAX_LOG_TIMEOUT_SECONDS: u64 = 120;

/// `podLogs`: the stable and canary proxy pods' logs as untrusted, fenced context for the llm
/// judge (only with judge type llm). Read through the Kubernetes API (in-cluster config or
/// KUBECONFIG; needs get/list on pods and get on pods/log), bounded in size and time; a failed
/// read never fails the analysis, it is reported as unavailable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "podLogs")]
pub struct PodLogsConfig {
    /// Label selector of the stable proxy pods (`app=proxy,track=stable`).
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[A-Za-z0-9=!,._/-]+$"))]
    pub stable_selector: String,
    /// Label selector of the canary proxy pods.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[A-Za-z0-9=!,._/-]+$"))]
    pub canary_selector: String,
    /// Namespace of the pods; the AnalysisRun's namespace when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// Container to read; the first container that is not a mesh sidecar when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))]
    pub container: Option<String>,
    /// Only lines newer than this; the bench's duration (plus a margin) when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub since_seconds: Option<u64>,
    /// Only the last lines.
    #[serde(default = "default_tail_lines")]
    #[schemars(range(min = 1, max = MAX_TAIL_LINES))]
    pub tail_lines: u64,
    /// Bytes kept per side (the newest). The API returns the first `limitBytes` of the selected
    /// lines, so `READ_FACTOR` times this is read and the tail kept.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1, max = MAX_LOG_BYTES))]
    pub max_bytes: u64,
    /// Deadline for reading one side, listing included.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = MAX_LOG_TIMEOUT_SECONDS))]
    pub timeout_seconds: u64,
}

fn default_tail_lines() -> u64 {
    200
}
fn default_max_bytes() -> u64 {
    16 * 1024
}
fn default_timeout() -> u64 {
    10
}

impl PodLogsConfig {
    pub(crate) fn validate(&self) -> Result<(), CanaryConfigError> {
        for (key, sel) in [
            ("podLogs.stableSelector", &self.stable_selector),
            ("podLogs.canarySelector", &self.canary_selector),
        ] {
            if !is_selector(sel) {
                return Err(CanaryConfigError::at(
                    key,
                    "must be a label selector (key=value[,key!=value,...])",
                ));
            }
        }
        if let Some(ns) = &self.namespace
            && !is_dns_label(ns)
        {
            return Err(CanaryConfigError::at(
                "podLogs.namespace",
                "must be a namespace name",
            ));
        }
        if let Some(c) = &self.container
            && !is_dns_label(c)
        {
            return Err(CanaryConfigError::at(
                "podLogs.container",
                "must be a container name",
            ));
        }
        if self.since_seconds == Some(0) {
            return Err(CanaryConfigError::at(
                "podLogs.sinceSeconds",
                "must be at least 1",
            ));
        }
        for (key, v, max) in [
            ("podLogs.tailLines", self.tail_lines, MAX_TAIL_LINES),
            ("podLogs.maxBytes", self.max_bytes, MAX_LOG_BYTES),
            (
                "podLogs.timeoutSeconds",
                self.timeout_seconds,
                MAX_LOG_TIMEOUT_SECONDS,
            ),
        ] {
            if !(1..=max).contains(&v) {
                return Err(CanaryConfigError::at(
                    key,
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        Ok(())
    }
}

/// Label selectors as Kubernetes accepts them, restricted to a plain alphabet (no set syntax).
fn is_selector(s: &str) -> bool {
    !s.trim().is_empty()
        && s.len() <= 1024
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'=' | b'!' | b',' | b'-' | b'_' | b'.' | b'/')
        })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// One side's read, as a [`LogSource`] is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub selector: String,
    pub container: Option<String>,
    pub since_seconds: Option<u64>,
    pub tail_lines: u64,
    /// Bytes to read at most (sent as `limitBytes`, and enforced by the reader).
    pub max_bytes: u64,
}

/// Logs of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLog {
    pub pod: String,
    pub container: String,
    /// At most `max_bytes` (lossy UTF-8).
    pub text: String,
}

/// Why a side's logs are unavailable; the message may be shown to users and the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("no pod matches {selector:?} in namespace {namespace}")]
    NoPod { namespace: String, selector: String },
    #[error("pod {pod} has no container to read (only mesh sidecars, or {container:?} absent)")]
    NoContainer { pod: String, container: String },
    #[error("{0}")]
    Api(String),
    #[error("timed out after {0}s")]
    Timeout(u64),
    #[error("no Kubernetes log source is available")]
    NoSource,
}

/// Where pod logs come from: the Kubernetes API in the plugin, a fixed text in tests.
pub trait LogSource: Send + Sync {
    fn read<'a>(&'a self, request: &'a LogRequest) -> BoxFuture<'a, Result<PodLog, LogError>>;
}

/// What the reads gave: the context for the judge and one line for the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatheredLogs {
    pub context: Vec<ContextText>,
    pub summary: String,
}

/// Reads the stable and canary logs concurrently, each within the deadline. Never fails: an
/// unavailable side is a note. `bench_elapsed` bounds the log window when `sinceSeconds` is
/// not set, so the model sees what happened while the bench ran.
pub async fn gather(
    source: Option<&dyn LogSource>,
    config: &PodLogsConfig,
    default_namespace: &str,
    bench_elapsed: Duration,
) -> GatheredLogs {
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_string());
    let since = config.since_seconds.unwrap_or(bench_elapsed.as_secs() + 30);
    let request = |selector: &str| LogRequest {
        namespace: namespace.clone(),
        selector: selector.to_string(),
        container: config.container.clone(),
        since_seconds: Some(since),
        tail_lines: config.tail_lines,
        max_bytes: config.max_bytes * READ_FACTOR,
    };
    let (stable_req, canary_req) = (
        request(&config.stable_selector),
        request(&config.canary_selector),
    );
    let deadline = Duration::from_secs(config.timeout_seconds);
    let read_one = |req: &'_ LogRequest| {
        let req = req.clone();
        async move {
            let Some(source) = source else {
                return Err(LogError::NoSource);
            };
            match tokio::time::timeout(deadline, source.read(&req)).await {
                Ok(r) => r,
                Err(_) => Err(LogError::Timeout(deadline.as_secs())),
            }
        }
    };
    let (stable, canary) = futures::join!(read_one(&stable_req), read_one(&canary_req));

    let mut context = Vec::with_capacity(2);
    let mut parts = Vec::with_capacity(2);
    for (side, result) in [("stable", stable), ("canary", canary)] {
        match result {
            Ok(mut log) => {
                cap_tail(&mut log.text, config.max_bytes as usize);
                tracing::info!(side, pod = %log.pod, container = %log.container, bytes = log.text.len(), "pod logs read");
                parts.push(format!("{side}: {} B from {}", log.text.len(), log.pod));
                context.push(ContextText {
                    label: format!("{side} proxy pod logs ({}/{})", log.pod, log.container),
                    text: log.text,
                });
            }
            Err(e) => {
                // Error texts can quote server answers; scrub them like any untrusted text.
                let why = redact(&e.to_string(), &[]);
                tracing::warn!(side, error = %why, "pod logs unavailable");
                parts.push(format!("{side}: unavailable ({why})"));
                context.push(ContextText {
                    label: format!("{side} proxy pod logs unavailable"),
                    text: format!("The {side} pod logs could not be read: {why}"),
                });
            }
        }
    }
    GatheredLogs {
        context,
        summary: sandcanary_judge::verdict::truncate(&parts.join("; "), 200),
    }
}

/// Keeps the last `max` bytes on a character boundary (the newest lines matter most).
fn cap_tail(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<PodLog, LogError>, Duration);

    impl LogSource for Fixed {
        fn read<'a>(&'a self, _r: &'a LogRequest) -> BoxFuture<'a, Result<PodLog, LogError>> {
            Box::pin(async move {
                tokio::time::sleep(self.1).await;
                self.0.clone()
            })
        }
    }

    fn config() -> PodLogsConfig {
        serde_json::from_value(serde_json::json!({
            "stableSelector": "app=proxy,track=stable",
            "canarySelector": "app=proxy,track=canary",
            "maxBytes": 8,
            "timeoutSeconds": 1
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn logs_are_capped_to_their_tail() {
        let src = Fixed(
            Ok(PodLog {
                pod: "p".into(),
                container: "c".into(),
                text: "0123456789abcdef".into(),
            }),
            Duration::ZERO,
        );
        let g = gather(Some(&src), &config(), "ns", Duration::from_secs(5)).await;
        assert_eq!(g.context.len(), 2);
        assert_eq!(g.context[0].text, "89abcdef");
        assert_eq!(g.summary, "stable: 8 B from p; canary: 8 B from p");
    }

    #[tokio::test]
    async fn a_slow_or_missing_source_is_unavailable_not_an_error() {
        let slow = Fixed(Err(LogError::NoSource), Duration::from_secs(30));
        let started = std::time::Instant::now();
        let g = gather(Some(&slow), &config(), "ns", Duration::ZERO).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded in time"
        );
        assert!(
            g.summary
                .contains("stable: unavailable (timed out after 1s)")
        );
        assert!(g.context[1].label.contains("unavailable"));
        let g = gather(None, &config(), "ns", Duration::ZERO).await;
        assert!(
            g.summary.contains("no Kubernetes log source"),
            "{}",
            g.summary
        );
    }

    #[test]
    fn settings_are_checked_and_named() {
        let mut c = config();
        c.stable_selector = "app in (a,b)".into();
        assert_eq!(c.validate().unwrap_err().path, "podLogs.stableSelector");
        let mut c = config();
        c.max_bytes = MAX_LOG_BYTES + 1;
        assert_eq!(c.validate().unwrap_err().path, "podLogs.maxBytes");
        let mut c = config();
        c.namespace = Some("Bad_NS".into());
        assert_eq!(c.validate().unwrap_err().path, "podLogs.namespace");
        assert!(config().validate().is_ok());
    }
}
