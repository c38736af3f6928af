//! The real measurement: the canary analysis of crate `sandcanary-canary` (bench stable and
//! canary, judge, report) behind the [`Job`] seam. [`SelectedJob`] lets the binary keep the
//! placeholder for protocol tests (`SANDCANARY_JOB=placeholder`) while shipping the bench job.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use goplugin::metric::AnalysisPhase;
use sandcanary_canary::{CanaryConfig, LogSource, Progress, RunContext};
use tokio_util::sync::CancellationToken;

use crate::config::PluginConfig;
use crate::events::{self, AnalysisRunRef, KubeEvents, VerdictEvent};
use crate::job::{Job, JobContext, JobOutcome, PlaceholderJob};
use crate::kube_client;
use crate::kube_logs::KubeLogSource;
use crate::operator::{OperatorConfig, OperatorConfigError};
use crate::tenant_secrets::{self, KubeSecretReader, SecretReader, TenantScope};

/// Environment variable that picks the job of the binary: `bench` (default) or `placeholder`.
pub const JOB_ENV: &str = "SANDCANARY_JOB";

/// Prefix of the keys this job puts into `Measurement.Metadata`.
const METADATA_PREFIX: &str = "sandcanary.";
/// Metadata key saying whether the verdict's Kubernetes Event was written.
pub const EVENT_KEY: &str = "sandcanary.event";
/// Budget of writing one verdict event, client set-up included.
const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Benches canary against stable and judges it (crate `sandcanary-canary`), within what the
/// operator allows ([`OperatorConfig`]) and with tenant secrets from the run's own namespace.
#[derive(Clone)]
pub struct BenchJob {
    operator: Arc<OperatorConfig>,
    secrets: Arc<dyn SecretReader>,
}

impl Default for BenchJob {
    fn default() -> Self {
        Self::new(OperatorConfig::default())
    }
}

impl std::fmt::Debug for BenchJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchJob")
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}

impl BenchJob {
    /// Reads Secrets through the Kubernetes API.
    pub fn new(operator: OperatorConfig) -> Self {
        Self::with_reader(operator, Arc::new(KubeSecretReader))
    }

    /// With another way to read Secrets (tests of the protocol side without an API server).
    pub fn with_reader(operator: OperatorConfig, secrets: Arc<dyn SecretReader>) -> Self {
        Self {
            operator: Arc::new(operator),
            secrets,
        }
    }

    fn parse(&self, config: &PluginConfig, namespace: &str) -> Result<CanaryConfig, String> {
        let canary = CanaryConfig::from_value(serde_json::Value::Object(config.rest.clone()))
            .map_err(|e| format!("invalid sandcanary plugin configuration: {e}"))?;
        self.operator
            .check(&canary, namespace)
            .map_err(|e| format!("refused by the operator's rules: {e}"))?;
        Ok(canary)
    }
}

impl Job for BenchJob {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn check(&self, config: &PluginConfig, namespace: &str) -> Result<(), String> {
        self.parse(config, namespace).map(|_| ())
    }

