//! Where one sample's time went, from the protocol: the proxy's 101 inside `connect`, the two
//! calls inside `newPage`, and Chromium's own navigation timing (the page's
//! `PerformanceNavigationTiming` entry) inside `goto`.
//!
//! Nothing here may slow the measured path: the 101 and the newPage split are instants the client
//! passes anyway, and the navigation timing is read after the sample's timed part has ended.
//! [`segments`] lays a breakdown out as consecutive steps on the sample's own clock, for a
//! waterfall next to another sample.

use serde::{Deserialize, Serialize};

use crate::scenario::Sample;

/// The JavaScript that reads the navigation entry (`null` when the page has none).
pub const NAVIGATION_TIMING_JS: &str =
    "JSON.stringify(performance.getEntriesByType('navigation')[0] || null)";

/// A sample's breakdown; every duration in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdown {
    /// From the start of `connect` to the proxy's `101 Switching Protocols` (session API open,
    /// TCP, the upgrade through the proxy, which includes creating or resuming a sandbox).
    pub upgrade_ms: f64,
    /// `Browser.newContext` inside `newPage`.
    pub new_context_ms: f64,
    /// The navigation as Chromium timed it; `None` when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navigation: Option<NavigationTiming>,
}

/// The fields of Chromium's `PerformanceNavigationTiming` the waterfall uses: milliseconds since
/// the navigation started (`startTime` 0), as the W3C Navigation Timing Level 2 defines them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NavigationTiming {
    pub fetch_start: f64,
    pub domain_lookup_start: f64,
    pub domain_lookup_end: f64,
    pub connect_start: f64,
    pub connect_end: f64,
    pub request_start: f64,
    pub response_start: f64,
    pub response_end: f64,
    pub dom_interactive: f64,
    pub dom_content_loaded_event_end: f64,
    pub load_event_end: f64,
}

impl NavigationTiming {
    /// Parses the JSON of [`NAVIGATION_TIMING_JS`]; `None` for `null`, a missing field or
    /// numbers that are not a navigation (negative, out of order, not finite).
    pub fn parse(json: &str) -> Option<Self> {
        let t: NavigationTiming = serde_json::from_str(json).ok()?;
        let order = [
            t.fetch_start,
            t.domain_lookup_start,
            t.domain_lookup_end,
            t.connect_start,
            t.connect_end,
            t.request_start,
            t.response_start,
            t.response_end,
            t.dom_interactive,
            t.dom_content_loaded_event_end,
            t.load_event_end,
        ];
        let sane = order.iter().all(|v| v.is_finite() && *v >= 0.0)
            && order.windows(2).all(|w| w[0] <= w[1]);
        sane.then_some(t)
    }
}

/// One step of a sample, on the sample's clock (0 = start of `connect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// `connect: upgrade to 101`, `goto: server response (TTFB)`, ...
    pub name: String,
    pub start_ms: f64,
    pub end_ms: f64,
}

impl Segment {
    pub fn duration_ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }
}

/// Names of the steps, in order; a waterfall pairs steps of two samples by them.
pub const STEPS: [&str; 10] = [
    "connect: to the proxy's 101",
    "connect: Playwright initialize",
    "newPage: newContext",
    "newPage: newPage",
    "goto: outside the page's timing",
    "goto: DNS and TCP connect",
    "goto: request to first byte",
    "goto: response body",
    "goto: DOM parsed",
    "goto: load event",
];

