//! Configuration: environment variables (the reference's names and defaults) with matching command-line
//! flags. Everything is validated before the proxy listens; an error names the variable and the rule.

pub mod admission;
pub mod duration;
pub mod replicas;
pub mod sandbox_server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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

/// Raw settings as given on the command line or in the environment. Empty strings count as unset,
/// as in the reference.
#[derive(Debug, Default, Clone, Parser)]
#[command(
    name = "sandcanary-proxy",
    version,
    about = "Routes each caller to its own browser sandbox",
    long_about = "Routes each caller to its own browser sandbox. Every flag can also be given as the \
                  environment variable shown beside it; flags win."
)]
pub struct RawConfig {
    /// Data listener (WebSocket and HTTP traffic to sandboxes).
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<String>,
    /// Admin listener: /healthz, /readyz, /metrics and the session API.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Sandbox backend: local, sandboxclaim, substrate, karssandbox or isola.
    #[arg(long, env = "BACKEND")]
    pub backend: Option<String>,
    /// Namespace of the proxy (Kubernetes backends and pod identity).
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// Pod label whose value is the caller's sandbox id.
    #[arg(long, env = "PLAYWRIGHT_LABEL_KEY")]
    pub playwright_label_key: Option<String>,
    /// Identity sources, comma-separated and tried in order: static, token, pods.
    #[arg(long, env = "IDENTITY")]
    pub identity: Option<String>,
    /// File of `<ip> <id>` lines for the static identity source.
    #[arg(long, env = "IDENTITY_STATIC_FILE")]
    pub identity_static_file: Option<String>,
    /// Inline static identities: `ip=id,ip=id`.
    #[arg(long, env = "IDENTITY_STATIC")]
    pub identity_static: Option<String>,
    /// Bearer token that lets a trusted caller name its id in a header (token identity).
    #[arg(long, env = "IDENTITY_TOKEN", hide_env_values = true)]
    pub identity_token: Option<String>,
    /// File holding the identity bearer token.
    #[arg(long, env = "IDENTITY_TOKEN_FILE")]
    pub identity_token_file: Option<String>,
    /// Header in which a token-authenticated caller names its id.
    #[arg(long, env = "IDENTITY_ID_HEADER")]
    pub identity_id_header: Option<String>,
    /// Bearer token for the admin session API (off when unset).
    #[arg(long, env = "SESSION_API_TOKEN", hide_env_values = true)]
    pub session_api_token: Option<String>,
    /// File holding the session API token.
    #[arg(long, env = "SESSION_API_TOKEN_FILE")]
    pub session_api_token_file: Option<String>,
    /// Reap a sandbox after this long without traffic or open connections.
    #[arg(long, env = "IDLE_TTL")]
    pub idle_ttl: Option<String>,
    /// How often the reaper looks for idle sessions.
    #[arg(long, env = "IDLE_CHECK_INTERVAL")]
    pub idle_check_interval: Option<String>,
    /// Budget of one backend ensure (create and wait until ready).
    #[arg(long, env = "ENSURE_TIMEOUT")]
    pub ensure_timeout: Option<String>,
    /// How long a request waits for its session; never shorter than ENSURE_TIMEOUT.
    #[arg(long, env = "SESSION_WAIT_TIMEOUT")]
    pub session_wait_timeout: Option<String>,
    /// Budget of one backend delete issued by the reaper or the session API.
    #[arg(long, env = "DELETE_TIMEOUT")]
    pub delete_timeout: Option<String>,
    /// Dial timeout towards a sandbox.
    #[arg(long, env = "DIAL_TIMEOUT")]
    pub dial_timeout: Option<String>,
    /// Time a client has to send its request head (slowloris guard).
    #[arg(long, env = "READ_HEADER_TIMEOUT")]
    pub read_header_timeout: Option<String>,
    /// Largest request head accepted, in bytes (431 beyond).
    #[arg(long, env = "MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<String>,
    /// On SIGTERM: how long in-flight HTTP requests may take to finish.
    #[arg(long, env = "SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// On SIGTERM: how long open WebSockets are left to finish before they are closed.
    #[arg(long, env = "WS_SHUTDOWN_GRACE")]
    pub ws_shutdown_grace: Option<String>,
    /// Sandbox WebSocket port (Kubernetes backends).
    #[arg(long, env = "SANDBOX_PORT")]
    pub sandbox_port: Option<String>,
    /// Sandbox MCP-over-HTTP port; 0 or unset sends HTTP to SANDBOX_PORT.
    #[arg(long, env = "SANDBOX_MCP_PORT")]
    pub sandbox_mcp_port: Option<String>,
    /// Upstream Host header: `rewrite` to the sandbox authority, or `preserve` the client's.
    #[arg(long, env = "UPSTREAM_HOST")]
    pub upstream_host: Option<String>,
    /// Client Origin header on the upstream leg: `drop` (Chromium's DevTools endpoint rejects any) or `keep`.
    #[arg(long, env = "UPSTREAM_ORIGIN")]
    pub upstream_origin: Option<String>,
    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Budget of the API fallback lookup for a caller the pod cache does not know yet (informer lag);
    /// after it the caller gets 403.
    #[arg(long, env = "IDENTITY_LOOKUP_TIMEOUT")]
    pub identity_lookup_timeout: Option<String>,
    /// sandboxclaim backend: the SandboxWarmPool every claim references.
    #[arg(long, env = "WARMPOOL_NAME")]
    pub warmpool_name: Option<String>,
    /// sandboxclaim backend: accepted for compatibility with the reference; v1beta1 claims reference
    /// only the warm pool, so it is not used.
    #[arg(long, env = "SANDBOX_TEMPLATE_NAME")]
    pub sandbox_template_name: Option<String>,
    /// karssandbox backend: the inference reference every sandbox gets.
    #[arg(long, env = "KARS_INFERENCE_REF")]
    pub kars_inference_ref: Option<String>,
    /// karssandbox backend: the sandbox container image.
    #[arg(long, env = "KARS_SANDBOX_IMAGE")]
    pub kars_sandbox_image: Option<String>,
    /// substrate backend: the ate-api gRPC endpoint, host:port.
    #[arg(long, env = "SUBSTRATE_API_ENDPOINT")]
    pub substrate_api_endpoint: Option<String>,
    /// substrate backend: the atenet router every sandbox is reached through (by Host header), host:port.
    #[arg(long, env = "SUBSTRATE_ROUTER_ADDR")]
    pub substrate_router_addr: Option<String>,
    /// substrate backend: the ActorTemplate of new actors, namespace/name.
    #[arg(long, env = "SUBSTRATE_ACTOR_TEMPLATE")]
    pub substrate_actor_template: Option<String>,
    /// substrate backend: resume with boot=true (from the template, not a snapshot).
    #[arg(long, env = "SUBSTRATE_FORCE_BOOT")]
    pub substrate_force_boot: Option<String>,
    /// substrate backend: `verify` (TLS, the default), `skip-verify` (TLS without checking the
    /// certificate: the reference's behaviour) or `plaintext` (no TLS).
    #[arg(long, env = "SUBSTRATE_TLS")]
    pub substrate_tls: Option<String>,
    /// substrate backend: PEM bundle of the CAs that sign the API's certificate (default: system roots).
    #[arg(long, env = "SUBSTRATE_CA_FILE")]
    pub substrate_ca_file: Option<String>,
    /// substrate backend: name to verify the API's certificate against (and send as SNI), when it is
    /// not the endpoint's host.
    #[arg(long, env = "SUBSTRATE_TLS_SERVER_NAME")]
    pub substrate_tls_server_name: Option<String>,
    /// substrate backend: deadline of each gRPC call.
    #[arg(long, env = "SUBSTRATE_CALL_TIMEOUT")]
    pub substrate_call_timeout: Option<String>,
    /// substrate backend: attempts per gRPC call when substrate answers Aborted or Unavailable.
    #[arg(long, env = "SUBSTRATE_MAX_ATTEMPTS")]
    pub substrate_max_attempts: Option<String>,
    /// substrate backend: interval of the GetActor and readiness polls.
    #[arg(long, env = "SUBSTRATE_POLL_INTERVAL")]
    pub substrate_poll_interval: Option<String>,
    /// substrate backend: how long an actor may take to reach RUNNING (or SUSPENDED on delete).
    #[arg(long, env = "SUBSTRATE_RUNNING_TIMEOUT")]
    pub substrate_running_timeout: Option<String>,
    /// substrate backend: how long a RUNNING actor's workload may take to answer through the router.
    #[arg(long, env = "SUBSTRATE_PROBE_TIMEOUT")]
    pub substrate_probe_timeout: Option<String>,
    /// isola backend: namespace of the Sandbox objects (isola's `sandboxNamespace.name`).
    #[arg(long, env = "ISOLA_NAMESPACE")]
    pub isola_namespace: Option<String>,
    /// isola backend: the sandbox container image.
    #[arg(long, env = "ISOLA_SANDBOX_IMAGE")]
    pub isola_sandbox_image: Option<String>,
    /// isola backend: comma-separated CIDRs the sandboxes may reach besides the internet.
    #[arg(long, env = "ISOLA_ALLOWED_EGRESS_CIDRS")]
    pub isola_allowed_egress_cidrs: Option<String>,
    /// Local backend: the sandbox server program.
    #[arg(long, env = "LOCAL_SANDBOX_SERVER")]
    pub local_sandbox_server: Option<String>,
    /// Local backend: the node executable.
    #[arg(long, env = "LOCAL_NODE")]
    pub local_node: Option<String>,
    /// Local backend: the Chromium executable.
    #[arg(long, env = "LOCAL_CHROMIUM")]
    pub local_chromium: Option<String>,
    /// Local backend: extra comma-separated Chromium flags.
    #[arg(long, env = "LOCAL_CHROMIUM_ARGS")]
    pub local_chromium_args: Option<String>,
    /// Local backend: started sandboxes kept ready for cold ensures.
    #[arg(long, env = "LOCAL_WARM_POOL")]
    pub local_warm_pool: Option<String>,
    /// Local backend: the most sandboxes (pool included) that may run at once.
    #[arg(long, env = "LOCAL_MAX_SANDBOXES")]
    pub local_max_sandboxes: Option<String>,
    /// Local backend: also start @playwright/mcp in each sandbox.
    #[arg(long, env = "LOCAL_MCP")]
    pub local_mcp: Option<String>,
    /// Local backend: loopback address the sandboxes bind.
    #[arg(long, env = "LOCAL_BIND")]
    pub local_bind: Option<String>,
    /// Local backend: directory under which each sandbox gets its own TMPDIR and HOME.
    #[arg(long, env = "LOCAL_TMP_DIR")]
    pub local_tmp_dir: Option<String>,
    /// Local backend: how long a sandbox may take to start.
    #[arg(long, env = "LOCAL_START_TIMEOUT")]
    pub local_start_timeout: Option<String>,
    #[command(flatten)]
    pub replicas: replicas::RawReplicas,
    #[command(flatten)]
    pub admission: admission::RawAdmission,
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

/// One identity source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    Static,
    Token,
    Pods,
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

/// A secret kept out of `Debug` output so it cannot end up in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub sandbox_server: PathBuf,
    pub node: PathBuf,
    pub chromium: PathBuf,
    pub chromium_args: Vec<String>,
    pub warm_pool: usize,
    pub max_sandboxes: usize,
    pub mcp: bool,
    pub bind: IpAddr,
    pub tmp_dir: PathBuf,
    pub start_timeout: Duration,
}

