//! Everything logged during LLM calls (ours and the HTTP stack's, at TRACE) is captured and
//! searched for the keys: they must never appear, even when a server echoes them back.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Fake, Reply, bench_like};
use sandcanary_judge::Judge;
use sandcanary_judge::llm::openai::OpenAiConfig;
use sandcanary_judge::llm::secret::SecretRef;
use sandcanary_judge::llm::{LlmConfig, LlmJudge, ProviderConfig};

const KEY: &str = "sk-log-test-9f8e7d6c5b4a";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn keys_never_reach_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = std::env::temp_dir().join(format!("sandcanary-judge-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("key");
    std::fs::write(&key_path, KEY).unwrap();

    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}","type":"invalid_request_error"}}}}"#
    );
    let fake = Fake::start(vec![
        Reply::json(429, r#"{"error":{"message":"Rate limit reached"}}"#)
            .header("retry-after", "0"),
        Reply::json(500, echo.clone()),
        Reply::json(401, echo),
    ])
    .await;
    let mut config = LlmConfig::new(ProviderConfig::Openai(OpenAiConfig {
        base_url: format!("{}/v1", fake.url()),
        model: "m".into(),
        api_key: Some(SecretRef::file(key_path)),
    }));
    config.timeout_seconds = 20.0;
    let judge = LlmJudge::new(config).unwrap();
    let v = judge.judge(&bench_like(1.0)).await;
    assert_eq!(v.judge, "llm->statistical");
    assert_eq!(fake.recorded().len(), 3);
    // the key was sent, so there was something to leak
    assert_eq!(
        fake.recorded()[0].headers["authorization"],
        format!("Bearer {KEY}")
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("llm: retrying"),
        "expected retry logs, got:\n{logs}"
    );
    assert!(logs.contains("falls back to statistical"), "{logs}");
    assert!(!logs.contains(KEY), "key leaked into logs:\n{logs}");
    assert!(!format!("{v:?}").contains(KEY));
    std::fs::remove_dir_all(dir).ok();
}
