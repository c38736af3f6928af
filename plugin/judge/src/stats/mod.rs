//! Statistics the judges rest on, each in its own module with its own tests.

pub mod describe;
pub mod effect_size;
pub mod fisher;
pub mod hodges_lehmann;
pub mod mann_whitney;
pub mod ranks;

/// Why a statistic cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("sample is empty")]
    Empty,
    #[error("confidence must be in (0, 1), got {0}")]
    BadConfidence(f64),
    #[error("value {0} is not finite")]
    NotFinite(f64),
}

/// Sorted copy of a sample, rejecting NaN and infinities.
pub(crate) fn sorted(sample: &[f64]) -> Result<Vec<f64>, StatsError> {
    if let Some(&bad) = sample.iter().find(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite(bad));
    }
    let mut v = sample.to_vec();
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// Standard normal quantile (inverse CDF).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// Standard normal CDF.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().cdf(z)
}
