//! Tenant-level secret references (`secretKeyRef`, `arg`) resolved for one measurement, always in
//! the AnalysisRun's own namespace: a `secretKeyRef` has no namespace field, and the namespace
//! read is the one Argo sent with the AnalysisRun, never one from the template.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use sandcanary_canary::CanaryConfig;
use sandcanary_judge::JudgeConfig;
use sandcanary_judge::llm::ProviderConfig;
use sandcanary_secret::{SecretRef, SecretString, Source};

use crate::kube_client::{self, api_error};

/// Deadline of one Secret read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one key of a Secret. The seam lets protocol tests run without an API server.
pub trait SecretReader: Send + Sync {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, String>>;
}

/// [`SecretReader`] through the Kubernetes API with the plugin's client.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeSecretReader;

impl SecretReader for KubeSecretReader {
    fn read<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, String>> {
        Box::pin(async move {
            let client = kube_client::client(READ_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let secrets: Api<Secret> = Api::namespaced(client, namespace);
            let secret = tokio::time::timeout(READ_TIMEOUT, secrets.get(name))
                .await
                .map_err(|_| format!("reading Secret {name} in namespace {namespace} timed out"))?
                .map_err(|e| match &e {
                    kube::Error::Api(s) if s.code == 404 => {
                        format!("Secret {name} does not exist in namespace {namespace}")
                    }
                    kube::Error::Api(s) if s.code == 403 => format!(
                        "the controller may not read Secrets in namespace {namespace} \
                         (RBAC: deploy/argo-rollouts/secrets-rbac.yaml): {}",
                        api_error(&e)
                    ),
                    _ => format!(
                        "reading Secret {name} in namespace {namespace}: {}",
                        api_error(&e)
                    ),
                })?;
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .ok_or_else(|| format!("Secret {name} has no key {key}"))?;
            let text = String::from_utf8(bytes.0.clone())
                .map_err(|_| format!("key {key} of Secret {name} is not UTF-8 text"))?;
            sandcanary_secret::trimmed(text, || format!("key {key} of Secret {name}"))
                .map_err(|e| e.to_string())
        })
    }
}

/// What a measurement's tenant-level references may draw on.
pub struct TenantScope<'a> {
    /// The AnalysisRun's namespace (from Argo, not from the template).
    pub namespace: &'a str,
    /// Arguments Argo resolved from `valueFrom.secretKeyRef`.
    pub secret_args: &'a BTreeMap<String, SecretString>,
    /// Names of the plain arguments, to say why one of them is not accepted.
    pub plain_args: Vec<&'a str>,
}

/// Every secret reference of `config`, by its JSON path.
pub fn secret_refs(config: &CanaryConfig) -> Vec<(&'static str, &SecretRef)> {
    let mut refs = vec![
        ("sessionApiToken", &config.session_api_token),
        ("identityToken", &config.identity_token),
    ];
    if let JudgeConfig::Llm(llm) = &config.judge {
        match &llm.provider {
            ProviderConfig::Gemini(g) => refs.push(("judge.provider.apiKey", &g.api_key)),
            ProviderConfig::Openai(o) => {
                if let Some(k) = &o.api_key {
                    refs.push(("judge.provider.apiKey", k));
                }
            }
            ProviderConfig::A2a(a) => {
                if let Some(k) = &a.token {
                    refs.push(("judge.provider.token", k));
                }
            }
        }
    }
    refs
}

fn secret_refs_mut(config: &mut CanaryConfig) -> Vec<(&'static str, &mut SecretRef)> {
    let mut refs = vec![
        ("sessionApiToken", &mut config.session_api_token),
        ("identityToken", &mut config.identity_token),
    ];
    if let JudgeConfig::Llm(llm) = &mut config.judge {
        match &mut llm.provider {
            ProviderConfig::Gemini(g) => refs.push(("judge.provider.apiKey", &mut g.api_key)),
            ProviderConfig::Openai(o) => {
                if let Some(k) = &mut o.api_key {
                    refs.push(("judge.provider.apiKey", k));
                }
            }
            ProviderConfig::A2a(a) => {
                if let Some(k) = &mut a.token {
                    refs.push(("judge.provider.token", k));
                }
            }
        }
    }
    refs
}

