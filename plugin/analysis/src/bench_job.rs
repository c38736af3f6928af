//! The real measurement: the canary analysis of crate `sandcanary-canary` (bench stable and
//! canary, judge, report) behind the [`Job`] seam. [`SelectedJob`] lets the binary keep the
//! placeholder for protocol tests (`SANDCANARY_JOB=placeholder`) while shipping the bench job.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use goplugin::metric::Phase;
use sandcanary_canary::{CanaryConfig, LogSource, Progress, RunContext};
use tokio_util::sync::CancellationToken;

use crate::config::PluginConfig;
use crate::events::{self, AnalysisRunRef, KubeEvents, VerdictEvent};
use crate::job::{Job, JobContext, JobOutcome, PlaceholderJob};
use crate::kube_logs::KubeLogSource;

/// Environment variable that picks the job of the binary: `bench` (default) or `placeholder`.
pub const JOB_ENV: &str = "SANDCANARY_JOB";

/// Prefix of the keys this job puts into `Measurement.Metadata`.
const METADATA_PREFIX: &str = "sandcanary.";
/// Metadata key saying whether the verdict's Kubernetes Event was written.
pub const EVENT_KEY: &str = "sandcanary.event";
/// Budget of writing one verdict event, client set-up included.
const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Benches canary against stable and judges it (crate `sandcanary-canary`).
#[derive(Debug, Default, Clone, Copy)]
pub struct BenchJob;

impl Job for BenchJob {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn check(&self, config: &PluginConfig) -> Result<(), String> {
        CanaryConfig::from_value(serde_json::Value::Object(config.rest.clone()))
            .map(|_| ())
            .map_err(|e| format!("invalid sandcanary plugin configuration: {e}"))
    }

    fn start(
        &self,
        ctx: JobContext,
        config: PluginConfig,
        cancel: CancellationToken,
        progress: Progress,
    ) -> BoxFuture<'static, JobOutcome> {
        Box::pin(async move {
            let run = AnalysisRunRef {
                namespace: ctx.namespace.clone(),
                name: ctx.analysis_run.clone(),
                uid: ctx.analysis_run_uid.clone(),
            };
            let handle = ctx.handle.clone();
            let (events_on, mut outcome) = analyse(ctx, config, cancel, progress).await;
            if events_on && !cancelled(&outcome) {
                let event = VerdictEvent::of(
                    &outcome.phase,
                    &outcome.message,
                    outcome.summary.get("sandcanary.issue").map(String::as_str),
                );
                let note = match events::client(EVENT_TIMEOUT).await {
                    Ok(client) => {
                        let sink = KubeEvents::new(client);
                        events::record_verdict(&sink, &run, &handle, &event, EVENT_TIMEOUT).await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "verdict event not recorded");
                        format!("not recorded: {e}")
                    }
                };
                outcome.summary.insert(EVENT_KEY.into(), note);
            }
            outcome
        })
    }
}

/// A cancelled job (Terminate) is not a verdict: no event.
fn cancelled(outcome: &JobOutcome) -> bool {
    outcome
        .summary
        .get("sandcanary.cancelled")
        .map(String::as_str)
        == Some("true")
}

/// Runs the canary analysis; also says whether its verdict should become a Kubernetes Event
/// (`kubernetesEvents`, on unless the configuration says otherwise).
async fn analyse(
    ctx: JobContext,
    config: PluginConfig,
    cancel: CancellationToken,
    progress: Progress,
) -> (bool, JobOutcome) {
    // The keys the protocol side did not consume are the canary analysis' own.
    let canary = match CanaryConfig::from_value(serde_json::Value::Object(config.rest)) {
        Ok(c) => c,
        Err(e) => {
            return (
                true,
                JobOutcome {
                    phase: Phase::Error,
                    value: String::new(),
                    message: format!("invalid sandcanary plugin configuration: {e}"),
                    summary: BTreeMap::new(),
                },
            );
        }
    };
    let run_ctx = RunContext {
        namespace: ctx.namespace,
        analysis_run: ctx.analysis_run,
        rollout: ctx.rollout,
        metric: ctx.metric,
        args: ctx.args,
    };
    // The Kubernetes client exists only when pod logs are asked for.
    let logs = canary
        .pod_logs
        .as_ref()
        .map(|l| KubeLogSource::new(std::time::Duration::from_secs(l.timeout_seconds)));
    let outcome = sandcanary_canary::run_with_logs(
        &canary,
        &run_ctx,
        cancel,
        progress,
        logs.as_ref().map(|l| l as &dyn LogSource),
    )
    .await;
    (
        canary.kubernetes_events,
        JobOutcome {
            phase: Phase::parse(outcome.phase.as_argo()),
            value: outcome.value(),
            message: outcome.message.clone(),
            summary: outcome
                .summary
                .into_iter()
                .map(|(k, v)| (format!("{METADATA_PREFIX}{k}"), v))
                .collect(),
        },
    )
}

