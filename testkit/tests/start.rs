//! The kit's own failure paths, with `/bin/sh` standing where the proxy would: a program that
//! exits during start-up, and one that never answers; both errors carry the log tail, and the
//! process is gone afterwards.

use std::time::Duration;

use sandcanary_testkit::{Error, ProxyBuilder};

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

#[test]
fn an_exit_during_start_up_shows_the_log_tail() {
    let err = ProxyBuilder::new("/bin/sh")
        .label("early-exit")
        .args([
            "-c",
            "echo \"LISTEN_ADDR=$LISTEN_ADDR\" >&2; echo 'BAD: nope' >&2; exit 3",
        ])
        .start()
        .err()
        .expect("start fails");
    let msg = err.to_string();
    assert!(matches!(err, Error::Exited { .. }), "{msg}");
    assert!(msg.contains("early-exit exited during start-up"), "{msg}");
    assert!(msg.contains("BAD: nope"), "{msg}");
    assert!(msg.contains("LISTEN_ADDR=127.0.0.1:"), "{msg}");
}

#[test]
fn a_timeout_shows_the_log_tail_and_the_process_is_reaped() {
    let err = ProxyBuilder::new("/bin/sh")
        .label("silent")
        .args(["-c", "echo \"pid $$\" >&2; exec sleep 30"])
        .ready_timeout(Duration::from_secs(1))
        .stop_grace(Duration::from_secs(2))
        .start()
        .err()
        .expect("start fails");
    let msg = err.to_string();
    assert!(matches!(err, Error::NotReady { .. }), "{msg}");
    assert!(
        msg.contains("/healthz did not answer 200 within 1s"),
        "{msg}"
    );
    let pid = msg
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .expect("the tail has the pid line");
    assert!(!alive(pid), "process {pid} still running");
}
