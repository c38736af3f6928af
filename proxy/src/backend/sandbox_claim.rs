//! The `sandboxclaim` backend: agent-sandbox's `SandboxClaim` (v1beta1, agent-sandbox v0.5+). OpenShell
//! uses the same CRDs with another template, so it is this backend with another warm pool.
//!
//! Ensure is GET-then-create (409 tolerated), then waits for `Ready=True` with a non-empty
//! `status.sandbox.podIPs`, watching the one claim with a 500 ms poll as a fallback. Unlike the
//! reference, terminal reasons fail at once, transient API errors are retried, and a claim that is
//! being deleted is waited out and created again instead of being used.

use async_trait::async_trait;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::cluster::{self, clip, condition, text};
use super::naming::object_name;
use super::{Authority, Backend, BackendError, Endpoint};

pub const GROUP: &str = "extensions.agents.x-k8s.io";
pub const VERSION: &str = "v1beta1";
pub const KIND: &str = "SandboxClaim";
pub const PLURAL: &str = "sandboxclaims";

/// Domain under which bare label keys are propagated to sandbox pods: agent-sandbox v0.5 only allows
/// domain-qualified keys from an allow-list in `additionalPodMetadata` (`sandbox.users.io` by default).
pub const POD_LABEL_DOMAIN: &str = "sandbox.users.io";

/// `Ready=False` reasons after which the claim will not become ready without someone changing it.
pub const TERMINAL_REASONS: &[&str] = &[
    "TemplateNotFound",
    "WarmPoolNotFound",
    "InvalidMetadata",
    "EnvVarsInjectionRejected",
    "VolumeClaimTemplatesError",
    "ClaimExpired",
];

/// Settings of the backend.
#[derive(Debug, Clone)]
pub struct SandboxClaimSettings {
    pub namespace: String,
    pub warmpool: String,
    pub label_key: String,
    pub sandbox_port: u16,
    pub mcp_port: Option<u16>,
}

pub struct SandboxClaimBackend {
    api: Api<DynamicObject>,
    settings: SandboxClaimSettings,
}

/// The API resource of SandboxClaim v1beta1.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The pod label key under which the id is propagated to the sandbox pod: bare keys are qualified
/// under `sandbox.users.io/`, keys that already have a prefix are used as they are.
pub fn pod_label_key(label_key: &str) -> String {
    if label_key.contains('/') {
        label_key.to_string()
    } else {
        format!("{POD_LABEL_DOMAIN}/{label_key}")
    }
}

/// The claim the proxy creates for `id` (spec §5.1).
pub fn manifest(settings: &SandboxClaimSettings, id: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {
            "name": object_name(id),
            "namespace": settings.namespace,
            "labels": cluster::managed_labels(&settings.label_key, id),
        },
        "spec": {
            "warmPoolRef": { "name": settings.warmpool },
            "additionalPodMetadata": {
                "labels": { pod_label_key(&settings.label_key): id },
            },
        },
    })
}

/// What an observed claim means for a waiting ensure.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimState {
    /// Ready, at this pod IP.
    Ready {
        ip: String,
        instance: String,
    },
    /// Will not become ready: the reason and the controller's message.
    Terminal(String),
    /// Being deleted: wait until it is gone, then create a new one.
    Deleting,
    /// The object with our name belongs to another id (hash collision or someone else's object).
    Foreign(String),
    Pending,
}

