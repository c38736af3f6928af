//! Prometheus metrics, exposed as text on the admin port's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub protocol: String,
    pub status: String,
}

fn ensure_histogram() -> Histogram {
    // 5 ms .. ~80 s: a warm pool hit is milliseconds, a cluster cold start tens of seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn wait_histogram() -> Histogram {
    // 1 ms .. ~65 s: a short queue is milliseconds, a full one up to ADMISSION_TIMEOUT.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the proxy keeps. Cloning is cheap (the metrics are reference-counted).
#[derive(Clone)]
pub struct Metrics {
    pub sessions: Gauge,
    pub ensure_seconds: Family<ResultLabel, Histogram, fn() -> Histogram>,
    pub ensures: Family<ResultLabel, Counter>,
    pub reaps: Family<ResultLabel, Counter>,
    pub websocket_connections: Gauge,
    pub http_streams: Gauge,
    pub requests: Family<RequestLabels, Counter>,
    pub upstream_errors: Family<KindLabel, Counter>,
    pub identity_failures: Family<KindLabel, Counter>,
    pub invalidations: Counter,
    /// 1 while this replica holds the leader Lease (always 1 without election).
    pub leader: Gauge,
    pub leader_transitions: Counter,
    /// Writes of shared activity records, by result.
    pub activity_writes: Family<ResultLabel, Counter>,
    /// Requests waiting in the admission queue.
    pub admission_queue: Gauge,
    /// Time a request waited for admission (queued requests only), by outcome.
    pub admission_wait_seconds: Family<ResultLabel, Histogram, fn() -> Histogram>,
    /// Requests admitted, by path: `existing` (its sandbox is live), `immediate`, `queued`.
    pub admissions: Family<PathLabel, Counter>,
    /// Requests refused by admission, by the limit hit.
    pub admission_rejections: Family<ReasonLabel, Counter>,
    registry: std::sync::Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let sessions = Gauge::default();
        let ensure_seconds: Family<ResultLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(ensure_histogram);
        let ensures = Family::<ResultLabel, Counter>::default();
        let reaps = Family::<ResultLabel, Counter>::default();
        let websocket_connections = Gauge::default();
        let http_streams = Gauge::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let upstream_errors = Family::<KindLabel, Counter>::default();
        let identity_failures = Family::<KindLabel, Counter>::default();
        let invalidations = Counter::default();
        let leader = Gauge::default();
        let leader_transitions = Counter::default();
        let activity_writes = Family::<ResultLabel, Counter>::default();
        let admission_queue = Gauge::default();
        let admission_wait_seconds: Family<ResultLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(wait_histogram);
        let admissions = Family::<PathLabel, Counter>::default();
        let admission_rejections = Family::<ReasonLabel, Counter>::default();

        let mut r = Registry::with_prefix("sandcanary");
        r.register("sessions", "Sessions the proxy holds", sessions.clone());
        r.register(
            "ensure_duration_seconds",
            "Time a backend ensure took, by result",
            ensure_seconds.clone(),
        );
        r.register("ensures", "Backend ensures, by result", ensures.clone());
        r.register(
            "reaps",
            "Idle sessions reaped, by result of the delete",
            reaps.clone(),
        );
        r.register(
            "websocket_connections",
            "WebSocket connections open through the proxy",
            websocket_connections.clone(),
        );
        r.register(
            "http_streams",
            "HTTP responses being streamed through the proxy",
            http_streams.clone(),
        );
        r.register(
            "requests",
            "Requests on the data port, by protocol and status",
            requests.clone(),
        );
        r.register(
            "upstream_errors",
            "Failures talking to sandboxes, by kind",
            upstream_errors.clone(),
        );
        r.register(
            "identity_failures",
            "Callers that could not be identified, by reason",
            identity_failures.clone(),
        );
        r.register(
            "invalidations",
            "Sessions dropped because their sandbox refused or reset a connection",
            invalidations.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the one that reaps idle sandboxes",
            leader.clone(),
        );
        r.register(
            "leader_transitions",
            "Times this replica became or stopped being the leader",
            leader_transitions.clone(),
        );
        r.register(
            "activity_writes",
            "Writes of shared activity records on sandbox objects, by result",
            activity_writes.clone(),
        );
        r.register(
            "admission_queue_length",
            "Requests waiting in the admission queue for a new sandbox",
            admission_queue.clone(),
        );
        r.register(
            "admission_wait_seconds",
            "Time queued requests waited for admission, by result (admitted, refused, gone)",
            admission_wait_seconds.clone(),
        );
        r.register(
            "admissions",
            "Requests admitted, by path (existing, immediate, queued)",
            admissions.clone(),
        );
        r.register(
            "admission_rejections",
            "Requests refused by admission, by the limit hit",
            admission_rejections.clone(),
        );
        // Known label values start at zero so that dashboards and alerts see them before the first event.
        for r in ["ok", "error", "timeout", "cancelled"] {
            drop(ensures.get_or_create(&Self::result(r)));
        }
        // "changed": the leader found the sandbox used again (or otherwise changed) at delete time.
        for r in ["ok", "error", "changed"] {
            drop(reaps.get_or_create(&Self::result(r)));
        }
        for r in ["updated", "newer", "missing", "error"] {
            drop(activity_writes.get_or_create(&Self::result(r)));
        }
        for k in ["dial", "write", "handshake", "http"] {
            drop(upstream_errors.get_or_create(&Self::kind(k)));
        }
        for k in ["unknown", "rejected", "ambiguous"] {
            drop(identity_failures.get_or_create(&Self::kind(k)));
        }
        for p in ["existing", "immediate", "queued"] {
            drop(admissions.get_or_create(&PathLabel { path: p.into() }));
        }
        for r in crate::admission::Refused::REASONS {
            drop(admission_rejections.get_or_create(&ReasonLabel { reason: r.into() }));
        }
        Self {
            sessions,
            ensure_seconds,
            ensures,
            reaps,
            websocket_connections,
            http_streams,
            requests,
            upstream_errors,
            identity_failures,
            invalidations,
            leader,
            leader_transitions,
            activity_writes,
            admission_queue,
            admission_wait_seconds,
            admissions,
            admission_rejections,
            registry: std::sync::Arc::new(r),
        }
    }

    pub fn result(result: &str) -> ResultLabel {
        ResultLabel {
            result: result.to_string(),
        }
    }

    pub fn kind(kind: &str) -> KindLabel {
        KindLabel {
            kind: kind.to_string(),
        }
    }

    pub fn request(&self, protocol: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                protocol: protocol.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
