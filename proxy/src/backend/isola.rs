//! The `isola` backend: isola's `Sandbox` (`sandbox.isola.run/v1alpha1`) in ISOLA_NAMESPACE (not the
//! proxy's). Same pattern as `sandboxclaim`: GET-then-create (409 tolerated), then wait for
//! `Ready=True` with a `status.podIP`, by watch with a poll fallback; terminal reasons fail at once.

use async_trait::async_trait;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::cluster::{self, clip, condition, text};
use super::naming::valid_object_name;
use super::{Authority, Backend, BackendError, Endpoint};

pub const GROUP: &str = "sandbox.isola.run";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "Sandbox";
pub const PLURAL: &str = "sandboxes";

/// isola's CEL rule caps sandbox names at 47 characters.
pub const MAX_NAME: usize = 47;

/// `Ready=False` reasons after which the sandbox will not become ready.
pub const TERMINAL_REASONS: &[&str] = &[
    "PodFailed",
    "PodSucceeded",
    "PodCreationFailed",
    "StartupTimeoutExceeded",
    "InvalidRuntime",
];

/// Chromium flags the sandbox image needs under gVisor without a setuid sandbox.
const CHROMIUM_ARGS: &str =
    "--no-sandbox,--disable-setuid-sandbox,--disable-dev-shm-usage,--disable-gpu";

#[derive(Debug, Clone)]
pub struct IsolaSettings {
    pub namespace: String,
    pub image: String,
    pub allowed_egress_cidrs: Vec<String>,
    pub label_key: String,
    pub sandbox_port: u16,
}

pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// isola's name rule (the reference's): `pw-<id>` when it fits in 47 characters and the id is only
/// `[a-z0-9.-]`, otherwise `pw-` and the first 44 hex digits of the id's SHA-256. A `pw-<id>` that is
/// still not a valid object name (say `a..b`) is hashed too.
pub fn object_name(id: &str) -> String {
    let plain = format!("pw-{id}");
    let simple = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if simple && plain.len() <= MAX_NAME && valid_object_name(&plain) {
        return plain;
    }
    let hex: String = Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("pw-{}", &hex[..MAX_NAME - 3])
}

