//! The input: a failed canary verdict, as the analysis plugin knows it.
//!
//! Every string in here may come from measured data, cluster objects or a judge (possibly an LLM),
//! so the renderer treats all of it as untrusted.

use serde::{Deserialize, Serialize};

/// One failed canary analysis, ready to be reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedVerdict {
    /// The Rollout under analysis.
    pub rollout: RolloutRef,
    /// Canary revision (e.g. the pod-template hash or image tag).
    pub canary_revision: String,
    /// Stable revision.
    pub stable_revision: String,
    /// Name of the AnalysisRun that produced the verdict.
    pub analysis_run: String,
    /// Which judge decided (threshold, statistical, llm).
    pub judge: String,
    /// The judge's 0-100 score, if it gives one.
    #[serde(default)]
    pub score: Option<f64>,
    /// Where a reader can see the objects.
    #[serde(default)]
    pub links: Links,
    /// Per scenario and phase, stable against canary.
    #[serde(default)]
    pub comparison: Vec<ComparisonRow>,
    /// Metrics the judge failed, e.g. `warm/total/p90`; part of the fingerprint.
    #[serde(default)]
    pub failing_metrics: Vec<String>,
    /// The judge's reasons in its own words.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Where the slowest canary sample spent its time, next to its stable counterpart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waterfall: Option<Waterfall>,
}

/// Two samples' steps side by side: the slowest canary sample and the stable sample of the same
/// scenario and index, so the step that regressed stands out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waterfall {
    /// The stable counterpart.
    pub stable: SampleSteps,
    /// The slowest canary sample.
    pub canary: SampleSteps,
}

/// One sample as consecutive steps on its own clock (0 = start of the sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleSteps {
    /// E.g. `cold #3`.
    pub label: String,
    /// The sample's total, in ms.
    pub total_ms: f64,
    /// In order, each from `start_ms` to `end_ms`.
    pub steps: Vec<Step>,
}

/// One step of a sample, in ms since the sample started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// What the step is, e.g. `goto: request to first byte`.
    pub name: String,
    /// Start.
    pub start_ms: f64,
    /// End.
    pub end_ms: f64,
}

/// A passed canary analysis: what may resolve the Rollout's open regression issues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassedVerdict {
    /// The Rollout under analysis.
    pub rollout: RolloutRef,
    /// The canary revision that passed.
    pub canary_revision: String,
    /// Stable revision.
    pub stable_revision: String,
    /// Name of the AnalysisRun that passed.
    pub analysis_run: String,
    /// Which judge decided.
    pub judge: String,
    /// The judge's 0-100 score, if it gives one.
    #[serde(default)]
    pub score: Option<f64>,
    /// Where a reader can see the objects.
    #[serde(default)]
    pub links: Links,
    /// Per scenario and phase, stable against canary.
    #[serde(default)]
    pub comparison: Vec<ComparisonRow>,
}

/// Namespace and name of a Rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRef {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Rollout name.
    pub name: String,
}

/// Links to the Rollout and AnalysisRun (e.g. in the Argo Rollouts dashboard).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    /// Link to the Rollout.
    #[serde(default)]
    pub rollout: Option<String>,
    /// Link to the AnalysisRun.
    #[serde(default)]
    pub analysis_run: Option<String>,
}

/// Latency of one phase of one scenario, stable against canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// Scenario name, e.g. `warm`.
    pub scenario: String,
    /// Phase name, e.g. `connect` or `total`.
    pub phase: String,
    /// The stable side.
    pub stable: PhaseStats,
    /// The canary side.
    pub canary: PhaseStats,
}

/// Summary statistics of one side, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseStats {
    /// Median.
    pub median_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
}

impl ComparisonRow {
    /// Canary median over stable median; `None` when it has no meaning.
    pub fn median_ratio(&self) -> Option<f64> {
        ratio(self.canary.median_ms, self.stable.median_ms)
    }

    /// Canary p90 over stable p90; `None` when it has no meaning.
    pub fn p90_ratio(&self) -> Option<f64> {
        ratio(self.canary.p90_ms, self.stable.p90_ms)
    }
}

/// A ratio only means something for finite, non-negative values over a positive baseline.
fn ratio(canary: f64, stable: f64) -> Option<f64> {
    (canary.is_finite() && stable.is_finite() && canary >= 0.0 && stable > 0.0)
        .then(|| canary / stable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stable: f64, canary: f64) -> ComparisonRow {
        ComparisonRow {
            scenario: "warm".into(),
            phase: "total".into(),
            stable: PhaseStats {
                median_ms: stable,
                p90_ms: stable * 2.0,
            },
            canary: PhaseStats {
                median_ms: canary,
                p90_ms: canary * 2.0,
            },
        }
    }

    #[test]
    fn ratios_are_canary_over_stable() {
        assert_eq!(row(10.0, 25.0).median_ratio(), Some(2.5));
        assert_eq!(row(10.0, 25.0).p90_ratio(), Some(2.5));
    }

    #[test]
    fn parses_the_documented_camel_case_json() {
        let v: FailedVerdict =
            serde_json::from_str(include_str!("../tests/fixtures/verdict.json")).unwrap();
        assert_eq!(v.rollout.name, "proxy");
        assert_eq!(v.canary_revision, "7d9f6c");
        assert_eq!(
            v.links.analysis_run.as_deref(),
            Some("https://argo.example/analysisruns/prod/proxy-7d9f6c-1")
        );
        assert_eq!(v.comparison[1].canary.p90_ms, 95.0);
        assert_eq!(v.failing_metrics.len(), 2);
        let minimal: FailedVerdict = serde_json::from_str(
            r#"{"rollout":{"namespace":"n","name":"r"},"canaryRevision":"c","stableRevision":"s",
                "analysisRun":"a","judge":"threshold"}"#,
        )
        .unwrap();
        assert!(minimal.comparison.is_empty() && minimal.score.is_none());
    }

    #[test]
    fn ratios_refuse_meaningless_inputs() {
        assert_eq!(row(0.0, 5.0).median_ratio(), None);
        assert_eq!(row(f64::NAN, 5.0).median_ratio(), None);
        assert_eq!(row(5.0, f64::INFINITY).median_ratio(), None);
        assert_eq!(row(5.0, -1.0).median_ratio(), None);
    }
}
