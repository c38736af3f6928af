//! Argo Rollouts metric-provider plugins: the typed model of what the controller sends and
//! expects back, the [`MetricProvider`] trait, and the `net/rpc` service that serves it.

mod model;
mod provider;
mod service;

pub use model::{
    AnalysisPhase, AnalysisRun, Argument, GarbageCollectArgs, GetMetadataArgs, IntOrString,
    Measurement, Metric, MetricResult, ModelError, OwnerReference, RpcError, RunArgs,
    TerminateAndResumeArgs,
};
pub use provider::MetricProvider;
pub use service::{MetricPluginService, PLUGIN_NAME, serve_metric_provider};