    fn start(
        &self,
        ctx: JobContext,
        config: PluginConfig,
        cancel: CancellationToken,
        progress: Progress,
    ) -> BoxFuture<'static, JobOutcome> {
        let job = self.clone();
        Box::pin(async move {
            let run = AnalysisRunRef {
                namespace: ctx.namespace.clone(),
                name: ctx.analysis_run.clone(),
                uid: ctx.analysis_run_uid.clone(),
            };
            let handle = ctx.handle.clone();
            let (events_on, mut outcome) = job.analyse(ctx, config, cancel, progress).await;
            if events_on && !cancelled(&outcome) {
                let event = VerdictEvent::of(
                    &outcome.phase,
                    &outcome.message,
                    outcome.summary.get("sandcanary.issue").map(String::as_str),
                );
                let note = match kube_client::client(EVENT_TIMEOUT).await {
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

impl BenchJob {
    /// Runs the canary analysis within the operator's rules, with the tenant's secrets resolved in
    /// the run's own namespace; also says whether its verdict should become a Kubernetes Event
    /// (`kubernetesEvents`, on unless the configuration says otherwise).
    async fn analyse(
        &self,
        ctx: JobContext,
        config: PluginConfig,
        cancel: CancellationToken,
        progress: Progress,
    ) -> (bool, JobOutcome) {
        let error = |message: String| {
            (
                true,
                JobOutcome {
                    phase: AnalysisPhase::Error,
                    value: String::new(),
                    message,
                    summary: BTreeMap::new(),
                },
            )
        };
        // The keys the protocol side did not consume are the canary analysis' own.
        let mut canary = match self.parse(&config, &ctx.namespace) {
            Ok(c) => c,
            Err(e) => return error(e),
        };
        let scope = TenantScope {
            namespace: &ctx.namespace,
            secret_args: &ctx.secret_args,
            plain_args: ctx.args.keys().map(String::as_str).collect(),
        };
        if let Err(e) = tenant_secrets::resolve(&mut canary, &scope, self.secrets.as_ref()).await {
            return error(format!("secret: {e}"));
        }
        // Where the controller's own proxy tokens would go is known once the args are read.
        if let Ok((stable, canary_target)) = canary.resolve_targets(&ctx.args)
            && let Err(e) = self
                .operator
                .check_targets(&canary, &stable, &canary_target)
        {
            return error(format!("refused by the operator's rules: {e}"));
        }
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
                phase: AnalysisPhase::parse(outcome.phase.as_argo()),
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
}

/// The job the binary runs, chosen once at start-up from [`JOB_ENV`].
#[derive(Debug, Clone)]
pub enum SelectedJob {
    Bench(BenchJob),
    Placeholder(PlaceholderJob),
}

impl SelectedJob {
    /// `SANDCANARY_JOB=placeholder` selects the placeholder (protocol conformance tests); anything
    /// else, or nothing, the bench job with the operator's rules from the environment.
    pub fn from_env() -> Result<Self, OperatorConfigError> {
        Ok(match std::env::var(JOB_ENV).as_deref() {
            Ok("placeholder") => SelectedJob::Placeholder(PlaceholderJob),
            _ => SelectedJob::Bench(BenchJob::new(OperatorConfig::from_env()?)),
        })
    }
}

impl Job for SelectedJob {
    fn name(&self) -> &'static str {
        match self {
            SelectedJob::Bench(j) => j.name(),
            SelectedJob::Placeholder(j) => j.name(),
        }
    }

    fn check(&self, config: &PluginConfig, namespace: &str) -> Result<(), String> {
        match self {
            SelectedJob::Bench(j) => j.check(config, namespace),
            SelectedJob::Placeholder(j) => j.check(config, namespace),
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
        let out = BenchJob::default()
            .start(
                JobContext::default(),
                config(r#"{"pollSeconds":1,"stable":{"dataUrl":"http://127.0.0.1:1","adminUrl":"http://127.0.0.1:2"}}"#),
                CancellationToken::new(),
                Progress::new(),
            )
            .await;
        assert_eq!(out.phase, AnalysisPhase::Error);
        assert!(
            out.message.contains("missing field `canary`"),
            "{}",
            out.message
        );

        let out = BenchJob::default()
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
        // The token file is the controller's: the operator allows its directory and the proxy host.
        let dir_str = dir.display().to_string();
        let operator = OperatorConfig::from_lookup(|n| match n {
            "SANDCANARY_SECRET_DIRS" => Some(dir_str.clone()),
            "SANDCANARY_PROXY_HOSTS" => Some("127.0.0.1".into()),
            _ => None,
        })
        .unwrap();
        let out = BenchJob::new(operator.clone())
            .start(
                ctx.clone(),
                config(&json.to_string()),
                CancellationToken::new(),
                Progress::new(),
            )
            .await;
        assert_eq!(out.phase, AnalysisPhase::Error);
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
        // By default the same file is out of reach, and the job says which rule refused it.
        let out = BenchJob::default()
            .start(
                ctx,
                config(&json.to_string()),
                CancellationToken::new(),
                Progress::new(),
            )
            .await;
        assert_eq!(out.phase, AnalysisPhase::Error);
        assert!(
            out.message
                .starts_with("refused by the operator's rules: sessionApiToken: file references")
                && out.message.contains("SANDCANARY_SECRET_DIRS"),
            "{}",
            out.message
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
        let refused = serde_json::json!({
            "stable": {"dataUrl": "http://127.0.0.1:1", "adminUrl": "http://127.0.0.1:2"},
            "canary": {"dataUrlArg": "d", "adminUrlArg": "a"},
            "sessionApiToken": {"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
            "identityToken": {"env": "B"}
        });
        let e = BenchJob::default()
            .check(&config(&refused.to_string()), "ns")
            .unwrap_err();
        assert!(
            e.contains("sessionApiToken: file references never reach"),
            "{e}"
        );
        let e = BenchJob::default()
            .check(&config(&raw.to_string()), "ns")
            .unwrap_err();
        assert!(e.contains("stable.dataUrl: missing"), "{e}");
        let e = BenchJob::default()
            .check(&config(r#"{"stable":{}}"#), "ns")
            .unwrap_err();
        assert!(e.contains("missing field `canary`"), "{e}");
        // The placeholder has no canary config to check.
        assert!(
            SelectedJob::Placeholder(PlaceholderJob)
                .check(&config("{}"), "ns")
                .is_ok()
        );
    }

    #[test]
    fn the_job_is_chosen_by_name() {
        assert_eq!(SelectedJob::Bench(BenchJob::default()).name(), "bench");
        assert_eq!(
            SelectedJob::Placeholder(PlaceholderJob).name(),
            "placeholder"
        );
    }
}
