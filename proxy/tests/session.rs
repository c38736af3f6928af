//! Session manager semantics against a scripted backend.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sandcanary_proxy::backend::BackendError;
use sandcanary_proxy::metrics::Metrics;
use sandcanary_proxy::session::{SessionConfig, SessionError, SessionManager};
use support::{Call, FakeBackend, Step, endpoint};

fn ep(n: u16) -> sandcanary_proxy::backend::Endpoint {
    endpoint(
        format!("127.0.0.1:{n}").parse().unwrap(),
        None,
        &format!("sb-{n}"),
    )
}

fn manager(
    backend: Arc<FakeBackend>,
    ensure_timeout: Duration,
    idle_ttl: Duration,
) -> SessionManager {
    SessionManager::new(
        backend,
        SessionConfig {
            ensure_timeout,
            wait_timeout: ensure_timeout.max(Duration::from_secs(2)),
            idle_ttl,
            delete_timeout: Duration::from_millis(500),
        },
        Metrics::new(),
    )
}

#[tokio::test]
async fn hundred_concurrent_first_requests_make_one_ensure() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_millis(200), ep(7)));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(600));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.get("alice").await.map(|(_, e)| e) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), ep(7));
    }
    assert_eq!(b.ensures.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_ensure_reaches_every_waiter_and_the_next_request_retries() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_millis(100), ep(0)));
    // Replace the first step with a failure after a delay: use Err directly for determinism.
    b.script.lock().unwrap().ensure.clear();
    b.push(Step::Err(BackendError::Failed("claim broken".into())));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(600));
    let (r1, r2) = tokio::join!(m.get("alice"), m.get("alice"));
    for r in [r1, r2] {
        match r {
            Err(SessionError::Ensure(BackendError::Failed(msg))) => assert_eq!(msg, "claim broken"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("expected the scripted failure"),
        }
    }
    assert_eq!(b.ensures.load(Ordering::SeqCst), 1);
    let (_, e) = m
        .get("alice")
        .await
        .expect("the next request starts a fresh ensure");
    assert_eq!(e, ep(1));
    assert_eq!(b.ensures.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_ensure_beyond_ensure_timeout_is_cancelled_and_reported() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_secs(30), ep(2)));
    let m = manager(
        b.clone(),
        Duration::from_millis(300),
        Duration::from_secs(600),
    );
    let err = m.get("alice").await.err().expect("timeout");
    assert!(err.to_string().contains("ENSURE_TIMEOUT"), "{err}");
    assert_eq!(
        b.cancelled.load(Ordering::SeqCst),
        1,
        "the backend saw its ensure dropped"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_does_not_cancel_the_shared_ensure() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_millis(400), ep(3)));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(600));
    let first = tokio::spawn({
        let m = m.clone();
        async move { m.get("alice").await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, e) = m.get("alice").await.unwrap();
    assert_eq!(e, ep(3));
    assert_eq!(b.ensures.load(Ordering::SeqCst), 1);
    assert_eq!(b.cancelled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_wait_budget_covers_a_slow_ensure() {
    // ENSURE_TIMEOUT 3 s and an ensure of 2.5 s: the wait lasts ENSURE_TIMEOUT, not a shorter fixed
    // budget.
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_millis(2500), ep(4)));
    let m = SessionManager::new(
        b.clone(),
        SessionConfig {
            ensure_timeout: Duration::from_secs(3),
            wait_timeout: Duration::from_secs(3),
            idle_ttl: Duration::from_secs(600),
            delete_timeout: Duration::from_secs(1),
        },
        Metrics::new(),
    );
    let (_, e) = m.get("slow").await.unwrap();
    assert_eq!(e, ep(4));
}

#[tokio::test]
async fn a_ready_session_calls_no_backend_method() {
    let b = FakeBackend::new(ep(1));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(600));
    m.get("alice").await.unwrap();
    let before = b.calls().len();
    for _ in 0..20 {
        m.get("alice").await.unwrap();
    }
    assert_eq!(b.calls().len(), before);
}

