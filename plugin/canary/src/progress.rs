//! How far a running analysis is, readable from another task while it runs (for `Resume`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

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
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn set_stage(&self, stage: Stage) {
        self.inner.stage.store(stage as u8, Ordering::Relaxed);
    }

    pub(crate) fn set_total(&self, total: usize) {
        self.inner.total.store(total, Ordering::Relaxed);
    }

    pub(crate) fn sample_done(&self) {
        self.inner.done.fetch_add(1, Ordering::Relaxed);
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
        p.sample_done();
        p.sample_done();
        assert_eq!(seen_elsewhere.samples(), (2, 4));
        assert_eq!(seen_elsewhere.percent(), 49);
        assert_eq!(seen_elsewhere.to_string(), "benching 2/4 samples (49%)");
        p.set_stage(Stage::Done);
        assert_eq!(seen_elsewhere.percent(), 100);
    }
}
