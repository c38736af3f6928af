//! Hodges-Lehmann estimate of the shift canary − stable, with a distribution-free confidence
//! interval (Moses/Lehmann): both are order statistics of the m·n pairwise differences.
//!
//! The differences are never materialised (10,000 samples per side would be 10^8 of them): the
//! k-th smallest is found by bisecting over the ordered bit patterns of f64 and counting, in
//! O(m + n), how many differences lie at or below the probe. 64 probes pin down the exact value.

use serde::{Deserialize, Serialize};

use super::mann_whitney::{EXACT_LIMIT, ExactDistribution, sigma};
use super::ranks::pooled_ranks;
use super::{StatsError, normal_quantile, sorted};

/// The shift estimate and its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    /// Median of all differences canary − stable.
    pub estimate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The confidence level asked for.
    pub confidence: f64,
}

/// Estimates the shift `y − x` (canary − stable) and its `confidence` interval.
pub fn shift(x: &[f64], y: &[f64], confidence: f64) -> Result<Shift, StatsError> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(StatsError::BadConfidence(confidence));
    }
    let xs = sorted(x)?;
    let ys = sorted(y)?;
    if xs.is_empty() || ys.is_empty() {
        return Err(StatsError::Empty);
    }
    let (m, n) = (xs.len(), ys.len());
    let pairs = (m as u64) * (n as u64);
    let estimate = if pairs % 2 == 1 {
        kth_difference(&xs, &ys, pairs.div_ceil(2))
    } else {
        let a = kth_difference(&xs, &ys, pairs / 2);
        let b = kth_difference(&xs, &ys, pairs / 2 + 1);
        a / 2.0 + b / 2.0
    };
    let alpha = 1.0 - confidence;
    let k = lower_rank(&xs, &ys, alpha);
    let ci_low = kth_difference(&xs, &ys, k);
    let ci_high = kth_difference(&xs, &ys, pairs - k + 1);
    Ok(Shift {
        estimate: estimate + 0.0,
        ci_low: ci_low + 0.0,
        ci_high: ci_high + 0.0,
        confidence,
    })
}

/// Rank (1-based) of the difference that is the lower confidence bound.
fn lower_rank(xs: &[f64], ys: &[f64], alpha: f64) -> u64 {
    let (m, n) = (xs.len(), ys.len());
    let pairs = (m as u64) * (n as u64);
    let ranks = pooled_ranks(xs, ys);
    let k = if !ranks.has_ties && m < EXACT_LIMIT && n < EXACT_LIMIT {
        // R's wilcox.test: qu = qwilcox(alpha/2); 0 becomes 1.
        ExactDistribution::new(m, n).quantile(alpha / 2.0) as u64
    } else {
        // smallest u with Φ((u + 0.5 − mn/2) / σ) >= α/2
        let sd = sigma(m, n, ranks.tie_term);
        let z = normal_quantile(1.0 - alpha / 2.0);
        let u = (pairs as f64 / 2.0 - 0.5 - z * sd).ceil();
        if u.is_finite() && u > 0.0 {
            u as u64
        } else {
            0
        }
    };
    k.clamp(1, pairs.div_ceil(2))
}

/// Maps an f64 to a u64 whose unsigned order is the numeric order.
fn key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

