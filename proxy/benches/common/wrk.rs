//! Runs `wrk` (closed-loop HTTP load) and reads its summary: requests/s, latency percentiles, errors.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Socket errors plus non-2xx/3xx answers.
    pub errors: u64,
}

/// `wrk -t1 -c<conns> -d<secs>s --latency http://<addr>/`.
pub fn run(addr: SocketAddr, conns: usize, secs: u64) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .arg(format!("http://{addr}/"))
        .output()
        .context("run wrk (scripts/setup-system.sh --bench installs it)")?;
    if !out.status.success() {
        bail!(
            "wrk failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// A wrk latency such as `101.00us`, `2.31ms` or `1.02s`, in milliseconds.
fn latency_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e3)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

pub fn parse(text: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut saw_rps = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().context("Requests/sec")?;
            saw_rps = true;
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = latency_ms(v).context("50% latency")?;
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = latency_ms(v).context("99% latency")?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        } else if t.contains("requests in") {
            r.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    if !saw_rps {
        bail!("no Requests/sec in wrk output: {text}");
    }
    Ok(r)
}
