//! The admin port: health, readiness, Prometheus metrics and the session API the bench drives
//! (see docs/session-api.md). The session API is off unless a token is configured.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use secrecy::{ExposeSecret, SecretString};

use crate::admission::Admission;
use crate::http_error::HttpError;
use crate::id::valid as valid_id;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::session::{ControlError, SessionInfo, SessionManager};

#[derive(Clone)]
pub struct AdminState {
    pub sessions: SessionManager,
    pub identity: Arc<dyn Identity>,
    pub metrics: Metrics,
    pub token: Option<SecretString>,
    /// Session API ensures take a slot like data-port requests (tenant `session-api`).
    pub admission: Option<Arc<Admission>>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", any(|| async { "ok" }))
        .route("/readyz", any(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/sessions", get(list))
        .route("/v1/sessions/{id}", get(show).put(ensure).delete(delete))
        .route("/v1/sessions/{id}/suspend", post(suspend))
        .route("/v1/sessions/{id}/resume", post(resume))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.identity.ready() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "informer cache not synced").into_response()
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// A refused API call: status and message, rendered as `{"error": ...}`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// Checks the bearer token; `Err` is the response to send instead.
fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = &s.token else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "the session API is off (set SESSION_API_TOKEN)".into(),
        ));
    };
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "more than one authorization header".into(),
        ));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(
        presented
            .trim()
            .as_bytes()
            .ct_eq(token.expose_secret().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token".into(),
        ))
    }
}

fn check_id(id: &str) -> Result<(), Refusal> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("invalid session id: want {}", crate::id::RULE),
        ))
    }
}

fn control_error(e: ControlError) -> Refusal {
    Refusal(e.status(), e.to_string())
}

type Answer<T> = Result<T, Refusal>;

async fn list(State(s): State<AdminState>, headers: HeaderMap) -> Answer<Response> {
    authorize(&s, &headers)?;
    Ok(Json(json!({ "sessions": s.sessions.list() })).into_response())
}

/// Authorizes the call and checks the id in its path.
fn guard(s: &AdminState, headers: &HeaderMap, id: &str) -> Answer<()> {
    authorize(s, headers)?;
    check_id(id)
}

async fn show(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Json<SessionInfo>> {
    guard(&s, &headers, &id)?;
    s.sessions
        .show(&id)
        .await
        .map_err(control_error)?
        .map(Json)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("no session for id {id:?}")))
}

/// The tenant that session API ensures count against in admission.
pub const SESSION_API_TENANT: &str = "session-api";

async fn ensure(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SessionInfo>, Response> {
    guard(&s, &headers, &id).map_err(IntoResponse::into_response)?;
    let ticket = match &s.admission {
        None => None,
        Some(a) => Some(a.admit(SESSION_API_TENANT, &id).await.map_err(|r| {
            let mut resp = error(r.status(), &r);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, a.retry_after(&r).into());
            resp
        })?),
    };
    let got = s.sessions.get(&id).await;
    drop(ticket);
    let refusal = match got {
        Ok((lease, _)) => {
            drop(lease);
            return s
                .sessions
                .info(&id)
                .map(Json)
                .ok_or_else(|| error(StatusCode::CONFLICT, "the session went away meanwhile"));
        }
        Err(e) => Refusal(e.status(), e.to_string()),
    };
    Err(refusal.into_response())
}

async fn delete(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    guard(&s, &headers, &id)?;
    s.sessions.delete(&id).await.map_err(control_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn suspend(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Json<SessionInfo>> {
    guard(&s, &headers, &id)?;
    s.sessions
        .suspend(&id)
        .await
        .map(Json)
        .map_err(control_error)
}

async fn resume(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Json<SessionInfo>> {
    guard(&s, &headers, &id)?;
    s.sessions
        .resume(&id)
        .await
        .map(Json)
        .map_err(control_error)
}
