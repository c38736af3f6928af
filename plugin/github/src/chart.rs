//! A Mermaid `xychart-beta` of canary against stable medians, which GitHub renders inline.

use std::fmt::Write as _;

use crate::escape;
use crate::verdict::{ComparisonRow, SampleSteps, Waterfall};

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

/// Most steps drawn per sample.
const MAX_STEPS: usize = 20;

/// The slowest canary sample and its stable counterpart as a Mermaid gantt (two sections on one
/// millisecond axis), then a table of the steps with the canary's change, the largest marked.
/// `None` when either sample has no steps.
pub fn waterfall(w: &Waterfall) -> Option<String> {
    let usable = |s: &SampleSteps| {
        !s.steps.is_empty()
            && s.steps.iter().all(|st| {
                plottable(st.start_ms) && plottable(st.end_ms) && st.end_ms >= st.start_ms
            })
    };
    if !usable(&w.stable) || !usable(&w.canary) {
        return None;
    }
    let mut out = String::new();
    out.push_str("```mermaid\ngantt\n");
    out.push_str("    title Slowest canary sample against its stable counterpart (ms from the start of connect)\n");
    out.push_str("    dateFormat x\n    axisFormat %S.%L s\n");
    for (side, sample) in [("stable", &w.stable), ("canary", &w.canary)] {
        let _ = writeln!(
            out,
            "    section {side} {}",
            gantt_label(&sample.label, MAX_LABEL_CHARS)
        );
        for (i, step) in sample.steps.iter().take(MAX_STEPS).enumerate() {
            // Whole milliseconds: Mermaid's `x` format is an integer timestamp. Zero-length steps
            // are drawn 1 ms wide so they keep their row.
            let start = step.start_ms.round() as u64;
            let end = (step.end_ms.round() as u64).max(start + 1);
            let _ = writeln!(
                out,
                "    {} :{}{i}, {start}, {end}",
                gantt_label(&step.name, 48),
                &side[..1]
            );
        }
    }
    out.push_str("```\n\n");

    // The same steps as numbers; the step that grew the most is the one to look at.
    let durations = |s: &SampleSteps| -> Vec<(String, f64)> {
        s.steps
            .iter()
            .take(MAX_STEPS)
            .map(|st| (st.name.clone(), st.end_ms - st.start_ms))
            .collect()
    };
    let (stable, canary) = (durations(&w.stable), durations(&w.canary));
    let deltas: Vec<Option<f64>> = canary
        .iter()
        .map(|(name, c)| stable.iter().find(|(n, _)| n == name).map(|(_, s)| c - s))
        .collect();
    let largest = deltas
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.map(|d| (i, d)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i);
    let _ = writeln!(
        out,
        "| Step | Stable {} | Canary {} | Change |\n|---|---:|---:|---:|",
        escape::inline(&w.stable.label, MAX_LABEL_CHARS),
        escape::inline(&w.canary.label, MAX_LABEL_CHARS)
    );
    for (i, ((name, c), d)) in canary.iter().zip(&deltas).enumerate() {
        let s = stable
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| number(*s))
            .unwrap_or_else(|| "n/a".into());
        let change = d
            .map(|d| format!("{d:+.1}"))
            .unwrap_or_else(|| "n/a".into());
        let name = escape::inline(name, 64);
        if Some(i) == largest {
            let _ = writeln!(
                out,
                "| **{name}** | {s} | **{}** | **{change}** (largest) |",
                number(*c)
            );
        } else {
            let _ = writeln!(out, "| {name} | {s} | {} | {change} |", number(*c));
        }
    }
    let _ = writeln!(
        out,
        "| total | {} | {} | {:+.1} |\n",
        number(w.stable.total_ms),
        number(w.canary.total_ms),
        w.canary.total_ms - w.stable.total_ms
    );
    Some(out)
}

/// A gantt task or section name: no `:` (the field separator), `#`, `;` or anything that could
/// leave the code block.
fn gantt_label(text: &str, max_chars: usize) -> String {
    let cleaned: String = escape::chart_label(text, max_chars)
        .chars()
        .map(|c| if c == ':' { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "step".into()
    } else {
        trimmed.to_string()
    }
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

    fn steps(label: &str, d: &[f64]) -> SampleSteps {
        let mut at = 0.0;
        SampleSteps {
            label: label.into(),
            total_ms: d.iter().sum(),
            steps: d
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let s = crate::verdict::Step {
                        name: [
                            "connect: to the proxy's 101",
                            "newPage: newContext",
                            "goto: request to first byte",
                        ][i]
                            .into(),
                        start_ms: at,
                        end_ms: at + d,
                    };
                    at += d;
                    s
                })
                .collect(),
        }
    }

    #[test]
    fn waterfall_draws_both_samples_and_marks_the_step_that_grew() {
        let w = Waterfall {
            stable: steps("cold #3", &[100.0, 20.0, 5.0]),
            canary: steps("cold #3", &[110.0, 20.0, 1505.4]),
        };
        let out = waterfall(&w).unwrap();
        assert!(out.starts_with("```mermaid\ngantt\n"), "{out}");
        assert!(out.contains("dateFormat x"));
        assert!(out.contains("    section stable cold _3\n"), "{out}");
        assert!(
            out.contains("    connect  to the proxy_s 101 :s0, 0, 100\n"),
            "{out}"
        );
        assert!(
            out.contains("    goto  request to first byte :c2, 130, 1635\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "| **goto: request to first byte** | 5.0 | **1505.4** | **+1500.4** (largest) |"
            ),
            "{out}"
        );
        assert!(
            out.contains("| total | 125.0 | 1635.4 | +1510.4 |"),
            "{out}"
        );
        assert_eq!(out.matches("```").count(), 2);
    }

    #[test]
    fn a_waterfall_without_steps_or_with_nonsense_is_left_out() {
        let empty = SampleSteps {
            label: "x".into(),
            total_ms: 1.0,
            steps: vec![],
        };
        let w = Waterfall {
            stable: empty.clone(),
            canary: steps("y", &[1.0]),
        };
        assert!(waterfall(&w).is_none());
        let mut bad = steps("y", &[1.0]);
        bad.steps[0].end_ms = f64::NAN;
        assert!(
            waterfall(&Waterfall {
                stable: steps("x", &[1.0]),
                canary: bad
            })
            .is_none()
        );
        // Hostile names cannot leave the block or add tasks.
        let mut hostile = steps("x\n```\n@y: z", &[1.0]);
        hostile.steps[0].name = "a:b\n    evil :e, 0, 9".into();
        let out = waterfall(&Waterfall {
            stable: hostile.clone(),
            canary: hostile,
        })
        .unwrap();
        assert_eq!(out.matches("```").count(), 2, "{out}");
        let gantt = out.split("```").nth(1).unwrap();
        assert!(
            !gantt.contains("evil :e") && !gantt.contains("\n    evil"),
            "{gantt}"
        );
        assert!(!gantt.contains('@'));
    }

    #[test]
    fn bars_are_capped() {
        let rows: Vec<_> = (0..100).map(|i| row(&format!("s{i}"), 1.0, 2.0)).collect();
        let chart = median_chart(&rows).unwrap();
        assert_eq!(chart.matches("/total").count(), MAX_BARS);
    }
}
