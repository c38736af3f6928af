//! The statistical judge: canary against stable, metric by metric, scored like Kayenta.
//!
//! Each `scenario.phase` is classified Pass / High / Low / NoData / NoDataFail from a
//! Mann-Whitney test and the Hodges-Lehmann shift interval, with Kayenta's tolerance band,
//! effect-size and direction rules. Each scenario also gets an `errors` metric that compares
//! failure counts (Fisher's exact test plus an absolute tolerance), because a location test
//! cannot see failures. Score = weighted share of countable metrics that passed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::judge::Judge;
use crate::model::{Comparison, MetricKey};
use crate::rules::matches;
use crate::stats::describe::{Describe, percentile_sorted};
use crate::stats::effect_size::{EffectSizeMeasure, cles, mean_ratio};
use crate::stats::fisher::p_canary_worse;
use crate::stats::hodges_lehmann::shift;
use crate::stats::mann_whitney::mann_whitney;
use crate::verdict::{Classification, MetricResult, Verdict, VerdictPhase, fmt_p, round2};

/// Which way a change is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Only an increase fails (latency: higher is worse). The default.
    #[default]
    Increase,
    /// Only a decrease fails (throughput).
    Decrease,
    /// Any significant change fails.
    Either,
}

impl Direction {
    fn allows_increase(self) -> bool {
        matches!(self, Direction::Increase | Direction::Either)
    }
    fn allows_decrease(self) -> bool {
        matches!(self, Direction::Decrease | Direction::Either)
    }
}

/// Per-metric settings; in an override every field is optional and falls back to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricRule {
    pub direction: Option<Direction>,
    /// A critical metric that does not pass zeroes the score.
    pub critical: Option<bool>,
    /// Without enough data the metric fails instead of being left out.
    pub must_have_data: Option<bool>,
    /// Left out of the analysis entirely.
    pub muted: Option<bool>,
    pub weight: Option<f64>,
    /// Effect size at or above which a significant increase counts (mean ratio default 1.1,
    /// CLES default 0.5).
    pub allowed_increase: Option<f64>,
    /// Effect size at or below which a significant decrease counts (mean ratio default 1/1.1,
    /// CLES default 0.5).
    pub allowed_decrease: Option<f64>,
    /// Effect size at or above which an increase is treated as a critical failure.
    pub critical_increase: Option<f64>,
    /// Effect size at or below which a decrease is treated as a critical failure.
    pub critical_decrease: Option<f64>,
}

/// A rule for the metrics a pattern names (`warm.total_ms`, `warm.*`, `*.goto_ms`,
/// `cold.errors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricOverride {
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(flatten)]
    pub rule: MetricRule,
}

/// How failure counts are judged per scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ErrorRateRule {
    pub enabled: bool,
    /// The canary's error rate may exceed stable's by this much (absolute, 0-1) before failing.
    pub tolerance: f64,
}

impl Default for ErrorRateRule {
    fn default() -> Self {
        Self {
            enabled: true,
            tolerance: 0.05,
        }
    }
}

/// Settings of the statistical judge. Defaults follow Kayenta's Netflix judge (tolerance 0.25,
/// confidence 0.98) and Spinnaker's starting thresholds (pass 95, marginal 75).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct StatisticalConfig {
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    pub confidence: f64,
    #[schemars(range(min = 0.0))]
    pub tolerance: f64,
    /// Fewer samples than this on either side make the metric NoData.
    #[schemars(range(min = 1))]
    pub min_samples: usize,
    #[schemars(range(min = 0.0, max = 100.0))]
    pub pass_score: f64,
    #[schemars(range(min = 0.0, max = 100.0))]
    pub marginal_score: f64,
    pub effect_size: EffectSizeMeasure,
    /// Rule for every metric without an override.
    pub defaults: MetricRule,
    /// First matching override wins, field by field over `defaults`.
    pub metrics: Vec<MetricOverride>,
    pub error_rate: ErrorRateRule,
    /// Also compare tails: for each metric a `scenario.phase.pNN` metric tests whether more
    /// canary than stable samples exceed the pooled quantile (Fisher's exact test), which a
    /// location test misses when only the spread or the tail grows. Off by default.
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    pub tail_quantile: Option<f64>,
}

impl Default for StatisticalConfig {
    fn default() -> Self {
        Self {
            confidence: 0.98,
            tolerance: 0.25,
            min_samples: 5,
            pass_score: 95.0,
            marginal_score: 75.0,
            effect_size: EffectSizeMeasure::MeanRatio,
            defaults: MetricRule::default(),
            metrics: Vec::new(),
            error_rate: ErrorRateRule::default(),
            tail_quantile: None,
        }
    }
}

