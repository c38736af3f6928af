//! What the Kubernetes backends share: the labels on objects the proxy manages, the error
//! classification (what to retry, what fails at once), and the `list` of managed ids.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::BackendError;

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
    let list = api.list_metadata(&lp).await.map_err(|e| {
        if transient(&e) {
            BackendError::Timeout(format!("listing managed objects: {}", describe(&e)))
        } else {
            BackendError::Failed(format!("listing managed objects: {}", describe(&e)))
        }
    })?;
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
