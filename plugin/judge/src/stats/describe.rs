//! Descriptive statistics of one sample, reported next to every verdict.

use serde::{Deserialize, Serialize};

use super::{StatsError, sorted};

/// Summary of one sample. Percentiles interpolate linearly between order statistics (the
/// "type 7" definition used by R and numpy), so they are defined for any n >= 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    pub stddev: f64,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Percentile `q` in [0, 1] of an ascending, non-empty sample.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

impl Describe {
    /// Quantile `q` of an unsorted, non-empty sample of finite values.
    pub fn quantile(sample: &[f64], q: f64) -> f64 {
        let mut s = sample.to_vec();
        s.sort_by(f64::total_cmp);
        percentile_sorted(&s, q)
    }

    /// Describes a sample; an empty one is an error.
    pub fn of(sample: &[f64]) -> Result<Self, StatsError> {
        let s = sorted(sample)?;
        Self::of_sorted(&s)
    }

    /// Describes an ascending sample.
    pub fn of_sorted(s: &[f64]) -> Result<Self, StatsError> {
        if s.is_empty() {
            return Err(StatsError::Empty);
        }
        let n = s.len();
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Ok(Self {
            n,
            mean,
            stddev: var.sqrt(),
            min: s[0],
            median: percentile_sorted(s, 0.5),
            p90: percentile_sorted(s, 0.90),
            p95: percentile_sorted(s, 0.95),
            p99: percentile_sorted(s, 0.99),
            max: s[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_percentiles() {
        // 1..=10: h = 9q; p90 -> h = 8.1 -> 9 + 0.1 * 1 = 9.1; median -> h = 4.5 -> 5.5.
        let d = Describe::of(&[10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]).unwrap();
        assert_eq!(d.n, 10);
        assert!((d.median - 5.5).abs() < 1e-12);
        assert!((d.p90 - 9.1).abs() < 1e-12);
        assert!((d.p99 - 9.91).abs() < 1e-12);
        assert!((d.mean - 5.5).abs() < 1e-12);
        // sample variance of 1..10 is 55/6
        assert!((d.stddev - (55.0f64 / 6.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn single_value_and_empty() {
        let d = Describe::of(&[3.0]).unwrap();
        assert_eq!((d.median, d.p99, d.stddev), (3.0, 3.0, 0.0));
        assert_eq!(Describe::of(&[]), Err(StatsError::Empty));
        assert!(matches!(
            Describe::of(&[f64::NAN]),
            Err(StatsError::NotFinite(_))
        ));
    }
}
