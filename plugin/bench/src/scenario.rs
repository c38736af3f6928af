//! The three measured situations and the loop that samples them, interleaved across targets.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::breakdown::Breakdown;
use crate::mcp::McpClient;
use crate::playwright::{ConnectOptions, PlaywrightClient, WaitUntil};
use crate::target::{Endpoint, Target};

/// A measured situation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// No sandbox exists for the id: the connect includes creating one.
    Cold,
    /// The sandbox is up and was used before.
    Warm,
    /// The sandbox was suspended: the connect includes resuming it.
    Restore,
    /// A warm sandbox driven over MCP-over-HTTP (@playwright/mcp) instead of the WebSocket.
    Mcp,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Cold,
        Scenario::Warm,
        Scenario::Restore,
        Scenario::Mcp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Cold => "cold",
            Scenario::Warm => "warm",
            Scenario::Restore => "restore",
            Scenario::Mcp => "mcp",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s.trim())
            .ok_or_else(|| format!("unknown scenario {s:?} (expected cold, warm, restore or mcp)"))
    }
}

/// The timed phases of one sample, serialized as the columns `connect_ms`, `newPage_ms`,
/// `goto_ms` and `total_ms` (the names the Go sandbox proxy's published bench tables use). For the
/// MCP scenario they mean initialize, tools/list and the navigate tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimedPhase {
    #[serde(rename = "connect_ms")]
    Connect,
    #[serde(rename = "newPage_ms")]
    NewPage,
    #[serde(rename = "goto_ms")]
    Goto,
    #[serde(rename = "total_ms")]
    Total,
}

impl TimedPhase {
    pub const ALL: [TimedPhase; 4] = [
        TimedPhase::Connect,
        TimedPhase::NewPage,
        TimedPhase::Goto,
        TimedPhase::Total,
    ];

    pub fn column(self) -> &'static str {
        match self {
            TimedPhase::Connect => "connect_ms",
            TimedPhase::NewPage => "newPage_ms",
            TimedPhase::Goto => "goto_ms",
            TimedPhase::Total => "total_ms",
        }
    }
}

/// One measured session. Failed samples keep their reason and whatever phases completed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub target: String,
    pub scenario: Scenario,
    pub index: usize,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub connect_ms: Option<f64>,
    #[serde(rename = "newPage_ms")]
    pub new_page_ms: Option<f64>,
    pub goto_ms: Option<f64>,
    pub total_ms: Option<f64>,
    pub status: Option<u16>,
    pub title: Option<String>,
    /// Identity of the sandbox instance that served the sample (pid or the proxy's `sandbox`).
    pub instance: Option<String>,
    /// Where the time went (Playwright samples with `RunConfig::breakdown` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
}

impl Sample {
    pub fn phase(&self, phase: TimedPhase) -> Option<f64> {
        match phase {
            TimedPhase::Connect => self.connect_ms,
            TimedPhase::NewPage => self.new_page_ms,
            TimedPhase::Goto => self.goto_ms,
            TimedPhase::Total => self.total_ms,
        }
    }
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub scenarios: Vec<Scenario>,
    pub samples: usize,
    /// Page to navigate to.
    pub page_url: String,
    /// Required page title; `None` only requires a non-failing navigation.
    pub expect_title: Option<String>,
    /// Required HTTP status of the page.
    pub expect_status: u16,
    pub goto_timeout: Duration,
    pub connect_timeout: Duration,
    /// Playwright version announced to servers (`None`: no version check).
    pub client_version: Option<String>,
    /// Pause between samples (lets the previous session wind down before the next is timed).
    pub pause: Duration,
    /// Record each Playwright sample's [`Breakdown`] (the 101, newPage's parts, and Chromium's
    /// navigation timing, read after the timed part).
    pub breakdown: bool,
}

impl RunConfig {
    pub fn new(page_url: impl Into<String>) -> Self {
        Self {
            scenarios: vec![Scenario::Cold, Scenario::Warm, Scenario::Restore],
            samples: 20,
            page_url: page_url.into(),
            expect_title: None,
            expect_status: 200,
            goto_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(180),
            client_version: Some(crate::playwright::DEFAULT_CLIENT_VERSION.to_string()),
            pause: Duration::from_millis(200),
            breakdown: false,
        }
    }
}

/// Remembers instance identities per target so a cold sample on a reused sandbox, or a warm or
/// restore sample on a new one, fails instead of producing a wrong number.
#[derive(Default)]
struct IdentityCheck {
    seen: HashSet<String>,
    last: HashMap<Scenario, String>,
}

