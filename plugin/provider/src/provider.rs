//! The metric provider Argo talks to: `Run` starts a job and returns `Running` with `ResumeAt`
//! and the job handle in `Metadata`; `Resume` reports progress or the verdict; `Terminate`
//! cancels.

use std::collections::BTreeMap;
use std::time::Duration;

use goplugin::gob::GoTime;
use goplugin::metric::{
    AnalysisPhase, AnalysisRun, GarbageCollectArgs, GetMetadataArgs, Measurement, Metric,
    MetricProvider, RunArgs, TerminateAndResumeArgs,
};

use sandcanary_secret::SecretString;

use crate::config::{PluginConfig, PluginConfigError};
use crate::job::{Job, JobContext};
use crate::runner::{JobRunner, JobStatus};

/// The `Measurement.Metadata` key holding the job handle.
pub const HANDLE_KEY: &str = "sandcanary.handle";
/// Prefix of the progress keys `Resume` writes while the job runs (removed with the verdict).
pub const PROGRESS_PREFIX: &str = "sandcanary.progress.";

/// Serves sandcanary measurements with job `J`.
pub struct SandcanaryProvider<J> {
    runner: JobRunner<J>,
}

fn config_of(metric: &Metric) -> Result<PluginConfig, PluginConfigError> {
    let (_, raw) = metric.plugin_config().ok_or(PluginConfigError::Missing)?;
    PluginConfig::parse(raw)
}

fn context(run: &AnalysisRun, metric: &Metric, handle: &str) -> JobContext {
    JobContext {
        namespace: run.namespace.clone(),
        analysis_run: run.name.clone(),
        analysis_run_uid: run.uid.clone(),
        handle: handle.to_string(),
        rollout: run.rollout_name().map(str::to_string),
        metric: metric.name.clone(),
        args: run
            .args
            .iter()
            .filter(|a| a.secret_key_ref.is_none())
            .filter_map(|a| a.value.clone().map(|v| (a.name.clone(), v)))
            .collect(),
        // Argo (analysis.go, resolveArgs) reads valueFrom.secretKeyRef in the AnalysisRun's
        // namespace and sends the value along in Spec.Args, keeping ValueFrom set.
        secret_args: run
            .args
            .iter()
            .filter(|a| a.secret_key_ref.is_some())
            .filter_map(|a| {
                a.value
                    .clone()
                    .map(|v| (a.name.clone(), SecretString::from(v)))
            })
            .collect(),
    }
}

/// Longest job handle accepted from a measurement: ours are `<uid>/<metric>/<n>` (a UID, a
/// metric name of at most 253 bytes and a count). The measurement's metadata is stored in the
/// AnalysisRun's status, so anyone who can write that status can put anything there.
pub const MAX_HANDLE_BYTES: usize = 320;

/// At most this much of an untrusted string goes into a log line.
pub const MAX_LOGGED_BYTES: usize = 128;

