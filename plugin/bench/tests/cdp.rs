//! The CDP client against a real headless Chromium, and the HTML report opened in that Chromium.

use std::time::Duration;

use sandcanary_bench::cdp::{
    CdpClient, CdpError, ChromiumCommand, ChromiumProcess, measure_session,
};
use sandcanary_bench::fixture::{FIXTURE_TITLE, FixtureServer};
use sandcanary_bench::report::{Report, render_html};
use sandcanary_bench::scenario::{Sample, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdp_client_navigates_checks_status_and_title_and_reports_errors() {
    let chromium = ChromiumProcess::start(&ChromiumCommand::default())
        .await
        .unwrap();
    let fixture = FixtureServer::start().await.unwrap();
    // Discovery over HTTP (Host rewritten to localhost) finds the same browser URL Chromium printed.
    let discovered = CdpClient::discover(&chromium.http_url()).await.unwrap();
    assert_eq!(discovered, chromium.ws_url());
    let client = CdpClient::connect(&discovered, Duration::from_secs(30))
        .await
        .unwrap();
    let page = client.new_page().await.unwrap();
    let status = client
        .navigate(&page, fixture.url(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status, Some(200));
    assert_eq!(client.title(&page).await.unwrap(), FIXTURE_TITLE);
    let status = client
        .navigate(
            &page,
            &format!("{}nope", fixture.url()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(status, Some(404));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client
        .navigate(
            &page,
            &format!("http://127.0.0.1:{closed}/"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    match err {
        CdpError::Navigation { error, .. } => {
            assert!(error.contains("ERR_CONNECTION_REFUSED"), "{error}")
        }
        other => panic!("expected a navigation error, got {other}"),
    }
    // Server-side errors come back with CDP's message.
    let bad = client
        .close_page(&sandcanary_bench::cdp::CdpPage {
            context_id: "no-such-context".into(),
            target_id: String::new(),
            session_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("Target.disposeBrowserContext"),
        "{bad}"
    );
    client.close_page(&page).await.unwrap();
    client.close().await;

    let samples: Vec<Sample> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(
                measure_session(
                    chromium.ws_url(),
                    "cdp",
                    i,
                    fixture.url(),
                    Some(FIXTURE_TITLE),
                )
                .await,
            );
        }
        v
    };
    assert!(samples.iter().all(|s| s.ok), "{samples:#?}");
    chromium.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_shows_its_charts_in_headless_chromium() {
    let sample = |target: &str, scenario, index: usize, total: f64| Sample {
        target: target.into(),
        scenario,
        index,
        ok: true,
        error: None,
        connect_ms: Some(total * 0.1),
        new_page_ms: Some(total * 0.6),
        goto_ms: Some(total * 0.3),
        total_ms: Some(total),
        status: Some(200),
        title: Some(FIXTURE_TITLE.into()),
        instance: Some("pid-1".into()),
        breakdown: None,
    };
    let mut samples = Vec::new();
    for i in 0..5 {
        for (sc, base) in [
            (Scenario::Cold, 400.0),
            (Scenario::Warm, 150.0),
            (Scenario::Restore, 200.0),
        ] {
            samples.push(sample("stable", sc, i, base + i as f64 * 10.0));
            samples.push(sample("canary", sc, i, base * 1.2 + i as f64 * 10.0));
        }
    }
    let report = Report::new("http://127.0.0.1/", samples);
    let dir = std::env::temp_dir().join(format!("sandcanary-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.html");
    std::fs::write(&file, render_html(&report)).unwrap();

    let chromium = ChromiumProcess::start(&ChromiumCommand::default())
        .await
        .unwrap();
    let client = CdpClient::connect(chromium.ws_url(), Duration::from_secs(30))
        .await
        .unwrap();
    let page = client.new_page().await.unwrap();
    client
        .navigate(
            &page,
            &format!("file://{}", file.display()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let eval = |e: &'static str| {
        let client = &client;
        let page = &page;
        async move { client.evaluate(page, e).await.unwrap() }
    };
    assert_eq!(eval("document.title").await, "sandcanary bench report");
    // One chart per scenario and phase: 3 scenarios x 4 phases.
    assert_eq!(
        eval("document.querySelectorAll('svg.chart').length").await,
        12
    );
    // Every chart is laid out (has a size) and shows both targets' dots and median marks.
    assert_eq!(
        eval("[...document.querySelectorAll('svg.chart')].filter(s => s.getBoundingClientRect().width > 100 && s.querySelectorAll('circle.sample').length === 10 && s.querySelectorAll('line.p50').length === 2).length").await,
        12
    );
    assert_eq!(
        eval(
            "document.querySelector('svg.chart[data-scenario=warm][data-phase=total_ms]') !== null"
        )
        .await,
        true
    );
    client.close().await;
    chromium.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
