//! sandcanary-proxy: routes each caller to its own browser sandbox.
//!
//! `identity` says who is calling, `session` turns that id into a ready sandbox through a `backend`,
//! `forward` moves the bytes, `admin` serves health, metrics and the session API, and `server` wires
//! them together with graceful shutdown.

pub mod admin;
pub mod admission;
pub mod backend;
pub mod config;
pub mod forward;
pub mod http_error;
pub mod id;
pub mod identity;
pub mod metrics;
pub mod replicas;
pub mod server;
pub mod session;
