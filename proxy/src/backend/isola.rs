//! The `isola` backend: isola's `Sandbox` (`sandbox.isola.run/v1alpha1`) in ISOLA_NAMESPACE (not the
//! proxy's). Same pattern as `sandboxclaim`: GET-then-create (409 tolerated), then wait for
//! `Ready=True` with a `status.podIP`, by watch with a poll fallback; terminal reasons fail at once.

use async_trait::async_trait;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::cluster::{
    self, ClusterBackend, ClusterKind, Judged, PodIp, clip, condition, ownership, text,
};
use super::naming::valid_object_name;
use super::{Authority, BackendError, Endpoint};

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

/// Judges one observed Sandbox for `id`: ready once `Ready=True` with a `status.podIP`.
pub fn judge(obj: &DynamicObject, label_key: &str, id: &str) -> Judged<PodIp> {
    if let Some(j) = ownership(obj, KIND, label_key, id) {
        return j;
    }
    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
    let Some(ready) = condition(&status, "Ready") else {
        return Judged::Pending;
    };
    let reason = text(ready, "reason");
    if TERMINAL_REASONS.contains(&reason) {
        return Judged::Terminal(clip(&format!("{reason}: {}", text(ready, "message"))));
    }
    if text(ready, "status") != "True" {
        return Judged::Pending;
    }
    match text(&status, "podIP").trim() {
        "" => Judged::Pending,
        ip => Judged::Ready(PodIp {
            ip: ip.to_string(),
            instance: obj.metadata.uid.clone().unwrap_or_default(),
        }),
    }
}

/// The backend: the generic cluster backend over isola Sandboxes.
pub type IsolaBackend = ClusterBackend<IsolaSettings>;

#[async_trait]
impl ClusterKind for IsolaSettings {
    const BACKEND: &'static str = "isola";
    const KIND: &'static str = KIND;
    const NOUN: &'static str = "isola sandbox";
    const DELETE_FAILED: bool = true;
    type Ready = PodIp;

    fn api_resource() -> ApiResource {
        api_resource()
    }
    fn served_as() -> String {
        format!("{GROUP}/{VERSION}")
    }
    fn object_name(id: &str) -> String {
        object_name(id)
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
            ws: Authority::new(ready.ip, self.sandbox_port),
            mcp: None,
            host_header: None,
            instance: ready.instance,
        }))
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
            Judged::Ready(PodIp {
                ip: "10.1.2.3".into(),
                instance: "u".into()
            })
        );
        assert_eq!(
            judge(&obj(ready("")), "playwright-id", "abc"),
            Judged::Pending
        );
        for r in TERMINAL_REASONS {
            let st = json!({"conditions": [{"type": "Ready", "status": "False", "reason": r}]});
            assert!(matches!(
                judge(&obj(st), "playwright-id", "abc"),
                Judged::Terminal(_)
            ));
        }
        let pending =
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "PodPending"}]});
        assert_eq!(
            judge(&obj(pending), "playwright-id", "abc"),
            Judged::Pending
        );
    }
}
