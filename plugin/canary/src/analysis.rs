//! One canary analysis: bench stable and canary through their proxies, judge, report.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use sandcanary_bench::fixture::{FIXTURE_TITLE, FixtureServer};
use sandcanary_bench::report::{Report, render_compare};
use sandcanary_bench::scenario::{self, RunConfig, Sample};
use sandcanary_bench::target::{ProxyTarget, ProxyTargetConfig, Target};
use sandcanary_github::{RecoveryOutcome, ReportOutcome};
use sandcanary_judge::{Verdict, VerdictPhase};
use sandcanary_secret::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::comparison::{CANARY, STABLE, completed, to_comparison};
use crate::config::{CanaryConfig, ResolvedTarget};
use crate::issue;
use crate::pod_logs::{self, LogSource};
use crate::progress::{Progress, Stage};

/// How long releasing the sandboxes may take after the bench ends or is cancelled.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(15);
/// Deadline of the reachability check of each proxy before the bench starts.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who asked for the analysis. Used for session ids, the report and logs; never secrets.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub namespace: String,
    pub analysis_run: String,
    pub rollout: Option<String>,
    pub metric: String,
    /// The AnalysisRun's arguments with values (for `*Arg` target URLs).
    pub args: BTreeMap<String, String>,
}

/// The result of one analysis, ready to become a measurement.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Successful, Inconclusive, Failed or Error.
    pub phase: VerdictPhase,
    /// The judge's 0-100 score, when a judge ran.
    pub score: Option<f64>,
    /// One readable line for `Measurement.Message`.
    pub message: String,
    /// A few keys for `Measurement.Metadata` (small, no secrets).
    pub summary: BTreeMap<String, String>,
    /// Stable and canary side by side (Markdown), empty when the bench did not run.
    pub table: String,
    /// The judge's full verdict.
    pub verdict: Option<Verdict>,
    /// What the GitHub report did on a Failed verdict (a dry run carries the rendered issue).
    pub issue: Option<ReportOutcome>,
    /// What a Successful verdict did to the Rollout's open issues of earlier canary revisions.
    pub recovery: Option<RecoveryOutcome>,
}

impl Outcome {
    /// `Measurement.Value`: the score with two decimals, empty without one.
    pub fn value(&self) -> String {
        self.score.map(|s| format!("{s:.2}")).unwrap_or_default()
    }

    fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            phase: VerdictPhase::Error,
            score: None,
            summary: BTreeMap::from([("error".to_string(), short(&message, 200))]),
            message,
            table: String::new(),
            verdict: None,
            issue: None,
            recovery: None,
        }
    }

    fn cancelled(table: String) -> Self {
        Self {
            phase: VerdictPhase::Inconclusive,
            score: None,
            message: "canary analysis cancelled".into(),
            summary: BTreeMap::from([("cancelled".to_string(), "true".to_string())]),
            table,
            verdict: None,
            issue: None,
            recovery: None,
        }
    }
}

fn short(s: &str, max: usize) -> String {
    sandcanary_judge::verdict::truncate(s, max)
}

/// Runs one analysis to its end. Never panics on bad input or unreachable targets: those are
/// `Error` outcomes with a readable message. When `cancel` fires, the bench stops at once, the
/// sandboxes it made are released (bounded), and the outcome is Inconclusive.
pub async fn run(
    config: &CanaryConfig,
    ctx: &RunContext,
    cancel: CancellationToken,
    progress: Progress,
) -> Outcome {
    run_with_logs(config, ctx, cancel, progress, None).await
}

/// [`run`], with the source of the proxies' pod logs for `podLogs` (the plugin passes its
/// Kubernetes client). Without a source, configured pod logs are reported as unavailable.
pub async fn run_with_logs(
    config: &CanaryConfig,
    ctx: &RunContext,
    cancel: CancellationToken,
    progress: Progress,
    logs: Option<&dyn LogSource>,
) -> Outcome {
    progress.set_stage(Stage::Preparing);
    let outcome = run_inner(config, ctx, &cancel, &progress, logs).await;
    progress.set_stage(Stage::Done);
    tracing::info!(
        analysisrun = %ctx.analysis_run,
        metric = %ctx.metric,
        phase = %outcome.phase,
        score = ?outcome.score,
        "canary analysis finished"
    );
    outcome
}

