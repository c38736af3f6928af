//! Node baselines for our clients: a long-lived node worker runs one session per request line, so our
//! client and the baseline are timed against the same browser in the same run, interleaved.
//! test/fixtures/bench/official-client.js drives the official Playwright client; raw-cdp.js is a bare
//! CDP session on Node's WebSocket.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::playwright::{ConnectOptions, PlaywrightClient, WaitUntil};
use crate::scenario::{Sample, Scenario};

/// Phase timings and checks of one session, from either client.
#[derive(Debug, Clone, Deserialize)]
struct Answer {
    ok: bool,
    error: Option<String>,
    connect_ms: Option<f64>,
    #[serde(rename = "newPage_ms")]
    new_page_ms: Option<f64>,
    goto_ms: Option<f64>,
    total_ms: Option<f64>,
    status: Option<u16>,
    title: Option<String>,
}

/// A running worker.
pub struct NodeWorker {
    label: String,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// playwright-core version the worker loaded.
    pub version: String,
}

impl NodeWorker {
    /// Starts `node <node_args> <script>` and waits for its ready line; samples carry `label`.
    pub async fn start(
        node: &str,
        node_args: &[&str],
        script: PathBuf,
        label: &str,
    ) -> Result<Self, String> {
        let mut child = Command::new(node)
            .args(node_args)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {node} {}: {e}", script.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| "official client worker not ready after 60 s".to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("baseline worker exited before it was ready")?;
        let v: serde_json::Value =
            serde_json::from_str(&ready).map_err(|e| format!("bad ready line {ready:?}: {e}"))?;
        if v["ready"] != true {
            return Err(format!("baseline worker not ready: {ready}"));
        }
        Ok(Self {
            label: label.to_string(),
            child,
            stdin,
            lines,
            version: v["version"].as_str().unwrap_or("?").to_string(),
        })
    }

    /// One session run by the worker.
    pub async fn session(&mut self, ws_url: &str, page_url: &str, index: usize) -> Sample {
        let req = json!({"ws": ws_url, "url": page_url}).to_string() + "\n";
        let answer = async {
            self.stdin
                .write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let line = tokio::time::timeout(Duration::from_secs(240), self.lines.next_line())
                .await
                .map_err(|_| "baseline worker did not answer in 240 s".to_string())?
                .map_err(|e| e.to_string())?
                .ok_or("baseline worker exited")?;
            serde_json::from_str::<Answer>(&line).map_err(|e| format!("bad answer {line:?}: {e}"))
        }
        .await;
        to_sample(&self.label, index, answer)
    }

    pub async fn stop(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn to_sample(target: &str, index: usize, answer: Result<Answer, String>) -> Sample {
    let mut s = Sample {
        target: target.into(),
        scenario: Scenario::Warm,
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
    match answer {
        Err(e) => s.error = Some(e),
        Ok(a) => {
            s.ok = a.ok;
            s.error = a.error;
            s.connect_ms = a.connect_ms;
            s.new_page_ms = a.new_page_ms;
            s.goto_ms = a.goto_ms;
            s.total_ms = a.total_ms;
            s.status = a.status;
            s.title = a.title;
        }
    }
    s
}

/// One session with our Playwright client, timed at the same points as the official worker.
pub async fn native_session(ws_url: &str, page_url: &str, index: usize) -> Sample {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let answer = async {
        let t0 = tokio::time::Instant::now();
        let client = PlaywrightClient::connect(&ConnectOptions::new(ws_url))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let t1 = tokio::time::Instant::now();
        let page = client
            .new_page()
            .await
            .map_err(|e| format!("newPage: {e}"))?;
        let t2 = tokio::time::Instant::now();
        let nav = client
            .goto(&page, page_url, WaitUntil::Load, Duration::from_secs(30))
            .await
            .map_err(|e| format!("goto: {e}"))?;
        let t3 = tokio::time::Instant::now();
        let title = client
            .title(&page)
            .await
            .map_err(|e| format!("title: {e}"))?;
        client.close().await;
        Ok(Answer {
            ok: true,
            error: None,
            connect_ms: Some(ms(t1 - t0)),
            new_page_ms: Some(ms(t2 - t1)),
            goto_ms: Some(ms(t3 - t2)),
            total_ms: Some(ms(t3 - t0)),
            status: nav.status,
            title: Some(title),
        })
    }
    .await;
    to_sample("rust-client", index, answer)
}

/// Runs `samples` sessions with our client (`native`) and the worker against one warm browser,
/// alternating which goes first, after one untimed warm-up session each. Samples whose status or
/// title is wrong fail.
pub async fn compare_with_worker<F, Fut>(
    worker: &mut NodeWorker,
    native: F,
    ws_url: &str,
    page_url: &str,
    expect_title: &str,
    samples: usize,
    pause: Duration,
) -> Vec<Sample>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Sample>,
{
    let _ = native(0).await;
    let _ = worker.session(ws_url, page_url, 0).await;
    let mut out = Vec::new();
    for i in 0..samples {
        let mut pair = Vec::new();
        if i % 2 == 0 {
            pair.push(native(i).await);
            tokio::time::sleep(pause).await;
            pair.push(worker.session(ws_url, page_url, i).await);
        } else {
            pair.push(worker.session(ws_url, page_url, i).await);
            tokio::time::sleep(pause).await;
            pair.push(native(i).await);
        }
        tokio::time::sleep(pause).await;
        for mut s in pair {
            if s.ok && (s.status != Some(200) || s.title.as_deref() != Some(expect_title)) {
                s.ok = false;
                s.error = Some(format!("status {:?} title {:?}", s.status, s.title));
            }
            out.push(s);
        }
    }
    out
}
