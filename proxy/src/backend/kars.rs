//! The `karssandbox` backend: Azure KARS `KarsSandbox` (`kars.azure.com/v1alpha1`). The controller
//! puts each sandbox in its own namespace (`status.namespace`) behind NetworkPolicies that block
//! direct pod access, so the endpoint is the sandbox Service's DNS name, used once the CR is
//! `Running` and a pod labelled `kars.azure.com/component=sandbox` there runs with an IP.
//! Unproven upstream (the reference notes KARS Services expose only 8443); kept to the spec.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::cluster::{self, describe, text};
use super::naming::object_name;
use super::{Authority, Backend, BackendError, Endpoint};

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

#[derive(Debug, PartialEq, Eq)]
pub enum KarsState {
    /// Running in this namespace; the pod still has to be found.
    Running(String),
    Terminal(String),
    Deleting,
    Foreign(String),
    Pending,
}

pub fn judge(obj: &DynamicObject, label_key: &str, id: &str) -> KarsState {
    if obj.metadata.deletion_timestamp.is_some() {
        return KarsState::Deleting;
    }
    let owner = obj.metadata.labels.as_ref().and_then(|l| l.get(label_key));
    if owner.map(String::as_str) != Some(id) {
        return KarsState::Foreign(format!(
            "KarsSandbox {} is labelled {label_key}={:?}, not {id:?}",
            obj.metadata.name.as_deref().unwrap_or(""),
            owner.map(String::as_str).unwrap_or("")
        ));
    }
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    match text(&status, "phase") {
        "Failed" | "Degraded" => KarsState::Terminal(format!("phase {}", text(&status, "phase"))),
        "Running" if !text(&status, "namespace").is_empty() => {
            KarsState::Running(text(&status, "namespace").to_string())
        }
        _ => KarsState::Pending,
    }
}

pub struct KarsBackend {
    client: kube::Client,
    api: Api<DynamicObject>,
    settings: KarsSettings,
}

impl KarsBackend {
    pub fn new(client: kube::Client, settings: KarsSettings) -> Self {
        let api = Api::namespaced_with(client.clone(), &settings.namespace, &api_resource());
        Self {
            client,
            api,
            settings,
        }
    }

    /// Whether a sandbox pod in `ns` runs with an IP (readiness is not checked, as in the reference).
    async fn pod_running(&self, ns: &str) -> Result<bool, BackendError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
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
            Err(e) => Err(BackendError::Failed(format!(
                "cannot list sandbox pods in {ns}: {}",
                describe(&e)
            ))),
        }
    }

    fn endpoint(&self, id: &str, ns: &str, obj: &DynamicObject) -> Endpoint {
        Endpoint {
            ws: Authority::new(
                format!("{}.{ns}.svc.cluster.local", object_name(id)),
                self.settings.sandbox_port,
            ),
            mcp: None,
            host_header: None,
            instance: obj.metadata.uid.clone().unwrap_or_default(),
        }
    }

    async fn observe(
        &self,
        id: &str,
        obj: Option<DynamicObject>,
    ) -> Option<Result<Endpoint, BackendError>> {
        let Some(obj) = obj else {
            let served = format!("{GROUP}/{VERSION}");
            return cluster::create_tolerant(
                &self.api,
                manifest(&self.settings, id),
                KIND,
                &served,
            )
            .await
            .err()
            .map(Err);
        };
        match judge(&obj, &self.settings.label_key, id) {
            KarsState::Running(ns) => match self.pod_running(&ns).await {
                Ok(true) => {
                    let ep = self.endpoint(id, &ns, &obj);
                    info!(id, host = %ep.ws.host, "KARS sandbox ready");
                    Some(Ok(ep))
                }
                Ok(false) => {
                    debug!(id, namespace = %ns, "KARS sandbox running; waiting for its pod");
                    None
                }
                Err(e) => Some(Err(e)),
            },
            KarsState::Terminal(why) => Some(Err(BackendError::Failed(format!(
                "KARS sandbox {} failed: {why}",
                object_name(id)
            )))),
            KarsState::Foreign(why) => Some(Err(BackendError::Failed(why))),
            KarsState::Deleting | KarsState::Pending => None,
        }
    }
}

#[async_trait]
impl Backend for KarsBackend {
    fn name(&self) -> &'static str {
        "karssandbox"
    }

    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        let name = object_name(id);
        cluster::wait_on(&self.api, KIND, &name, |obj| self.observe(id, obj)).await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        cluster::delete_tolerant(&self.api, KIND, &object_name(id)).await
    }

    async fn lookup(&self, id: &str) -> Result<Option<Endpoint>, BackendError> {
        let Some(obj) = cluster::read(&self.api, KIND, &object_name(id)).await? else {
            return Ok(None);
        };
        match judge(&obj, &self.settings.label_key, id) {
            KarsState::Running(ns) if self.pod_running(&ns).await? => {
                Ok(Some(self.endpoint(id, &ns, &obj)))
            }
            _ => Ok(None),
        }
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
            KarsState::Running("kars-pw-abc".into())
        );
        assert_eq!(j(json!({"phase": "Running"})), KarsState::Pending);
        assert_eq!(j(json!({"phase": "Creating"})), KarsState::Pending);
        assert!(matches!(
            j(json!({"phase": "Failed"})),
            KarsState::Terminal(_)
        ));
        assert!(matches!(
            j(json!({"phase": "Degraded"})),
            KarsState::Terminal(_)
        ));
    }
}