/// The sample's steps, consecutive from 0 to `total_ms`; empty without a breakdown or timings.
/// `goto: outside the page's timing` is what Chromium's navigation entry does not cover (the
/// protocol round trip, the navigation's start and commit, the load wait's hand-back).
pub fn segments(sample: &Sample) -> Vec<Segment> {
    let (Some(b), Some(connect), Some(new_page), Some(goto)) = (
        sample.breakdown.as_ref(),
        sample.connect_ms,
        sample.new_page_ms,
        sample.goto_ms,
    ) else {
        return Vec::new();
    };
    let upgrade = b.upgrade_ms.clamp(0.0, connect);
    let new_context = b.new_context_ms.clamp(0.0, new_page);
    let mut parts: Vec<f64> = vec![
        upgrade,
        connect - upgrade,
        new_context,
        new_page - new_context,
    ];
    match &b.navigation {
        Some(n) => {
            let inside = n.load_event_end.min(goto);
            let scale = if n.load_event_end > 0.0 {
                inside / n.load_event_end
            } else {
                0.0
            };
            parts.push(goto - inside);
            for (from, to) in [
                (0.0, n.connect_end),
                (n.connect_end, n.response_start),
                (n.response_start, n.response_end),
                (n.response_end, n.dom_content_loaded_event_end),
                (n.dom_content_loaded_event_end, n.load_event_end),
            ] {
                parts.push((to - from).max(0.0) * scale);
            }
        }
        None => {
            parts.push(goto);
            parts.extend([0.0; 5]);
        }
    }
    let mut at = 0.0;
    STEPS
        .iter()
        .zip(parts)
        .map(|(name, d)| {
            let s = Segment {
                name: name.to_string(),
                start_ms: at,
                end_ms: at + d,
            };
            at += d;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn timing() -> NavigationTiming {
        NavigationTiming {
            fetch_start: 1.0,
            domain_lookup_start: 1.0,
            domain_lookup_end: 1.0,
            connect_start: 1.0,
            connect_end: 3.0,
            request_start: 3.5,
            response_start: 20.0,
            response_end: 22.0,
            dom_interactive: 25.0,
            dom_content_loaded_event_end: 26.0,
            load_event_end: 30.0,
        }
    }

    fn sample(b: Option<Breakdown>) -> Sample {
        Sample {
            target: "canary".into(),
            scenario: Scenario::Warm,
            index: 0,
            ok: true,
            error: None,
            connect_ms: Some(100.0),
            new_page_ms: Some(50.0),
            goto_ms: Some(40.0),
            total_ms: Some(190.0),
            status: Some(200),
            title: None,
            instance: None,
            breakdown: b,
        }
    }

    #[test]
    fn chromium_json_parses_and_nonsense_does_not() {
        let json = r#"{"name":"http://127.0.0.1:1/","entryType":"navigation","startTime":0,
            "duration":30,"fetchStart":1,"domainLookupStart":1,"domainLookupEnd":1,"connectStart":1,
            "connectEnd":3,"secureConnectionStart":0,"requestStart":3.5,"responseStart":20,
            "responseEnd":22,"domInteractive":25,"domContentLoadedEventStart":25.5,
            "domContentLoadedEventEnd":26,"loadEventStart":29,"loadEventEnd":30,"type":"navigate"}"#;
        assert_eq!(NavigationTiming::parse(json), Some(timing()));
        assert_eq!(NavigationTiming::parse("null"), None);
        assert_eq!(NavigationTiming::parse("{}"), None);
        let backwards = json.replace("\"responseEnd\":22", "\"responseEnd\":2");
        assert_eq!(NavigationTiming::parse(&backwards), None);
    }

    #[test]
    fn segments_are_consecutive_and_add_up_to_the_total() {
        let s = sample(Some(Breakdown {
            upgrade_ms: 80.0,
            new_context_ms: 20.0,
            navigation: Some(timing()),
        }));
        let segs = segments(&s);
        assert_eq!(segs.len(), STEPS.len());
        for w in segs.windows(2) {
            assert_eq!(w[0].end_ms, w[1].start_ms);
        }
        assert_eq!(segs[0].start_ms, 0.0);
        assert!((segs.last().unwrap().end_ms - 190.0).abs() < 1e-9);
        let d: Vec<f64> = segs.iter().map(Segment::duration_ms).collect();
        assert_eq!(d[..5], [80.0, 20.0, 20.0, 30.0, 10.0]);
        assert!((d[6] - 17.0).abs() < 1e-9, "TTFB {}", d[6]);
    }

    #[test]
    fn no_breakdown_no_segments_and_no_navigation_leaves_goto_whole() {
        assert!(segments(&sample(None)).is_empty());
        let segs = segments(&sample(Some(Breakdown {
            upgrade_ms: 500.0, // more than connect: clamped
            new_context_ms: 1.0,
            navigation: None,
        })));
        assert_eq!(segs[0].duration_ms(), 100.0);
        assert_eq!(segs[4].duration_ms(), 40.0);
        assert!((segs.last().unwrap().end_ms - 190.0).abs() < 1e-9);
    }
}
