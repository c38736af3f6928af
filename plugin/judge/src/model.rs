//! The judges' own input model: samples per target, scenario and phase.
//!
//! It is deliberately plain serde data with no dependency on the bench crate, so the bench output
//! (or a JSON file) can be mapped onto it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Stable and canary samples for one analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// The current version, measured in the same window as the canary.
    pub stable: TargetSamples,
    /// The new version under test.
    pub canary: TargetSamples,
}

/// All samples taken against one target (one proxy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSamples {
    /// Scenario name (`cold`, `warm`, `restore`, `mcp`, ...) to its samples.
    #[serde(default)]
    pub scenarios: BTreeMap<String, ScenarioSamples>,
}

/// Samples of one scenario on one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSamples {
    /// Phase name (`connect_ms`, `newPage_ms`, `goto_ms`, `total_ms`, ...) to the values of the
    /// iterations that completed, in milliseconds.
    #[serde(default)]
    pub phases: BTreeMap<String, Vec<f64>>,
    /// Iterations that failed, with why. They count towards the error rate.
    #[serde(default)]
    pub failures: Vec<FailedSample>,
    /// Iterations that completed. When absent, the longest phase list counts them; set it when
    /// phase values of failed iterations are also listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<usize>,
}

/// One failed iteration. The reason is measured data and therefore untrusted text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedSample {
    /// The phase that failed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// What went wrong (an error message from the proxy, Chromium or the network).
    pub reason: String,
}

/// Names one metric: a phase of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetricKey {
    pub scenario: String,
    pub phase: String,
}

impl MetricKey {
    pub fn new(scenario: impl Into<String>, phase: impl Into<String>) -> Self {
        Self {
            scenario: scenario.into(),
            phase: phase.into(),
        }
    }
}

impl fmt::Display for MetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.scenario, self.phase)
    }
}

/// Why an input cannot be judged at all (it becomes an `Error` verdict).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("{target}: scenario name must not be empty")]
    EmptyScenarioName { target: &'static str },
    #[error("{target}.{scenario}: phase name must not be empty")]
    EmptyPhaseName {
        target: &'static str,
        scenario: String,
    },
    #[error(
        "{target}.{scenario}.{phase}[{index}]: value {value} is not a finite non-negative number"
    )]
    BadValue {
        target: &'static str,
        scenario: String,
        phase: String,
        index: usize,
        value: f64,
    },
    #[error("no samples at all: both stable and canary are empty")]
    Empty,
}

impl ScenarioSamples {
    /// Iterations that completed: `completed` when given, else the longest phase list (a
    /// completed iteration records every phase, so the longest list counts them).
    pub fn completed(&self) -> usize {
        self.completed
            .unwrap_or_else(|| self.phases.values().map(Vec::len).max().unwrap_or(0))
    }

    /// Failed iterations.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// Share of failed iterations, `None` when nothing ran.
    pub fn error_rate(&self) -> Option<f64> {
        let total = self.completed() + self.failed();
        (total > 0).then(|| self.failed() as f64 / total as f64)
    }
}

impl TargetSamples {
    /// The samples of one metric, empty when the scenario or phase is absent.
    pub fn samples(&self, key: &MetricKey) -> &[f64] {
        self.scenarios
            .get(&key.scenario)
            .and_then(|s| s.phases.get(&key.phase))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn validate(&self, target: &'static str) -> Result<(), InputError> {
        for (scenario, samples) in &self.scenarios {
            if scenario.trim().is_empty() {
                return Err(InputError::EmptyScenarioName { target });
            }
            for (phase, values) in &samples.phases {
                if phase.trim().is_empty() {
                    return Err(InputError::EmptyPhaseName {
                        target,
                        scenario: scenario.clone(),
                    });
                }
                if let Some((index, &value)) = values
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !v.is_finite() || **v < 0.0)
                {
                    return Err(InputError::BadValue {
                        target,
                        scenario: scenario.clone(),
                        phase: phase.clone(),
                        index,
                        value,
                    });
                }
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.scenarios
            .values()
            .all(|s| s.completed() == 0 && s.failed() == 0)
    }
}

impl Comparison {
    /// Checks that every value is a finite, non-negative duration and names are present.
    pub fn validate(&self) -> Result<(), InputError> {
        self.stable.validate("stable")?;
        self.canary.validate("canary")?;
        if self.stable.is_empty() && self.canary.is_empty() {
            return Err(InputError::Empty);
        }
        Ok(())
    }

    /// Every metric present on either side, sorted.
    pub fn metric_keys(&self) -> Vec<MetricKey> {
        let mut keys: Vec<MetricKey> = [&self.stable, &self.canary]
            .iter()
            .flat_map(|t| {
                t.scenarios.iter().flat_map(|(scenario, s)| {
                    s.phases
                        .keys()
                        .map(move |phase| MetricKey::new(scenario.clone(), phase.clone()))
                })
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every scenario present on either side, sorted.
    pub fn scenario_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stable
            .scenarios
            .keys()
            .chain(self.canary.scenarios.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The same data with stable and canary exchanged (used by symmetry tests and A/A checks).
    pub fn swapped(&self) -> Self {
        Self {
            stable: self.canary.clone(),
            canary: self.stable.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(values: &[f64]) -> TargetSamples {
        let mut s = ScenarioSamples::default();
        s.phases.insert("total_ms".into(), values.to_vec());
        TargetSamples {
            scenarios: [("warm".to_string(), s)].into(),
        }
    }

    #[test]
    fn rejects_nan_and_negative_values_naming_the_field() {
        let c = Comparison {
            stable: one(&[1.0, f64::NAN]),
            canary: one(&[1.0]),
        };
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("stable.warm.total_ms[1]"), "{err}");
        let c = Comparison {
            stable: one(&[1.0]),
            canary: one(&[-2.0]),
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("canary.warm.total_ms[0]")
        );
    }

    #[test]
    fn empty_input_is_an_error() {
        assert_eq!(Comparison::default().validate(), Err(InputError::Empty));
    }

    #[test]
    fn error_rate_counts_failures_against_completed_iterations() {
        let mut s = ScenarioSamples::default();
        s.phases.insert("a".into(), vec![1.0, 2.0, 3.0]);
        s.failures.push(FailedSample {
            phase: None,
            reason: "boom".into(),
        });
        assert_eq!(s.error_rate(), Some(0.25));
        s.completed = Some(1);
        assert_eq!(s.error_rate(), Some(0.5));
        assert_eq!(ScenarioSamples::default().error_rate(), None);
    }

    #[test]
    fn unknown_fields_are_rejected_by_serde() {
        let err = serde_json::from_str::<Comparison>(r#"{"stable":{},"canary":{},"x":1}"#);
        assert!(err.is_err());
    }
}
