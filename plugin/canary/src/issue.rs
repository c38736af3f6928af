//! Turns a failed verdict into the GitHub report's input, and files it (or renders it in a dry run).

use sandcanary_bench::report::Report;
use sandcanary_github::{
    FailedVerdict, GithubConfig, Links, ReportOutcome, Reporter, RolloutRef, render_comment,
    render_issue,
};
use sandcanary_judge::Verdict;

use crate::analysis::RunContext;
use crate::comparison::to_rows;
use crate::config::CanaryConfig;

/// Placeholder for facts the AnalysisRun did not give (e.g. no revision in the template).
const UNKNOWN: &str = "unknown";

/// The report's view of a failed analysis.
pub fn failed_verdict(
    config: &CanaryConfig,
    ctx: &RunContext,
    report: &Report,
    verdict: &Verdict,
) -> FailedVerdict {
    let or_unknown = |s: &Option<String>| {
        s.as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(UNKNOWN)
            .to_string()
    };
    FailedVerdict {
        rollout: RolloutRef {
            namespace: if ctx.namespace.is_empty() {
                UNKNOWN.into()
            } else {
                ctx.namespace.clone()
            },
            name: or_unknown(&ctx.rollout),
        },
        canary_revision: or_unknown(&config.rollout.canary_revision),
        stable_revision: or_unknown(&config.rollout.stable_revision),
        analysis_run: if ctx.analysis_run.is_empty() {
            UNKNOWN.into()
        } else {
            ctx.analysis_run.clone()
        },
        judge: verdict.judge.clone(),
        score: Some(verdict.score),
        links: Links {
            rollout: config.rollout.rollout_url.clone(),
            analysis_run: config.rollout.analysis_run_url.clone(),
        },
        comparison: to_rows(report),
        failing_metrics: verdict
            .failing_metrics()
            .into_iter()
            .map(str::to_string)
            .collect(),
        reasons: verdict.reasons.clone(),
    }
}

/// Files (or, in a dry run, renders) the report. Errors are text for the measurement message;
/// the github crate keeps secrets out of them.
pub async fn file(github: GithubConfig, verdict: &FailedVerdict) -> Result<ReportOutcome, String> {
    if github.dry_run {
        // Same rendering the reporter would send; no credentials and no client needed.
        return Ok(ReportOutcome::DryRun {
            draft: render_issue(&github, verdict),
            comment: render_comment(verdict),
        });
    }
    let reporter = Reporter::from_config(github).map_err(|e| e.to_string())?;
    reporter.report(verdict).await.map_err(|e| e.to_string())
}

/// One short line about what the report did, for `Metadata` and logs.
pub fn describe(outcome: &ReportOutcome) -> String {
    match outcome {
        ReportOutcome::DryRun { .. } => "dry run (not sent)".into(),
        ReportOutcome::Created { url, .. } => format!("created {url}"),
        ReportOutcome::Commented { issue_url, .. } => format!("commented on {issue_url}"),
        ReportOutcome::Reopened { url, .. } => format!("reopened {url}"),
        ReportOutcome::AlreadyReported { url, .. } => format!("already reported in {url}"),
    }
}
