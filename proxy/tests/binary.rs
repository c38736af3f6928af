//! The real binary: configuration errors stop it before it listens, and SIGTERM stops it cleanly
//! with no sandbox process left behind.

mod support;

use std::time::{Duration, Instant};

use sandcanary_testkit::ProxyBuilder;

fn proxy() -> ProxyBuilder {
    ProxyBuilder::new(env!("CARGO_BIN_EXE_sandcanary-proxy"))
}

fn run_with(env: &[(&str, &str)]) -> std::process::Output {
    proxy()
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn invalid_configuration_exits_1_naming_the_variable() {
    let server = support::sandbox_server();
    let base = [
        ("IDENTITY_STATIC", "127.0.0.2=a"),
        ("LOCAL_SANDBOX_SERVER", server.as_str()),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ];
    for (var, value, needle) in [
        (
            "IDLE_CHECK_INTERVAL",
            "0s",
            "IDLE_CHECK_INTERVAL: must be greater than zero",
        ),
        ("IDLE_TTL", "-1m", "IDLE_TTL: negative duration"),
        (
            "SANDBOX_PORT",
            "99999",
            "SANDBOX_PORT: 99999 out of range 1..65535",
        ),
        ("BACKEND", "nope", "BACKEND: unknown BACKEND \"nope\""),
        ("ENSURE_TIMEOUT", "forever", "ENSURE_TIMEOUT:"),
        (
            "LEADER_ELECTION",
            "true",
            "LEADER_ELECTION: the local backend's sandboxes",
        ),
        (
            "LEADER_ELECTION",
            "sometimes",
            "LEADER_ELECTION: \"sometimes\"",
        ),
    ] {
        let mut env = base.to_vec();
        env.push((var, value));
        let out = run_with(&env);
        assert_eq!(out.status.code(), Some(1), "{var}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{var}={value}: {err}");
        assert!(out.stdout.is_empty());
    }
    // Flags work like the variables and win over them.
    let out = proxy()
        .env("IDENTITY_STATIC", "127.0.0.2=a")
        .env("LOCAL_SANDBOX_SERVER", &server)
        .args(["--idle-ttl", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IDLE_TTL: must be greater than zero"));
}

#[test]
fn a_port_in_use_is_reported_with_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let server = support::sandbox_server();
    let out = run_with(&[
        ("IDENTITY_STATIC", "127.0.0.2=a"),
        ("LOCAL_SANDBOX_SERVER", &server),
        ("LOCAL_WARM_POOL", "0"),
        ("LISTEN_ADDR", &addr),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "text"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LISTEN_ADDR: cannot listen on"));
}

fn descendants(pid: u32) -> Vec<i32> {
    sandcanary_proxy::backend::local::process_tree(pid as i32)
        .into_iter()
        .skip(1)
        .collect()
}

#[test]
fn sigterm_stops_the_proxy_and_every_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut child = proxy()
        .env("IDENTITY_STATIC", "127.0.0.2=a")
        .env("LOCAL_SANDBOX_SERVER", support::sandbox_server())
        .env("LOCAL_WARM_POOL", "2")
        .env("LOCAL_TMP_DIR", tmp.path())
        .env("LOG_FORMAT", "json")
        .ready_timeout(Duration::from_secs(120))
        .start()
        .expect("proxy did not start");
    // Then wait for the pool to fill (two sandbox trees).
    while Instant::now() < deadline {
        if descendants(child.pid()).len() >= 6
            && std::fs::read_dir(tmp.path()).unwrap().count() == 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let before = descendants(child.pid());
    assert!(
        before.len() >= 6,
        "two sandboxes should be running: {before:?}"
    );
    let status = child.terminate(Duration::from_secs(60)).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    std::thread::sleep(Duration::from_millis(300));
    let logs = child.log_tail(usize::MAX);
    assert!(
        logs.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("log lines are JSON"))
            .any(|v| v["message"] == "listening"),
        "proxy did not start: {logs}"
    );
    let left: Vec<i32> = before
        .iter()
        .copied()
        .filter(|p| {
            // A zombie waiting for init to reap it is gone for our purposes.
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().to_string()))
                .is_some_and(|r| !r.starts_with('Z'))
        })
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(dirs.is_empty(), "sandbox directories left behind: {dirs:?}");
}

/// Run from inside the checkout with no LOCAL_SANDBOX_SERVER, as the README shows: the default is
/// found from the working directory and resolved once, so the warm-pool sandbox (which starts in its
/// own directory) really runs; outside a checkout the proxy stops at start naming the variable.
#[test]
fn the_default_sandbox_server_is_found_from_the_working_directory() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let mut child = proxy()
        .current_dir(repo) // proxy/, a subdirectory of the checkout
        .env_remove("LOCAL_SANDBOX_SERVER")
        .env("IDENTITY_STATIC", "127.0.0.2=a")
        .env("LOCAL_WARM_POOL", "1")
        .env("LOCAL_TMP_DIR", tmp.path())
        .start()
        .unwrap();
    // A started sandbox is node, Chromium and Chromium's helpers; a server.js that node cannot find
    // leaves at most node for a moment.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && descendants(child.pid()).len() < 3 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let running = descendants(child.pid()).len();
    let status = child.terminate(Duration::from_secs(60)).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(
        running >= 3,
        "the warm-pool sandbox did not start ({running} processes)"
    );

    let out = proxy()
        .current_dir(tmp.path())
        .env_clear()
        .env("IDENTITY_STATIC", "127.0.0.2=a")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LOCAL_SANDBOX_SERVER: not set, and")
            && err.contains("set LOCAL_SANDBOX_SERVER"),
        "{err}"
    );
}
