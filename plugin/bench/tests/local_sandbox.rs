//! The bench against real sandboxes (node server.js + /usr/bin/chromium) started by the bench itself.

mod common;

use std::time::Duration;

use sandcanary_bench::fixture::{FIXTURE_TITLE, FixtureServer};
use sandcanary_bench::playwright::{
    ConnectOptions, PlaywrightClient, PlaywrightError, WaitUntil, WireError,
};
use sandcanary_bench::report::{Report, render_table};
use sandcanary_bench::sandbox_process::{SandboxProcess, proc_state};
use sandcanary_bench::scenario::{self, RunConfig, Scenario};
use sandcanary_bench::target::{LocalTarget, LocalTargetConfig, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_scenarios_pass_with_checked_status_title_and_identity() {
    let fixture = FixtureServer::start().await.unwrap();
    let mut cfg = RunConfig::new(fixture.url());
    cfg.samples = 3;
    cfg.expect_title = Some(FIXTURE_TITLE.to_string());
    cfg.pause = Duration::from_millis(50);
    let mut targets: Vec<Box<dyn Target>> = vec![Box::new(LocalTarget::new(LocalTargetConfig {
        name: "local".into(),
        command: common::sandbox_command(),
    }))];
    let samples = scenario::run(&mut targets, &cfg, |_| {}).await;
    targets[0].shutdown().await;
    let report = Report::new(fixture.url(), samples.clone());
    assert!(report.all_ok(), "{}\n{:#?}", render_table(&report), samples);
    assert_eq!(samples.len(), 9);
    for s in &samples {
        assert_eq!(s.status, Some(200));
        assert_eq!(s.title.as_deref(), Some(FIXTURE_TITLE));
        let (c, n, g, t) = (
            s.connect_ms.unwrap(),
            s.new_page_ms.unwrap(),
            s.goto_ms.unwrap(),
            s.total_ms.unwrap(),
        );
        assert!(c > 0.0 && n > 0.0 && g > 0.0);
        assert!(
            (c + n + g - t).abs() < 0.01,
            "total is the sum of the phases: {s:?}"
        );
    }
    let instances = |sc: Scenario| -> Vec<String> {
        samples
            .iter()
            .filter(|s| s.scenario == sc)
            .map(|s| s.instance.clone().unwrap())
            .collect()
    };
    let cold = instances(Scenario::Cold);
    let mut unique = cold.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        3,
        "each cold sample is a new process: {cold:?}"
    );
    let warm = instances(Scenario::Warm);
    assert!(
        warm.iter().all(|w| *w == warm[0]),
        "warm reuses one process: {warm:?}"
    );
    let restore = instances(Scenario::Restore);
    assert!(
        restore.iter().all(|r| *r == restore[0]),
        "restore resumes the same process: {restore:?}"
    );
    assert!(!cold.contains(&warm[0]) && warm[0] != restore[0]);
    // Everything the target started is gone.
    for pid in cold.iter().chain(&warm).chain(&restore) {
        let pid: u32 = pid.trim_start_matches("pid-").parse().unwrap();
        assert_eq!(
            proc_state(pid),
            None,
            "pid {pid} still running after shutdown"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_sandbox_does_not_answer_until_resumed() {
    let mut sandbox = SandboxProcess::start(&common::sandbox_command())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        sandbox.suspend().unwrap();
        if sandbox.is_stopped() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "tree never stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut opts = ConnectOptions::new(sandbox.ws_url());
    opts.connect_timeout = Duration::from_secs(2);
    match PlaywrightClient::connect(&opts).await {
        Err(PlaywrightError::Wire(WireError::Timeout { .. })) => {}
        Err(e) => panic!("expected a timeout from a stopped sandbox, got {e}"),
        Ok(_) => panic!("a stopped sandbox answered"),
    }
    sandbox.resume().unwrap();
    opts.connect_timeout = Duration::from_secs(60);
    let client = PlaywrightClient::connect(&opts)
        .await
        .expect("resumed sandbox answers");
    let page = client.new_page().await.unwrap();
    assert_eq!(client.object_type(&page.page_guid).as_deref(), Some("Page"));
    assert_eq!(
        client.object_type(&page.frame_guid).as_deref(),
        Some("Frame")
    );
    client.close().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_errors_and_version_mismatch_are_reported() {
    let sandbox = SandboxProcess::start(&common::sandbox_command())
        .await
        .unwrap();
    // A Playwright major.minor other than the server's gets HTTP 428 on the upgrade.
    let mut old = ConnectOptions::new(sandbox.ws_url());
    old.client_version = Some("1.10.0".into());
    match PlaywrightClient::connect(&old).await {
        Err(PlaywrightError::Wire(WireError::VersionMismatch {
            client_version,
            body,
        })) => {
            assert_eq!(client_version, "1.10.0");
            assert!(body.contains("version"), "server text is kept: {body}");
        }
        Err(e) => panic!("expected a version mismatch, got {e}"),
        Ok(_) => panic!("server accepted Playwright 1.10"),
    }
    // Without a Playwright user agent there is no check.
    let mut anon = ConnectOptions::new(sandbox.ws_url());
    anon.client_version = None;
    let client = PlaywrightClient::connect(&anon).await.unwrap();
    let page = client.new_page().await.unwrap();
    // A 404 page is a navigation with a status, not an error.
    let fixture = FixtureServer::start().await.unwrap();
    let nav = client
        .goto(
            &page,
            &format!("{}missing", fixture.url()),
            WaitUntil::Load,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(nav.status, Some(404));
    let nav = client
        .goto(
            &page,
            "about:blank",
            WaitUntil::Commit,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(nav.status, None, "about:blank has no network response");
    // A refused navigation comes back as the server's error, with its message.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client
        .goto(
            &page,
            &format!("http://127.0.0.1:{closed_port}/"),
            WaitUntil::Load,
            Duration::from_secs(20),
        )
        .await
        .unwrap_err();
    match &err {
        PlaywrightError::Wire(WireError::Server { method, message }) => {
            assert_eq!(method, "goto");
            assert!(message.contains("ERR_CONNECTION_REFUSED"), "{message}");
        }
        other => panic!("expected a server error, got {other}"),
    }
    client.close().await;
    sandbox.stop().await;
}

/// The breakdown through real Chromium: the 101 inside connect, newContext inside newPage, and
/// Chromium's PerformanceNavigationTiming of the goto, laid out as steps that add up to the
/// sample; with the breakdown off, samples carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breakdown_comes_from_the_protocol_and_adds_up() {
    use sandcanary_bench::breakdown::{STEPS, segments};
    let fixture = FixtureServer::start().await.unwrap();
    let mut cfg = RunConfig::new(fixture.url());
    cfg.scenarios = vec![Scenario::Cold, Scenario::Warm];
    cfg.samples = 2;
    cfg.expect_title = Some(FIXTURE_TITLE.to_string());
    cfg.pause = Duration::from_millis(50);
    cfg.breakdown = true;
    let mut targets: Vec<Box<dyn Target>> = vec![Box::new(LocalTarget::new(LocalTargetConfig {
        name: "local".into(),
        command: common::sandbox_command(),
    }))];
    let samples = scenario::run(&mut targets, &cfg, |_| {}).await;
    cfg.breakdown = false;
    cfg.scenarios = vec![Scenario::Warm];
    cfg.samples = 1;
    let plain = scenario::run(&mut targets, &cfg, |_| {}).await;
    targets[0].shutdown().await;
    assert!(samples.iter().chain(&plain).all(|s| s.ok), "{samples:#?}");
    assert!(plain.iter().all(|s| s.breakdown.is_none()));
    for s in &samples {
        let b = s.breakdown.as_ref().expect("breakdown recorded");
        assert!(
            b.upgrade_ms > 0.0 && b.upgrade_ms < s.connect_ms.unwrap(),
            "the 101 comes before initialize ends: {s:?}"
        );
        assert!(b.new_context_ms > 0.0 && b.new_context_ms < s.new_page_ms.unwrap());
        let nav = b.navigation.expect("Chromium's navigation entry");
        assert!(nav.response_start >= nav.request_start && nav.load_event_end > 0.0);
        assert!(
            nav.load_event_end <= s.goto_ms.unwrap(),
            "Chromium's load ends inside the goto: {nav:?} {s:?}"
        );
        let steps = segments(s);
        assert_eq!(steps.len(), STEPS.len());
        let end = steps.last().unwrap().end_ms;
        assert!((end - s.total_ms.unwrap()).abs() < 0.01, "{end} vs {s:?}");
        assert!(steps.iter().all(|st| st.duration_ms() >= 0.0), "{steps:?}");
    }
    // Serialized with the samples (JSON report), and absent when off.
    let json = Report::new(fixture.url(), samples.clone()).to_json();
    assert!(json.contains("\"upgradeMs\"") && json.contains("\"loadEventEnd\""));
    let json = Report::new(fixture.url(), plain).to_json();
    assert!(!json.contains("breakdown"));
}
