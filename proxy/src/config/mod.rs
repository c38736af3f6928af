//! Configuration: environment variables (the reference's names and defaults) with matching command-line
//! flags. Everything is validated before the proxy listens; an error names the variable and the rule.
//!
//! One module per component: [`raw`] is the command line as given; this module validates the general
//! settings (listeners, timeouts, upstream policies) and puts the pieces together; [`identity`] the
//! identity sources; `local`, `substrate` and `cluster` (sandboxclaim, karssandbox, isola) each build
//! their backend's own settings type, so [`Config::backend`] holds the chosen backend's settings and
//! an invalid combination cannot be represented; [`replicas`] and [`admission`] their features.

pub mod admission;
mod cluster;
pub mod duration;
pub mod identity;
mod local;
mod raw;
pub mod replicas;
pub mod sandbox_server;
mod substrate;
mod values;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};

use crate::backend::isola::IsolaSettings;
use crate::backend::kars::KarsSettings;
use crate::backend::local::LocalSettings;
use crate::backend::sandbox_claim::SandboxClaimSettings;
use crate::backend::substrate::SubstrateSettings;
pub use cluster::{RawIsola, RawKars, RawSandboxClaim};
pub use identity::{IdentityConfig, IdentityKind, IdentitySource, RawIdentity};
pub use local::RawLocal;
pub use raw::RawConfig;
pub use substrate::RawSubstrate;
use values::{count, dur, port, positive_dur, secret, set};
pub use values::{parse_authority, parse_listen_addr};

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Which backend provides sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Local,
    SandboxClaim,
    Substrate,
    KarsSandbox,
    Isola,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::SandboxClaim => "sandboxclaim",
            Self::Substrate => "substrate",
            Self::KarsSandbox => "karssandbox",
            Self::Isola => "isola",
        }
    }
}

/// The chosen backend with its settings, each the backend's own type.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    Local(LocalSettings),
    SandboxClaim(SandboxClaimSettings),
    Substrate(SubstrateSettings),
    KarsSandbox(KarsSettings),
    Isola(IsolaSettings),
}

