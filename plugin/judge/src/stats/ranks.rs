//! Midranks of a pooled two-sample set, with the tie information the rank tests need.

/// Ranks of two samples pooled together.
#[derive(Debug, Clone, PartialEq)]
pub struct PooledRanks {
    /// Sum of the midranks of the second sample (`y`).
    pub rank_sum_y: f64,
    /// Σ (t³ − t) over groups of tied values, for the variance correction.
    pub tie_term: f64,
    /// Whether any value occurs more than once in the pooled set.
    pub has_ties: bool,
    /// Number of distinct values in the pooled set.
    pub distinct: usize,
}

/// Ranks `x` and `y` together (ties get the mean of the ranks they span).
pub fn pooled_ranks(x: &[f64], y: &[f64]) -> PooledRanks {
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, false))
        .chain(y.iter().map(|&v| (v, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_y = 0.0;
    let mut tie_term = 0.0;
    let mut distinct = 0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        // -0.0 and 0.0 are the same duration: compare with ==, not total order.
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        // ranks i+1 ..= j, mean (i + 1 + j) / 2
        let midrank = (i + 1 + j) as f64 / 2.0;
        rank_sum_y += midrank * all[i..j].iter().filter(|e| e.1).count() as f64;
        tie_term += t * t * t - t;
        distinct += 1;
        i = j;
    }
    PooledRanks {
        rank_sum_y,
        tie_term,
        has_ties: tie_term > 0.0,
        distinct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midranks_by_hand() {
        // pooled sorted: 1(x) 2(y) 2(x) 3(y): ranks 1, 2.5, 2.5, 4 -> y sum = 2.5 + 4
        let r = pooled_ranks(&[1.0, 2.0], &[2.0, 3.0]);
        assert_eq!(r.rank_sum_y, 6.5);
        assert_eq!(r.tie_term, 6.0); // one pair: 2^3 - 2
        assert!(r.has_ties);
        assert_eq!(r.distinct, 3);
    }
}
