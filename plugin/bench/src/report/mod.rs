//! Renderings of a finished run: a table of medians per phase (plain or Markdown), JSON with every
//! sample, a side-by-side comparison of two targets, and a self-contained HTML page with charts.

mod html;
mod table;

use serde::Serialize;

use crate::scenario::Sample;
use crate::stats::{CellStats, summarize};

pub use html::render_html;
pub use table::{render_compare, render_markdown, render_table};

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Page the sessions navigated to.
    pub page_url: String,
    pub samples: Vec<Sample>,
    pub summary: Vec<CellStats>,
}

impl Report {
    pub fn new(page_url: impl Into<String>, samples: Vec<Sample>) -> Self {
        let summary = summarize(&samples);
        Self {
            page_url: page_url.into(),
            samples,
            summary,
        }
    }

    /// Whether every sample passed.
    pub fn all_ok(&self) -> bool {
        !self.samples.is_empty() && self.samples.iter().all(|s| s.ok)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }
}
