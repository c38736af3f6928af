//! Serves a [`MetricProvider`] as go-plugin's `Plugin` service, the way Argo's
//! `metricproviders/plugin/rpc` client calls it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::model::{
    GarbageCollectArgs, GetMetadataArgs, Measurement, RpcError, RunArgs, TerminateAndResumeArgs,
    string_map_value,
};
use super::provider::MetricProvider;
use crate::gob::{GoType, Limits, Value};
use crate::handshake::HandshakeConfig;
use crate::rpc::{self, CallResult, Reply, Service};
use crate::server::{self, ServeConfig, ServeError, Stopped};

/// The name Argo dispenses a metric provider under.
pub const PLUGIN_NAME: &str = "RpcMetricProviderPlugin";

/// Adapts a [`MetricProvider`] to the `net/rpc` `Plugin` service.
pub struct MetricPluginService<P> {
    provider: Arc<P>,
}

impl<P: MetricProvider> MetricPluginService<P> {
    pub fn new(provider: Arc<P>) -> Self {
        MetricPluginService { provider }
    }
}

fn measurement_reply(m: Measurement) -> CallResult {
    Ok(Reply::new(Measurement::gob_type(), m.to_value()))
}

fn rpc_error_reply(r: Result<(), String>) -> CallResult {
    let e = RpcError {
        error_string: r.err().unwrap_or_default(),
    };
    Ok(Reply::new(RpcError::gob_type(), e.to_value()))
}

/// Turns a panic inside provider code into a value instead of a dead task and an unanswered call.
async fn guarded<T>(fut: impl std::future::Future<Output = T>, on_panic: impl FnOnce() -> T) -> T {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(v) => v,
        Err(_) => {
            tracing::error!("plugin method panicked");
            on_panic()
        }
    }
}

impl<P: MetricProvider> Service for MetricPluginService<P> {
    fn call(
        self: Arc<Self>,
        method: &str,
        full: &str,
        body: Value,
    ) -> BoxFuture<'static, CallResult> {
        let p = self.provider.clone();
        let method = method.to_string();
        let full = full.to_string();
        Box::pin(async move {
            match method.as_str() {
                "InitPlugin" => rpc_error_reply(
                    guarded(p.init(), || Err("plugin panicked in InitPlugin".into())).await,
                ),
                "Run" => measurement_reply(match RunArgs::from_value(&body) {
                    Err(e) => Measurement::error(format!("cannot read RunArgs: {e}")),
                    Ok(a) if a.analysis_run.is_none() => {
                        Measurement::error("analysisRun is nil: nothing to measure")
                    }
                    Ok(a) => {
                        guarded(p.run(a), || Measurement::error("plugin panicked in Run")).await
                    }
                }),
                "Resume" | "Terminate" => {
                    let terminate = method == "Terminate";
                    measurement_reply(match TerminateAndResumeArgs::from_value(&body) {
                        Err(e) => {
                            Measurement::error(format!("cannot read {method} arguments: {e}"))
                        }
                        Ok(a) if a.analysis_run.is_none() => {
                            Measurement::error("analysisRun is nil: nothing to measure")
                        }
                        Ok(a) if terminate => {
                            guarded(p.terminate(a), || {
                                Measurement::error("plugin panicked in Terminate")
                            })
                            .await
                        }
                        Ok(a) => {
                            guarded(p.resume(a), || {
                                Measurement::error("plugin panicked in Resume")
                            })
                            .await
                        }
                    })
                }
                "GarbageCollect" => rpc_error_reply(match GarbageCollectArgs::from_value(&body) {
                    Err(e) => Err(format!("cannot read GarbageCollectArgs: {e}")),
                    Ok(a) => {
                        guarded(p.garbage_collect(a), || {
                            Err("plugin panicked in GarbageCollect".into())
                        })
                        .await
                    }
                }),
                "Type" => Ok(Reply::new(GoType::String, Value::String(p.type_name()))),
                "GetMetadata" => {
                    let map = match GetMetadataArgs::from_value(&body) {
                        Err(e) => [(
                            "error".to_string(),
                            format!("cannot read GetMetadataArgs: {e}"),
                        )]
                        .into_iter()
                        .collect(),
                        Ok(a) => p.metadata(a),
                    };
                    Ok(Reply::new(
                        GoType::map(GoType::String, GoType::String),
                        string_map_value(&map),
                    ))
                }
                _ => Err(rpc::unknown_method(&full)),
            }
        })
    }
}

/// Serves `provider` to Argo Rollouts: cookie check, handshake, then calls until the controller
/// quits or disconnects.
pub async fn serve_metric_provider<P: MetricProvider>(
    provider: Arc<P>,
) -> Result<Stopped, ServeError> {
    let mut plugins: HashMap<String, Arc<dyn Service>> = HashMap::new();
    plugins.insert(
        PLUGIN_NAME.to_string(),
        Arc::new(MetricPluginService::new(provider)),
    );
    server::serve(ServeConfig {
        handshake: HandshakeConfig::argo_metric_provider(),
        plugins,
        limits: Limits::default(),
    })
    .await
}
