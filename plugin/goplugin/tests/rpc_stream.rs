//! The `net/rpc` server end to end over an in-memory stream: the host's golden request stream
//! in, one correct reply per call out; broken requests get error replies and the stream goes on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use goplugin::gob::{Decoder, Encoder, GoType, Limits, Struct, Value};
use goplugin::metric::{
    AnalysisPhase, GarbageCollectArgs, GetMetadataArgs, Measurement, MetricPluginService,
    MetricProvider, RunArgs, TerminateAndResumeArgs,
};
use goplugin::rpc::{self, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Echo;

impl MetricProvider for Echo {
    async fn init(&self) -> Result<(), String> {
        Ok(())
    }
    async fn run(&self, args: RunArgs) -> Measurement {
        let mut m = Measurement::new(AnalysisPhase::Successful, "");
        m.value = args.analysis_run.map(|r| r.name).unwrap_or_default();
        m
    }
    async fn resume(&self, args: TerminateAndResumeArgs) -> Measurement {
        args.measurement
    }
    async fn terminate(&self, args: TerminateAndResumeArgs) -> Measurement {
        let mut m = args.measurement;
        m.phase = AnalysisPhase::Successful;
        m
    }
    async fn garbage_collect(&self, _: GarbageCollectArgs) -> Result<(), String> {
        Ok(())
    }
    fn type_name(&self) -> String {
        "Echo".into()
    }
    fn metadata(&self, _: GetMetadataArgs) -> BTreeMap<String, String> {
        BTreeMap::from([("k".into(), "v".into())])
    }
}

/// Sends `requests` to a fresh Plugin service and returns (header, body) for every reply.
async fn exchange(requests: Vec<u8>) -> Vec<(Value, Value)> {
    exchange_in_pieces(requests, usize::MAX).await
}

/// Like [`exchange`], writing the requests `piece` bytes at a time.
async fn exchange_in_pieces(requests: Vec<u8>, piece: usize) -> Vec<(Value, Value)> {
    let (client, server) = tokio::io::duplex(64 << 10);
    let router =
        Router::new().register("Plugin", Arc::new(MetricPluginService::new(Arc::new(Echo))));
    let srv = tokio::spawn(rpc::serve(server, router, Limits::default()));
    let (mut rd, mut wr) = tokio::io::split(client);
    let writer = tokio::spawn(async move {
        for chunk in requests.chunks(piece.min(requests.len().max(1))) {
            wr.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        wr.shutdown().await.unwrap();
        wr
    });
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), rd.read_to_end(&mut out))
        .await
        .expect("server answered and closed")
        .unwrap();
    let _wr = writer.await.unwrap();
    srv.await.unwrap();
    let mut dec = Decoder::new(&out[..]);
    let mut replies = Vec::new();
    while let Ok(h) = dec.decode() {
        let b = dec.decode().expect("reply body");
        replies.push((h, b));
    }
    replies
}

fn seq(h: &Value) -> u64 {
    h.field("Seq").and_then(Value::as_u64).unwrap_or(0)
}

fn error(h: &Value) -> &str {
    h.field("Error").and_then(Value::as_str).unwrap_or("")
}

#[tokio::test]
async fn golden_plugin_stream_gets_one_reply_per_call() {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plugin_requests.gob"),
    )
    .unwrap();
    let mut replies = exchange(bytes).await;
    replies.sort_by_key(|(h, _)| seq(h));
    let seqs: Vec<u64> = replies.iter().map(|(h, _)| seq(h)).collect();
    assert_eq!(seqs, (0..9).collect::<Vec<_>>());
    for (h, _) in &replies {
        assert_eq!(error(h), "", "{h:?}");
    }
    let run = Measurement::from_value(&replies[1].1).unwrap();
    assert_eq!(
        (run.phase, run.value.as_str()),
        (AnalysisPhase::Successful, "ar-1")
    );
    // Run with a nil AnalysisRun: an Error measurement, not a protocol error.
    let nil = Measurement::from_value(&replies[3].1).unwrap();
    assert_eq!(nil.phase, AnalysisPhase::Error);
    assert!(nil.message.contains("nil"), "{}", nil.message);
    let resumed = Measurement::from_value(&replies[4].1).unwrap();
    assert_eq!(resumed.phase, AnalysisPhase::Running);
    assert_eq!(resumed.started_at.unwrap().nanos, 999_999_999);
    assert_eq!(replies[7].1, Value::String("Echo".into()));
}

