//! The plugin's JSON configuration: what sits under `provider.plugin["sandcanary/sandcanary"]` in an
//! AnalysisTemplate metric.
//!
//! Parsing is strict (unknown keys are errors) and every error names the JSON path of the offending
//! key, because the message ends up in an `Error` measurement that a person has to act on.
//! Secrets are never values here: the config only says where they live (crate
//! `sandcanary-secret`: an own-namespace Secret, an Argo argument, or, within the operator's rules,
//! an environment variable or file of the controller), so templates can be shared and logged.

use std::collections::BTreeMap;

use sandcanary_bench::scenario::Scenario;
use sandcanary_github::GithubConfig;
use sandcanary_judge::JudgeConfig;
use sandcanary_judge::statistical::StatisticalConfig;
pub use sandcanary_secret::{SecretError, SecretRef};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pod_logs::PodLogsConfig;

/// Why a configuration cannot be used. `path` is the JSON path of the key at fault (`.` for the
/// whole object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CanaryConfigError {
    pub path: String,
    pub message: String,
}

impl CanaryConfigError {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The metric's `provider.plugin["sandcanary/sandcanary"]` object: which proxies to bench, how,
/// which judge decides, and where failed verdicts are filed. Secrets are named, never inlined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "sandcanary canary analysis", transform = pod_logs_need_the_llm_judge)]
pub struct CanaryConfig {
    /// The proxy running the current version.
    pub stable: TargetConfig,
    /// The proxy running the version under test.
    pub canary: TargetConfig,
    /// Seconds between `Resume` calls. Read by the protocol side; accepted here so that one type
    /// and one schema describe the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub poll_seconds: Option<u64>,
    /// Bearer token of both proxies' session API (`SESSION_API_TOKEN` of the proxy).
    pub session_api_token: SecretRef,
    /// Bearer token of both proxies' token identity mode (`IDENTITY_TOKEN` of the proxy).
    pub identity_token: SecretRef,
    /// Header that names the sandbox id on the data port.
    #[serde(default = "default_id_header")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub id_header: String,
    /// Situations to measure, interleaved between stable and canary.
    #[serde(default = "default_scenarios")]
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub scenarios: Vec<Scenario>,
    /// Samples per scenario and target.
    #[serde(default = "default_samples")]
    #[schemars(range(min = 1, max = MAX_SAMPLES))]
    pub samples: usize,
    /// Pause between samples, so the previous session winds down first.
    #[serde(default = "default_pause_ms")]
    #[schemars(range(max = MAX_PAUSE_MS))]
    pub pause_ms: u64,
    /// Page the sandboxes navigate to. Without it the plugin serves a fixture page on
    /// 127.0.0.1, which only sandboxes on the same host (the local backend) can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub page_url: Option<String>,
    /// Title the page must have; with the built-in fixture page it is checked automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_title: Option<String>,
    /// Deadline of one connect (cold starts included).
    #[serde(default = "default_connect_timeout")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_SECONDS))]
    pub connect_timeout_seconds: u64,
    /// Deadline of one navigation.
    #[serde(default = "default_goto_timeout")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_SECONDS))]
    pub goto_timeout_seconds: u64,
    /// Which judge decides, and its settings (the judge crate's own config).
    #[serde(default = "default_judge")]
    pub judge: JudgeConfig,
    /// Where failed verdicts are filed; without it nothing is filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubConfig>,
    /// Render the GitHub issue instead of sending it (overrides `github.dryRun`).
    #[serde(default)]
    pub dry_run: bool,
    /// What is being rolled out, for the report and its fingerprint.
    #[serde(default)]
    pub rollout: RolloutInfo,
    /// The proxies' pod logs as untrusted context for the LLM judge (read through the
    /// Kubernetes API, bounded in size and time). Omitted: no logs are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_logs: Option<PodLogsConfig>,
    /// Record a Kubernetes Event on the AnalysisRun for each verdict (the plugin binary does;
    /// needs `create` on events in the AnalysisRun's namespace). A failed write never changes
    /// the verdict.
    #[serde(default = "default_true")]
    pub kubernetes_events: bool,
    /// Record where each sample's time went (the proxy's 101, newPage's parts, Chromium's
    /// navigation timing, read after the timed part), for the issue's waterfall.
    #[serde(default = "default_true")]
    pub breakdown: bool,
}

/// One proxy: its data port (Playwright clients connect there) and admin port (session API).
/// Each URL is given either directly or as the name of an AnalysisRun argument holding it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "target", transform = url_or_arg)]
pub struct TargetConfig {
    /// Data port, where Playwright clients connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(https?|wss?)://"))]
    pub data_url: Option<String>,
    /// Admin port with the session API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub admin_url: Option<String>,
    /// The AnalysisRun argument holding the data port's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub data_url_arg: Option<String>,
    /// The AnalysisRun argument holding the admin port's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub admin_url_arg: Option<String>,
}

/// Revisions and links of the rollout under analysis, for the report and its fingerprint;
/// usually filled with `{{args.*}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(inline)]
pub struct RolloutInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub rollout_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub analysis_run_url: Option<String>,
}

