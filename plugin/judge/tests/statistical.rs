//! The statistical judge end to end: hand-built cases, degenerate data and properties.

mod common;

use common::{bench_like, samples, target};
use proptest::prelude::*;
use sandcanary_judge::statistical::{
    Direction, MetricOverride, MetricRule, StatisticalConfig, StatisticalJudge,
};
use sandcanary_judge::{Classification, Comparison, Judge, Verdict, VerdictPhase};

fn judge(config: StatisticalConfig) -> StatisticalJudge {
    StatisticalJudge::new(config).unwrap()
}

fn class_of(v: &Verdict, metric: &str) -> Classification {
    v.metrics
        .iter()
        .find(|m| m.metric == metric)
        .unwrap_or_else(|| panic!("no metric {metric} in {:?}", v.metrics))
        .classification
}

fn one_metric(stable: Vec<f64>, canary: Vec<f64>) -> Comparison {
    Comparison {
        stable: target(&[("warm", "total_ms", stable)], &[]),
        canary: target(&[("warm", "total_ms", canary)], &[]),
    }
}

#[tokio::test]
async fn healthy_canary_passes_with_full_score() {
    let v = judge(StatisticalConfig::default())
        .judge(&bench_like(1.0))
        .await;
    assert_eq!(v.phase, VerdictPhase::Successful, "{v:#?}");
    assert_eq!(v.score, 100.0);
    // 4 latency metrics + 2 error-rate metrics
    assert_eq!(v.metrics.len(), 6);
    assert!(
        v.summary
            .starts_with("statistical: Successful score=100.00"),
        "{}",
        v.summary
    );
}

#[tokio::test]
async fn slower_canary_fails_with_the_numbers_in_the_reason() {
    let v = judge(StatisticalConfig::default())
        .judge(&bench_like(1.5))
        .await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::High);
    // 5 of 6 pass -> 83.33: below pass 95, above marginal 75
    assert_eq!(v.score, 83.33);
    assert_eq!(v.phase, VerdictPhase::Inconclusive);
    let m = v
        .metrics
        .iter()
        .find(|m| m.metric == "warm.total_ms")
        .unwrap();
    assert!(m.stats["ci_low"] > 0.0);
    assert!(m.stats["effect_size"] > 1.4 && m.stats["effect_size"] < 1.6);
    assert!(m.reason.contains("canary slower"), "{}", m.reason);
    assert!(v.summary.contains("warm.total_ms=High"), "{}", v.summary);
}