fn request(enc: &mut Encoder, method: &str, seq: u64, out: &mut Vec<u8>) {
    let t = GoType::structure(
        "Request",
        &[("ServiceMethod", GoType::String), ("Seq", GoType::Uint)],
    );
    let v = Value::Struct(
        Struct::new()
            .with("ServiceMethod", Value::String(method.into()))
            .with("Seq", Value::Uint(seq)),
    );
    enc.encode(&t, &v, out).unwrap();
}

#[tokio::test]
async fn bad_requests_get_error_replies_and_the_stream_survives() {
    let mut enc = Encoder::new();
    let mut b = Vec::new();
    // 1: unknown method, body a plain string (read fully and skipped)
    request(&mut enc, "Plugin.Nope", 1, &mut b);
    enc.encode(&GoType::String, &Value::String("x".into()), &mut b)
        .unwrap();
    // 2: ill-formed method name
    request(&mut enc, "NoDot", 2, &mut b);
    enc.encode(&GoType::Bool, &Value::Bool(true), &mut b)
        .unwrap();
    // 3: a corrupted body message: a value of an undefined type
    request(&mut enc, "Plugin.Run", 3, &mut b);
    b.extend_from_slice(&[0x03, 0xff, 0xfe, 0x00]);
    // 4: a Run whose body is not an interface at all
    request(&mut enc, "Plugin.Run", 4, &mut b);
    enc.encode(&GoType::Int, &Value::Int(5), &mut b).unwrap();
    // 5: a well-formed call after all that
    request(&mut enc, "Plugin.Type", 5, &mut b);
    b.extend_from_slice(&[0x03, 0x10, 0x00, 0x00]); // nil interface
    let mut replies = exchange(b).await;
    replies.sort_by_key(|(h, _)| seq(h));
    let seqs: Vec<u64> = replies.iter().map(|(h, _)| seq(h)).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(error(&replies[0].0), "rpc: can't find method Plugin.Nope");
    assert_eq!(replies[0].1, Value::Struct(Struct::new()));
    assert!(error(&replies[1].0).contains("ill-formed"));
    assert!(
        error(&replies[2].0).contains("unknown type id"),
        "{:?}",
        replies[2].0
    );
    assert_eq!(error(&replies[3].0), "");
    let m = Measurement::from_value(&replies[3].1).unwrap();
    assert_eq!(m.phase, AnalysisPhase::Error);
    assert_eq!(replies[4].1, Value::String("Echo".into()));
}

#[tokio::test]
async fn a_broken_frame_closes_the_stream_after_answering_what_it_can() {
    let mut enc = Encoder::new();
    let mut b = Vec::new();
    request(&mut enc, "Plugin.Type", 1, &mut b);
    b.extend_from_slice(&[0x03, 0x10, 0x00, 0x00]);
    request(&mut enc, "Plugin.Type", 2, &mut b);
    b.extend_from_slice(&[0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // absurd length
    b.extend_from_slice(&[0u8; 64]);
    let replies = exchange(b).await;
    let mut seqs: Vec<u64> = replies.iter().map(|(h, _)| seq(h)).collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2]);
    let second = replies.iter().find(|(h, _)| seq(h) == 2).unwrap();
    assert!(
        error(&second.0).contains("exceeds the limit"),
        "{:?}",
        second.0
    );
}

#[tokio::test]
async fn requests_split_into_tiny_pieces_are_reassembled() {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plugin_requests.gob"),
    )
    .unwrap();
    for piece in [1, 3, 4096] {
        let replies = exchange_in_pieces(bytes.clone(), piece).await;
        assert_eq!(replies.len(), 9, "piece size {piece}");
        assert!(replies.iter().all(|(h, _)| error(h).is_empty()));
    }
}
