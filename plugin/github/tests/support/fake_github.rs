//! A fake of the GitHub REST API endpoints the reporter calls, answering with the published
//! shapes (issue, comment, label, installation token and error objects) and able to inject the
//! failures GitHub produces: rate limits with their headers, 5xx, malformed bodies, and requests
//! that are applied but answered late or wrongly.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::time::Instant;

pub const OWNER: &str = "acme";
pub const REPO: &str = "proxy";

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    ListIssues,
    CreateIssue,
    ListComments,
    CreateComment,
    UpdateIssue,
    AccessToken,
}

/// An injected failure, used once per matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Refuse without applying anything.
    Refuse {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Apply the request, then answer with this status and raw body.
    ApplyThenAnswer { status: u16, body: String },
    /// Apply the request, then answer only after this long (the client times out first).
    ApplyThenHang(Duration),
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Option<Value>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// How callers authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>` on every repository call.
    Token(String),
    /// App JWT (RS256, checked with this public key and app id) on the token endpoint, then the
    /// minted installation token on repository calls.
    App {
        app_id: u64,
        installation_id: u64,
        public_key_pem: Vec<u8>,
        minted: String,
    },
}

struct Inner {
    auth: Auth,
    issues: Vec<Value>,
    comments: HashMap<u64, Vec<Value>>,
    requests: Vec<Recorded>,
    faults: HashMap<Route, VecDeque<Fault>>,
    /// Drop labels on create, as GitHub does for callers without triage access.
    drop_labels: bool,
    /// Logins that may be assigned; `None` accepts any.
    assignable: Option<Vec<String>>,
    next_id: u64,
}

/// A running fake on 127.0.0.1 with an OS-chosen port.
#[derive(Clone)]
pub struct FakeGithub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGithub {
    pub async fn start(auth: Auth) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            auth,
            issues: Vec::new(),
            comments: HashMap::new(),
            requests: Vec::new(),
            faults: HashMap::new(),
            drop_labels: false,
            assignable: None,
            next_id: 1000,
        }));
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/issues",
                get(list_issues).post(create_issue),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}",
                axum::routing::patch(update_issue),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(list_comments).post(create_comment),
            )
            .route("/app/installations/{id}/access_tokens", post(access_token))
            .fallback(not_found)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inner }
    }

    pub fn fail(&self, route: Route, fault: Fault) {
        self.inner
            .lock()
            .unwrap()
            .faults
            .entry(route)
            .or_default()
            .push_back(fault);
    }

    /// Closes an issue as completed, as a person would.
    pub fn close_issue(&self, number: u64) {
        let mut inner = self.inner.lock().unwrap();
        let index = issue_index(&inner, number).unwrap();
        let issue = &mut inner.issues[index];
        issue["state"] = json!("closed");
        issue["state_reason"] = json!("completed");
        issue["closed_at"] = json!(chrono_like_now());
    }

    pub fn only_assignable(&self, logins: &[&str]) {
        self.inner.lock().unwrap().assignable =
            Some(logins.iter().map(|s| s.to_string()).collect());
    }

    pub fn drop_labels(&self) {
        self.inner.lock().unwrap().drop_labels = true;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, method: Method, path_suffix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(path_suffix))
            .collect()
    }

    pub fn issues(&self) -> Vec<Value> {
        self.inner.lock().unwrap().issues.clone()
    }

    pub fn comments(&self, number: u64) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .comments
            .get(&number)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds an issue (or, with `pull_request`, a PR) as if someone had created it earlier.
    pub fn seed_issue(&self, title: &str, body: &str, labels: &[&str], pull_request: bool) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let mut issue = new_issue(&mut inner, title, body, &labels, &[]);
        if pull_request {
            let n = issue["number"].as_u64().unwrap();
            issue["pull_request"] = json!({
                "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/pulls/{n}"),
                "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{n}"),
                "diff_url": format!("https://github.com/{OWNER}/{REPO}/pull/{n}.diff"),
                "patch_url": format!("https://github.com/{OWNER}/{REPO}/pull/{n}.patch"),
            });
        }
        let number = issue["number"].as_u64().unwrap();
        inner.issues.push(issue);
        number
    }
}

