//! schema/sandcanary-config.schema.json is derived from `CanaryConfig` (schemars); these tests keep
//! the checked-in file identical to the derivation, and check that schema and type agree: every
//! example below is accepted by both or rejected by both, and every key of the type appears in the
//! schema.

use sandcanary_canary::{CONFIG_SCHEMA, CanaryConfig, config_schema};
use serde_json::{Value, json};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(CONFIG_SCHEMA).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// The checked-in schema is exactly what the types derive; with `SANDCANARY_WRITE_SCHEMAS=1` the
/// test writes it instead (`make schemas`).
#[test]
fn schema_file_is_derived_from_the_type() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/sandcanary-config.schema.json"
    );
    let derived = serde_json::to_string_pretty(&config_schema()).unwrap() + "\n";
    if std::env::var_os("SANDCANARY_WRITE_SCHEMAS").is_some() {
        std::fs::write(path, &derived).unwrap();
    }
    let file = std::fs::read_to_string(path).unwrap();
    assert!(
        file == derived,
        "{path} is not what CanaryConfig derives: run `make schemas` and commit the result"
    );
}

fn base() -> Value {
    json!({
        "stable": {"dataUrl": "http://127.0.0.1:9000", "adminUrl": "http://127.0.0.1:9090"},
        "canary": {"dataUrlArg": "canary-data", "adminUrlArg": "canary-admin"},
        "sessionApiToken": {"env": "SANDCANARY_ADMIN_TOKEN"},
        "identityToken": {"file": "/var/run/secrets/sandcanary/identity"}
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn llm_judge(v: Value) -> Value {
    with(
        v,
        "judge",
        json!({"type": "llm", "provider": {"type": "a2a", "url": "http://127.0.0.1:1/"}}),
    )
}

fn pod_logs_full() -> Value {
    json!({"stableSelector": "app=proxy,track=stable", "canarySelector": "app=proxy,track!=stable",
           "namespace": "proxies", "container": "proxy", "sinceSeconds": 600, "tailLines": 100,
           "maxBytes": 4096, "timeoutSeconds": 5})
}

fn pod_logs_with(key: &str, value: Value) -> Value {
    let mut logs = pod_logs_full();
    logs[key] = value;
    with(llm_judge(base()), "podLogs", logs)
}

fn valid_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("minimal", base()),
        (
            "tenant secrets",
            with(
                with(
                    base(),
                    "sessionApiToken",
                    json!({"secretKeyRef": {"name": "sandcanary-proxy-tokens", "key": "session-api-token"}}),
                ),
                "identityToken",
                json!({"arg": "identity-token"}),
            ),
        ),
        (
            "everything",
            json!({
                "stable": {"dataUrl": "ws://stable.proxy:9000", "adminUrl": "http://stable.proxy:9090"},
                "canary": {"dataUrl": "ws://canary.proxy:9000", "adminUrl": "http://canary.proxy:9090"},
                "pollSeconds": 15,
                "sessionApiToken": {"file": "/var/run/secrets/admin"},
                "identityToken": {"env": "SANDCANARY_IDENTITY_TOKEN"},
                "idHeader": "X-Sandbox-Id",
                "scenarios": ["cold", "warm", "restore"],
                "samples": 30,
                "pauseMs": 100,
                "pageUrl": "http://fixture.sandcanary.svc/",
                "expectTitle": "fixture",
                "connectTimeoutSeconds": 120,
                "gotoTimeoutSeconds": 20,
                "judge": {"type": "statistical", "passScore": 90, "marginalScore": 70,
                          "metrics": [{"match": "warm.total_ms", "critical": true}]},
                "github": {"owner": "acme", "repo": "proxy", "labels": ["performance"],
                           "auth": {"tokenEnv": "GITHUB_TOKEN"}},
                "dryRun": false,
                "kubernetesEvents": false,
                "breakdown": false,
                "rollout": {"canaryRevision": "7d9f6c", "stableRevision": "5b1a2e",
                            "rolloutUrl": "https://argo.example/rollouts/prod/proxy"}
            }),
        ),
        (
            "threshold judge",
            with(
                base(),
                "judge",
                json!({"type": "threshold", "maxErrorRate": 0.1,
                       "limits": [{"match": "warm.total_ms", "p90": 500}]}),
            ),
        ),
        (
            "llm judge",
            with(
                base(),
                "judge",
                json!({"type": "llm", "provider": {"type": "a2a", "url": "http://127.0.0.1:1/"},
                       "confidenceThreshold": 80}),
            ),
        ),
        (
            "llm judge with pod logs",
            with(llm_judge(base()), "podLogs", pod_logs_full()),
        ),
        (
            "dry run without credentials",
            with(
                with(base(), "dryRun", json!(true)),
                "github",
                json!({"owner": "acme", "repo": "proxy"}),
            ),
        ),
    ]
}

fn invalid_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("unknown top-level key", with(base(), "sampels", json!(3))),
        (
            "breakdown not a boolean",
            with(base(), "breakdown", json!(1)),
        ),
        (
            "kubernetesEvents not a boolean",
            with(base(), "kubernetesEvents", json!("yes")),
        ),
        (
            "unknown target key",
            with(
                base(),
                "stable",
                json!({"dataUrl": "http://a:1", "adminUrl": "http://a:2", "x": 1}),
            ),
        ),
        ("missing canary", without(base(), "canary")),
        ("missing token", without(base(), "identityToken")),
        (
            "target without admin URL",
            with(base(), "stable", json!({"dataUrl": "http://a:1"})),
        ),
        (
            "target with URL and arg",
            with(
                base(),
                "stable",
                json!({"dataUrl": "http://a:1", "dataUrlArg": "d", "adminUrl": "http://a:2"}),
            ),
        ),
        ("samples is a string", with(base(), "samples", json!("10"))),
        ("samples is zero", with(base(), "samples", json!(0))),
        (
            "unknown scenario",
            with(base(), "scenarios", json!(["tepid"])),
        ),
        (
            "duplicate scenario",
            with(base(), "scenarios", json!(["warm", "warm"])),
        ),
        ("no scenarios", with(base(), "scenarios", json!([]))),
        (
            "inline secret",
            with(base(), "sessionApiToken", json!("s3cret")),
        ),
        (
            "secretKeyRef naming a namespace",
            with(
                base(),
                "sessionApiToken",
                json!({"secretKeyRef": {"name": "t", "key": "k", "namespace": "other"}}),
            ),
        ),
        (
            "secretKeyRef without key",
            with(
                base(),
                "sessionApiToken",
                json!({"secretKeyRef": {"name": "t"}}),
            ),
        ),
        (
            "secret with env and arg",
            with(base(), "sessionApiToken", json!({"env": "A", "arg": "b"})),
        ),
        (
            "env that is no variable name",
            with(base(), "sessionApiToken", json!({"env": "ghp-1.2"})),
        ),
        (
            "secret with both sources",
            with(base(), "sessionApiToken", json!({"env": "A", "file": "/b"})),
        ),
        (
            "page URL not http",
            with(base(), "pageUrl", json!("file:///etc/passwd")),
        ),
        (
            "unknown judge",
            with(base(), "judge", json!({"type": "magic"})),
        ),
        (
            "unknown judge key",
            with(
                base(),
                "judge",
                json!({"type": "statistical", "pasScore": 90}),
            ),
        ),
        (
            "unknown github key",
            with(
                base(),
                "github",
                json!({"owner": "acme", "repo": "proxy", "dryrun": true}),
            ),
        ),
        (
            "unknown rollout key",
            with(base(), "rollout", json!({"revision": "x"})),
        ),
        ("pollSeconds zero", with(base(), "pollSeconds", json!(0))),
        (
            "pod logs without the llm judge",
            with(base(), "podLogs", pod_logs_full()),
        ),
        ("pod logs unknown key", pod_logs_with("tailLine", json!(5))),
        (
            "pod logs maxBytes a string",
            pod_logs_with("maxBytes", json!("16k")),
        ),
        (
            "pod logs maxBytes too big",
            pod_logs_with("maxBytes", json!(1 << 20)),
        ),
        (
            "pod logs timeout zero",
            pod_logs_with("timeoutSeconds", json!(0)),
        ),
        (
            "pod logs selector not a string",
            pod_logs_with("canarySelector", json!(1)),
        ),
        (
            "pod logs set-based selector",
            pod_logs_with("stableSelector", json!("app in (a)")),
        ),
        (
            "pod logs bad namespace",
            pod_logs_with("namespace", json!("Prod_NS")),
        ),
        (
            "pod logs without a selector",
            with(
                llm_judge(base()),
                "podLogs",
                json!({"stableSelector": "a=b"}),
            ),
        ),
    ]
}

