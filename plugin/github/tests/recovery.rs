//! Issues that close themselves: a later analysis of the same Rollout that passes on a newer canary
//! revision comments on the Rollout's open issues (and closes them with `onRecovery: close`),
//! against the fake GitHub over real HTTP, with the same failure injection as creation.

mod support;

use std::time::Duration;

use axum::http::Method;
use sandcanary_github::{
    ClosedMatch, GithubConfig, OnRecovery, PassedVerdict, RecoveredIssue, RecoveryOutcome,
    ReportError, ReportOutcome, Reporter, RolloutRef,
};
use support::fake_github::{Auth, FakeGithub, Fault, Route};
use support::{config, verdict};

const TOKEN: &str = "ghp_fakeTokenForTests0123456789abcdef";

struct Setup {
    fake: FakeGithub,
    config: GithubConfig,
    _dir: tempfile::TempDir,
}

async fn setup(policy: OnRecovery) -> Setup {
    let fake = FakeGithub::start(Auth::Token(TOKEN.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut config = config(&fake.url, &token_file);
    config.on_recovery = policy;
    Setup {
        fake,
        config,
        _dir: dir,
    }
}

/// `prod/proxy` passing at `revision` in AnalysisRun `run`.
fn passed(run: &str, revision: &str) -> PassedVerdict {
    let failed = verdict(run);
    PassedVerdict {
        rollout: failed.rollout,
        canary_revision: revision.into(),
        stable_revision: failed.stable_revision,
        analysis_run: run.into(),
        judge: "statistical".into(),
        score: Some(98.5),
        links: failed.links,
        comparison: failed
            .comparison
            .into_iter()
            .map(|mut r| {
                r.canary = r.stable;
                r
            })
            .collect(),
    }
}

fn resolved(number: u64, commented: bool, closed: bool) -> RecoveredIssue {
    RecoveredIssue {
        number,
        url: format!("https://github.com/acme/proxy/issues/{number}"),
        commented,
        closed,
    }
}

fn mutations(fake: &FakeGithub) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method != Method::GET)
        .count()
}

#[tokio::test]
async fn a_newer_revision_comments_on_the_open_issue_by_default() {
    let s = setup(OnRecovery::default()).await;
    assert_eq!(s.config.on_recovery, OnRecovery::Comment);
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();
    let created = s.fake.issues()[0].clone();
    let rollout_label = created["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .find(|l| l.starts_with("sandcanary:ro-"))
        .expect("new issues carry the Rollout label");
    let before = s.fake.requests().len();

    let outcome = reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RecoveryOutcome::Resolved(vec![resolved(1, true, false)])
    );
    let requests = &s.fake.requests()[before..];
    assert_eq!(
        requests.len(),
        3,
        "list, read comments, comment: {requests:#?}"
    );
    assert_eq!(requests[0].method, Method::GET);
    assert_eq!(requests[0].query["state"], "open");
    assert_eq!(requests[0].query["labels"], rollout_label);
    assert_eq!(requests[2].method, Method::POST);
    assert_eq!(requests[2].path, "/repos/acme/proxy/issues/1/comments");
    let comments = s.fake.comments(1);
    assert_eq!(comments.len(), 1);
    let body = comments[0]["body"].as_str().unwrap();
    for needle in [
        "### Recovered: canary revision 8e0a11 passed in AnalysisRun proxy-8e0a11-1",
        "| Canary revision | 8e0a11 |",
        "| Score | 98.5 / 100 |",
        "| warm | total | 21.0 | 21.0 | 1.00× |",
        "onRecovery: close",
        "<!-- sandcanary:recovered-by=",
    ] {
        assert!(body.contains(needle), "{needle:?} missing:\n{body}");
    }
    assert_eq!(
        s.fake.issues()[0]["state"],
        "open",
        "comment mode leaves it open"
    );

    // The same revision passing again (another run, or a retried call) adds nothing.
    let again = reporter
        .recover(&passed("proxy-8e0a11-2", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(
        again,
        RecoveryOutcome::Resolved(vec![resolved(1, false, false)])
    );
    assert_eq!(s.fake.comments(1).len(), 1);
    assert_eq!(s.fake.requests_to(Method::POST, "/comments").len(), 1);
}

#[tokio::test]
async fn close_comments_then_closes_as_completed() {
    let s = setup(OnRecovery::Close).await;
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();

    let outcome = reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RecoveryOutcome::Resolved(vec![resolved(1, true, true)])
    );
    let issue = &s.fake.issues()[0];
    assert_eq!(issue["state"], "closed");
    assert_eq!(issue["state_reason"], "completed");
    let patches = s.fake.requests_to(Method::PATCH, "/issues/1");
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].body.as_ref().unwrap(),
        &serde_json::json!({"state": "closed", "state_reason": "completed"})
    );
    let comment = s.fake.comments(1)[0]["body"].as_str().unwrap().to_string();
    assert!(
        comment.contains("so sandcanary closes this issue"),
        "{comment}"
    );
    // Comment first, then close.
    let order: Vec<Method> = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.method != Method::GET)
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(order, vec![Method::POST, Method::POST, Method::PATCH]);

    // Closed issues are never touched again by a recovery.
    let n = mutations(&s.fake);
    let outcome = reporter
        .recover(&passed("proxy-9b2c33-1", "9b2c33"))
        .await
        .unwrap();
    assert_eq!(outcome, RecoveryOutcome::NothingOpen);
    assert_eq!(mutations(&s.fake), n);
}