/// `$id` of [`config_schema`].
pub const CONFIG_SCHEMA_ID: &str =
    "https://example.invalid/sandcanary/sandcanary-config.schema.json";

/// The JSON Schema of [`CanaryConfig`], derived from the types; the checked-in
/// schema/sandcanary-config.schema.json is this (written by `make schemas`). What a schema cannot
/// say (credentials unless a dry run, URLs that parse) is left to [`CanaryConfig::validate`].
pub fn config_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(CanaryConfig);
    schema.insert("$id".into(), CONFIG_SCHEMA_ID.into());
    schema.to_value()
}

/// Schema rule across keys: `podLogs` is read only by the llm judge, so it needs `judge.type` llm.
fn pod_logs_need_the_llm_judge(schema: &mut Schema) {
    schema.insert("if".into(), json!({ "required": ["podLogs"] }));
    schema.insert(
        "then".into(),
        json!({
            "required": ["judge"],
            "properties": { "judge": { "properties": { "type": { "const": "llm" } } } }
        }),
    );
}

/// Schema rule across keys: each URL of a target exactly once, directly or as an argument.
fn url_or_arg(schema: &mut Schema) {
    let exactly_one = |a: &str, b: &str| {
        json!({ "oneOf": [
            { "required": [a], "not": { "required": [b] } },
            { "required": [b], "not": { "required": [a] } }
        ] })
    };
    schema.insert(
        "allOf".into(),
        json!([
            exactly_one("dataUrl", "dataUrlArg"),
            exactly_one("adminUrl", "adminUrlArg")
        ]),
    );
}

fn default_true() -> bool {
    true
}
fn default_id_header() -> String {
    "X-Sandbox-Id".into()
}
fn default_scenarios() -> Vec<Scenario> {
    vec![Scenario::Cold, Scenario::Warm]
}
fn default_samples() -> usize {
    10
}
fn default_pause_ms() -> u64 {
    200
}
fn default_connect_timeout() -> u64 {
    180
}
fn default_goto_timeout() -> u64 {
    30
}
fn default_judge() -> JudgeConfig {
    JudgeConfig::Statistical(StatisticalConfig::default())
}

/// Upper bounds that keep one measurement within what a person would wait for.
pub const MAX_SAMPLES: usize = 1000;
pub const MAX_PAUSE_MS: u64 = 60_000;
pub const MAX_TIMEOUT_SECONDS: u64 = 900;

/// A target with both URLs known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub data_url: String,
    pub admin_url: String,
}