#[test]
fn valid_examples_are_accepted_by_schema_and_type() {
    let v = validator();
    for (name, example) in valid_examples() {
        let errors: Vec<String> = v.iter_errors(&example).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: schema rejects: {errors:?}");
        if let Err(e) = CanaryConfig::from_value(example) {
            panic!("{name}: type rejects: {e}");
        }
    }
}

#[test]
fn invalid_examples_are_rejected_by_schema_and_type() {
    let v = validator();
    for (name, example) in invalid_examples() {
        assert!(!v.is_valid(&example), "{name}: schema accepts it");
        assert!(
            CanaryConfig::from_value(example).is_err(),
            "{name}: type accepts it"
        );
    }
}

/// One rule the schema cannot state: GitHub credentials are required unless it is a dry run
/// (the github crate's schema says so in words only). The type enforces it.
#[test]
fn github_without_credentials_is_rejected_by_the_type() {
    let e = CanaryConfig::from_value(with(
        base(),
        "github",
        json!({"owner": "acme", "repo": "proxy"}),
    ))
    .unwrap_err();
    assert_eq!(e.path, "github", "{e}");
}

/// Every key the type serializes (with all options set) is a property in the schema, so a field
/// added to the type without the schema fails here.
#[test]
fn every_key_of_the_type_is_in_the_schema() {
    let schema: Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
    let full = CanaryConfig::from_value(valid_examples()[2].1.clone()).unwrap();
    let mut full = serde_json::to_value(&full).unwrap();
    full["rollout"]["analysisRunUrl"] = json!("https://argo.example/run");
    full["canary"] = json!({"dataUrlArg": "d", "adminUrlArg": "a"});
    let props = |v: &Value| -> Vec<String> {
        v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let top = props(&schema);
    for key in full.as_object().unwrap().keys() {
        assert!(top.contains(key), "schema lacks top-level key {key}");
    }
    let target = props(&schema["$defs"]["target"]);
    for side in ["stable", "canary"] {
        for key in full[side].as_object().unwrap().keys() {
            assert!(target.contains(key), "schema lacks target key {key}");
        }
    }
    let rollout = props(&schema["properties"]["rollout"]);
    for key in full["rollout"].as_object().unwrap().keys() {
        assert!(rollout.contains(key), "schema lacks rollout key {key}");
    }
    for key in full["sessionApiToken"].as_object().unwrap().keys() {
        assert!(props(&schema["$defs"]["secret"]).contains(key));
    }
    // Every kind of secret reference the type knows is in the schema.
    for example in [
        json!({"secretKeyRef": {"name": "n", "key": "k"}}),
        json!({"arg": "a"}),
    ] {
        let r: sandcanary_canary::SecretRef = serde_json::from_value(example).unwrap();
        for key in serde_json::to_value(&r)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                props(&schema["$defs"]["secret"]).contains(key),
                "schema lacks secret key {key}"
            );
        }
    }
    let with_logs =
        CanaryConfig::from_value(with(llm_judge(base()), "podLogs", pod_logs_full())).unwrap();
    let with_logs = serde_json::to_value(&with_logs).unwrap();
    let logs = props(&schema["$defs"]["podLogs"]);
    assert_eq!(with_logs["podLogs"].as_object().unwrap().len(), logs.len());
    for key in with_logs["podLogs"].as_object().unwrap().keys() {
        assert!(logs.contains(key), "schema lacks podLogs key {key}");
    }
}
