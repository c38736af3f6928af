//! Shared test support: a fake GitHub REST API and verdict builders.

#![allow(dead_code)]

pub mod fake_github;

use sandcanary_github::{
    ComparisonRow, FailedVerdict, GithubConfig, Links, PhaseStats, RolloutRef,
};

/// A failed verdict of the `prod/proxy` rollout at canary revision `7d9f6c`.
pub fn verdict(run: &str) -> FailedVerdict {
    FailedVerdict {
        rollout: RolloutRef {
            namespace: "prod".into(),
            name: "proxy".into(),
        },
        canary_revision: "7d9f6c".into(),
        stable_revision: "5c1a2b".into(),
        analysis_run: run.into(),
        judge: "statistical".into(),
        score: Some(37.5),
        links: Links {
            rollout: Some("https://argo.example/rollouts/prod/proxy".into()),
            analysis_run: Some(format!("https://argo.example/analysisruns/prod/{run}")),
        },
        comparison: vec![
            ComparisonRow {
                scenario: "cold".into(),
                phase: "connect".into(),
                stable: PhaseStats {
                    median_ms: 812.0,
                    p90_ms: 990.0,
                },
                canary: PhaseStats {
                    median_ms: 830.5,
                    p90_ms: 1010.0,
                },
            },
            ComparisonRow {
                scenario: "warm".into(),
                phase: "total".into(),
                stable: PhaseStats {
                    median_ms: 21.0,
                    p90_ms: 30.0,
                },
                canary: PhaseStats {
                    median_ms: 63.0,
                    p90_ms: 95.0,
                },
            },
        ],
        failing_metrics: vec!["warm/total/median".into(), "warm/total/p90".into()],
        reasons: vec!["warm total median is 3.00x stable (Mann-Whitney p < 0.001)".into()],
        waterfall: None,
    }
}

/// A config for `acme/proxy` on the fake, with a token read from a file, and short back-offs so
/// retries do not slow the suite (the 1 s mutation spacing is GitHub's floor and stays).
pub fn config(api_url: &str, token_file: &std::path::Path) -> GithubConfig {
    let mut c = GithubConfig::new("acme", "proxy");
    c.api_url = api_url.to_string();
    c.labels = vec!["performance".into(), "canary".into()];
    c.assignees = vec!["perf-bot".into()];
    c.auth.token_file = Some(token_file.to_path_buf());
    c.limits.request_timeout_ms = 5_000;
    c.limits.retry_backoff_ms = 200;
    c.limits.rate_limit_fallback_ms = 500;
    c.limits.max_wait_ms = 10_000;
    c
}
