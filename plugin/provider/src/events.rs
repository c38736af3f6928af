//! Kubernetes Events on the AnalysisRun, one per verdict, so `kubectl describe analysisrun`, the
//! Argo dashboard's event list and any event exporter show why an analysis passed or failed.
//!
//! Writing an event is a side effect that must never decide anything: [`record_verdict`] bounds
//! it in time, and its result is only a note for `Measurement.Metadata`. It needs `create` on
//! `events` (core group) in the AnalysisRun's namespace and nothing else: an event is created
//! once under a name derived from the measurement handle, so a repeated write (a restarted
//! plugin, a retried call) is an `AlreadyExists` answer, not a second event and not a `patch`.

use std::hash::Hasher;
use std::time::Duration;

use futures::future::BoxFuture;
use goplugin::metric::AnalysisPhase;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

/// `source.component` and `reportingComponent` of every event.
pub const COMPONENT: &str = "sandcanary-plugin";
/// Longest event message written (the events.k8s.io API caps `note` at 1 kB).
const MAX_MESSAGE: usize = 1024;
/// Longest object name Kubernetes accepts (DNS subdomain).
const MAX_NAME: usize = 253;

/// The AnalysisRun an event is about, as the plugin receives it in `Run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalysisRunRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// `Normal` or `Warning`, Kubernetes' two event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What one verdict's event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictEvent {
    pub type_: EventType,
    /// `SandcanaryPromote`, `SandcanaryRegression`, `SandcanaryInconclusive`, `SandcanaryError`.
    pub reason: &'static str,
    /// The verdict's one-line summary, then the GitHub issue when one was filed.
    pub message: String,
}

impl VerdictEvent {
    /// The event of a completed measurement: Normal only for a promote; a regression, an
    /// inconclusive result (it pauses the Rollout) and an error are Warnings. `issue` is the
    /// GitHub report's one-line description (`created https://…`), when there is one.
    pub fn of(phase: &AnalysisPhase, summary: &str, issue: Option<&str>) -> Self {
        let (type_, reason) = match phase {
            AnalysisPhase::Successful => (EventType::Normal, "SandcanaryPromote"),
            AnalysisPhase::Failed => (EventType::Warning, "SandcanaryRegression"),
            AnalysisPhase::Inconclusive => (EventType::Warning, "SandcanaryInconclusive"),
            _ => (EventType::Warning, "SandcanaryError"),
        };
        let line = summary.lines().next().unwrap_or_default().trim();
        let message = match issue {
            Some(issue) => format!("{line}; GitHub issue: {issue}"),
            None => line.to_string(),
        };
        Self {
            type_,
            reason,
            message: cap(message, MAX_MESSAGE),
        }
    }
}

/// Why an event was not written.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the API server refused the event: {message} ({code})")]
    Refused { code: u16, message: String },
    #[error("writing the event failed: {0}")]
    Api(#[source] kube::Error),
    #[error("writing the event took longer than {0:?}")]
    TimedOut(Duration),
}

/// What happened to a verdict's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Created,
    /// An event with this name exists already (an earlier try of the same measurement).
    AlreadyThere,
}

/// Where verdict events go: the seam between the job and the API server.
pub trait EventSink: Send + Sync {
    /// Writes `event` about `run` under a name unique to `key` (the measurement handle).
    fn record<'a>(
        &'a self,
        run: &'a AnalysisRunRef,
        key: &'a str,
        event: &'a VerdictEvent,
    ) -> BoxFuture<'a, Result<Recorded, EventError>>;
}

/// Writes core/v1 Events through a [`kube::Client`] (the plugin's, passed in).
#[derive(Clone)]
pub struct KubeEvents {
    client: kube::Client,
}

