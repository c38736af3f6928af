//! Golden vectors: gob streams written by argo's Go client code (test/conformance/cmd/gobgolden)
//! must decode to the values recorded next to them in calls.json. Regenerate with
//! `make golden-goplugin`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use goplugin::gob::{Decoder, GobError, Value};
use goplugin::metric::{
    AnalysisPhase, GarbageCollectArgs, GetMetadataArgs, IntOrString, Measurement, RunArgs,
    TerminateAndResumeArgs,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Call {
    method: String,
    seq: u64,
    expect: BTreeMap<String, String>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn calls() -> HashMap<String, Vec<Call>> {
    serde_json::from_slice(&read("calls.json")).expect("calls.json")
}

fn rfc(t: &Option<goplugin::gob::GoTime>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn ios(v: &Option<IntOrString>) -> String {
    v.as_ref()
        .map(|v| v.int_value().to_string())
        .unwrap_or_default()
}

/// The facts about one decoded body that calls.json may ask about.
fn facts(method: &str, body: &Value) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let metric_facts = |f: &mut BTreeMap<String, String>, m: &goplugin::metric::Metric| {
        f.insert("metric.name".into(), m.name.clone());
        if let Some((_, raw)) = m.plugin_config() {
            f.insert(
                "metric.config".into(),
                String::from_utf8_lossy(raw).into_owned(),
            );
        }
        f.insert("metric.count".into(), ios(&m.count));
        f.insert("metric.failureLimit".into(), ios(&m.failure_limit));
    };
    let run_facts = |f: &mut BTreeMap<String, String>,
                     r: &Option<goplugin::metric::AnalysisRun>| match r {
        None => {
            f.insert("run".into(), "nil".into());
        }
        Some(r) => {
            f.insert("run.name".into(), r.name.clone());
            f.insert("run.namespace".into(), r.namespace.clone());
            f.insert("run.uid".into(), r.uid.clone());
            f.insert(
                "run.rollout".into(),
                r.rollout_name().unwrap_or_default().into(),
            );
            f.insert("run.created".into(), rfc(&r.creation_timestamp));
            f.insert("run.args".into(), r.args.len().to_string());
            f.insert(
                "run.measurements".into(),
                r.metric_results
                    .first()
                    .map(|m| m.measurements.len())
                    .unwrap_or(0)
                    .to_string(),
            );
        }
    };
    match method {
        "Dispenser.Dispense" => {
            f.insert(
                "string".into(),
                body.as_str().unwrap_or("<not a string>").into(),
            );
        }
        "Control.Ping" | "Control.Quit" => {
            f.insert(
                "bool".into(),
                format!("{}", body.as_bool().unwrap_or(false)),
            );
        }
        "Plugin.InitPlugin" | "Plugin.Type" => {
            f.insert("nil".into(), (*body == Value::Nil).to_string());
        }
        "Plugin.Run" => {
            let a = RunArgs::from_value(body).expect("RunArgs");
            run_facts(&mut f, &a.analysis_run);
            metric_facts(&mut f, &a.metric);
        }
        "Plugin.Resume" | "Plugin.Terminate" => {
            let a = TerminateAndResumeArgs::from_value(body).expect("TerminateAndResumeArgs");
            run_facts(&mut f, &a.analysis_run);
            let m = &a.measurement;
            f.insert("measurement.phase".into(), m.phase.as_str().into());
            f.insert("measurement.startedAt".into(), rfc(&m.started_at));
            f.insert("measurement.resumeAt".into(), rfc(&m.resume_at));
            f.insert(
                "measurement.handle".into(),
                m.metadata
                    .as_ref()
                    .and_then(|md| md.get("sandcanary.handle").cloned())
                    .unwrap_or_default(),
            );
        }
        "Plugin.GarbageCollect" => {
            let a = GarbageCollectArgs::from_value(body).expect("GarbageCollectArgs");
            run_facts(&mut f, &a.analysis_run);
            f.insert("limit".into(), a.limit.to_string());
        }
        "Plugin.GetMetadata" => {
            let a = GetMetadataArgs::from_value(body).expect("GetMetadataArgs");
            metric_facts(&mut f, &a.metric);
        }
        other => panic!("unexpected method {other}"),
    }
    f
}

fn check_stream(name: &str) -> usize {
    let all = calls();
    let want = &all[name];
    let bytes = read(name);
    let mut dec = Decoder::new(&bytes[..]);
    for call in want {
        let header = dec.decode().expect("header");
        assert_eq!(
            header.field("ServiceMethod").and_then(Value::as_str),
            Some(call.method.as_str())
        );
        assert_eq!(
            header.field("Seq").and_then(Value::as_u64).unwrap_or(0),
            call.seq
        );
        let body = dec
            .decode()
            .unwrap_or_else(|e| panic!("{} body: {e}", call.method));
        let got = facts(&call.method, &body);
        for (k, v) in &call.expect {
            assert_eq!(
                got.get(k),
                Some(v),
                "{name} {} seq {}: {k}",
                call.method,
                call.seq
            );
        }
    }
    assert!(
        matches!(dec.decode(), Err(GobError::Eof)),
        "trailing data in {name}"
    );
    dec.type_count()
}

#[test]
fn control_stream_requests_decode() {
    check_stream("control_requests.gob");
}

#[test]
fn plugin_stream_requests_decode_including_the_maximal_run_args() {
    let types = check_stream("plugin_requests.gob");
    // The first Run brings the whole reachable graph (PodSpec and every provider).
    assert!(types > 150, "only {types} type definitions");
}

#[test]
fn go_server_replies_decode_into_the_typed_model() {
    let bytes = read("go_replies.gob");
    let mut dec = Decoder::new(&bytes[..]);
    let mut bodies = Vec::new();
    for i in 0..4u64 {
        let h = dec.decode().unwrap();
        assert_eq!(h.field("Seq").and_then(Value::as_u64).unwrap_or(0), i);
        bodies.push(dec.decode().unwrap());
    }
    let m = Measurement::from_value(&bodies[0]).unwrap();
    assert_eq!(m.phase, AnalysisPhase::Successful);
    assert_eq!(m.finished_at.unwrap().nanos, 5);
    assert_eq!(m.finished_at.unwrap().offset_secs, None, "UTC location");
    assert!(m.resume_at.is_none());
    assert_eq!(m.metadata.unwrap()["sandcanary.handle"], "h1");
    assert_eq!(
        bodies[1],
        Value::Struct(Default::default()),
        "empty RpcError"
    );
    assert_eq!(bodies[2], Value::String(String::new()));
    assert_eq!(
        bodies[3],
        Value::Map(vec![(Value::String("a".into()), Value::String("b".into()))])
    );
}
