//! Choosing and building a judge from configuration (the plugin's JSON).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::judge::Judge;
use crate::llm::{LlmConfig, LlmJudge};
use crate::statistical::{StatisticalConfig, StatisticalJudge};
use crate::threshold::{ThresholdConfig, ThresholdJudge};

/// Why a configuration cannot be used; `field` is the JSON path of the offending key so the
/// plugin can name it in an `Error` measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JudgeConfigError {
    #[error("{field}: {why}")]
    Invalid { field: String, why: String },
}

/// One judge and its settings, tagged by `type` (plugin/judge/README.md).
// Parsed once per measurement; the LLM variant is larger because of its secret references.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
#[schemars(rename = "judge")]
pub enum JudgeConfig {
    Threshold(ThresholdConfig),
    Statistical(StatisticalConfig),
    Llm(LlmConfig),
}

impl JudgeConfig {
    /// Checks the settings and builds the judge.
    pub fn build(&self) -> Result<Box<dyn Judge>, JudgeConfigError> {
        Ok(match self {
            JudgeConfig::Threshold(c) => Box::new(ThresholdJudge::new(c.clone())?),
            JudgeConfig::Statistical(c) => Box::new(StatisticalJudge::new(c.clone())?),
            JudgeConfig::Llm(c) => Box::new(LlmJudge::new(c.clone())?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_each_judge_from_json() {
        for (json, name) in [
            (r#"{"type":"threshold","maxErrorRate":0.01}"#, "threshold"),
            (r#"{"type":"statistical","passScore":90}"#, "statistical"),
            (
                r#"{"type":"llm","provider":{"type":"a2a","url":"http://127.0.0.1:1/"}}"#,
                "llm",
            ),
        ] {
            let c: JudgeConfig = serde_json::from_str(json).unwrap();
            assert_eq!(c.build().unwrap().name(), name);
        }
    }

    #[test]
    fn unknown_type_or_key_is_rejected_and_bad_values_name_the_field() {
        assert!(serde_json::from_str::<JudgeConfig>(r#"{"type":"magic"}"#).is_err());
        assert!(
            serde_json::from_str::<JudgeConfig>(r#"{"type":"statistical","pasScore":1}"#).is_err()
        );
        let c: JudgeConfig =
            serde_json::from_str(r#"{"type":"statistical","tolerance":-1}"#).unwrap();
        let err = c.build().err().unwrap().to_string();
        assert!(err.starts_with("tolerance:"), "{err}");
    }
}
