//! Serve HashiCorp go-plugin plugins in netrpc mode from Rust.
//!
//! The layers, bottom up: [`handshake`] (cookie check, listener, stdout line), yamux (via
//! `tokio-yamux`, wrapped in [`server`]), [`rpc`] (Go's `net/rpc` framing) and [`gob`] (the
//! codec). [`metric`] models Argo Rollouts' metric-provider plugin on top of that.

pub mod gob;
pub mod handshake;
pub mod hclog;
pub mod metric;
pub mod rpc;
pub mod server;
