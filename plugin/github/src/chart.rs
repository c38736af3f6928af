//! A Mermaid `xychart-beta` of canary against stable medians, which GitHub renders inline.

use std::fmt::Write as _;

use crate::escape;
use crate::verdict::ComparisonRow;

/// More bars than this stop being readable; the table still has every row.
const MAX_BARS: usize = 24;
/// Longest axis label.
const MAX_LABEL_CHARS: usize = 28;

/// The chart as a fenced block, or `None` when no row has plottable numbers.
///
/// xychart has no legend, so the series are told apart by kind: bars for the canary, a line for
/// the stable baseline, as the title says.
pub fn median_chart(rows: &[ComparisonRow]) -> Option<String> {
    let plotted: Vec<&ComparisonRow> = rows
        .iter()
        .filter(|r| plottable(r.stable.median_ms) && plottable(r.canary.median_ms))
        .take(MAX_BARS)
        .collect();
    if plotted.is_empty() {
        return None;
    }
    let labels: Vec<String> = plotted
        .iter()
        .map(|r| {
            let label = format!("{}/{}", r.scenario.trim(), r.phase.trim());
            format!("\"{}\"", escape::chart_label(&label, MAX_LABEL_CHARS))
        })
        .collect();
    let canary: Vec<String> = plotted.iter().map(|r| number(r.canary.median_ms)).collect();
    let stable: Vec<String> = plotted.iter().map(|r| number(r.stable.median_ms)).collect();
    let top = plotted
        .iter()
        .flat_map(|r| [r.stable.median_ms, r.canary.median_ms])
        .fold(0.0_f64, f64::max);
    let top = (top * 1.1).ceil().max(1.0);

    let mut out = String::new();
    out.push_str("```mermaid\nxychart-beta\n");
    out.push_str("    title \"Median latency in ms: bars = canary, line = stable\"\n");
    let _ = writeln!(out, "    x-axis [{}]", labels.join(", "));
    let _ = writeln!(out, "    y-axis \"ms\" 0 --> {top}");
    let _ = writeln!(out, "    bar [{}]", canary.join(", "));
    let _ = writeln!(out, "    line [{}]", stable.join(", "));
    out.push_str("```\n");
    Some(out)
}

fn plottable(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

fn number(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::PhaseStats;

    fn row(scenario: &str, stable: f64, canary: f64) -> ComparisonRow {
        ComparisonRow {
            scenario: scenario.into(),
            phase: "total".into(),
            stable: PhaseStats {
                median_ms: stable,
                p90_ms: stable,
            },
            canary: PhaseStats {
                median_ms: canary,
                p90_ms: canary,
            },
        }
    }

    #[test]
    fn chart_has_one_label_and_value_per_row() {
        let chart = median_chart(&[row("cold", 800.0, 1200.5), row("warm", 20.0, 45.0)]).unwrap();
        assert!(chart.starts_with("```mermaid\nxychart-beta\n"));
        assert!(
            chart.contains("x-axis [\"cold/total\", \"warm/total\"]"),
            "{chart}"
        );
        assert!(chart.contains("bar [1200.5, 45.0]"), "{chart}");
        assert!(chart.contains("line [800.0, 20.0]"), "{chart}");
        assert!(chart.contains("y-axis \"ms\" 0 --> 1321"), "{chart}");
        assert!(chart.ends_with("```\n"));
        assert_eq!(chart.matches("```").count(), 2);
    }

    #[test]
    fn unplottable_rows_are_left_out() {
        assert!(median_chart(&[]).is_none());
        assert!(median_chart(&[row("x", f64::NAN, 1.0)]).is_none());
        let chart = median_chart(&[row("x", f64::NAN, 1.0), row("y", 1.0, 2.0)]).unwrap();
        assert!(chart.contains("[\"y/total\"]"));
    }

    #[test]
    fn hostile_names_stay_inside_their_quotes() {
        let chart = median_chart(&[row("a\"]\n```\n@x", 1.0, 2.0)]).unwrap();
        assert_eq!(chart.matches("```").count(), 2);
        assert_eq!(chart.matches('"').count(), 6, "{chart}");
        assert!(!chart.contains('@'));
    }

    #[test]
    fn bars_are_capped() {
        let rows: Vec<_> = (0..100).map(|i| row(&format!("s{i}"), 1.0, 2.0)).collect();
        let chart = median_chart(&rows).unwrap();
        assert_eq!(chart.matches("/total").count(), MAX_BARS);
    }
}
