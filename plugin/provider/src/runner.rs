//! Runs jobs in the background under string handles, so `Run` can return at once and `Resume`
//! can poll. State is in memory only: a restarted plugin forgets everything, and the provider
//! re-runs a job whose handle it no longer knows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use sandcanary_canary::{Progress, Stage};
use tokio_util::sync::CancellationToken;

use crate::config::PluginConfig;
use crate::job::{Job, JobContext, JobOutcome};

/// Finished jobs are forgotten after this long (their result is in the AnalysisRun by then).
const KEEP_FINISHED: Duration = Duration::from_secs(3600);

/// What a handle refers to right now.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    Unknown,
    Running {
        elapsed: Duration,
        /// The job's live progress (one line, and short keys for Metadata); `None` while the job
        /// has reported nothing (the placeholder never does).
        progress: Option<ProgressSnapshot>,
    },
    Done(JobOutcome),
}

/// What a running job has reported, read at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSnapshot {
    /// `benching 12/40 samples (29%)`.
    pub line: String,
    /// `stage`, `percent`, `samples.stable`, `samples.canary`, `scenario`.
    pub metadata: BTreeMap<String, String>,
}

impl ProgressSnapshot {
    fn of(p: &Progress) -> Option<Self> {
        if p.stage() == Stage::Preparing && p.samples().1 == 0 {
            return None;
        }
        Some(Self {
            line: p.to_string(),
            metadata: p.metadata(),
        })
    }
}

enum Slot {
    Running {
        started: Instant,
        cancel: CancellationToken,
        progress: Progress,
    },
    Done {
        at: Instant,
        outcome: JobOutcome,
    },
}

/// Background jobs keyed by handle.
pub struct JobRunner<J> {
    job: Arc<J>,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl<J: Job> JobRunner<J> {
    pub fn new(job: J) -> Self {
        JobRunner {
            job: Arc::new(job),
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn job_name(&self) -> &'static str {
        self.job.name()
    }

    /// The job's own configuration check (see [`Job::check`]).
    pub fn check(&self, config: &PluginConfig, namespace: &str) -> Result<(), String> {
        self.job.check(config, namespace)
    }

    /// Starts a job under `handle` unless one is already known (so `Run` is idempotent).
    /// Returns whether a new job was started.
    pub fn start(&self, handle: &str, ctx: JobContext, config: PluginConfig) -> bool {
        let mut slots = self.slots.lock().expect("runner lock");
        slots.retain(|_, s| !matches!(s, Slot::Done { at, .. } if at.elapsed() > KEEP_FINISHED));
        if slots.contains_key(handle) {
            return false;
        }
        let cancel = CancellationToken::new();
        let progress = Progress::new();
        slots.insert(
            handle.to_string(),
            Slot::Running {
                started: Instant::now(),
                cancel: cancel.clone(),
                progress: progress.clone(),
            },
        );
        let fut = self.job.start(ctx, config, cancel, progress);
        let map = self.slots.clone();
        let key = handle.to_string();
        tokio::spawn(async move {
            let outcome = fut.await;
            map.lock().expect("runner lock").insert(
                key,
                Slot::Done {
                    at: Instant::now(),
                    outcome,
                },
            );
        });
        true
    }

    pub fn status(&self, handle: &str) -> JobStatus {
        match self.slots.lock().expect("runner lock").get(handle) {
            None => JobStatus::Unknown,
            Some(Slot::Running {
                started, progress, ..
            }) => JobStatus::Running {
                elapsed: started.elapsed(),
                progress: ProgressSnapshot::of(progress),
            },
            Some(Slot::Done { outcome, .. }) => JobStatus::Done(outcome.clone()),
        }
    }

    /// Cancels a running job; returns its status before cancelling.
    pub fn cancel(&self, handle: &str) -> JobStatus {
        let status = self.status(handle);
        if let Some(Slot::Running { cancel, .. }) =
            self.slots.lock().expect("runner lock").get(handle)
        {
            cancel.cancel();
        }
        status
    }

    /// How many jobs are still running.
    pub fn running(&self) -> usize {
        self.slots
            .lock()
            .expect("runner lock")
            .values()
            .filter(|s| matches!(s, Slot::Running { .. }))
            .count()
    }
}
