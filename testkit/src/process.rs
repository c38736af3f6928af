//! [`ProxyBuilder`] starts the proxy binary; [`ProxyProcess`] is the running proxy.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::log::{LogTail, capture};
use crate::{Error, free_loopback_addr};

/// How many log lines a start-up error shows.
const ERROR_TAIL: usize = 40;

/// The proxy's command line, environment and how to wait for it. Unless the caller sets
/// `LISTEN_ADDR` / `METRICS_ADDR`, [`start`](Self::start) puts them on free loopback ports.
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    bin: PathBuf,
    label: String,
    env: Vec<(OsString, Option<OsString>)>,
    clear_env: bool,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    ready_path: &'static str,
    ready_timeout: Duration,
    stop_grace: Duration,
    echo: bool,
    log_file: bool,
}

impl ProxyBuilder {
    /// The binary at `bin` (in the proxy crate's own tests: `env!("CARGO_BIN_EXE_sandcanary-proxy")`).
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            label: "sandcanary-proxy".into(),
            env: Vec::new(),
            clear_env: false,
            args: Vec::new(),
            dir: None,
            ready_path: "/healthz",
            ready_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(15),
            echo: false,
            log_file: true,
        }
    }

    /// The workspace's proxy binary of the running test's profile ([`crate::proxy_binary`]).
    pub fn workspace() -> Result<Self, Error> {
        Ok(Self::new(crate::proxy_binary()?))
    }

    /// Names the process in messages, the echo prefix and the log file's name.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes a variable the test process may have (e.g. `LOCAL_SANDBOX_SERVER`).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts from an empty environment but for `PATH`.
    pub fn env_clear(mut self) -> Self {
        self.clear_env = true;
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// The admin path that must answer 200 before [`start`](Self::start) returns (default
    /// `/healthz`: listening; `/readyz` also waits for the backend).
    pub fn ready_path(mut self, path: &'static str) -> Self {
        self.ready_path = path;
        self
    }

    /// How long [`start`](Self::start) waits for the ready path (default 60 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// How long drop waits after SIGTERM before SIGKILL (default 15 s; zero: SIGKILL at once).
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Also prints every log line to the test's stderr as `[label] line`.
    pub fn echo_log(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Whether the log is also written to a file in the temp directory (default on; the file is
    /// removed on drop unless the test is failing).
    pub fn log_file(mut self, on: bool) -> Self {
        self.log_file = on;
        self
    }

    fn get(&self, key: &str) -> Option<&OsStr> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        if self.clear_env {
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.args(&self.args).stdin(Stdio::null());
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Runs the binary to its end with the environment as given (no ports added): for start-up
    /// errors.
    pub fn output(&self) -> Result<Output, Error> {
        self.command().output().map_err(|source| Error::Spawn {
            bin: self.bin.clone(),
            source,
        })
    }

    /// Starts the proxy and waits, blocking, until its admin listener answers the ready path.
    pub fn start(mut self) -> Result<ProxyProcess, Error> {
        let data = self.addr_of("LISTEN_ADDR")?;
        let admin = self.addr_of("METRICS_ADDR")?;
        let log_file = if self.log_file {
            let label = self
                .label
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            let label = label.strip_prefix("sandcanary-").unwrap_or(&label);
            let path = std::env::temp_dir().join(format!(
                "sandcanary-{label}-{}-{}.log",
                std::process::id(),
                data.port()
            ));
            let file = std::fs::File::create(&path).map_err(|source| Error::Spawn {
                bin: path.clone(),
                source,
            })?;
            eprintln!("{} log: {}", self.label, path.display());
            Some((path, file))
        } else {
            None
        };
        let mut child = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (log_path, file) = log_file.unzip();
        let tail = capture(stderr, file, self.echo.then(|| self.label.clone()));
        let mut proxy = ProxyProcess {
            child,
            label: self.label,
            data,
            admin,
            tail,
            log_path,
            stop_grace: self.stop_grace,
        };
        proxy.wait_ready(self.ready_path, self.ready_timeout)?;
        Ok(proxy)
    }

    /// [`start`](Self::start) on tokio's blocking pool, so that several proxies start at once.
    pub async fn start_async(self) -> Result<ProxyProcess, Error> {
        tokio::task::spawn_blocking(move || self.start())
            .await
            .expect("the start-up thread does not panic")
    }

    /// The address in `var`, or a free loopback port put there.
    fn addr_of(&mut self, var: &str) -> Result<SocketAddr, Error> {
        if let Some(addr) = self
            .get(var)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<SocketAddr>().ok())
            .filter(|a| a.port() != 0)
        {
            return Ok(addr);
        }
        let addr = free_loopback_addr()?;
        self.env.push((var.into(), Some(addr.to_string().into())));
        Ok(addr)
    }
}

/// The running proxy. Drop stops it: SIGTERM (it stops its sandboxes), SIGKILL after the grace,
/// and reaps it.
pub struct ProxyProcess {
    child: Child,
    label: String,
    data: SocketAddr,
    admin: SocketAddr,
    tail: LogTail,
    log_path: Option<PathBuf>,
    stop_grace: Duration,
}

impl ProxyProcess {
    /// The data listener (`LISTEN_ADDR`).
    pub fn data(&self) -> SocketAddr {
        self.data
    }

    /// The admin listener (`METRICS_ADDR`): health, metrics and the session API.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    pub fn data_url(&self) -> String {
        format!("http://{}", self.data)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines the proxy wrote to stderr.
    pub fn log_tail(&self, n: usize) -> String {
        self.tail.last(n)
    }

    /// SIGKILL and reap: a crash, as far as anyone else can tell.
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then the exit status once it stopped; `None` if it is still running after `grace`
    /// (it is left running).
    pub fn terminate(&mut self, grace: Duration) -> std::io::Result<Option<ExitStatus>> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Some(status));
        }
        // The pid is our own unreaped child, so it cannot name another process.
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_ready(&mut self, path: &'static str, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.child.try_wait().map_err(|source| Error::Wait {
                label: self.label.clone(),
                source,
            })?;
            if let Some(status) = exited {
                // Let the reader thread take in the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Err(Error::Exited {
                    label: self.label.clone(),
                    status,
                    tail: self.log_tail(ERROR_TAIL),
                });
            }
            if answers_200(self.admin, path) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    label: self.label.clone(),
                    admin: self.admin,
                    path,
                    timeout,
                    tail: self.log_tail(ERROR_TAIL),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let stopped = self.stop_grace > Duration::ZERO
            && matches!(self.terminate(self.stop_grace), Ok(Some(_)));
        if !stopped {
            if self.stop_grace > Duration::ZERO {
                eprintln!(
                    "{} did not stop within {:?} of SIGTERM; killing it",
                    self.label, self.stop_grace
                );
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(path) = &self.log_path {
            if std::thread::panicking() {
                eprintln!("{} log kept: {}", self.label, path.display());
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// One `GET path` on the admin listener; true on a 200. The listener is the proxy's own HTTP/1
/// server, so a request line and the status line are all this needs.
fn answers_200(admin: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&admin, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