pub use crate::config::JudgeConfigError;

fn invalid(field: impl Into<String>, why: impl Into<String>) -> JudgeConfigError {
    JudgeConfigError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// A rule with every field decided.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Resolved {
    direction: Direction,
    critical: bool,
    must_have_data: bool,
    muted: bool,
    weight: f64,
    allowed_increase: f64,
    allowed_decrease: f64,
    critical_increase: Option<f64>,
    critical_decrease: Option<f64>,
}

impl StatisticalConfig {
    /// Checks ranges so a bad template is an `Error` naming the field, not a wrong verdict.
    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(invalid("confidence", "must be between 0 and 1 (exclusive)"));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(invalid("tolerance", "must be a non-negative number"));
        }
        if self.min_samples < 1 {
            return Err(invalid("minSamples", "must be at least 1"));
        }
        for (name, v) in [
            ("passScore", self.pass_score),
            ("marginalScore", self.marginal_score),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(invalid(name, "must be between 0 and 100"));
            }
        }
        if self.marginal_score > self.pass_score {
            return Err(invalid("marginalScore", "must not exceed passScore"));
        }
        if let Some(q) = self.tail_quantile
            && !(0.5..1.0).contains(&q)
        {
            return Err(invalid("tailQuantile", "must be at least 0.5 and below 1"));
        }
        if !(0.0..=1.0).contains(&self.error_rate.tolerance) {
            return Err(invalid("errorRate.tolerance", "must be between 0 and 1"));
        }
        let rules = std::iter::once(("defaults".to_string(), &self.defaults)).chain(
            self.metrics
                .iter()
                .enumerate()
                .map(|(i, o)| (format!("metrics[{i}]"), &o.rule)),
        );
        for (field, rule) in rules {
            if let Some(w) = rule.weight
                && !(w.is_finite() && w >= 0.0)
            {
                return Err(invalid(
                    format!("{field}.weight"),
                    "must be a non-negative number",
                ));
            }
            for (name, v) in [
                ("allowedIncrease", rule.allowed_increase),
                ("allowedDecrease", rule.allowed_decrease),
                ("criticalIncrease", rule.critical_increase),
                ("criticalDecrease", rule.critical_decrease),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    return Err(invalid(
                        format!("{field}.{name}"),
                        "must be a non-negative number",
                    ));
                }
            }
        }
        for (i, o) in self.metrics.iter().enumerate() {
            if o.pattern.trim().is_empty() {
                return Err(invalid(format!("metrics[{i}].match"), "must not be empty"));
            }
        }
        Ok(())
    }

    fn resolve(&self, scenario: &str, phase: &str) -> Resolved {
        let o = self
            .metrics
            .iter()
            .find(|o| matches(&o.pattern, scenario, phase))
            .map(|o| &o.rule);
        let d = &self.defaults;
        let pick = |f: fn(&MetricRule) -> Option<f64>| o.and_then(f).or_else(|| f(d));
        let pick_bool =
            |f: fn(&MetricRule) -> Option<bool>| o.and_then(f).or_else(|| f(d)).unwrap_or(false);
        let (neutral_inc, neutral_dec) = match self.effect_size {
            EffectSizeMeasure::MeanRatio => (1.1, 1.0 / 1.1),
            EffectSizeMeasure::Cles => (0.5, 0.5),
        };
        Resolved {
            direction: o
                .and_then(|r| r.direction)
                .or(d.direction)
                .unwrap_or_default(),
            critical: pick_bool(|r| r.critical),
            must_have_data: pick_bool(|r| r.must_have_data),
            muted: pick_bool(|r| r.muted),
            weight: pick(|r| r.weight).unwrap_or(1.0),
            allowed_increase: pick(|r| r.allowed_increase).unwrap_or(neutral_inc),
            allowed_decrease: pick(|r| r.allowed_decrease).unwrap_or(neutral_dec),
            critical_increase: pick(|r| r.critical_increase),
            critical_decrease: pick(|r| r.critical_decrease),
        }
    }
}

/// The statistical judge.
#[derive(Debug, Clone, Default)]
pub struct StatisticalJudge {
    config: StatisticalConfig,
}

impl StatisticalJudge {
    /// Builds the judge after checking its configuration.
    pub fn new(config: StatisticalConfig) -> Result<Self, JudgeConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    pub fn config(&self) -> &StatisticalConfig {
        &self.config
    }

