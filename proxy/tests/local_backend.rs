//! The local backend with real Chromium sandboxes: warm pool, capacity, delete, suspend/resume,
//! crash recovery and clean shutdown.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use sandcanary_proxy::backend::local::LocalSettings;
use sandcanary_proxy::backend::local::{LocalBackend, process_tree};
use sandcanary_proxy::backend::{Backend, BackendError};

fn local(dir: &std::path::Path, warm: usize, max: usize, mcp: bool) -> LocalBackend {
    support::init_tracing();
    LocalBackend::new(LocalSettings {
        sandbox_server: support::sandbox_server().into(),
        node: "node".into(),
        chromium: "/usr/bin/chromium".into(),
        chromium_args: vec![],
        warm_pool: warm,
        max_sandboxes: max,
        mcp,
        bind: "127.0.0.1".parse().unwrap(),
        tmp_dir: dir.to_path_buf(),
        start_timeout: Duration::from_secs(90),
    })
}

fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim().chars().next()
}

fn alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| state(*p).is_some_and(|s| s != 'Z'))
        .collect()
}

async fn wait_until(what: &str, budget: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + budget;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_pool_cold_start_delete_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let b = local(dir.path(), 1, 3, false);
    assert!(b.wait_warm(1, Duration::from_secs(90)).await, "pool filled");

    let first = b.ensure("alice").await.unwrap();
    let sb = b.sandbox("alice").unwrap();
    let tree = process_tree(sb.pid);
    assert!(tree.len() >= 3, "node, chromium and its helpers: {tree:?}");
    // Binding was instant; the pool refills in the background.
    assert!(
        b.wait_warm(1, Duration::from_secs(90)).await,
        "pool refilled"
    );
    assert_eq!(
        b.ensure("alice").await.unwrap(),
        first,
        "a second ensure reuses the sandbox"
    );

    let bob = b.ensure("bob").await.unwrap();
    assert_ne!(bob.instance, first.instance);
    let ids: HashSet<String> = b.list().await.unwrap().into_iter().collect();
    assert_eq!(ids, HashSet::from(["alice".to_string(), "bob".to_string()]));

    // Delete stops the whole tree and removes the sandbox's directory.
    let sandbox_dir = sb.dir().to_path_buf();
    assert!(sandbox_dir.exists());
    b.delete("alice").await.unwrap();
    assert!(alive(&tree).is_empty(), "left running: {:?}", alive(&tree));
    assert!(!sandbox_dir.exists());
    b.delete("alice")
        .await
        .expect("deleting an unknown id is fine");
    let again = b.ensure("alice").await.unwrap();
    assert_ne!(again.instance, first.instance, "a new sandbox after delete");

    // Shutdown stops everything, pool included, and leaves no directories.
    let all: Vec<i32> = ["alice", "bob"]
        .iter()
        .flat_map(|id| process_tree(b.sandbox(id).unwrap().pid))
        .collect();
    b.shutdown().await;
    assert!(
        alive(&all).is_empty(),
        "left running after shutdown: {:?}",
        alive(&all)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "directories left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_suspend_resume_and_crash_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let b = local(dir.path(), 0, 1, false);
    let ep = b.ensure("alice").await.unwrap();
    match b.ensure("bob").await {
        Err(BackendError::Capacity(msg)) => assert!(msg.contains("LOCAL_MAX_SANDBOXES=1"), "{msg}"),
        other => panic!("expected a capacity error, got {other:?}"),
    }

    let sb = b.sandbox("alice").unwrap();
    let tree = process_tree(sb.pid);
    b.suspend("alice").await.unwrap();
    wait_until("every process stopped", Duration::from_secs(10), || {
        tree.iter()
            .all(|p| matches!(state(*p), Some('T') | Some('t') | None))
    })
    .await;
    // A stopped sandbox still accepts TCP (the kernel answers), but nothing is served until resumed.
    b.resume("alice").await.unwrap();
    wait_until(
        "every process running again",
        Duration::from_secs(10),
        || {
            tree.iter()
                .all(|p| !matches!(state(*p), Some('T') | Some('t')))
        },
    )
    .await;
    assert!(b.suspend("nobody").await.is_err());

    // A sandbox that dies is replaced by the next ensure.
    for p in &tree {
        unsafe { libc::kill(*p, libc::SIGKILL) };
    }
    wait_until("sandbox noticed dead", Duration::from_secs(10), || {
        !sb.alive()
    })
    .await;
    let replaced = b.ensure("alice").await.unwrap();
    assert_ne!(replaced.instance, ep.instance);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_can_serve_mcp_beside_playwright() {
    let dir = tempfile::tempdir().unwrap();
    let b = local(dir.path(), 0, 1, true);
    let ep = b.ensure("alice").await.unwrap();
    let mcp = ep.mcp.clone().expect("an MCP port");
    assert_ne!(mcp.port, ep.ws.port);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect((mcp.host.as_str(), mcp.port))
        .await
        .unwrap();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {mcp}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("mcp-session-id"),
        "{text}"
    );
    b.shutdown().await;
}
