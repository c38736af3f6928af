//! The `pods` identity source: the caller is the pod behind its source IP, and its sandbox id is the
//! value of that pod's label (`PLAYWRIGHT_LABEL_KEY`).
//!
//! A watcher on the proxy's namespace (label key as an existence selector) keeps an IP -> (pod uid,
//! id) index. It indexes every `status.podIPs` entry (dual-stack), ignores pods
//! that have finished or are being deleted (their IP may already belong to someone else), and keys
//! removals by pod uid, so the delete of an old pod never removes the mapping of a newer pod that got
//! the same IP. A cache miss (informer lag: the pod got its IP a moment ago) falls back to a LIST by
//! `status.podIP`, bounded by a time budget (one LIST per `FALLBACK_RETRY` while it lasts) and
//! coalesced per IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use http::HeaderMap;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Identity, Verdict, canonical};

/// How long the fallback waits between two LISTs while its budget lasts.
const FALLBACK_RETRY: Duration = Duration::from_millis(250);
/// Watch restarts back off from this to `WATCH_BACKOFF_MAX`.
const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(200);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an unhealthy watcher's API server is probed to notice that it is back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the index needs to know about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub uid: String,
    pub name: String,
    /// The label value; `None` when the label is missing, empty or not a valid id ([`crate::id`]).
    pub id: Option<String>,
    pub ips: Vec<IpAddr>,
    /// False for pods in phase Succeeded or Failed and for pods with a deletionTimestamp.
    pub live: bool,
}

