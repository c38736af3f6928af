//! Benchmark 4: HTTP requests/s and latency through the proxy vs nginx (Debian's nginx-light) as a
//! reverse proxy to the same upstream, with direct-to-upstream as the floor.
//!
//! wrk (closed loop, one thread) runs against the three targets in rotating order at each connection
//! count, so slow drift of the machine's load spreads over all of them.
//!
//! Run: `cargo bench -p sandcanary-proxy --bench http_load`
//! (env: `HTTP_CONNS=1,16,64,256`, `HTTP_SECS=4`, `HTTP_ROUNDS=2`, `NGINX_WORKERS=2`).

mod common;

use anyhow::Result;
use common::nginx::Nginx;
use common::proxy::ProxyProcess;
use common::report;
use common::wrk::{self, WrkResult};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[derive(Default)]
struct Acc {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: u64,
}

impl Acc {
    fn add(&mut self, r: &WrkResult) {
        self.rps.push(r.rps);
        self.p50.push(r.p50_ms);
        self.p99.push(r.p99_ms);
        self.errors += r.errors;
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

async fn run() -> Result<()> {
    let conns: Vec<usize> = env_or("HTTP_CONNS", "1,16,64,256")
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let secs: u64 = env_or("HTTP_SECS", "4").parse()?;
    let rounds: usize = env_or("HTTP_ROUNDS", "2").parse()?;
    let workers: usize = env_or("NGINX_WORKERS", "2").parse()?;

    let proxy = ProxyProcess::start(&[]).await?;
    let upstream = proxy.ensure_bench().await?;
    let nginx = Nginx::start(upstream, workers).await?;
    let targets = [
        ("direct", upstream),
        ("sandcanary-proxy", proxy.data),
        ("nginx", nginx.addr),
    ];
    println!(
        "http_load: upstream {upstream}, proxy {}, nginx {} ({workers} workers); wrk -t1 -d{secs}s x {rounds} rounds",
        proxy.data, nginx.addr
    );
    // Warm-up for each target: connection pools, allocator, page cache.
    for (_, addr) in targets {
        wrk::run(addr, 16, 1)?;
    }

    let mut rows = Vec::new();
    let mut total_errors = 0;
    for &c in &conns {
        let mut acc: [Acc; 3] = Default::default();
        for r in 0..rounds {
            for k in 0..targets.len() {
                let i = (k + r) % targets.len();
                let res = wrk::run(targets[i].1, c, secs)?;
                acc[i].add(&res);
            }
        }
        let [d, p, n] = &acc;
        total_errors += d.errors + p.errors + n.errors;
        let clean = d.errors + p.errors + n.errors == 0;
        let rps_ratio = mean(&p.rps) / mean(&n.rps);
        let p99_ratio = mean(&p.p99) / mean(&n.p99);
        rows.push(vec![
            c.to_string(),
            format!("{:.0}", mean(&d.rps)),
            format!("{:.0}", mean(&p.rps)),
            format!("{:.0}", mean(&n.rps)),
            format!("{rps_ratio:.2}"),
            format!("{:.2}", mean(&p.rps) / mean(&d.rps)),
            format!("{:.3}", mean(&d.p99)),
            format!("{:.3}", mean(&p.p99)),
            format!("{:.3}", mean(&n.p99)),
            format!("{p99_ratio:.2}"),
            format!("{}/{}/{}", d.errors, p.errors, n.errors),
            report::verdict(clean && rps_ratio >= 1.0 && p99_ratio <= 1.0),
        ]);
    }
    report::table(
        "HTTP through the proxy vs nginx (wrk, closed loop; rps = requests/s, latency in ms)",
        &[
            "connections",
            "direct rps",
            "proxy rps",
            "nginx rps",
            "proxy/nginx rps",
            "proxy/direct rps",
            "direct p99",
            "proxy p99",
            "nginx p99",
            "proxy/nginx p99",
            "errors direct/proxy/nginx",
            "match or beat nginx",
        ],
        &rows,
    );
    if total_errors > 0 {
        // wrk counts a request slower than its 2 s timeout as a socket error; the table says where.
        println!(
            "http_load: {total_errors} errors (socket errors, timeouts > 2 s or non-2xx answers); \
             rows with errors are NOT met"
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    common::main(run)
}
