//! The canary analysis behind the sandcanary Argo Rollouts metric plugin.
//!
//! [`run`] benches a stable and a canary `sandcanary-proxy` through their session APIs
//! (interleaved, with fresh ids for cold starts), maps the bench's samples onto the judge's input,
//! lets the configured judge decide, and on a Failed verdict files (or, in a dry run, renders) a
//! deduplicated GitHub issue. [`CanaryConfig`] is the plugin's JSON configuration; the protocol
//! side (crate `sandcanary-plugin`) turns an [`Outcome`] into a measurement.

pub mod analysis;
pub mod comparison;
pub mod config;
pub mod issue;
pub mod pod_logs;
pub mod progress;

pub use analysis::{Outcome, RunContext, run, run_with_logs};
pub use config::{
    CONFIG_SCHEMA_ID, CanaryConfig, CanaryConfigError, ResolvedTarget, SecretRef, TargetConfig,
    config_schema,
};
pub use pod_logs::{LogError, LogRequest, LogSource, PodLog, PodLogsConfig};
pub use progress::{Progress, Stage};
pub use sandcanary_judge::VerdictPhase;

/// The JSON Schema of [`CanaryConfig`] as published: [`config_schema`]'s output, checked in and
/// kept identical by `tests/schema.rs`.
pub const CONFIG_SCHEMA: &str = include_str!("../schema/sandcanary-config.schema.json");