impl IdentityCheck {
    fn check(
        &mut self,
        scenario: Scenario,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), String> {
        let Some(after) = after else {
            return Err("the target reported no sandbox instance".into());
        };
        let verdict = match scenario {
            Scenario::Cold if self.seen.contains(after) => Err(format!(
                "cold sample was served by an existing sandbox ({after})"
            )),
            Scenario::Warm | Scenario::Mcp => match (self.last.get(&scenario), before) {
                (Some(prev), _) if prev != after => Err(format!(
                    "warm sample was served by a new sandbox ({after}, before {prev})"
                )),
                (_, Some(b)) if b != after => Err(format!(
                    "warm sandbox changed during the sample ({b} -> {after})"
                )),
                _ => Ok(()),
            },
            Scenario::Restore => match before {
                Some(b) if b != after => Err(format!(
                    "restore was served by a new sandbox ({after}) instead of the suspended one ({b})"
                )),
                _ => Ok(()),
            },
            Scenario::Cold => Ok(()),
        };
        self.seen.insert(after.to_string());
        self.last.insert(scenario, after.to_string());
        verdict
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs every sample: for each index, each scenario, each target (the target order rotates with
/// the index) so drift on the machine hits all targets alike. `on_sample` sees each sample as it ends.
pub async fn run(
    targets: &mut [Box<dyn Target>],
    cfg: &RunConfig,
    mut on_sample: impl FnMut(&Sample),
) -> Vec<Sample> {
    let mut checks: Vec<IdentityCheck> = targets.iter().map(|_| IdentityCheck::default()).collect();
    let mut samples = Vec::new();
    let n = targets.len();
    for index in 0..cfg.samples {
        for &scenario in &cfg.scenarios {
            for k in 0..n {
                let t = (k + index) % n;
                let sample =
                    run_one(targets[t].as_mut(), &mut checks[t], scenario, index, cfg).await;
                if !sample.ok {
                    tracing::warn!(target = %sample.target, %scenario, index, error = sample.error.as_deref().unwrap_or(""), "sample failed");
                }
                on_sample(&sample);
                samples.push(sample);
                tokio::time::sleep(cfg.pause).await;
            }
        }
    }
    samples
}

async fn run_one(
    target: &mut dyn Target,
    check: &mut IdentityCheck,
    scenario: Scenario,
    index: usize,
    cfg: &RunConfig,
) -> Sample {
    let mut s = Sample {
        target: target.name().to_string(),
        scenario,
        index,
        ok: false,
        error: None,
        connect_ms: None,
        new_page_ms: None,
        goto_ms: None,
        total_ms: None,
        status: None,
        title: None,
        instance: None,
        breakdown: None,
    };
    let prepared = match target.prepare(scenario, index).await {
        Ok(p) => p,
        Err(e) => {
            s.error = Some(format!("prepare: {e}"));
            return s;
        }
    };
    if prepared.fresh && scenario != Scenario::Restore {
        // The first session on a new browser is slower; warm means "used before", so use it once.
        if let Ok(ep) = target.open(scenario).await
            && let Err(e) = warm_up(&ep, cfg).await
        {
            tracing::warn!(error = %e, "warm-up session failed");
        }
    }
    let result = if scenario == Scenario::Mcp {
        mcp_session(target, cfg, &mut s).await
    } else {
        playwright_session(target, cfg, &mut s).await
    };
    match target.observe(scenario).await {
        Ok(instance) => s.instance = instance,
        Err(e) => {
            s.error.get_or_insert(format!("observe: {e}"));
        }
    }
    let verdict = result.and_then(|()| {
        check.check(
            scenario,
            prepared.instance_before.as_deref(),
            s.instance.as_deref(),
        )
    });
    match verdict {
        Ok(()) if s.error.is_none() => s.ok = true,
        Ok(()) => {}
        Err(e) => {
            s.error.get_or_insert(e);
        }
    }
    s
}

async fn warm_up(ep: &Endpoint, cfg: &RunConfig) -> Result<(), String> {
    let client = PlaywrightClient::connect(&connect_options(ep, cfg))
        .await
        .map_err(|e| e.to_string())?;
    let page = client.new_page().await.map_err(|e| e.to_string())?;
    client
        .goto(&page, &cfg.page_url, WaitUntil::Load, cfg.goto_timeout)
        .await
        .map_err(|e| e.to_string())?;
    client.close().await;
    Ok(())
}

fn connect_options(ep: &Endpoint, cfg: &RunConfig) -> ConnectOptions {
    let mut opts = ConnectOptions::new(ep.ws_url.clone());
    opts.headers = ep.headers.clone();
    opts.client_version = cfg.client_version.clone();
    opts.connect_timeout = cfg.connect_timeout;
    opts
}

async fn playwright_session(
    target: &mut dyn Target,
    cfg: &RunConfig,
    s: &mut Sample,
) -> Result<(), String> {
    let t0 = Instant::now();
    let ep = target
        .open(s.scenario)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let client = PlaywrightClient::connect(&connect_options(&ep, cfg))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let t1 = Instant::now();
    s.connect_ms = Some(ms(t1 - t0));
    let outcome = async {
        let page = client
            .new_page()
            .await
            .map_err(|e| format!("newPage: {e}"))?;
        let t2 = Instant::now();
        s.new_page_ms = Some(ms(t2 - t1));
        let nav = client
            .goto(&page, &cfg.page_url, WaitUntil::Load, cfg.goto_timeout)
            .await
            .map_err(|e| format!("goto: {e}"))?;
        let t3 = Instant::now();
        s.goto_ms = Some(ms(t3 - t2));
        s.total_ms = Some(ms(t3 - t0));
        s.status = nav.status;
        if nav.status != Some(cfg.expect_status) {
            return Err(format!(
                "goto status {:?}, expected {}",
                nav.status, cfg.expect_status
            ));
        }
        let title = client
            .title(&page)
            .await
            .map_err(|e| format!("title: {e}"))?;
        s.title = Some(title.clone());
        // The timed part is over: reading the breakdown now cannot change the numbers above.
        if cfg.breakdown {
            let navigation = match client.navigation_timing(&page).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "navigation timing not read");
                    None
                }
            };
            s.breakdown = Some(Breakdown {
                upgrade_ms: ms(client.upgrade_time()),
                new_context_ms: ms(page.new_context),
                navigation,
            });
        }
        match &cfg.expect_title {
            Some(want) if *want != title => Err(format!("page title {title:?}, expected {want:?}")),
            _ => Ok(()),
        }
    }
    .await;
    client.close().await;
    outcome
}