/// `s` cut to [`MAX_LOGGED_BYTES`] (at a character boundary) with control characters escaped,
/// so untrusted input can neither flood the log nor forge lines in it.
pub fn loggable(s: &str) -> String {
    let mut end = s.len().min(MAX_LOGGED_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = s[..end].escape_debug().collect();
    if end < s.len() {
        out.push_str(&format!("…({} bytes)", s.len()));
    }
    out
}

/// A handle that is the same for every `Run` of the same measurement slot, so a repeated `Run`
/// does not start a second job: run UID, metric name, and how many measurements it has.
fn handle_for(run: &AnalysisRun, metric: &Metric) -> String {
    let n = run
        .metric_results
        .iter()
        .find(|r| r.name == metric.name)
        .map(|r| r.measurements.len())
        .unwrap_or(0);
    format!("{}/{}/{}", run.uid, metric.name, n)
}

impl<J: Job> SandcanaryProvider<J> {
    pub fn new(job: J) -> Self {
        SandcanaryProvider {
            runner: JobRunner::new(job),
        }
    }

    fn running(mut m: Measurement, poll: u64, message: String) -> Measurement {
        m.phase = AnalysisPhase::Running;
        m.message = message;
        m.resume_at = Some(GoTime::now().plus(Duration::from_secs(poll)));
        m.finished_at = None;
        m
    }
}

impl<J: Job> MetricProvider for SandcanaryProvider<J> {
    async fn init(&self) -> Result<(), String> {
        tracing::info!(job = self.runner.job_name(), "sandcanary plugin ready");
        Ok(())
    }

    async fn run(&self, args: RunArgs) -> Measurement {
        let Some(run) = args.analysis_run.as_ref() else {
            return Measurement::error("analysisRun is nil");
        };
        let config = match config_of(&args.metric) {
            Ok(c) => c,
            Err(e) => return Measurement::error(e.to_string()),
        };
        if let Err(e) = self.runner.check(&config, &run.namespace) {
            return Measurement::error(e);
        }
        let handle = handle_for(run, &args.metric);
        let poll = config.poll_seconds;
        let started = self
            .runner
            .start(&handle, context(run, &args.metric, &handle), config);
        tracing::info!(metric = %loggable(&args.metric.name),
            analysisrun = %loggable(&format!("{}/{}", run.namespace, run.name)),
            handle = %loggable(&handle), started, "run");
        let mut m = Self::running(
            Measurement::new(AnalysisPhase::Running, ""),
            poll,
            format!("{} job started", self.runner.job_name()),
        );
        m.metadata = Some(BTreeMap::from([(HANDLE_KEY.to_string(), handle)]));
        m
    }

    async fn resume(&self, args: TerminateAndResumeArgs) -> Measurement {
        let m = args.measurement;
        let config = match config_of(&args.metric) {
            Ok(c) => c,
            Err(e) => {
                let mut m = m;
                m.phase = AnalysisPhase::Error;
                m.message = e.to_string();
                return m;
            }
        };
        let Some(handle) = m
            .metadata
            .as_ref()
            .and_then(|md| md.get(HANDLE_KEY))
            .cloned()
        else {
            let mut m = m;
            m.phase = AnalysisPhase::Error;
            m.message = "measurement carries no sandcanary job handle".into();
            return m;
        };
        if handle.len() > MAX_HANDLE_BYTES || handle.chars().any(char::is_control) {
            tracing::warn!(handle = %loggable(&handle), bytes = handle.len(), "invalid job handle refused");
            let mut m = m;
            m.phase = AnalysisPhase::Error;
            m.message = format!(
                "measurement carries an invalid sandcanary job handle ({} bytes; at most {MAX_HANDLE_BYTES}, no control characters)",
                handle.len()
            );
            return m;
        }
        match self.runner.status(&handle) {
            JobStatus::Unknown => {
                // State was lost (plugin restart or leader change): run the job again.
                let ctx = match args.analysis_run.as_ref() {
                    Some(run) => context(run, &args.metric, &handle),
                    None => JobContext {
                        handle: handle.clone(),
                        ..JobContext::default()
                    },
                };
                let poll = config.poll_seconds;
                self.runner.start(&handle, ctx, config);
                tracing::warn!(handle = %loggable(&handle), "unknown job handle; job restarted");
                Self::running(m, poll, "plugin restarted; job started again".into())
            }
            JobStatus::Running { elapsed, progress } => {
                let job = self.runner.job_name();
                let secs = elapsed.as_secs();
                let message = match &progress {
                    Some(p) => format!("{job} job running for {secs}s: {}", p.line),
                    None => format!("{job} job running for {secs}s"),
                };
                let mut m = Self::running(m, config.poll_seconds, message);
                if let Some(p) = progress {
                    let md = m.metadata.get_or_insert_with(BTreeMap::new);
                    md.insert(format!("{PROGRESS_PREFIX}elapsedSeconds"), secs.to_string());
                    md.extend(
                        p.metadata
                            .into_iter()
                            .map(|(k, v)| (format!("{PROGRESS_PREFIX}{k}"), v)),
                    );
                }
                m
            }
            JobStatus::Done(outcome) => {
                let mut m = m;
                m.phase = outcome.phase;
                m.value = outcome.value;
                m.message = outcome.message;
                m.resume_at = None;
                m.finished_at = Some(GoTime::now());
                let md = m.metadata.get_or_insert_with(BTreeMap::new);
                md.retain(|k, _| !k.starts_with(PROGRESS_PREFIX));
                md.extend(outcome.summary);
                m
            }
        }
    }

    async fn terminate(&self, args: TerminateAndResumeArgs) -> Measurement {
        let mut m = args.measurement;
        let handle = m
            .metadata
            .as_ref()
            .and_then(|md| md.get(HANDLE_KEY))
            .cloned();
        let status = handle
            .as_deref()
            .map(|h| self.runner.cancel(h))
            .unwrap_or(JobStatus::Unknown);
        m.resume_at = None;
        m.finished_at = Some(GoTime::now());
        if let Some(md) = m.metadata.as_mut() {
            md.retain(|k, _| !k.starts_with(PROGRESS_PREFIX));
        }
        match status {
            JobStatus::Done(outcome) => {
                m.phase = outcome.phase;
                m.value = outcome.value;
                m.message = outcome.message;
            }
            _ => {
                m.phase = AnalysisPhase::Successful;
                m.message = "measurement terminated before the job finished".into();
            }
        }
        m
    }

    async fn garbage_collect(&self, _args: GarbageCollectArgs) -> Result<(), String> {
        Ok(())
    }

    fn type_name(&self) -> String {
        "sandcanary".into()
    }

    fn metadata(&self, args: GetMetadataArgs) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([("job".to_string(), self.runner.job_name().to_string())]);
        match config_of(&args.metric) {
            Ok(c) => {
                out.insert("pollSeconds".into(), c.poll_seconds.to_string());
            }
            Err(e) => {
                out.insert("error".into(), e.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::PlaceholderJob;

    fn metric(cfg: &str) -> Metric {
        let mut m = Metric {
            name: "bench".into(),
            ..Default::default()
        };
        m.plugin
            .insert("sandcanary/sandcanary".into(), cfg.as_bytes().to_vec());
        m
    }

    fn run() -> AnalysisRun {
        AnalysisRun {
            name: "ar".into(),
            namespace: "ns".into(),
            uid: "u1".into(),
            ..Default::default()
        }
    }

    fn resume_args(m: Measurement, metric: &Metric) -> TerminateAndResumeArgs {
        TerminateAndResumeArgs {
            analysis_run: Some(run()),
            metric: metric.clone(),
            measurement: m,
        }
    }

    #[tokio::test]
    async fn run_returns_running_then_resume_reports_the_verdict() {
        let p = SandcanaryProvider::new(PlaceholderJob);
        let metric = metric(
            r#"{"pollSeconds":1,"placeholder":{"durationMs":50,"phase":"Failed","score":12.5}}"#,
        );
        let m = p
            .run(RunArgs {
                analysis_run: Some(run()),
                metric: metric.clone(),
            })
            .await;
        assert_eq!(m.phase, AnalysisPhase::Running);
        let resume_at = m.resume_at.expect("ResumeAt set");
        assert!(resume_at.unix_secs > m.started_at.unwrap().unix_secs);
        assert_eq!(m.metadata.as_ref().unwrap()[HANDLE_KEY], "u1/bench/0");
        let still = p.resume(resume_args(m.clone(), &metric)).await;
        assert_eq!(still.phase, AnalysisPhase::Running);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = p.resume(resume_args(m.clone(), &metric)).await;
        assert_eq!(done.phase, AnalysisPhase::Failed);
        assert_eq!(done.value, "12.5");
        assert_eq!(done.started_at, m.started_at, "StartedAt kept");
        assert!(done.finished_at.is_some() && done.resume_at.is_none());
        assert_eq!(done.metadata.as_ref().unwrap()[HANDLE_KEY], "u1/bench/0");
    }

    /// A job that reports bench progress one sample per `step` and then succeeds.
    struct SteppingJob {
        step: Duration,
    }

    impl Job for SteppingJob {
        fn name(&self) -> &'static str {
            "stepping"
        }

        fn start(
            &self,
            _ctx: JobContext,
            _config: PluginConfig,
            cancel: tokio_util::sync::CancellationToken,
            progress: sandcanary_canary::Progress,
        ) -> futures::future::BoxFuture<'static, crate::job::JobOutcome> {
            use sandcanary_bench::scenario::Scenario;
            use sandcanary_canary::Stage;
            let step = self.step;
            Box::pin(async move {
                progress.set_total(8);
                progress.set_stage(Stage::Benching);
                for (i, scenario) in [Scenario::Cold, Scenario::Warm].into_iter().enumerate() {
                    for k in 0..4 {
                        tokio::select! {
                            _ = tokio::time::sleep(step) => {}
                            _ = cancel.cancelled() => break,
                        }
                        let side = if (i + k) % 2 == 0 { "stable" } else { "canary" };
                        progress.sample_done(side, scenario);
                    }
                }
                progress.set_stage(Stage::Done);
                crate::job::JobOutcome {
                    phase: AnalysisPhase::Successful,
                    value: "100.00".into(),
                    message: "ok".into(),
                    summary: BTreeMap::from([("sandcanary.score".into(), "100".into())]),
                }
            })
        }
    }

    #[tokio::test]
    async fn resume_reports_sample_progress_while_the_job_runs() {
        let p = SandcanaryProvider::new(SteppingJob {
            step: Duration::from_millis(150),
        });
        let metric = metric(r#"{"pollSeconds":1}"#);
        let m = p
            .run(RunArgs {
                analysis_run: Some(run()),
                metric: metric.clone(),
            })
            .await;
        // Wait until some but not all samples are done.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = p.resume(resume_args(m.clone(), &metric)).await;
        assert_eq!(r.phase, AnalysisPhase::Running);
        let md = r.metadata.clone().unwrap();
        let key = |k: &str| md.get(&format!("{PROGRESS_PREFIX}{k}")).cloned();
        assert_eq!(key("stage").as_deref(), Some("benching"), "{md:?}");
        let (s, c) = (
            key("samples.stable").unwrap(),
            key("samples.canary").unwrap(),
        );
        assert!(s.ends_with("/4") && c.ends_with("/4"), "{s} {c}");
        let done: usize = [&s, &c]
            .iter()
            .map(|v| v.split('/').next().unwrap().parse::<usize>().unwrap())
            .sum();
        assert!((1..8).contains(&done), "{md:?}");
        assert_eq!(key("scenario").as_deref(), Some("cold"));
        assert!(key("elapsedSeconds").is_some());
        assert!(r.message.contains("benching"), "{}", r.message);
        assert_eq!(md[HANDLE_KEY], "u1/bench/0");
        let size: usize = md.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size < 400, "metadata kept small: {size} bytes");

        // Later the scenario moves on, then the verdict replaces the progress keys.
        let scenario_key = format!("{PROGRESS_PREFIX}scenario");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen_warm = false;
        let done = loop {
            assert!(std::time::Instant::now() < deadline, "no verdict in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let next = p.resume(resume_args(r.clone(), &metric)).await;
            if next.phase.is_completed() {
                break next;
            }
            seen_warm |=
                next.metadata.as_ref().unwrap().get(&scenario_key) == Some(&"warm".to_string());
        };
        assert!(seen_warm, "the current scenario moved from cold to warm");
        assert_eq!(done.phase, AnalysisPhase::Successful);
        let md = done.metadata.unwrap();
        assert!(md.keys().all(|k| !k.starts_with(PROGRESS_PREFIX)), "{md:?}");
        assert_eq!(md["sandcanary.score"], "100");
    }

    #[tokio::test]
    async fn a_job_that_reports_nothing_shows_only_elapsed_time() {
        let p = SandcanaryProvider::new(PlaceholderJob);
        let metric = metric(r#"{"placeholder":{"durationMs":5000}}"#);
        let m = p
            .run(RunArgs {
                analysis_run: Some(run()),
                metric: metric.clone(),
            })
            .await;
        let r = p.resume(resume_args(m, &metric)).await;
        assert_eq!(r.phase, AnalysisPhase::Running);
        assert_eq!(r.metadata.unwrap().len(), 1, "only the handle");
        assert!(r.message.starts_with("placeholder job running for"));
    }

    #[tokio::test]
    async fn repeated_run_does_not_start_a_second_job() {
        let p = SandcanaryProvider::new(PlaceholderJob);
        let metric = metric(r#"{"placeholder":{"durationMs":5000}}"#);
        let args = RunArgs {
            analysis_run: Some(run()),
            metric,
        };
        p.run(args.clone()).await;
        p.run(args).await;
        assert_eq!(p.runner.running(), 1);
    }

    #[tokio::test]
    async fn unknown_handle_restarts_and_terminate_cancels() {
        let p = SandcanaryProvider::new(PlaceholderJob);
        let metric = metric(r#"{"placeholder":{"durationMs":60000}}"#);
        let mut m = Measurement::new(AnalysisPhase::Running, "");
        m.metadata = Some(BTreeMap::from([(HANDLE_KEY.into(), "lost/bench/3".into())]));
        let r = p.resume(resume_args(m.clone(), &metric)).await;
        assert_eq!(r.phase, AnalysisPhase::Running);
        assert!(r.message.contains("started again"));
        assert_eq!(p.runner.running(), 1);
        m.metadata
            .as_mut()
            .unwrap()
            .insert(format!("{PROGRESS_PREFIX}stage"), "benching".into());
        let t = p.terminate(resume_args(m, &metric)).await;
        assert!(t.phase.is_completed());
        assert!(
            t.metadata
                .as_ref()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with(PROGRESS_PREFIX))
        );
        assert!(t.finished_at.is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.runner.running(), 0, "job cancelled");
    }

    #[tokio::test]
    async fn bad_config_and_missing_handle_are_error_measurements() {
        let p = SandcanaryProvider::new(PlaceholderJob);
        let bad = metric(r#"{"pollSeconds":-1}"#);
        let m = p
            .run(RunArgs {
                analysis_run: Some(run()),
                metric: bad.clone(),
            })
            .await;
        assert_eq!(m.phase, AnalysisPhase::Error);
        assert!(m.message.contains("configuration"), "{}", m.message);
        let r = p
            .resume(resume_args(
                Measurement::new(AnalysisPhase::Running, ""),
                &metric("{}"),
            ))
            .await;
        assert_eq!(r.phase, AnalysisPhase::Error);
        assert!(
            p.metadata(GetMetadataArgs { metric: bad })
                .contains_key("error")
        );
        let none = p
            .run(RunArgs {
                analysis_run: None,
                metric: metric("{}"),
            })
            .await;
        assert_eq!(none.phase, AnalysisPhase::Error);
    }

    #[tokio::test]
    async fn a_forged_oversized_handle_is_refused_and_logged_only_in_part() {
        let p = SandcanaryProvider::new(PlaceholderJob);
        let metric = metric(r#"{"placeholder":{"durationMs":5000}}"#);
        let mut m = Measurement::new(AnalysisPhase::Running, "");
        let forged = "x".repeat(1 << 20);
        m.metadata = Some(BTreeMap::from([(HANDLE_KEY.into(), forged.clone())]));
        let r = p.resume(resume_args(m.clone(), &metric)).await;
        assert_eq!(r.phase, AnalysisPhase::Error);
        assert!(
            r.message.contains("invalid sandcanary job handle"),
            "{}",
            r.message
        );
        assert!(
            r.message.len() < 200,
            "the message does not repeat the handle"
        );
        assert_eq!(
            p.runner.running(),
            0,
            "no job started under a forged handle"
        );
        m.metadata = Some(BTreeMap::from([(
            HANDLE_KEY.into(),
            "u1/bench/0\nforged line".to_string(),
        )]));
        assert_eq!(
            p.resume(resume_args(m, &metric)).await.phase,
            AnalysisPhase::Error
        );

        let logged = loggable(&forged);
        assert!(logged.len() < MAX_LOGGED_BYTES + 32, "{}", logged.len());
        assert!(
            logged.ends_with(&format!("({} bytes)", forged.len())),
            "{logged}"
        );
        assert_eq!(loggable("a\nb"), "a\\nb", "no forged log lines");
        assert_eq!(
            loggable(&"é".repeat(100))
                .chars()
                .filter(|c| *c == 'é')
                .count(),
            64
        );
    }

    #[test]
    fn secret_backed_arguments_are_kept_apart_from_plain_ones() {
        use goplugin::metric::Argument;
        use sandcanary_secret::ExposeSecret;
        let mut r = run();
        r.args = vec![
            Argument {
                name: "url".into(),
                value: Some("http://x".into()),
                ..Default::default()
            },
            Argument {
                name: "token".into(),
                value: Some("s3cret".into()),
                secret_key_ref: Some(("tokens".into(), "admin".into())),
                ..Default::default()
            },
        ];
        let ctx = context(&r, &metric("{}"), "h");
        assert_eq!(ctx.args.keys().collect::<Vec<_>>(), ["url"]);
        assert_eq!(ctx.secret_args["token"].expose_secret(), "s3cret");
        assert!(!format!("{ctx:?}").contains("s3cret"));
    }
}
