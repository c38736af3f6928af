//! The bench through a real `sandcanary-proxy` (local backend, token identity, session API), run as
//! a separate binary: cold deletes through the session API, restore suspends through it.

mod common;

use std::time::Duration;

use sandcanary_bench::fixture::{FIXTURE_TITLE, FixtureServer};
use sandcanary_bench::playwright::{ConnectOptions, PlaywrightClient, PlaywrightError, WireError};
use sandcanary_bench::report::{Report, render_table};
use sandcanary_bench::scenario::{self, RunConfig, Scenario};
use sandcanary_bench::target::{ProxyTarget, ProxyTargetConfig, Target};
use sandcanary_testkit::{ProxyBuilder, ProxyProcess};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const IDENTITY_TOKEN: &str = "bench-identity-token-0123456789";

async fn start_proxy(warm_pool: usize) -> ProxyProcess {
    common::sandbox_command();
    ProxyBuilder::workspace()
        .unwrap()
        .label("bench-proxy")
        .current_dir(common::repo_root())
        .env("BACKEND", "local")
        .env("IDENTITY", "token")
        .env("IDENTITY_TOKEN", IDENTITY_TOKEN)
        .env("SESSION_API_TOKEN", ADMIN_TOKEN)
        .env("LOCAL_WARM_POOL", warm_pool.to_string())
        .env("LOCAL_MCP", "true")
        .env("LOG_FORMAT", "text")
        .start_async()
        .await
        .unwrap()
}

fn target(proxy: &ProxyProcess, name: &str) -> ProxyTarget {
    target_with_token(proxy, name, ADMIN_TOKEN)
}

fn target_with_token(proxy: &ProxyProcess, name: &str, admin_token: &str) -> ProxyTarget {
    ProxyTarget::new(ProxyTargetConfig {
        name: name.into(),
        data_url: proxy.data_url(),
        admin_url: proxy.admin_url(),
        admin_token: admin_token.into(),
        identity_token: IDENTITY_TOKEN.into(),
        id_header: "X-Sandbox-Id".into(),
        id_prefix: format!("test-{name}-{}", std::process::id()),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_scenarios_pass_through_the_proxy_with_real_identities() {
    let proxy = start_proxy(0).await;
    let fixture = FixtureServer::start().await.unwrap();
    let mut cfg = RunConfig::new(fixture.url());
    cfg.samples = 3;
    cfg.scenarios = vec![
        Scenario::Cold,
        Scenario::Warm,
        Scenario::Restore,
        Scenario::Mcp,
    ];
    cfg.expect_title = Some(FIXTURE_TITLE.into());
    cfg.pause = Duration::from_millis(50);
    let mut targets: Vec<Box<dyn Target>> = vec![Box::new(target(&proxy, "proxy"))];
    let samples = scenario::run(&mut targets, &cfg, |_| {}).await;
    let report = Report::new(fixture.url(), samples.clone());
    assert!(report.all_ok(), "{}", render_table(&report));
    let instances = |sc: Scenario| -> Vec<String> {
        samples
            .iter()
            .filter(|s| s.scenario == sc)
            .map(|s| s.instance.clone().expect("the proxy names the sandbox"))
            .collect()
    };
    let mut cold = instances(Scenario::Cold);
    cold.sort();
    cold.dedup();
    assert_eq!(
        cold.len(),
        3,
        "three cold samples, three sandboxes: {cold:?}"
    );
    let warm = instances(Scenario::Warm);
    assert!(warm.iter().all(|w| *w == warm[0]), "{warm:?}");
    let restore = instances(Scenario::Restore);
    assert!(restore.iter().all(|r| *r == restore[0]), "{restore:?}");
    assert!(
        samples
            .iter()
            .filter(|s| s.scenario != Scenario::Mcp)
            .all(|s| s.status == Some(200))
    );

    // After the run every bench session is gone from the proxy.
    targets[0].shutdown().await;
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/sessions", proxy.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let left: Vec<&serde_json::Value> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"].as_str().unwrap_or("").starts_with("test-proxy-"))
        .collect();
    assert!(left.is_empty(), "sessions left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_skew_and_bad_tokens_through_the_proxy_are_clear_errors() {
    let proxy = start_proxy(1).await;
    let ws = proxy.data_url().replace("http://", "ws://") + "/";
    let mut opts = ConnectOptions::new(ws.clone());
    opts.headers = vec![
        ("authorization".into(), format!("Bearer {IDENTITY_TOKEN}")),
        (
            "X-Sandbox-Id".into(),
            format!("skew-{}", std::process::id()),
        ),
    ];
    opts.client_version = Some("1.10.0".into());
    match PlaywrightClient::connect(&opts).await {
        Err(PlaywrightError::Wire(WireError::VersionMismatch { .. })) => {}
        Err(e) => panic!("expected the sandbox's 428 through the proxy, got {e}"),
        Ok(_) => panic!("version skew went unnoticed"),
    }
    // A wrong session API token makes every sample fail, with the proxy's answer as the reason.
    let fixture = FixtureServer::start().await.unwrap();
    let mut cfg = RunConfig::new(fixture.url());
    cfg.samples = 1;
    cfg.scenarios = vec![Scenario::Warm];
    let mut targets: Vec<Box<dyn Target>> = vec![Box::new(target_with_token(
        &proxy,
        "badtoken",
        "wrong-token-0123456789",
    ))];
    let samples = scenario::run(&mut targets, &cfg, |_| {}).await;
    assert!(!samples[0].ok);
    let err = samples[0].error.as_deref().unwrap();
    assert!(
        err.contains("HTTP 401") || err.contains("HTTP 403"),
        "{err}"
    );
}