/// The job the binary runs, chosen once at start-up from [`JOB_ENV`].
#[derive(Debug, Clone, Copy)]
pub enum SelectedJob {
    Bench(BenchJob),
    Placeholder(PlaceholderJob),
}

impl SelectedJob {
    /// `SANDCANARY_JOB=placeholder` selects the placeholder (protocol conformance tests); anything
    /// else, or nothing, the bench job.
    pub fn from_env() -> Self {
        match std::env::var(JOB_ENV).as_deref() {
            Ok("placeholder") => SelectedJob::Placeholder(PlaceholderJob),
            _ => SelectedJob::Bench(BenchJob),
        }
    }
}

impl Job for SelectedJob {
    fn name(&self) -> &'static str {
        match self {
            SelectedJob::Bench(j) => j.name(),
            SelectedJob::Placeholder(j) => j.name(),
        }
    }

    fn check(&self, config: &PluginConfig) -> Result<(), String> {
        match self {
            SelectedJob::Bench(j) => j.check(config),
            SelectedJob::Placeholder(j) => j.check(config),
        }
    }

    fn start(
        &self,
        ctx: JobContext,
        config: PluginConfig,
        cancel: CancellationToken,
        progress: Progress,
    ) -> BoxFuture<'static, JobOutcome> {
        match self {
            SelectedJob::Bench(j) => j.start(ctx, config, cancel, progress),
            SelectedJob::Placeholder(j) => j.start(ctx, config, cancel, progress),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> PluginConfig {
        PluginConfig::parse(json.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn a_bad_canary_config_is_an_error_naming_the_field() {
        let out = BenchJob
            .start(
                JobContext::default(),
                config(r#"{"pollSeconds":1,"stable":{"dataUrl":"http://127.0.0.1:1","adminUrl":"http://127.0.0.1:2"}}"#),
                CancellationToken::new(),
                Progress::new(),
            )
            .await;
        assert_eq!(out.phase, Phase::Error);
        assert!(
            out.message.contains("missing field `canary`"),
            "{}",
            out.message
        );

        let out = BenchJob
            .start(
                JobContext::default(),
                config(r#"{"stable":{"dataUrl":"http://127.0.0.1:1","adminUrl":"http://127.0.0.1:2","typo":1}}"#),
                CancellationToken::new(),
                Progress::new(),
            )
            .await;
        assert!(out.message.contains("stable.typo"), "{}", out.message);
    }

    #[tokio::test]
    async fn an_unreachable_target_is_an_error_measurement_with_prefixed_metadata() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("sandcanary-benchjob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "t").unwrap();
        let json = serde_json::json!({
            "stable": {"dataUrl": format!("http://127.0.0.1:{closed}"), "adminUrl": format!("http://127.0.0.1:{closed}")},
            "canary": {"dataUrlArg": "canary-data", "adminUrlArg": "canary-admin"},
            "sessionApiToken": {"file": token},
            "identityToken": {"file": token}
        });
        let ctx = JobContext {
            args: BTreeMap::from([
                (
                    "canary-data".to_string(),
                    format!("http://127.0.0.1:{closed}"),
                ),
                (
                    "canary-admin".to_string(),
                    format!("http://127.0.0.1:{closed}"),
                ),
            ]),
            ..Default::default()
        };
        let out = BenchJob
            .start(
                ctx,
                config(&json.to_string()),
                CancellationToken::new(),
                Progress::new(),
            )
            .await;
        assert_eq!(out.phase, Phase::Error);
        assert!(
            out.message.starts_with("stable target: session API"),
            "{}",
            out.message
        );
        assert!(
            out.summary.keys().all(|k| k.starts_with("sandcanary.")),
            "{:?}",
            out.summary
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn run_checks_the_canary_config_before_starting() {
        let raw = serde_json::json!({
            "pollSeconds": 1,
            "stable": {},
            "canary": {"dataUrlArg": "d", "adminUrlArg": "a"},
            "sessionApiToken": {"env": "A"},
            "identityToken": {"env": "B"}
        });
        let e = BenchJob.check(&config(&raw.to_string())).unwrap_err();
        assert!(e.contains("stable.dataUrl: missing"), "{e}");
        let e = BenchJob.check(&config(r#"{"stable":{}}"#)).unwrap_err();
        assert!(e.contains("missing field `canary`"), "{e}");
        // The placeholder has no canary config to check.
        assert!(
            SelectedJob::Placeholder(PlaceholderJob)
                .check(&config("{}"))
                .is_ok()
        );
    }

    #[test]
    fn the_job_is_chosen_by_name() {
        assert_eq!(SelectedJob::Bench(BenchJob).name(), "bench");
        assert_eq!(
            SelectedJob::Placeholder(PlaceholderJob).name(),
            "placeholder"
        );
    }
}