impl BackendConfig {
    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Local(_) => BackendKind::Local,
            Self::SandboxClaim(_) => BackendKind::SandboxClaim,
            Self::Substrate(_) => BackendKind::Substrate,
            Self::KarsSandbox(_) => BackendKind::KarsSandbox,
            Self::Isola(_) => BackendKind::Isola,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPolicy {
    Rewrite,
    Preserve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginPolicy {
    Drop,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// The backend and its own settings: only the chosen backend's settings exist.
    pub backend: BackendConfig,
    pub pod_namespace: Option<String>,
    /// Pod label whose value is the caller's id; cluster backends put it on their objects too.
    pub label_key: String,
    pub identity: IdentityConfig,
    pub session_api_token: Option<SecretString>,
    pub idle_ttl: Duration,
    pub idle_check_interval: Duration,
    pub ensure_timeout: Duration,
    pub session_wait_timeout: Duration,
    pub delete_timeout: Duration,
    pub dial_timeout: Duration,
    pub read_header_timeout: Duration,
    pub max_header_bytes: usize,
    pub shutdown_grace: Duration,
    pub ws_shutdown_grace: Duration,
    pub sandbox_port: u16,
    pub sandbox_mcp_port: Option<u16>,
    pub upstream_host: HostPolicy,
    pub upstream_origin: OriginPolicy,
    pub log_format: LogFormat,
    /// Set when LEADER_ELECTION is on (several replicas).
    pub replicas: Option<replicas::ReplicasConfig>,
    pub admission: admission::AdmissionConfig,
}

impl Config {
    /// Whether the proxy talks to a Kubernetes API server (a Kubernetes-object backend or pod
    /// identity; substrate's actors live behind its own gRPC API).
    pub fn needs_kube(&self) -> bool {
        !matches!(
            self.backend,
            BackendConfig::Local(_) | BackendConfig::Substrate(_)
        ) || self.identity.uses(IdentityKind::Pods)
    }

    /// Reads the command line and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_raw(RawConfig::parse())
    }

    /// Validates raw settings. Order: addresses, ports and durations first, then identity, then the
    /// backend's own settings, so that the first error a user sees is the most basic one.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen_addr =
            parse_listen_addr("LISTEN_ADDR", set(&raw.listen_addr).unwrap_or(":9000"))?;
        let metrics_addr =
            parse_listen_addr("METRICS_ADDR", set(&raw.metrics_addr).unwrap_or(":9090"))?;
        let sandbox_port = port("SANDBOX_PORT", set(&raw.sandbox_port).unwrap_or("9222"))?;
        let sandbox_mcp_port = match set(&raw.sandbox_mcp_port).map(str::trim) {
            None | Some("0") => None,
            Some(v) => Some(port("SANDBOX_MCP_PORT", v)?),
        };
        let idle_ttl = positive_dur("IDLE_TTL", &raw.idle_ttl, "10m")?;
        let idle_check_interval =
            positive_dur("IDLE_CHECK_INTERVAL", &raw.idle_check_interval, "30s")?;
        let ensure_timeout = positive_dur("ENSURE_TIMEOUT", &raw.ensure_timeout, "30s")?;
        let session_wait_timeout = match set(&raw.session_wait_timeout) {
            None => ensure_timeout.max(Duration::from_secs(60)),
            Some(_) => {
                let d = positive_dur("SESSION_WAIT_TIMEOUT", &raw.session_wait_timeout, "")?;
                if d < ensure_timeout {
                    return Err(err(
                        "SESSION_WAIT_TIMEOUT",
                        format!(
                            "{} is shorter than ENSURE_TIMEOUT ({}); a request would give up on a sandbox that is still starting",
                            duration::format(d),
                            duration::format(ensure_timeout)
                        ),
                    ));
                }
                d
            }
        };
        let delete_timeout = positive_dur("DELETE_TIMEOUT", &raw.delete_timeout, "30s")?;
        let dial_timeout = positive_dur("DIAL_TIMEOUT", &raw.dial_timeout, "10s")?;
        let read_header_timeout =
            positive_dur("READ_HEADER_TIMEOUT", &raw.read_header_timeout, "10s")?;
        let max_header_bytes = count("MAX_HEADER_BYTES", &raw.max_header_bytes, 64 * 1024, 8192)?;
        let shutdown_grace = dur("SHUTDOWN_GRACE", &raw.shutdown_grace, "10s")?;
        let ws_shutdown_grace = dur("WS_SHUTDOWN_GRACE", &raw.ws_shutdown_grace, "30s")?;

        let upstream_host = match set(&raw.upstream_host).unwrap_or("rewrite") {
            "rewrite" => HostPolicy::Rewrite,
            "preserve" => HostPolicy::Preserve,
            v => {
                return Err(err(
                    "UPSTREAM_HOST",
                    format!("{v:?} is not one of rewrite, preserve"),
                ));
            }
        };
        let upstream_origin = match set(&raw.upstream_origin).unwrap_or("drop") {
            "drop" => OriginPolicy::Drop,
            "keep" => OriginPolicy::Keep,
            v => {
                return Err(err(
                    "UPSTREAM_ORIGIN",
                    format!("{v:?} is not one of drop, keep"),
                ));
            }
        };
        let log_format = match set(&raw.log_format).unwrap_or("json") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            v => return Err(err("LOG_FORMAT", format!("{v:?} is not one of json, text"))),
        };

        let backend = match set(&raw.backend).unwrap_or("local") {
            "local" => BackendKind::Local,
            "sandboxclaim" => BackendKind::SandboxClaim,
            "substrate" => BackendKind::Substrate,
            "karssandbox" => BackendKind::KarsSandbox,
            "isola" => BackendKind::Isola,
            v => {
                return Err(err(
                    "BACKEND",
                    format!(
                        "unknown BACKEND {v:?} (want local, sandboxclaim, substrate, karssandbox, or isola)"
                    ),
                ));
            }
        };
        let pod_namespace = set(&raw.pod_namespace).map(str::to_string);
        let label_key = identity::label_key(&raw)?;
        let identity = identity::settings(&raw.identity, backend, pod_namespace.as_deref())?;