    /// The synchronous core (the trait method only wraps it); the LLM judge calls it for its
    /// fallback and its prompt.
    pub fn evaluate(&self, input: &Comparison) -> Verdict {
        const NAME: &str = "statistical";
        if let Err(e) = input.validate() {
            return Verdict::error(NAME, e.to_string());
        }
        let mut results = Vec::new();
        // flags the scorer needs but the result type does not carry
        let mut critical_failures: Vec<String> = Vec::new();
        for key in input.metric_keys() {
            let rule = self.config.resolve(&key.scenario, &key.phase);
            if rule.muted {
                continue;
            }
            let (result, critical_hit) = self.classify_metric(input, &key, rule);
            if critical_hit {
                critical_failures.push(result.metric.clone());
            }
            results.push(result);
            if let Some(q) = self.config.tail_quantile {
                let tail_phase = format!("{}.p{}", key.phase, (q * 100.0).round());
                let rule = self.config.resolve(&key.scenario, &tail_phase);
                if !rule.muted {
                    results.push(self.classify_tail(input, &key, &tail_phase, q, rule));
                }
            }
        }
        if self.config.error_rate.enabled {
            for scenario in input.scenario_names() {
                let rule = self.config.resolve(&scenario, "errors");
                if rule.muted {
                    continue;
                }
                results.push(self.classify_errors(input, &scenario, rule));
            }
        }
        self.score(NAME, results, critical_failures)
    }

    fn classify_metric(
        &self,
        input: &Comparison,
        key: &MetricKey,
        rule: Resolved,
    ) -> (MetricResult, bool) {
        let stable = input.stable.samples(key);
        let canary = input.canary.samples(key);
        let mut result = MetricResult {
            metric: key.to_string(),
            classification: Classification::Pass,
            critical: rule.critical,
            weight: rule.weight,
            stable: Describe::of(stable).ok(),
            canary: Describe::of(canary).ok(),
            stats: BTreeMap::new(),
            reason: String::new(),
        };
        let min = self.config.min_samples;
        if stable.len() < min || canary.len() < min {
            result.classification = if rule.must_have_data || rule.critical {
                Classification::NoDataFail
            } else {
                Classification::NoData
            };
            result.reason = format!(
                "{}: too few samples (stable n={}, canary n={}, need {min} each)",
                result.metric,
                stable.len(),
                canary.len()
            );
            return (result, false);
        }
        let mut s_sorted = stable.to_vec();
        s_sorted.sort_by(f64::total_cmp);
        let mut c_sorted = canary.to_vec();
        c_sorted.sort_by(f64::total_cmp);
        if s_sorted == c_sorted {
            result.reason = format!("{}: identical samples", result.metric);
            return (result, false);
        }
        let (mw, hl) = match (
            mann_whitney(stable, canary),
            shift(stable, canary, self.config.confidence),
        ) {
            (Ok(mw), Ok(hl)) => (mw, hl),
            (Err(e), _) | (_, Err(e)) => {
                result.classification = Classification::Error;
                result.reason = format!("{}: cannot compute statistics: {e}", result.metric);
                return (result, false);
            }
        };
        let (sd, cd) = (result.stable.expect("n>=1"), result.canary.expect("n>=1"));
        let effect = match self.config.effect_size {
            EffectSizeMeasure::MeanRatio => mean_ratio(sd.mean, cd.mean),
            EffectSizeMeasure::Cles => cles(mw.u, mw.n_x, mw.n_y),
        };
        let stats = &mut result.stats;
        stats.insert("u".into(), mw.u);
        stats.insert("p_two_sided".into(), mw.p_two_sided);
        stats.insert("shift".into(), hl.estimate);
        stats.insert("ci_low".into(), hl.ci_low);
        stats.insert("ci_high".into(), hl.ci_high);
        if let Some(z) = mw.z {
            stats.insert("z".into(), z);
        }
        if let Some(e) = effect {
            stats.insert("effect_size".into(), e);
        }
        let band = self.config.tolerance * hl.estimate.abs();
        // An effect size that cannot be computed (a zero mean) does not block the decision.
        let high = hl.ci_low > band
            && rule.direction.allows_increase()
            && effect.is_none_or(|e| e >= rule.allowed_increase);
        let low = hl.ci_high < -band
            && rule.direction.allows_decrease()
            && effect.is_none_or(|e| e <= rule.allowed_decrease);
        let effect_text = effect.map_or("n/a".to_string(), |e| format!("{e:.3}"));
        let numbers = format!(
            "median {:.2} -> {:.2} ms, shift {:.2} ms ({:.0}% CI {:.2}..{:.2}), effect {effect_text}, p={}",
            sd.median,
            cd.median,
            hl.estimate,
            self.config.confidence * 100.0,
            hl.ci_low,
            hl.ci_high,
            fmt_p(mw.p_two_sided)
        );
        let mut critical_hit = false;
        if high {
            result.classification = Classification::High;
            critical_hit = matches!((rule.critical_increase, effect), (Some(c), Some(e)) if e >= c);
            result.reason = format!("{}: canary slower: {numbers}", result.metric);
        } else if low {
            result.classification = Classification::Low;
            critical_hit = matches!((rule.critical_decrease, effect), (Some(c), Some(e)) if e <= c);
            result.reason = format!("{}: canary lower: {numbers}", result.metric);
        } else {
            result.reason = format!("{}: no significant change: {numbers}", result.metric);
        }
        if critical_hit {
            result.reason.push_str(" (beyond the critical effect size)");
        }
        (result, critical_hit)
    }

