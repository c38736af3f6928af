//! Maps the bench's samples onto the judge's input model and the GitHub report's rows.
//!
//! The three crates do not depend on each other on purpose; this is where their shapes meet.

use sandcanary_bench::report::Report;
use sandcanary_bench::scenario::{Sample, Scenario, TimedPhase};
use sandcanary_github::{ComparisonRow, PhaseStats};
use sandcanary_judge::{Comparison, FailedSample, ScenarioSamples, TargetSamples};

/// Target names used in the bench run and the rendered table.
pub const STABLE: &str = "stable";
pub const CANARY: &str = "canary";

/// Longest failure reason passed on (it is untrusted measured text; the judge and the issue
/// renderer escape it, this only bounds its size).
const MAX_REASON_CHARS: usize = 300;

/// The judge's view of a run: phases of completed samples, failures with their reasons.
pub fn to_comparison(samples: &[Sample]) -> Comparison {
    Comparison {
        stable: side(samples, STABLE),
        canary: side(samples, CANARY),
    }
}

fn side(samples: &[Sample], target: &str) -> TargetSamples {
    let mut out = TargetSamples::default();
    for s in samples.iter().filter(|s| s.target == target) {
        let cell: &mut ScenarioSamples = out
            .scenarios
            .entry(s.scenario.as_str().to_string())
            .or_default();
        if s.ok {
            for phase in TimedPhase::ALL {
                if let Some(v) = s.phase(phase) {
                    cell.phases
                        .entry(phase.column().to_string())
                        .or_default()
                        .push(v);
                }
            }
            *cell.completed.get_or_insert(0) += 1;
        } else {
            cell.completed.get_or_insert(0);
            cell.failures.push(FailedSample {
                phase: None,
                reason: s
                    .error
                    .as_deref()
                    .unwrap_or("failed")
                    .chars()
                    .take(MAX_REASON_CHARS)
                    .collect(),
            });
        }
    }
    out
}

/// Per scenario and phase, stable against canary (median and p90), for the GitHub issue.
pub fn to_rows(report: &Report) -> Vec<ComparisonRow> {
    let mut rows = Vec::new();
    let cell = |target: &str, sc: Scenario| {
        report
            .summary
            .iter()
            .find(|c| c.target == target && c.scenario == sc)
    };
    for sc in Scenario::ALL {
        let (Some(a), Some(b)) = (cell(STABLE, sc), cell(CANARY, sc)) else {
            continue;
        };
        for p in TimedPhase::ALL {
            let (Some(sa), Some(sb)) = (a.phase(p), b.phase(p)) else {
                continue;
            };
            rows.push(ComparisonRow {
                scenario: sc.as_str().to_string(),
                phase: p.column().to_string(),
                stable: PhaseStats {
                    median_ms: sa.p50,
                    p90_ms: sa.p90,
                },
                canary: PhaseStats {
                    median_ms: sb.p50,
                    p90_ms: sb.p90,
                },
            });
        }
    }
    rows
}

/// Completed and total samples of one target.
pub fn completed(samples: &[Sample], target: &str) -> (usize, usize) {
    let mine = samples.iter().filter(|s| s.target == target);
    let total = mine.clone().count();
    (mine.filter(|s| s.ok).count(), total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(target: &str, scenario: Scenario, total: f64, ok: bool) -> Sample {
        Sample {
            target: target.into(),
            scenario,
            index: 0,
            ok,
            error: (!ok).then(|| "connect: refused @someone".into()),
            connect_ms: Some(total / 4.0),
            new_page_ms: Some(total / 4.0),
            goto_ms: ok.then_some(total / 2.0),
            total_ms: ok.then_some(total),
            status: Some(200),
            title: None,
            instance: Some("x".into()),
            breakdown: None,
        }
    }

    #[test]
    fn ok_samples_become_phases_and_failures_keep_their_reason() {
        let samples = vec![
            sample(STABLE, Scenario::Warm, 100.0, true),
            sample(CANARY, Scenario::Warm, 200.0, true),
            sample(CANARY, Scenario::Warm, 0.0, false),
            sample(STABLE, Scenario::Cold, 800.0, true),
        ];
        let c = to_comparison(&samples);
        c.validate().unwrap();
        let warm = &c.canary.scenarios["warm"];
        assert_eq!(warm.phases["total_ms"], vec![200.0]);
        // Phases of the failed sample stay out of the latency figures.
        assert_eq!(warm.phases["connect_ms"], vec![50.0]);
        assert_eq!(warm.completed, Some(1));
        assert_eq!(warm.failures.len(), 1);
        assert_eq!(warm.error_rate(), Some(0.5));
        assert!(warm.failures[0].reason.contains("refused"));
        assert!(!c.canary.scenarios.contains_key("cold"));
        assert_eq!(c.stable.scenarios["cold"].phases["total_ms"], vec![800.0]);
        assert_eq!(completed(&samples, CANARY), (1, 2));
    }

    #[test]
    fn a_scenario_where_everything_failed_still_counts_its_failures() {
        let c = to_comparison(&[sample(CANARY, Scenario::Cold, 0.0, false)]);
        let cold = &c.canary.scenarios["cold"];
        assert_eq!(cold.completed, Some(0));
        assert_eq!(cold.error_rate(), Some(1.0));
    }

    #[test]
    fn rows_pair_stable_and_canary_per_phase() {
        let report = Report::new(
            "http://x/",
            vec![
                sample(STABLE, Scenario::Warm, 100.0, true),
                sample(CANARY, Scenario::Warm, 300.0, true),
                sample(STABLE, Scenario::Cold, 100.0, true),
            ],
        );
        let rows = to_rows(&report);
        // Cold has no canary side, so only warm's four phases appear.
        assert_eq!(rows.len(), 4);
        let total = rows.iter().find(|r| r.phase == "total_ms").unwrap();
        assert_eq!(total.scenario, "warm");
        assert_eq!(total.median_ratio(), Some(3.0));
    }
}
