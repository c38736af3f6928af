//! The seam between the protocol layer and a plugin's own logic.

use std::collections::BTreeMap;
use std::future::Future;

use super::model::{
    GarbageCollectArgs, GetMetadataArgs, Measurement, RunArgs, TerminateAndResumeArgs,
};

/// What an Argo Rollouts metric plugin does. Calls arrive concurrently from many analysis
/// workers and the controller has no RPC timeouts, so every method must return promptly:
/// long work belongs behind `Running` + `ResumeAt`.
///
/// Plugin-level failures go inside the reply (`AnalysisPhase::Error`, an error string), never as
/// protocol errors.
pub trait MetricProvider: Send + Sync + 'static {
    /// Called once per process after Dispense. An error is reported once and then ignored by
    /// the controller, so keep a degraded state rather than relying on it.
    fn init(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Starts a measurement. Should be idempotent for the same run, metric and start.
    fn run(&self, args: RunArgs) -> impl Future<Output = Measurement> + Send;

    /// Reports on a measurement started earlier; start from `args.measurement` and update it.
    fn resume(&self, args: TerminateAndResumeArgs) -> impl Future<Output = Measurement> + Send;

    /// Stops a measurement; must return a completed phase.
    fn terminate(&self, args: TerminateAndResumeArgs) -> impl Future<Output = Measurement> + Send;

    /// Drops state for measurements beyond `args.limit`. An error blocks the controller's
    /// trimming of measurement history, so return `Ok` unless something is truly wrong.
    fn garbage_collect(
        &self,
        args: GarbageCollectArgs,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// The provider's type name (Argo's controller never asks; tools may).
    fn type_name(&self) -> String;

    /// Facts about the metric shown in `MetricResult.Metadata`; an `"error"` key reports failure.
    fn metadata(&self, args: GetMetadataArgs) -> BTreeMap<String, String>;
}
