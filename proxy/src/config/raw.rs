//! The command line and environment as given: every setting is an optional string, so that empty
//! values can count as unset and each rule can name its variable. The settings of one identity
//! source family, backend or feature are a flattened group that lives beside its validation (and
//! has its own heading in `--help`); what is left here is the proxy's own.

use clap::Parser;

use super::{admission, cluster, identity, local, replicas, substrate};

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
    #[command(flatten)]
    pub identity: identity::RawIdentity,
    #[command(flatten)]
    pub local: local::RawLocal,
    #[command(flatten)]
    pub sandbox_claim: cluster::RawSandboxClaim,
    #[command(flatten)]
    pub kars: cluster::RawKars,
    #[command(flatten)]
    pub isola: cluster::RawIsola,
    #[command(flatten)]
    pub substrate: substrate::RawSubstrate,
    #[command(flatten)]
    pub replicas: replicas::RawReplicas,
    #[command(flatten)]
    pub admission: admission::RawAdmission,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::RawConfig;

    #[test]
    fn each_group_keeps_its_flags_and_has_its_own_heading() {
        RawConfig::command().debug_assert();
        let raw = RawConfig::try_parse_from([
            "sandcanary-proxy",
            "--identity=token",
            "--identity-token-file=/run/token",
            "--local-warm-pool=3",
            "--warmpool-name=pool",
            "--kars-sandbox-image=img",
            "--isola-namespace=iso",
            "--substrate-tls=plaintext",
            "--leader-election=true",
            "--max-sandboxes=9",
        ])
        .unwrap();
        assert_eq!(raw.identity.identity.as_deref(), Some("token"));
        assert_eq!(
            raw.identity.identity_token_file.as_deref(),
            Some("/run/token")
        );
        assert_eq!(raw.local.local_warm_pool.as_deref(), Some("3"));
        assert_eq!(raw.sandbox_claim.warmpool_name.as_deref(), Some("pool"));
        assert_eq!(raw.kars.kars_sandbox_image.as_deref(), Some("img"));
        assert_eq!(raw.isola.isola_namespace.as_deref(), Some("iso"));
        assert_eq!(raw.substrate.substrate_tls.as_deref(), Some("plaintext"));
        assert_eq!(raw.replicas.leader_election.as_deref(), Some("true"));
        assert_eq!(raw.admission.max_sandboxes.as_deref(), Some("9"));
        let help = RawConfig::command().render_long_help().to_string();
        for heading in [
            "Identity:",
            "Local backend:",
            "Sandboxclaim backend:",
            "Karssandbox backend:",
            "Isola backend:",
            "Substrate backend:",
            "Several replicas:",
            "Admission:",
        ] {
            assert!(help.contains(heading), "no {heading:?} in --help");
        }
        // The token's value never shows in --help, even when it is set in the environment.
        assert!(help.contains("--identity-token <IDENTITY_TOKEN>"));
    }
}
