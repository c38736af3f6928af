//! Turns a failed verdict into the GitHub report's input, and files it (or renders it in a dry run).

use sandcanary_bench::breakdown::segments;
use sandcanary_bench::report::Report;
use sandcanary_bench::scenario::Sample;
use sandcanary_github::{
    FailedVerdict, GithubConfig, Links, OnRecovery, PassedVerdict, RecoveryOutcome, ReportOutcome,
    Reporter, RolloutRef, SampleSteps, Step, Waterfall, render_comment, render_issue,
    render_recovery_comment,
};
use sandcanary_judge::Verdict;

use crate::analysis::RunContext;
use crate::comparison::{CANARY, STABLE, to_rows};
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
        waterfall: waterfall(report),
    }
}

/// The slowest completed canary sample with a breakdown, next to the stable sample of the same
/// scenario and index (or, if that one failed, the stable sample of the scenario with the median
/// total). `None` when the bench recorded no breakdowns.
pub fn waterfall(report: &Report) -> Option<Waterfall> {
    let usable = |s: &&Sample| s.ok && s.total_ms.is_some() && !segments(s).is_empty();
    let total = |s: &Sample| s.total_ms.unwrap_or_default();
    let slowest = report
        .samples
        .iter()
        .filter(|s| s.target == CANARY)
        .filter(usable)
        .max_by(|a, b| total(a).total_cmp(&total(b)))?;
    let same_scenario: Vec<&Sample> = report
        .samples
        .iter()
        .filter(|s| s.target == STABLE && s.scenario == slowest.scenario)
        .filter(usable)
        .collect();
    let stable = match same_scenario.iter().find(|s| s.index == slowest.index) {
        Some(s) => *s,
        None => {
            let mut by_total = same_scenario;
            by_total.sort_by(|a, b| total(a).total_cmp(&total(b)));
            *by_total.get(by_total.len() / 2)?
        }
    };
    let steps = |s: &Sample| SampleSteps {
        label: format!("{} #{}", s.scenario, s.index),
        total_ms: total(s),
        steps: segments(s)
            .into_iter()
            .map(|seg| Step {
                name: seg.name,
                start_ms: seg.start_ms,
                end_ms: seg.end_ms,
            })
            .collect(),
    };
    Some(Waterfall {
        stable: steps(stable),
        canary: steps(slowest),
    })
}

/// The recovery's view of a passed analysis (same identity fields as [`failed_verdict`]).
pub fn passed_verdict(
    config: &CanaryConfig,
    ctx: &RunContext,
    report: &Report,
    verdict: &Verdict,
) -> PassedVerdict {
    let failed = failed_verdict(config, ctx, report, verdict);
    PassedVerdict {
        rollout: failed.rollout,
        canary_revision: failed.canary_revision,
        stable_revision: failed.stable_revision,
        analysis_run: failed.analysis_run,
        judge: failed.judge,
        score: failed.score,
        links: failed.links,
        comparison: failed.comparison,
    }
}

/// Comments on (and with `onRecovery: close`, closes) the Rollout's open issues of earlier
/// canary revisions. A dry run renders the comment only.
pub async fn recover(
    github: GithubConfig,
    verdict: &PassedVerdict,
) -> Result<RecoveryOutcome, String> {
    if github.on_recovery == OnRecovery::None {
        return Ok(RecoveryOutcome::Disabled);
    }
    if github.dry_run {
        return Ok(RecoveryOutcome::DryRun {
            comment: render_recovery_comment(verdict, github.on_recovery == OnRecovery::Close),
        });
    }
    let reporter = Reporter::from_config(github).map_err(|e| e.to_string())?;
    reporter.recover(verdict).await.map_err(|e| e.to_string())
}

/// One short line about what a recovery did, for `Metadata` and logs.
pub fn describe_recovery(outcome: &RecoveryOutcome) -> String {
    match outcome {
        RecoveryOutcome::Disabled => "off (onRecovery: none)".into(),
        RecoveryOutcome::DryRun { .. } => "dry run (not sent)".into(),
        RecoveryOutcome::NothingOpen => "no open issue of an earlier revision".into(),
        RecoveryOutcome::Resolved(issues) => issues
            .iter()
            .map(|i| {
                let verb = match (i.commented, i.closed) {
                    (_, true) => "closed",
                    (true, false) => "commented on",
                    (false, false) => "already commented on",
                };
                format!("{verb} {}", i.url)
            })
            .collect::<Vec<_>>()
            .join(", "),
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

#[cfg(test)]
mod tests {
    use super::*;
    use sandcanary_bench::scenario::{Sample, Scenario};
    use sandcanary_judge::{Classification, MetricResult};

    fn sample(target: &str, total: f64) -> Sample {
        Sample {
            target: target.into(),
            scenario: Scenario::Warm,
            index: 0,
            ok: true,
            error: None,
            connect_ms: Some(1.0),
            new_page_ms: Some(1.0),
            goto_ms: Some(1.0),
            total_ms: Some(total),
            status: Some(200),
            title: None,
            instance: None,
            breakdown: None,
        }
    }

    #[tokio::test]
    async fn dry_run_renders_the_issue_without_credentials_or_network() {
        let config = CanaryConfig::from_value(serde_json::json!({
            "stable": {"dataUrl": "http://127.0.0.1:1", "adminUrl": "http://127.0.0.1:2"},
            "canary": {"dataUrl": "http://127.0.0.1:3", "adminUrl": "http://127.0.0.1:4"},
            "sessionApiToken": {"env": "A"},
            "identityToken": {"env": "B"},
            // An unreachable API URL: a dry run must not try it.
            "github": {"owner": "acme", "repo": "proxy", "apiUrl": "http://127.0.0.1:9", "labels": ["perf"]},
            "dryRun": true,
            "rollout": {"canaryRevision": "c0ffee"}
        }))
        .unwrap();
        let ctx = RunContext {
            namespace: "prod".into(),
            analysis_run: "proxy-c0ffee-1".into(),
            rollout: Some("proxy".into()),
            ..Default::default()
        };
        let report = Report::new(
            "http://x/",
            vec![sample("stable", 100.0), sample("canary", 900.0)],
        );
        let verdict = Verdict {
            judge: "statistical".into(),
            phase: sandcanary_judge::VerdictPhase::Failed,
            score: 0.0,
            metrics: vec![MetricResult {
                metric: "warm.total_ms".into(),
                classification: Classification::High,
                critical: true,
                weight: 1.0,
                stable: None,
                canary: None,
                stats: Default::default(),
                reason: "slower @maintainer".into(),
            }],
            reasons: vec!["warm.total_ms is High: @maintainer look".into()],
            summary: "statistical: Failed".into(),
            audit: Default::default(),
        };
        let failed = failed_verdict(&config, &ctx, &report, &verdict);
        assert_eq!(failed.failing_metrics, vec!["warm.total_ms".to_string()]);
        assert_eq!(failed.canary_revision, "c0ffee");
        assert_eq!(failed.stable_revision, "unknown");
        assert_eq!(failed.comparison.len(), 4);
        let outcome = file(config.github_effective().unwrap(), &failed)
            .await
            .unwrap();
        let ReportOutcome::DryRun { draft, .. } = &outcome else {
            panic!("{outcome:?}")
        };
        assert!(draft.labels.contains(&"perf".to_string()));
        assert!(draft.body.contains("total_ms"), "{}", draft.body);
        // Mentions from measured data or judge text are defused by the github crate.
        assert!(!draft.body.contains("@maintainer"), "{}", draft.body);
        assert_eq!(describe(&outcome), "dry run (not sent)");
    }
}