impl PodView {
    /// Reads the fields the index uses. Pods without a uid (never the case for API objects) are
    /// skipped by the caller.
    pub fn from_pod(pod: &Pod, label_key: &str) -> Option<Self> {
        let meta = &pod.metadata;
        let uid = meta.uid.clone()?;
        let id = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(label_key))
            .map(|v| v.trim().to_string())
            .filter(|v| crate::id::valid(v));
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = Vec::new();
        let listed = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .map(|p| p.ip.as_str());
        let primary = status.and_then(|s| s.pod_ip.as_deref());
        for ip in listed.chain(primary) {
            if let Ok(ip) = ip.trim().parse::<IpAddr>() {
                let ip = canonical(ip);
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        let finished = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        Some(Self {
            uid,
            name: meta.name.clone().unwrap_or_default(),
            id,
            ips,
            live: !finished && meta.deletion_timestamp.is_none(),
        })
    }

    fn routable(&self) -> bool {
        self.live && self.id.is_some() && !self.ips.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Owner {
    uid: String,
    id: String,
}

/// IP -> (pod uid, id), with the IPs each pod uid claimed so that removals touch only its own entries.
#[derive(Debug, Default)]
pub struct PodIndex {
    by_ip: HashMap<IpAddr, Owner>,
    by_uid: HashMap<String, Vec<IpAddr>>,
}

impl PodIndex {
    /// Adds, updates or (if the pod is no longer routable) removes a pod's entries. The newest event
    /// for an IP wins: a new pod that got a recycled IP takes it over.
    pub fn apply(&mut self, pod: PodView) {
        self.remove(&pod.uid);
        if !pod.routable() {
            return;
        }
        let id = pod.id.expect("routable pods have an id");
        for ip in &pod.ips {
            self.by_ip.insert(
                *ip,
                Owner {
                    uid: pod.uid.clone(),
                    id: id.clone(),
                },
            );
        }
        self.by_uid.insert(pod.uid, pod.ips);
    }

    /// Removes the entries a pod owns; entries another pod has taken over stay.
    pub fn remove(&mut self, uid: &str) {
        for ip in self.by_uid.remove(uid).unwrap_or_default() {
            if self.by_ip.get(&ip).is_some_and(|o| o.uid == uid) {
                self.by_ip.remove(&ip);
            }
        }
    }

    pub fn get(&self, ip: IpAddr) -> Option<&str> {
        self.by_ip.get(&canonical(ip)).map(|o| o.id.as_str())
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

/// The seam to the API server for the fallback lookup and the health probe (tests can script it).
#[async_trait]
pub trait PodLister: Send + Sync + 'static {
    /// Pods in the namespace carrying the label key whose primary IP is `ip`.
    async fn pods_with_ip(&self, ip: IpAddr) -> Result<Vec<Pod>, kube::Error>;
    /// A cheap request that succeeds when the API server answers.
    async fn probe(&self) -> Result<(), kube::Error>;
}

/// [`PodLister`] against the API server.
pub struct KubePods {
    api: Api<Pod>,
    label_key: String,
}

impl KubePods {
    pub fn new(api: Api<Pod>, label_key: impl Into<String>) -> Self {
        Self {
            api,
            label_key: label_key.into(),
        }
    }
}

#[async_trait]
impl PodLister for KubePods {
    async fn pods_with_ip(&self, ip: IpAddr) -> Result<Vec<Pod>, kube::Error> {
        let lp = ListParams::default()
            .labels(&self.label_key)
            .fields(&format!("status.podIP={ip}"));
        Ok(self.api.list(&lp).await?.items)
    }

    async fn probe(&self) -> Result<(), kube::Error> {
        let lp = ListParams::default().labels(&self.label_key).limit(1);
        self.api.list_metadata(&lp).await.map(|_| ())
    }
}

type Lookup = Shared<BoxFuture<'static, Option<String>>>;

struct Inner {
    label_key: String,
    budget: Duration,
    index: RwLock<PodIndex>,
    /// Set once the first full LIST is in the index; never reset.
    synced: AtomicBool,
    /// False while the watcher fails (API server unreachable); the index keeps its last state.
    healthy: AtomicBool,
    lister: Arc<dyn PodLister>,
    inflight: Mutex<HashMap<IpAddr, Lookup>>,
    fallback_lists: AtomicU64,
}

/// The `pods` identity source. Dropping it stops its watcher.
pub struct PodIdentity {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PodIdentity {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl PodIdentity {
    /// Starts watching the pods of `namespace` that carry `label_key`. `budget` bounds the fallback
    /// lookup for a caller the cache does not know.
    pub fn start(client: kube::Client, namespace: &str, label_key: &str, budget: Duration) -> Self {
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let lister = Arc::new(KubePods::new(api.clone(), label_key));
        let inner = Arc::new(Inner {
            label_key: label_key.to_string(),
            budget,
            index: RwLock::new(PodIndex::default()),
            synced: AtomicBool::new(false),
            healthy: AtomicBool::new(false),
            lister,
            inflight: Mutex::new(HashMap::new()),
            fallback_lists: AtomicU64::new(0),
        });
        info!(namespace, label_key, "watching pods for identity");
        let watch = tokio::spawn(watch_pods(inner.clone(), api));
        let probe = tokio::spawn(probe_health(inner.clone()));
        Self {
            inner,
            tasks: vec![watch, probe],
        }
    }

    /// Whether the first full LIST has been indexed.
    pub fn synced(&self) -> bool {
        self.inner.synced.load(Ordering::SeqCst)
    }

    /// Number of fallback LISTs issued so far (tests use it to prove a cache hit issued none).
    pub fn fallback_lists(&self) -> u64 {
        self.inner.fallback_lists.load(Ordering::SeqCst)
    }

    /// The id the cache holds for `ip`, without any API call.
    pub fn cached(&self, ip: IpAddr) -> Option<String> {
        self.inner
            .index
            .read()
            .expect("index lock")
            .get(ip)
            .map(str::to_string)
    }

    /// The fallback lookup on its own: LISTs by `status.podIP` until the pod shows up or the budget
    /// is spent. At most one runs per IP; concurrent callers share it, and it stops when all of them
    /// have gone away.
    pub async fn lookup(&self, ip: IpAddr) -> Option<String> {
        let ip = canonical(ip);
        let shared = {
            let mut inflight = self.inner.inflight.lock().expect("inflight lock");
            inflight
                .entry(ip)
                .or_insert_with(|| {
                    let inner = self.inner.clone();
                    async move {
                        let r = inner.clone().lookup_remote(ip).await;
                        inner.inflight.lock().expect("inflight lock").remove(&ip);
                        r
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        shared.await
    }
}

impl Inner {
    fn cached(&self, ip: IpAddr) -> Option<String> {
        self.index
            .read()
            .expect("index lock")
            .get(ip)
            .map(str::to_string)
    }

    async fn lookup_remote(self: Arc<Self>, ip: IpAddr) -> Option<String> {
        let deadline = tokio::time::Instant::now() + self.budget;
        loop {
            if let Some(id) = self.cached(ip) {
                return Some(id);
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            self.fallback_lists.fetch_add(1, Ordering::SeqCst);
            match tokio::time::timeout(remaining, self.lister.pods_with_ip(ip)).await {
                Err(_) => break,
                Ok(Err(e)) => warn!(ip = %ip, error = %e, "pod lookup failed"),
                Ok(Ok(pods)) => {
                    let views: Vec<PodView> = pods
                        .iter()
                        .filter_map(|p| PodView::from_pod(p, &self.label_key))
                        .collect();
                    let mut index = self.index.write().expect("index lock");
                    for v in views {
                        if v.live && v.ips.contains(&ip) {
                            if v.id.is_none() {
                                debug!(ip = %ip, pod = %v.name, "pod label value is empty or not a valid id");
                            }
                            index.apply(v);
                        }
                    }
                    if let Some(id) = index.get(ip) {
                        info!(ip = %ip, id, "API fallback resolved pod");
                        return Some(id.to_string());
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining <= FALLBACK_RETRY {
                break;
            }
            tokio::time::sleep(FALLBACK_RETRY).await;
        }
        debug!(ip = %ip, "no labelled pod for this address");
        None
    }
}

/// Keeps the index in step with the API server. A restarted watch replaces the index in one step
/// when its LIST is complete, so pods deleted during an outage disappear then.
async fn watch_pods(inner: Arc<Inner>, api: Api<Pod>) {
    let cfg = watcher::Config::default().labels(&inner.label_key);
    // After an error the stream waits out the backoff before it restarts the watch, and resets
    // the backoff on the next event.
    let mut stream = watcher::watcher(api, cfg)
        .backoff(WatchBackoff::default())
        .boxed();
    let mut buffer: Option<PodIndex> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                inner.healthy.store(true, Ordering::SeqCst);
                match event {
                    Event::Init => buffer = Some(PodIndex::default()),
                    Event::InitApply(pod) => {
                        if let Some(v) = PodView::from_pod(&pod, &inner.label_key) {
                            buffer.get_or_insert_with(PodIndex::default).apply(v);
                        }
                    }
                    Event::InitDone => {
                        let fresh = buffer.take().unwrap_or_default();
                        let n = fresh.len();
                        *inner.index.write().expect("index lock") = fresh;
                        if !inner.synced.swap(true, Ordering::SeqCst) {
                            info!(addresses = n, "pod cache synced");
                        } else {
                            debug!(addresses = n, "pod cache re-listed");
                        }
                    }
                    Event::Apply(pod) => {
                        if let Some(v) = PodView::from_pod(&pod, &inner.label_key) {
                            inner.index.write().expect("index lock").apply(v);
                        }
                    }
                    Event::Delete(pod) => {
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            inner.index.write().expect("index lock").remove(uid);
                        }
                    }
                }
            }
            Err(e) => {
                if inner.healthy.swap(false, Ordering::SeqCst) {
                    warn!(error = %e, "pod watch failed; serving the last known pods");
                } else {
                    debug!(error = %e, "pod watch still failing");
                }
            }
        }
    }
}

/// Watch restarts back off exponentially from `WATCH_BACKOFF_MIN` to `WATCH_BACKOFF_MAX`, without
/// end and without jitter. kube-runtime's `default_backoff` starts at 800 ms and grows to 30 s, too
/// slow for a proxy whose identity depends on the watch; kube-runtime's own exponential type cannot
/// be built with other bounds, so this adapts backon's (which it wraps) to kube's `Backoff` trait.
struct WatchBackoff(backon::ExponentialBackoff);

impl Default for WatchBackoff {
    fn default() -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(WATCH_BACKOFF_MIN)
            .with_max_delay(WATCH_BACKOFF_MAX)
            .without_max_times();
        Self(builder.build())
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A resumed watch emits nothing until something changes, so recovery is noticed by probing.
async fn probe_health(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        if inner.synced.load(Ordering::SeqCst)
            && !inner.healthy.load(Ordering::SeqCst)
            && inner.lister.probe().await.is_ok()
        {
            info!("API server reachable again");
            inner.healthy.store(true, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Identity for PodIdentity {
    async fn identify(&self, peer: IpAddr, _headers: &HeaderMap) -> Verdict {
        let ip = canonical(peer);
        if let Some(id) = self.inner.cached(ip) {
            return Verdict::Known {
                id,
                strip: vec![],
                tenant: None,
            };
        }
        match self.lookup(ip).await {
            Some(id) => Verdict::Known {
                id,
                strip: vec![],
                tenant: None,
            },
            None => Verdict::Unknown,
        }
    }

    /// Ready once the cache has synced, and not while the API server is unreachable (the cache then
    /// still answers, but may be stale).
    fn ready(&self) -> bool {
        self.inner.synced.load(Ordering::SeqCst) && self.inner.healthy.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(uid: &str, id: Option<&str>, ips: &[&str], live: bool) -> PodView {
        PodView {
            uid: uid.into(),
            name: format!("pod-{uid}"),
            id: id.map(String::from),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            live,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn watch_restarts_back_off_from_200ms_to_5s_and_start_over_after_an_event() {
        let mut b = WatchBackoff::default();
        let ms: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(WATCH_BACKOFF_MIN));
    }

    #[test]
    fn indexes_every_address_of_a_live_labelled_pod() {
        let mut ix = PodIndex::default();
        ix.apply(view("a", Some("alice"), &["10.0.0.1", "fd00::1"], true));
        assert_eq!(ix.get(ip("10.0.0.1")), Some("alice"));
        assert_eq!(ix.get(ip("fd00::1")), Some("alice"));
        assert_eq!(ix.get(ip("::ffff:10.0.0.1")), Some("alice"));
        assert_eq!(ix.get(ip("10.0.0.2")), None);
    }

    #[test]
    fn finished_deleting_unlabelled_and_addressless_pods_are_not_routable() {
        let mut ix = PodIndex::default();
        ix.apply(view("a", Some("alice"), &["10.0.0.1"], true));
        ix.apply(view("a", Some("alice"), &["10.0.0.1"], false));
        assert_eq!(ix.get(ip("10.0.0.1")), None);
        ix.apply(view("b", None, &["10.0.0.2"], true));
        assert_eq!(ix.get(ip("10.0.0.2")), None);
        ix.apply(view("c", Some("carol"), &[], true));
        assert!(ix.is_empty());
    }

    #[test]
    fn a_reused_address_belongs_to_the_new_pod_and_survives_the_old_delete() {
        let mut ix = PodIndex::default();
        ix.apply(view("old", Some("alice"), &["10.0.0.1"], true));
        ix.apply(view("new", Some("bob"), &["10.0.0.1"], true));
        assert_eq!(ix.get(ip("10.0.0.1")), Some("bob"));
        ix.remove("old");
        assert_eq!(ix.get(ip("10.0.0.1")), Some("bob"));
        // An update of the old pod (say it finishes) does not take the address back either.
        ix.apply(view("old", Some("alice"), &["10.0.0.1"], false));
        assert_eq!(ix.get(ip("10.0.0.1")), Some("bob"));
        ix.remove("new");
        assert_eq!(ix.get(ip("10.0.0.1")), None);
    }

    #[test]
    fn label_changes_and_address_changes_replace_old_entries() {
        let mut ix = PodIndex::default();
        ix.apply(view("a", Some("alice"), &["10.0.0.1"], true));
        ix.apply(view("a", Some("alicia"), &["10.0.0.3"], true));
        assert_eq!(ix.get(ip("10.0.0.1")), None);
        assert_eq!(ix.get(ip("10.0.0.3")), Some("alicia"));
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn pod_view_reads_status_and_phase() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u1", "labels": {"playwright-id": " alice "}},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}
        }))
        .unwrap();
        let v = PodView::from_pod(&pod, "playwright-id").unwrap();
        assert_eq!(v.id.as_deref(), Some("alice"));
        assert_eq!(v.ips, vec![ip("10.0.0.1"), ip("fd00::1")]);
        assert!(v.live);

        let done: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u2", "labels": {"playwright-id": ""}},
            "status": {"phase": "Succeeded", "podIP": "10.0.0.2"}
        }))
        .unwrap();
        let v = PodView::from_pod(&done, "playwright-id").unwrap();
        assert_eq!(v.id, None);
        assert!(!v.live);

        let deleting: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u3", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIP": "10.0.0.3"}
        }))
        .unwrap();
        assert!(!PodView::from_pod(&deleting, "playwright-id").unwrap().live);
    }
}
