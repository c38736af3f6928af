//! A single self-contained HTML file (inline SVG, no scripts, no network) with one chart per scenario
//! and phase showing every target's latency distribution: each sample as a dot, p50 and p90 as marks.

use std::fmt::Write;

use super::{Report, table};
use crate::scenario::{Scenario, TimedPhase};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const WIDTH: f64 = 720.0;
const LABEL: f64 = 140.0;
const ROW: f64 = 28.0;
const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Renders the report as HTML.
pub fn render_html(report: &Report) -> String {
    let mut targets: Vec<&str> = Vec::new();
    for s in &report.samples {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    let mut body = String::new();
    for sc in Scenario::ALL {
        if !report.samples.iter().any(|s| s.scenario == sc) {
            continue;
        }
        let _ = writeln!(body, "<h2>{sc}</h2>");
        for phase in TimedPhase::ALL {
            body.push_str(&chart(report, &targets, sc, phase));
        }
    }
    let table = escape(&table::render_table(report));
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sandcanary bench report</title>\n\
<style>body{{font-family:sans-serif;margin:2em}} pre{{background:#f4f4f4;padding:1em}} \
svg.chart{{display:block;margin:0.5em 0 1.5em 0}} text{{font-size:12px}}</style></head>\n\
<body><h1>sandcanary bench report</h1>\n<p>page: {}</p>\n\
<p>Each dot is one successful sample; the solid mark is the median (p50), the dashed mark p90. \
Failed samples are listed under the table, not drawn.</p>\n<pre>{table}</pre>\n{body}</body></html>\n",
        escape(&report.page_url)
    )
}

fn chart(report: &Report, targets: &[&str], sc: Scenario, phase: TimedPhase) -> String {
    let values = |t: &str| -> Vec<f64> {
        report
            .samples
            .iter()
            .filter(|s| s.ok && s.target == t && s.scenario == sc)
            .filter_map(|s| s.phase(phase))
            .collect()
    };
    let max = targets
        .iter()
        .flat_map(|t| values(t))
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.05;
    let height = ROW * targets.len() as f64 + 40.0;
    let x = |v: f64| LABEL + (WIDTH - LABEL - 20.0) * v / max;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg class=\"chart\" data-scenario=\"{sc}\" data-phase=\"{}\" width=\"{WIDTH}\" height=\"{height}\" \
xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"><title>{sc} {}</title>",
        phase.column(),
        phase.column()
    );
    let _ = writeln!(
        svg,
        "<text x=\"4\" y=\"14\" font-weight=\"bold\">{} (ms)</text>",
        phase.column()
    );
    for (i, t) in targets.iter().enumerate() {
        let y = 30.0 + ROW * i as f64 + ROW / 2.0;
        let color = PALETTE[i % PALETTE.len()];
        let _ = writeln!(svg, "<text x=\"4\" y=\"{}\">{}</text>", y + 4.0, escape(t));
        let vs = values(t);
        for v in &vs {
            let _ = writeln!(
                svg,
                "<circle class=\"sample\" cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{color}\" fill-opacity=\"0.5\"/>",
                x(*v)
            );
        }
        if let Some(st) = crate::stats::PhaseStats::from_ms(&vs) {
            for (q, label, dash) in [(st.p50, "p50", "none"), (st.p90, "p90", "3 2")] {
                let _ = writeln!(
                    svg,
                    "<line class=\"{label}\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
                    x(q),
                    y - 10.0,
                    y + 10.0
                );
            }
        }
    }
    let axis_y = height - 8.0;
    let _ = writeln!(
        svg,
        "<line x1=\"{LABEL}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#888\"/><text x=\"{LABEL}\" y=\"{axis_y}\">0</text>\
<text x=\"{}\" y=\"{axis_y}\" text-anchor=\"end\">{max:.0}</text></svg>",
        WIDTH - 20.0,
        axis_y - 12.0,
        axis_y - 12.0,
        WIDTH - 20.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Sample;

    #[test]
    fn one_chart_per_scenario_and_phase_and_names_escaped() {
        let s = |t: &str, sc| Sample {
            target: t.into(),
            scenario: sc,
            index: 0,
            ok: true,
            error: None,
            connect_ms: Some(1.0),
            new_page_ms: Some(2.0),
            goto_ms: Some(3.0),
            total_ms: Some(6.0),
            status: Some(200),
            title: None,
            instance: None,
            breakdown: None,
        };
        let r = Report::new(
            "http://x/",
            vec![s("<b>", Scenario::Warm), s("a", Scenario::Cold)],
        );
        let html = render_html(&r);
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 8);
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;b&gt;"));
    }
}