async fn mcp_session(
    target: &mut dyn Target,
    cfg: &RunConfig,
    s: &mut Sample,
) -> Result<(), String> {
    let t0 = Instant::now();
    let ep = target
        .open(s.scenario)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let url = ep
        .mcp_url
        .clone()
        .ok_or("the target serves no MCP endpoint")?;
    let mut client = McpClient::initialize(&url, &ep.headers, cfg.connect_timeout)
        .await
        .map_err(|e| format!("mcp initialize: {e}"))?;
    let t1 = Instant::now();
    s.connect_ms = Some(ms(t1 - t0));
    let tools = client
        .list_tools()
        .await
        .map_err(|e| format!("mcp tools/list: {e}"))?;
    let t2 = Instant::now();
    s.new_page_ms = Some(ms(t2 - t1));
    if !tools.iter().any(|t| t == "browser_navigate") {
        return Err(format!(
            "mcp server offers no browser_navigate tool ({} tools)",
            tools.len()
        ));
    }
    let text = client
        .navigate(&cfg.page_url, cfg.goto_timeout)
        .await
        .map_err(|e| format!("mcp browser_navigate: {e}"))?;
    let t3 = Instant::now();
    s.goto_ms = Some(ms(t3 - t2));
    s.total_ms = Some(ms(t3 - t0));
    client.close().await;
    if let Some(want) = &cfg.expect_title {
        if !text.contains(want.as_str()) {
            return Err(format!(
                "navigate result does not mention the title {want:?}"
            ));
        }
        s.title = Some(want.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_and_print() {
        for sc in Scenario::ALL {
            assert_eq!(sc.as_str().parse::<Scenario>().unwrap(), sc);
        }
        assert!(
            "tepid"
                .parse::<Scenario>()
                .unwrap_err()
                .contains("unknown scenario")
        );
    }

    #[test]
    fn cold_on_a_seen_instance_fails() {
        let mut c = IdentityCheck::default();
        assert!(c.check(Scenario::Cold, None, Some("a")).is_ok());
        assert!(c.check(Scenario::Cold, None, Some("b")).is_ok());
        assert!(
            c.check(Scenario::Cold, None, Some("a"))
                .unwrap_err()
                .contains("existing sandbox")
        );
    }

    #[test]
    fn warm_on_a_new_instance_fails() {
        let mut c = IdentityCheck::default();
        assert!(c.check(Scenario::Warm, Some("w"), Some("w")).is_ok());
        assert!(c.check(Scenario::Warm, Some("w"), Some("w")).is_ok());
        assert!(
            c.check(Scenario::Warm, Some("x"), Some("x"))
                .unwrap_err()
                .contains("new sandbox")
        );
    }

    #[test]
    fn restore_must_reuse_the_suspended_instance() {
        let mut c = IdentityCheck::default();
        assert!(c.check(Scenario::Restore, Some("r"), Some("r")).is_ok());
        assert!(
            c.check(Scenario::Restore, Some("r"), Some("s"))
                .unwrap_err()
                .contains("suspended one")
        );
        assert!(c.check(Scenario::Restore, Some("r"), None).is_err());
    }
}
