//! The threshold judge: absolute limits on the canary's own numbers (Flagger-style), per
//! scenario and phase, plus a maximum error rate. Stable is not consulted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::JudgeConfigError;
use crate::judge::Judge;
use crate::model::{Comparison, MetricKey};
use crate::rules::matches;
use crate::stats::describe::Describe;
use crate::verdict::{Classification, MetricResult, Verdict, VerdictPhase, round2};

/// Limits for the metrics a pattern names (`warm.total_ms`, `*.goto_ms`); values in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limit {
    #[serde(rename = "match")]
    #[schemars(length(min = 1))]
    pub pattern: String,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// A maximum error rate for the scenarios a pattern names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErrorRateLimit {
    #[serde(rename = "match")]
    pub pattern: String,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max: f64,
}

/// Settings of the threshold judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ThresholdConfig {
    pub limits: Vec<Limit>,
    /// Share of failed iterations allowed in every scenario (0-1); `null` disables the check.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: Option<f64>,
    /// Per-scenario error-rate limits; the first match wins over `maxErrorRate`.
    pub error_rates: Vec<ErrorRateLimit>,
    /// A limited metric with fewer canary samples than this cannot be checked (Inconclusive).
    #[schemars(range(min = 1))]
    pub min_samples: usize,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            limits: Vec::new(),
            max_error_rate: Some(0.0),
            error_rates: Vec::new(),
            min_samples: 1,
        }
    }
}

fn invalid(field: String, why: &str) -> JudgeConfigError {
    JudgeConfigError::Invalid {
        field,
        why: why.to_string(),
    }
}

impl ThresholdConfig {
    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        for (i, l) in self.limits.iter().enumerate() {
            if l.pattern.trim().is_empty() {
                return Err(invalid(format!("limits[{i}].match"), "must not be empty"));
            }
            if l.median.is_none() && l.p90.is_none() && l.p99.is_none() {
                return Err(invalid(
                    format!("limits[{i}]"),
                    "needs at least one of median, p90, p99",
                ));
            }
            for (name, v) in [("median", l.median), ("p90", l.p90), ("p99", l.p99)] {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    return Err(invalid(
                        format!("limits[{i}].{name}"),
                        "must be a non-negative number",
                    ));
                }
            }
        }
        let rates = self
            .max_error_rate
            .map(|v| ("maxErrorRate".to_string(), v))
            .into_iter()
            .chain(
                self.error_rates
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("errorRates[{i}].max"), e.max)),
            );
        for (field, v) in rates {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(field, "must be between 0 and 1"));
            }
        }
        if self.min_samples < 1 {
            return Err(invalid("minSamples".into(), "must be at least 1"));
        }
        Ok(())
    }
}

/// The threshold judge.
#[derive(Debug, Clone, Default)]
pub struct ThresholdJudge {
    config: ThresholdConfig,
}

const NAME: &str = "threshold";

impl ThresholdJudge {
    pub fn new(config: ThresholdConfig) -> Result<Self, JudgeConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The synchronous core of [`Judge::judge`].
    pub fn evaluate(&self, input: &Comparison) -> Verdict {
        if let Err(e) = input.validate() {
            return Verdict::error(NAME, e.to_string());
        }
        let keys = input.metric_keys();
        let mut results = Vec::new();
        for (i, limit) in self.config.limits.iter().enumerate() {
            let matched: Vec<&MetricKey> = keys
                .iter()
                .filter(|k| matches(&limit.pattern, &k.scenario, &k.phase))
                .collect();
            if matched.is_empty() {
                results.push(no_data(
                    limit.pattern.clone(),
                    format!("limits[{i}] ({}) matches no measured metric", limit.pattern),
                ));
            }
            for key in matched {
                results.push(self.check_limit(input, key, limit));
            }
        }
        for scenario in input.scenario_names() {
            let max = self
                .config
                .error_rates
                .iter()
                .find(|e| matches(&e.pattern, &scenario, "errors"))
                .map(|e| e.max)
                .or(self.config.max_error_rate);
            if let Some(max) = max {
                results.push(check_errors(input, &scenario, max));
            }
        }
        let countable: Vec<&MetricResult> = results
            .iter()
            .filter(|m| m.classification != Classification::NoData)
            .collect();
        let passed = countable
            .iter()
            .filter(|m| m.classification == Classification::Pass)
            .count();
        let score = if countable.is_empty() {
            0.0
        } else {
            round2(100.0 * passed as f64 / countable.len() as f64)
        };
        let any_fail = results.iter().any(|m| m.classification.is_failure());
        let any_nodata = results
            .iter()
            .any(|m| m.classification == Classification::NoData);
        let phase = if any_fail {
            VerdictPhase::Failed
        } else if any_nodata || results.is_empty() {
            VerdictPhase::Inconclusive
        } else {
            VerdictPhase::Successful
        };
        let mut reasons: Vec<String> = results
            .iter()
            .filter(|m| m.classification != Classification::Pass)
            .map(|m| m.reason.clone())
            .collect();
        if results.is_empty() {
            reasons.push("no limits configured and no scenario to check".into());
        }
        reasons.push(format!(
            "{passed} of {} checks within limits",
            countable.len()
        ));
        Verdict {
            judge: NAME.into(),
            summary: Verdict::summarize(NAME, phase, score, &results),
            phase,
            score,
            metrics: results,
            reasons,
            audit: BTreeMap::new(),
        }
    }