    fn classify_tail(
        &self,
        input: &Comparison,
        key: &MetricKey,
        tail_phase: &str,
        q: f64,
        rule: Resolved,
    ) -> MetricResult {
        let stable = input.stable.samples(key);
        let canary = input.canary.samples(key);
        let metric = format!("{}.{tail_phase}", key.scenario);
        let mut result = MetricResult {
            metric: metric.clone(),
            classification: Classification::Pass,
            critical: rule.critical,
            weight: rule.weight,
            stable: None,
            canary: None,
            stats: BTreeMap::new(),
            reason: String::new(),
        };
        let min = self.config.min_samples;
        if stable.len() < min || canary.len() < min {
            result.classification = if rule.must_have_data || rule.critical {
                Classification::NoDataFail
            } else {
                Classification::NoData
            };
            result.reason = format!("{metric}: too few samples");
            return result;
        }
        let mut pooled: Vec<f64> = stable.iter().chain(canary).copied().collect();
        pooled.sort_by(f64::total_cmp);
        let threshold = percentile_sorted(&pooled, q);
        let (ns, nc) = (stable.len() as u64, canary.len() as u64);
        let s_over = stable.iter().filter(|v| **v > threshold).count() as u64;
        let c_over = canary.iter().filter(|v| **v > threshold).count() as u64;
        let p_worse = p_canary_worse(s_over, ns, c_over, nc).unwrap_or(1.0);
        let p_better = p_canary_worse(c_over, nc, s_over, ns).unwrap_or(1.0);
        let (sq, cq) = (Describe::quantile(stable, q), Describe::quantile(canary, q));
        let effect = mean_ratio(sq, cq);
        let alpha = 1.0 - self.config.confidence;
        let stats = &mut result.stats;
        stats.insert("threshold".into(), threshold);
        stats.insert("stable_over".into(), s_over as f64);
        stats.insert("canary_over".into(), c_over as f64);
        stats.insert("p_fisher".into(), p_worse.min(p_better));
        stats.insert("stable_quantile".into(), sq);
        stats.insert("canary_quantile".into(), cq);
        if let Some(e) = effect {
            stats.insert("effect_size".into(), e);
        }
        let numbers = format!(
            "above pooled p{:.0} {threshold:.2} ms: stable {s_over}/{ns}, canary {c_over}/{nc}; quantile {sq:.2} -> {cq:.2} ms",
            q * 100.0
        );
        if p_worse < alpha
            && rule.direction.allows_increase()
            && effect.is_none_or(|e| e >= rule.allowed_increase)
        {
            result.classification = Classification::High;
            result.reason = format!(
                "{metric}: canary tail heavier (p={}): {numbers}",
                fmt_p(p_worse)
            );
        } else if p_better < alpha
            && rule.direction.allows_decrease()
            && effect.is_none_or(|e| e <= rule.allowed_decrease)
        {
            result.classification = Classification::Low;
            result.reason = format!(
                "{metric}: canary tail lighter (p={}): {numbers}",
                fmt_p(p_better)
            );
        } else {
            result.reason = format!("{metric}: tail unchanged: {numbers}");
        }
        result
    }