type Shared = Arc<Mutex<Inner>>;

fn record(inner: &mut Inner, method: Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    inner.requests.push(Recorded {
        method,
        path: uri.path().to_string(),
        query,
        headers: headers.clone(),
        body: serde_json::from_slice(body).ok(),
        at: Instant::now(),
    });
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

fn not_found() -> std::future::Ready<Response> {
    std::future::ready(error(StatusCode::NOT_FOUND, "Not Found"))
}

/// Checks the bearer token of a repository call.
fn authorised(inner: &Inner, headers: &HeaderMap) -> bool {
    let expected = match &inner.auth {
        Auth::Token(t) => format!("Bearer {t}"),
        Auth::App { minted, .. } => format!("Bearer {minted}"),
    };
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

fn user(login: &str, id: u64) -> Value {
    json!({
        "login": login,
        "id": id,
        "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "type": "User",
        "site_admin": false,
    })
}

fn new_issue(
    inner: &mut Inner,
    title: &str,
    body: &str,
    labels: &[String],
    assignees: &[String],
) -> Value {
    inner.next_id += 1;
    let id = inner.next_id;
    let number = inner.issues.len() as u64 + 1;
    let api = format!("https://api.github.com/repos/{OWNER}/{REPO}/issues/{number}");
    let now = chrono_like_now();
    let labels: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({
                "id": 5000 + i,
                "node_id": format!("LA_{i}"),
                "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/labels/{name}"),
                "name": name,
                "color": "ededed",
                "default": false,
                "description": null,
            })
        })
        .collect();
    let assignees: Vec<Value> = assignees
        .iter()
        .enumerate()
        .map(|(i, login)| user(login, 200 + i as u64))
        .collect();
    json!({
        "id": id,
        "node_id": format!("I_kwDO{id}"),
        "url": api,
        "repository_url": format!("https://api.github.com/repos/{OWNER}/{REPO}"),
        "labels_url": format!("{api}/labels{{/name}}"),
        "comments_url": format!("{api}/comments"),
        "events_url": format!("{api}/events"),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/issues/{number}"),
        "number": number,
        "state": "open",
        "state_reason": null,
        "title": title,
        "body": body,
        "user": user("sandcanary-bot", 100),
        "labels": labels,
        "assignee": assignees.first().cloned(),
        "assignees": assignees,
        "milestone": null,
        "locked": false,
        "active_lock_reason": null,
        "comments": 0,
        "closed_at": null,
        "created_at": now,
        "updated_at": now,
        "closed_by": null,
        "author_association": "NONE",
    })
}

fn chrono_like_now() -> String {
    "2026-11-28T12:00:00Z".to_string()
}

/// Takes the next fault for `route`, if any.
fn next_fault(inner: &mut Inner, route: Route) -> Option<Fault> {
    inner.faults.get_mut(&route).and_then(VecDeque::pop_front)
}

/// Answers a request that has been applied, honouring an apply-then-fail fault.
async fn applied(fault: Option<Fault>, status: StatusCode, value: Value) -> Response {
    match fault {
        Some(Fault::ApplyThenAnswer { status, body }) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
        Some(Fault::ApplyThenHang(d)) => {
            tokio::time::sleep(d).await;
            (status, axum::Json(value)).into_response()
        }
        _ => (status, axum::Json(value)).into_response(),
    }
}

/// A refusing fault's response, or `None` to carry on.
fn refusal(fault: &Option<Fault>) -> Option<Response> {
    if let Some(Fault::Refuse {
        status,
        headers,
        body,
    }) = fault
    {
        let mut response = (
            StatusCode::from_u16(*status).unwrap(),
            [("content-type", "application/json; charset=utf-8")],
            body.clone(),
        )
            .into_response();
        for (k, v) in headers {
            response.headers_mut().insert(*k, v.parse().unwrap());
        }
        return Some(response);
    }
    None
}

