//! The real `sandcanary-proxy` binary as a child process, for the workspace's integration tests and
//! benchmarks: free loopback ports, environment and flags, a readiness wait whose timeout error shows
//! the proxy's last log lines, and SIGTERM-then-SIGKILL with reaping on drop; and requests from a
//! chosen loopback source address, which the proxy's identities see as a pod.
//!
//! Dev-only (`publish = false`, used as a dev-dependency). It starts real programs only; it holds
//! no stand-ins for parts of sandcanary.

mod error;
mod log;
mod loopback;
mod paths;
mod ports;
mod process;

pub use error::Error;
pub use loopback::{connect_from, get_from};
pub use paths::{proxy_binary, repo_root, require_sandbox_node_modules, sandbox_server};
pub use ports::{free_loopback_addr, free_port};
pub use process::{ProxyBuilder, ProxyProcess};