/// Fetches every tenant-level reference of `config` within `scope` and stores the values in it.
/// The error names the reference's path and why, never a value.
pub async fn resolve(
    config: &mut CanaryConfig,
    scope: &TenantScope<'_>,
    reader: &dyn SecretReader,
) -> Result<(), String> {
    for (path, r) in secret_refs_mut(config) {
        let value = match r.source() {
            Ok(Source::SecretKeyRef(s)) => reader
                .read(scope.namespace, &s.name, &s.key)
                .await
                .map_err(|e| format!("{path}.secretKeyRef: {e}"))?,
            Ok(Source::Arg(name)) => match scope.secret_args.get(name) {
                Some(v) => v.clone(),
                None if scope.plain_args.contains(&name) => {
                    return Err(format!(
                        "{path}.arg: argument {name} is a plain value; only arguments with \
                         valueFrom.secretKeyRef count as secrets"
                    ));
                }
                None => {
                    return Err(format!(
                        "{path}.arg: the AnalysisRun has no argument {name} with a value from \
                         valueFrom.secretKeyRef"
                    ));
                }
            },
            _ => continue,
        };
        *r = r.resolved(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandcanary_secret::ExposeSecret;
    use serde_json::json;
    use std::sync::Mutex;

    /// Answers from a fixed map and records which namespace was asked.
    struct MapReader {
        secrets: BTreeMap<(String, String, String), String>,
        asked: Mutex<Vec<String>>,
    }

    impl SecretReader for MapReader {
        fn read<'a>(
            &'a self,
            namespace: &'a str,
            name: &'a str,
            key: &'a str,
        ) -> BoxFuture<'a, Result<SecretString, String>> {
            self.asked.lock().unwrap().push(namespace.to_string());
            let found = self
                .secrets
                .get(&(namespace.into(), name.into(), key.into()))
                .cloned();
            Box::pin(async move {
                found
                    .map(SecretString::from)
                    .ok_or_else(|| format!("Secret {name} does not exist in namespace {namespace}"))
            })
        }
    }

    fn config(session: serde_json::Value, identity: serde_json::Value) -> CanaryConfig {
        CanaryConfig::from_value(json!({
            "stable": {"dataUrl": "http://127.0.0.1:1", "adminUrl": "http://127.0.0.1:2"},
            "canary": {"dataUrl": "http://127.0.0.1:3", "adminUrl": "http://127.0.0.1:4"},
            "sessionApiToken": session,
            "identityToken": identity
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn references_resolve_in_the_runs_namespace_only() {
        let reader = MapReader {
            secrets: BTreeMap::from([
                (
                    ("team-a".into(), "tokens".into(), "admin".into()),
                    "a-admin".into(),
                ),
                (
                    ("team-b".into(), "tokens".into(), "admin".into()),
                    "b-admin".into(),
                ),
            ]),
            asked: Mutex::new(Vec::new()),
        };
        let secret_args = BTreeMap::from([("id".to_string(), SecretString::from("a-id"))]);
        let scope = TenantScope {
            namespace: "team-a",
            secret_args: &secret_args,
            plain_args: vec!["canary-url"],
        };
        let mut c = config(
            json!({"secretKeyRef": {"name": "tokens", "key": "admin"}}),
            json!({"arg": "id"}),
        );
        resolve(&mut c, &scope, &reader).await.unwrap();
        assert_eq!(
            c.session_api_token.load().unwrap().expose_secret(),
            "a-admin"
        );
        assert_eq!(c.identity_token.load().unwrap().expose_secret(), "a-id");
        assert_eq!(*reader.asked.lock().unwrap(), vec!["team-a".to_string()]);

        // Team B's Secret is unreachable from team A's run, whatever the name.
        let scope_c = TenantScope {
            namespace: "team-c",
            ..scope
        };
        let mut c = config(
            json!({"secretKeyRef": {"name": "tokens", "key": "admin"}}),
            json!({"arg": "id"}),
        );
        let e = resolve(&mut c, &scope_c, &reader).await.unwrap_err();
        assert!(
            e.starts_with(
                "sessionApiToken.secretKeyRef: Secret tokens does not exist in namespace team-c"
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn plain_and_missing_arguments_are_refused_with_the_reason() {
        let reader = MapReader {
            secrets: BTreeMap::new(),
            asked: Mutex::new(Vec::new()),
        };
        let none = BTreeMap::new();
        let scope = TenantScope {
            namespace: "ns",
            secret_args: &none,
            plain_args: vec!["canary-url"],
        };
        let mut c = config(json!({"arg": "canary-url"}), json!({"env": "X"}));
        let e = resolve(&mut c, &scope, &reader).await.unwrap_err();
        assert!(
            e.contains("sessionApiToken.arg") && e.contains("plain value"),
            "{e}"
        );
        let mut c = config(json!({"env": "X"}), json!({"arg": "nope"}));
        let e = resolve(&mut c, &scope, &reader).await.unwrap_err();
        assert!(
            e.contains("identityToken.arg") && e.contains("no argument nope"),
            "{e}"
        );
    }
}
