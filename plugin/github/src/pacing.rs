//! Pacing of mutating requests: one at a time, at least the configured interval apart, and within
//! an hourly budget, as GitHub's secondary rate limits ask.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::ReportError;

const HOUR: Duration = Duration::from_secs(3600);

/// Serialises mutations and spaces them out.
#[derive(Debug)]
pub(crate) struct MutationGate {
    min_interval: Duration,
    per_hour: u32,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    last_finished: Option<Instant>,
    started: VecDeque<Instant>,
}

impl MutationGate {
    pub(crate) fn new(min_interval: Duration, per_hour: u32) -> Self {
        Self {
            min_interval,
            per_hour,
            state: Mutex::new(GateState::default()),
        }
    }

    /// Runs `mutation` once it is this one's turn; refuses without sending when the budget is spent.
    pub(crate) async fn run<T>(&self, mutation: impl Future<Output = T>) -> Result<T, ReportError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        while state
            .started
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            state.started.pop_front();
        }
        if state.started.len() >= self.per_hour as usize {
            return Err(ReportError::BudgetExhausted(self.per_hour));
        }
        if let Some(last) = state.last_finished {
            tokio::time::sleep_until(last + self.min_interval).await;
        }
        state.started.push_back(Instant::now());
        let out = mutation.await;
        // Measured from the end of the previous mutation, so a slow answer does not shorten the gap.
        state.last_finished = Some(Instant::now());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn mutations_are_spaced_from_the_end_of_the_previous_one() {
        let gate = MutationGate::new(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        gate.run(tokio::time::sleep(Duration::from_millis(300)))
            .await
            .unwrap();
        let second_start = gate.run(async { Instant::now() }).await.unwrap();
        assert_eq!(second_start - t0, Duration::from_millis(1300));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_serialised() {
        let gate = Arc::new(MutationGate::new(Duration::from_secs(1), 10));
        let mut handles = Vec::new();
        for _ in 0..3 {
            let gate = gate.clone();
            handles.push(tokio::spawn(async move {
                gate.run(async {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    (start, Instant::now())
                })
                .await
                .unwrap()
            }));
        }
        let mut spans = Vec::new();
        for h in handles {
            spans.push(h.await.unwrap());
        }
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1 + Duration::from_secs(1), "{spans:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_is_per_rolling_hour() {
        let gate = MutationGate::new(Duration::from_secs(1), 2);
        gate.run(async {}).await.unwrap();
        gate.run(async {}).await.unwrap();
        let sent = std::sync::atomic::AtomicBool::new(false);
        let refused = gate
            .run(async { sent.store(true, std::sync::atomic::Ordering::SeqCst) })
            .await;
        assert!(matches!(refused, Err(ReportError::BudgetExhausted(2))));
        assert!(!sent.load(std::sync::atomic::Ordering::SeqCst));
        tokio::time::advance(HOUR).await;
        gate.run(async {}).await.unwrap();
    }
}
