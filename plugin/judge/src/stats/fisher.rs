//! Fisher's exact test on failure counts: a count test for error rates, which location tests
//! such as Mann-Whitney cannot see.

use statrs::distribution::{DiscreteCDF, Hypergeometric};

/// One-sided p-value that the canary fails more often than stable: P(X >= canary_failed) for X
/// hypergeometric with the pooled failures spread over both sides. `None` when nothing ran on
/// either side.
pub fn p_canary_worse(
    stable_failed: u64,
    stable_total: u64,
    canary_failed: u64,
    canary_total: u64,
) -> Option<f64> {
    if stable_total == 0 || canary_total == 0 {
        return None;
    }
    let population = stable_total + canary_total;
    let successes = stable_failed + canary_failed;
    if successes == 0 {
        return Some(1.0);
    }
    let dist = Hypergeometric::new(population, successes, canary_total).ok()?;
    if canary_failed == 0 {
        return Some(1.0);
    }
    Some((1.0 - dist.cdf(canary_failed - 1)).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_fisher() {
        // 0/10 vs 3/10: P(X >= 3) with N = 20, K = 3, n = 10 = C(10,3)/C(20,3) = 120/1140.
        let p = p_canary_worse(0, 10, 3, 10).unwrap();
        assert!((p - 120.0 / 1140.0).abs() < 1e-12, "{p}");
        assert_eq!(p_canary_worse(0, 10, 0, 10), Some(1.0));
        assert_eq!(p_canary_worse(0, 0, 0, 10), None);
    }
}
