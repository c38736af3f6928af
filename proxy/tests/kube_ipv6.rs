//! IPv6 callers against a real kube-apiserver: a dual-stack pod (status.podIPs holds an IPv4 address
//! and `::1`, the only IPv6 loopback address) is identified whichever family it connects over, through
//! the proxy's dual-stack wildcard listener (`[::]:port`, what the default `:9000` means), and its sandbox is at an IPv6
//! address too (bracketed authority upstream). The backend is scripted; identity, listener and the
//! forwarding are the real ones.

mod kube_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use sandcanary_proxy::config::{RawConfig, RawIdentity};
use sandcanary_proxy::identity::Chain;
use sandcanary_proxy::server;
use serde_json::json;

use kube_support::{client, eventually, namespace, pod};
use support::{Call, FakeBackend};

/// An HTTP server on [::1] that answers every request with "sandbox over IPv6".
async fn v6_sandbox() -> SocketAddr {
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req: hyper::Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from("sandbox over IPv6")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// One request from `source` to `to`; (status, body).
async fn get_from(source: &str, to: SocketAddr) -> (u16, String) {
    sandcanary_testkit::get_from(Some(source), to, "/", Duration::from_secs(20))
        .await
        .expect("response in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn a_dual_stack_pod_is_identified_over_ipv6_and_ipv4() {
    support::init_tracing();
    let client = client().await;
    let ns = namespace(&client, "kp-ipv6").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // Created without status; then a kubelet's dual-stack status: IPv4 first (status.podIP), ::1.
    pod(&pods, "dual", json!({"playwright-id": "dual"}), None, false).await;
    pods.patch_status(
        "dual",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running",
            "podIP": "127.0.0.71",
            "podIPs": [{"ip": "127.0.0.71"}, {"ip": "::1"}],
        }})),
    )
    .await
    .expect("the API server accepts a dual-stack pod status with ::1");

    let upstream = v6_sandbox().await;
    let backend = FakeBackend::new(support::endpoint(upstream, None, "v6"));
    let cfg = support::config(RawConfig {
        // The IPv6 wildcard, which `:port` (the default `:9000`) also means: both families.
        listen_addr: Some("[::]:0".into()),
        pod_namespace: Some(ns.clone()),
        identity: RawIdentity {
            identity: Some("pods".into()),
            identity_static: None,
            ..support::raw_config().identity
        },
        ..support::raw_config()
    });
    let identity = Arc::new(Chain::with_kube(&cfg, Some(client.clone())).unwrap());
    let running = server::start_with(cfg, backend.clone(), identity)
        .await
        .expect("proxy starts");
    assert!(
        running.data_addr.is_ipv6() && running.data_addr.ip().is_unspecified(),
        "{}",
        running.data_addr
    );
    let port = running.data_addr.port();
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    eventually(
        Duration::from_secs(30),
        "the pod cache to know ::1",
        || async { get_from("::1", v6).await.0 == 200 },
    )
    .await;
    let (status, body) = get_from("::1", v6).await;
    assert_eq!((status, body.as_str()), (200, "sandbox over IPv6"));
    // The same pod over IPv4, through the same dual-stack socket (an IPv4-mapped peer address).
    let (status, body) = get_from("127.0.0.71", v4).await;
    assert_eq!((status, body.as_str()), (200, "sandbox over IPv6"));
    assert!(
        backend
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Ensure(id) if id != "dual"))
    );
    assert_eq!(backend.count(|c| matches!(c, Call::Ensure(_))), 1);

    // Without ::1 in its status the pod no longer owns that address: IPv6 callers are unknown.
    pods.patch_status(
        "dual",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"podIPs": [{"ip": "127.0.0.71"}]}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "::1 forgotten", || async {
        get_from("::1", v6).await.0 == 403
    })
    .await;
    assert_eq!(get_from("127.0.0.71", v4).await.0, 200);

    running.shutdown();
    running.wait().await;
}