#[tokio::test]
async fn a_flapping_canary_does_not_open_close_open() {
    let s = setup(OnRecovery::Close).await;
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();

    // The regressed revision itself passing once (flaky) does not close its issue.
    let outcome = reporter
        .recover(&passed("proxy-7d9f6c-2", "7d9f6c"))
        .await
        .unwrap();
    assert_eq!(outcome, RecoveryOutcome::NothingOpen);
    assert_eq!(s.fake.issues()[0]["state"], "open");
    assert!(s.fake.comments(1).is_empty());
    // Failing again comments on the same open issue, as before.
    let outcome = reporter.report(&verdict("proxy-7d9f6c-3")).await.unwrap();
    assert!(
        matches!(outcome, ReportOutcome::Commented { number: 1, .. }),
        "{outcome:?}"
    );

    // A newer revision passes: closed. The old revision failing once more follows the
    // closedMatch rule (default link: a new issue pointing at #1), it does not reopen #1.
    reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    let outcome = reporter.report(&verdict("proxy-7d9f6c-4")).await.unwrap();
    assert!(
        matches!(outcome, ReportOutcome::Created { number: 2, .. }),
        "{outcome:?}"
    );
    let issues = s.fake.issues();
    assert_eq!(issues[0]["state"], "closed");
    assert!(
        issues[1]["body"]
            .as_str()
            .unwrap()
            .contains("reported before in #1, which is closed")
    );
}