impl CanaryConfig {
    /// Parses and validates raw JSON.
    pub fn from_json(raw: &[u8]) -> Result<Self, CanaryConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(raw);
        let config: Self = serde_path_to_error::deserialize(de).map_err(path_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates an already-decoded JSON object (the protocol side's leftover keys).
    pub fn from_value(value: serde_json::Value) -> Result<Self, CanaryConfigError> {
        let config: Self = serde_path_to_error::deserialize(value).map_err(path_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges, shapes, and each part's own validation.
    pub fn validate(&self) -> Result<(), CanaryConfigError> {
        self.stable.validate_shape("stable")?;
        self.canary.validate_shape("canary")?;
        check_secret("sessionApiToken", &self.session_api_token)?;
        check_secret("identityToken", &self.identity_token)?;
        if let Some(p) = self.poll_seconds
            && !(1..=3600).contains(&p)
        {
            return Err(CanaryConfigError::at(
                "pollSeconds",
                "must be between 1 and 3600",
            ));
        }
        if self.id_header.is_empty()
            || !self
                .id_header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(CanaryConfigError::at(
                "idHeader",
                "must be a header name ([A-Za-z0-9_-]+)",
            ));
        }
        if self.scenarios.is_empty() {
            return Err(CanaryConfigError::at(
                "scenarios",
                "must name at least one scenario",
            ));
        }
        for (i, s) in self.scenarios.iter().enumerate() {
            if self.scenarios[..i].contains(s) {
                return Err(CanaryConfigError::at(
                    format!("scenarios[{i}]"),
                    format!("{s} is listed twice"),
                ));
            }
        }
        if !(1..=MAX_SAMPLES).contains(&self.samples) {
            return Err(CanaryConfigError::at(
                "samples",
                format!("must be between 1 and {MAX_SAMPLES}"),
            ));
        }
        if self.pause_ms > MAX_PAUSE_MS {
            return Err(CanaryConfigError::at(
                "pauseMs",
                format!("must be at most {MAX_PAUSE_MS}"),
            ));
        }
        for (key, v) in [
            ("connectTimeoutSeconds", self.connect_timeout_seconds),
            ("gotoTimeoutSeconds", self.goto_timeout_seconds),
        ] {
            if !(1..=MAX_TIMEOUT_SECONDS).contains(&v) {
                return Err(CanaryConfigError::at(
                    key,
                    format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"),
                ));
            }
        }
        if let Some(page) = &self.page_url {
            check_url("pageUrl", page, &["http", "https"])?;
        }
        for (key, link) in [
            ("rollout.rolloutUrl", &self.rollout.rollout_url),
            ("rollout.analysisRunUrl", &self.rollout.analysis_run_url),
        ] {
            if let Some(link) = link {
                check_url(key, link, &["http", "https"])?;
            }
        }
        // Building the judge is its validation; its errors name a field inside `judge`.
        if let Err(sandcanary_judge::JudgeConfigError::Invalid { field, why }) = self.judge.build()
        {
            return Err(CanaryConfigError::at(format!("judge.{field}"), why));
        }
        if let Some(logs) = &self.pod_logs {
            logs.validate()?;
            if !matches!(self.judge, JudgeConfig::Llm(_)) {
                return Err(CanaryConfigError::at(
                    "podLogs",
                    "only the llm judge reads pod logs; set judge.type to llm or remove podLogs",
                ));
            }
        }
        if let Some(gh) = &self.github {
            let mut gh = gh.clone();
            // A dry run at the top level means the GitHub settings need no credentials either.
            gh.dry_run |= self.dry_run;
            gh.validate()
                .map_err(|e| CanaryConfigError::at("github", e.to_string()))?;
        }
        Ok(())
    }

    /// The GitHub settings in effect, with the top-level `dryRun` applied.
    pub fn github_effective(&self) -> Option<GithubConfig> {
        self.github.clone().map(|mut g| {
            g.dry_run |= self.dry_run;
            g
        })
    }

    /// Both targets with their URLs, taking `*Arg` values from the AnalysisRun's arguments.
    pub fn resolve_targets(
        &self,
        args: &BTreeMap<String, String>,
    ) -> Result<(ResolvedTarget, ResolvedTarget), CanaryConfigError> {
        Ok((
            self.stable.resolve("stable", args)?,
            self.canary.resolve("canary", args)?,
        ))
    }
}

impl TargetConfig {
    fn validate_shape(&self, side: &str) -> Result<(), CanaryConfigError> {
        for (url, arg, name) in [
            (&self.data_url, &self.data_url_arg, "dataUrl"),
            (&self.admin_url, &self.admin_url_arg, "adminUrl"),
        ] {
            match (url, arg) {
                (Some(_), Some(_)) => {
                    return Err(CanaryConfigError::at(
                        format!("{side}.{name}"),
                        format!("give either {name} or {name}Arg, not both"),
                    ));
                }
                (None, None) => {
                    return Err(CanaryConfigError::at(
                        format!("{side}.{name}"),
                        format!("missing: the {side} target needs {name} or {name}Arg"),
                    ));
                }
                (Some(u), None) => check_target_url(side, name, u)?,
                (None, Some(a)) if a.trim().is_empty() => {
                    return Err(CanaryConfigError::at(
                        format!("{side}.{name}Arg"),
                        "must name an argument",
                    ));
                }
                (None, Some(_)) => {}
            }
        }
        Ok(())
    }

    fn resolve(
        &self,
        side: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<ResolvedTarget, CanaryConfigError> {
        let pick = |url: &Option<String>, arg: &Option<String>, name: &str| {
            if let Some(u) = url {
                return Ok(u.clone());
            }
            let Some(arg) = arg else {
                return Err(CanaryConfigError::at(
                    format!("{side}.{name}"),
                    format!("missing: the {side} target needs {name} or {name}Arg"),
                ));
            };
            let value = args
                .get(arg)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    CanaryConfigError::at(
                        format!("{side}.{name}Arg"),
                        format!("the AnalysisRun has no (non-empty) argument named {arg:?}"),
                    )
                })?;
            check_target_url(side, &format!("{name}Arg"), value)?;
            Ok(value.clone())
        };
        Ok(ResolvedTarget {
            data_url: pick(&self.data_url, &self.data_url_arg, "dataUrl")?,
            admin_url: pick(&self.admin_url, &self.admin_url_arg, "adminUrl")?,
        })
    }
}

fn check_target_url(side: &str, name: &str, value: &str) -> Result<(), CanaryConfigError> {
    let path = format!("{side}.{name}");
    if name.starts_with("dataUrl") {
        check_url(&path, value, &["http", "https", "ws", "wss"])
    } else {
        check_url(&path, value, &["http", "https"])
    }
}

fn check_url(path: &str, value: &str, schemes: &[&str]) -> Result<(), CanaryConfigError> {
    let parsed = url::Url::parse(value)
        .map_err(|e| CanaryConfigError::at(path, format!("not a URL ({e}): {value:?}")))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(CanaryConfigError::at(
            path,
            format!("scheme must be one of {}", schemes.join(", ")),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(CanaryConfigError::at(path, "URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CanaryConfigError::at(
            path,
            "URL must not carry credentials (use sessionApiToken / identityToken)",
        ));
    }
    Ok(())
}

/// A secret reference's shape, as a configuration error at `path` (and the field inside it).
fn check_secret(path: &str, r: &SecretRef) -> Result<(), CanaryConfigError> {
    r.check().map_err(|e| match e {
        SecretError::Invalid { field, why } if !field.is_empty() => {
            CanaryConfigError::at(format!("{path}.{field}"), why)
        }
        e => CanaryConfigError::at(path, e.to_string()),
    })
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> CanaryConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // serde_json appends " at line L column C"; the path is the more useful locator.
    let mut message = inner.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    CanaryConfigError::at(path, hide_string_values(&message))
}

/// serde quotes the offending string (`invalid type: string "…", expected …`). A string where a
/// secret reference belongs is probably the secret itself, so errors never repeat string values.
fn hide_string_values(message: &str) -> String {
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(kind)
            && rest.starts_with("string \"")
            && let Some(end) = rest.rfind("\", expected")
        {
            return format!("{kind}a string{}", &rest[end + 1..]);
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn minimal() -> serde_json::Value {
        json!({
            "stable": {"dataUrl": "http://127.0.0.1:1", "adminUrl": "http://127.0.0.1:2"},
            "canary": {"dataUrlArg": "canary-data", "adminUrlArg": "canary-admin"},
            "sessionApiToken": {"env": "SANDCANARY_ADMIN_TOKEN"},
            "identityToken": {"file": "/var/run/secrets/identity"}
        })
    }

    fn err(v: serde_json::Value) -> CanaryConfigError {
        CanaryConfig::from_value(v).unwrap_err()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = CanaryConfig::from_value(minimal()).unwrap();
        assert_eq!(c.samples, 10);
        assert_eq!(c.scenarios, vec![Scenario::Cold, Scenario::Warm]);
        assert_eq!(c.id_header, "X-Sandbox-Id");
        assert!(matches!(c.judge, JudgeConfig::Statistical(_)));
        assert!(c.github.is_none() && !c.dry_run);
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let mut v = minimal();
        v["canary"]["dataURL"] = json!("http://x");
        let e = err(v);
        assert_eq!(e.path, "canary.dataURL", "{e}");
        assert!(e.message.contains("unknown field `dataURL`"), "{e}");

        let mut v = minimal();
        v["sampels"] = json!(3);
        let e = err(v);
        assert!(e.to_string().contains("sampels"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let mut v = minimal();
        v["samples"] = json!("ten");
        let e = err(v);
        assert_eq!(e.path, "samples", "{e}");
        assert!(e.message.contains("invalid type"), "{e}");

        let mut v = minimal();
        v["scenarios"] = json!(["cold", "tepid"]);
        assert_eq!(err(v).path, "scenarios[1]");

        // A token value inline instead of a reference is a type error, not a secret in the config.
        let mut v = minimal();
        v["sessionApiToken"] = json!("s3cr3t-value");
        let e = err(v);
        assert_eq!(e.path, "sessionApiToken");
        assert!(!e.to_string().contains("s3cr3t-value"), "{e}");
        assert!(e.message.contains("expected struct SecretRef"), "{e}");
        let mut v = minimal();
        v["identityToken"] = json!({"env": "ghp_abc-123.secret"});
        let e = err(v);
        assert_eq!(e.path, "identityToken.env");
        assert!(!e.to_string().contains("ghp_abc"), "{e}");
    }

    #[test]
    fn missing_targets_are_named() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("canary");
        let e = err(v);
        assert!(e.message.contains("missing field `canary`"), "{e}");

        let mut v = minimal();
        v["stable"] = json!({"dataUrl": "http://127.0.0.1:1"});
        let e = err(v);
        assert_eq!(e.path, "stable.adminUrl", "{e}");

        let c = CanaryConfig::from_value(minimal()).unwrap();
        let e = c.resolve_targets(&BTreeMap::new()).unwrap_err();
        assert_eq!(e.path, "canary.dataUrlArg", "{e}");
        assert!(e.message.contains("canary-data"), "{e}");
        let args = BTreeMap::from([
            ("canary-data".to_string(), "ws://127.0.0.1:3".to_string()),
            ("canary-admin".to_string(), "http://127.0.0.1:4".to_string()),
        ]);
        let (s, c) = c.resolve_targets(&args).unwrap();
        assert_eq!(s.admin_url, "http://127.0.0.1:2");
        assert_eq!(c.data_url, "ws://127.0.0.1:3");
    }

    #[test]
    fn values_out_of_range_are_named() {
        for (key, value, path) in [
            ("samples", json!(0), "samples"),
            ("pauseMs", json!(600_000), "pauseMs"),
            ("scenarios", json!([]), "scenarios"),
            ("scenarios", json!(["warm", "warm"]), "scenarios[1]"),
            ("pageUrl", json!("file:///etc/passwd"), "pageUrl"),
            ("idHeader", json!("X Sandbox"), "idHeader"),
            ("pollSeconds", json!(0), "pollSeconds"),
            (
                "judge",
                json!({"type": "statistical", "tolerance": -1}),
                "judge.tolerance",
            ),
            (
                "sessionApiToken",
                json!({"env": "A", "file": "/b"}),
                "sessionApiToken",
            ),
            (
                "github",
                json!({"owner": "acme", "repo": "proxy"}),
                "github",
            ),
        ] {
            let mut v = minimal();
            v[key] = value;
            let e = err(v);
            assert_eq!(e.path, path, "{e}");
        }
        let mut v = minimal();
        v["stable"]["dataUrl"] = json!("http://user:pw@127.0.0.1:1");
        assert_eq!(err(v).path, "stable.dataUrl");
    }

    fn with_llm_judge(mut v: serde_json::Value) -> serde_json::Value {
        v["judge"] =
            json!({"type": "llm", "provider": {"type": "a2a", "url": "http://127.0.0.1:1/"}});
        v
    }

    #[test]
    fn pod_logs_parse_with_defaults_and_need_the_llm_judge() {
        let mut v = with_llm_judge(minimal());
        v["podLogs"] = json!({"stableSelector": "app=proxy,track=stable", "canarySelector": "app=proxy,track=canary"});
        let c = CanaryConfig::from_value(v.clone()).unwrap();
        let logs = c.pod_logs.unwrap();
        assert_eq!(
            (logs.tail_lines, logs.max_bytes, logs.timeout_seconds),
            (200, 16384, 10)
        );
        assert!(logs.namespace.is_none() && logs.since_seconds.is_none());

        v["judge"] = json!({"type": "statistical"});
        assert_eq!(err(v).path, "podLogs");
    }

    #[test]
    fn pod_logs_unknown_keys_wrong_types_and_ranges_name_the_field() {
        for (logs, path) in [
            (
                json!({"stableSelector": "a=b", "canarySelector": "a=c", "tailLine": 5}),
                "podLogs.tailLine",
            ),
            (
                json!({"stableSelector": "a=b", "canarySelector": "a=c", "maxBytes": "16k"}),
                "podLogs.maxBytes",
            ),
            (
                json!({"stableSelector": "a=b", "canarySelector": 3}),
                "podLogs.canarySelector",
            ),
            (json!({"stableSelector": "a=b"}), "podLogs"),
            (
                json!({"stableSelector": "a=b", "canarySelector": "a=c", "timeoutSeconds": 0}),
                "podLogs.timeoutSeconds",
            ),
            (
                json!({"stableSelector": "a=b", "canarySelector": "a=c", "sinceSeconds": -1}),
                "podLogs.sinceSeconds",
            ),
            (
                json!({"stableSelector": "", "canarySelector": "a=c"}),
                "podLogs.stableSelector",
            ),
            (
                json!({"stableSelector": "a=b", "canarySelector": "a=c", "container": "Proxy!"}),
                "podLogs.container",
            ),
            (json!("app=proxy"), "podLogs"),
        ] {
            let mut v = with_llm_judge(minimal());
            v["podLogs"] = logs.clone();
            let e = err(v);
            assert_eq!(e.path, path, "{logs}: {e}");
        }
    }

    #[test]
    fn top_level_dry_run_needs_no_github_credentials() {
        let mut v = minimal();
        v["github"] = json!({"owner": "acme", "repo": "proxy"});
        v["dryRun"] = json!(true);
        let c = CanaryConfig::from_value(v).unwrap();
        assert!(c.github_effective().unwrap().dry_run);
    }

    #[test]
    fn secret_references_of_every_kind_parse_and_bad_ones_name_the_field() {
        let mut v = minimal();
        v["sessionApiToken"] =
            json!({"secretKeyRef": {"name": "proxy-tokens", "key": "session-api-token"}});
        v["identityToken"] = json!({"arg": "identity-token"});
        let c = CanaryConfig::from_value(v).unwrap();
        assert!(!c.session_api_token.is_operator_level());
        let mut v = minimal();
        v["sessionApiToken"] = json!({"secretKeyRef": {"name": "Bad_Name", "key": "k"}});
        assert_eq!(err(v).path, "sessionApiToken.secretKeyRef.name");
        let mut v = minimal();
        v["sessionApiToken"] = json!({"secretKeyRef": {"name": "t", "key": "k", "namespace": "b"}});
        let e = err(v);
        assert_eq!(e.path, "sessionApiToken.secretKeyRef.namespace", "{e}");
    }

    #[test]
    fn not_json_is_an_error_not_a_panic() {
        let e = CanaryConfig::from_json(b"{not json").unwrap_err();
        assert!(!e.message.is_empty());
    }
}
