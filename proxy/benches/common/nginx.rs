//! Debian's nginx as the baseline reverse proxy, configured from bench/proxy/nginx.conf.tmpl and
//! started on a free loopback port in front of the same upstream the proxy uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::proxy::rss_kib;

const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/proxy/nginx.conf.tmpl")
}

impl Nginx {
    /// Starts nginx with `workers` worker processes proxying to `upstream`.
    pub async fn start(upstream: SocketAddr, workers: usize) -> Result<Self> {
        if !Path::new(NGINX).exists() {
            bail!(
                "{NGINX} is missing: run `scripts/setup-system.sh --bench` (installs nginx-light)"
            );
        }
        let addr: SocketAddr = sandcanary_testkit::free_loopback_addr()?;
        let dir = std::env::temp_dir().join(format!(
            "proxybench-nginx-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir)?;
        let conf = std::fs::read_to_string(template())
            .with_context(|| format!("read {}", template().display()))?
            .replace("@PREFIX@", &dir.to_string_lossy())
            .replace("@WORKERS@", &workers.to_string())
            .replace("@LISTEN@", &addr.to_string())
            .replace("@UPSTREAM@", &upstream.to_string());
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start nginx")?;
        let mut n = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = n.child.try_wait()? {
                let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
                bail!("nginx exited during start-up: {status}: {log}");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(n);
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Total RSS of the master and its workers, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let master = self.child.id();
        let mut total = rss_kib(master)?;
        let kids = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default();
        for pid in kids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            total += rss_kib(pid).unwrap_or(0);
        }
        Ok(total)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown; the master stops its workers.
        // SAFETY: kill(2) on our own child; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
