//! The threshold judge: absolute limits on the canary.

mod common;

use common::{bench_like, target};
use sandcanary_judge::threshold::{ErrorRateLimit, Limit, ThresholdConfig, ThresholdJudge};
use sandcanary_judge::{Classification, Comparison, FailedSample, Judge, VerdictPhase};

fn limits(l: Vec<Limit>) -> ThresholdConfig {
    ThresholdConfig {
        limits: l,
        ..Default::default()
    }
}

#[tokio::test]
async fn within_limits_is_successful() {
    let config = limits(vec![
        Limit {
            pattern: "warm.total_ms".into(),
            median: Some(100.0),
            p90: Some(150.0),
            p99: Some(250.0),
        },
        Limit {
            pattern: "cold.*".into(),
            p99: Some(5000.0),
            ..Default::default()
        },
    ]);
    let v = ThresholdJudge::new(config)
        .unwrap()
        .judge(&bench_like(1.0))
        .await;
    assert_eq!(v.phase, VerdictPhase::Successful, "{:#?}", v.reasons);
    // warm.total_ms, cold.connect_ms, cold.total_ms, and two error-rate checks
    assert_eq!(v.metrics.len(), 5);
    assert_eq!(v.score, 100.0);
}

#[tokio::test]
async fn exceeding_a_percentile_fails_and_says_by_how_much() {
    // hand-computed: 1..=10 ms -> median 5.5, p90 9.1, p99 9.91 (linear interpolation)
    let canary: Vec<f64> = (1..=10).map(f64::from).collect();
    let input = Comparison {
        stable: target(&[("warm", "total_ms", vec![1.0; 10])], &[]),
        canary: target(&[("warm", "total_ms", canary)], &[]),
    };
    let config = limits(vec![Limit {
        pattern: "warm.total_ms".into(),
        median: Some(6.0),
        p90: Some(9.0),
        p99: Some(10.0),
    }]);
    let v = ThresholdJudge::new(config).unwrap().judge(&input).await;
    assert_eq!(v.phase, VerdictPhase::Failed);
    let m = &v.metrics[0];
    assert_eq!(m.classification, Classification::Fail);
    assert_eq!(m.reason, "warm.total_ms: p90 9.10 ms > 9.00 ms");
    assert_eq!(m.stats["median"], 5.5);
    // one of two checks (limit, error rate) passed
    assert_eq!(v.score, 50.0);
}

#[tokio::test]
async fn error_rate_limits_apply_per_scenario() {
    let mut input = bench_like(1.0);
    input.canary.scenarios.get_mut("cold").unwrap().failures = vec![
        FailedSample {
            phase: None,
            reason: "timeout".into(),
        };
        3
    ];
    // default maxErrorRate 0: any failure fails
    let v = ThresholdJudge::new(ThresholdConfig::default())
        .unwrap()
        .judge(&input)
        .await;
    assert_eq!(v.phase, VerdictPhase::Failed);
    assert!(
        v.reasons[0].contains("cold.errors: canary error rate 0.048 (3/63) > 0.000"),
        "{:?}",
        v.reasons
    );
    // a per-scenario allowance of 10 % passes
    let config = ThresholdConfig {
        error_rates: vec![ErrorRateLimit {
            pattern: "cold".into(),
            max: 0.1,
        }],
        ..Default::default()
    };
    let v = ThresholdJudge::new(config).unwrap().judge(&input).await;
    assert_eq!(v.phase, VerdictPhase::Successful);
}

#[tokio::test]
async fn a_limit_without_data_is_inconclusive_not_a_pass() {
    let config = limits(vec![Limit {
        pattern: "restore.total_ms".into(),
        p99: Some(100.0),
        ..Default::default()
    }]);
    let v = ThresholdJudge::new(config)
        .unwrap()
        .judge(&bench_like(1.0))
        .await;
    assert_eq!(v.phase, VerdictPhase::Inconclusive);
    assert!(
        v.reasons[0].contains("matches no measured metric"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn invalid_input_is_an_error() {
    let input = Comparison {
        stable: target(&[("warm", "total_ms", vec![1.0])], &[]),
        canary: target(&[("warm", "total_ms", vec![f64::INFINITY])], &[]),
    };
    let v = ThresholdJudge::new(ThresholdConfig::default())
        .unwrap()
        .judge(&input)
        .await;
    assert_eq!(v.phase, VerdictPhase::Error);
    assert!(
        v.summary.contains("canary.warm.total_ms[0]"),
        "{}",
        v.summary
    );
}

#[test]
fn configuration_is_validated_and_parsed() {
    let c: ThresholdConfig = serde_json::from_str(
        r#"{"limits":[{"match":"warm.total_ms","p99":150}],"maxErrorRate":0.01}"#,
    )
    .unwrap();
    assert_eq!(c.limits[0].p99, Some(150.0));
    assert!(ThresholdJudge::new(c).is_ok());
    let err = ThresholdJudge::new(limits(vec![Limit {
        pattern: "warm.total_ms".into(),
        ..Default::default()
    }]))
    .unwrap_err();
    assert!(err.to_string().starts_with("limits[0]:"), "{err}");
    let err = ThresholdJudge::new(ThresholdConfig {
        max_error_rate: Some(2.0),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("maxErrorRate:"), "{err}");
    assert!(
        serde_json::from_str::<ThresholdConfig>(r#"{"limits":[{"match":"a","p95":1}]}"#).is_err()
    );
}
