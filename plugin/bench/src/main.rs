//! `sandcanary-bench`: runs the cold/warm/restore bench against a proxy or local sandboxes and prints
//! a table of medians per phase, JSON, Markdown or HTML.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sandcanary_bench::fixture::{FIXTURE_TITLE, FixtureServer};
use sandcanary_bench::repo::{self, Repo};
use sandcanary_bench::report::{
    Report, render_compare, render_html, render_markdown, render_table,
};
use sandcanary_bench::sandbox_process::SandboxCommand;
use sandcanary_bench::scenario::{self, RunConfig, Scenario};
use sandcanary_bench::target::{
    LocalTarget, LocalTargetConfig, ProxyTarget, ProxyTargetConfig, Target,
};

#[derive(Parser)]
#[command(
    name = "sandcanary-bench",
    version,
    about = "Playwright cold/warm/restore bench for sandbox proxies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bench one target: a proxy (--proxy and --admin) or sandboxes started locally (--local).
    Run {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Bench two targets interleaved and print them side by side with canary/stable ratios.
    /// A side without --<side>-proxy uses local sandboxes.
    Compare {
        #[arg(long)]
        stable_proxy: Option<String>,
        #[arg(long)]
        stable_admin: Option<String>,
        #[arg(long)]
        canary_proxy: Option<String>,
        #[arg(long)]
        canary_admin: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Our Playwright client against the official Node client (test/playwright's playwright-core),
    /// same local sandbox, same run, interleaved; ratios are ours / official.
    Clients {
        /// The worker script driving the official client.
        #[arg(long)]
        official_script: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// What recording the breakdown costs: the same kind of local sandboxes sampled with the
    /// breakdown off ("off") and on ("on"), alternating every sample, in one run; ratios are
    /// on / off and should be 1.00 (it is read after the timed part).
    BreakdownCost {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Bench the raw CDP path: sessions through our CDP client against a DevTools endpoint
    /// (--cdp-url http://host:port), or against a Chromium the bench starts itself.
    Cdp {
        #[arg(long)]
        cdp_url: Option<String>,
        /// Chromium to start when no --cdp-url is given.
        #[arg(long, default_value = "/usr/bin/chromium")]
        chromium: PathBuf,
        /// Interleave a bare Node CDP client (test/fixtures/bench/raw-cdp.js) as the baseline;
        /// ratios are ours / baseline.
        #[arg(long)]
        baseline: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// Proxy data URL, e.g. http://127.0.0.1:9000
    #[arg(long, requires = "admin", conflicts_with = "local")]
    proxy: Option<String>,
    /// Proxy admin URL (session API), e.g. http://127.0.0.1:9090
    #[arg(long)]
    admin: Option<String>,
    /// Start sandbox processes locally instead of going through a proxy.
    #[arg(long)]
    local: bool,
    /// Label of the target in reports (default: "proxy" or "local").
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    auth: AuthArgs,
}

#[derive(Args)]
struct AuthArgs {
    /// Bearer token of the proxy's session API.
    #[arg(
        long,
        env = "SANDCANARY_ADMIN_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    admin_token: String,
    /// Bearer token of the proxy's token identity mode.
    #[arg(
        long,
        env = "SANDCANARY_IDENTITY_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    identity_token: String,
    /// Header naming the sandbox id on the data port.
    #[arg(long, default_value = "X-Sandbox-Id")]
    id_header: String,
}

#[derive(Args)]
struct CommonArgs {
    /// Comma-separated scenarios: cold, warm, restore, mcp.
    #[arg(long, default_value = "cold,warm,restore", value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Samples per scenario and target.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Also write the JSON report (every sample) here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Also write the HTML report here.
    #[arg(long)]
    html_out: Option<PathBuf>,
    /// Page to open; default: a fixture server started by the bench.
    #[arg(long)]
    page_url: Option<String>,
    /// Title the page must have (default: the fixture's title when the fixture is used).
    #[arg(long)]
    expect_title: Option<String>,
    /// Playwright version announced in User-Agent; "none" sends none (no server version check).
    #[arg(long, default_value = sandcanary_bench::playwright::DEFAULT_CLIENT_VERSION)]
    client_version: String,
    /// Pause between samples in milliseconds.
    #[arg(long, default_value_t = 200)]
    pause_ms: u64,
    /// Record where each sample's time went (the 101, newPage's parts, Chromium's navigation
    /// timing; read after the timed part) into the JSON report.
    #[arg(long)]
    breakdown: bool,
    /// Bound on connect (including a cold start) in seconds.
    #[arg(long, default_value_t = 180)]
    connect_timeout_s: u64,
    /// server.js of the sandbox for local targets.
    #[arg(long, env = "SANDCANARY_SANDBOX_SCRIPT")]
    sandbox_script: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Markdown,
    Html,
}

/// The sandbox program of local targets: `--sandbox-script`, else the checkout's. Resolved before
/// any sample runs, so outside a checkout the command fails once, naming what to set.
fn sandbox_command(common: &CommonArgs) -> anyhow::Result<SandboxCommand> {
    if let Some(s) = &common.sandbox_script {
        let script = repo::user_file("--sandbox-script (SANDCANARY_SANDBOX_SCRIPT)", s)?;
        let mut cmd = SandboxCommand::from_repo("/");
        cmd.script = script;
        return Ok(cmd);
    }
    let repo = Repo::locate(" (or pass --sandbox-script)")?;
    repo.file("sandbox script", repo::SANDBOX_SCRIPT)?;
    repo.require_node_modules("deploy/sandbox")?;
    Ok(SandboxCommand::from_repo(repo.root()))
}

fn id_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("bench-{name}-{}-{nanos:x}", std::process::id())
}

fn proxy_target(
    name: &str,
    data: String,
    admin: String,
    auth: &AuthArgs,
) -> anyhow::Result<Box<dyn Target>> {
    if auth.admin_token.is_empty() {
        bail!(
            "a proxy target needs the session API token (--admin-token or SANDCANARY_ADMIN_TOKEN)"
        );
    }
    let cfg = ProxyTargetConfig {
        name: name.to_string(),
        data_url: data,
        admin_url: admin,
        admin_token: auth.admin_token.clone(),
        identity_token: auth.identity_token.clone(),
        id_header: auth.id_header.clone(),
        id_prefix: id_prefix(name),
    };
    Ok(Box::new(ProxyTarget::new(cfg)?))
}

fn local_target(name: &str, common: &CommonArgs) -> anyhow::Result<Box<dyn Target>> {
    Ok(Box::new(LocalTarget::new(LocalTargetConfig {
        name: name.to_string(),
        command: sandbox_command(common)?,
    })))
}

async fn bench(mut targets: Vec<Box<dyn Target>>, common: &CommonArgs) -> anyhow::Result<Report> {
    if common.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let fixture;
    let (page_url, expect_title) = match &common.page_url {
        Some(u) => (u.clone(), common.expect_title.clone()),
        None => {
            fixture = FixtureServer::start()
                .await
                .context("starting the fixture page server")?;
            (
                fixture.url().to_string(),
                Some(
                    common
                        .expect_title
                        .clone()
                        .unwrap_or_else(|| FIXTURE_TITLE.to_string()),
                ),
            )
        }
    };
    let mut cfg = RunConfig::new(page_url.clone());
    cfg.scenarios = common.scenarios.clone();
    cfg.samples = common.samples;
    cfg.expect_title = expect_title;
    cfg.client_version = (common.client_version != "none").then(|| common.client_version.clone());
    cfg.pause = Duration::from_millis(common.pause_ms);
    cfg.connect_timeout = Duration::from_secs(common.connect_timeout_s);
    cfg.breakdown = common.breakdown;
    let total = (cfg.samples * cfg.scenarios.len() * targets.len()) as u64;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let samples = scenario::run(&mut targets, &cfg, |s| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{} {} #{}", s.target, s.scenario, s.index));
            bar.inc(1);
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for t in &mut targets {
        t.shutdown().await;
    }
    Ok(Report::new(page_url, samples))
}

/// Two local targets, `off` and `on`, sampled alternately (which goes first alternates too), each
/// sample a one-sample run so the breakdown setting can differ between them.
async fn bench_breakdown_cost(common: &CommonArgs) -> anyhow::Result<Report> {
    if common.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let fixture = FixtureServer::start()
        .await
        .context("starting the fixture page server")?;
    let page_url = fixture.url().to_string();
    let mut off = vec![local_target("off", common)?];
    let mut on = vec![local_target("on", common)?];
    let mut cfg = RunConfig::new(page_url.clone());
    cfg.samples = 1;
    cfg.expect_title = Some(FIXTURE_TITLE.to_string());
    cfg.pause = Duration::from_millis(common.pause_ms);
    cfg.connect_timeout = Duration::from_secs(common.connect_timeout_s);
    let mut samples = Vec::new();
    for index in 0..common.samples {
        for &scenario in &common.scenarios {
            cfg.scenarios = vec![scenario];
            for k in 0..2 {
                let breakdown = (k + index) % 2 == 1;
                cfg.breakdown = breakdown;
                let targets = if breakdown { &mut on } else { &mut off };
                for mut s in scenario::run(targets, &cfg, |_| {}).await {
                    s.index = index;
                    if breakdown && s.ok && s.breakdown.is_none() {
                        bail!("the breakdown was on but sample {index} has none");
                    }
                    samples.push(s);
                }
            }
        }
    }
    for t in off.iter_mut().chain(on.iter_mut()) {
        t.shutdown().await;
    }
    Ok(Report::new(page_url, samples))
}

async fn bench_clients(script: Option<PathBuf>, common: &CommonArgs) -> anyhow::Result<Report> {
    use sandcanary_bench::official::{NodeWorker, compare_with_worker, native_session};
    use sandcanary_bench::sandbox_process::SandboxProcess;
    // Both scripts are found before anything starts.
    let script = match script {
        Some(s) => repo::user_file("--official-script", &s)?,
        None => {
            let repo = Repo::locate(" (or pass --official-script and --sandbox-script)")?;
            repo.require_node_modules("test/playwright")?;
            repo.file("official client worker", repo::OFFICIAL_CLIENT_SCRIPT)?
        }
    };
    let sandbox_cmd = sandbox_command(common)?;
    let fixture = FixtureServer::start()
        .await
        .context("starting the fixture page server")?;
    let mut official = NodeWorker::start("node", &[], script, "node-client")
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!("official client: playwright-core {}", official.version);
    let sandbox = SandboxProcess::start(&sandbox_cmd)
        .await
        .map_err(anyhow::Error::msg)?;
    let ws_url = sandbox.ws_url().to_string();
    let page_url = fixture.url().to_string();
    let samples = compare_with_worker(
        &mut official,
        |i| native_session(&ws_url, &page_url, i),
        sandbox.ws_url(),
        fixture.url(),
        FIXTURE_TITLE,
        common.samples,
        Duration::from_millis(common.pause_ms),
    )
    .await;
    official.stop().await;
    sandbox.stop().await;
    Ok(Report::new(fixture.url(), samples))
}

async fn bench_cdp(
    cdp_url: Option<&str>,
    chromium: &std::path::Path,
    baseline: bool,
    common: &CommonArgs,
) -> anyhow::Result<Report> {
    use sandcanary_bench::cdp::{CdpClient, ChromiumCommand, ChromiumProcess, measure_session};
    let baseline_script = if baseline {
        let repo = Repo::locate("")?;
        Some(repo.file("bare CDP client", repo::RAW_CDP_SCRIPT)?)
    } else {
        None
    };
    let fixture = FixtureServer::start()
        .await
        .context("starting the fixture page server")?;
    let (page_url, title) = match &common.page_url {
        Some(u) => (u.clone(), common.expect_title.clone()),
        None => (fixture.url().to_string(), Some(FIXTURE_TITLE.to_string())),
    };
    let mut browser = None;
    let ws_url = match cdp_url {
        Some(u) => CdpClient::discover(u).await?,
        None => {
            let cmd = ChromiumCommand {
                executable: chromium.to_path_buf(),
                ..Default::default()
            };
            let b = ChromiumProcess::start(&cmd)
                .await
                .map_err(anyhow::Error::msg)?;
            let url = b.ws_url().to_string();
            browser = Some(b);
            url
        }
    };
    let mut samples = Vec::new();
    if let Some(script) = baseline_script {
        use sandcanary_bench::official::{NodeWorker, compare_with_worker};
        let mut worker = NodeWorker::start(
            "node",
            &["--experimental-websocket", "--no-warnings"],
            script,
            "node-raw-cdp",
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let want = title.clone().unwrap_or_default();
        samples = compare_with_worker(
            &mut worker,
            |i| measure_session(&ws_url, "cdp", i, &page_url, title.as_deref()),
            &ws_url,
            &page_url,
            &want,
            common.samples,
            Duration::from_millis(common.pause_ms),
        )
        .await;
        worker.stop().await;
    } else {
        for i in 0..common.samples {
            samples.push(measure_session(&ws_url, "cdp", i, &page_url, title.as_deref()).await);
            tokio::time::sleep(Duration::from_millis(common.pause_ms)).await;
        }
    }
    if let Some(b) = browser {
        b.stop().await;
    }
    Ok(Report::new(page_url, samples))
}

fn emit(report: &Report, common: &CommonArgs, compare: Option<(&str, &str)>) -> anyhow::Result<()> {
    if let Some(p) = &common.json_out {
        std::fs::write(p, report.to_json()).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &common.html_out {
        std::fs::write(p, render_html(report))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let out = match common.format {
        Format::Table => render_table(report),
        Format::Json => report.to_json(),
        Format::Markdown => render_markdown(report),
        Format::Html => render_html(report),
    };
    print!("{out}");
    if let (Some((stable, canary)), Format::Table | Format::Markdown) = (compare, common.format) {
        println!();
        print!("{}", render_compare(report, stable, canary));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sandcanary_bench=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let report = match &cli.command {
        Command::Run { target, common } => {
            let t = match (&target.proxy, &target.admin, target.local) {
                (Some(p), Some(a), false) => {
                    let name = target.name.clone().unwrap_or_else(|| "proxy".into());
                    proxy_target(&name, p.clone(), a.clone(), &target.auth)?
                }
                (None, _, true) => local_target(target.name.as_deref().unwrap_or("local"), common)?,
                _ => bail!("choose a target: --proxy URL --admin URL, or --local"),
            };
            let report = bench(vec![t], common).await?;
            emit(&report, common, None)?;
            report
        }
        Command::Compare {
            stable_proxy,
            stable_admin,
            canary_proxy,
            canary_admin,
            auth,
            common,
        } => {
            let side = |name: &str,
                        p: &Option<String>,
                        a: &Option<String>|
             -> anyhow::Result<Box<dyn Target>> {
                match (p, a) {
                    (Some(p), Some(a)) => proxy_target(name, p.clone(), a.clone(), auth),
                    (None, None) => local_target(name, common),
                    _ => bail!("--{name}-proxy and --{name}-admin go together"),
                }
            };
            let targets = vec![
                side("stable", stable_proxy, stable_admin)?,
                side("canary", canary_proxy, canary_admin)?,
            ];
            let report = bench(targets, common).await?;
            emit(&report, common, Some(("stable", "canary")))?;
            report
        }
        Command::Clients {
            official_script,
            common,
        } => {
            let report = bench_clients(official_script.clone(), common).await?;
            emit(&report, common, Some(("node-client", "rust-client")))?;
            report
        }
        Command::BreakdownCost { common } => {
            let report = bench_breakdown_cost(common).await?;
            emit(&report, common, Some(("off", "on")))?;
            report
        }
        Command::Cdp {
            cdp_url,
            chromium,
            baseline,
            common,
        } => {
            let report = bench_cdp(cdp_url.as_deref(), chromium, *baseline, common).await?;
            let pair = baseline.then_some(("node-raw-cdp", "cdp"));
            emit(&report, common, pair)?;
            report
        }
    };
    if !report.all_ok() {
        std::process::exit(1);
    }
    Ok(())
}
