//! The page the bench navigates to: a tiny local HTTP server the bench starts itself, so that goto
//! measures the sandbox and not the internet.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;

/// Title of the fixture page; samples check it after navigation.
pub const FIXTURE_TITLE: &str = "sandcanary bench fixture";

const PAGE: &str = "<!doctype html><html><head><title>sandcanary bench fixture</title></head>\
<body><p>Hostname: sandcanary-fixture</p></body></html>";

const NOT_FOUND: &str = "<!doctype html><title>not found</title>";

/// A running fixture server; stops when dropped.
pub struct FixtureServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureServer {
    /// Binds 127.0.0.1 on a free port and serves the page at `/` (everything else is 404).
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // A 404 with a body: Chromium turns an empty 404 into a navigation error instead of a page.
        let app = Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .fallback(|| async { (StatusCode::NOT_FOUND, Html(NOT_FOUND)) });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "fixture server stopped");
            }
        });
        Ok(Self {
            url: format!("http://{addr}/"),
            task,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_page_and_404_elsewhere() {
        let server = FixtureServer::start().await.unwrap();
        let body = reqwest::get(server.url()).await.unwrap();
        assert_eq!(body.status(), 200);
        assert!(body.text().await.unwrap().contains(FIXTURE_TITLE));
        let missing = reqwest::get(format!("{}favicon.ico", server.url()))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }
}
