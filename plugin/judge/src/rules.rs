//! Matching metric names against configured patterns (`warm.total_ms`, `warm.*`, `*.goto_ms`).

/// Whether `pattern` (`scenario.phase`, either part may be `*`) names `metric`.
///
/// Scenario names cannot contain a dot in a pattern, so the first dot splits it; a pattern
/// without a dot names a whole scenario.
pub fn matches(pattern: &str, scenario: &str, phase: &str) -> bool {
    let (ps, pp) = pattern.split_once('.').unwrap_or((pattern, "*"));
    (ps == "*" || ps == scenario) && (pp == "*" || pp == phase)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("warm.total_ms", "warm", "total_ms"));
        assert!(matches("warm.*", "warm", "goto_ms"));
        assert!(matches("*.goto_ms", "cold", "goto_ms"));
        assert!(matches("cold", "cold", "errors"));
        assert!(!matches("warm.total_ms", "cold", "total_ms"));
        assert!(!matches("*.goto_ms", "cold", "total_ms"));
    }
}