impl KubeEvents {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl EventSink for KubeEvents {
    fn record<'a>(
        &'a self,
        run: &'a AnalysisRunRef,
        key: &'a str,
        event: &'a VerdictEvent,
    ) -> BoxFuture<'a, Result<Recorded, EventError>> {
        Box::pin(async move {
            let events: Api<Event> = Api::namespaced(self.client.clone(), &run.namespace);
            match events
                .create(&PostParams::default(), &to_event(run, key, event))
                .await
            {
                Ok(_) => Ok(Recorded::Created),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Recorded::AlreadyThere),
                Err(kube::Error::Api(s)) => Err(EventError::Refused {
                    code: s.code,
                    message: s.message,
                }),
                Err(e) => Err(EventError::Api(e)),
            }
        })
    }
}

/// Records the verdict's event within `timeout` and says what happened, as the one line kept in
/// `Metadata` (`sandcanary.event`). Failures are logged, never returned.
pub async fn record_verdict(
    sink: &dyn EventSink,
    run: &AnalysisRunRef,
    key: &str,
    event: &VerdictEvent,
    timeout: Duration,
) -> String {
    if run.namespace.is_empty() || run.name.is_empty() {
        return "not recorded: the AnalysisRun has no namespace or name".into();
    }
    let written = tokio::time::timeout(timeout, sink.record(run, key, event))
        .await
        .unwrap_or(Err(EventError::TimedOut(timeout)));
    let what = format!("{} {}", event.type_.as_str(), event.reason);
    match written {
        Ok(Recorded::Created) => {
            tracing::info!(analysisrun = %format!("{}/{}", run.namespace, run.name),
                reason = event.reason, "event recorded");
            format!("recorded {what}")
        }
        Ok(Recorded::AlreadyThere) => format!("recorded {what} (already there)"),
        Err(e) => {
            tracing::warn!(analysisrun = %format!("{}/{}", run.namespace, run.name),
                reason = event.reason, error = %e, "event not recorded");
            cap(format!("not recorded: {e}"), 200)
        }
    }
}

/// `s` cut to at most `max` bytes (on a character boundary), marked with `...` when cut.
fn cap(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The Event object: about the AnalysisRun (kind, name, uid, as `kubectl describe` selects them),
/// named after the run and a hash of `key`.
pub fn to_event(run: &AnalysisRunRef, key: &str, event: &VerdictEvent) -> Event {
    let now = Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(&run.name, key)),
            namespace: Some(run.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("argoproj.io/v1alpha1".into()),
            kind: Some("AnalysisRun".into()),
            name: Some(run.name.clone()),
            namespace: Some(run.namespace.clone()),
            uid: (!run.uid.is_empty()).then(|| run.uid.clone()),
            ..Default::default()
        },
        type_: Some(event.type_.as_str().into()),
        reason: Some(event.reason.into()),
        message: Some(event.message.clone()),
        action: Some("Verdict".into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// `POD_NAME` of the controller pod, else the host name: who wrote the event.
fn instance() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().chars().take(128).collect())
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| COMPONENT.into())
}

