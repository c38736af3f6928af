//! What a judge returns: a phase, a score, per-metric results, reasons and a short summary.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::stats::describe::Describe;

/// The measurement phase a verdict maps to (Argo's `AnalysisPhase` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerdictPhase {
    Successful,
    Inconclusive,
    Failed,
    /// The input could not be judged (invalid data, misconfiguration).
    Error,
}

impl VerdictPhase {
    /// The string Argo expects in `Measurement.Phase`.
    pub fn as_argo(self) -> &'static str {
        match self {
            VerdictPhase::Successful => "Successful",
            VerdictPhase::Inconclusive => "Inconclusive",
            VerdictPhase::Failed => "Failed",
            VerdictPhase::Error => "Error",
        }
    }
}

impl fmt::Display for VerdictPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_argo())
    }
}

/// How one metric was classified (Kayenta's metric classes, plus `Fail` for absolute limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Classification {
    /// Within limits / no meaningful difference.
    Pass,
    /// Canary significantly higher than stable.
    High,
    /// Canary significantly lower than stable.
    Low,
    /// An absolute limit was exceeded.
    Fail,
    /// Not enough data; left out of the score.
    NoData,
    /// Not enough data for a metric that must have data; counts as a failure.
    NoDataFail,
    /// The metric could not be evaluated; left out of the score.
    Error,
}

impl Classification {
    /// Whether the metric counts as failed in a score.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Classification::High
                | Classification::Low
                | Classification::Fail
                | Classification::NoDataFail
        )
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Classification::Pass => "Pass",
            Classification::High => "High",
            Classification::Low => "Low",
            Classification::Fail => "Fail",
            Classification::NoData => "NoData",
            Classification::NoDataFail => "NoDataFail",
            Classification::Error => "Error",
        };
        f.write_str(s)
    }
}

/// The result for one metric, with the numbers that led to it (users want the statistics, not
/// just a label).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    /// `scenario.phase`, or `scenario.errors` for error rates.
    pub metric: String,
    pub classification: Classification,
    /// Critical metrics that do not pass zero the whole score.
    pub critical: bool,
    pub weight: f64,
    pub stable: Option<Describe>,
    pub canary: Option<Describe>,
    /// Test statistics and limits (e.g. `u`, `p_value`, `shift`, `ci_low`, `ci_high`,
    /// `effect_size`, `limit_p90`).
    pub stats: BTreeMap<String, f64>,
    /// One sentence on why it got its class.
    pub reason: String,
}

/// A judge's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Which judge decided (`threshold`, `statistical`, `llm`, or `llm->statistical` on fallback).
    pub judge: String,
    pub phase: VerdictPhase,
    /// 0-100, rounded to two decimals; Argo's `Measurement.Value`.
    pub score: f64,
    pub metrics: Vec<MetricResult>,
    /// Human-readable reasons, most important first.
    pub reasons: Vec<String>,
    /// One short line for `Measurement.Metadata` (at most [`SUMMARY_MAX`] bytes).
    pub summary: String,
    /// Small audit facts (LLM model, prompt digest, confidence, fallback reason); never secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit: BTreeMap<String, String>,
}

/// Upper bound of [`Verdict::summary`]: the AnalysisRun status lives in etcd and keeps 10
/// measurements per metric, so every byte is stored many times.
pub const SUMMARY_MAX: usize = 240;

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `...`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A p-value for people: four decimals, or scientific notation when smaller than that shows.
pub fn fmt_p(p: f64) -> String {
    if p != 0.0 && p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// Rounds to two decimals, as Kayenta reports scores.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Verdict {
    /// An `Error` verdict for input that cannot be judged.
    pub fn error(judge: &str, why: impl Into<String>) -> Self {
        let why = why.into();
        Self {
            judge: judge.to_string(),
            phase: VerdictPhase::Error,
            score: 0.0,
            metrics: Vec::new(),
            summary: truncate(&format!("{judge}: error: {why}"), SUMMARY_MAX),
            reasons: vec![why],
            audit: BTreeMap::new(),
        }
    }

    /// The score as Argo's `Measurement.Value` string (a number the dashboard can chart).
    pub fn value(&self) -> String {
        format!("{:.2}", self.score)
    }

    /// Metrics that failed, by name.
    pub fn failing_metrics(&self) -> Vec<&str> {
        self.metrics
            .iter()
            .filter(|m| m.classification.is_failure())
            .map(|m| m.metric.as_str())
            .collect()
    }

    /// Builds the one-line summary: judge, phase, score and the failing metrics.
    pub fn summarize(
        judge: &str,
        phase: VerdictPhase,
        score: f64,
        metrics: &[MetricResult],
    ) -> String {
        let failing: Vec<String> = metrics
            .iter()
            .filter(|m| m.classification.is_failure())
            .map(|m| format!("{}={}", m.metric, m.classification))
            .collect();
        let mut s = format!("{judge}: {phase} score={score:.2}");
        if !failing.is_empty() {
            s.push_str(" failing: ");
            s.push_str(&failing.join(","));
        }
        truncate(&s, SUMMARY_MAX)
    }

    /// A small string map for Argo's `Measurement.Metadata` (no raw data, no secrets).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("judge".into(), self.judge.clone());
        m.insert("score".into(), format!("{:.2}", self.score));
        m.insert("summary".into(), self.summary.clone());
        for (k, v) in &self.audit {
            m.insert(k.clone(), truncate(v, 120));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_stay_readable() {
        assert_eq!(fmt_p(0.12345), "0.1235");
        assert_eq!(fmt_p(3.2e-9), "3.2e-9");
        assert_eq!(fmt_p(0.0), "0.0000");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "ééééé";
        let t = truncate(s, 6);
        assert!(t.len() <= 6);
        assert!(t.ends_with("..."));
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn summary_is_bounded() {
        let metrics: Vec<MetricResult> = (0..100)
            .map(|i| MetricResult {
                metric: format!("scenario{i}.total_ms"),
                classification: Classification::High,
                critical: false,
                weight: 1.0,
                stable: None,
                canary: None,
                stats: BTreeMap::new(),
                reason: String::new(),
            })
            .collect();
        let s = Verdict::summarize("statistical", VerdictPhase::Failed, 0.0, &metrics);
        assert!(s.len() <= SUMMARY_MAX);
        assert!(s.starts_with("statistical: Failed score=0.00 failing: scenario0.total_ms=High"));
    }
}