    fn check_limit(&self, input: &Comparison, key: &MetricKey, limit: &Limit) -> MetricResult {
        let samples = input.canary.samples(key);
        let metric = key.to_string();
        if samples.len() < self.config.min_samples {
            return no_data(
                metric.clone(),
                format!(
                    "{metric}: canary has {} samples, need {}",
                    samples.len(),
                    self.config.min_samples
                ),
            );
        }
        let d = match Describe::of(samples) {
            Ok(d) => d,
            Err(e) => return no_data(metric.clone(), format!("{metric}: {e}")),
        };
        let mut stats = BTreeMap::new();
        let mut exceeded = Vec::new();
        for (name, limit, observed) in [
            ("median", limit.median, d.median),
            ("p90", limit.p90, d.p90),
            ("p99", limit.p99, d.p99),
        ] {
            if let Some(limit) = limit {
                stats.insert(format!("limit_{name}"), limit);
                stats.insert(name.to_string(), observed);
                if observed > limit {
                    exceeded.push(format!("{name} {observed:.2} ms > {limit:.2} ms"));
                }
            }
        }
        let (classification, reason) = if exceeded.is_empty() {
            (Classification::Pass, format!("{metric}: within limits"))
        } else {
            (
                Classification::Fail,
                format!("{metric}: {}", exceeded.join(", ")),
            )
        };
        MetricResult {
            metric,
            classification,
            critical: false,
            weight: 1.0,
            stable: Describe::of(input.stable.samples(key)).ok(),
            canary: Some(d),
            stats,
            reason,
        }
    }
}

fn no_data(metric: String, reason: String) -> MetricResult {
    MetricResult {
        metric,
        classification: Classification::NoData,
        critical: false,
        weight: 1.0,
        stable: None,
        canary: None,
        stats: BTreeMap::new(),
        reason,
    }
}

fn check_errors(input: &Comparison, scenario: &str, max: f64) -> MetricResult {
    let metric = format!("{scenario}.errors");
    let Some(c) = input.canary.scenarios.get(scenario) else {
        return no_data(metric.clone(), format!("{metric}: canary did not run it"));
    };
    let Some(rate) = c.error_rate() else {
        return no_data(metric.clone(), format!("{metric}: canary did not run it"));
    };
    let mut stats = BTreeMap::new();
    stats.insert("error_rate".into(), rate);
    stats.insert("limit_error_rate".into(), max);
    let counts = format!("{}/{}", c.failed(), c.completed() + c.failed());
    let (classification, reason) = if rate > max {
        (
            Classification::Fail,
            format!("{metric}: canary error rate {rate:.3} ({counts}) > {max:.3}"),
        )
    } else {
        (
            Classification::Pass,
            format!("{metric}: canary error rate {rate:.3} ({counts}) within {max:.3}"),
        )
    };
    MetricResult {
        metric,
        classification,
        critical: false,
        weight: 1.0,
        stable: None,
        canary: None,
        stats,
        reason,
    }
}

#[async_trait]
impl Judge for ThresholdJudge {
    fn name(&self) -> &str {
        NAME
    }

    async fn judge(&self, input: &Comparison) -> Verdict {
        let verdict = self.evaluate(input);
        tracing::info!(judge = NAME, phase = %verdict.phase, score = verdict.score, "verdict");
        verdict
    }
}
