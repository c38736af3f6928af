//! Fair admission on a cluster backend (issue #14 part 1): BACKEND=sandboxclaim against the real
//! kube-apiserver, MAX_SANDBOXES=2, three tenants (token identity from three source addresses), one
//! opening ten sandboxes. The test plays the agent-sandbox controller: each new claim gets a
//! WebSocket echo "sandbox" on its own 127.0.100.x address and Ready status through `/status`.
//! The reaper deletes the claims, which frees the slots; at the end no claim is left.

mod admission_support;
mod kube_support;
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admission_support::{assert_fair, burst, wait_until};
use futures::{SinkExt, StreamExt};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use sandcanary_proxy::backend::sandbox_claim::api_resource;
use sandcanary_proxy::config::admission::RawAdmission;
use sandcanary_proxy::config::{RawConfig, RawIdentity, RawSandboxClaim};
use sandcanary_proxy::server;
use serde_json::json;

use kube_support::{client, eventually, install_crds, namespace};

/// A WebSocket echo server on `host:port` for as long as the task runs.
async fn echo_sandbox(host: String, port: u16) -> tokio::task::JoinHandle<()> {
    let l = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .unwrap_or_else(|e| panic!("bind {host}:{port}: {e}"));
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() || (m.is_text() && ws.send(m).await.is_err()) {
                        return;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the real API server: make test-kube-proxy"]
async fn sandboxclaim_three_tenants_capacity_two_are_served_in_turn() {
    support::init_tracing();
    install_crds();
    let client = client().await;
    let ns = namespace(&client, "kp-admission").await;
    let claims: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &api_resource());
    let port = {
        let l = std::net::TcpListener::bind("127.0.100.1:0").unwrap();
        l.local_addr().unwrap().port()
    };

    // The controller: a sandbox and Ready status for every new claim, in the order claims appear.
    let claimed: Arc<Mutex<Vec<String>>> = Arc::default();
    let ctl = {
        let (claims, claimed) = (claims.clone(), claimed.clone());
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut servers = Vec::new();
            loop {
                if let Ok(list) = claims.list(&ListParams::default()).await {
                    for c in list.items {
                        let name = c.metadata.name.clone().unwrap();
                        if !seen.insert(name.clone()) {
                            continue;
                        }
                        let id = c.metadata.labels.as_ref().unwrap()["playwright-id"].clone();
                        let host = format!("127.0.100.{}", seen.len());
                        servers.push(echo_sandbox(host.clone(), port).await);
                        claimed.lock().unwrap().push(id);
                        claims
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"status": {
                                    "conditions": [{"type": "Ready", "status": "True", "reason": "DependenciesReady",
                                        "message": "ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                                    "sandbox": {"name": format!("sb-{name}"), "podIPs": [host]}}})),
                            )
                            .await
                            .expect("write claim status");
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let p = server::start(support::config(RawConfig {
        listen_addr: Some("127.0.0.1:0".into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        backend: Some("sandboxclaim".into()),
        pod_namespace: Some(ns.clone()),
        sandbox_port: Some(port.to_string()),
        idle_ttl: Some("500ms".into()),
        idle_check_interval: Some("100ms".into()),
        log_format: Some("text".into()),
        admission: RawAdmission {
            max_sandboxes: Some("2".into()),
            admission_timeout: Some("60s".into()),
            ..Default::default()
        },
        sandbox_claim: RawSandboxClaim {
            warmpool_name: Some("playwright".into()),
            ..Default::default()
        },
        identity: RawIdentity {
            identity: Some("token".into()),
            identity_token: Some(support::IDENTITY_TOKEN.into()),
            ..Default::default()
        },
        ..Default::default()
    }))
    .await
    .expect("proxy starts");
    let a = p.admission.clone().expect("admission on");

    let served = burst(p.data_addr, a.clone(), true, Duration::from_secs(120)).await;
    assert_fair(&served);
    let claimed = claimed.lock().unwrap().clone();
    assert_eq!(claimed.len(), 12, "one claim per sandbox: {claimed:?}");
    let pos = |id: &str| claimed.iter().position(|c| c == id).unwrap();
    assert!(
        pos("b-0") <= 5 && pos("c-0") <= 5,
        "claims in turn: {claimed:?}"
    );

    // The reaper deleted every claim; nothing waits or holds a place.
    eventually(Duration::from_secs(30), "every claim deleted", || {
        let claims = claims.clone();
        async move {
            claims
                .list(&ListParams::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
        }
    })
    .await;
    wait_until("every session forgotten", Duration::from_secs(10), || {
        p.sessions.list().is_empty()
    })
    .await;
    assert_eq!(a.queued(), 0);
    assert_eq!(a.connections(), 0);
    let text = p.metrics.render();
    for line in [
        "sandcanary_admissions_total{path=\"queued\"} 10",
        "sandcanary_admission_queue_length 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    p.shutdown();
    p.wait().await;
    ctl.abort();
}
