//! The whole analysis against two real `sandcanary-proxy` processes (local backend, real Chromium):
//! healthy against healthy is Successful; healthy against a canary slowed by a delaying relay is
//! Failed and files exactly one issue on a fake GitHub REST API.

mod support;

// The github crate's fake of the GitHub REST API; only part of it is used here.
#[allow(dead_code)]
#[path = "../../github/tests/support/fake_github.rs"]
mod fake_github;

use std::time::{Duration, Instant};

use sandcanary_canary::{CanaryConfig, Progress, RunContext, Stage, VerdictPhase, run};
use sandcanary_github::{RecoveryOutcome, ReportOutcome};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use fake_github::{Auth, FakeGithub};
use support::{DelayRelay, Proxy, Secrets, start_proxy};

/// Samples per scenario and side: enough for the exact Mann-Whitney interval at 98 % (5 per
/// side), one spare for a failed sample.
const SAMPLES: usize = 6;
/// Added to every connection to the regressed canary: large against the run-to-run noise of a
/// loaded 2-core CI machine (warm totals of 0.3-1.7 s were seen while other suites ran).
const DELAY: Duration = Duration::from_millis(1500);
/// Warm samples per side in the regressed run (warm only: cold starts cost seconds each).
const WARM_SAMPLES: usize = 8;

/// A judge that cannot be tipped by A/A noise with this few samples: only total latency and the
/// error rates count (plus warm connect, where the injected delay lands), a location shift must
/// also be a 1.5x mean increase, warm total is critical, and one stray non-critical failure out
/// of five metrics still passes.
fn judge() -> Value {
    json!({
        "type": "statistical",
        "passScore": 70,
        "marginalScore": 50,
        "defaults": {"muted": true},
        "metrics": [
            {"match": "warm.total_ms", "muted": false, "critical": true, "allowedIncrease": 1.5},
            {"match": "warm.connect_ms", "muted": false, "allowedIncrease": 1.5},
            {"match": "cold.total_ms", "muted": false, "allowedIncrease": 1.5},
            {"match": "*.errors", "muted": false}
        ]
    })
}

fn config(stable: &Proxy, canary_data: &str, canary_admin: &str, secrets: &Secrets) -> Value {
    json!({
        "stable": {"dataUrl": stable.data_url(), "adminUrl": stable.admin_url()},
        "canary": {"dataUrlArg": "canary-data", "adminUrl": canary_admin},
        "sessionApiToken": {"file": secrets.path("admin")},
        "identityToken": {"file": secrets.path("identity")},
        "scenarios": ["cold", "warm"],
        "samples": SAMPLES,
        "pauseMs": 50,
        "judge": judge(),
        "rollout": {"canaryRevision": "c0ffee", "stableRevision": "5ab1e"},
        "_data": canary_data
    })
}

fn context(canary_data: &str, run: &str) -> RunContext {
    RunContext {
        namespace: "prod".into(),
        analysis_run: run.into(),
        rollout: Some("proxy".into()),
        metric: "canary".into(),
        args: [("canary-data".to_string(), canary_data.to_string())].into(),
    }
}