async fn run_inner(
    config: &CanaryConfig,
    ctx: &RunContext,
    cancel: &CancellationToken,
    progress: &Progress,
    logs: Option<&dyn LogSource>,
) -> Outcome {
    // Config problems first: they need a person, not a retry.
    if let Err(e) = config.validate() {
        return Outcome::error(format!("invalid configuration: {e}"));
    }
    let (stable, canary) = match config.resolve_targets(&ctx.args) {
        Ok(t) => t,
        Err(e) => return Outcome::error(format!("invalid configuration: {e}")),
    };
    let admin_token = match config
        .session_api_token
        .load()
        .map(|t| t.expose_secret().to_string())
    {
        Ok(t) => t,
        Err(e) => return Outcome::error(format!("sessionApiToken: {e}")),
    };
    let identity_token = match config
        .identity_token
        .load()
        .map(|t| t.expose_secret().to_string())
    {
        Ok(t) => t,
        Err(e) => return Outcome::error(format!("identityToken: {e}")),
    };
    let judge = match config.judge.build() {
        Ok(j) => j,
        Err(e) => return Outcome::error(format!("invalid configuration: judge.{e}")),
    };

    let http = match reqwest::Client::builder()
        .timeout(PREFLIGHT_TIMEOUT)
        // The session API token goes to the configured admin URL only.
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::error(format!("cannot build an HTTP client: {e}")),
    };
    for (side, target) in [(STABLE, &stable), (CANARY, &canary)] {
        let check = preflight(&http, target, &admin_token);
        tokio::select! {
            r = check => if let Err(e) = r {
                return Outcome::error(format!("{side} target: {e}"));
            },
            _ = cancel.cancelled() => return Outcome::cancelled(String::new()),
        }
    }

    // The page the sandboxes load: the configured one, or a fixture served here.
    let fixture;
    let (page_url, expect_title) = match &config.page_url {
        Some(url) => (url.clone(), config.expect_title.clone()),
        None => {
            fixture = match FixtureServer::start().await {
                Ok(f) => f,
                Err(e) => return Outcome::error(format!("cannot start the fixture page: {e}")),
            };
            (
                fixture.url().to_string(),
                Some(
                    config
                        .expect_title
                        .clone()
                        .unwrap_or_else(|| FIXTURE_TITLE.into()),
                ),
            )
        }
    };

    let run_id = run_id();
    let mut targets: Vec<Box<dyn Target>> = Vec::with_capacity(2);
    for (side, target) in [(STABLE, &stable), (CANARY, &canary)] {
        let made = ProxyTarget::new(ProxyTargetConfig {
            name: side.to_string(),
            data_url: target.data_url.clone(),
            admin_url: target.admin_url.clone(),
            admin_token: admin_token.clone(),
            identity_token: identity_token.clone(),
            id_header: config.id_header.clone(),
            // Fresh per run and side, so cold samples always get new ids and runs never collide.
            id_prefix: format!("sc-{run_id}-{}", &side[..1]),
        });
        match made {
            Ok(t) => targets.push(Box::new(t)),
            Err(e) => return Outcome::error(format!("{side} target: {e}")),
        }
    }

    let mut bench_cfg = RunConfig::new(page_url.clone());
    bench_cfg.scenarios = config.scenarios.clone();
    bench_cfg.samples = config.samples;
    bench_cfg.pause = Duration::from_millis(config.pause_ms);
    bench_cfg.expect_title = expect_title;
    bench_cfg.connect_timeout = Duration::from_secs(config.connect_timeout_seconds);
    bench_cfg.goto_timeout = Duration::from_secs(config.goto_timeout_seconds);
    bench_cfg.breakdown = config.breakdown;

    progress.set_total(config.samples * config.scenarios.len() * targets.len());
    progress.set_stage(Stage::Benching);
    tracing::info!(
        analysisrun = %ctx.analysis_run,
        metric = %ctx.metric,
        stable = %stable.data_url,
        canary = %canary.data_url,
        scenarios = ?config.scenarios,
        samples = config.samples,
        "canary bench starting"
    );
    let bench_started = std::time::Instant::now();
    let benched: Option<Vec<Sample>> = {
        let bench = scenario::run(&mut targets, &bench_cfg, |s| {
            progress.sample_done(&s.target, s.scenario)
        });
        tokio::select! {
            samples = bench => Some(samples),
            _ = cancel.cancelled() => None,
        }
    };
    // Release every sandbox this run made, whether it finished or was cancelled.
    for t in &mut targets {
        if tokio::time::timeout(SHUTDOWN_BUDGET, t.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                target = t.name(),
                "releasing sandboxes took too long; left to the proxy's idle reaper"
            );
        }
    }
    let Some(samples) = benched else {
        return Outcome::cancelled(String::new());
    };

    let report = Report::new(page_url, samples);
    let table = render_compare(&report, STABLE, CANARY);
    let (stable_ok, stable_all) = completed(&report.samples, STABLE);
    let (canary_ok, canary_all) = completed(&report.samples, CANARY);
    if stable_ok == 0 {
        // Without a working baseline there is nothing to compare against: not the canary's fault.
        let first = first_error(&report.samples, STABLE);
        let mut o = Outcome::error(format!(
            "stable target: no sample completed ({stable_all} tried); first error: {first}"
        ));
        o.table = table;
        return o;
    }

    progress.set_stage(Stage::Judging);
    let comparison = to_comparison(&report.samples);
    // The pod logs of the bench window, as untrusted context for the (LLM) judge.
    let gathered = match &config.pod_logs {
        Some(cfg) => {
            let read = pod_logs::gather(logs, cfg, &ctx.namespace, bench_started.elapsed());
            tokio::select! {
                g = read => Some(g),
                _ = cancel.cancelled() => return Outcome::cancelled(table),
            }
        }
        None => None,
    };
    let context = gathered
        .as_ref()
        .map(|g| g.context.as_slice())
        .unwrap_or_default();
    let verdict = tokio::select! {
        v = judge.judge_with_context(&comparison, context) => v,
        _ = cancel.cancelled() => return Outcome::cancelled(table),
    };

    let mut summary = verdict.metadata();
    if let Some(g) = &gathered {
        summary.insert("podLogs".into(), g.summary.clone());
    }
    summary.insert(
        "samples".into(),
        format!("stable {stable_ok}/{stable_all}, canary {canary_ok}/{canary_all}"),
    );
    let mut message = verdict.summary.clone();
    let mut issue = None;
    if verdict.phase == VerdictPhase::Failed
        && let Some(github) = config.github_effective()
    {
        progress.set_stage(Stage::Reporting);
        let failed = issue::failed_verdict(config, ctx, &report, &verdict);
        let filing = issue::file(github, &failed);
        let filed = tokio::select! {
            r = filing => r,
            _ = cancel.cancelled() => Err("cancelled before the GitHub report was filed".into()),
        };
        match filed {
            Ok(outcome) => {
                let what = issue::describe(&outcome);
                tracing::info!(analysisrun = %ctx.analysis_run, report = %what, "GitHub report");
                summary.insert("issue".into(), short(&what, 200));
                issue = Some(outcome);
            }
            Err(e) => {
                tracing::warn!(analysisrun = %ctx.analysis_run, error = %e, "GitHub report failed");
                summary.insert("issue".into(), short(&format!("failed: {e}"), 200));
                message = short(&format!("{message}; GitHub report failed: {e}"), 1000);
            }
        }
    }

    let mut recovery = None;
    if verdict.phase == VerdictPhase::Successful
        && let Some(github) = config.github_effective()
    {
        progress.set_stage(Stage::Reporting);
        let passed = issue::passed_verdict(config, ctx, &report, &verdict);
        let recovering = issue::recover(github, &passed);
        let done = tokio::select! {
            r = recovering => r,
            _ = cancel.cancelled() => Err("cancelled before the recovery was reported".into()),
        };
        // A pass stays a pass whatever GitHub says: the outcome is only a note.
        match done {
            Ok(outcome) => {
                let what = issue::describe_recovery(&outcome);
                tracing::info!(analysisrun = %ctx.analysis_run, recovery = %what, "GitHub recovery");
                summary.insert("recovery".into(), short(&what, 200));
                recovery = Some(outcome);
            }
            Err(e) => {
                tracing::warn!(analysisrun = %ctx.analysis_run, error = %e, "GitHub recovery failed");
                summary.insert("recovery".into(), short(&format!("failed: {e}"), 200));
            }
        }
    }

    Outcome {
        phase: verdict.phase,
        score: (verdict.phase != VerdictPhase::Error).then_some(verdict.score),
        message,
        summary,
        table,
        verdict: Some(verdict),
        issue,
        recovery,
    }
}