/// Settings of the `sandboxclaim` backend (agent-sandbox and OpenShell).
#[derive(Debug, Clone)]
pub struct SandboxClaimConfig {
    pub warmpool_name: String,
}

/// Settings of the `karssandbox` backend.
#[derive(Debug, Clone)]
pub struct KarsConfig {
    pub inference_ref: String,
    pub image: String,
}

/// How the substrate backend secures its gRPC connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubstrateTls {
    /// TLS, certificate checked against SUBSTRATE_CA_FILE or the system roots.
    Verify,
    /// TLS without checking the certificate (the reference's only mode); an explicit opt-in.
    SkipVerify,
    /// No TLS at all; an explicit opt-in.
    Plaintext,
}

/// Settings of the `substrate` backend (spec §5.2).
#[derive(Debug, Clone)]
pub struct SubstrateConfig {
    pub api_endpoint: crate::backend::Authority,
    pub router: crate::backend::Authority,
    pub template_namespace: String,
    pub template_name: String,
    pub force_boot: bool,
    pub tls: SubstrateTls,
    /// CAs from SUBSTRATE_CA_FILE; empty means the system roots.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub tls_server_name: Option<String>,
    pub call_timeout: Duration,
    pub max_attempts: u32,
    pub poll_interval: Duration,
    pub running_timeout: Duration,
    pub probe_timeout: Duration,
}