    fn classify_errors(&self, input: &Comparison, scenario: &str, rule: Resolved) -> MetricResult {
        let empty = Default::default();
        let s = input.stable.scenarios.get(scenario).unwrap_or(&empty);
        let c = input.canary.scenarios.get(scenario).unwrap_or(&empty);
        let metric = format!("{scenario}.errors");
        let mut result = MetricResult {
            metric: metric.clone(),
            classification: Classification::Pass,
            critical: rule.critical,
            weight: rule.weight,
            stable: None,
            canary: None,
            stats: BTreeMap::new(),
            reason: String::new(),
        };
        let (Some(sr), Some(cr)) = (s.error_rate(), c.error_rate()) else {
            result.classification = if rule.must_have_data || rule.critical {
                Classification::NoDataFail
            } else {
                Classification::NoData
            };
            result.reason = format!("{metric}: no iterations on one side");
            return result;
        };
        let (sf, st) = (s.failed() as u64, (s.completed() + s.failed()) as u64);
        let (cf, ct) = (c.failed() as u64, (c.completed() + c.failed()) as u64);
        let p = p_canary_worse(sf, st, cf, ct).unwrap_or(1.0);
        result.stats.insert("stable_error_rate".into(), sr);
        result.stats.insert("canary_error_rate".into(), cr);
        result.stats.insert("p_fisher".into(), p);
        let alpha = 1.0 - self.config.confidence;
        let over_tolerance = cr > sr + self.config.error_rate.tolerance;
        let significant = cr > sr && p < alpha;
        let numbers = format!(
            "stable {sf}/{st} failed, canary {cf}/{ct} failed, Fisher p={}",
            fmt_p(p)
        );
        if over_tolerance || significant {
            result.classification = Classification::High;
            result.reason = format!("{metric}: canary fails more often: {numbers}");
        } else {
            result.reason = format!("{metric}: error rate within limits: {numbers}");
        }
        result
    }

    fn score(&self, name: &str, results: Vec<MetricResult>, critical: Vec<String>) -> Verdict {
        let counted: Vec<&MetricResult> = results
            .iter()
            .filter(|m| {
                !matches!(
                    m.classification,
                    Classification::NoData | Classification::Error
                )
            })
            .collect();
        let total_w: f64 = counted.iter().map(|m| m.weight).sum();
        let pass_w: f64 = counted
            .iter()
            .filter(|m| m.classification == Classification::Pass)
            .map(|m| m.weight)
            .sum();
        let mut score = if total_w > 0.0 {
            100.0 * pass_w / total_w
        } else {
            100.0
        };
        let mut reasons: Vec<String> = results
            .iter()
            .filter(|m| m.classification.is_failure())
            .map(|m| m.reason.clone())
            .collect();
        let mut critical_failed: Vec<&str> = results
            .iter()
            .filter(|m| m.critical && m.classification != Classification::Pass)
            .map(|m| m.metric.as_str())
            .chain(critical.iter().map(String::as_str))
            .collect();
        critical_failed.sort_unstable();
        critical_failed.dedup();
        let nodata = results
            .iter()
            .filter(|m| m.classification == Classification::NoData)
            .count();
        let mut phase = None;
        if !critical_failed.is_empty() {
            score = 0.0;
            reasons.insert(
                0,
                format!(
                    "critical metric(s) not passing: {}",
                    critical_failed.join(", ")
                ),
            );
            phase = Some(VerdictPhase::Failed);
        } else if results.is_empty() || nodata * 2 >= results.len() {
            // Kayenta scores this 0; we pause for a human instead of aborting, and never pass.
            score = 0.0;
            reasons.insert(
                0,
                format!(
                    "{nodata} of {} metrics have too little data to judge",
                    results.len()
                ),
            );
            phase = Some(VerdictPhase::Inconclusive);
        }
        let score = round2(score);
        let phase = phase.unwrap_or(if score >= self.config.pass_score {
            VerdictPhase::Successful
        } else if score >= self.config.marginal_score {
            VerdictPhase::Inconclusive
        } else {
            VerdictPhase::Failed
        });
        reasons.push(format!(
            "score {score:.2} (pass >= {}, marginal >= {}) over {} metrics, {} without data",
            self.config.pass_score,
            self.config.marginal_score,
            results.len(),
            nodata
        ));
        for m in results
            .iter()
            .filter(|m| m.classification == Classification::NoData)
        {
            reasons.push(m.reason.clone());
        }
        Verdict {
            judge: name.to_string(),
            summary: Verdict::summarize(name, phase, score, &results),
            phase,
            score,
            metrics: results,
            reasons,
            audit: BTreeMap::new(),
        }
    }
}

#[async_trait]
impl Judge for StatisticalJudge {
    fn name(&self) -> &str {
        "statistical"
    }

    async fn judge(&self, input: &Comparison) -> Verdict {
        let verdict = self.evaluate(input);
        tracing::info!(judge = "statistical", phase = %verdict.phase, score = verdict.score, "verdict");
        verdict
    }
}
