//! The sandcanary Argo Rollouts metric provider: configuration, long-running jobs and the
//! [`goplugin::metric::MetricProvider`] implementation that exposes them.
//!
//! The protocol lives in the `goplugin` crate; this crate only decides what a measurement
//! does: [`bench_job::BenchJob`] runs the canary analysis of crate `sandcanary-canary` behind
//! the [`job::Job`] trait; [`job::PlaceholderJob`] remains for protocol tests.

pub mod bench_job;
pub mod config;
pub mod events;
pub mod job;
pub mod kube_client;
pub mod kube_logs;
pub mod operator;
pub mod provider;
pub mod runner;
pub mod tenant_secrets;
