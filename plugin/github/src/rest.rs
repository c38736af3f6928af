//! [`IssueApi`] over GitHub's REST API with octocrab.
//!
//! octocrab's typed calls hide response headers and, by default, retry POSTs on 5xx and
//! transport errors. So its retry layer is switched off and its raw `_get`/`_post` are used:
//! we see the status, `retry-after` and `x-ratelimit-*` headers and decide ourselves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{CommentRef, IssueApi, IssueRef, IssueState};
use crate::config::GithubConfig;
use crate::error::{ApiError, ReportError};
use crate::render::IssueDraft;
use crate::secret::Credentials;

/// GitHub's current REST API version.
const API_VERSION: &str = "2022-11-28";
/// Error messages from the server are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// The real GitHub (or anything speaking its REST API).
#[derive(Clone)]
pub struct RestApi {
    client: Octocrab,
    repo_path: String,
    timeout: Duration,
}

impl std::fmt::Debug for RestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestApi")
            .field("repo_path", &self.repo_path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RestApi {
    /// Builds the client. Must run inside a tokio runtime (octocrab spawns a worker).
    pub fn new(config: &GithubConfig, credentials: Credentials) -> Result<Self, ReportError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ReportError::Client(
                "the GitHub client must be built inside a tokio runtime".into(),
            ));
        }
        let limits = &config.limits;
        let mut builder = Octocrab::builder()
            .base_uri(config.api_url.as_str())
            .map_err(|e| ReportError::Client(format!("apiUrl: {e}")))?
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(limits.request_timeout()))
            .set_read_timeout(Some(limits.request_timeout()))
            .set_write_timeout(Some(limits.request_timeout()))
            .add_header(http::header::ACCEPT, "application/vnd.github+json".into())
            .add_header(
                http::HeaderName::from_static("x-github-api-version"),
                API_VERSION.into(),
            );
        let app_installation = match credentials {
            Credentials::Token(token) => {
                builder = builder.personal_token(token);
                None
            }
            Credentials::App {
                app_id,
                installation_id,
                key,
            } => {
                builder = builder.app(octocrab::models::AppId(app_id), key);
                Some(installation_id)
            }
        };
        let mut client = builder
            .build()
            .map_err(|e| ReportError::Client(e.to_string()))?;
        if let Some(id) = app_installation {
            client = client
                .installation(octocrab::models::InstallationId(id))
                .map_err(|e| ReportError::Client(e.to_string()))?;
        }
        Ok(Self {
            client,
            repo_path: format!("/repos/{}/{}", config.owner, config.repo),
            timeout: limits.request_timeout(),
        })
    }

    /// Sends one request under the deadline and returns the status, headers and body bytes.
    async fn exchange(
        &self,
        request: impl Future<Output = octocrab::Result<RawResponse>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
        let exchange = async {
            let response = request.await.map_err(transport)?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(transport)?.to_bytes();
            Ok::<_, ApiError>((parts.status, parts.headers, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ApiError::Timeout(self.timeout))?
    }

    async fn get_json<T: DeserializeOwned>(&self, path: String) -> Result<T, ApiError> {
        let (status, headers, body) = self.exchange(self.client._get(path)).await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        parse(&body)
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: String,
        payload: &serde_json::Value,
    ) -> Result<T, ApiError> {
        let (status, headers, body) = self
            .exchange(self.client._post(path, Some(payload)))
            .await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        parse(&body)
    }

    async fn patch_json<T: DeserializeOwned>(
        &self,
        path: String,
        payload: &serde_json::Value,
    ) -> Result<T, ApiError> {
        let (status, headers, body) = self
            .exchange(self.client._patch(path, Some(payload)))
            .await?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        parse(&body)
    }
}

type RawResponse = http::Response<BoxBody<Bytes, octocrab::Error>>;

impl IssueApi for RestApi {
    async fn issues_with_label(
        &self,
        label: &str,
        state: IssueState,
    ) -> Result<Vec<IssueRef>, ApiError> {
        let label: String = url::form_urlencoded::byte_serialize(label.as_bytes()).collect();
        let path = format!(
            "{}/issues?state={}&labels={label}&sort=created&direction=desc&per_page=100",
            self.repo_path,
            state.as_str()
        );
        let issues: Vec<WireIssue> = self.get_json(path).await?;
        Ok(issues
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .map(WireIssue::into_ref)
            .collect())
    }

    async fn create_issue(&self, draft: &IssueDraft) -> Result<IssueRef, ApiError> {
        let mut payload = serde_json::json!({
            "title": draft.title,
            "body": draft.body,
            "labels": draft.labels,
        });
        if !draft.assignees.is_empty() {
            payload["assignees"] = serde_json::json!(draft.assignees);
        }
        let issue: WireIssue = self
            .post_json(format!("{}/issues", self.repo_path), &payload)
            .await?;
        Ok(issue.into_ref())
    }

    async fn reopen_issue(&self, issue: u64) -> Result<IssueRef, ApiError> {
        let payload = serde_json::json!({ "state": "open" });
        let issue: WireIssue = self
            .patch_json(format!("{}/issues/{issue}", self.repo_path), &payload)
            .await?;
        Ok(issue.into_ref())
    }

    async fn close_issue(&self, issue: u64) -> Result<IssueRef, ApiError> {
        let payload = serde_json::json!({ "state": "closed", "state_reason": "completed" });
        let issue: WireIssue = self
            .patch_json(format!("{}/issues/{issue}", self.repo_path), &payload)
            .await?;
        Ok(issue.into_ref())
    }

    async fn comments(&self, issue: u64, page: u64) -> Result<Vec<CommentRef>, ApiError> {
        let path = format!(
            "{}/issues/{issue}/comments?per_page=100&page={page}",
            self.repo_path
        );
        let comments: Vec<WireComment> = self.get_json(path).await?;
        Ok(comments.into_iter().map(WireComment::into_ref).collect())
    }

    async fn create_comment(&self, issue: u64, body: &str) -> Result<CommentRef, ApiError> {
        let payload = serde_json::json!({ "body": body });
        let comment: WireComment = self
            .post_json(
                format!("{}/issues/{issue}/comments", self.repo_path),
                &payload,
            )
            .await?;
        Ok(comment.into_ref())
    }
}

/// The fields we read from GitHub's issue object; everything else is ignored.
#[derive(Deserialize)]
struct WireIssue {
    number: u64,
    html_url: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    labels: Vec<WireLabel>,
    #[serde(default)]
    comments: u64,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

/// GitHub's schema allows a label to be an object or a bare name.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireLabel {
    Object { name: String },
    Name(String),
}

impl WireIssue {
    fn into_ref(self) -> IssueRef {
        IssueRef {
            number: self.number,
            html_url: self.html_url,
            body: self.body.unwrap_or_default(),
            labels: self
                .labels
                .into_iter()
                .map(|l| match l {
                    WireLabel::Object { name } | WireLabel::Name(name) => name,
                })
                .collect(),
            comments: self.comments,
        }
    }
}

#[derive(Deserialize)]
struct WireComment {
    id: u64,
    html_url: String,
    #[serde(default)]
    body: Option<String>,
}

impl WireComment {
    fn into_ref(self) -> CommentRef {
        CommentRef {
            id: self.id,
            html_url: self.html_url,
            body: self.body.unwrap_or_default(),
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Malformed(e.to_string()))
}

/// octocrab reports GitHub's own refusals (e.g. of the App token exchange it does for us) as
/// errors; those are sorted like any other answer, the rest are transport failures.
fn transport(e: octocrab::Error) -> ApiError {
    match e {
        octocrab::Error::GitHub { source, .. } => classify_message(
            source.status_code,
            &source.headers.unwrap_or_default(),
            source.message,
        ),
        other => ApiError::Transport(shorten(&other.to_string())),
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
    if s.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

/// Sorts a non-success answer by what may be done next, reading GitHub's rate-limit signals:
/// 429 always, 403 when it carries `retry-after`, a spent `x-ratelimit-remaining`, or says so.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
    }
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    classify_message(status, headers, message)
}

fn classify_message(status: StatusCode, headers: &HeaderMap, message: String) -> ApiError {
    let message = shorten(&message);
    let code = status.as_u16();

    let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
    let spent = header_u64(headers, "x-ratelimit-remaining") == Some(0);
    let until_reset = header_u64(headers, "x-ratelimit-reset")
        .filter(|_| spent)
        .map(|reset| Duration::from_secs(reset.saturating_sub(unix_now()).max(1)));
    let says_so = message.to_ascii_lowercase().contains("rate limit");

    if code == 429 || (code == 403 && (retry_after.is_some() || spent || says_so)) {
        ApiError::RateLimited {
            status: code,
            wait: retry_after.or(until_reset),
            message,
        }
    } else if status.is_server_error() {
        ApiError::Server {
            status: code,
            message,
        }
    } else {
        ApiError::Rejected {
            status: code,
            message,
        }
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn secondary_limit_with_retry_after() {
        let e = classify(
            StatusCode::FORBIDDEN,
            &headers(&[("retry-after", "7".into())]),
            br#"{"message":"You have exceeded a secondary rate limit"}"#,
        );
        assert_eq!(
            e,
            ApiError::RateLimited {
                status: 403,
                wait: Some(Duration::from_secs(7)),
                message: "You have exceeded a secondary rate limit".into()
            }
        );
    }

    #[test]
    fn primary_limit_waits_for_reset() {
        let reset = unix_now() + 30;
        let e = classify(
            StatusCode::FORBIDDEN,
            &headers(&[
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset.to_string()),
            ]),
            br#"{"message":"API rate limit exceeded"}"#,
        );
        match e {
            ApiError::RateLimited { wait: Some(w), .. } => {
                assert!(
                    w >= Duration::from_secs(28) && w <= Duration::from_secs(30),
                    "{w:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_429_and_rate_limit_message_without_headers() {
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b""),
            ApiError::RateLimited { wait: None, .. }
        ));
        assert!(matches!(
            classify(
                StatusCode::FORBIDDEN,
                &HeaderMap::new(),
                br#"{"message":"You have exceeded a secondary rate limit."}"#
            ),
            ApiError::RateLimited {
                status: 403,
                wait: None,
                ..
            }
        ));
    }

    #[test]
    fn plain_403_and_others() {
        assert_eq!(
            classify(
                StatusCode::FORBIDDEN,
                &headers(&[("x-ratelimit-remaining", "4999".into())]),
                br#"{"message":"Resource not accessible by integration"}"#
            ),
            ApiError::Rejected {
                status: 403,
                message: "Resource not accessible by integration".into()
            }
        );
        assert!(matches!(
            classify(
                StatusCode::BAD_GATEWAY,
                &HeaderMap::new(),
                b"<html>bad gateway</html>"
            ),
            ApiError::Server { status: 502, .. }
        ));
        assert!(matches!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, &HeaderMap::new(), b"{}"),
            ApiError::Rejected { status: 422, .. }
        ));
    }

    #[test]
    fn wire_issue_accepts_both_label_shapes_and_skips_unknown_fields() {
        let issue: WireIssue = serde_json::from_str(
            r#"{"number":3,"html_url":"https://github.com/a/b/issues/3","body":null,
                "labels":[{"id":1,"name":"x","color":"fff"},"y"],"comments":2,"extra":true}"#,
        )
        .unwrap();
        let r = issue.into_ref();
        assert_eq!(r.labels, vec!["x".to_string(), "y".to_string()]);
        assert_eq!(r.body, "");
        assert_eq!(r.comments, 2);
    }
}
