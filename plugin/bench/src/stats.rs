//! Latency summaries per target, scenario and phase, from HdrHistogram (microsecond resolution).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::{Sample, Scenario, TimedPhase};

/// Summary of one phase's successful samples, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseStats {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl PhaseStats {
    /// `None` when there is no value.
    pub fn from_ms(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        // 1 µs .. 1 h, 3 significant digits: ample for session latencies.
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        for v in values {
            let us = (v * 1000.0).round().clamp(1.0, 3_600_000_000.0) as u64;
            h.record(us).expect("value clamped into range");
        }
        // Min, max and mean are exact; quantiles come from the histogram, kept within [min, max].
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let q = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0).clamp(min, max);
        Some(Self {
            count: h.len(),
            min,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max,
            mean: values.iter().sum::<f64>() / values.len() as f64,
        })
    }
}

/// Summary of one (target, scenario) cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellStats {
    pub target: String,
    pub scenario: Scenario,
    pub ok: usize,
    pub failed: usize,
    /// Failure reasons with their counts.
    pub failures: BTreeMap<String, usize>,
    pub phases: BTreeMap<&'static str, PhaseStats>,
}

impl CellStats {
    pub fn phase(&self, phase: TimedPhase) -> Option<&PhaseStats> {
        self.phases.get(phase.column())
    }
}

/// Summaries in first-seen target order, then scenario order.
pub fn summarize(samples: &[Sample]) -> Vec<CellStats> {
    let mut targets: Vec<&str> = Vec::new();
    for s in samples {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    let mut out = Vec::new();
    for t in targets {
        for sc in Scenario::ALL {
            let cell: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.target == t && s.scenario == sc)
                .collect();
            if cell.is_empty() {
                continue;
            }
            let mut failures = BTreeMap::new();
            for s in cell.iter().filter(|s| !s.ok) {
                *failures
                    .entry(s.error.clone().unwrap_or_else(|| "unknown".into()))
                    .or_insert(0) += 1;
            }
            let mut phases = BTreeMap::new();
            for p in TimedPhase::ALL {
                let values: Vec<f64> = cell
                    .iter()
                    .filter(|s| s.ok)
                    .filter_map(|s| s.phase(p))
                    .collect();
                if let Some(st) = PhaseStats::from_ms(&values) {
                    phases.insert(p.column(), st);
                }
            }
            out.push(CellStats {
                target: t.to_string(),
                scenario: sc,
                ok: cell.iter().filter(|s| s.ok).count(),
                failed: cell.iter().filter(|s| !s.ok).count(),
                failures,
                phases,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_one_to_a_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = PhaseStats::from_ms(&v).unwrap();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p90 - 90.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.min - 1.0).abs() < 0.01 && (s.max - 100.0).abs() < 0.1);
        assert!((s.mean - 50.5).abs() < 0.1);
        assert!(PhaseStats::from_ms(&[]).is_none());
    }

    #[test]
    fn failures_are_counted_not_dropped() {
        let mk = |ok: bool, total: f64| Sample {
            target: "t".into(),
            scenario: Scenario::Warm,
            index: 0,
            ok,
            error: (!ok).then(|| "goto: boom".to_string()),
            connect_ms: Some(1.0),
            new_page_ms: Some(2.0),
            goto_ms: Some(3.0),
            total_ms: Some(total),
            status: None,
            title: None,
            instance: None,
            breakdown: None,
        };
        let cells = summarize(&[mk(true, 6.0), mk(false, 999.0), mk(true, 8.0)]);
        assert_eq!(cells.len(), 1);
        assert_eq!((cells[0].ok, cells[0].failed), (2, 1));
        assert_eq!(cells[0].failures["goto: boom"], 1);
        assert_eq!(
            cells[0].phase(TimedPhase::Total).unwrap().max,
            8.0,
            "failed samples stay out of latencies"
        );
    }
}
