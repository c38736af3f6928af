//! Writes one stream of replies exactly as the plugin's `net/rpc` server would, for the Go
//! checker in test/conformance (`TestGoldenRustReplies`) to decode into argo's Go types.
//! Usage: `gobreplies <output file>`.

use std::collections::BTreeMap;

use goplugin::gob::{Encoder, GoTime, GoType, Value};
use goplugin::metric::{AnalysisPhase, Measurement, RpcError};
use goplugin::rpc::{Reply, encode_reply, response_type};

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: gobreplies <output file>");
        return std::process::ExitCode::FAILURE;
    };
    let t0 = GoTime::from_unix(1_704_067_200, 123_456_789);
    let done = Measurement {
        phase: AnalysisPhase::Successful,
        message: "ok".into(),
        started_at: Some(t0),
        finished_at: Some(t0.plus(std::time::Duration::from_secs(5))),
        value: "0.95".into(),
        metadata: Some(BTreeMap::from([("k".into(), "v".into())])),
        resume_at: None,
    };
    let running = Measurement {
        phase: AnalysisPhase::Running,
        started_at: Some(t0),
        metadata: Some(BTreeMap::from([("job".into(), "42".into())])),
        resume_at: Some(GoTime {
            offset_secs: Some(0),
            ..t0.plus(std::time::Duration::from_secs(10))
        }),
        ..Default::default()
    };
    let string_map = |pairs: &[(&str, &str)]| {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::String(k.to_string()), Value::String(v.to_string())))
                .collect(),
        )
    };
    let replies: Vec<(&str, &str, Reply)> = vec![
        (
            "Plugin.InitPlugin",
            "",
            Reply::new(RpcError::gob_type(), RpcError::default().to_value()),
        ),
        (
            "Plugin.Run",
            "",
            Reply::new(Measurement::gob_type(), done.to_value()),
        ),
        (
            "Plugin.Resume",
            "",
            Reply::new(Measurement::gob_type(), running.to_value()),
        ),
        (
            "Plugin.GarbageCollect",
            "",
            Reply::new(
                RpcError::gob_type(),
                RpcError {
                    error_string: "boom".into(),
                }
                .to_value(),
            ),
        ),
        (
            "Plugin.Type",
            "",
            Reply::new(GoType::String, Value::String("RPCPlugin".into())),
        ),
        (
            "Plugin.GetMetadata",
            "",
            Reply::new(
                GoType::map(GoType::String, GoType::String),
                string_map(&[("a", "b")]),
            ),
        ),
        (
            "Plugin.GetMetadata",
            "",
            Reply::new(GoType::map(GoType::String, GoType::String), string_map(&[])),
        ),
        (
            "Plugin.Nope",
            "rpc: can't find method Plugin.Nope",
            Reply::empty_struct(),
        ),
        (
            "Dispenser.Dispense",
            "",
            Reply::new(GoType::Uint, Value::Uint(1)),
        ),
        ("Control.Ping", "", Reply::empty_struct()),
        (
            "Plugin.Run",
            "",
            Reply::new(
                Measurement::gob_type(),
                Measurement::error("bad").to_value(),
            ),
        ),
    ];
    let mut enc = Encoder::new();
    let rtype = response_type();
    let mut out = Vec::new();
    for (seq, (method, err, reply)) in replies.iter().enumerate() {
        if let Err(e) = encode_reply(&mut enc, &rtype, method, seq as u64, err, reply, &mut out) {
            eprintln!("encoding reply {seq}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    if let Err(e) = std::fs::write(&path, &out) {
        eprintln!("writing {path}: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