fn repo_ok(owner: &str, repo: &str) -> bool {
    owner == OWNER && repo == REPO
}

async fn list_issues(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (fault, listing) = {
        let mut inner = state.lock().unwrap();
        record(&mut inner, Method::GET, &uri, &headers, &Bytes::new());
        if !authorised(&inner, &headers) {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        if !repo_ok(&owner, &repo) {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        let fault = next_fault(&mut inner, Route::ListIssues);
        let wanted: Vec<&str> = query
            .get("labels")
            .map(|l| l.split(',').collect())
            .unwrap_or_default();
        let state_filter = query.get("state").map_or("open", String::as_str);
        let per_page: usize = query
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30);
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let mut matching: Vec<Value> = inner
            .issues
            .iter()
            .filter(|i| state_filter == "all" || i["state"] == state_filter)
            .filter(|i| {
                wanted.iter().all(|w| {
                    i["labels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|l| l["name"] == *w)
                })
            })
            .cloned()
            .collect();
        matching.reverse(); // newest first
        let listing: Vec<Value> = matching
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        (fault, listing)
    };
    if let Some(r) = refusal(&fault) {
        return r;
    }
    applied(fault, StatusCode::OK, Value::Array(listing)).await
}

async fn create_issue(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, issue) = {
        let mut inner = state.lock().unwrap();
        record(&mut inner, Method::POST, &uri, &headers, &body);
        if !authorised(&inner, &headers) {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        if !repo_ok(&owner, &repo) {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        let fault = next_fault(&mut inner, Route::CreateIssue);
        if let Some(r) = refusal(&fault) {
            return r;
        }
        let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
            return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
        };
        let Some(title) = payload["title"].as_str().filter(|t| !t.is_empty()) else {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
                    "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                    "status": "422",
                })),
            )
                .into_response();
        };
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let labels = if inner.drop_labels {
            Vec::new()
        } else {
            strings(&payload["labels"])
        };
        let assignees = strings(&payload["assignees"]);
        let refused = inner
            .assignable
            .as_ref()
            .and_then(|allowed| assignees.iter().find(|a| !allowed.contains(a)));
        if let Some(bad) = refused {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "message": "Validation Failed",
                    "errors": [{"value": bad, "resource": "Issue", "field": "assignees", "code": "invalid"}],
                    "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                    "status": "422",
                })),
            )
                .into_response();
        }
        let body_text = payload["body"].as_str().unwrap_or("").to_string();
        let issue = new_issue(&mut inner, title, &body_text, &labels, &assignees);
        inner.issues.push(issue.clone());
        (fault, issue)
    };
    applied(fault, StatusCode::CREATED, issue).await
}

fn issue_index(inner: &Inner, number: u64) -> Option<usize> {
    inner
        .issues
        .iter()
        .position(|i| i["number"].as_u64() == Some(number))
}

/// `PATCH /repos/{owner}/{repo}/issues/{number}`: only `state` (and `state_reason`) are handled.
async fn update_issue(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, issue) = {
        let mut inner = state.lock().unwrap();
        record(&mut inner, Method::PATCH, &uri, &headers, &body);
        if !authorised(&inner, &headers) {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        let Some(index) = issue_index(&inner, number).filter(|_| repo_ok(&owner, &repo)) else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        let fault = next_fault(&mut inner, Route::UpdateIssue);
        if let Some(r) = refusal(&fault) {
            return r;
        }
        let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
            return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
        };
        let issue = &mut inner.issues[index];
        match payload["state"].as_str() {
            Some("open") => {
                issue["state"] = json!("open");
                issue["state_reason"] = json!("reopened");
                issue["closed_at"] = Value::Null;
            }
            Some("closed") => {
                // GitHub: state_reason is completed (the default), not_planned or duplicate.
                let reason = match &payload["state_reason"] {
                    Value::Null => "completed",
                    Value::String(r)
                        if ["completed", "not_planned", "duplicate"].contains(&r.as_str()) =>
                    {
                        r
                    }
                    _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
                };
                // Closing a closed issue changes nothing (and keeps its closed_at).
                if issue["state"] != "closed" {
                    issue["closed_at"] = json!(chrono_like_now());
                }
                issue["state"] = json!("closed");
                issue["state_reason"] = json!(reason);
            }
            Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
            None => {}
        }
        (fault, issue.clone())
    };
    applied(fault, StatusCode::OK, issue).await
}