        let session_api_token = secret(
            "SESSION_API_TOKEN",
            "SESSION_API_TOKEN_FILE",
            &raw.session_api_token,
            &raw.session_api_token_file,
        )?;
        if let Some(t) = &session_api_token
            && t.expose_secret().len() < 16
        {
            return Err(err("SESSION_API_TOKEN", "must be at least 16 characters"));
        }

        let backend = match backend {
            BackendKind::Local => BackendConfig::Local(local::settings(&raw.local)?),
            BackendKind::Substrate => {
                if upstream_host == HostPolicy::Preserve {
                    return Err(err(
                        "UPSTREAM_HOST",
                        "preserve cannot work with BACKEND=substrate: atenet routes by the Host header, which must name the actor",
                    ));
                }
                BackendConfig::Substrate(substrate::settings(&raw.substrate)?)
            }
            kind => {
                let Some(namespace) = pod_namespace.clone() else {
                    return Err(err(
                        "POD_NAMESPACE",
                        "POD_NAMESPACE is required (set via downward API)",
                    ));
                };
                let common = cluster::Common {
                    namespace,
                    label_key: label_key.clone(),
                    sandbox_port,
                    mcp_port: sandbox_mcp_port,
                };
                match kind {
                    BackendKind::SandboxClaim => BackendConfig::SandboxClaim(
                        cluster::sandbox_claim(&raw.sandbox_claim, common)?,
                    ),
                    BackendKind::KarsSandbox => {
                        BackendConfig::KarsSandbox(cluster::kars(&raw.kars, common)?)
                    }
                    _ => BackendConfig::Isola(cluster::isola(&raw.isola, common)?),
                }
            }
        };
        let replicas = replicas::ReplicasConfig::from_raw(
            &raw.replicas,
            backend.kind(),
            pod_namespace.as_deref(),
            idle_ttl,
        )?;
        let local = match &backend {
            BackendConfig::Local(l) => Some(l),
            _ => None,
        };
        let admission = admission::AdmissionConfig::from_raw(&raw.admission, local)?;

