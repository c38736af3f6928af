//! The `local` backend's settings (LOCAL_*), read only when BACKEND=local.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::values::{boolean, count, list, positive_dur, set};
use super::{ConfigError, err, sandbox_server};
use crate::backend::local::LocalSettings;

/// Settings of the local backend, as given.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Local backend")]
pub struct RawLocal {
    /// The sandbox server program.
    #[arg(long, env = "LOCAL_SANDBOX_SERVER")]
    pub local_sandbox_server: Option<String>,
    /// The node executable.
    #[arg(long, env = "LOCAL_NODE")]
    pub local_node: Option<String>,
    /// The Chromium executable.
    #[arg(long, env = "LOCAL_CHROMIUM")]
    pub local_chromium: Option<String>,
    /// Extra comma-separated Chromium flags.
    #[arg(long, env = "LOCAL_CHROMIUM_ARGS")]
    pub local_chromium_args: Option<String>,
    /// Started sandboxes kept ready for cold ensures.
    #[arg(long, env = "LOCAL_WARM_POOL")]
    pub local_warm_pool: Option<String>,
    /// The most sandboxes (pool included) that may run at once.
    #[arg(long, env = "LOCAL_MAX_SANDBOXES")]
    pub local_max_sandboxes: Option<String>,
    /// Also start @playwright/mcp in each sandbox.
    #[arg(long, env = "LOCAL_MCP")]
    pub local_mcp: Option<String>,
    /// Loopback address the sandboxes bind.
    #[arg(long, env = "LOCAL_BIND")]
    pub local_bind: Option<String>,
    /// Directory under which each sandbox gets its own TMPDIR and HOME.
    #[arg(long, env = "LOCAL_TMP_DIR")]
    pub local_tmp_dir: Option<String>,
    /// How long a sandbox may take to start.
    #[arg(long, env = "LOCAL_START_TIMEOUT")]
    pub local_start_timeout: Option<String>,
}

pub(super) fn settings(raw: &RawLocal) -> Result<LocalSettings, ConfigError> {
    let mut local = LocalSettings {
        sandbox_server: PathBuf::from(
            set(&raw.local_sandbox_server).unwrap_or(sandbox_server::IN_CHECKOUT),
        ),
        node: PathBuf::from(set(&raw.local_node).unwrap_or("node")),
        chromium: PathBuf::from(set(&raw.local_chromium).unwrap_or("/usr/bin/chromium")),
        chromium_args: list(&raw.local_chromium_args),
        warm_pool: count("LOCAL_WARM_POOL", &raw.local_warm_pool, 1, 0)?,
        max_sandboxes: count("LOCAL_MAX_SANDBOXES", &raw.local_max_sandboxes, 8, 1)?,
        mcp: boolean("LOCAL_MCP", &raw.local_mcp, false)?,
        bind: match set(&raw.local_bind) {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| err("LOCAL_BIND", format!("{v:?} is not an IP address")))?,
        },
        tmp_dir: set(&raw.local_tmp_dir)
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("sandcanary-local")),
        start_timeout: positive_dur("LOCAL_START_TIMEOUT", &raw.local_start_timeout, "60s")?,
    };
    let len = local.tmp_dir.as_os_str().len();
    if len > LocalSettings::MAX_TMP_DIR_BYTES {
        return Err(err(
            "LOCAL_TMP_DIR",
            format!(
                "{:?} is {len} bytes long; Chromium creates unix sockets in each sandbox's directory under it and socket paths are limited to 107 bytes, so use at most {} bytes (e.g. /tmp/sandcanary)",
                local.tmp_dir,
                LocalSettings::MAX_TMP_DIR_BYTES
            ),
        ));
    }
    if local.warm_pool > local.max_sandboxes {
        return Err(err(
            "LOCAL_WARM_POOL",
            format!(
                "{} is larger than LOCAL_MAX_SANDBOXES ({})",
                local.warm_pool, local.max_sandboxes
            ),
        ));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| err("LOCAL_SANDBOX_SERVER", format!("no working directory: {e}")))?;
    local.sandbox_server = sandbox_server::resolve(set(&raw.local_sandbox_server), &cwd)?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{base, fails};
    use super::super::{BackendConfig, Config, RawConfig};
    use super::RawLocal;

    #[test]
    fn each_local_rule_names_its_variable() {
        let BackendConfig::Local(l) = Config::from_raw(RawConfig {
            local: RawLocal {
                local_chromium_args: Some("--a, ,--b".into()),
                ..base().local
            },
            ..base()
        })
        .unwrap()
        .backend
        else {
            panic!("not local")
        };
        assert_eq!((l.warm_pool, l.max_sandboxes), (1, 8));
        assert_eq!(l.chromium_args, vec!["--a", "--b"]);
        fails(
            RawConfig {
                local: RawLocal {
                    local_warm_pool: Some("9".into()),
                    ..base().local
                },
                ..base()
            },
            "LOCAL_WARM_POOL",
            "larger than LOCAL_MAX_SANDBOXES",
        );
        fails(
            RawConfig {
                local: RawLocal {
                    local_max_sandboxes: Some("0".into()),
                    ..base().local
                },
                ..base()
            },
            "LOCAL_MAX_SANDBOXES",
            "below the minimum",
        );
        fails(
            RawConfig {
                local: RawLocal {
                    local_mcp: Some("maybe".into()),
                    ..base().local
                },
                ..base()
            },
            "LOCAL_MCP",
            "not a boolean",
        );
        fails(
            RawConfig {
                local: RawLocal {
                    local_sandbox_server: Some("/nonexistent/server.js".into()),
                    ..base().local
                },
                ..base()
            },
            "LOCAL_SANDBOX_SERVER",
            "not a file",
        );
        fails(
            RawConfig {
                local: RawLocal {
                    local_tmp_dir: Some("/tmp/a-rather-long-directory-name-for-sandboxes".into()),
                    ..base().local
                },
                ..base()
            },
            "LOCAL_TMP_DIR",
            "socket paths are limited to 107 bytes",
        );
    }
}
