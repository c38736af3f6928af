//! The metric's plugin configuration: the JSON under `provider.plugin["sandcanary/sandcanary"]`
//! (or whatever single key the plugin was registered under).

use serde::Deserialize;

/// Errors reading the configuration; shown to users in the measurement message.
#[derive(Debug, thiserror::Error)]
pub enum PluginConfigError {
    #[error("metric has no plugin configuration (expected exactly one key under provider.plugin)")]
    Missing,
    #[error("invalid sandcanary plugin configuration: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("invalid sandcanary plugin configuration: {0}")]
    Value(String),
}

/// What one measurement should do.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginConfig {
    /// How long the controller should wait between `Resume` calls while a job runs.
    pub poll_seconds: u64,
    /// Settings for the placeholder job (`SANDCANARY_JOB=placeholder`, protocol tests only).
    pub placeholder: PlaceholderConfig,
    /// Everything else: the canary analysis's own configuration, which the bench job parses as
    /// `sandcanary_canary::CanaryConfig`.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            poll_seconds: 10,
            placeholder: PlaceholderConfig::default(),
            rest: serde_json::Map::new(),
        }
    }
}

/// The placeholder job's knobs: how long it takes and what it reports.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PlaceholderConfig {
    pub duration_ms: u64,
    /// `Successful`, `Failed` or `Inconclusive`.
    pub phase: String,
    /// Reported as the measurement value (0-100).
    pub score: f64,
}

impl Default for PlaceholderConfig {
    fn default() -> Self {
        PlaceholderConfig {
            duration_ms: 1000,
            phase: "Successful".into(),
            score: 100.0,
        }
    }
}

impl PluginConfig {
    pub fn parse(raw: &[u8]) -> Result<Self, PluginConfigError> {
        let c: PluginConfig = serde_json::from_slice(raw)?;
        if c.poll_seconds == 0 || c.poll_seconds > 3600 {
            return Err(PluginConfigError::Value(format!(
                "pollSeconds must be between 1 and 3600, got {}",
                c.poll_seconds
            )));
        }
        if !matches!(
            c.placeholder.phase.as_str(),
            "Successful" | "Failed" | "Inconclusive"
        ) {
            return Err(PluginConfigError::Value(format!(
                "placeholder.phase must be Successful, Failed or Inconclusive, got {:?}",
                c.placeholder.phase
            )));
        }
        if !(0.0..=100.0).contains(&c.placeholder.score) {
            return Err(PluginConfigError::Value(
                "placeholder.score must be 0-100".into(),
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_unknown_keys_are_kept_for_the_job() {
        let c = PluginConfig::parse(br#"{"bench":{"scenarios":["cold"]}}"#).unwrap();
        assert_eq!(c.poll_seconds, 10);
        assert_eq!(c.placeholder, PlaceholderConfig::default());
        assert!(c.rest.contains_key("bench"));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for (raw, want) in [
            (&b"not json"[..], "invalid sandcanary plugin configuration"),
            (br#"{"pollSeconds":0}"#, "pollSeconds"),
            (br#"{"pollSeconds":"x"}"#, "invalid type"),
            (
                br#"{"placeholder":{"phase":"Running"}}"#,
                "placeholder.phase",
            ),
            (
                br#"{"placeholder":{"durationMs":1,"typo":1}}"#,
                "unknown field",
            ),
            (br#"{"placeholder":{"score":101}}"#, "score"),
        ] {
            let e = PluginConfig::parse(raw).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }
}
