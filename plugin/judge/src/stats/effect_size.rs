//! Effect sizes: how big a difference is, as opposed to whether it is significant.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which effect size a metric is judged by (Kayenta offers the same two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EffectSizeMeasure {
    /// canary mean ÷ stable mean; 1.0 means no change.
    #[default]
    MeanRatio,
    /// Common-language effect size: P(canary > stable) + ½ P(tie); 0.5 means no change.
    Cles,
}

/// canary mean ÷ stable mean, `None` when either mean is zero (the ratio says nothing then).
pub fn mean_ratio(stable_mean: f64, canary_mean: f64) -> Option<f64> {
    (stable_mean != 0.0 && canary_mean != 0.0).then(|| canary_mean / stable_mean)
}

/// Common-language effect size from the canary's Mann-Whitney U.
pub fn cles(u_canary: f64, n_stable: usize, n_canary: usize) -> Option<f64> {
    let pairs = n_stable as f64 * n_canary as f64;
    (pairs > 0.0).then(|| u_canary / pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_cles() {
        assert_eq!(mean_ratio(10.0, 15.0), Some(1.5));
        assert_eq!(mean_ratio(0.0, 15.0), None);
        assert_eq!(cles(12.0, 4, 6), Some(0.5));
        assert_eq!(cles(0.0, 0, 6), None);
    }
}