fn parse(mut v: Value) -> CanaryConfig {
    v.as_object_mut().unwrap().remove("_data");
    CanaryConfig::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_canary_passes_and_delayed_canary_fails_with_one_issue() {
    let (stable, canary) = tokio::join!(start_proxy("stable"), start_proxy("canary"));
    let secrets = Secrets::new();

    // Healthy against healthy.
    let cfg = parse(config(
        &stable,
        &canary.data_url(),
        &canary.admin_url(),
        &secrets,
    ));
    let progress = Progress::new();
    let started = Instant::now();
    let out = run(
        &cfg,
        &context(&canary.data_url(), "proxy-healthy-1"),
        CancellationToken::new(),
        progress.clone(),
    )
    .await;
    eprintln!(
        "healthy run took {:?}\n{}\n{:?}",
        started.elapsed(),
        out.table,
        out.summary
    );
    assert_eq!(out.phase, VerdictPhase::Successful, "{}", out.message);
    assert!(out.score.unwrap() >= 70.0);
    assert!(out.issue.is_none());
    assert_eq!(progress.stage(), Stage::Done);
    assert_eq!(progress.samples(), (2 * 2 * SAMPLES, 2 * 2 * SAMPLES));
    assert!(out.table.contains("| warm | total_ms |"), "{}", out.table);
    let metadata = serde_json::to_string(&out.summary).unwrap();
    assert!(metadata.len() < 1024, "metadata too large: {metadata}");
    assert!(
        !metadata.contains(support::ADMIN_TOKEN) && !metadata.contains(support::IDENTITY_TOKEN)
    );

    // The same canary behind a relay that delays every connection.
    let relay = DelayRelay::start(canary.data().port(), DELAY).await;
    let github = FakeGithub::start(Auth::Token("ghp_canary_test_token".into())).await;
    let mut raw = config(&stable, &relay.url, &canary.admin_url(), &secrets);
    raw["scenarios"] = json!(["warm"]);
    raw["samples"] = json!(WARM_SAMPLES);
    raw["github"] = json!({
        "owner": fake_github::OWNER,
        "repo": fake_github::REPO,
        "apiUrl": github.url,
        "labels": ["performance"],
        "auth": {"tokenFile": secrets.path("github")}
    });
    raw["rollout"]["analysisRunUrl"] =
        json!("https://argo.example/analysisruns/prod/proxy-c0ffee-2");
    let cfg = parse(raw);
    let started = Instant::now();
    let out = run(
        &cfg,
        &context(&relay.url, "proxy-c0ffee-2"),
        CancellationToken::new(),
        Progress::new(),
    )
    .await;
    eprintln!(
        "delayed run took {:?}\n{}\n{:?}",
        started.elapsed(),
        out.table,
        out.summary
    );
    assert_eq!(out.phase, VerdictPhase::Failed, "{}", out.message);
    let verdict = out.verdict.as_ref().unwrap();
    assert!(
        verdict.failing_metrics().contains(&"warm.total_ms"),
        "{:?}",
        verdict.failing_metrics()
    );
    assert!(
        matches!(out.issue, Some(ReportOutcome::Created { .. })),
        "{:?}",
        out.issue
    );
    let issues = github.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let body = issues[0]["body"].as_str().unwrap();
    assert!(body.contains("total_ms"), "{body}");
    assert!(body.contains("c0ffee"), "{body}");
    // The waterfall of the slowest canary sample: the relay holds every new connection, so the
    // step that grew is the one up to the proxy's 101, not the navigation. (The issue body escapes
    // Markdown punctuation, the apostrophe included.)
    assert!(
        body.contains("### Where the slowest canary sample spent its time"),
        "{body}"
    );
    assert!(body.contains("```mermaid\ngantt\n"), "{body}");
    assert!(
        body.contains("| **connect: to the proxy\\'s 101** |") && body.contains("(largest)"),
        "{body}"
    );
    for step in [
        "goto: request to first byte",
        "newPage: newContext",
        "goto: load event",
    ] {
        assert!(
            body.contains(&format!("| {step} |")),
            "{step} missing: {body}"
        );
    }
    let labels = issues[0]["labels"].to_string();
    assert!(labels.contains("performance"), "{labels}");
    assert!(
        out.summary["issue"].starts_with("created "),
        "{:?}",
        out.summary
    );
    assert_eq!(out.phase.to_string(), "Failed");
    assert_eq!(out.value(), "0.00", "a failed critical metric scores 0");

    // A newer canary revision without the delay passes: the open issue gets the new table and,
    // with onRecovery close, is closed.
    let mut raw = config(&stable, &canary.data_url(), &canary.admin_url(), &secrets);
    raw["scenarios"] = json!(["warm"]);
    raw["samples"] = json!(WARM_SAMPLES);
    raw["rollout"]["canaryRevision"] = json!("d00d1e");
    raw["github"] = json!({
        "owner": fake_github::OWNER,
        "repo": fake_github::REPO,
        "apiUrl": github.url,
        "onRecovery": "close",
        "auth": {"tokenFile": secrets.path("github")}
    });
    let out = run(
        &parse(raw),
        &context(&canary.data_url(), "proxy-d00d1e-1"),
        CancellationToken::new(),
        Progress::new(),
    )
    .await;
    assert_eq!(out.phase, VerdictPhase::Successful, "{}", out.message);
    assert!(
        matches!(&out.recovery, Some(RecoveryOutcome::Resolved(r)) if r.len() == 1 && r[0].closed),
        "{:?}",
        out.recovery
    );
    assert_eq!(
        out.summary["recovery"],
        format!("closed {}", issues[0]["html_url"].as_str().unwrap())
    );
    let issue = &github.issues()[0];
    assert_eq!(issue["state"], "closed");
    let comments = github.comments(1);
    assert_eq!(comments.len(), 1);
    let comment = comments[0]["body"].as_str().unwrap();
    assert!(
        comment.contains("Recovered: canary revision d00d1e passed in AnalysisRun proxy-d00d1e-1"),
        "{comment}"
    );
    assert!(comment.contains("| warm | total\\_ms |"), "{comment}");
    for r in github.requests() {
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Bearer ghp_canary_test_token")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_refusing_targets_are_error_outcomes() {
    let stable = start_proxy("reach").await;
    let secrets = Secrets::new();
    let closed = format!("http://127.0.0.1:{}", support::free_port().unwrap());

    let cfg = parse(config(&stable, &stable.data_url(), &closed, &secrets));
    let t = Instant::now();
    let out = run(
        &cfg,
        &context(&stable.data_url(), "r1"),
        CancellationToken::new(),
        Progress::new(),
    )
    .await;
    assert_eq!(out.phase, VerdictPhase::Error);
    assert!(
        out.message.starts_with("canary target: session API"),
        "{}",
        out.message
    );
    assert!(out.message.contains("unreachable"), "{}", out.message);
    assert!(t.elapsed() < Duration::from_secs(15));
    assert_eq!(out.value(), "");

    // A data port that takes no connections.
    let cfg = parse(config(&stable, &closed, &stable.admin_url(), &secrets));
    let out = run(
        &cfg,
        &context(&closed, "r2"),
        CancellationToken::new(),
        Progress::new(),
    )
    .await;
    assert_eq!(out.phase, VerdictPhase::Error);
    assert!(out.message.contains("data port"), "{}", out.message);

    // A wrong session-API token.
    std::fs::write(secrets.path("admin"), "not-the-token").unwrap();
    let cfg = parse(config(
        &stable,
        &stable.data_url(),
        &stable.admin_url(),
        &secrets,
    ));
    let out = run(
        &cfg,
        &context(&stable.data_url(), "r3"),
        CancellationToken::new(),
        Progress::new(),
    )
    .await;
    assert_eq!(out.phase, VerdictPhase::Error);
    assert!(
        out.message.contains("refused the sessionApiToken"),
        "{}",
        out.message
    );
    assert!(!out.message.contains("not-the-token"), "{}", out.message);

    // A missing secret file names the file, and a missing argument names the field.
    std::fs::remove_file(secrets.path("admin")).unwrap();
    let out = run(
        &cfg,
        &context(&stable.data_url(), "r4"),
        CancellationToken::new(),
        Progress::new(),
    )
    .await;
    assert_eq!(out.phase, VerdictPhase::Error);
    assert!(
        out.message
            .starts_with("sessionApiToken: cannot read secret file"),
        "{}",
        out.message
    );
    let mut ctx = context(&stable.data_url(), "r5");
    ctx.args.clear();
    let out = run(&cfg, &ctx, CancellationToken::new(), Progress::new()).await;
    assert_eq!(out.phase, VerdictPhase::Error);
    assert!(out.message.contains("canary.dataUrlArg"), "{}", out.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_bench_promptly_and_releases_sandboxes() {
    let proxy = start_proxy("cancel").await;
    let secrets = Secrets::new();
    let mut raw = config(&proxy, &proxy.data_url(), &proxy.admin_url(), &secrets);
    raw["samples"] = json!(50);
    let cfg = parse(raw);
    let cancel = CancellationToken::new();
    let progress = Progress::new();
    let ctx = context(&proxy.data_url(), "cancelled");
    let job = {
        let (cfg, cancel, progress) = (cfg.clone(), cancel.clone(), progress.clone());
        tokio::spawn(async move { run(&cfg, &ctx, cancel, progress).await })
    };
    // Wait until at least one sample is in, then cancel.
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.samples().0 == 0 {
        assert!(Instant::now() < deadline, "no sample within 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled_at = Instant::now();
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(30), job)
        .await
        .expect("run must stop within 30 s of the cancel")
        .unwrap();
    eprintln!("stopped {:?} after cancel", cancelled_at.elapsed());
    assert_eq!(out.phase, VerdictPhase::Inconclusive);
    assert!(out.message.contains("cancelled"), "{}", out.message);
    assert!(progress.samples().0 < progress.samples().1);

    // The sessions this run made are gone from the proxy.
    let sessions: Value = reqwest::Client::new()
        .get(format!("{}/v1/sessions", proxy.admin_url()))
        .bearer_auth(support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let left: Vec<&Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"].as_str().unwrap_or("").starts_with("sc-"))
        .collect();
    assert!(left.is_empty(), "sessions left behind: {left:?}");
}