        Ok(Config {
            listen_addr,
            metrics_addr,
            backend,
            pod_namespace,
            label_key,
            identity,
            session_api_token,
            idle_ttl,
            idle_check_interval,
            ensure_timeout,
            session_wait_timeout,
            delete_timeout,
            dial_timeout,
            read_header_timeout,
            max_header_bytes,
            shutdown_grace,
            ws_shutdown_grace,
            sandbox_port,
            sandbox_mcp_port,
            upstream_host,
            upstream_origin,
            log_format,
            replicas,
            admission,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Valid settings of the local backend with one static identity.
    pub(crate) fn base() -> RawConfig {
        RawConfig {
            identity: RawIdentity {
                identity_static: Some("127.0.0.2=alice".into()),
                ..Default::default()
            },
            local: RawLocal {
                local_sandbox_server: Some(
                    concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Valid settings of the sandboxclaim backend (pod identity).
    pub(super) fn cluster() -> RawConfig {
        RawConfig {
            backend: Some("sandboxclaim".into()),
            pod_namespace: Some("proxy".into()),
            sandbox_claim: RawSandboxClaim {
                warmpool_name: Some("playwright".into()),
                ..base().sandbox_claim
            },
            identity: RawIdentity {
                identity_static: None,
                ..base().identity
            },
            ..base()
        }
    }

    /// Asserts that `raw` is rejected, naming `var` first and saying `needle`.
    pub(super) fn fails(raw: RawConfig, var: &str, needle: &str) {
        let e = Config::from_raw(raw).expect_err("config should be rejected");
        assert_eq!(e.var, var, "wrong variable in {e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        assert!(
            e.to_string().starts_with(var),
            "{e} does not start with the variable name"
        );
    }

    #[test]
    fn defaults_follow_the_reference() {
        let c = Config::from_raw(base()).unwrap();
        assert_eq!(c.listen_addr.port(), 9000);
        assert_eq!(c.metrics_addr.port(), 9090);
        assert_eq!(c.idle_ttl, Duration::from_secs(600));
        assert_eq!(c.idle_check_interval, Duration::from_secs(30));
        assert_eq!(c.ensure_timeout, Duration::from_secs(30));
        assert_eq!(c.session_wait_timeout, Duration::from_secs(60));
        assert_eq!(c.sandbox_port, 9222);
        assert_eq!(c.sandbox_mcp_port, None);
        assert_eq!(c.label_key, "playwright-id");
        assert_eq!(c.backend.kind(), BackendKind::Local);
        assert_eq!(c.identity.kinds(), vec![IdentityKind::Static]);
    }

    #[test]
    fn wait_budget_is_never_shorter_than_ensure_timeout() {
        let c = Config::from_raw(RawConfig {
            ensure_timeout: Some("180s".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(c.session_wait_timeout, Duration::from_secs(180));
        fails(
            RawConfig {
                ensure_timeout: Some("180s".into()),
                session_wait_timeout: Some("60s".into()),
                ..base()
            },
            "SESSION_WAIT_TIMEOUT",
            "shorter than ENSURE_TIMEOUT",
        );
    }

    #[test]
    fn each_rule_names_its_variable() {
        fails(
            RawConfig {
                idle_check_interval: Some("0s".into()),
                ..base()
            },
            "IDLE_CHECK_INTERVAL",
            "greater than zero",
        );
        fails(
            RawConfig {
                idle_check_interval: Some("-1s".into()),
                ..base()
            },
            "IDLE_CHECK_INTERVAL",
            "negative",
        );
        fails(
            RawConfig {
                idle_ttl: Some("0".into()),
                ..base()
            },
            "IDLE_TTL",
            "greater than zero",
        );
        fails(
            RawConfig {
                ensure_timeout: Some("soon".into()),
                ..base()
            },
            "ENSURE_TIMEOUT",
            "duration",
        );
        fails(
            RawConfig {
                sandbox_port: Some("70000".into()),
                ..base()
            },
            "SANDBOX_PORT",
            "70000 out of range 1..65535",
        );
        fails(
            RawConfig {
                sandbox_port: Some("x".into()),
                ..base()
            },
            "SANDBOX_PORT",
            "not an integer",
        );
        fails(
            RawConfig {
                sandbox_mcp_port: Some("0x1".into()),
                ..base()
            },
            "SANDBOX_MCP_PORT",
            "not an integer",
        );
        fails(
            RawConfig {
                listen_addr: Some("nowhere".into()),
                ..base()
            },
            "LISTEN_ADDR",
            "host:port",
        );
        fails(
            RawConfig {
                backend: Some("docker".into()),
                ..base()
            },
            "BACKEND",
            "unknown BACKEND \"docker\"",
        );
        fails(
            RawConfig {
                backend: Some("sandboxclaim".into()),
                ..base()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required (set via downward API)",
        );
        fails(
            RawConfig {
                upstream_host: Some("both".into()),
                ..base()
            },
            "UPSTREAM_HOST",
            "rewrite, preserve",
        );
        fails(
            RawConfig {
                session_api_token: Some("a".into()),
                session_api_token_file: Some("/x".into()),
                ..base()
            },
            "SESSION_API_TOKEN",
            "not both",
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = Config::from_raw(RawConfig {
            idle_ttl: Some(String::new()),
            sandbox_port: Some("  ".into()),
            ..base()
        })
        .unwrap();
        assert_eq!(c.idle_ttl, Duration::from_secs(600));
        assert_eq!(c.sandbox_port, 9222);
    }
}