/// Settings of the `isola` backend.
#[derive(Debug, Clone)]
pub struct IsolaConfig {
    pub namespace: String,
    pub image: String,
    pub allowed_egress_cidrs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub backend: BackendKind,
    pub pod_namespace: Option<String>,
    pub label_key: String,
    pub identity: Vec<IdentitySource>,
    pub static_identities: Vec<(IpAddr, String)>,
    pub identity_token: Option<Secret>,
    pub identity_id_header: http::HeaderName,
    pub session_api_token: Option<Secret>,
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
    pub local: LocalConfig,
    /// Budget of the pod identity's API fallback lookup.
    pub identity_lookup_timeout: Duration,
    /// Set when BACKEND=sandboxclaim.
    pub sandbox_claim: Option<SandboxClaimConfig>,
    /// Set when BACKEND=isola.
    pub isola: Option<IsolaConfig>,
    /// Set when BACKEND=karssandbox.
    pub kars: Option<KarsConfig>,
    /// Set when LEADER_ELECTION is on (several replicas).
    pub replicas: Option<replicas::ReplicasConfig>,
    /// Set when BACKEND=substrate.
    pub substrate: Option<SubstrateConfig>,
    pub admission: admission::AdmissionConfig,
}

impl Config {
    /// Whether the proxy talks to a Kubernetes API server (a Kubernetes-object backend or pod
    /// identity; substrate's actors live behind its own gRPC API).
    pub fn needs_kube(&self) -> bool {
        !matches!(self.backend, BackendKind::Local | BackendKind::Substrate)
            || self.identity.contains(&IdentitySource::Pods)
    }
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

fn dur(var: &'static str, v: &Option<String>, default: &str) -> Result<Duration, ConfigError> {
    duration::parse(set(v).unwrap_or(default)).map_err(|m| err(var, m))
}

fn positive_dur(
    var: &'static str,
    v: &Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let d = dur(var, v, default)?;
    if d.is_zero() {
        return Err(err(var, "must be greater than zero"));
    }
    Ok(d)
}

fn port(var: &'static str, v: &str) -> Result<u16, ConfigError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| err(var, format!("{v:?} is not an integer")))?;
    if !(1..=65535).contains(&n) {
        return Err(err(var, format!("{n} out of range 1..65535")));
    }
    Ok(n as u16)
}

fn count(
    var: &'static str,
    v: &Option<String>,
    default: usize,
    min: usize,
) -> Result<usize, ConfigError> {
    let Some(s) = set(v) else { return Ok(default) };
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| err(var, format!("{s:?} is not a non-negative integer")))?;
    if n < min {
        return Err(err(var, format!("{n} is below the minimum {min}")));
    }
    Ok(n)
}

fn boolean(var: &'static str, v: &Option<String>, default: bool) -> Result<bool, ConfigError> {
    match set(v).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(s) => match s.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(err(var, format!("{s:?} is not a boolean (true or false)"))),
        },
    }
}

/// Parses a listen address in Go's forms: `:9000`, `127.0.0.1:9000`, `[::1]:9000`, `localhost:9000`.
/// `:9000` means every address of both families, as in Go: `[::]:9000`, which the server binds
/// dual-stack (IPv4 callers arrive as IPv4-mapped addresses, which identity canonicalizes).
pub fn parse_listen_addr(var: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    let v = v.trim();
    if let Some(p) = v.strip_prefix(':') {
        return Ok(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            port(var, p)?,
        ));
    }
    if let Some(p) = v.strip_prefix("localhost:") {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port(var, p)?,
        ));
    }
    if let Ok(addr) = v.parse::<SocketAddr>() {
        if addr.port() == 0 {
            // Port 0 is allowed on purpose: tests and the demo let the kernel choose.
            return Ok(addr);
        }
        return Ok(addr);
    }
    Err(err(
        var,
        format!("{v:?} is not an address of the form host:port, :port or [v6]:port"),
    ))
}

fn read_secret(
    var: &'static str,
    file_var: &'static str,
    value: &Option<String>,
    file: &Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    match (set(value), set(file)) {
        (Some(_), Some(_)) => Err(err(
            var,
            format!("set either {var} or {file_var}, not both"),
        )),
        (Some(v), None) => Ok(Some(Secret::new(v.trim()))),
        (None, Some(path)) => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| err(file_var, format!("cannot read {path:?}: {e}")))?;
            let s = s.trim();
            if s.is_empty() {
                return Err(err(file_var, format!("{path:?} is empty")));
            }
            Ok(Some(Secret::new(s)))
        }
        (None, None) => Ok(None),
    }
}

/// The sandbox id rule lives in [`crate::id`]; kept here under its old name.
pub use crate::id::valid as valid_id;

fn parse_static_line(
    var: &'static str,
    line: &str,
) -> Result<Option<(IpAddr, String)>, ConfigError> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut parts = line.splitn(2, |c: char| c == '=' || c.is_whitespace());
    let ip = parts.next().unwrap_or("").trim();
    let id = parts.next().unwrap_or("").trim();
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| err(var, format!("{ip:?} is not an IP address (entry {line:?})")))?;
    if !valid_id(id) {
        return Err(err(
            var,
            format!("invalid id {id:?} for {ip}: want {}", crate::id::RULE),
        ));
    }
    Ok(Some((ip, id.to_string())))
}