/// Lets `by` pass on the (paused) clock: every session not in use becomes idle that long.
async fn idle_for(by: Duration) {
    tokio::time::advance(by).await;
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_deleted_once_and_the_next_request_ensures_again() {
    let b = FakeBackend::new(ep(1));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    drop(m.get("alice").await.unwrap());
    m.reap_once();
    settle().await;
    assert_eq!(
        b.deletes.load(Ordering::SeqCst),
        0,
        "not idle for IDLE_TTL yet"
    );
    idle_for(Duration::from_secs(61)).await;
    m.reap_once();
    m.reap_once();
    settle().await;
    assert_eq!(b.count(|c| *c == Call::Delete("alice".into())), 1);
    assert!(m.list().is_empty());
    m.get("alice").await.unwrap();
    assert_eq!(b.ensures.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn an_open_connection_is_never_reaped_and_its_close_restarts_the_clock() {
    let b = FakeBackend::new(ep(1));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    let (lease, _) = m.get("alice").await.unwrap();
    let (lease2, _) = m.get("alice").await.unwrap();
    idle_for(Duration::from_secs(180)).await;
    m.reap_once();
    settle().await;
    assert_eq!(
        b.deletes.load(Ordering::SeqCst),
        0,
        "open leases protect the session"
    );
    assert_eq!(m.info("alice").unwrap().open_connections, 2);
    drop(lease);
    drop(lease2);
    m.reap_once();
    settle().await;
    assert_eq!(
        b.deletes.load(Ordering::SeqCst),
        0,
        "closing marks activity"
    );
    idle_for(Duration::from_secs(61)).await;
    m.reap_once();
    settle().await;
    assert_eq!(b.deletes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_session_still_ensuring_is_never_reaped() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_millis(800), ep(2)));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_millis(1));
    let waiter = tokio::spawn({
        let m = m.clone();
        async move { m.get("alice").await.map(|(_, e)| e) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    waiter.abort();
    // IDLE_TTL is 1 ms: every pass finds the session idle long enough.
    for _ in 0..5 {
        m.reap_once();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.deletes.load(Ordering::SeqCst), 0);
    assert_eq!(m.info("alice").unwrap().state, "ensuring");
}

#[tokio::test(start_paused = true)]
async fn a_failed_delete_is_retried_and_a_hung_one_does_not_block_others() {
    let b = FakeBackend::new(ep(1));
    b.script.lock().unwrap().delete_hang = vec!["stuck".into()];
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    drop(m.get("stuck").await.unwrap());
    drop(m.get("flaky").await.unwrap());
    b.script.lock().unwrap().delete_fail = 1;
    idle_for(Duration::from_secs(61)).await;
    m.reap_once(); // "stuck" hangs from here on; "flaky" fails once
    settle().await;
    assert_eq!(b.count(|c| *c == Call::Delete("flaky".into())), 1);
    m.reap_once(); // retried
    settle().await;
    assert_eq!(b.count(|c| *c == Call::Delete("flaky".into())), 2);
    assert_eq!(b.count(|c| *c == Call::DeleteDone("flaky".into())), 2);
    // The hung delete timed out (DELETE_TIMEOUT 500 ms) and is retried too, without blocking anything.
    tokio::time::sleep(Duration::from_millis(600)).await;
    m.reap_once();
    settle().await;
    assert_eq!(b.count(|c| *c == Call::Delete("stuck".into())), 2);
}

#[tokio::test(start_paused = true)]
async fn a_request_racing_a_reap_waits_for_the_delete_before_ensuring() {
    let b = FakeBackend::new(ep(1));
    b.script.lock().unwrap().delete_delay = Duration::from_millis(300);
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    drop(m.get("alice").await.unwrap());
    idle_for(Duration::from_secs(61)).await;
    m.reap_once();
    // The reaper has picked the session; a request now must not get the endpoint being deleted.
    let (_, e) = m.get("alice").await.unwrap();
    assert_eq!(e, ep(1));
    let calls = b.calls();
    let done = calls
        .iter()
        .position(|c| *c == Call::DeleteDone("alice".into()))
        .expect("delete finished");
    let second_ensure = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::Ensure("alice".into()))
        .nth(1)
        .map(|(i, _)| i)
        .expect("a fresh ensure");
    assert!(
        done < second_ensure,
        "ensure ran before the delete finished: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn reconcile_adopts_listed_sandboxes_and_survives_a_list_failure() {
    let b = FakeBackend::new(ep(1));
    b.script.lock().unwrap().list = Some(Ok(vec!["x".into(), "y".into()]));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    m.reconcile().await;
    settle().await;
    assert_eq!(b.count(|c| matches!(c, Call::Ensure(_))), 2);
    m.get("x").await.unwrap();
    assert_eq!(
        b.count(|c| matches!(c, Call::Ensure(_))),
        2,
        "first request for x calls no ensure"
    );
    // Unused adopted sandboxes are reaped like any other.
    idle_for(Duration::from_secs(61)).await;
    m.reap_once();
    settle().await;
    assert_eq!(b.deletes.load(Ordering::SeqCst), 2);

    let b2 = FakeBackend::new(ep(1));
    b2.script.lock().unwrap().list = Some(Err(BackendError::Failed("apiserver down".into())));
    let m2 = manager(b2.clone(), Duration::from_secs(5), Duration::from_secs(60));
    m2.reconcile().await;
    m2.get("z")
        .await
        .expect("serving continues after a failed list");
}

#[tokio::test]
async fn invalidation_makes_the_next_request_ask_the_backend_again() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Ok(ep(5)));
    b.push(Step::Ok(ep(6)));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    let (lease, e) = m.get("alice").await.unwrap();
    assert_eq!(e, ep(5));
    m.invalidate(&lease, &e);
    m.invalidate(&lease, &e); // a second failing request changes nothing more
    drop(lease);
    let (_, e2) = m.get("alice").await.unwrap();
    assert_eq!(e2, ep(6));
    assert_eq!(b.ensures.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn suspend_then_a_request_resumes_once() {
    let b = FakeBackend::new(ep(1));
    let m = manager(b.clone(), Duration::from_secs(5), Duration::from_secs(60));
    m.get("alice").await.unwrap();
    assert_eq!(m.suspend("alice").await.unwrap().state, "suspended");
    let (r1, r2) = tokio::join!(m.get("alice"), m.get("alice"));
    r1.unwrap();
    r2.unwrap();
    assert_eq!(b.count(|c| *c == Call::Resume("alice".into())), 1);
    assert_eq!(m.info("alice").unwrap().state, "ready");
    assert!(m.suspend("nobody").await.is_err());
}

#[tokio::test]
async fn delete_through_the_api_cancels_a_running_ensure() {
    let b = FakeBackend::new(ep(1));
    b.push(Step::Slow(Duration::from_secs(10), ep(2)));
    let m = manager(b.clone(), Duration::from_secs(20), Duration::from_secs(60));
    let waiter = tokio::spawn({
        let m = m.clone();
        async move { m.get("alice").await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    m.delete("alice").await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("waiter released");
    assert!(r.unwrap().is_err());
    settle().await;
    assert_eq!(b.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(b.count(|c| *c == Call::Delete("alice".into())), 1);
}