/// The Sandbox the proxy creates for `id` (spec §5.4).
pub fn manifest(s: &IsolaSettings, id: &str) -> Value {
    let port = s.sandbox_port.to_string();
    let mut network = json!({"allowInternetEgress": true, "allowClusterDNS": true});
    if !s.allowed_egress_cidrs.is_empty() {
        network["allowedEgressCIDRs"] = json!(s.allowed_egress_cidrs);
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {
            "name": object_name(id),
            "namespace": s.namespace,
            "labels": cluster::managed_labels(&s.label_key, id),
        },
        "spec": {
            "podTemplate": {"spec": {"containers": [{
                "name": "playwright",
                // Required: the operator replaces an empty command with `sleep infinity`.
                "command": ["node", "/server.js"],
                "image": s.image,
                "ports": [{"containerPort": s.sandbox_port}],
                "env": [
                    {"name": "PORT", "value": port},
                    {"name": "PLAYWRIGHT_BROWSERS_PATH", "value": "/ms-playwright"},
                    {"name": "CHROMIUM_ARGS", "value": CHROMIUM_ARGS},
                ],
            }]}},
            "network": network,
        },
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum IsolaState {
    Ready { ip: String, instance: String },
    Terminal(String),
    Deleting,
    Foreign(String),
    Pending,
}

pub fn judge(obj: &DynamicObject, label_key: &str, id: &str) -> IsolaState {
    if obj.metadata.deletion_timestamp.is_some() {
        return IsolaState::Deleting;
    }
    let owner = obj.metadata.labels.as_ref().and_then(|l| l.get(label_key));
    if owner.map(String::as_str) != Some(id) {
        return IsolaState::Foreign(format!(
            "sandbox {} is labelled {label_key}={:?}, not {id:?}",
            obj.metadata.name.as_deref().unwrap_or(""),
            owner.map(String::as_str).unwrap_or("")
        ));
    }
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let Some(ready) = condition(&status, "Ready") else {
        return IsolaState::Pending;
    };
    let reason = text(ready, "reason");
    if TERMINAL_REASONS.contains(&reason) {
        return IsolaState::Terminal(clip(&format!("{reason}: {}", text(ready, "message"))));
    }
    if text(ready, "status") != "True" {
        return IsolaState::Pending;
    }
    match text(&status, "podIP").trim() {
        "" => IsolaState::Pending,
        ip => IsolaState::Ready {
            ip: ip.to_string(),
            instance: obj.metadata.uid.clone().unwrap_or_default(),
        },
    }
}

pub struct IsolaBackend {
    api: Api<DynamicObject>,
    settings: IsolaSettings,
}

impl IsolaBackend {
    pub fn new(client: kube::Client, settings: IsolaSettings) -> Self {
        let api = Api::namespaced_with(client, &settings.namespace, &api_resource());
        Self { api, settings }
    }

    fn endpoint(&self, ip: String, instance: String) -> Endpoint {
        Endpoint {
            ws: Authority::new(ip, self.settings.sandbox_port),
            mcp: None,
            host_header: None,
            instance,
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
            IsolaState::Ready { ip, instance } => {
                info!(id, ip = %ip, "isola sandbox ready");
                Some(Ok(self.endpoint(ip, instance)))
            }
            IsolaState::Terminal(why) => {
                warn!(id, reason = %why, "isola sandbox failed");
                if let Err(e) = cluster::delete_tolerant(&self.api, KIND, &object_name(id)).await {
                    warn!(id, error = %e, "cannot delete the failed sandbox");
                }
                Some(Err(BackendError::Failed(format!(
                    "isola sandbox {} failed: {why}",
                    object_name(id)
                ))))
            }
            IsolaState::Foreign(why) => Some(Err(BackendError::Failed(why))),
            IsolaState::Deleting | IsolaState::Pending => None,
        }
    }
}

#[async_trait]
impl Backend for IsolaBackend {
    fn name(&self) -> &'static str {
        "isola"
    }

    async fn ensure(&self, id: &str) -> Result<Endpoint, BackendError> {
        let name = object_name(id);
        cluster::wait_on(&self.api, KIND, &name, |obj| self.observe(id, obj)).await
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        cluster::delete_tolerant(&self.api, KIND, &object_name(id)).await
    }

    async fn lookup(&self, id: &str) -> Result<Option<Endpoint>, BackendError> {
        let obj = cluster::read(&self.api, KIND, &object_name(id)).await?;
        Ok(match obj.map(|o| judge(&o, &self.settings.label_key, id)) {
            Some(IsolaState::Ready { ip, instance }) => Some(self.endpoint(ip, instance)),
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

    fn settings(cidrs: &[&str]) -> IsolaSettings {
        IsolaSettings {
            namespace: "isola-sandboxes".into(),
            image: "registry.example/sandbox:1".into(),
            allowed_egress_cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
            label_key: "playwright-id".into(),
            sandbox_port: 9222,
        }
    }

    #[test]
    fn names_follow_the_isola_rule() {
        assert_eq!(object_name("abc"), "pw-abc");
        assert_eq!(object_name("a.b-c"), "pw-a.b-c");
        for id in ["Alice", "a_b", &"a".repeat(45), "a..b"] {
            let n = object_name(id);
            assert_eq!(n.len(), MAX_NAME, "{id}");
            assert!(valid_object_name(&n));
            assert_eq!(n, object_name(id));
        }
        assert_eq!(object_name(&"a".repeat(44)).len(), MAX_NAME);
        assert_eq!(
            object_name(&"a".repeat(44)),
            format!("pw-{}", "a".repeat(44))
        );
        assert_ne!(object_name("Alice"), object_name("alice"));
    }

    #[test]
    fn manifest_has_the_command_and_cidrs_only_when_configured() {
        let m = manifest(&settings(&[]), "abc");
        assert_eq!(m["apiVersion"], "sandbox.isola.run/v1alpha1");
        assert_eq!(m["metadata"]["namespace"], "isola-sandboxes");
        let c = &m["spec"]["podTemplate"]["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["node", "/server.js"]));
        assert_eq!(c["ports"], json!([{"containerPort": 9222}]));
        assert_eq!(c["env"][0], json!({"name": "PORT", "value": "9222"}));
        assert_eq!(
            m["spec"]["network"],
            json!({"allowInternetEgress": true, "allowClusterDNS": true})
        );
        let m = manifest(&settings(&["10.244.0.0/16"]), "abc");
        assert_eq!(
            m["spec"]["network"]["allowedEgressCIDRs"],
            json!(["10.244.0.0/16"])
        );
    }

    #[test]
    fn judging_sandboxes() {
        let obj = |status: Value| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "sandbox.isola.run/v1alpha1", "kind": "Sandbox",
                "metadata": {"name": "pw-abc", "uid": "u", "labels": {"playwright-id": "abc"}},
                "status": status,
            }))
            .unwrap()
        };
        let ready = |ip: &str| json!({"conditions": [{"type": "Ready", "status": "True", "reason": "PodRunning"}], "podIP": ip});
        assert_eq!(
            judge(&obj(ready("10.1.2.3")), "playwright-id", "abc"),
            IsolaState::Ready {
                ip: "10.1.2.3".into(),
                instance: "u".into()
            }
        );
        assert_eq!(
            judge(&obj(ready("")), "playwright-id", "abc"),
            IsolaState::Pending
        );
        for r in TERMINAL_REASONS {
            let st = json!({"conditions": [{"type": "Ready", "status": "False", "reason": r}]});
            assert!(matches!(
                judge(&obj(st), "playwright-id", "abc"),
                IsolaState::Terminal(_)
            ));
        }
        let pending =
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "PodPending"}]});
        assert_eq!(
            judge(&obj(pending), "playwright-id", "abc"),
            IsolaState::Pending
        );
    }
}
