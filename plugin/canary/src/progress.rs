//! How far a running analysis is, readable from another task while it runs (for `Resume`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use sandcanary_bench::scenario::Scenario;

use crate::comparison::{CANARY, STABLE};

/// What the analysis is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Preparing,
    Benching,
    Judging,
    Reporting,
    Done,
}

impl Stage {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Stage::Benching,
            2 => Stage::Judging,
            3 => Stage::Reporting,
            4 => Stage::Done,
            _ => Stage::Preparing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Preparing => "preparing",
            Stage::Benching => "benching",
            Stage::Judging => "judging",
            Stage::Reporting => "reporting",
            Stage::Done => "done",
        }
    }
}

/// A cheap, cloneable progress indicator: the analysis updates it, the protocol side reads it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stage: AtomicU8,
    done: AtomicUsize,
    total: AtomicUsize,
    stable_done: AtomicUsize,
    canary_done: AtomicUsize,
    /// Index+1 into [`Scenario::ALL`] of the latest sample's scenario; 0 before the first.
    scenario: AtomicU8,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set by the job as it moves on (public so other jobs can report through the same type).
    pub fn set_stage(&self, stage: Stage) {
        self.inner.stage.store(stage as u8, Ordering::Relaxed);
    }

    /// Samples planned, both targets together.
    pub fn set_total(&self, total: usize) {
        self.inner.total.store(total, Ordering::Relaxed);
    }

    /// Counts one finished sample of `target` in `scenario`.
    pub fn sample_done(&self, target: &str, scenario: Scenario) {
        match target {
            STABLE => self.inner.stable_done.fetch_add(1, Ordering::Relaxed),
            CANARY => self.inner.canary_done.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let idx = Scenario::ALL
            .iter()
            .position(|s| *s == scenario)
            .unwrap_or(0);
        self.inner.scenario.store(idx as u8 + 1, Ordering::Relaxed);
        self.inner.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Samples taken and planned for one side (`stable` or `canary`); both sides plan half.
    pub fn target_samples(&self, target: &str) -> (usize, usize) {
        let done = match target {
            STABLE => self.inner.stable_done.load(Ordering::Relaxed),
            CANARY => self.inner.canary_done.load(Ordering::Relaxed),
            _ => 0,
        };
        (done, self.inner.total.load(Ordering::Relaxed) / 2)
    }

    /// The scenario being benched (that of the latest sample), once one sample is done.
    pub fn scenario(&self) -> Option<Scenario> {
        match self.inner.scenario.load(Ordering::Relaxed) {
            0 => None,
            i => Scenario::ALL.get(i as usize - 1).copied(),
        }
    }

    /// A few short keys for `Measurement.Metadata` while the analysis runs (bounded size).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([
            ("stage".to_string(), self.stage().as_str().to_string()),
            ("percent".to_string(), self.percent().to_string()),
        ]);
        for side in [STABLE, CANARY] {
            let (done, planned) = self.target_samples(side);
            out.insert(format!("samples.{side}"), format!("{done}/{planned}"));
        }
        if let Some(s) = self.scenario() {
            out.insert("scenario".into(), s.as_str().into());
        }
        out
    }

    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.inner.stage.load(Ordering::Relaxed))
    }

    /// Samples taken and planned (stable and canary together).
    pub fn samples(&self) -> (usize, usize) {
        (
            self.inner.done.load(Ordering::Relaxed),
            self.inner.total.load(Ordering::Relaxed),
        )
    }

    /// Share done, 0-100.
    pub fn percent(&self) -> u8 {
        let (done, total) = self.samples();
        match self.stage() {
            Stage::Preparing => 0,
            Stage::Done => 100,
            _ if total == 0 => 0,
            // The bench is nearly all of the time; judging and reporting are the last percent.
            Stage::Benching => ((done.min(total) * 99) / total) as u8,
            Stage::Judging | Stage::Reporting => 99,
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (done, total) = self.samples();
        write!(
            f,
            "{} {done}/{total} samples ({}%)",
            self.stage().as_str(),
            self.percent()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_stage_and_share() {
        let p = Progress::new();
        assert_eq!(p.percent(), 0);
        p.set_total(4);
        p.set_stage(Stage::Benching);
        let seen_elsewhere = p.clone();
        assert_eq!(seen_elsewhere.scenario(), None);
        p.sample_done(STABLE, Scenario::Cold);
        p.sample_done(CANARY, Scenario::Warm);
        assert_eq!(seen_elsewhere.samples(), (2, 4));
        assert_eq!(seen_elsewhere.target_samples(STABLE), (1, 2));
        assert_eq!(seen_elsewhere.scenario(), Some(Scenario::Warm));
        assert_eq!(seen_elsewhere.percent(), 49);
        assert_eq!(seen_elsewhere.to_string(), "benching 2/4 samples (49%)");
        let md = seen_elsewhere.metadata();
        assert_eq!(md["samples.canary"], "1/2");
        assert_eq!(md["scenario"], "warm");
        assert_eq!(md["stage"], "benching");
        assert!(
            md.values().map(String::len).sum::<usize>() < 64,
            "kept small"
        );
        p.set_stage(Stage::Done);
        assert_eq!(seen_elsewhere.percent(), 100);
    }
}
