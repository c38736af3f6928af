//! Go's `time.ParseDuration` syntax, because the reference's configuration (and every manifest written
//! for it) uses it: `300ms`, `1.5h`, `2h45m`, `10m`. A bare `0` is accepted; anything else needs a unit.

use std::time::Duration;

/// Parses a Go duration string. Negative durations are rejected here: no setting of ours means anything
/// with them, and the reference's silent acceptance of `-5s` is one of its bugs.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?}"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {input:?}"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {input:?}"));
        }
        let (num, after) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid number {num:?} in duration {input:?}"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "unknown unit {unit:?} in duration {input:?} (use ns, us, ms, s, m, h)"
                ));
            }
        };
        total_ns += value * scale;
        rest = next;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(format!("duration {input:?} out of range"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Formats a duration the way Go prints one, for messages that echo configuration back.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}ns", d.as_nanos());
    }
    if ms.is_multiple_of(3_600_000) {
        return format!("{}h", ms / 3_600_000);
    }
    if ms.is_multiple_of(60_000) {
        return format!("{}m", ms / 60_000);
    }
    if ms.is_multiple_of(1000) {
        return format!("{}s", ms / 1000);
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_examples() {
        assert_eq!(parse("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse("2h45m").unwrap(),
            Duration::from_secs(2 * 3600 + 45 * 60)
        );
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse("7ns").unwrap(), Duration::from_nanos(7));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "10", "-5s", "5x", "s", "1..2s", "ms5", "1h-2m"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_values() {
        assert_eq!(format(Duration::from_secs(600)), "10m");
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
    }
}
