//! Shared helpers for the integration tests: sample builders and a scripted HTTP fake.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sandcanary_judge::{Comparison, FailedSample, ScenarioSamples, TargetSamples};

/// Deterministic pseudo-random numbers (a 64-bit LCG) so tests never flake.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A latency-like sample: base plus exponential-ish jitter.
    pub fn latency(&mut self, base: f64, jitter: f64) -> f64 {
        base + jitter * -(1.0 - self.next_f64()).ln()
    }
}

pub fn samples(seed: u64, n: usize, base: f64, jitter: f64) -> Vec<f64> {
    let mut r = Lcg::new(seed);
    (0..n).map(|_| r.latency(base, jitter)).collect()
}

/// One target with the given `(scenario, phase, values)` and failures per scenario.
pub fn target(
    metrics: &[(&str, &str, Vec<f64>)],
    failures: &[(&str, usize, &str)],
) -> TargetSamples {
    let mut t = TargetSamples::default();
    for (scenario, phase, values) in metrics {
        t.scenarios
            .entry(scenario.to_string())
            .or_insert_with(ScenarioSamples::default)
            .phases
            .insert(phase.to_string(), values.clone());
    }
    for (scenario, count, reason) in failures {
        let s = t.scenarios.entry(scenario.to_string()).or_default();
        for _ in 0..*count {
            s.failures.push(FailedSample {
                phase: Some("goto_ms".into()),
                reason: reason.to_string(),
            });
        }
    }
    t
}

/// Stable and canary with cold/warm scenarios; the canary's warm.total_ms is multiplied by
/// `warm_factor`.
pub fn bench_like(warm_factor: f64) -> Comparison {
    let n = 60;
    let stable = target(
        &[
            ("cold", "connect_ms", samples(1, n, 900.0, 60.0)),
            ("cold", "total_ms", samples(2, n, 1500.0, 80.0)),
            ("warm", "connect_ms", samples(3, n, 8.0, 1.0)),
            ("warm", "total_ms", samples(4, n, 60.0, 5.0)),
        ],
        &[],
    );
    let canary = target(
        &[
            ("cold", "connect_ms", samples(11, n, 900.0, 60.0)),
            ("cold", "total_ms", samples(12, n, 1500.0, 80.0)),
            ("warm", "connect_ms", samples(13, n, 8.0, 1.0)),
            (
                "warm",
                "total_ms",
                samples(14, n, 60.0, 5.0)
                    .into_iter()
                    .map(|v| v * warm_factor)
                    .collect(),
            ),
        ],
        &[],
    );
    Comparison { stable, canary }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

/// A scripted reply. `{{id}}` in the body is replaced by the request's JSON-RPC id.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// An HTTP server on 127.0.0.1:0 that answers from a script and records every request.
pub struct Fake {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    /// Starts the fake; once the script runs out the last reply repeats.
    pub async fn start(script: Vec<Reply>) -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let last: Arc<Mutex<Option<Reply>>> = Arc::default();
        let rec = requests.clone();
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let rec = rec.clone();
            let script = script.clone();
            let last = last.clone();
            async move {
                let json: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let id = json["id"].as_str().unwrap_or_default().to_string();
                rec.lock().unwrap().push(Recorded {
                    method,
                    path: uri.path().to_string(),
                    headers,
                    body: json,
                });
                let reply = {
                    let mut s = script.lock().unwrap();
                    let mut l = last.lock().unwrap();
                    match s.pop_front() {
                        Some(r) => {
                            *l = Some(r.clone());
                            r
                        }
                        None => l.clone().expect("script must not be empty"),
                    }
                };
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let mut resp: Response = (
                    StatusCode::from_u16(reply.status).unwrap(),
                    reply.body.replace("{{id}}", &id),
                )
                    .into_response();
                for (k, v) in reply.headers {
                    resp.headers_mut().insert(k, v.parse().unwrap());
                }
                resp
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}