fn from_key(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// How many differences ys[j] − xs[i] are <= d (both sorted ascending).
fn count_at_most(xs: &[f64], ys: &[f64], d: f64) -> u64 {
    let m = xs.len();
    let mut p = 0usize;
    let mut count = 0u64;
    for &y in ys {
        // for fixed y, y − x falls as x rises: the qualifying x form a suffix, which only
        // shrinks as y grows.
        while p < m && y - xs[p] > d {
            p += 1;
        }
        count += (m - p) as u64;
    }
    count
}

/// The k-th smallest (1-based) difference ys[j] − xs[i].
fn kth_difference(xs: &[f64], ys: &[f64], k: u64) -> f64 {
    let lo_v = ys[0] - xs[xs.len() - 1];
    let hi_v = ys[ys.len() - 1] - xs[0];
    let (mut lo, mut hi) = (key(lo_v), key(hi_v));
    // invariant: count(from_key(hi)) >= k
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if count_at_most(xs, ys, from_key(mid)) >= k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    from_key(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_differences(x: &[f64], y: &[f64]) -> Vec<f64> {
        let mut d: Vec<f64> = y
            .iter()
            .flat_map(|b| x.iter().map(move |a| b - a))
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    proptest::proptest! {
        /// The bisection selects exactly the k-th of all differences, ties and negatives included.
        #[test]
        fn kth_difference_is_exact(
            x in proptest::collection::vec(-50i32..50, 1..12),
            y in proptest::collection::vec(-50i32..50, 1..12),
            scale in proptest::sample::select(vec![1.0, 0.1, 1e-3]),
        ) {
            let x: Vec<f64> = x.into_iter().map(|v| f64::from(v) * scale).collect();
            let y: Vec<f64> = y.into_iter().map(|v| f64::from(v) * scale).collect();
            let (mut xs, mut ys) = (x.clone(), y.clone());
            xs.sort_by(f64::total_cmp);
            ys.sort_by(f64::total_cmp);
            let d = all_differences(&x, &y);
            for k in 1..=d.len() as u64 {
                proptest::prop_assert_eq!(kth_difference(&xs, &ys, k), d[k as usize - 1]);
            }
        }
    }

    #[test]
    fn key_roundtrip_and_order() {
        for v in [-3.5, -0.0, 0.0, 1e-300, 2.0, 1e300] {
            assert_eq!(from_key(key(v)).to_bits(), v.to_bits());
        }
        assert!(key(-1.0) < key(-0.5) && key(-0.5) < key(0.0) && key(0.0) < key(0.25));
    }

    #[test]
    fn kth_difference_matches_brute_force() {
        let x = vec![0.3, 1.0, 1.0, 2.5, 7.0];
        let y = vec![-1.0, 0.5, 1.0, 4.0];
        let mut xs = x.clone();
        xs.sort_by(f64::total_cmp);
        let mut ys = y.clone();
        ys.sort_by(f64::total_cmp);
        let d = all_differences(&x, &y);
        for k in 1..=d.len() as u64 {
            assert_eq!(kth_difference(&xs, &ys, k), d[k as usize - 1], "k={k}");
        }
    }

    /// Hand-computed: x = 1,2,3 ; y = 4,5,6 -> differences 1,2,2,3,3,3,4,4,5; median 3.
    /// Exact m = n = 3 distribution (counts 1,1,2,3,3,3,3,2,1,1 over 20): qwilcox(0.05) = 1
    /// (P(U <= 0) = 0.05), so at 90 % the interval is [d(1), d(9)] = [1, 5].
    #[test]
    fn hand_computed_shift_and_interval() {
        let s = shift(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], 0.90).unwrap();
        assert_eq!(s.estimate, 3.0);
        assert_eq!((s.ci_low, s.ci_high), (1.0, 5.0));
    }

    /// R's wilcox.test help page example (Hollander & Wolfe permeability data): the
    /// Hodges-Lehmann "difference in location" of x − y is the median of the 50 differences.
    #[test]
    fn hollander_wolfe_estimate_is_median_of_differences() {
        let x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
        let y = [1.15, 0.88, 0.90, 0.74, 1.21];
        let s = shift(&y, &x, 0.95).unwrap();
        let d = all_differences(&y, &x);
        assert_eq!(d.len(), 50);
        assert_eq!(s.estimate, d[24] / 2.0 + d[25] / 2.0);
        // exact 95 % interval for m = 5, n = 10: the rank is the smallest u with
        // P(U <= u) >= 0.025, which is 9, so the interval is [d(9), d(42)].
        let dist = ExactDistribution::new(5, 10);
        assert_eq!(dist.quantile(0.025), 9);
        assert!(dist.cdf(8) < 0.025 && dist.cdf(9) >= 0.025);
        assert_eq!((s.ci_low, s.ci_high), (d[8], d[41]));
    }

    #[test]
    fn constant_samples_give_an_exact_shift() {
        let s = shift(&[10.0; 30], &[12.0; 30], 0.98).unwrap();
        assert_eq!((s.estimate, s.ci_low, s.ci_high), (2.0, 2.0, 2.0));
        let s = shift(&[10.0; 30], &[10.0; 30], 0.98).unwrap();
        assert_eq!((s.estimate, s.ci_low, s.ci_high), (0.0, 0.0, 0.0));
    }

    #[test]
    fn bad_confidence_and_empty_are_errors() {
        assert_eq!(
            shift(&[1.0], &[1.0], 1.0),
            Err(StatsError::BadConfidence(1.0))
        );
        assert_eq!(shift(&[], &[1.0], 0.9), Err(StatsError::Empty));
    }

    #[test]
    fn large_samples_are_fast_and_consistent() {
        let x: Vec<f64> = (0..10_000).map(|i| (i % 97) as f64).collect();
        let y: Vec<f64> = (0..10_000).map(|i| (i % 97) as f64 + 5.0).collect();
        let s = shift(&x, &y, 0.98).unwrap();
        assert_eq!(s.estimate, 5.0);
        assert!(s.ci_low <= 5.0 && s.ci_high >= 5.0);
    }
}
