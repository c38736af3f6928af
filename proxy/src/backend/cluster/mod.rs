//! The Kubernetes-object backends (`sandboxclaim`, `karssandbox`, `isola`) as one generic
//! [`ClusterBackend`] over a small [`ClusterKind`] trait, the kube-rs way: the backend is written once
//! (GET-then-create with 409 tolerated, wait on the object by watch with a poll fallback, delete,
//! list, activity records), and each kind says only what differs: its API resource, its manifest,
//! how to read its status and how a ready object becomes an endpoint.
//!
//! [`api`] holds the calls and the error classification they share.

pub mod api;

use async_trait::async_trait;
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;
use tracing::{debug, info, warn};

pub use api::*;

use super::{Backend, BackendError, Endpoint};

/// What one observation of a sandbox object means for a waiting ensure.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged<R> {
    /// Ready; `R` is what the kind needs to build the endpoint.
    Ready(R),
    /// Will not become ready without someone changing it: the reason.
    Terminal(String),
    /// Being deleted: wait until it is gone, then create a new one.
    Deleting,
    /// The object with our name belongs to another id (hash collision or someone else's object).
    Foreign(String),
    Pending,
}

/// A sandbox reached at a pod IP, and the instance it is (changes when the sandbox is recreated).
#[derive(Debug, PartialEq, Eq)]
pub struct PodIp {
    pub ip: String,
    pub instance: String,
}

/// The checks every kind makes first: an object being deleted is waited out, an object labelled
/// for another id is never used. `None`: the object is ours and alive; judge its status.
pub fn ownership<R>(
    obj: &DynamicObject,
    kind: &str,
    label_key: &str,
    id: &str,
) -> Option<Judged<R>> {
    if obj.metadata.deletion_timestamp.is_some() {
        return Some(Judged::Deleting);
    }
    let owner = obj.metadata.labels.as_ref().and_then(|l| l.get(label_key));
    if owner.map(String::as_str) != Some(id) {
        return Some(Judged::Foreign(format!(
            "{kind} {} is labelled {label_key}={:?}, not {id:?}",
            obj.metadata.name.as_deref().unwrap_or(""),
            owner.map(String::as_str).unwrap_or("")
        )));
    }
    None
}

/// What differs between the kinds of sandbox object. Implemented by each kind's settings type, so
/// a backend is `ClusterBackend<ItsSettings>` and needs nothing else.
#[async_trait]
pub trait ClusterKind: Send + Sync + 'static {
    /// The BACKEND value, and [`Backend::name`].
    const BACKEND: &'static str;
    /// The object's kind, in logs and errors.
    const KIND: &'static str;
    /// How a failed sandbox is called in its error ("sandbox claim pw-a failed: ...").
    const NOUN: &'static str;
    /// Whether a sandbox that failed for good is deleted, so that the next request starts over
    /// (say, after the template was fixed) instead of finding the broken object again.
    const DELETE_FAILED: bool;
    /// What a ready object carries to [`ClusterKind::endpoint`].
    type Ready: Send;

    fn api_resource() -> ApiResource;
    /// The API a 404 on create says is not served.
    fn served_as() -> String;
    /// The object name for a sandbox id.
    fn object_name(id: &str) -> String {
        super::naming::object_name(id)
    }
    /// Where the objects live.
    fn namespace(&self) -> &str;
    /// The label that carries the id on every object.
    fn label_key(&self) -> &str;
    /// The object created for `id`.
    fn manifest(&self, id: &str) -> Value;
    /// Reads one observed object of `id` (start with [`ownership`]).
    fn judge(&self, obj: &DynamicObject, id: &str) -> Judged<Self::Ready>;
    /// The endpoint of a ready object; `Ok(None)` while it is not reachable yet (KARS waits for its
    /// pod). `client` reaches whatever else the kind has to read.
    async fn endpoint(
        &self,
        client: &kube::Client,
        id: &str,
        obj: &DynamicObject,
        ready: Self::Ready,
    ) -> Result<Option<Endpoint>, BackendError>;
}

/// A backend whose sandboxes are Kubernetes objects of kind `K`.
pub struct ClusterBackend<K: ClusterKind> {
    client: kube::Client,
    api: Api<DynamicObject>,
    kind: K,
}

impl<K: ClusterKind> ClusterBackend<K> {
    pub fn new(client: kube::Client, kind: K) -> Self {
        let api = Api::namespaced_with(client.clone(), kind.namespace(), &K::api_resource());
        Self { client, api, kind }
    }