#[tokio::test]
async fn critical_metric_failure_zeroes_the_score() {
    let config = StatisticalConfig {
        metrics: vec![MetricOverride {
            pattern: "warm.total_ms".into(),
            rule: MetricRule {
                critical: Some(true),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    let v = judge(config).judge(&bench_like(1.5)).await;
    assert_eq!(v.phase, VerdictPhase::Failed);
    assert_eq!(v.score, 0.0);
    assert!(v.reasons[0].contains("critical"), "{:?}", v.reasons);
}

#[tokio::test]
async fn critical_effect_size_is_a_critical_failure() {
    let config = StatisticalConfig {
        defaults: MetricRule {
            critical_increase: Some(1.3),
            ..Default::default()
        },
        ..Default::default()
    };
    let v = judge(config.clone()).judge(&bench_like(1.5)).await;
    assert_eq!((v.phase, v.score), (VerdictPhase::Failed, 0.0));
    // 1.2x is High but below the critical 1.3
    let v = judge(config).judge(&bench_like(1.2)).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::High);
    assert_eq!(v.score, 83.33);
}

#[tokio::test]
async fn marginal_and_pass_thresholds_decide_the_phase() {
    // 10 latency metrics + 1 error metric, one High: 10/11 = 90.91
    let mut stable = Vec::new();
    let mut canary = Vec::new();
    for i in 0..10u64 {
        let phase: &'static str = Box::leak(format!("p{i}_ms").into_boxed_str());
        stable.push(("s", phase, samples(100 + i, 40, 50.0, 5.0)));
        let factor = if i == 0 { 2.0 } else { 1.0 };
        canary.push((
            "s",
            phase,
            samples(200 + i, 40, 50.0, 5.0)
                .into_iter()
                .map(|v| v * factor)
                .collect(),
        ));
    }
    let input = Comparison {
        stable: target(&stable, &[]),
        canary: target(&canary, &[]),
    };
    let v = judge(StatisticalConfig::default()).judge(&input).await;
    assert_eq!(v.score, 90.91);
    assert_eq!(v.phase, VerdictPhase::Inconclusive);
    let v = judge(StatisticalConfig {
        pass_score: 90.0,
        ..Default::default()
    })
    .judge(&input)
    .await;
    assert_eq!(v.phase, VerdictPhase::Successful);
    let v = judge(StatisticalConfig {
        pass_score: 99.0,
        marginal_score: 95.0,
        ..Default::default()
    })
    .judge(&input)
    .await;
    assert_eq!(v.phase, VerdictPhase::Failed);
}

#[tokio::test]
async fn weights_change_the_score() {
    let config = StatisticalConfig {
        metrics: vec![MetricOverride {
            pattern: "warm.total_ms".into(),
            rule: MetricRule {
                weight: Some(4.0),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    // failing weight 4 of total 9 -> 5/9 = 55.56
    let v = judge(config).judge(&bench_like(1.5)).await;
    assert_eq!(v.score, 55.56);
    assert_eq!(v.phase, VerdictPhase::Failed);
}

#[tokio::test]
async fn too_few_samples_is_no_data_and_majority_no_data_is_inconclusive() {
    let input = one_metric(vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 30.0]);
    let v = judge(StatisticalConfig::default()).judge(&input).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::NoData);
    assert_eq!(v.phase, VerdictPhase::Inconclusive);
    assert_eq!(v.score, 0.0);
    assert!(v.reasons[0].contains("too little data"), "{:?}", v.reasons);
}

#[tokio::test]
async fn must_have_data_turns_no_data_into_a_failure() {
    let mut input = bench_like(1.0);
    input
        .canary
        .scenarios
        .get_mut("warm")
        .unwrap()
        .phases
        .remove("connect_ms");
    let plain = judge(StatisticalConfig::default()).judge(&input).await;
    assert_eq!(class_of(&plain, "warm.connect_ms"), Classification::NoData);
    assert_eq!(plain.phase, VerdictPhase::Successful);
    let config = StatisticalConfig {
        metrics: vec![MetricOverride {
            pattern: "warm.connect_ms".into(),
            rule: MetricRule {
                must_have_data: Some(true),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    let v = judge(config).judge(&input).await;
    assert_eq!(class_of(&v, "warm.connect_ms"), Classification::NoDataFail);
    assert_eq!(v.score, 83.33);
}

#[tokio::test]
async fn identical_and_all_tied_samples_pass() {
    let s = samples(5, 30, 10.0, 2.0);
    let mut shuffled = s.clone();
    shuffled.reverse();
    let v = judge(StatisticalConfig::default())
        .judge(&one_metric(s, shuffled))
        .await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
    assert!(v.metrics[0].reason.contains("identical"));
    let v = judge(StatisticalConfig::default())
        .judge(&one_metric(vec![7.0; 20], vec![7.0; 25]))
        .await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
    assert_eq!(v.phase, VerdictPhase::Successful);
}

#[tokio::test]
async fn constant_but_different_samples_are_judged_without_noise() {
    let v = judge(StatisticalConfig::default())
        .judge(&one_metric(vec![10.0; 20], vec![12.0; 20]))
        .await;
    let m = &v.metrics[0];
    assert_eq!(m.classification, Classification::High);
    assert_eq!(
        (m.stats["shift"], m.stats["ci_low"], m.stats["ci_high"]),
        (2.0, 2.0, 2.0)
    );
    // 10 -> 10.5 is significant but below the default 1.1 effect size
    let v = judge(StatisticalConfig::default())
        .judge(&one_metric(vec![10.0; 20], vec![10.5; 20]))
        .await;
    assert_eq!(v.metrics[0].classification, Classification::Pass);
    assert!(v.metrics[0].stats["ci_low"] > 0.0);
}

#[tokio::test]
async fn direction_decides_which_change_fails() {
    let slow = one_metric(samples(1, 40, 50.0, 5.0), samples(2, 40, 80.0, 5.0));
    let only_decrease = StatisticalConfig {
        defaults: MetricRule {
            direction: Some(Direction::Decrease),
            ..Default::default()
        },
        ..Default::default()
    };
    let v = judge(only_decrease.clone()).judge(&slow).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
    let v = judge(only_decrease).judge(&slow.swapped()).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Low);
    // default direction: a faster canary is fine
    let v = judge(StatisticalConfig::default())
        .judge(&slow.swapped())
        .await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
}

#[tokio::test]
async fn muted_metrics_are_left_out() {
    let config = StatisticalConfig {
        metrics: vec![MetricOverride {
            pattern: "warm.*".into(),
            rule: MetricRule {
                muted: Some(true),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    let v = judge(config).judge(&bench_like(1.5)).await;
    assert!(v.metrics.iter().all(|m| !m.metric.starts_with("warm.")));
    assert_eq!(v.phase, VerdictPhase::Successful);
}

#[tokio::test]
async fn error_rates_are_compared_with_counts() {
    let mut input = bench_like(1.0);
    let fail = |n: usize| {
        (0..n)
            .map(|_| sandcanary_judge::FailedSample {
                phase: None,
                reason: "net::ERR_CONNECTION_RESET".into(),
            })
            .collect::<Vec<_>>()
    };
    input.canary.scenarios.get_mut("cold").unwrap().failures = fail(8);
    let v = judge(StatisticalConfig::default()).judge(&input).await;
    let m = v
        .metrics
        .iter()
        .find(|m| m.metric == "cold.errors")
        .unwrap();
    assert_eq!(m.classification, Classification::High);
    assert!(m.stats["p_fisher"] < 0.01, "{:?}", m.stats);
    assert!(m.reason.contains("canary 8/68 failed"), "{}", m.reason);
    // the same number of failures on both sides passes
    input.stable.scenarios.get_mut("cold").unwrap().failures = fail(8);
    let v = judge(StatisticalConfig::default()).judge(&input).await;
    assert_eq!(class_of(&v, "cold.errors"), Classification::Pass);
}

#[tokio::test]
async fn invalid_input_is_an_error_verdict_naming_the_field() {
    let input = one_metric(vec![1.0, f64::NAN], vec![1.0]);
    let v = judge(StatisticalConfig::default()).judge(&input).await;
    assert_eq!(v.phase, VerdictPhase::Error);
    assert!(
        v.reasons[0].contains("stable.warm.total_ms[1]"),
        "{:?}",
        v.reasons
    );
    let v = judge(StatisticalConfig::default())
        .judge(&Comparison::default())
        .await;
    assert_eq!(v.phase, VerdictPhase::Error);
}

#[test]
fn configuration_errors_name_the_field() {
    let bad = StatisticalConfig {
        confidence: 1.5,
        ..Default::default()
    };
    assert!(
        StatisticalJudge::new(bad)
            .unwrap_err()
            .to_string()
            .starts_with("confidence:")
    );
    let bad = StatisticalConfig {
        marginal_score: 99.0,
        ..Default::default()
    };
    assert!(
        StatisticalJudge::new(bad)
            .unwrap_err()
            .to_string()
            .starts_with("marginalScore:")
    );
    let bad = StatisticalConfig {
        metrics: vec![MetricOverride {
            pattern: "x".into(),
            rule: MetricRule {
                weight: Some(-1.0),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    assert!(
        StatisticalJudge::new(bad)
            .unwrap_err()
            .to_string()
            .starts_with("metrics[0].weight")
    );
}

#[test]
fn configuration_is_camel_case_json_and_rejects_unknown_keys() {
    let c: StatisticalConfig = serde_json::from_str(
        r#"{"confidence":0.95,"passScore":90,"marginalScore":70,"effectSize":"cles",
            "metrics":[{"match":"warm.*","critical":true,"direction":"either"}],
            "errorRate":{"tolerance":0.1}}"#,
    )
    .unwrap();
    assert_eq!(c.metrics[0].rule.critical, Some(true));
    assert_eq!(c.metrics[0].rule.direction, Some(Direction::Either));
    assert_eq!(c.error_rate.tolerance, 0.1);
    assert!(c.error_rate.enabled);
    let err = serde_json::from_str::<StatisticalConfig>(r#"{"confidense":0.9}"#).unwrap_err();
    assert!(err.to_string().contains("confidense"), "{err}");
    let err =
        serde_json::from_str::<StatisticalConfig>(r#"{"metrics":[{"match":"a","wieght":1}]}"#);
    assert!(err.is_err());
}

fn either() -> StatisticalJudge {
    judge(StatisticalConfig {
        defaults: MetricRule {
            direction: Some(Direction::Either),
            allowed_increase: Some(1.0),
            allowed_decrease: Some(1.0),
            ..Default::default()
        },
        error_rate: sandcanary_judge::statistical::ErrorRateRule {
            enabled: false,
            tolerance: 0.0,
        },
        ..Default::default()
    })
}

fn sample_strategy() -> impl Strategy<Value = Vec<f64>> {
    // integers make ties common; the offset makes location shifts common
    (0u32..3, prop::collection::vec(0u32..40, 5..45))
        .prop_map(|(offset, v)| v.into_iter().map(|x| (x + offset * 15) as f64).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Exchanging stable and canary turns High into Low and the other way round.
    #[test]
    fn swapping_sides_flips_the_direction(a in sample_strategy(), b in sample_strategy()) {
        let input = one_metric(a, b);
        let j = either();
        let v = j.evaluate(&input);
        let w = j.evaluate(&input.swapped());
        let (c1, c2) = (v.metrics[0].classification, w.metrics[0].classification);
        let expected = match c1 {
            Classification::High => Classification::Low,
            Classification::Low => Classification::High,
            other => other,
        };
        prop_assert_eq!(c2, expected);
        let (s1, s2) = (&v.metrics[0].stats, &w.metrics[0].stats);
        if let (Some(x), Some(y)) = (s1.get("shift"), s2.get("shift")) {
            prop_assert_eq!(*x, -*y);
            prop_assert_eq!(s1["ci_low"], -s2["ci_high"]);
        }
    }

    /// The same samples in any order always pass.
    #[test]
    fn identical_samples_pass(a in sample_strategy(), seed in any::<u64>()) {
        let mut b = a.clone();
        let mut r = common::Lcg::new(seed);
        for i in (1..b.len()).rev() {
            let j = (r.next_f64() * (i + 1) as f64) as usize;
            b.swap(i, j.min(i));
        }
        let v = judge(StatisticalConfig::default()).evaluate(&one_metric(a, b));
        prop_assert_eq!(v.phase, VerdictPhase::Successful);
        prop_assert_eq!(v.score, 100.0);
    }

    /// The shift estimate lies inside its interval and U is consistent.
    #[test]
    fn estimate_inside_interval(a in sample_strategy(), b in sample_strategy()) {
        let s = sandcanary_judge::stats::hodges_lehmann::shift(&a, &b, 0.95).unwrap();
        prop_assert!(s.ci_low <= s.estimate && s.estimate <= s.ci_high);
        let u1 = sandcanary_judge::stats::mann_whitney::mann_whitney(&a, &b).unwrap().u;
        let u2 = sandcanary_judge::stats::mann_whitney::mann_whitney(&b, &a).unwrap().u;
        prop_assert_eq!(u1 + u2, (a.len() * b.len()) as f64);
    }
}

#[tokio::test]
async fn swapping_a_regression_gives_low_with_direction_either() {
    let input = one_metric(samples(1, 40, 50.0, 5.0), samples(2, 40, 80.0, 5.0));
    let v = either().judge(&input).await;
    let w = either().judge(&input.swapped()).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::High);
    assert_eq!(class_of(&w, "warm.total_ms"), Classification::Low);
}

#[tokio::test]
async fn cles_effect_size_is_supported() {
    let config: StatisticalConfig =
        serde_json::from_str(r#"{"effectSize":"cles","defaults":{"allowedIncrease":0.7}}"#)
            .unwrap();
    let v = judge(config).judge(&bench_like(1.5)).await;
    let m = v
        .metrics
        .iter()
        .find(|m| m.metric == "warm.total_ms")
        .unwrap();
    assert_eq!(m.classification, Classification::High);
    // CLES = U / (m n): the share of pairs where the canary is slower
    assert!(
        m.stats["effect_size"] > 0.9 && m.stats["effect_size"] <= 1.0,
        "{:?}",
        m.stats
    );
    assert_eq!(m.stats["effect_size"], m.stats["u"] / 3600.0);
    // a threshold above the observed CLES keeps it a pass
    let config: StatisticalConfig =
        serde_json::from_str(r#"{"effectSize":"cles","defaults":{"allowedIncrease":1.01}}"#)
            .unwrap();
    let v = judge(config).judge(&bench_like(1.5)).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
}

/// Kayenta's known blind spot (spinnaker/kayenta#780): a wider spread with the same centre
/// passes a location test. The opt-in tail metric catches it.
#[tokio::test]
async fn tail_metric_catches_a_wider_spread_with_the_same_median() {
    let n = 60;
    let stable: Vec<f64> = (0..n)
        .map(|i| 45.0 + 10.0 * i as f64 / (n - 1) as f64)
        .collect();
    let canary: Vec<f64> = (0..n)
        .map(|i| 30.0 + 40.0 * i as f64 / (n - 1) as f64)
        .collect();
    let input = one_metric(stable, canary);
    let v = judge(StatisticalConfig::default()).judge(&input).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
    assert_eq!(v.phase, VerdictPhase::Successful);
    let config: StatisticalConfig = serde_json::from_str(r#"{"tailQuantile":0.9}"#).unwrap();
    let v = judge(config).judge(&input).await;
    assert_eq!(class_of(&v, "warm.total_ms"), Classification::Pass);
    let tail = v
        .metrics
        .iter()
        .find(|m| m.metric == "warm.total_ms.p90")
        .unwrap();
    assert_eq!(tail.classification, Classification::High, "{}", tail.reason);
    assert_eq!(tail.stats["stable_over"], 0.0);
    assert!(tail.stats["canary_over"] >= 10.0, "{:?}", tail.stats);
    assert!(v.phase != VerdictPhase::Successful);
    // identical samples: the tail metric passes too
    let same = one_metric(samples(3, 40, 50.0, 5.0), samples(3, 40, 50.0, 5.0));
    let config: StatisticalConfig = serde_json::from_str(r#"{"tailQuantile":0.95}"#).unwrap();
    let v = judge(config).judge(&same).await;
    assert_eq!(class_of(&v, "warm.total_ms.p95"), Classification::Pass);
    assert!(
        serde_json::from_str::<StatisticalConfig>(r#"{"tailQuantile":1.0}"#)
            .map(|c| StatisticalJudge::new(c).is_err())
            .unwrap()
    );
}
