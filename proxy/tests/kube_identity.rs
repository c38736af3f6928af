//! The `pods` identity source against a real kube-apiserver: client pods are API objects
//! whose status (phase, IPs) the test writes, as a kubelet would.

mod kube_support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use sandcanary_proxy::identity::pods::{KubePods, PodLister};
use sandcanary_proxy::identity::{Identity, PodIdentity, Verdict};
use serde_json::json;

use kube_support::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn synced(client: &kube::Client, ns: &str, key: &str, budget: Duration) -> PodIdentity {
    let ident = PodIdentity::start(client.clone(), ns, key, budget);
    eventually(Duration::from_secs(30), "initial pod sync", || {
        let r = ident.ready();
        async move { r }
    })
    .await;
    ident
}

async fn wait_cached(ident: &PodIdentity, addr: &str, want: Option<&str>) {
    let what = format!("{addr} cached as {want:?}");
    eventually(Duration::from_secs(15), &what, || {
        let got = ident.cached(ip(addr));
        async move { got.as_deref() == want }
    })
    .await;
}

fn known(id: &str) -> Verdict {
    Verdict::Known {
        id: id.into(),
        strip: vec![],
        tenant: None,
    }
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn labelled_pods_are_identified_from_the_cache_and_others_get_a_fast_unknown() {
    let client = client().await;
    let ns = namespace(&client, "kp-ident").await;
    let other_ns = namespace(&client, "kp-other").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let others: Api<Pod> = Api::namespaced(client.clone(), &other_ns);

    // A pod that exists before the watch starts is in the initial LIST.
    pod(
        &pods,
        "early",
        json!({"playwright-id": "early"}),
        Some("127.0.0.20"),
        false,
    )
    .await;
    let budget = Duration::from_millis(800);
    let ident = synced(&client, &ns, "playwright-id", budget).await;
    assert_eq!(ident.cached(ip("127.0.0.20")).as_deref(), Some("early"));

    pod(
        &pods,
        "alice",
        json!({"playwright-id": "alice"}),
        Some("127.0.0.21"),
        false,
    )
    .await;
    pod(
        &pods,
        "empty",
        json!({"playwright-id": ""}),
        Some("127.0.0.22"),
        false,
    )
    .await;
    pod(
        &pods,
        "nolabel",
        json!({"app": "x"}),
        Some("127.0.0.23"),
        false,
    )
    .await;
    pod(
        &others,
        "elsewhere",
        json!({"playwright-id": "mallory"}),
        Some("127.0.0.24"),
        false,
    )
    .await;
    wait_cached(&ident, "127.0.0.21", Some("alice")).await;

    // A cache hit issues no API call.
    let before = ident.fallback_lists();
    assert_eq!(
        ident.identify(ip("127.0.0.21"), &HeaderMap::new()).await,
        known("alice")
    );
    assert_eq!(
        ident
            .identify(ip("::ffff:127.0.0.21"), &HeaderMap::new())
            .await,
        known("alice")
    );
    assert_eq!(ident.fallback_lists(), before);

    // Unknown address, empty label, no label, other namespace: unknown, within the budget.
    for addr in ["127.0.0.29", "127.0.0.22", "127.0.0.23", "127.0.0.24"] {
        let t = Instant::now();
        assert_eq!(
            ident.identify(ip(addr), &HeaderMap::new()).await,
            Verdict::Unknown,
            "{addr}"
        );
        let took = t.elapsed();
        assert!(
            took < budget + Duration::from_secs(2),
            "{addr}: unknown took {took:?}"
        );
    }

    // Forwarding headers do not choose the identity.
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", "127.0.0.21".parse().unwrap());
    h.insert("forwarded", "for=127.0.0.21".parse().unwrap());
    assert_eq!(ident.identify(ip("127.0.0.29"), &h).await, Verdict::Unknown);
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn the_fallback_finds_a_pod_whose_address_appears_late_and_is_single_flight() {
    let client = client().await;
    let ns = namespace(&client, "kp-fallback").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // The LIST the fallback issues finds a pod by its primary IP, with the label as a selector.
    pod(
        &pods,
        "listed",
        json!({"playwright-id": "listed"}),
        Some("127.0.0.30"),
        false,
    )
    .await;
    pod(
        &pods,
        "unlisted",
        json!({"app": "x"}),
        Some("127.0.0.31"),
        false,
    )
    .await;
    let lister = KubePods::new(pods.clone(), "playwright-id");
    let found = lister.pods_with_ip(ip("127.0.0.30")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].metadata.name.as_deref(), Some("listed"));
    assert!(
        lister
            .pods_with_ip(ip("127.0.0.31"))
            .await
            .unwrap()
            .is_empty()
    );

    let ident = Arc::new(synced(&client, &ns, "playwright-id", Duration::from_secs(6)).await);

    // The request arrives before the pod has its IP; the IP is written 1.5 s later.
    pod(&pods, "late", json!({"playwright-id": "late"}), None, false).await;
    let writer = {
        let pods = pods.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            set_pod_status(&pods, "late", "Running", Some("127.0.0.32")).await;
        })
    };
    let t = Instant::now();
    let lists_before = ident.fallback_lists();
    assert_eq!(
        ident.identify(ip("127.0.0.32"), &HeaderMap::new()).await,
        known("late")
    );
    assert!(t.elapsed() >= Duration::from_millis(1400));
    assert!(t.elapsed() < Duration::from_secs(6));
    assert!(
        ident.fallback_lists() > lists_before,
        "the miss went to the API"
    );
    writer.await.unwrap();
    // Cached now: the next request issues no LIST.
    let lists = ident.fallback_lists();
    assert_eq!(
        ident.identify(ip("127.0.0.32"), &HeaderMap::new()).await,
        known("late")
    );
    assert_eq!(ident.fallback_lists(), lists);

    // Twenty concurrent requests from one unknown address share one lookup.
    let short = Arc::new(synced(&client, &ns, "playwright-id", Duration::from_secs(1)).await);
    let lists = short.fallback_lists();
    let t = Instant::now();
    let verdicts = futures::future::join_all((0..20).map(|_| {
        let short = short.clone();
        async move { short.identify(ip("127.0.0.39"), &HeaderMap::new()).await }
    }))
    .await;
    assert!(verdicts.iter().all(|v| *v == Verdict::Unknown));
    let issued = short.fallback_lists() - lists;
    // One lookup retries every 250 ms within its 1 s budget: at most 4 LISTs, not 20 x 4.
    assert!((1..=5).contains(&issued), "{issued} LISTs for one address");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn finished_and_deleting_pods_are_not_routable_and_reused_addresses_follow_the_new_pod() {
    let client = client().await;
    let ns = namespace(&client, "kp-reuse").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ident = synced(&client, &ns, "playwright-id", Duration::from_millis(500)).await;

    // A finished pod loses its address at once, before the object is deleted.
    pod(
        &pods,
        "old",
        json!({"playwright-id": "alice"}),
        Some("127.0.0.40"),
        true,
    )
    .await;
    wait_cached(&ident, "127.0.0.40", Some("alice")).await;
    set_pod_status(&pods, "old", "Succeeded", Some("127.0.0.40")).await;
    wait_cached(&ident, "127.0.0.40", None).await;
    assert_eq!(
        ident.identify(ip("127.0.0.40"), &HeaderMap::new()).await,
        Verdict::Unknown
    );

    // The address is reused by a new pod: it maps to the new pod's id, never the old one.
    pod(
        &pods,
        "new",
        json!({"playwright-id": "bob"}),
        Some("127.0.0.40"),
        false,
    )
    .await;
    wait_cached(&ident, "127.0.0.40", Some("bob")).await;

    // The old pod's deletion does not remove the new mapping.
    remove_pod(&pods, "old").await;
    eventually(Duration::from_secs(15), "old pod gone", || {
        let pods = pods.clone();
        async move { pods.get_opt("old").await.unwrap().is_none() }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ident.cached(ip("127.0.0.40")).as_deref(), Some("bob"));

    // A pod being deleted (deletionTimestamp set, a kubelet would finish it) is not routable.
    pod(
        &pods,
        "leaving",
        json!({"playwright-id": "carol"}),
        Some("127.0.0.41"),
        true,
    )
    .await;
    wait_cached(&ident, "127.0.0.41", Some("carol")).await;
    pods.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    let marked = pods.get("leaving").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    wait_cached(&ident, "127.0.0.41", None).await;

    // Deleting a pod outright makes its address unknown.
    remove_pod(&pods, "new").await;
    wait_cached(&ident, "127.0.0.40", None).await;
    assert_eq!(
        ident.identify(ip("127.0.0.40"), &HeaderMap::new()).await,
        Verdict::Unknown
    );
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn a_custom_label_key_selects_the_pods() {
    let client = client().await;
    let ns = namespace(&client, "kp-key").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ident = synced(&client, &ns, "example.com/pw", Duration::from_millis(500)).await;
    pod(
        &pods,
        "custom",
        json!({"example.com/pw": "dora"}),
        Some("127.0.0.50"),
        false,
    )
    .await;
    pod(
        &pods,
        "default",
        json!({"playwright-id": "eve"}),
        Some("127.0.0.51"),
        false,
    )
    .await;
    wait_cached(&ident, "127.0.0.50", Some("dora")).await;
    assert_eq!(
        ident.identify(ip("127.0.0.50"), &HeaderMap::new()).await,
        known("dora")
    );
    assert_eq!(
        ident.identify(ip("127.0.0.51"), &HeaderMap::new()).await,
        Verdict::Unknown
    );
}

#[tokio::test]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn not_ready_until_synced_with_a_reachable_api_server() {
    // An API server that does not answer: a port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut cfg = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    cfg.connect_timeout = Some(Duration::from_millis(300));
    let unreachable = kube::Client::try_from(cfg).unwrap();
    let ident = PodIdentity::start(
        unreachable,
        "nowhere",
        "playwright-id",
        Duration::from_millis(300),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!ident.ready());
    assert!(!ident.synced());
    // Unknown, and quickly, even though the API server cannot be asked.
    let t = Instant::now();
    assert_eq!(
        ident.identify(ip("127.0.0.60"), &HeaderMap::new()).await,
        Verdict::Unknown
    );
    assert!(t.elapsed() < Duration::from_secs(2));

    let client = client().await;
    let ns = namespace(&client, "kp-ready").await;
    let ident = PodIdentity::start(client, &ns, "playwright-id", Duration::from_millis(300));
    eventually(Duration::from_secs(30), "sync", || {
        let r = ident.ready();
        async move { r }
    })
    .await;
    assert!(ident.synced());
}