/// Judges one observed claim for `id`.
pub fn judge(obj: &DynamicObject, label_key: &str, id: &str) -> ClaimState {
    if obj.metadata.deletion_timestamp.is_some() {
        return ClaimState::Deleting;
    }
    let owner = obj
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label_key))
        .map(String::as_str);
    if owner != Some(id) {
        return ClaimState::Foreign(format!(
            "claim {} is labelled {label_key}={:?}, not {id:?}",
            obj.metadata.name.as_deref().unwrap_or(""),
            owner.unwrap_or("")
        ));
    }
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let Some(ready) = condition(&status, "Ready") else {
        return ClaimState::Pending;
    };
    match text(ready, "status") {
        "True" => {
            let ip = status
                .pointer("/sandbox/podIPs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::trim)
                .find(|s| !s.is_empty());
            match ip {
                Some(ip) => ClaimState::Ready {
                    ip: ip.to_string(),
                    instance: format!(
                        "{}/{}",
                        obj.metadata.uid.as_deref().unwrap_or(""),
                        status
                            .pointer("/sandbox/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                },
                None => ClaimState::Pending,
            }
        }
        "False" if TERMINAL_REASONS.contains(&text(ready, "reason")) => ClaimState::Terminal(clip(
            &format!("{}: {}", text(ready, "reason"), text(ready, "message")),
        )),
        _ => ClaimState::Pending,
    }
}

impl SandboxClaimBackend {
    pub fn new(client: kube::Client, settings: SandboxClaimSettings) -> Self {
        let api = Api::namespaced_with(client, &settings.namespace, &api_resource());
        Self { api, settings }
    }

    fn endpoint(&self, ip: &str, instance: String) -> Endpoint {
        Endpoint {
            ws: Authority::new(ip, self.settings.sandbox_port),
            mcp: self.settings.mcp_port.map(|p| Authority::new(ip, p)),
            host_header: None,
            instance,
        }
    }

    /// Creates the claim; an existing one (409) is fine, transient errors are `Ok(false)`.
    async fn create(&self, id: &str) -> Result<bool, BackendError> {
        let served = format!("the {GROUP}/{VERSION} API (agent-sandbox v0.5+)");
        cluster::create_tolerant(&self.api, manifest(&self.settings, id), KIND, &served).await
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
            return self.create(id).await.err().map(Err);
        };
        match judge(&obj, &self.settings.label_key, id) {
            ClaimState::Ready { ip, instance } => {
                info!(id, ip = %ip, "sandbox claim ready");
                Some(Ok(self.endpoint(&ip, instance)))
            }
            ClaimState::Terminal(why) => {
                warn!(id, reason = %why, "sandbox claim failed");
                // Remove it so that the next request starts over (say, after the pool was fixed)
                // instead of finding the broken claim again.
                if let Err(e) = self.delete_claim(id).await {
                    warn!(id, error = %e, "cannot delete the failed claim");
                }
                Some(Err(BackendError::Failed(format!(
                    "sandbox claim {} failed: {why}",
                    object_name(id)
                ))))
            }
            ClaimState::Foreign(why) => Some(Err(BackendError::Failed(why))),
            ClaimState::Deleting => {
                debug!(id, "sandbox claim is being deleted; waiting for it to go");
                None
            }
            ClaimState::Pending => None,
        }
    }

    async fn delete_claim(&self, id: &str) -> Result<(), BackendError> {
        cluster::delete_tolerant(&self.api, KIND, &object_name(id)).await
    }
}

#[async_trait]
impl Backend for SandboxClaimBackend {
    fn name(&self) -> &'static str {
        "sandboxclaim"
    }

    /// Runs until the claim is ready or fails for good; the session manager's ENSURE_TIMEOUT bounds
    /// it by dropping the future.
    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        let name = object_name(id);
        cluster::wait_on(&self.api, KIND, &name, |obj| self.observe(id, obj)).await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        self.delete_claim(id).await?;
        info!(id, claim = %object_name(id), "deleted sandbox claim");
        Ok(())
    }

    async fn lookup(&self, id: &str) -> Result<Option<Endpoint>, BackendError> {
        let obj = cluster::read(&self.api, KIND, &object_name(id)).await?;
        Ok(match obj.map(|o| judge(&o, &self.settings.label_key, id)) {
            Some(ClaimState::Ready { ip, instance }) => Some(self.endpoint(&ip, instance)),
            _ => None,
        })
    }

    async fn list(&self) -> Result<Vec<String>, BackendError> {
        cluster::list_managed(&self.api, &self.settings.label_key).await
    }

    fn activity_store(&self) -> Option<crate::replicas::ActivityStore> {
        Some(crate::replicas::ActivityStore::new(
            self.api.clone(),
            KIND,
            &self.settings.label_key,
            object_name,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(key: &str) -> SandboxClaimSettings {
        SandboxClaimSettings {
            namespace: "proxy".into(),
            warmpool: "playwright".into(),
            label_key: key.into(),
            sandbox_port: 9222,
            mcp_port: None,
        }
    }

    #[test]
    fn manifest_is_the_reference_one() {
        let m = manifest(&settings("playwright-id"), "alice");
        assert_eq!(
            m,
            json!({
                "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                "kind": "SandboxClaim",
                "metadata": {
                    "name": "pw-alice",
                    "namespace": "proxy",
                    "labels": {"playwright-proxy/managed": "true", "playwright-id": "alice"},
                },
                "spec": {
                    "warmPoolRef": {"name": "playwright"},
                    "additionalPodMetadata": {"labels": {"sandbox.users.io/playwright-id": "alice"}},
                },
            })
        );
        let q = manifest(&settings("example.com/pw"), "Bob_1");
        assert_eq!(q["metadata"]["labels"]["example.com/pw"], "Bob_1");
        assert_eq!(
            q["spec"]["additionalPodMetadata"]["labels"],
            json!({"example.com/pw": "Bob_1"})
        );
        assert_ne!(q["metadata"]["name"], "pw-Bob_1");
    }

    fn claim(status: Value, labels: Value, deleting: bool) -> DynamicObject {
        let mut meta = json!({"name": "pw-alice", "uid": "u1", "labels": labels});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
            "kind": "SandboxClaim",
            "metadata": meta,
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn judging_claims() {
        let ours = json!({"playwright-id": "alice"});
        let ready = |ips: Value| {
            json!({"conditions": [{"type": "Ready", "status": "True", "reason": "DependenciesReady"}],
                   "sandbox": {"name": "sb-1", "podIPs": ips}})
        };
        assert_eq!(
            judge(
                &claim(ready(json!(["", "10.0.0.7"])), ours.clone(), false),
                "playwright-id",
                "alice"
            ),
            ClaimState::Ready {
                ip: "10.0.0.7".into(),
                instance: "u1/sb-1".into()
            }
        );
        assert_eq!(
            judge(
                &claim(ready(json!([])), ours.clone(), false),
                "playwright-id",
                "alice"
            ),
            ClaimState::Pending
        );
        assert_eq!(
            judge(
                &claim(ready(json!(["10.0.0.7"])), ours.clone(), true),
                "playwright-id",
                "alice"
            ),
            ClaimState::Deleting
        );
        assert!(matches!(
            judge(
                &claim(
                    ready(json!(["10.0.0.7"])),
                    json!({"playwright-id": "eve"}),
                    false
                ),
                "playwright-id",
                "alice"
            ),
            ClaimState::Foreign(_)
        ));
        for reason in TERMINAL_REASONS {
            let st = json!({"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": "m"}]});
            assert!(
                matches!(judge(&claim(st, ours.clone(), false), "playwright-id", "alice"), ClaimState::Terminal(ref w) if w.starts_with(reason)),
                "{reason} is terminal"
            );
        }
        let waiting = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "DependenciesNotReady"}]});
        assert_eq!(
            judge(
                &claim(waiting, ours.clone(), false),
                "playwright-id",
                "alice"
            ),
            ClaimState::Pending
        );
        assert_eq!(
            judge(&claim(json!({}), ours, false), "playwright-id", "alice"),
            ClaimState::Pending
        );
    }

    #[test]
    fn pod_label_keys_are_qualified() {
        assert_eq!(
            pod_label_key("playwright-id"),
            "sandbox.users.io/playwright-id"
        );
        assert_eq!(pod_label_key("example.com/pw"), "example.com/pw");
    }
}
