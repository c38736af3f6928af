//! The go-plugin start-up contract: the magic cookie, a listening unix socket, and the one
//! handshake line on stdout (written only after the socket listens).

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// What host and plugin agree on before anything else.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    pub protocol_version: u32,
    pub magic_cookie_key: String,
    pub magic_cookie_value: String,
}

impl HandshakeConfig {
    /// The values Argo Rollouts uses for metric-provider plugins.
    pub fn argo_metric_provider() -> Self {
        HandshakeConfig {
            protocol_version: 1,
            magic_cookie_key: "ARGO_ROLLOUTS_RPC_PLUGIN".into(),
            magic_cookie_value: "metricprovider".into(),
        }
    }
}

/// Start-up failures, each with text a person running the binary by hand can act on.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "This binary is a plugin. These are not meant to be executed directly.\n\
         Please execute the program that consumes these plugins, which will\n\
         load any plugins automatically (missing or wrong {0})"
    )]
    NotLaunchedByHost(String),
    #[error("cannot create the plugin socket in {dir}: {source}")]
    Listen {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the handshake line: {0}")]
    Stdout(std::io::Error),
}

/// Fails unless the host set the magic cookie; a person running the binary gets the message.
pub fn check_cookie(cfg: &HandshakeConfig) -> Result<(), HandshakeError> {
    match std::env::var(&cfg.magic_cookie_key) {
        Ok(v) if v == cfg.magic_cookie_value => Ok(()),
        _ => Err(HandshakeError::NotLaunchedByHost(
            cfg.magic_cookie_key.clone(),
        )),
    }
}

/// The directory Go plugins put their socket in.
fn socket_dir() -> PathBuf {
    for var in ["PLUGIN_UNIX_SOCKET_DIR", "TMPDIR"] {
        if let Ok(d) = std::env::var(var)
            && !d.is_empty()
        {
            return PathBuf::from(d);
        }
    }
    PathBuf::from("/tmp")
}

/// A listening unix socket at a fresh path; the path is removed again when dropped.
pub struct PluginListener {
    pub listener: UnixListener,
    pub path: PathBuf,
}

impl Drop for PluginListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket the host will dial. Must happen before the handshake line is written.
pub fn listen() -> Result<PluginListener, HandshakeError> {
    listen_in(&socket_dir())
}

pub fn listen_in(dir: &Path) -> Result<PluginListener, HandshakeError> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = None;
    for attempt in 0..16u32 {
        let n = seed.wrapping_mul(2654435761).wrapping_add(attempt) % 1_000_000_000;
        let path = dir.join(format!("plugin{}{:09}", std::process::id(), n));
        match UnixListener::bind(&path) {
            Ok(listener) => return Ok(PluginListener { listener, path }),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => {
                return Err(HandshakeError::Listen {
                    dir: dir.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    Err(HandshakeError::Listen {
        dir: dir.to_path_buf(),
        source: last.unwrap_or_else(|| std::io::Error::other("no free socket name")),
    })
}

/// `CORE|APP|unix|PATH|netrpc|` as go-plugin's host parses it.
pub fn handshake_line(cfg: &HandshakeConfig, path: &Path) -> String {
    format!(
        "1|{}|unix|{}|netrpc|\n",
        cfg.protocol_version,
        path.display()
    )
}

/// Writes the handshake line to stdout and flushes. Nothing else may go to stdout afterwards.
pub fn announce(cfg: &HandshakeConfig, path: &Path) -> Result<(), HandshakeError> {
    let mut out = std::io::stdout().lock();
    out.write_all(handshake_line(cfg, path).as_bytes())
        .and_then(|_| out.flush())
        .map_err(HandshakeError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_fields_the_host_parses() {
        let cfg = HandshakeConfig::argo_metric_provider();
        let line = handshake_line(&cfg, Path::new("/tmp/plugin123"));
        assert_eq!(line, "1|1|unix|/tmp/plugin123|netrpc|\n");
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 6);
    }

    #[tokio::test]
    async fn listener_path_is_removed_on_drop() {
        let dir = std::env::temp_dir();
        let l = listen_in(&dir).unwrap();
        let p = l.path.clone();
        assert!(p.exists());
        assert!(p.as_os_str().len() < 108);
        drop(l);
        assert!(!p.exists());
    }

    #[test]
    fn cookie_mismatch_explains_itself() {
        let cfg = HandshakeConfig {
            protocol_version: 1,
            magic_cookie_key: "SANDCANARY_TEST_COOKIE_NEVER_SET".into(),
            magic_cookie_value: "x".into(),
        };
        let e = check_cookie(&cfg).unwrap_err().to_string();
        assert!(e.contains("This binary is a plugin"), "{e}");
    }
}
