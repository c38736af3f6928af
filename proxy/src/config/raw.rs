//! The command line and environment as given: every setting is an optional string, so that empty
//! values can count as unset and each rule can name its variable. Validation is in the sibling modules.

use clap::Parser;

use super::{admission, replicas};

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
