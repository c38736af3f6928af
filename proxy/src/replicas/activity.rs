//! Activity records shared between replicas, kept on the sandbox objects themselves.
//!
//! Each replica writes the time of the last use it saw of a sandbox into an annotation on that
//! sandbox's object (the SandboxClaim, KarsSandbox or isola Sandbox), and the leader reads them all
//! with one metadata LIST. An annotation rather than a coordination.k8s.io Lease per session because:
//! * the record lives and dies with the object, so nothing is left behind when a sandbox goes (this
//!   API server, and some clusters, have no garbage collector to clean up owned Leases), and a
//!   sandbox created by a replica that has since died still carries its last activity;
//! * the leader deletes with a `resourceVersion` precondition on the very object that carries the
//!   record: a replica that records new activity between the leader's read and its delete changes
//!   the version, and the delete fails with 409 instead of removing a sandbox in use. With a separate
//!   Lease there is no such atomic check;
//! * one LIST reads every record, instead of one LIST of sandboxes plus one of Leases.
//!
//! Writes are read-compare-write with the object's `resourceVersion`, so a late write of an older
//! time never moves the record backwards, and their rate is bounded by the caller (one per sandbox per
//! ACTIVITY_INTERVAL at most).

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tracing::debug;

use crate::backend::BackendError;
use crate::backend::cluster::{MANAGED_LABEL, api_code};

/// Annotation holding the last activity (RFC 3339, UTC) any replica saw on the sandbox.
pub const LAST_ACTIVE: &str = "sandcanary.dev/last-active";
/// Annotation naming the replica that wrote [`LAST_ACTIVE`] (for people reading the object).
pub const LAST_ACTIVE_BY: &str = "sandcanary.dev/last-active-by";

/// Where a backend's sandbox objects are, so that replicas can share activity through them.
#[derive(Clone)]
pub struct ActivityStore {
    api: Api<DynamicObject>,
    kind: &'static str,
    label_key: String,
    name_for: fn(&str) -> String,
}

/// One managed sandbox object as the leader sees it.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The newest of the activity annotation and the object's creation.
    pub last_active: Option<Timestamp>,
    pub resource_version: Option<String>,
    pub uid: Option<String>,
    pub deleting: bool,
}

/// What a write of activity did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Updated,
    /// The record already held this time or a newer one.
    AlreadyNewer,
    /// No object (not created yet, or deleted).
    Missing,
}

/// What a conditional delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// The object changed since it was read (new activity, status): not deleted.
    Changed,
    /// Already gone.
    Gone,
}

fn err(e: kube::Error, what: String) -> BackendError {
    BackendError::kube(what, e)
}

impl ActivityStore {
    /// `name_for` maps an id to its object name, as the backend names its objects.
    pub fn new(
        api: Api<DynamicObject>,
        kind: &'static str,
        label_key: &str,
        name_for: fn(&str) -> String,
    ) -> Self {
        Self {
            api,
            kind,
            label_key: label_key.to_string(),
            name_for,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Records that `id` was in use at `at`, unless the record already holds a newer time.
    pub async fn record(&self, id: &str, at: Timestamp, by: &str) -> Result<Written, BackendError> {
        let name = (self.name_for)(id);
        // A conflict means someone else wrote in between: read again and compare again.
        for _ in 0..3 {
            let meta = match self.api.get_metadata_opt(&name).await {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(Written::Missing),
                Err(e) => return Err(err(e, format!("reading {} {name}", self.kind))),
            };
            if meta.metadata.deletion_timestamp.is_some() {
                return Ok(Written::Missing);
            }
            let current = meta
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LAST_ACTIVE))
                .and_then(|v| v.parse::<Timestamp>().ok());
            if current.is_some_and(|c| c >= at) {
                return Ok(Written::AlreadyNewer);
            }
            let patch = json!({"metadata": {
                "resourceVersion": meta.metadata.resource_version,
                "annotations": {
                    LAST_ACTIVE: at.round(k8s_openapi::jiff::Unit::Millisecond).unwrap_or(at).to_string(),
                    LAST_ACTIVE_BY: by,
                },
            }});
            match self
                .api
                .patch_metadata(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(Written::Updated),
                Err(e) if api_code(&e) == Some(409) => {
                    debug!(
                        kind = self.kind,
                        name, "activity write conflicted; reading again"
                    );
                    continue;
                }
                Err(e) if api_code(&e) == Some(404) => return Ok(Written::Missing),
                Err(e) => {
                    return Err(err(
                        e,
                        format!("recording activity on {} {name}", self.kind),
                    ));
                }
            }
        }
        Err(BackendError::Timeout(format!(
            "recording activity on {} {name}: kept conflicting",
            self.kind
        )))
    }

    /// Every managed object with its activity record.
    pub async fn list(&self) -> Result<Vec<Record>, BackendError> {
        let lp = ListParams::default().labels(&format!("{MANAGED_LABEL}=true"));
        let list = self
            .api
            .list_metadata(&lp)
            .await
            .map_err(|e| err(e, format!("listing {} objects", self.kind)))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|o| {
                let m = o.metadata;
                let id = m.labels.as_ref()?.get(&self.label_key)?.clone();
                if id.is_empty() {
                    return None;
                }
                let annotated = m
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(LAST_ACTIVE))
                    .and_then(|v| v.parse::<Timestamp>().ok());
                let created = m.creation_timestamp.as_ref().map(|t| t.0);
                Some(Record {
                    id,
                    name: m.name.unwrap_or_default(),
                    last_active: annotated.max(created),
                    resource_version: m.resource_version,
                    uid: m.uid,
                    deleting: m.deletion_timestamp.is_some(),
                })
            })
            .collect())
    }

    /// Deletes the object `rec` describes only if it has not changed since it was listed.
    pub async fn delete_if_unchanged(&self, rec: &Record) -> Result<Deleted, BackendError> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: rec.resource_version.clone(),
                uid: rec.uid.clone(),
            }),
            ..Default::default()
        };
        match self.api.delete(&rec.name, &dp).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if api_code(&e) == Some(409) => Ok(Deleted::Changed),
            Err(e) if api_code(&e) == Some(404) => Ok(Deleted::Gone),
            Err(e) => Err(err(e, format!("deleting {} {}", self.kind, rec.name))),
        }
    }
}
