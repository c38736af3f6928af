//! The `karssandbox` backend: Azure KARS `KarsSandbox` (`kars.azure.com/v1alpha1`). The controller
//! puts each sandbox in its own namespace (`status.namespace`) behind NetworkPolicies that block
//! direct pod access, so the endpoint is the sandbox Service's DNS name, used once the CR is
//! `Running` and a pod labelled `kars.azure.com/component=sandbox` there runs with an IP.
//! Unproven upstream (the reference notes KARS Services expose only 8443); kept to the spec.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Value, json};
use tracing::warn;

use super::cluster::{self, ClusterBackend, ClusterKind, Judged, describe, ownership, text};
use super::naming::object_name;
use super::{Authority, BackendError, Endpoint};

pub const GROUP: &str = "kars.azure.com";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "KarsSandbox";
pub const PLURAL: &str = "karssandboxes";
/// Label on the sandbox pods in the per-sandbox namespace.
pub const POD_SELECTOR: &str = "kars.azure.com/component=sandbox";

const CHROMIUM_ARGS: &str =
    "--no-sandbox,--disable-setuid-sandbox,--disable-dev-shm-usage,--disable-gpu";

#[derive(Debug, Clone)]
pub struct KarsSettings {
    pub namespace: String,
    pub image: String,
    pub inference_ref: String,
    pub label_key: String,
    pub sandbox_port: u16,
}

pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The KarsSandbox the proxy creates for `id` (spec §5.3).
pub fn manifest(s: &KarsSettings, id: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {
            "name": object_name(id),
            "namespace": s.namespace,
            "labels": cluster::managed_labels(&s.label_key, id),
        },
        "spec": {
            "runtime": {
                "kind": "BYO",
                "byo": {
                    "image": s.image,
                    "command": ["node", "/server.js"],
                    "contractVersion": "v1",
                    "env": [
                        {"name": "PORT", "value": s.sandbox_port.to_string()},
                        {"name": "NODE_PATH", "value": "/usr/local/lib/node_modules"},
                        {"name": "PLAYWRIGHT_BROWSERS_PATH", "value": "/ms-playwright"},
                        {"name": "CHROMIUM_ARGS", "value": CHROMIUM_ARGS},
                    ],
                },
            },
            "sandbox": {"isolation": "standard", "runAsNonRoot": true, "allowPrivilegeEscalation": false},
            "inferenceRef": {"name": s.inference_ref},
            "networkPolicy": {"defaultDeny": false, "egressMode": "Learn"},
        },
    })
}

/// Judges one observed KarsSandbox for `id`: `Ready` carries the per-sandbox namespace, where the
/// pod still has to be found.
pub fn judge(obj: &DynamicObject, label_key: &str, id: &str) -> Judged<String> {
    if let Some(j) = ownership(obj, KIND, label_key, id) {
        return j;
    }
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    match text(&status, "phase") {
        "Failed" | "Degraded" => Judged::Terminal(format!("phase {}", text(&status, "phase"))),
        "Running" if !text(&status, "namespace").is_empty() => {
            Judged::Ready(text(&status, "namespace").to_string())
        }
        _ => Judged::Pending,
    }
}

/// Whether a sandbox pod in `ns` runs with an IP (readiness is not checked, as in the reference).
async fn pod_running(client: &kube::Client, ns: &str) -> Result<bool, BackendError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods.list(&ListParams::default().labels(POD_SELECTOR)).await {
        Ok(list) => Ok(list.items.iter().any(|p| {
            p.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Running")
                    && s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            })
        })),
        Err(e) if cluster::transient(&e) => {
            warn!(namespace = ns, error = %describe(&e), "listing sandbox pods failed; retrying");
            Ok(false)
        }
        Err(e) => Err(BackendError::kube(
            format!("cannot list sandbox pods in {ns}"),
            e,
        )),
    }
}

/// The backend: the generic cluster backend over KarsSandboxes.
pub type KarsBackend = ClusterBackend<KarsSettings>;

#[async_trait]
impl ClusterKind for KarsSettings {
    const BACKEND: &'static str = "karssandbox";
    const KIND: &'static str = KIND;
    const NOUN: &'static str = "KARS sandbox";
    const DELETE_FAILED: bool = false;
    type Ready = String;

    fn api_resource() -> ApiResource {
        api_resource()
    }
    fn served_as() -> String {
        format!("{GROUP}/{VERSION}")
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
    fn judge(&self, obj: &DynamicObject, id: &str) -> Judged<String> {
        judge(obj, &self.label_key, id)
    }
    /// The sandbox Service's DNS name, once a sandbox pod runs in the sandbox's namespace.
    async fn endpoint(
        &self,
        client: &kube::Client,
        id: &str,
        obj: &DynamicObject,
        ns: String,
    ) -> Result<Option<Endpoint>, BackendError> {
        if !pod_running(client, &ns).await? {
            return Ok(None);
        }
        let host = format!("{}.{ns}.svc.cluster.local", object_name(id));
        Ok(Some(Endpoint {
            ws: Authority::new(host, self.sandbox_port),
            mcp: None,
            host_header: None,
            instance: obj.metadata.uid.clone().unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> KarsSettings {
        KarsSettings {
            namespace: "playwright".into(),
            image: "img:1".into(),
            inference_ref: "gpt".into(),
            label_key: "playwright-id".into(),
            sandbox_port: 9222,
        }
    }

    #[test]
    fn manifest_follows_the_spec() {
        let m = manifest(&settings(), "abc");
        assert_eq!(m["apiVersion"], "kars.azure.com/v1alpha1");
        assert_eq!(m["metadata"]["name"], "pw-abc");
        assert_eq!(m["spec"]["runtime"]["kind"], "BYO");
        assert_eq!(m["spec"]["runtime"]["byo"]["contractVersion"], "v1");
        assert_eq!(
            m["spec"]["runtime"]["byo"]["env"][0],
            json!({"name": "PORT", "value": "9222"})
        );
        assert_eq!(m["spec"]["inferenceRef"], json!({"name": "gpt"}));
        assert_eq!(
            m["spec"]["networkPolicy"],
            json!({"defaultDeny": false, "egressMode": "Learn"})
        );
    }

    #[test]
    fn phases() {
        let obj = |status: Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "kars.azure.com/v1alpha1", "kind": "KarsSandbox",
                "metadata": {"name": "pw-abc", "labels": {"playwright-id": "abc"}},
                "status": status,
            }))
            .unwrap()
        };
        let j = |s| judge(&obj(s), "playwright-id", "abc");
        assert_eq!(
            j(json!({"phase": "Running", "namespace": "kars-pw-abc"})),
            Judged::Ready("kars-pw-abc".into())
        );
        assert_eq!(j(json!({"phase": "Running"})), Judged::Pending);
        assert_eq!(j(json!({"phase": "Creating"})), Judged::Pending);
        assert!(matches!(j(json!({"phase": "Failed"})), Judged::Terminal(_)));
        assert!(matches!(
            j(json!({"phase": "Degraded"})),
            Judged::Terminal(_)
        ));
    }
}
