//! End to end with the official clients: Playwright's `chromium.connect` and the MCP SDK, through the
//! proxy, to real Chromium sandboxes on the local backend. Each "pod" is a loopback source address.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sandcanary_proxy::backend::local::process_tree;
use sandcanary_proxy::config::{RawConfig, RawIdentity, RawLocal};
use sandcanary_proxy::server::{Running, start};
use support::{NodeResult, run_node};

async fn start_proxy(raw: RawConfig) -> Running {
    support::init_tracing();
    // One directory per proxy: the tests run in parallel in one process, and each local backend
    // numbers its sandbox directories from 1.
    static PROXIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROXIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!("sandcanary-e2e-{}-{n}", std::process::id()));
    start(support::config(RawConfig {
        ensure_timeout: Some("150s".into()),
        local: RawLocal {
            local_tmp_dir: Some(tmp.to_string_lossy().into()),
            local_start_timeout: Some("120s".into()),
            ..raw.local
        },
        ..raw
    }))
    .await
    .unwrap()
}

fn check_page(r: &NodeResult) {
    assert_eq!(r.code, 0, "client failed: {}", r.stderr);
    let v = r.result.as_ref().expect("a RESULT line");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["title"], "sandcanary fixture", "{v}");
}

/// Sandbox instance per id, from the session API's view.
fn instances(p: &Running) -> HashMap<String, String> {
    p.sessions
        .list()
        .into_iter()
        .filter_map(|s| Some((s.id, s.sandbox?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_pods_get_their_own_sticky_sandboxes() {
    let fixture = support::fixture_server().await;
    let p = start_proxy(RawConfig {
        local: RawLocal {
            local_warm_pool: Some("2".into()),
            local_max_sandboxes: Some("10".into()),
            ..support::raw_config().local
        },
        ..support::raw_config()
    })
    .await;
    let env = Arc::new(vec![
        ("PW_URL", format!("ws://{}/", p.data_addr)),
        ("PW_TARGET_URL", format!("http://{fixture}/")),
    ]);
    let round = |env: Arc<Vec<(&'static str, String)>>| async move {
        let tasks: Vec<_> = (2..=9)
            .map(|i| {
                let env = env.clone();
                tokio::spawn(
                    async move { run_node("client.js", &format!("127.0.0.{i}"), &env).await },
                )
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    };
    for r in round(env.clone()).await {
        check_page(&r);
    }
    let first = instances(&p);
    assert_eq!(first.len(), 8, "{first:?}");
    let distinct: HashSet<&String> = first.values().collect();
    assert_eq!(
        distinct.len(),
        8,
        "every pod has its own sandbox: {first:?}"
    );

    // Sticky: the same pods again reach the same sandboxes.
    for r in round(env.clone()).await {
        check_page(&r);
    }
    assert_eq!(instances(&p), first);

    // A sandbox killed mid-session: the next request of that pod recovers on a fresh sandbox.
    let victim = p.sessions.info("tenant-5").unwrap();
    let pid: i32 = victim
        .sandbox
        .as_ref()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for q in process_tree(pid) {
        unsafe { libc::kill(q, libc::SIGKILL) };
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = run_node("client.js", "127.0.0.5", &env).await;
    check_page(&r);
    let after = instances(&p);
    assert_ne!(after["tenant-5"], first["tenant-5"]);
    assert_eq!(after["tenant-4"], first["tenant-4"]);

    // An unknown pod is refused quickly.
    let r = run_node("client.js", "127.0.0.20", &env).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    p.shutdown();
    p.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_identity_lets_one_address_name_several_sandboxes() {
    let fixture = support::fixture_server().await;
    let p = start_proxy(RawConfig {
        identity: RawIdentity {
            identity: Some("token".into()),
            identity_static: None,
            identity_token: Some(support::IDENTITY_TOKEN.into()),
            ..support::raw_config().identity
        },
        local: RawLocal {
            local_warm_pool: Some("1".into()),
            ..support::raw_config().local
        },
        ..support::raw_config()
    })
    .await;
    for id in ["bench-a", "bench-b", "bench-a"] {
        let headers = serde_json::json!({
            "Authorization": format!("Bearer {}", support::IDENTITY_TOKEN),
            "X-Sandbox-Id": id,
        });
        let r = run_node(
            "client.js",
            "127.0.0.1",
            &[
                ("PW_URL", format!("ws://{}/", p.data_addr)),
                ("PW_TARGET_URL", format!("http://{fixture}/")),
                ("PW_HEADERS", headers.to_string()),
            ],
        )
        .await;
        check_page(&r);
    }
    let inst = instances(&p);
    assert_eq!(inst.len(), 2);
    assert_ne!(inst["bench-a"], inst["bench-b"]);
    // Without the token the same address is nobody.
    let r = run_node(
        "client.js",
        "127.0.0.1",
        &[
            ("PW_URL", format!("ws://{}/", p.data_addr)),
            ("PW_TARGET_URL", format!("http://{fixture}/")),
        ],
    )
    .await;
    assert_eq!(r.code, 2);
    p.shutdown();
    p.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_and_a_websocket_client_share_the_pool() {
    let fixture = support::fixture_server().await;
    let p = start_proxy(RawConfig {
        local: RawLocal {
            local_mcp: Some("true".into()),
            local_warm_pool: Some("2".into()),
            ..support::raw_config().local
        },
        ..support::raw_config()
    })
    .await;
    let mcp = tokio::spawn({
        let env = vec![
            ("MCP_URL", format!("http://{}/mcp", p.data_addr)),
            ("PW_TARGET_URL", format!("http://{fixture}/")),
        ];
        async move { run_node("mcp-client.js", "127.0.0.2", &env).await }
    });
    let ws = tokio::spawn({
        let env = vec![
            ("PW_URL", format!("ws://{}/", p.data_addr)),
            ("PW_TARGET_URL", format!("http://{fixture}/")),
        ];
        async move { run_node("client.js", "127.0.0.3", &env).await }
    });
    let (mcp, ws) = (mcp.await.unwrap(), ws.await.unwrap());
    check_page(&ws);
    assert_eq!(mcp.code, 0, "mcp client failed: {}", mcp.stderr);
    let v = mcp.result.unwrap();
    assert!(
        v["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    assert!(v["tool_count"].as_u64().unwrap() > 5, "{v}");
    assert!(
        v["navigated_text"]
            .as_str()
            .unwrap()
            .contains("sandcanary fixture"),
        "{v}"
    );
    let inst = instances(&p);
    assert_eq!(inst.len(), 2);
    assert_ne!(inst["tenant-2"], inst["tenant-3"]);
    p.shutdown();
    p.wait().await;
}