async fn list_comments(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (fault, listing) = {
        let mut inner = state.lock().unwrap();
        record(&mut inner, Method::GET, &uri, &headers, &Bytes::new());
        if !authorised(&inner, &headers) {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        if !repo_ok(&owner, &repo) || issue_index(&inner, number).is_none() {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        let fault = next_fault(&mut inner, Route::ListComments);
        let per_page: usize = query
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30);
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let listing: Vec<Value> = inner
            .comments
            .get(&number)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .skip((page.max(1) - 1) * per_page)
            .take(per_page)
            .collect();
        (fault, listing)
    };
    if let Some(r) = refusal(&fault) {
        return r;
    }
    applied(fault, StatusCode::OK, Value::Array(listing)).await
}

async fn create_comment(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, comment) = {
        let mut inner = state.lock().unwrap();
        record(&mut inner, Method::POST, &uri, &headers, &body);
        if !authorised(&inner, &headers) {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        let Some(index) = issue_index(&inner, number).filter(|_| repo_ok(&owner, &repo)) else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        let fault = next_fault(&mut inner, Route::CreateComment);
        if let Some(r) = refusal(&fault) {
            return r;
        }
        let Some(text) = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["body"].as_str().map(String::from))
        else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
        };
        inner.next_id += 1;
        let id = inner.next_id;
        let now = chrono_like_now();
        let comment = json!({
            "id": id,
            "node_id": format!("IC_kwDO{id}"),
            "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/issues/comments/{id}"),
            "html_url": format!("https://github.com/{OWNER}/{REPO}/issues/{number}#issuecomment-{id}"),
            "body": text,
            "user": user("sandcanary-bot", 100),
            "created_at": now,
            "updated_at": now,
            "issue_url": format!("https://api.github.com/repos/{OWNER}/{REPO}/issues/{number}"),
            "author_association": "NONE",
        });
        inner
            .comments
            .entry(number)
            .or_default()
            .push(comment.clone());
        let count = inner.comments[&number].len();
        inner.issues[index]["comments"] = json!(count);
        (fault, comment)
    };
    applied(fault, StatusCode::CREATED, comment).await
}

async fn access_token(
    State(state): State<Shared>,
    Path(id): Path<u64>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = state.lock().unwrap();
    record(&mut inner, Method::POST, &uri, &headers, &body);
    let Auth::App {
        app_id,
        installation_id,
        public_key_pem,
        minted,
    } = inner.auth.clone()
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Some(r) = refusal(&next_fault(&mut inner, Route::AccessToken)) {
        return r;
    }
    let jwt = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public_key_pem).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is GitHub's integer app id, which this library only reads as a string: checked below.
    validation.set_required_spec_claims(&["exp", "iat"]);
    let claims = jwt.and_then(|t| {
        jsonwebtoken::decode::<Value>(t, &key, &validation)
            .map_err(|e| eprintln!("fake github: JWT rejected: {e}"))
            .ok()
    });
    let Some(claims) = claims else {
        return error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        );
    };
    let iss_ok = claims.claims["iss"].as_u64() == Some(app_id)
        || claims.claims["iss"].as_str() == Some(&app_id.to_string());
    if !iss_ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "'Issuer' claim ('iss') must be an Integer",
        );
    }
    if id != installation_id {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "token": minted,
            "expires_at": "2099-01-01T00:00:00Z",
            "permissions": {"issues": "write", "metadata": "read"},
            "repository_selection": "selected",
        })),
    )
        .into_response()
}
