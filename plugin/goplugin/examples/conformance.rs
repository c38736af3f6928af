//! A scripted metric plugin for the Go conformance harness (test/conformance). Its behaviour is
//! driven by keys in the metric's plugin JSON, and `Run` echoes a digest of everything it
//! decoded so the Go side can compare field by field.
//!
//! Script keys: `phase`, `resumePhase`, `terminatePhase` (phases to return), `sleepMs` (delay
//! in Run), `echo` (copied back), `metadataBytes` (size of a filler metadata value),
//! `metadataError` (GetMetadata's "error"), `gcError`, `panic` (panic inside Run).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use goplugin::gob::GoTime;
use goplugin::handshake::HandshakeError;
use goplugin::metric::{
    AnalysisPhase, GarbageCollectArgs, GetMetadataArgs, IntOrString, Measurement, MetricProvider,
    RunArgs, TerminateAndResumeArgs, serve_metric_provider,
};
use goplugin::server::ServeError;
use serde_json::{Value as Json, json};

struct Conformance;

fn script(args_metric: &goplugin::metric::Metric) -> Json {
    args_metric
        .plugin_config()
        .and_then(|(_, raw)| serde_json::from_slice(raw).ok())
        .unwrap_or(Json::Null)
}

fn ts(t: &Option<GoTime>) -> String {
    t.map(|t| format!("{}.{:09}", t.unix_secs, t.nanos))
        .unwrap_or_default()
}

fn ios(v: &Option<IntOrString>) -> String {
    match v {
        None => "nil".into(),
        Some(IntOrString::Int(i)) => format!("int:{i}"),
        Some(IntOrString::String(s)) => format!("str:{s}"),
    }
}

fn digest(a: &RunArgs) -> BTreeMap<String, String> {
    let mut d = BTreeMap::new();
    let m = &a.metric;
    if let Some((k, raw)) = m.plugin_config() {
        d.insert("pluginKey".into(), k.to_string());
        d.insert("config".into(), String::from_utf8_lossy(raw).into_owned());
    }
    d.insert("metric.name".into(), m.name.clone());
    d.insert("metric.interval".into(), m.interval.clone());
    d.insert("metric.initialDelay".into(), m.initial_delay.clone());
    d.insert("metric.count".into(), ios(&m.count));
    d.insert("metric.failureLimit".into(), ios(&m.failure_limit));
    d.insert(
        "metric.inconclusiveLimit".into(),
        ios(&m.inconclusive_limit),
    );
    d.insert(
        "metric.consecutiveErrorLimit".into(),
        ios(&m.consecutive_error_limit),
    );
    d.insert(
        "metric.consecutiveSuccessLimit".into(),
        ios(&m.consecutive_success_limit),
    );
    d.insert(
        "metric.successCondition".into(),
        m.success_condition.clone(),
    );
    d.insert(
        "metric.failureCondition".into(),
        m.failure_condition.clone(),
    );
    if let Some(r) = &a.analysis_run {
        d.insert("run.name".into(), r.name.clone());
        d.insert("run.namespace".into(), r.namespace.clone());
        d.insert("run.uid".into(), r.uid.clone());
        d.insert("run.generation".into(), r.generation.to_string());
        d.insert("run.labels".into(), json!(r.labels).to_string());
        let ann_bytes: usize = r.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        d.insert(
            "run.annotationCount".into(),
            r.annotations.len().to_string(),
        );
        d.insert("run.annotationBytes".into(), ann_bytes.to_string());
        let owners: Vec<Json> = r
            .owner_references
            .iter()
            .map(|o| {
                json!({"apiVersion": o.api_version, "kind": o.kind, "name": o.name, "uid": o.uid,
                       "controller": o.controller, "blockOwnerDeletion": o.block_owner_deletion})
            })
            .collect();
        d.insert(
            "run.ownerReferences".into(),
            Json::Array(owners).to_string(),
        );
        d.insert(
            "run.rollout".into(),
            r.rollout_name().unwrap_or_default().to_string(),
        );
        d.insert("run.creationTimestamp".into(), ts(&r.creation_timestamp));
        d.insert("run.deletionTimestamp".into(), ts(&r.deletion_timestamp));
        let args: Vec<Json> = r
            .args
            .iter()
            .map(|a| {
                json!({"name": a.name, "value": a.value,
                       "secret": a.secret_key_ref.as_ref().map(|(n, k)| format!("{n}/{k}")),
                       "fieldRef": a.field_ref})
            })
            .collect();
        d.insert("run.args".into(), Json::Array(args).to_string());
        d.insert("run.terminate".into(), r.terminate.to_string());
        d.insert("run.dryRun".into(), json!(r.dry_run).to_string());
        d.insert("run.phase".into(), r.phase.as_str().to_string());
        d.insert("run.startedAt".into(), ts(&r.started_at));
        let results: Vec<Json> = r
            .metric_results
            .iter()
            .map(|mr| {
                json!({"name": mr.name, "phase": mr.phase.as_str(), "count": mr.count,
                       "measurements": mr.measurements.len(),
                       "lastStartedAt": ts(&mr.measurements.last().and_then(|m| m.started_at)),
                       "lastValue": mr.measurements.last().map(|m| m.value.clone()).unwrap_or_default()})
            })
            .collect();
        d.insert("run.metricResults".into(), Json::Array(results).to_string());
    }
    d
}

