//! `secretKeyRef` through a real kube-apiserver (ignored in plain `cargo test`; run by
//! `make test-plugin-kube-secrets` under test/kube/apiserver.sh): a run in namespace A reads A's
//! Secret, never B's of the same name, and a Secret only B has does not exist for A.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use sandcanary_canary::CanaryConfig;
use sandcanary_plugin::tenant_secrets::{KubeSecretReader, SecretReader, TenantScope, resolve};
use sandcanary_secret::ExposeSecret;
use serde_json::json;

async fn secret(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs a real kube-apiserver: make test-plugin-kube-secrets"]
async fn secret_key_refs_stay_in_the_runs_namespace() {
    std::env::var("SANDCANARY_KUBE_DIR").expect("run under test/kube/apiserver.sh");
    let client = kube::Client::try_default().await.unwrap();
    let suffix = format!("{:x}", std::process::id());
    let (a, b) = (format!("team-a-{suffix}"), format!("team-b-{suffix}"));
    secret(
        &client,
        &a,
        "proxy-tokens",
        &[("admin", "a-admin\n"), ("identity", "a-identity")],
    )
    .await;
    secret(
        &client,
        &b,
        "proxy-tokens",
        &[("admin", "b-admin"), ("identity", "b-identity")],
    )
    .await;
    secret(&client, &b, "b-only", &[("admin", "b-only-admin")]).await;

    let reader = KubeSecretReader;
    let v = reader.read(&a, "proxy-tokens", "admin").await.unwrap();
    assert_eq!(v.expose_secret(), "a-admin", "trimmed, and A's own");
    let e = reader.read(&a, "b-only", "admin").await.unwrap_err();
    assert_eq!(e, format!("Secret b-only does not exist in namespace {a}"));
    let e = reader.read(&a, "proxy-tokens", "nope").await.unwrap_err();
    assert_eq!(e, "Secret proxy-tokens has no key nope");

    // The whole configuration, as the plugin resolves it for a run in A.
    let mut config = CanaryConfig::from_value(json!({
        "stable": {"dataUrl": "http://127.0.0.1:1", "adminUrl": "http://127.0.0.1:2"},
        "canary": {"dataUrl": "http://127.0.0.1:3", "adminUrl": "http://127.0.0.1:4"},
        "sessionApiToken": {"secretKeyRef": {"name": "proxy-tokens", "key": "admin"}},
        "identityToken": {"secretKeyRef": {"name": "proxy-tokens", "key": "identity"}},
        "judge": {"type": "llm", "provider": {"type": "a2a", "url": "http://127.0.0.1:5/",
                  "token": {"secretKeyRef": {"name": "b-only", "key": "admin"}}}}
    }))
    .unwrap();
    let none = BTreeMap::new();
    let scope = TenantScope {
        namespace: &a,
        secret_args: &none,
        plain_args: vec![],
    };
    let e = resolve(&mut config, &scope, &reader).await.unwrap_err();
    assert!(
        e.starts_with("judge.provider.token.secretKeyRef: Secret b-only does not exist"),
        "{e}"
    );
    assert!(!e.contains("b-only-admin"));
    assert_eq!(
        config.session_api_token.load().unwrap().expose_secret(),
        "a-admin"
    );
    assert_eq!(
        config.identity_token.load().unwrap().expose_secret(),
        "a-identity"
    );
}
