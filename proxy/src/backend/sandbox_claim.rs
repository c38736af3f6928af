//! The `sandboxclaim` backend: agent-sandbox's `SandboxClaim` (v1beta1, agent-sandbox v0.5+). OpenShell
//! uses the same CRDs with another template, so it is this backend with another warm pool.
//!
//! Ensure is GET-then-create (409 tolerated), then waits for `Ready=True` with a non-empty
//! `status.sandbox.podIPs`, watching the one claim with a 500 ms poll as a fallback. Unlike the
//! reference, terminal reasons fail at once, transient API errors are retried, and a claim that is
//! being deleted is waited out and created again instead of being used.

use async_trait::async_trait;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::cluster::{
    self, ClusterBackend, ClusterKind, Judged, PodIp, clip, condition, ownership, text,
};
use super::naming::object_name;
use super::{Authority, BackendError, Endpoint};

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

/// The backend: the generic cluster backend over SandboxClaims.
pub type SandboxClaimBackend = ClusterBackend<SandboxClaimSettings>;

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

/// Judges one observed claim for `id`: ready once `Ready=True` and the sandbox has a pod IP.
pub fn judge(obj: &DynamicObject, label_key: &str, id: &str) -> Judged<PodIp> {
    if let Some(j) = ownership(obj, KIND, label_key, id) {
        return j;
    }
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let Some(ready) = condition(&status, "Ready") else {
        return Judged::Pending;
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
                Some(ip) => Judged::Ready(PodIp {
                    ip: ip.to_string(),
                    instance: format!(
                        "{}/{}",
                        obj.metadata.uid.as_deref().unwrap_or(""),
                        status
                            .pointer("/sandbox/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                }),
                None => Judged::Pending,
            }
        }
        "False" if TERMINAL_REASONS.contains(&text(ready, "reason")) => Judged::Terminal(clip(
            &format!("{}: {}", text(ready, "reason"), text(ready, "message")),
        )),
        _ => Judged::Pending,
    }
}

#[async_trait]
impl ClusterKind for SandboxClaimSettings {
    const BACKEND: &'static str = "sandboxclaim";
    const KIND: &'static str = KIND;
    const NOUN: &'static str = "sandbox claim";
    const DELETE_FAILED: bool = true;
    type Ready = PodIp;

    fn api_resource() -> ApiResource {
        api_resource()
    }
    fn served_as() -> String {
        format!("the {GROUP}/{VERSION} API (agent-sandbox v0.5+)")
    }
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn label_key(&self) -> &str {
        &self.label_key
    }
    fn manifest(&self, id: &str) -> Value {
        manifest(self, id)
    }
    fn judge(&self, obj: &DynamicObject, id: &str) -> Judged<PodIp> {
        judge(obj, &self.label_key, id)
    }
    async fn endpoint(
        &self,
        _client: &kube::Client,
        _id: &str,
        _obj: &DynamicObject,
        ready: PodIp,
    ) -> Result<Option<Endpoint>, BackendError> {
        Ok(Some(Endpoint {
            ws: Authority::new(&ready.ip, self.sandbox_port),
            mcp: self.mcp_port.map(|p| Authority::new(&ready.ip, p)),
            host_header: None,
            instance: ready.instance,
        }))
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
            Judged::Ready(PodIp {
                ip: "10.0.0.7".into(),
                instance: "u1/sb-1".into()
            })
        );
        assert_eq!(
            judge(
                &claim(ready(json!([])), ours.clone(), false),
                "playwright-id",
                "alice"
            ),
            Judged::Pending
        );
        assert_eq!(
            judge(
                &claim(ready(json!(["10.0.0.7"])), ours.clone(), true),
                "playwright-id",
                "alice"
            ),
            Judged::Deleting
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
            Judged::Foreign(_)
        ));
        for reason in TERMINAL_REASONS {
            let st = json!({"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": "m"}]});
            assert!(
                matches!(judge(&claim(st, ours.clone(), false), "playwright-id", "alice"), Judged::Terminal(ref w) if w.starts_with(reason)),
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
            Judged::Pending
        );
        assert_eq!(
            judge(&claim(json!({}), ours, false), "playwright-id", "alice"),
            Judged::Pending
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
