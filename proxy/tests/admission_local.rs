//! Fair admission on the local backend with real Chromium sandboxes (issue #14 part 1): capacity 2
//! (LOCAL_MAX_SANDBOXES 3 beside a warm pool of 1), three tenants, one opening ten sandboxes; the
//! reaper frees the slots. Nothing is left behind: sessions, sandbox processes, sockets.

mod admission_support;
mod support;

use std::time::Duration;

use admission_support::{assert_fair, burst, open_fds, wait_until};
use sandcanary_proxy::backend::local::process_tree;
use sandcanary_proxy::config::{RawConfig, RawIdentity, RawLocal};
use sandcanary_proxy::server;

/// Live (not zombie) descendants of this test process.
fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    process_tree(me)
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().starts_with('Z')))
                == Some(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_on_two_chromium_sandboxes_are_served_in_turn_and_nothing_leaks() {
    support::init_tracing();
    let tmp = format!("/tmp/sc-adm-{}", std::process::id());
    let p = server::start(support::config(RawConfig {
        ensure_timeout: Some("150s".into()),
        idle_ttl: Some("1s".into()),
        idle_check_interval: Some("200ms".into()),
        admission: sandcanary_proxy::config::admission::RawAdmission {
            admission_timeout: Some("240s".into()),
            ..Default::default()
        },
        identity: RawIdentity {
            identity: Some("token".into()),
            identity_static: None,
            identity_token: Some(support::IDENTITY_TOKEN.into()),
            ..support::raw_config().identity
        },
        local: RawLocal {
            local_warm_pool: Some("1".into()),
            local_max_sandboxes: Some("3".into()),
            local_tmp_dir: Some(tmp.clone()),
            local_start_timeout: Some("120s".into()),
            ..support::raw_config().local
        },
        ..support::raw_config()
    }))
    .await
    .unwrap();
    let a = p.admission.clone().expect("admission on");
    assert_eq!(
        a.config().max_sandboxes,
        Some(2),
        "LOCAL_MAX_SANDBOXES - LOCAL_WARM_POOL"
    );
    let fds0 = open_fds();

    let served = burst(p.data_addr, a.clone(), false, Duration::from_secs(300)).await;
    assert_fair(&served);

    wait_until("every sandbox reaped", Duration::from_secs(60), || {
        p.sessions.list().is_empty()
            && p.metrics
                .render()
                .lines()
                .any(|l| l == "sandcanary_reaps_total{result=\"ok\"} 12")
    })
    .await;
    assert!(p.backend.list().await.unwrap().is_empty());
    assert_eq!(a.queued(), 0);
    assert_eq!(a.connections(), 0);
    let text = p.metrics.render();
    for line in [
        "sandcanary_admission_queue_length 0",
        "sandcanary_admissions_total{path=\"immediate\"} 2",
        "sandcanary_admissions_total{path=\"queued\"} 10",
        "sandcanary_ensures_total{result=\"ok\"} 12",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    p.shutdown();
    p.wait().await;
    wait_until("sandbox processes gone", Duration::from_secs(30), || {
        children().is_empty()
    })
    .await;
    wait_until("sockets closed", Duration::from_secs(10), || {
        open_fds() <= fds0
    })
    .await;
    assert!(
        std::fs::read_dir(&tmp).map_or(true, |d| d.count() == 0),
        "sandbox directories removed"
    );
    let _ = std::fs::remove_dir(&tmp);
}