#[tokio::test]
async fn with_closed_match_reopen_a_returning_regression_reopens_the_closed_issue() {
    let s = setup(OnRecovery::Close).await;
    let mut config = s.config.clone();
    config.closed_match = ClosedMatch::Reopen;
    let reporter = Reporter::from_config(config).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();
    reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(s.fake.issues()[0]["state"], "closed");
    let outcome = reporter.report(&verdict("proxy-7d9f6c-2")).await.unwrap();
    assert!(
        matches!(outcome, ReportOutcome::Reopened { number: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(s.fake.issues().len(), 1);
}

#[tokio::test]
async fn every_open_issue_of_the_rollout_and_only_those() {
    let s = setup(OnRecovery::Close).await;
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();
    let mut other_revision = verdict("proxy-8e0a11-1");
    other_revision.canary_revision = "8e0a11".into();
    reporter.report(&other_revision).await.unwrap();
    let mut other_rollout = verdict("api-1");
    other_rollout.rollout = RolloutRef {
        namespace: "prod".into(),
        name: "api".into(),
    };
    reporter.report(&other_rollout).await.unwrap();
    assert_eq!(s.fake.issues().len(), 3);

    let outcome = reporter
        .recover(&passed("proxy-9b2c33-1", "9b2c33"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RecoveryOutcome::Resolved(vec![resolved(1, true, true), resolved(2, true, true)])
    );
    let issues = s.fake.issues();
    assert_eq!(issues[2]["state"], "open", "another Rollout's issue");
    assert!(s.fake.comments(3).is_empty());
}

#[tokio::test]
async fn none_and_dry_run_send_nothing() {
    let s = setup(OnRecovery::None).await;
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();
    let before = s.fake.requests().len();
    let outcome = reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(outcome, RecoveryOutcome::Disabled);
    assert_eq!(s.fake.requests().len(), before);

    let mut dry = s.config.clone();
    dry.on_recovery = OnRecovery::Close;
    dry.dry_run = true;
    let outcome = Reporter::from_config(dry)
        .unwrap()
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    let RecoveryOutcome::DryRun { comment } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(comment.contains("Recovered: canary revision 8e0a11"));
    assert_eq!(s.fake.requests().len(), before);
}

#[tokio::test]
async fn retried_comments_are_never_posted_twice() {
    for (fault, posts) in [
        (
            Fault::Refuse {
                status: 502,
                headers: vec![],
                body: "<html>502</html>".into(),
            },
            2,
        ),
        (
            Fault::ApplyThenAnswer {
                status: 500,
                body: r#"{"message":"Server Error"}"#.into(),
            },
            1,
        ),
        (Fault::ApplyThenHang(Duration::from_secs(30)), 1),
        (
            Fault::Refuse {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                body: r#"{"message":"You have exceeded a secondary rate limit."}"#.into(),
            },
            2,
        ),
    ] {
        let s = setup(OnRecovery::Close).await;
        let reporter = Reporter::from_config(s.config.clone()).unwrap();
        reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();
        s.fake.fail(Route::CreateComment, fault.clone());
        let outcome = reporter
            .recover(&passed("proxy-8e0a11-1", "8e0a11"))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            RecoveryOutcome::Resolved(vec![resolved(1, true, true)]),
            "{fault:?}"
        );
        assert_eq!(s.fake.comments(1).len(), 1, "{fault:?}");
        assert_eq!(
            s.fake.requests_to(Method::POST, "/comments").len(),
            posts,
            "{fault:?}"
        );
        assert_eq!(s.fake.issues()[0]["state"], "closed", "{fault:?}");
    }
}

#[tokio::test]
async fn a_failed_close_is_retried_and_a_second_call_finishes_without_a_second_comment() {
    let s = setup(OnRecovery::Close).await;
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();

    // A 5xx on the close: the idempotent PATCH is simply sent again.
    s.fake.fail(
        Route::UpdateIssue,
        Fault::Refuse {
            status: 503,
            headers: vec![],
            body: r#"{"message":"Service Unavailable"}"#.into(),
        },
    );
    reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(s.fake.requests_to(Method::PATCH, "/issues/1").len(), 2);
    assert_eq!(s.fake.issues()[0]["state"], "closed");

    // A close GitHub refuses outright fails the call after the comment went in; the next
    // recovery (the controller's next measurement) closes it without commenting again.
    let mut v = verdict("proxy-7d9f6c-2");
    v.canary_revision = "7d9f6d".into();
    reporter.report(&v).await.unwrap();
    s.fake.fail(
        Route::UpdateIssue,
        Fault::Refuse {
            status: 403,
            headers: vec![],
            body: r#"{"message":"Must have admin rights to Repository."}"#.into(),
        },
    );
    let err = reporter
        .recover(&passed("proxy-9b2c33-1", "9b2c33"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Api {
                operation: "close issue",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.fake.comments(2).len(), 1);
    let outcome = reporter
        .recover(&passed("proxy-9b2c33-1", "9b2c33"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RecoveryOutcome::Resolved(vec![resolved(2, false, true)])
    );
    assert_eq!(s.fake.comments(2).len(), 1);
    assert_eq!(s.fake.issues()[1]["state"], "closed");
}

#[tokio::test]
async fn a_spent_quota_on_the_lookup_is_waited_out() {
    let s = setup(OnRecovery::Comment).await;
    let reporter = Reporter::from_config(s.config.clone()).unwrap();
    reporter.report(&verdict("proxy-7d9f6c-1")).await.unwrap();
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    s.fake.fail(
        Route::ListIssues,
        Fault::Refuse {
            status: 429,
            headers: vec![
                ("x-ratelimit-limit", "5000".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset.to_string()),
            ],
            body: r#"{"message":"API rate limit exceeded for user ID 1."}"#.into(),
        },
    );
    let before = s.fake.requests_to(Method::GET, "/issues").len();
    let outcome = reporter
        .recover(&passed("proxy-8e0a11-1", "8e0a11"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RecoveryOutcome::Resolved(vec![resolved(1, true, false)])
    );
    let lists = &s.fake.requests_to(Method::GET, "/issues")[before..];
    assert_eq!(lists.len(), 2, "429, then the listing");
    let gap = lists[1].at - lists[0].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
}
