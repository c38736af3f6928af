//! What the operator lets templates do, read once from the controller's environment (templates
//! cannot change it): which of the controller's own secrets (`env`, `file`) a template may name
//! (crate `sandcanary-secret`'s [`Policy`]), and where those operator-level secrets may be sent.
//!
//! Tenant-level secrets (`secretKeyRef`, `arg`) come from the AnalysisRun's own namespace and go
//! wherever that template says: they are the template author's own.

use sandcanary_canary::{CanaryConfig, ResolvedTarget};
use sandcanary_judge::JudgeConfig;
use sandcanary_judge::llm::ProviderConfig;
use sandcanary_secret::SecretRef;
use sandcanary_secret::policy::{Policy, PolicyConfigError};
use url::Url;

use crate::tenant_secrets::secret_refs;

/// The only GitHub API base the controller's GitHub credentials are sent to.
pub const GITHUB_API_URL_VAR: &str = "SANDCANARY_GITHUB_API_URL";
/// Comma-separated base URLs the controller's LLM key may be sent to.
pub const LLM_BASE_URLS_VAR: &str = "SANDCANARY_LLM_BASE_URLS";
/// The LLM providers' public endpoints (the judge's defaults and documented bases).
pub const DEFAULT_LLM_BASE_URLS: &[&str] = &[
    "https://api.openai.com/v1",
    "https://generativelanguage.googleapis.com",
];
/// Comma-separated `host` or `host:port` the controller's proxy tokens may be sent to. Unset: none.
pub const PROXY_HOSTS_VAR: &str = "SANDCANARY_PROXY_HOSTS";
/// Comma-separated namespaces besides the AnalysisRun's own whose pod logs any template may read.
pub const POD_LOGS_NAMESPACES_VAR: &str = "SANDCANARY_POD_LOGS_NAMESPACES";

/// The operator's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    pub secrets: Policy,
    pub github_api_url: Url,
    pub llm_base_urls: Vec<Url>,
    pub proxy_hosts: Vec<(String, Option<u16>)>,
    pub pod_logs_namespaces: Vec<String>,
}