impl MetricProvider for Conformance {
    async fn init(&self) -> Result<(), String> {
        tracing::info!(stage = "init", "conformance plugin initialised");
        tracing::warn!(stage = "init", "conformance warning line");
        tracing::error!(stage = "init", "conformance error line");
        Ok(())
    }

    async fn run(&self, args: RunArgs) -> Measurement {
        let s = script(&args.metric);
        if s["panic"].as_bool() == Some(true) {
            panic!("scripted panic");
        }
        if let Some(ms) = s["sleepMs"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let phase = AnalysisPhase::parse(s["phase"].as_str().unwrap_or("Successful"));
        let mut m = Measurement::new(phase, s["message"].as_str().unwrap_or_default());
        m.value = s["value"].as_str().unwrap_or("1").to_string();
        let mut meta = digest(&args);
        if let Some(e) = s.get("echo") {
            meta.insert("echo".into(), e.to_string());
        }
        if let Some(n) = s["metadataBytes"].as_u64() {
            meta.insert("filler".into(), "x".repeat(n.min(8 << 20) as usize));
        }
        if !m.phase.is_completed() {
            m.resume_at = Some(GoTime::now().plus(Duration::from_secs(10)));
        }
        m.metadata = Some(meta);
        m
    }

    async fn resume(&self, args: TerminateAndResumeArgs) -> Measurement {
        let s = script(&args.metric);
        let mut m = args.measurement;
        if let Some(p) = s["resumePhase"].as_str() {
            m.phase = AnalysisPhase::parse(p);
        }
        m
    }

    async fn terminate(&self, args: TerminateAndResumeArgs) -> Measurement {
        let s = script(&args.metric);
        let mut m = args.measurement;
        m.phase = AnalysisPhase::parse(s["terminatePhase"].as_str().unwrap_or("Successful"));
        m
    }

    async fn garbage_collect(&self, args: GarbageCollectArgs) -> Result<(), String> {
        match script(&args.metric)["gcError"].as_str() {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    }

    fn type_name(&self) -> String {
        "SandcanaryConformance".into()
    }

    fn metadata(&self, args: GetMetadataArgs) -> BTreeMap<String, String> {
        let s = script(&args.metric);
        let mut out = BTreeMap::new();
        if let Some((k, raw)) = args.metric.plugin_config() {
            out.insert("pluginKey".into(), k.to_string());
            out.insert("config".into(), String::from_utf8_lossy(raw).into_owned());
        }
        if let Some(e) = s["metadataError"].as_str() {
            out.insert("error".into(), e.to_string());
        }
        out
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    goplugin::hclog::init("conformance", tracing::Level::TRACE);
    match serve_metric_provider(Arc::new(Conformance)).await {
        Ok(_) => std::process::exit(0),
        Err(ServeError::Handshake(e @ HandshakeError::NotLaunchedByHost(_))) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
        Err(e) => {
            tracing::error!(error = %e, "plugin failed");
            std::process::exit(1);
        }
    }
}
