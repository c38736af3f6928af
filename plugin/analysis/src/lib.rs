//! The sandcanary Argo Rollouts metric provider: configuration, long-running jobs and the
//! [`goplugin::metric::MetricProvider`] implementation that exposes them.
//!
//! The protocol lives in the `goplugin` crate; this crate only decides what a measurement
//! does. The bench-and-judge job is not here yet: [`job::PlaceholderJob`] stands in for it
//! behind the [`job::Job`] trait.

pub mod config;
pub mod job;
pub mod provider;
pub mod runner;
