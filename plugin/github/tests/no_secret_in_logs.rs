//! Secrets never reach the logs, even at TRACE level with every dependency's events enabled.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use sandcanary_github::{AppAuthConfig, GithubConfig, ReportOutcome, Reporter};
use support::fake_github::{Auth, FakeGithub, Fault, Route};
use support::{config, verdict};

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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    /// Installs a TRACE subscriber for this thread (the current-thread test runtime runs the
    /// client, octocrab's worker and the fake on it).
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

#[tokio::test]
async fn a_token_is_never_logged() {
    let logs = Captured::default();
    let _guard = logs.install();
    let token = "ghp_secretValueThatMustNotBeLogged42";
    let fake = FakeGithub::start(Auth::Token(token.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let reporter = Reporter::from_config(config(&fake.url, &token_file)).unwrap();
    fake.fail(
        Route::CreateIssue,
        Fault::Refuse {
            status: 403,
            headers: vec![("retry-after", "1".into())],
            body: r#"{"message":"You have exceeded a secondary rate limit."}"#.into(),
        },
    );
    reporter.report(&verdict("run-1")).await.unwrap();
    let outcome = reporter.report(&verdict("run-2")).await.unwrap();
    assert!(matches!(outcome, ReportOutcome::Commented { .. }));

    let text = logs.text();
    assert!(text.contains("opened issue"), "logs were captured:\n{text}");
    assert!(text.contains("GitHub call failed; retrying"));
    assert!(
        text.contains("http.method=POST"),
        "octocrab's own spans are captured too"
    );
    assert!(!text.contains(token), "token in logs:\n{text}");
    assert!(!text.contains("secretValue"));
}

#[tokio::test]
async fn app_key_and_installation_token_are_never_logged() {
    let logs = Captured::default();
    let _guard = logs.install();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let minted = "ghs_mintedSecretThatMustNotBeLogged7";
    let fake = FakeGithub::start(Auth::App {
        app_id: 5,
        installation_id: 6,
        public_key_pem: std::fs::read(fixtures.join("test-app-key.pub.pem")).unwrap(),
        minted: minted.into(),
    })
    .await;
    let mut config = GithubConfig::new("acme", "proxy");
    config.api_url = fake.url.clone();
    config.auth.app = Some(AppAuthConfig {
        app_id: 5,
        installation_id: 6,
        private_key_file: Some(fixtures.join("test-app-key.pem")),
        private_key_env: None,
    });
    let reporter = Reporter::from_config(config).unwrap();
    reporter.report(&verdict("run-1")).await.unwrap();

    let text = logs.text();
    assert!(text.contains("opened issue"), "logs were captured:\n{text}");
    assert!(
        !text.contains(minted),
        "installation token in logs:\n{text}"
    );
    let jwts: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .filter_map(|h| h.strip_prefix("Bearer ey").map(|t| format!("ey{t}")))
        .collect();
    assert!(!jwts.is_empty());
    for jwt in jwts {
        assert!(!text.contains(&jwt), "app JWT in logs");
    }
    let key = std::fs::read_to_string(fixtures.join("test-app-key.pem")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!text.contains(key_line), "private key in logs");
}
