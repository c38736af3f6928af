//! Text tables: the medians of each phase (`connect_ms`, `newPage_ms`, `goto_ms`, `total_ms`) plus
//! p90/p99 of the total.

use std::fmt::Write;

use super::Report;
use crate::scenario::{Scenario, TimedPhase};
use crate::stats::CellStats;

const HEADER: [&str; 10] = [
    "backend",
    "scenario",
    "result",
    "connect_ms",
    "newPage_ms",
    "goto_ms",
    "total_ms",
    "total_p90",
    "total_p99",
    "n",
];

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "—".to_string(),
    }
}

fn row(cell: &CellStats) -> Vec<String> {
    let result = if cell.failed == 0 {
        "PASS".to_string()
    } else {
        format!("FAIL {}/{}", cell.failed, cell.ok + cell.failed)
    };
    let p50 = |p: TimedPhase| fmt_ms(cell.phase(p).map(|s| s.p50));
    vec![
        cell.target.clone(),
        cell.scenario.to_string(),
        result,
        p50(TimedPhase::Connect),
        p50(TimedPhase::NewPage),
        p50(TimedPhase::Goto),
        p50(TimedPhase::Total),
        fmt_ms(cell.phase(TimedPhase::Total).map(|s| s.p90)),
        fmt_ms(cell.phase(TimedPhase::Total).map(|s| s.p99)),
        (cell.ok + cell.failed).to_string(),
    ]
}

fn failures(report: &Report) -> String {
    let mut out = String::new();
    for cell in &report.summary {
        for (reason, n) in &cell.failures {
            let _ = writeln!(out, "  {} {}: {n}× {reason}", cell.target, cell.scenario);
        }
    }
    if !out.is_empty() {
        out.insert_str(0, "failures:\n");
    }
    out
}

/// Aligned plain-text table for a terminal.
pub fn render_table(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report.summary.iter().map(row).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([HEADER[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 3 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(
        out,
        "{}",
        line(HEADER.iter().map(|s| s.to_string()).collect())
    );
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out.push_str(&failures(report));
    out
}

/// The Markdown table: medians per phase, plus p90/p99 of the total.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for cell in &report.summary {
        let _ = writeln!(out, "| {} |", row(cell).join(" | "));
    }
    let f = failures(report);
    if !f.is_empty() {
        let _ = writeln!(out, "\n```\n{f}```");
    }
    out
}

/// Two targets side by side per scenario and phase, with canary/stable ratios of p50 and p90.
pub fn render_compare(report: &Report, stable: &str, canary: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | phase | {stable} p50 | {canary} p50 | ratio p50 | {stable} p90 | {canary} p90 | ratio p90 | failed ({stable}/{canary}) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let find = |t: &str, sc: Scenario| {
        report
            .summary
            .iter()
            .find(|c| c.target == t && c.scenario == sc)
    };
    for sc in Scenario::ALL {
        let (Some(a), Some(b)) = (find(stable, sc), find(canary, sc)) else {
            continue;
        };
        for p in TimedPhase::ALL {
            let (sa, sb) = (a.phase(p), b.phase(p));
            let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
                (Some(x), Some(y)) if x > 0.0 => format!("{:.2}", y / x),
                _ => "—".to_string(),
            };
            let _ = writeln!(
                out,
                "| {sc} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                p.column(),
                fmt_ms(sa.map(|s| s.p50)),
                fmt_ms(sb.map(|s| s.p50)),
                ratio(sa.map(|s| s.p50), sb.map(|s| s.p50)),
                fmt_ms(sa.map(|s| s.p90)),
                fmt_ms(sb.map(|s| s.p90)),
                ratio(sa.map(|s| s.p90), sb.map(|s| s.p90)),
                a.failed,
                b.failed
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Sample;

    fn sample(target: &str, scenario: Scenario, total: f64, ok: bool) -> Sample {
        Sample {
            target: target.into(),
            scenario,
            index: 0,
            ok,
            error: (!ok).then(|| "connect: refused".into()),
            connect_ms: Some(total / 4.0),
            new_page_ms: Some(total / 2.0),
            goto_ms: Some(total / 4.0),
            total_ms: Some(total),
            status: Some(200),
            title: None,
            instance: None,
            breakdown: None,
        }
    }

    #[test]
    fn table_has_reference_columns_and_failures() {
        let r = Report::new(
            "http://x/",
            vec![
                sample("local", Scenario::Warm, 100.0, true),
                sample("local", Scenario::Cold, 400.0, true),
                sample("local", Scenario::Cold, 0.0, false),
            ],
        );
        let t = render_table(&r);
        assert!(t.starts_with("backend  scenario"), "{t}");
        assert!(t.contains("FAIL 1/2"), "{t}");
        assert!(t.contains("1× connect: refused"), "{t}");
        let md = render_markdown(&r);
        assert!(
            md.contains("| local | cold | FAIL 1/2 | 100 | 200 | 100 | 400 |"),
            "{md}"
        );
        assert!(
            md.contains("| local | warm | PASS | 25.0 | 50.0 | 25.0 | 100 |"),
            "{md}"
        );
    }

    #[test]
    fn compare_prints_ratios() {
        let r = Report::new(
            "http://x/",
            vec![
                sample("stable", Scenario::Warm, 100.0, true),
                sample("canary", Scenario::Warm, 150.0, true),
            ],
        );
        let c = render_compare(&r, "stable", "canary");
        assert!(c.contains("| warm | total_ms | 100 | 150 | 1.50 |"), "{c}");
    }
}
