//! Runs the plugin's analysis path directly, without Argo: reads the plugin JSON config, benches
//! stable against canary, judges, and prints the comparison table, the verdict and (in a dry
//! run) the GitHub issue it would file.
//!
//! ```sh
//! SANDCANARY_ADMIN_TOKEN=... SANDCANARY_IDENTITY_TOKEN=... \
//!   cargo run -p sandcanary-canary --example analyze -- --config analysis.json \
//!   [--arg canary-data=http://127.0.0.1:9001 ...] [--canary-delay-ms 1500]
//! ```
//!
//! `--canary-delay-ms` puts a delaying TCP relay in front of the canary's data port (a local,
//! simulated regression for demos). Exit status: 0 for a verdict, 2 for an Error outcome.

#[allow(dead_code)]
#[path = "../tests/support/delay_relay.rs"]
mod delay_relay;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use sandcanary_canary::{CanaryConfig, Progress, RunContext, VerdictPhase, run};
use sandcanary_github::ReportOutcome;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Run the sandcanary canary analysis directly (no Argo)")]
struct Args {
    /// The plugin JSON (what goes under provider.plugin["sandcanary/sandcanary"]).
    #[arg(long)]
    config: PathBuf,
    /// AnalysisRun argument, NAME=VALUE (for dataUrlArg / adminUrlArg); repeatable.
    #[arg(long = "arg", value_parser = parse_arg)]
    args: Vec<(String, String)>,
    /// Put a relay that delays every connection by this much in front of the canary's data port.
    #[arg(long)]
    canary_delay_ms: Option<u64>,
    /// Names used for the report.
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "sandcanary-proxy")]
    rollout: String,
    #[arg(long, default_value = "local-analysis")]
    analysis_run: String,
}

fn parse_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sandcanary_canary=info".into()),
        )
        .init();
    let cli = Args::parse();
    let raw =
        std::fs::read(&cli.config).with_context(|| format!("reading {}", cli.config.display()))?;
    let mut config = match CanaryConfig::from_json(&raw) {
        Ok(c) => c,
        Err(e) => bail!("invalid configuration {}: {e}", cli.config.display()),
    };
    let args: BTreeMap<String, String> = cli.args.into_iter().collect();

    // Keep the relay alive for the whole run.
    let mut _relay = None;
    if let Some(ms) = cli.canary_delay_ms {
        let (_, canary) = config
            .resolve_targets(&args)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let url = url::Url::parse(&canary.data_url)?;
        let host = url
            .host_str()
            .context("canary dataUrl has no host")?
            .to_string();
        let port = url
            .port_or_known_default()
            .context("canary dataUrl has no port")?;
        let relay =
            delay_relay::DelayRelay::start_to(host, port, Duration::from_millis(ms)).await?;
        eprintln!(
            "analyze: canary data port behind a {ms} ms delaying relay at {}",
            relay.url
        );
        config.canary.data_url = Some(relay.url.clone());
        config.canary.data_url_arg = None;
        _relay = Some(relay);
    }

    let ctx = RunContext {
        namespace: cli.namespace,
        analysis_run: cli.analysis_run,
        rollout: Some(cli.rollout),
        metric: "sandcanary".into(),
        args,
    };
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }
    let progress = Progress::new();
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!("analyze: {progress}");
            }
        })
    };
    let outcome = run(&config, &ctx, cancel, progress).await;
    ticker.abort();

    if !outcome.table.is_empty() {
        println!("## Stable vs canary\n\n{}", outcome.table);
    }
    println!("## Verdict\n");
    println!("phase:   {}", outcome.phase);
    println!("value:   {}", outcome.value());
    println!("message: {}", outcome.message);
    if let Some(v) = &outcome.verdict {
        println!("judge:   {}", v.judge);
        let failing = v.failing_metrics();
        if !failing.is_empty() {
            println!("failing: {}", failing.join(", "));
        }
        for r in &v.reasons {
            println!("  - {r}");
        }
    }
    println!("metadata: {}", serde_json::to_string(&outcome.summary)?);
    match &outcome.issue {
        Some(ReportOutcome::DryRun { draft, .. }) => {
            println!("\n## GitHub issue (dry run, not sent)\n");
            println!("title:  {}", draft.title);
            println!("labels: {}", draft.labels.join(", "));
            if !draft.assignees.is_empty() {
                println!("assignees: {}", draft.assignees.join(", "));
            }
            println!("\n{}", draft.body);
        }
        Some(other) => println!("\nGitHub: {other:?}"),
        None => {}
    }
    if outcome.phase == VerdictPhase::Error {
        std::process::exit(2);
    }
    Ok(())
}