    pub fn settings(&self) -> &K {
        &self.kind
    }

    /// Reacts to one observation; `Some` ends the wait.
    async fn observe(
        &self,
        id: &str,
        obj: Option<DynamicObject>,
    ) -> Option<Result<Endpoint, BackendError>> {
        let Some(obj) = obj else {
            // Missing (first look, or deleted under us): create it; a failure that is not worth
            // retrying ends the wait.
            return create_tolerant(&self.api, self.kind.manifest(id), K::KIND, &K::served_as())
                .await
                .err()
                .map(Err);
        };
        match self.kind.judge(&obj, id) {
            Judged::Ready(ready) => match self.kind.endpoint(&self.client, id, &obj, ready).await {
                Ok(Some(ep)) => {
                    info!(id, kind = K::KIND, endpoint = %ep.ws, "sandbox ready");
                    Some(Ok(ep))
                }
                Ok(None) => {
                    debug!(id, kind = K::KIND, "ready; waiting until it can be reached");
                    None
                }
                Err(e) => Some(Err(e)),
            },
            Judged::Terminal(why) => {
                warn!(id, kind = K::KIND, reason = %why, "sandbox failed");
                if K::DELETE_FAILED
                    && let Err(e) = delete_tolerant(&self.api, K::KIND, &K::object_name(id)).await
                {
                    warn!(id, kind = K::KIND, error = %e, "cannot delete the failed sandbox");
                }
                Some(Err(BackendError::Failed(format!(
                    "{} {} failed: {why}",
                    K::NOUN,
                    K::object_name(id)
                ))))
            }
            Judged::Foreign(why) => Some(Err(BackendError::Failed(why))),
            Judged::Deleting => {
                debug!(id, kind = K::KIND, "being deleted; waiting for it to go");
                None
            }
            Judged::Pending => None,
        }
    }
}

#[async_trait]
impl<K: ClusterKind> Backend for ClusterBackend<K> {
    fn name(&self) -> &'static str {
        K::BACKEND
    }

    /// Runs until the object is ready or fails for good; the session manager's ENSURE_TIMEOUT bounds
    /// it by dropping the future.
    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        let name = K::object_name(id);
        wait_on(&self.api, K::KIND, &name, |obj| self.observe(id, obj)).await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        let name = K::object_name(id);
        delete_tolerant(&self.api, K::KIND, &name).await?;
        info!(id, kind = K::KIND, object = %name, "deleted");
        Ok(())
    }

    /// One read of the object: its endpoint if it is ready and reachable, else `None`. Never creates.
    async fn lookup(&self, id: &str) -> Result<Option<Endpoint>, BackendError> {
        let Some(obj) = read(&self.api, K::KIND, &K::object_name(id)).await? else {
            return Ok(None);
        };
        match self.kind.judge(&obj, id) {
            Judged::Ready(ready) => self.kind.endpoint(&self.client, id, &obj, ready).await,
            _ => Ok(None),
        }
    }

    async fn list(&self) -> Result<Vec<String>, BackendError> {
        list_managed(&self.api, self.kind.label_key()).await
    }

    fn activity_store(&self) -> Option<crate::replicas::ActivityStore> {
        Some(crate::replicas::ActivityStore::new(
            self.api.clone(),
            K::KIND,
            self.kind.label_key(),
            K::object_name,
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(labels: Value, deleting: bool) -> DynamicObject {
        let mut meta = json!({"name": "pw-alice", "labels": labels});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "X", "metadata": meta})).unwrap()
    }

    #[test]
    fn deleting_and_foreign_objects_are_never_used() {
        let ours = json!({"playwright-id": "alice"});
        assert_eq!(
            ownership::<()>(&obj(ours.clone(), false), "X", "playwright-id", "alice"),
            None
        );
        assert_eq!(
            ownership::<()>(&obj(ours, true), "X", "playwright-id", "alice"),
            Some(Judged::Deleting)
        );
        assert_eq!(
            ownership::<()>(
                &obj(json!({"playwright-id": "eve"}), false),
                "X",
                "playwright-id",
                "alice"
            ),
            Some(Judged::Foreign(
                "X pw-alice is labelled playwright-id=\"eve\", not \"alice\"".into()
            ))
        );
        assert!(matches!(
            ownership::<()>(&obj(json!({}), false), "X", "playwright-id", "alice"),
            Some(Judged::Foreign(_))
        ));
    }
}