/// `<run>.<16 hex digits of key>`, cut so it stays a valid DNS subdomain of at most 253 bytes.
fn event_name(run: &str, key: &str) -> String {
    // SipHash with fixed keys: the same key gives the same name in every process.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    h.write(key.as_bytes());
    let suffix = format!(".{:016x}", h.finish());
    let mut base: String = run.chars().take(MAX_NAME - suffix.len()).collect();
    while base.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        base.pop();
    }
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_reasons_follow_the_phase() {
        let e = VerdictEvent::of(
            &AnalysisPhase::Successful,
            "statistical: promote (score 97)",
            None,
        );
        assert_eq!(
            (e.type_, e.reason),
            (EventType::Normal, "SandcanaryPromote")
        );
        assert_eq!(e.message, "statistical: promote (score 97)");
        let e = VerdictEvent::of(
            &AnalysisPhase::Failed,
            "regressed\nsecond line",
            Some("created https://github.com/a/b/issues/3"),
        );
        assert_eq!(
            (e.type_, e.reason),
            (EventType::Warning, "SandcanaryRegression")
        );
        assert_eq!(
            e.message,
            "regressed; GitHub issue: created https://github.com/a/b/issues/3"
        );
        assert_eq!(
            VerdictEvent::of(&AnalysisPhase::Error, "x", None).reason,
            "SandcanaryError"
        );
        assert_eq!(
            VerdictEvent::of(&AnalysisPhase::Inconclusive, "x", None).type_,
            EventType::Warning
        );
        let long = VerdictEvent::of(&AnalysisPhase::Failed, &"é".repeat(2000), None);
        assert!(long.message.len() <= MAX_MESSAGE && long.message.ends_with("..."));
    }

    #[test]
    fn names_are_stable_per_key_and_valid() {
        let a = event_name("run-1", "u/bench/0");
        assert_eq!(a, event_name("run-1", "u/bench/0"));
        assert_ne!(a, event_name("run-1", "u/bench/1"));
        assert!(a.starts_with("run-1.") && a.len() == "run-1.".len() + 16);
        let long = event_name(&format!("{}-x", "a".repeat(300)), "k");
        assert!(long.len() <= MAX_NAME, "{}", long.len());
        let dashed = event_name(&format!("{}-", "b".repeat(236)), "k");
        assert!(!dashed.contains("-."), "{dashed}");
    }

    #[test]
    fn the_event_points_at_the_analysis_run() {
        let run = AnalysisRunRef {
            namespace: "ns".into(),
            name: "ar".into(),
            uid: "u-1".into(),
        };
        let e = to_event(
            &run,
            "k",
            &VerdictEvent::of(&AnalysisPhase::Successful, "ok", None),
        );
        let o = &e.involved_object;
        assert_eq!(o.kind.as_deref(), Some("AnalysisRun"));
        assert_eq!(o.api_version.as_deref(), Some("argoproj.io/v1alpha1"));
        assert_eq!(
            (o.name.as_deref(), o.uid.as_deref()),
            (Some("ar"), Some("u-1"))
        );
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.count, Some(1));
    }

    struct Failing;
    impl EventSink for Failing {
        fn record<'a>(
            &'a self,
            _: &'a AnalysisRunRef,
            _: &'a str,
            _: &'a VerdictEvent,
        ) -> BoxFuture<'a, Result<Recorded, EventError>> {
            Box::pin(async {
                Err(EventError::Refused {
                    code: 403,
                    message: "events is forbidden".into(),
                })
            })
        }
    }
    struct Hanging;
    impl EventSink for Hanging {
        fn record<'a>(
            &'a self,
            _: &'a AnalysisRunRef,
            _: &'a str,
            _: &'a VerdictEvent,
        ) -> BoxFuture<'a, Result<Recorded, EventError>> {
            Box::pin(futures::future::pending())
        }
    }

    #[tokio::test]
    async fn a_failed_or_slow_write_is_only_a_note() {
        let run = AnalysisRunRef {
            namespace: "ns".into(),
            name: "ar".into(),
            uid: "u".into(),
        };
        let e = VerdictEvent::of(&AnalysisPhase::Failed, "bad", None);
        let note = record_verdict(&Failing, &run, "k", &e, Duration::from_secs(1)).await;
        assert_eq!(
            note,
            "not recorded: the API server refused the event: events is forbidden (403)"
        );
        let started = std::time::Instant::now();
        let note = record_verdict(&Hanging, &run, "k", &e, Duration::from_millis(100)).await;
        assert!(note.starts_with("not recorded: writing the event took longer"));
        assert!(started.elapsed() < Duration::from_secs(2));
        let note = record_verdict(
            &Failing,
            &AnalysisRunRef::default(),
            "k",
            &e,
            Duration::from_secs(1),
        )
        .await;
        assert!(note.contains("no namespace or name"), "{note}");
    }
}
