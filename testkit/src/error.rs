//! What can go wrong while starting the proxy under test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start {}", bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no free loopback port")]
    Port(#[source] std::io::Error),
    #[error("{label} exited during start-up ({status}); its last log lines:\n{tail}")]
    Exited {
        label: String,
        status: ExitStatus,
        tail: String,
    },
    #[error(
        "{label} not ready: http://{admin}{path} did not answer 200 within {timeout:?}; its last log lines:\n{tail}"
    )]
    NotReady {
        label: String,
        admin: SocketAddr,
        path: &'static str,
        timeout: Duration,
        tail: String,
    },
    #[error("waiting for {label}")]
    Wait {
        label: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`cargo build -p sandcanary-proxy` failed ({0}); the proxy binary is missing")]
    Build(String),
    #[error(
        "run `make setup-node` first: {} is missing",
        .0.display()
    )]
    NodeModules(PathBuf),
}
