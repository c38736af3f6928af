//! The Kubernetes calls the cluster backends share: wait on one object, create and delete
//! tolerantly, list the managed ids, the labels on managed objects, and the error classification
//! (what to retry, what fails at once).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::watcher;
use serde_json::Value;
use tracing::{debug, warn};

use crate::backend::{BackendError, Endpoint};

/// How often a waited-for object is read, in case a watch event is missed or the watch is down.
pub const POLL: Duration = Duration::from_millis(500);

/// Waits on one object: every observation (from a watch on it, or from a GET every [`POLL`]) goes
/// to `observe` (`None` = the object does not exist), which ends the wait by returning `Some`.
/// Transient read errors are retried; other read errors end the wait. Bounded by the caller
/// (the session manager's ENSURE_TIMEOUT drops the future).
pub async fn wait_on<F, Fut>(
    api: &Api<DynamicObject>,
    kind: &str,
    name: &str,
    mut observe: F,
) -> Result<Endpoint, BackendError>
where
    F: FnMut(Option<DynamicObject>) -> Fut,
    Fut: Future<Output = Option<Result<Endpoint, BackendError>>>,
{
    let mut watch = watcher::watch_object(api.clone(), name).boxed();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let observed = tokio::select! {
            ev = watch.next() => match ev {
                Some(Ok(obj)) => obj,
                Some(Err(e)) => {
                    debug!(kind, name, error = %e, "watch failed; polling");
                    // The watch restarts on the next poll of the stream; pace it.
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                None => {
                    watch = futures::stream::pending().boxed();
                    continue;
                }
            },
            _ = poll.tick() => match api.get_opt(name).await {
                Ok(obj) => obj,
                Err(e) if transient(&e) => {
                    warn!(kind, name, error = %describe(&e), "read failed; retrying");
                    continue;
                }
                Err(e) => return Err(BackendError::kube(format!("cannot read {kind} {name}"), e)),
            },
        };
        if let Some(done) = observe(observed).await {
            return done;
        }
    }
}

/// One read of the object `name` (`None` when it does not exist), for [`super::Backend::lookup`].
pub async fn read(
    api: &Api<DynamicObject>,
    kind: &str,
    name: &str,
) -> Result<Option<DynamicObject>, BackendError> {
    api.get_opt(name)
        .await
        .map_err(|e| BackendError::kube(format!("cannot read {kind} {name}"), e))
}

/// Label on every object the proxy creates; `list` selects on it.
pub const MANAGED_LABEL: &str = "playwright-proxy/managed";

/// The labels every managed object carries: the managed marker and `<label key>: <id>` (the raw id,
/// so that hashed object names still round-trip through `list`).
pub fn managed_labels(label_key: &str, id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (label_key.to_string(), id.to_string()),
    ])
}

/// The HTTP status of an API error, if the server answered.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Errors worth retrying: the server did not answer, is overloaded (429) or failed (5xx).
pub fn transient(e: &kube::Error) -> bool {
    match api_code(e) {
        None => true,
        Some(code) => code == 429 || code >= 500,
    }
}

/// A short, single-line rendering of an API error for 502 bodies and logs (the server's message can
/// carry object text; it is cut so that a long message cannot flood either).
pub fn describe(e: &kube::Error) -> String {
    let s = match e {
        kube::Error::Api(s) => format!("{} ({}): {}", s.reason, s.code, s.message),
        other => other.to_string(),
    };
    clip(&s)
}

/// Cuts text from the API server (condition messages, error messages) to one line of bounded length.
pub fn clip(s: &str) -> String {
    const MAX: usize = 300;
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() > MAX {
        let mut cut: String = line.chars().take(MAX).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

/// Ids of the objects this proxy manages in `api`'s namespace: the `<label key>` value of every
/// object labelled `playwright-proxy/managed=true` (objects without it are skipped).
pub async fn list_managed(
    api: &Api<DynamicObject>,
    label_key: &str,
) -> Result<Vec<String>, BackendError> {
    let lp = ListParams::default().labels(&format!("{MANAGED_LABEL}=true"));
    let list = api
        .list_metadata(&lp)
        .await
        .map_err(|e| BackendError::kube("listing managed objects", e))?;
    let mut ids: Vec<String> = list
        .items
        .iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .filter_map(|o| o.metadata.labels.as_ref()?.get(label_key).cloned())
        .filter(|v| !v.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Creates the object a backend's `manifest` describes; an existing object (409) is fine. Transient
/// errors come back as `Ok(false)` so that the caller retries on its next poll; a 404 means the API
/// (the CRD) is not served, and `served_as` names it in the error.
pub async fn create_tolerant(
    api: &Api<DynamicObject>,
    manifest: Value,
    kind: &str,
    served_as: &str,
) -> Result<bool, BackendError> {
    let obj: DynamicObject = serde_json::from_value(manifest)
        .map_err(|e| BackendError::Failed(format!("cannot build the {kind} manifest: {e}")))?;
    let name = obj.metadata.name.as_deref().unwrap_or("");
    match api.create(&kube::api::PostParams::default(), &obj).await {
        Ok(_) => {
            tracing::info!(kind, name, "created");
            Ok(true)
        }
        Err(e) if api_code(&e) == Some(409) => {
            debug!(kind, name, "already exists");
            Ok(true)
        }
        Err(e) if transient(&e) => {
            warn!(kind, name, error = %describe(&e), "create failed; retrying");
            Ok(false)
        }
        Err(e) if api_code(&e) == Some(404) => Err(BackendError::kube(
            format!("cannot create {kind} {name}: {served_as} is not served (CRDs installed?)"),
            e,
        )),
        Err(e) => Err(BackendError::kube(
            format!("cannot create {kind} {name}"),
            e,
        )),
    }
}

/// Deletes `name`; a missing object (404) is success.
pub async fn delete_tolerant(
    api: &Api<DynamicObject>,
    kind: &str,
    name: &str,
) -> Result<(), BackendError> {
    match api.delete(name, &kube::api::DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(BackendError::kube(format!("deleting {kind} {name}"), e)),
    }
}

/// A `metav1.Condition` of the given type in `status.conditions`.
pub fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// A string field of a JSON object, or "".
pub fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_one_bounded_line() {
        assert_eq!(clip("a\nb"), "a b");
        let long = "x".repeat(1000);
        assert_eq!(clip(&long).chars().count(), 301);
    }

    #[test]
    fn conditions_by_type() {
        let status = serde_json::json!({"conditions": [
            {"type": "Finished", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "DependenciesReady"}
        ]});
        assert_eq!(text(condition(&status, "Ready").unwrap(), "status"), "True");
        assert!(condition(&status, "Suspended").is_none());
        assert!(condition(&serde_json::json!({}), "Ready").is_none());
    }

    #[test]
    fn transient_errors_are_server_side_or_unanswered() {
        let api = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        assert!(transient(&api(503)));
        assert!(transient(&api(429)));
        assert!(!transient(&api(404)));
        assert!(!transient(&api(422)));
        assert_eq!(api_code(&api(409)), Some(409));
    }
}