impl LocalConfig {
    /// Longest LOCAL_TMP_DIR: the sandbox directory (`/<pid>-<seq>`, up to 16 bytes), Playwright's
    /// profile directory and `SingletonSocket` (about 54 bytes) must fit in a 107-byte socket path.
    pub const MAX_TMP_DIR_BYTES: usize = 37;
}

impl Config {
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
        let label_key = set(&raw.playwright_label_key)
            .unwrap_or("playwright-id")
            .trim()
            .to_string();
        if !valid_label_key(&label_key) {
            return Err(err(
                "PLAYWRIGHT_LABEL_KEY",
                format!(
                    "{label_key:?} is not a valid label key ([prefix/]name, name of 1-63 characters of [A-Za-z0-9._-] beginning and ending alphanumeric)"
                ),
            ));
        }

        let identity = match set(&raw.identity) {
            None if backend == BackendKind::Local => vec![IdentitySource::Static],
            None => vec![IdentitySource::Pods],
            Some(list) => {
                let mut out = Vec::new();
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let src = match item {
                        "static" => IdentitySource::Static,
                        "token" => IdentitySource::Token,
                        "pods" => IdentitySource::Pods,
                        v => {
                            return Err(err(
                                "IDENTITY",
                                format!("unknown identity source {v:?} (want static, token, pods)"),
                            ));
                        }
                    };
                    if out.contains(&src) {
                        return Err(err("IDENTITY", format!("{item:?} is listed twice")));
                    }
                    out.push(src);
                }
                if out.is_empty() {
                    return Err(err("IDENTITY", "names no identity source"));
                }
                out
            }
        };

        let mut static_identities = Vec::new();
        if let Some(path) = set(&raw.identity_static_file) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("IDENTITY_STATIC_FILE", format!("cannot read {path:?}: {e}")))?;
            for line in text.lines() {
                static_identities.extend(parse_static_line("IDENTITY_STATIC_FILE", line)?);
            }
        }
        if let Some(inline) = set(&raw.identity_static) {
            for entry in inline.split(',') {
                static_identities.extend(parse_static_line("IDENTITY_STATIC", entry)?);
            }
        }
        {
            let mut seen = std::collections::HashMap::new();
            for (ip, id) in &static_identities {
                if let Some(prev) = seen.insert(*ip, id)
                    && prev != id
                {
                    return Err(err(
                        "IDENTITY_STATIC",
                        format!("{ip} is mapped to both {prev:?} and {id:?}"),
                    ));
                }
            }
        }
        let identity_lookup_timeout = positive_dur(
            "IDENTITY_LOOKUP_TIMEOUT",
            &raw.identity_lookup_timeout,
            "2s",
        )?;
        if identity.contains(&IdentitySource::Pods) && pod_namespace.is_none() {
            return Err(err(
                "POD_NAMESPACE",
                "POD_NAMESPACE is required (set via downward API)",
            ));
        }
        if identity.contains(&IdentitySource::Static) && static_identities.is_empty() {
            return Err(err(
                "IDENTITY_STATIC_FILE",
                "the static identity source needs IDENTITY_STATIC_FILE or IDENTITY_STATIC (ip=id pairs)",
            ));
        }

        let identity_token = read_secret(
            "IDENTITY_TOKEN",
            "IDENTITY_TOKEN_FILE",
            &raw.identity_token,
            &raw.identity_token_file,
        )?;
        if identity.contains(&IdentitySource::Token) && identity_token.is_none() {
            return Err(err(
                "IDENTITY_TOKEN",
                "the token identity source needs IDENTITY_TOKEN or IDENTITY_TOKEN_FILE",
            ));
        }
        if let Some(t) = &identity_token
            && t.expose().len() < 16
        {
            return Err(err("IDENTITY_TOKEN", "must be at least 16 characters"));
        }
        let header = set(&raw.identity_id_header).unwrap_or("x-sandbox-id");
        let identity_id_header =
            http::HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
                err(
                    "IDENTITY_ID_HEADER",
                    format!("{header:?} is not a valid header name"),
                )
            })?;

        let session_api_token = read_secret(
            "SESSION_API_TOKEN",
            "SESSION_API_TOKEN_FILE",
            &raw.session_api_token,
            &raw.session_api_token_file,
        )?;
        if let Some(t) = &session_api_token
            && t.expose().len() < 16
        {
            return Err(err("SESSION_API_TOKEN", "must be at least 16 characters"));
        }

        let mut local = LocalConfig {
            sandbox_server: PathBuf::from(
                set(&raw.local_sandbox_server).unwrap_or(sandbox_server::IN_CHECKOUT),
            ),
            node: PathBuf::from(set(&raw.local_node).unwrap_or("node")),
            chromium: PathBuf::from(set(&raw.local_chromium).unwrap_or("/usr/bin/chromium")),
            chromium_args: set(&raw.local_chromium_args)
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
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
        if backend == BackendKind::Local {
            let len = local.tmp_dir.as_os_str().len();
            if len > LocalConfig::MAX_TMP_DIR_BYTES {
                return Err(err(
                    "LOCAL_TMP_DIR",
                    format!(
                        "{:?} is {len} bytes long; Chromium creates unix sockets in each sandbox's directory under it and socket paths are limited to 107 bytes, so use at most {} bytes (e.g. /tmp/sandcanary)",
                        local.tmp_dir,
                        LocalConfig::MAX_TMP_DIR_BYTES
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
        } else if pod_namespace.is_none() && backend != BackendKind::Substrate {
            return Err(err(
                "POD_NAMESPACE",
                "POD_NAMESPACE is required (set via downward API)",
            ));
        }
        let substrate = if backend == BackendKind::Substrate {
            if upstream_host == HostPolicy::Preserve {
                return Err(err(
                    "UPSTREAM_HOST",
                    "preserve cannot work with BACKEND=substrate: atenet routes by the Host header, which must name the actor",
                ));
            }
            Some(substrate_config(&raw)?)
        } else {
            None
        };
        let sandbox_claim = if backend == BackendKind::SandboxClaim {
            let Some(pool) = set(&raw.warmpool_name) else {
                return Err(err(
                    "WARMPOOL_NAME",
                    "WARMPOOL_NAME is required for sandboxclaim backend",
                ));
            };
            let pool = pool.trim().to_string();
            if !crate::backend::naming::valid_object_name(&pool) {
                return Err(err(
                    "WARMPOOL_NAME",
                    format!("{pool:?} is not a valid object name (DNS-1123 subdomain)"),
                ));
            }
            Some(SandboxClaimConfig {
                warmpool_name: pool,
            })
        } else {
            None
        };
        let kars = if backend == BackendKind::KarsSandbox {
            let Some(inference_ref) = set(&raw.kars_inference_ref) else {
                return Err(err(
                    "KARS_INFERENCE_REF",
                    "KARS_INFERENCE_REF is required for karssandbox backend",
                ));
            };
            let Some(image) = set(&raw.kars_sandbox_image) else {
                return Err(err(
                    "KARS_SANDBOX_IMAGE",
                    "KARS_SANDBOX_IMAGE is required for karssandbox backend",
                ));
            };
            Some(KarsConfig {
                inference_ref: inference_ref.trim().to_string(),
                image: image.trim().to_string(),
            })
        } else {
            None
        };
        let isola = if backend == BackendKind::Isola {
            let Some(image) = set(&raw.isola_sandbox_image) else {
                return Err(err(
                    "ISOLA_SANDBOX_IMAGE",
                    "ISOLA_SANDBOX_IMAGE is required for isola backend",
                ));
            };
            let namespace = set(&raw.isola_namespace)
                .unwrap_or("isola-sandboxes")
                .trim()
                .to_string();
            if !crate::backend::naming::valid_dns_label(&namespace) {
                return Err(err(
                    "ISOLA_NAMESPACE",
                    format!("{namespace:?} is not a valid namespace name"),
                ));
            }
            Some(IsolaConfig {
                namespace,
                image: image.trim().to_string(),
                allowed_egress_cidrs: set(&raw.isola_allowed_egress_cidrs)
                    .map(|s| {
                        s.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        } else {
            None
        };
        let replicas = replicas::ReplicasConfig::from_raw(
            &raw.replicas,
            backend,
            pod_namespace.as_deref(),
            idle_ttl,
        )?;
        let admission = admission::AdmissionConfig::from_raw(&raw.admission, backend, &local)?;

        Ok(Config {
            listen_addr,
            metrics_addr,
            backend,
            pod_namespace,
            label_key,
            identity,
            static_identities,
            identity_token,
            identity_id_header,
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
            local,
            identity_lookup_timeout,
            sandbox_claim,
            isola,
            kars,
            replicas,
            substrate,
            admission,
        })
    }
}

/// Parses `host:port` or `[v6]:port` (the reference split at the first `:`, which broke IPv6).
pub fn parse_authority(
    var: &'static str,
    v: &str,
) -> Result<crate::backend::Authority, ConfigError> {
    let v = v.trim();
    let bad = || {
        err(
            var,
            format!("{v:?} is not an address of the form host:port or [v6]:port"),
        )
    };
    if v.contains("://") {
        return Err(err(var, format!("{v:?}: give host:port without a scheme")));
    }
    let (host, p) = if let Some(rest) = v.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        (h, p)
    } else {
        let (h, p) = v.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(err(
                var,
                format!("{v:?}: an IPv6 address must be bracketed, as in [fd00::1]:443"),
            ));
        }
        (h, p)
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return Err(bad());
    }
    let auth = crate::backend::Authority::new(host, port(var, p)?);
    // The gRPC client builds a URI from it; make sure that works now rather than at the first call.
    format!("http://{auth}")
        .parse::<http::Uri>()
        .map_err(|_| bad())?;
    Ok(auth)
}

fn substrate_config(raw: &RawConfig) -> Result<SubstrateConfig, ConfigError> {
    let api_endpoint = parse_authority(
        "SUBSTRATE_API_ENDPOINT",
        set(&raw.substrate_api_endpoint).unwrap_or("api.ate-system.svc.cluster.local:443"),
    )?;
    let router = parse_authority(
        "SUBSTRATE_ROUTER_ADDR",
        set(&raw.substrate_router_addr).unwrap_or("atenet-router.ate-system.svc.cluster.local:80"),
    )?;
    let Some(template) = set(&raw.substrate_actor_template).map(str::trim) else {
        return Err(err(
            "SUBSTRATE_ACTOR_TEMPLATE",
            "SUBSTRATE_ACTOR_TEMPLATE (namespace/name) is required for substrate backend",
        ));
    };
    let (template_namespace, template_name) = match template.split_once('/') {
        Some((ns, name))
            if crate::backend::naming::valid_dns_label(ns)
                && crate::backend::naming::valid_object_name(name) =>
        {
            (ns.to_string(), name.to_string())
        }
        _ => {
            return Err(err(
                "SUBSTRATE_ACTOR_TEMPLATE",
                format!("SUBSTRATE_ACTOR_TEMPLATE must be 'namespace/name', got {template:?}"),
            ));
        }
    };
    let force_boot = boolean("SUBSTRATE_FORCE_BOOT", &raw.substrate_force_boot, false)?;
    let tls = match set(&raw.substrate_tls).map(str::trim).unwrap_or("verify") {
        "verify" => SubstrateTls::Verify,
        "skip-verify" => SubstrateTls::SkipVerify,
        "plaintext" => SubstrateTls::Plaintext,
        v => {
            return Err(err(
                "SUBSTRATE_TLS",
                format!("{v:?} is not one of verify, skip-verify, plaintext"),
            ));
        }
    };
    let ca_certs = match set(&raw.substrate_ca_file).map(str::trim) {
        None => Vec::new(),
        Some(_) if tls != SubstrateTls::Verify => {
            return Err(err(
                "SUBSTRATE_CA_FILE",
                "is only used with SUBSTRATE_TLS=verify; unset one of them",
            ));
        }
        Some(path) => read_ca_bundle(path)?,
    };
    let tls_server_name = match set(&raw.substrate_tls_server_name).map(str::trim) {
        None => None,
        Some(_) if tls == SubstrateTls::Plaintext => {
            return Err(err(
                "SUBSTRATE_TLS_SERVER_NAME",
                "is meaningless with SUBSTRATE_TLS=plaintext",
            ));
        }
        Some(name) => {
            if rustls::pki_types::ServerName::try_from(name.to_string()).is_err() {
                return Err(err(
                    "SUBSTRATE_TLS_SERVER_NAME",
                    format!("{name:?} is not a DNS name or IP address"),
                ));
            }
            Some(name.to_string())
        }
    };
    let max_attempts = count("SUBSTRATE_MAX_ATTEMPTS", &raw.substrate_max_attempts, 5, 1)?;
    if max_attempts > 100 {
        return Err(err(
            "SUBSTRATE_MAX_ATTEMPTS",
            format!("{max_attempts} is above the maximum 100"),
        ));
    }
    Ok(SubstrateConfig {
        api_endpoint,
        router,
        template_namespace,
        template_name,
        force_boot,
        tls,
        ca_certs,
        tls_server_name,
        call_timeout: positive_dur("SUBSTRATE_CALL_TIMEOUT", &raw.substrate_call_timeout, "10s")?,
        max_attempts: max_attempts as u32,
        poll_interval: positive_dur(
            "SUBSTRATE_POLL_INTERVAL",
            &raw.substrate_poll_interval,
            "200ms",
        )?,
        running_timeout: positive_dur(
            "SUBSTRATE_RUNNING_TIMEOUT",
            &raw.substrate_running_timeout,
            "60s",
        )?,
        probe_timeout: positive_dur(
            "SUBSTRATE_PROBE_TIMEOUT",
            &raw.substrate_probe_timeout,
            "30s",
        )?,
    })
}

/// Reads a PEM bundle of CA certificates; each must be one rustls accepts as a trust anchor.
fn read_ca_bundle(
    path: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    const VAR: &str = "SUBSTRATE_CA_FILE";
    let bytes = std::fs::read(path).map_err(|e| err(VAR, format!("cannot read {path:?}: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(
                VAR,
                format!("{path:?} is not a PEM certificate bundle: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(err(VAR, format!("{path:?} holds no PEM certificate")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| {
            err(
                VAR,
                format!("{path:?}: a certificate is unusable as a CA: {e}"),
            )
        })?;
    }
    Ok(certs)
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RawConfig {
        RawConfig {
            identity_static: Some("127.0.0.2=alice".into()),
            local_sandbox_server: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into()),
            ..Default::default()
        }
    }

    fn fails(raw: RawConfig, var: &str, needle: &str) {
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
        assert_eq!(c.backend, BackendKind::Local);
        assert_eq!(c.identity, vec![IdentitySource::Static]);
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
                identity: Some("static,ldap".into()),
                ..base()
            },
            "IDENTITY",
            "unknown identity source",
        );
        fails(
            RawConfig {
                identity: Some("token".into()),
                ..base()
            },
            "IDENTITY_TOKEN",
            "needs IDENTITY_TOKEN",
        );
        fails(
            RawConfig {
                identity: Some("token".into()),
                identity_token: Some("short".into()),
                ..base()
            },
            "IDENTITY_TOKEN",
            "at least 16",
        );
        fails(
            RawConfig {
                identity_static: Some("127.0.0.2=al ice!".into()),
                ..base()
            },
            "IDENTITY_STATIC",
            "invalid id",
        );
        fails(
            RawConfig {
                identity_static: Some("notanip=alice".into()),
                ..base()
            },
            "IDENTITY_STATIC",
            "not an IP address",
        );
        fails(
            RawConfig {
                identity_static: Some("127.0.0.2=a,127.0.0.2=b".into()),
                ..base()
            },
            "IDENTITY_STATIC",
            "mapped to both",
        );
        fails(
            RawConfig {
                identity_static: None,
                ..base()
            },
            "IDENTITY_STATIC_FILE",
            "needs IDENTITY_STATIC_FILE",
        );
        fails(
            RawConfig {
                local_warm_pool: Some("9".into()),
                ..base()
            },
            "LOCAL_WARM_POOL",
            "larger than LOCAL_MAX_SANDBOXES",
        );
        fails(
            RawConfig {
                local_max_sandboxes: Some("0".into()),
                ..base()
            },
            "LOCAL_MAX_SANDBOXES",
            "below the minimum",
        );
        fails(
            RawConfig {
                local_mcp: Some("maybe".into()),
                ..base()
            },
            "LOCAL_MCP",
            "not a boolean",
        );
        fails(
            RawConfig {
                local_sandbox_server: Some("/nonexistent/server.js".into()),
                ..base()
            },
            "LOCAL_SANDBOX_SERVER",
            "not a file",
        );
        fails(
            RawConfig {
                playwright_label_key: Some("bad key".into()),
                ..base()
            },
            "PLAYWRIGHT_LABEL_KEY",
            "not a valid label key",
        );
        fails(
            RawConfig {
                local_tmp_dir: Some("/tmp/a-rather-long-directory-name-for-sandboxes".into()),
                ..base()
            },
            "LOCAL_TMP_DIR",
            "socket paths are limited to 107 bytes",
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

    fn cluster() -> RawConfig {
        RawConfig {
            backend: Some("sandboxclaim".into()),
            pod_namespace: Some("proxy".into()),
            warmpool_name: Some("playwright".into()),
            identity_static: None,
            ..base()
        }
    }

    #[test]
    fn sandboxclaim_defaults_to_pod_identity_and_needs_a_warm_pool() {
        let c = Config::from_raw(cluster()).unwrap();
        assert_eq!(c.backend, BackendKind::SandboxClaim);
        assert_eq!(c.identity, vec![IdentitySource::Pods]);
        assert_eq!(c.identity_lookup_timeout, Duration::from_secs(2));
        assert_eq!(c.sandbox_claim.unwrap().warmpool_name, "playwright");
        assert!(
            Config::from_raw(RawConfig {
                identity: Some("static".into()),
                ..base()
            })
            .unwrap()
            .sandbox_claim
            .is_none()
        );
        fails(
            RawConfig {
                warmpool_name: None,
                ..cluster()
            },
            "WARMPOOL_NAME",
            "WARMPOOL_NAME is required for sandboxclaim backend",
        );
        fails(
            RawConfig {
                warmpool_name: Some("Not_A_Name".into()),
                ..cluster()
            },
            "WARMPOOL_NAME",
            "not a valid object name",
        );
        fails(
            RawConfig {
                identity_lookup_timeout: Some("0s".into()),
                ..cluster()
            },
            "IDENTITY_LOOKUP_TIMEOUT",
            "greater than zero",
        );
        let kars = || RawConfig {
            backend: Some("karssandbox".into()),
            kars_inference_ref: Some("gpt".into()),
            kars_sandbox_image: Some("img:1".into()),
            ..cluster()
        };
        assert_eq!(
            Config::from_raw(kars())
                .unwrap()
                .kars
                .unwrap()
                .inference_ref,
            "gpt"
        );
        fails(
            RawConfig {
                kars_inference_ref: None,
                ..kars()
            },
            "KARS_INFERENCE_REF",
            "KARS_INFERENCE_REF is required for karssandbox backend",
        );
        fails(
            RawConfig {
                kars_sandbox_image: None,
                ..kars()
            },
            "KARS_SANDBOX_IMAGE",
            "KARS_SANDBOX_IMAGE is required for karssandbox backend",
        );
    }

    #[test]
    fn isola_needs_an_image_and_splits_cidrs() {
        let isola = || RawConfig {
            backend: Some("isola".into()),
            isola_sandbox_image: Some("img:1".into()),
            ..cluster()
        };
        let c = Config::from_raw(RawConfig {
            isola_allowed_egress_cidrs: Some(" 10.244.0.0/16, ,10.96.0.0/12 ".into()),
            ..isola()
        })
        .unwrap();
        let i = c.isola.unwrap();
        assert_eq!(i.namespace, "isola-sandboxes");
        assert_eq!(
            i.allowed_egress_cidrs,
            vec!["10.244.0.0/16", "10.96.0.0/12"]
        );
        fails(
            RawConfig {
                isola_sandbox_image: None,
                ..isola()
            },
            "ISOLA_SANDBOX_IMAGE",
            "ISOLA_SANDBOX_IMAGE is required for isola backend",
        );
        fails(
            RawConfig {
                isola_namespace: Some("Bad_NS".into()),
                ..isola()
            },
            "ISOLA_NAMESPACE",
            "not a valid namespace",
        );
    }

    #[test]
    fn substrate_settings_are_validated_by_name() {
        let sub = || RawConfig {
            backend: Some("substrate".into()),
            identity: Some("static".into()),
            substrate_actor_template: Some("ate-test/playwright".into()),
            ..base()
        };
        let c = Config::from_raw(sub()).unwrap();
        assert!(!c.needs_kube(), "substrate needs no Kubernetes client");
        let s = c.substrate.unwrap();
        assert_eq!(
            s.api_endpoint.to_string(),
            "api.ate-system.svc.cluster.local:443"
        );
        assert_eq!(
            s.router.to_string(),
            "atenet-router.ate-system.svc.cluster.local:80"
        );
        assert_eq!(
            (s.template_namespace.as_str(), s.template_name.as_str()),
            ("ate-test", "playwright")
        );
        assert!(!s.force_boot);
        assert_eq!(s.tls, SubstrateTls::Verify);
        assert!(s.ca_certs.is_empty());
        assert_eq!(s.call_timeout, Duration::from_secs(10));
        assert_eq!(s.max_attempts, 5);
        assert_eq!(s.poll_interval, Duration::from_millis(200));
        assert_eq!(s.running_timeout, Duration::from_secs(60));
        assert_eq!(s.probe_timeout, Duration::from_secs(30));
        // IPv6 routers work when bracketed (the reference split at the first ':').
        let c = Config::from_raw(RawConfig {
            substrate_router_addr: Some("[fd00::1]:8080".into()),
            substrate_force_boot: Some("true".into()),
            substrate_tls: Some("plaintext".into()),
            ..sub()
        })
        .unwrap();
        let s = c.substrate.unwrap();
        assert_eq!(s.router.to_string(), "[fd00::1]:8080");
        assert!(s.force_boot);
        assert_eq!(s.tls, SubstrateTls::Plaintext);
        // Default identity for substrate is the pod one, which needs POD_NAMESPACE.
        fails(
            RawConfig {
                identity: None,
                ..sub()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required",
        );
        fails(
            RawConfig {
                substrate_actor_template: None,
                ..sub()
            },
            "SUBSTRATE_ACTOR_TEMPLATE",
            "SUBSTRATE_ACTOR_TEMPLATE (namespace/name) is required for substrate backend",
        );
        for bad in ["playwright", "/playwright", "ns/", "NS/x", "a/b/c"] {
            fails(
                RawConfig {
                    substrate_actor_template: Some(bad.into()),
                    ..sub()
                },
                "SUBSTRATE_ACTOR_TEMPLATE",
                "SUBSTRATE_ACTOR_TEMPLATE must be 'namespace/name', got",
            );
        }
        let bad_addr = |var: &'static str, v: &str, needle: &str| {
            let mut raw = sub();
            match var {
                "SUBSTRATE_API_ENDPOINT" => raw.substrate_api_endpoint = Some(v.into()),
                _ => raw.substrate_router_addr = Some(v.into()),
            }
            fails(raw, var, needle);
        };
        bad_addr("SUBSTRATE_API_ENDPOINT", "api.example", "host:port");
        bad_addr("SUBSTRATE_API_ENDPOINT", "api.example:0", "out of range");
        bad_addr(
            "SUBSTRATE_API_ENDPOINT",
            "https://api:443",
            "without a scheme",
        );
        bad_addr("SUBSTRATE_ROUTER_ADDR", "fd00::1:80", "must be bracketed");
        bad_addr("SUBSTRATE_ROUTER_ADDR", "router:http", "not an integer");
        bad_addr("SUBSTRATE_ROUTER_ADDR", "[nothost]:80", "host:port");
        let one = |f: fn(&mut RawConfig), var: &str, needle: &str| {
            let mut raw = sub();
            f(&mut raw);
            fails(raw, var, needle);
        };
        one(
            |r| r.upstream_host = Some("preserve".into()),
            "UPSTREAM_HOST",
            "atenet routes by the Host header",
        );
        one(
            |r| r.substrate_force_boot = Some("yes please".into()),
            "SUBSTRATE_FORCE_BOOT",
            "not a boolean",
        );
        one(
            |r| r.substrate_tls = Some("off".into()),
            "SUBSTRATE_TLS",
            "verify, skip-verify, plaintext",
        );
        one(
            |r| r.substrate_ca_file = Some("/nonexistent/ca.pem".into()),
            "SUBSTRATE_CA_FILE",
            "cannot read",
        );
        one(
            |r| {
                r.substrate_tls = Some("skip-verify".into());
                r.substrate_ca_file = Some("/etc/hostname".into());
            },
            "SUBSTRATE_CA_FILE",
            "only used with SUBSTRATE_TLS=verify",
        );
        one(
            |r| {
                r.substrate_tls = Some("plaintext".into());
                r.substrate_tls_server_name = Some("api".into());
            },
            "SUBSTRATE_TLS_SERVER_NAME",
            "meaningless",
        );
        one(
            |r| r.substrate_tls_server_name = Some("not a name!".into()),
            "SUBSTRATE_TLS_SERVER_NAME",
            "not a DNS name",
        );
        one(
            |r| r.substrate_call_timeout = Some("0s".into()),
            "SUBSTRATE_CALL_TIMEOUT",
            "greater than zero",
        );
        one(
            |r| r.substrate_poll_interval = Some("fast".into()),
            "SUBSTRATE_POLL_INTERVAL",
            "duration",
        );
        one(
            |r| r.substrate_running_timeout = Some("-1s".into()),
            "SUBSTRATE_RUNNING_TIMEOUT",
            "negative",
        );
        one(
            |r| r.substrate_probe_timeout = Some("0".into()),
            "SUBSTRATE_PROBE_TIMEOUT",
            "greater than zero",
        );
        one(
            |r| r.substrate_max_attempts = Some("0".into()),
            "SUBSTRATE_MAX_ATTEMPTS",
            "below the minimum",
        );
        one(
            |r| r.substrate_max_attempts = Some("1000".into()),
            "SUBSTRATE_MAX_ATTEMPTS",
            "above the maximum",
        );

        // CA bundles: PEM certificates only.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        fails(
            RawConfig {
                substrate_ca_file: Some(junk.to_string_lossy().into()),
                ..sub()
            },
            "SUBSTRATE_CA_FILE",
            "holds no PEM certificate",
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        fails(
            RawConfig {
                substrate_ca_file: Some(broken.to_string_lossy().into()),
                ..sub()
            },
            "SUBSTRATE_CA_FILE",
            "unusable as a CA",
        );
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let c = Config::from_raw(RawConfig {
            substrate_ca_file: Some(good.to_string_lossy().into()),
            substrate_tls_server_name: Some("api.ate-system.svc".into()),
            ..sub()
        })
        .unwrap();
        let s = c.substrate.unwrap();
        assert_eq!(s.ca_certs.len(), 1);
        assert_eq!(s.tls_server_name.as_deref(), Some("api.ate-system.svc"));
    }

    #[test]
    fn pod_identity_needs_a_namespace_even_with_the_local_backend() {
        fails(
            RawConfig {
                identity: Some("pods".into()),
                ..base()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required",
        );
        let c = Config::from_raw(RawConfig {
            identity: Some("static,pods".into()),
            pod_namespace: Some("proxy".into()),
            ..base()
        })
        .unwrap();
        assert!(c.needs_kube());
        assert!(!Config::from_raw(base()).unwrap().needs_kube());
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

    #[test]
    fn listen_addresses_in_go_forms() {
        assert_eq!(
            parse_listen_addr("X", ":9000").unwrap().to_string(),
            "[::]:9000"
        );
        assert_eq!(
            parse_listen_addr("X", "0.0.0.0:9000").unwrap().to_string(),
            "0.0.0.0:9000"
        );
        assert_eq!(parse_listen_addr("X", "127.0.0.1:0").unwrap().port(), 0);
        assert_eq!(
            parse_listen_addr("X", "[::1]:9000").unwrap().to_string(),
            "[::1]:9000"
        );
        assert_eq!(
            parse_listen_addr("X", "localhost:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn label_keys() {
        assert!(valid_label_key("playwright-id"));
        assert!(valid_label_key("example.com/pw"));
        assert!(valid_label_key("sandbox.users.io/playwright-id"));
        assert!(!valid_label_key("Example.com/pw"));
        assert!(!valid_label_key("-x"));
        assert!(!valid_label_key("a/b/"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Config::from_raw(RawConfig {
            identity: Some("static,token".into()),
            identity_token: Some("0123456789abcdef-secret".into()),
            ..base()
        })
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0123456789abcdef-secret"));
    }

    #[test]
    fn static_file_parses_comments_and_both_separators() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids");
        std::fs::write(&path, "# pods\n127.0.0.2 alice\n127.0.0.3=bob # second\n\n").unwrap();
        let c = Config::from_raw(RawConfig {
            identity_static: None,
            identity_static_file: Some(path.to_string_lossy().into()),
            ..base()
        })
        .unwrap();
        assert_eq!(c.static_identities.len(), 2);
        assert_eq!(c.static_identities[1].1, "bob");
    }
}
