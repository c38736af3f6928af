//! The work behind one measurement. [`Job`] is the seam: the bench job
//! ([`crate::bench_job::BenchJob`]) measures and judges; [`PlaceholderJob`] only waits and reports
//! a scripted verdict, for protocol tests.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use goplugin::metric::AnalysisPhase;
use sandcanary_canary::Progress;
use sandcanary_secret::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::PluginConfig;

/// Who asked for the measurement (for logs and reports; never secrets).
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    pub namespace: String,
    pub analysis_run: String,
    /// The AnalysisRun's uid (what its events point at).
    pub analysis_run_uid: String,
    /// The measurement's job handle: names the verdict's event, so a re-run writes it once.
    pub handle: String,
    pub rollout: Option<String>,
    pub metric: String,
    /// The AnalysisRun's plain arguments with their values (secret-backed ones are left out).
    pub args: BTreeMap<String, String>,
    /// Arguments with `valueFrom.secretKeyRef`, whose values Argo resolved in the AnalysisRun's
    /// namespace before calling the plugin (for `{arg: name}` secret references).
    pub secret_args: BTreeMap<String, SecretString>,
}

/// A finished job's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// A completed phase: Successful, Failed, Inconclusive or Error.
    pub phase: AnalysisPhase,
    /// The measurement value (a 0-100 score).
    pub value: String,
    pub message: String,
    /// A short summary placed in `Measurement.Metadata` (keep it small: it lives in etcd).
    pub summary: BTreeMap<String, String>,
}

/// Long-running work started by `Run` and polled by `Resume`. Implementations must stop
/// promptly when `cancel` fires.
pub trait Job: Send + Sync + 'static {
    /// A short name shown in metadata.
    fn name(&self) -> &'static str;

    /// Checks the configuration (and the operator's rules, for a run in `namespace`) before a job
    /// starts, so `Run` answers a bad one with an Error measurement at once. Must be quick (no I/O).
    fn check(&self, _config: &PluginConfig, _namespace: &str) -> Result<(), String> {
        Ok(())
    }

    /// Starts the job. It reports how far it is through `progress`, which the runner keeps so
    /// `Resume` can show it while the job runs.
    fn start(
        &self,
        ctx: JobContext,
        config: PluginConfig,
        cancel: CancellationToken,
        progress: Progress,
    ) -> BoxFuture<'static, JobOutcome>;
}

/// The protocol tests' job (`SANDCANARY_JOB=placeholder`): waits `placeholder.durationMs` and
/// reports `placeholder.phase` with `placeholder.score`. It measures nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlaceholderJob;

impl Job for PlaceholderJob {
    fn name(&self) -> &'static str {
        "placeholder"
    }

    fn start(
        &self,
        ctx: JobContext,
        config: PluginConfig,
        cancel: CancellationToken,
        _progress: Progress,
    ) -> BoxFuture<'static, JobOutcome> {
        Box::pin(async move {
            let p = config.placeholder;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(p.duration_ms)) => {}
                _ = cancel.cancelled() => {
                    return JobOutcome {
                        phase: AnalysisPhase::Inconclusive,
                        value: String::new(),
                        message: "placeholder job cancelled".into(),
                        summary: BTreeMap::new(),
                    };
                }
            }
            tracing::info!(metric = %ctx.metric, analysisrun = %ctx.analysis_run, "placeholder job finished");
            JobOutcome {
                phase: AnalysisPhase::parse(&p.phase),
                value: format!("{}", p.score),
                message: "placeholder job: no benchmark was run".into(),
                summary: BTreeMap::from([("sandcanary.job".into(), "placeholder".into())]),
            }
        })
    }
}