/// Checks that the proxy's session API answers and accepts the token, and that its data port
/// takes connections, so an unreachable target is one clear error instead of N failed samples.
async fn preflight(
    http: &reqwest::Client,
    target: &ResolvedTarget,
    admin_token: &str,
) -> Result<(), String> {
    let url = format!("{}/v1/sessions", target.admin_url.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .bearer_auth(admin_token)
        .send()
        .await
        .map_err(|e| format!("session API at {url} is unreachable: {}", error_chain(&e)))?;
    match resp.status() {
        s if s.is_success() => {}
        s @ (reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) => {
            return Err(format!(
                "session API at {url} refused the sessionApiToken (HTTP {s})"
            ));
        }
        s => return Err(format!("session API at {url} answered HTTP {s}")),
    }
    let parsed = url::Url::parse(&target.data_url).map_err(|e| format!("dataUrl: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port);
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("data port {host}:{port} is unreachable: {e}")),
        Err(_) => Err(format!("data port {host}:{port} did not answer in time")),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn first_error(samples: &[Sample], target: &str) -> String {
    samples
        .iter()
        .find(|s| s.target == target && !s.ok)
        .and_then(|s| s.error.as_deref())
        .map(|e| short(e, 300))
        .unwrap_or_else(|| "none recorded".into())
}

/// Eight hex digits that differ between runs (random hasher keys), for session ids.
fn run_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_valid_and_differ() {
        let (a, b) = (run_id(), run_id());
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        // Longest session id: prefix + "-cold-" + a 3-digit index stays within the proxy's 63.
        assert!(format!("sc-{a}-s-cold-999").len() <= 63);
    }

    #[test]
    fn error_outcomes_have_no_value_and_a_short_summary() {
        let o = Outcome::error("x".repeat(1000));
        assert_eq!(o.phase, VerdictPhase::Error);
        assert_eq!(o.value(), "");
        assert!(o.summary["error"].len() <= 200);
    }
}