/// An operator setting that cannot be used; the message starts with the variable's name.
#[derive(Debug, thiserror::Error)]
pub enum OperatorConfigError {
    #[error(transparent)]
    Policy(#[from] PolicyConfigError),
    #[error("{var}: {why}")]
    Invalid { var: &'static str, why: String },
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("the defaults are valid")
    }
}

impl OperatorConfig {
    pub fn from_env() -> Result<Self, OperatorConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the rules through `get` (an empty value counts as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, OperatorConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let base = |var: &'static str, value: &str| -> Result<Url, OperatorConfigError> {
            let invalid = |why: String| OperatorConfigError::Invalid { var, why };
            let url =
                Url::parse(value).map_err(|e| invalid(format!("{value:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(format!(
                    "{value:?} must be an http(s) URL with a host"
                )));
            }
            if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
                return Err(invalid(format!(
                    "{value:?} must carry no query or credentials"
                )));
            }
            Ok(url)
        };
        let github_api_url = base(
            GITHUB_API_URL_VAR,
            &get(GITHUB_API_URL_VAR).unwrap_or_else(|| sandcanary_github::DEFAULT_API_URL.into()),
        )?;
        let llm = match get(LLM_BASE_URLS_VAR) {
            Some(_) => list(LLM_BASE_URLS_VAR),
            None => DEFAULT_LLM_BASE_URLS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let llm_base_urls = llm
            .iter()
            .map(|u| base(LLM_BASE_URLS_VAR, u))
            .collect::<Result<_, _>>()?;
        let proxy_hosts = list(PROXY_HOSTS_VAR)
            .iter()
            .map(|entry| {
                let url = Url::parse(&format!("http://{entry}"))
                    .ok()
                    .filter(|u| u.path() == "/" && u.username().is_empty())
                    .and_then(|u| Some((u.host_str()?.to_string(), u.port())));
                url.ok_or_else(|| OperatorConfigError::Invalid {
                    var: PROXY_HOSTS_VAR,
                    why: format!("{entry:?} must be a host or host:port"),
                })
            })
            .collect::<Result<_, _>>()?;
        let pod_logs_namespaces = list(POD_LOGS_NAMESPACES_VAR);
        Ok(Self {
            secrets: Policy::from_lookup(|n| get(n))?,
            github_api_url,
            llm_base_urls,
            proxy_hosts,
            pod_logs_namespaces,
        })
    }

    /// Everything that can be checked before any I/O: the operator-level references a template
    /// names, where the controller's GitHub and LLM credentials would go, and whose pod logs would
    /// be read. The message names the key and the rule, never a secret.
    pub fn check(&self, config: &CanaryConfig, namespace: &str) -> Result<(), String> {
        for (path, r) in secret_refs(config) {
            self.secrets.check(r).map_err(|e| format!("{path}: {e}"))?;
        }
        if let JudgeConfig::Llm(llm) = &config.judge {
            let (key, url, field) = match &llm.provider {
                ProviderConfig::Gemini(g) => {
                    (Some(&g.api_key), &g.base_url, "judge.provider.baseUrl")
                }
                ProviderConfig::Openai(o) => {
                    (o.api_key.as_ref(), &o.base_url, "judge.provider.baseUrl")
                }
                ProviderConfig::A2a(a) => (a.token.as_ref(), &a.url, "judge.provider.url"),
            };
            if key.is_some_and(SecretRef::is_operator_level)
                && !self.llm_base_urls.iter().any(|b| within(url, b))
            {
                return Err(format!(
                    "{field}: the controller's LLM key (env/file) is sent only to the base URLs the \
                     operator lists in {LLM_BASE_URLS_VAR} ({}); a template cannot redirect it \
                     (use secretKeyRef for a key of your own)",
                    shown(&self.llm_base_urls)
                ));
            }
        }
        if let Some(gh) = config.github_effective().filter(|g| !g.dry_run) {
            let auth = &gh.auth;
            let mut refs = Vec::new();
            if let Some(e) = &auth.token_env {
                refs.push(("github.auth.tokenEnv", SecretRef::env(e)));
            }
            if let Some(f) = &auth.token_file {
                refs.push(("github.auth.tokenFile", SecretRef::file(f)));
            }
            if let Some(app) = &auth.app {
                if let Some(e) = &app.private_key_env {
                    refs.push(("github.auth.app.privateKeyEnv", SecretRef::env(e)));
                }
                if let Some(f) = &app.private_key_file {
                    refs.push(("github.auth.app.privateKeyFile", SecretRef::file(f)));
                }
            }
            for (path, r) in &refs {
                self.secrets.check(r).map_err(|e| format!("{path}: {e}"))?;
            }
            // GitHub credentials are always the controller's (env/file): they go to one base only.
            if !refs.is_empty() && !within(&gh.api_url, &self.github_api_url) {
                return Err(format!(
                    "github.apiUrl: the controller's GitHub credentials are sent only to the API base \
                     the operator sets in {GITHUB_API_URL_VAR} ({}); a template cannot redirect them",
                    self.github_api_url
                ));
            }
        }
        if let Some(logs) = &config.pod_logs
            && let Some(ns) = &logs.namespace
            && ns != namespace
            && !self.pod_logs_namespaces.iter().any(|n| n == ns)
        {
            return Err(format!(
                "podLogs.namespace: a template reads pod logs only in its AnalysisRun's namespace \
                 ({namespace}) and the namespaces the operator lists in {POD_LOGS_NAMESPACES_VAR}"
            ));
        }
        Ok(())
    }

    /// The controller's proxy tokens (env/file) go only to the operator's proxy hosts: the session
    /// API token to both admin URLs, the identity token to both data URLs.
    pub fn check_targets(
        &self,
        config: &CanaryConfig,
        stable: &ResolvedTarget,
        canary: &ResolvedTarget,
    ) -> Result<(), String> {
        for (path, r, urls) in [
            (
                "sessionApiToken",
                &config.session_api_token,
                [
                    ("stable.adminUrl", &stable.admin_url),
                    ("canary.adminUrl", &canary.admin_url),
                ],
            ),
            (
                "identityToken",
                &config.identity_token,
                [
                    ("stable.dataUrl", &stable.data_url),
                    ("canary.dataUrl", &canary.data_url),
                ],
            ),
        ] {
            if !r.is_operator_level() {
                continue;
            }
            for (target, url) in urls {
                if !self.proxy_host_allowed(url) {
                    return Err(format!(
                        "{path}: the controller's own tokens (env/file) are sent only to the proxy \
                         hosts the operator lists in {PROXY_HOSTS_VAR} ({}); {target} is not one \
                         (use secretKeyRef for tokens of your own)",
                        if self.proxy_hosts.is_empty() {
                            "none".to_string()
                        } else {
                            self.proxy_hosts
                                .iter()
                                .map(|(h, p)| p.map_or(h.clone(), |p| format!("{h}:{p}")))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    fn proxy_host_allowed(&self, url: &str) -> bool {
        let Ok(url) = Url::parse(url) else {
            return false;
        };
        let (Some(host), port) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.proxy_hosts
            .iter()
            .any(|(h, p)| h.eq_ignore_ascii_case(host) && p.is_none_or(|p| Some(p) == port))
    }
}

/// Whether `url` lies under `base`: same scheme, host and port, and a path at or below base's.
fn within(url: &str, base: &Url) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return false;
    }
    let root = base.path().trim_end_matches('/');
    let path = url.path();
    path.trim_end_matches('/') == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn shown(urls: &[Url]) -> String {
    if urls.is_empty() {
        return "none".into();
    }
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> CanaryConfig {
        let mut v = json!({
            "stable": {"dataUrl": "ws://stable.proxy:9000", "adminUrl": "http://stable.proxy:9090"},
            "canary": {"dataUrl": "ws://canary.proxy:9000", "adminUrl": "http://canary.proxy:9090"},
            "sessionApiToken": {"secretKeyRef": {"name": "t", "key": "admin"}},
            "identityToken": {"secretKeyRef": {"name": "t", "key": "identity"}}
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        CanaryConfig::from_value(v).unwrap()
    }

    fn targets(c: &CanaryConfig) -> (ResolvedTarget, ResolvedTarget) {
        c.resolve_targets(&Default::default()).unwrap()
    }

    fn llm(provider: serde_json::Value) -> serde_json::Value {
        json!({"judge": {"type": "llm", "provider": provider}})
    }

    #[test]
    fn the_controllers_environment_and_files_are_out_of_reach_by_default() {
        let op = OperatorConfig::default();
        for (extra, path, rule) in [
            (
                json!({"sessionApiToken": {"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}}),
                "sessionApiToken",
                "service-account",
            ),
            (
                json!({"identityToken": {"file": "/etc/shadow"}}),
                "identityToken",
                "SANDCANARY_SECRET_DIRS",
            ),
            (
                json!({"identityToken": {"env": "AWS_SECRET_ACCESS_KEY"}}),
                "identityToken",
                "SANDCANARY_SECRET_ENV",
            ),
        ] {
            let e = op.check(&config(extra), "team-a").unwrap_err();
            assert!(e.starts_with(path) && e.contains(rule), "{e}");
        }
    }

    #[test]
    fn the_controllers_proxy_tokens_go_only_to_the_operators_hosts() {
        let c = config(json!({"sessionApiToken": {"env": "SANDCANARY_ADMIN_TOKEN"}}));
        let (s, k) = targets(&c);
        // The variable itself must be allowed first, then the destination.
        let op = OperatorConfig::from_lookup(|n| match n {
            "SANDCANARY_SECRET_ENV" => Some("SANDCANARY_ADMIN_TOKEN".into()),
            _ => None,
        })
        .unwrap();
        assert!(op.check(&c, "ns").is_ok());
        let e = op.check_targets(&c, &s, &k).unwrap_err();
        assert!(
            e.contains(PROXY_HOSTS_VAR) && e.contains("stable.adminUrl"),
            "{e}"
        );
        let op = OperatorConfig::from_lookup(|n| match n {
            "SANDCANARY_SECRET_ENV" => Some("SANDCANARY_ADMIN_TOKEN".into()),
            "SANDCANARY_PROXY_HOSTS" => Some("stable.proxy:9090, canary.proxy".into()),
            _ => None,
        })
        .unwrap();
        assert!(op.check_targets(&c, &s, &k).is_ok());
        let evil = config(json!({
            "sessionApiToken": {"env": "SANDCANARY_ADMIN_TOKEN"},
            "canary": {"dataUrl": "ws://canary.proxy:9000", "adminUrl": "http://attacker.example:9090"}
        }));
        let (s, k) = targets(&evil);
        assert!(
            op.check_targets(&evil, &s, &k)
                .unwrap_err()
                .contains("canary.adminUrl")
        );
        // The template's own tokens go where the template says.
        let own = config(json!({}));
        let (s, k) = targets(&own);
        assert!(
            OperatorConfig::default()
                .check_targets(&own, &s, &k)
                .is_ok()
        );
    }

    #[test]
    fn the_llm_key_and_github_token_cannot_be_redirected() {
        let op = OperatorConfig::default();
        let ok = config(llm(
            json!({"type": "openai", "baseUrl": "https://api.openai.com/v1", "model": "m",
                                   "apiKey": {"env": "SANDCANARY_LLM_API_KEY"}}),
        ));
        assert!(op.check(&ok, "ns").is_ok());
        for base in [
            "https://attacker.example/v1",
            "https://api.openai.com.attacker.example/v1",
            "http://api.openai.com/v1",
            "https://api.openai.com/v1beta/../x",
        ] {
            let c = config(llm(json!({"type": "openai", "baseUrl": base, "model": "m",
                                      "apiKey": {"env": "SANDCANARY_LLM_API_KEY"}})));
            let e = op.check(&c, "ns").unwrap_err();
            assert!(
                e.starts_with("judge.provider.baseUrl") && e.contains(LLM_BASE_URLS_VAR),
                "{base}: {e}"
            );
        }
        // A key of the template's own goes to the template's endpoint.
        let own = config(llm(
            json!({"type": "a2a", "url": "https://agent.team-a.example/",
                                    "token": {"secretKeyRef": {"name": "llm", "key": "token"}}}),
        ));
        assert!(op.check(&own, "ns").is_ok());

        let gh = |api: &str| {
            config(json!({"github": {"owner": "o", "repo": "r", "apiUrl": api,
                                                      "auth": {"tokenEnv": "GITHUB_TOKEN"}}}))
        };
        assert!(op.check(&gh("https://api.github.com"), "ns").is_ok());
        let e = op.check(&gh("https://attacker.example"), "ns").unwrap_err();
        assert!(
            e.starts_with("github.apiUrl") && e.contains(GITHUB_API_URL_VAR),
            "{e}"
        );
        let e = op
            .check(
                &config(json!({"github": {"owner": "o", "repo": "r",
                                             "auth": {"tokenFile": "/etc/shadow"}}})),
                "ns",
            )
            .unwrap_err();
        assert!(e.starts_with("github.auth.tokenFile"), "{e}");
        // A dry run sends nothing.
        let dry = config(json!({"dryRun": true, "github": {"owner": "o", "repo": "r",
                               "apiUrl": "https://attacker.example", "auth": {"tokenEnv": "GITHUB_TOKEN"}}}));
        assert!(op.check(&dry, "ns").is_ok());
    }

    #[test]
    fn pod_logs_stay_in_the_runs_namespace_unless_the_operator_adds_one() {
        let c = config(json!({
            "judge": {"type": "llm", "provider": {"type": "a2a", "url": "http://127.0.0.1:1/"}},
            "podLogs": {"stableSelector": "a=b", "canarySelector": "a=c", "namespace": "team-b"}
        }));
        assert!(OperatorConfig::default().check(&c, "team-b").is_ok());
        let e = OperatorConfig::default().check(&c, "team-a").unwrap_err();
        assert!(e.starts_with("podLogs.namespace"), "{e}");
        let op = OperatorConfig::from_lookup(|n| {
            (n == POD_LOGS_NAMESPACES_VAR).then(|| "team-b".to_string())
        })
        .unwrap();
        assert!(op.check(&c, "team-a").is_ok());
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (var, value) in [
            (GITHUB_API_URL_VAR, "not a url"),
            (LLM_BASE_URLS_VAR, "ftp://x"),
            (PROXY_HOSTS_VAR, "host/path"),
            ("SANDCANARY_SECRET_DIRS", "relative"),
        ] {
            let e =
                OperatorConfig::from_lookup(|n| (n == var).then(|| value.to_string())).unwrap_err();
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }
}
