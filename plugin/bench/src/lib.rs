//! sandcanary bench: measures Playwright sessions against sandboxes in three situations (cold, warm,
//! restore) with native Playwright, CDP and MCP clients, and reports latency statistics.
//!
//! The plugin runs it against canary and stable proxies; people run it by hand with the
//! `sandcanary-bench` binary.

pub mod breakdown;
pub mod cdp;
pub mod fixture;
pub mod mcp;
pub mod official;
pub mod playwright;
pub mod repo;
pub mod report;
pub mod sandbox_process;
pub mod scenario;
pub mod stats;
pub mod target;
mod wire;

pub use wire::WireError;
