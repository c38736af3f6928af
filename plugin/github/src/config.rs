//! Settings for GitHub reports, as they appear in the plugin's JSON config.
//!
//! The config names where secrets live (an env var or a file), never the secrets themselves, so that
//! the AnalysisTemplate can be shared and logged safely.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::GithubConfigError;

/// The public GitHub REST endpoint; GitHub Enterprise and tests point `apiUrl` elsewhere.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// GitHub's own best-practice floor between two mutating requests.
pub const MIN_MUTATION_INTERVAL: Duration = Duration::from_secs(1);

/// GitHub rejects label names longer than this.
const MAX_LABEL_CHARS: usize = 50;
/// GitHub accepts at most this many assignees on one issue.
const MAX_ASSIGNEES: usize = 10;
/// Caller-supplied labels beyond this are almost certainly a mistake in the template.
const MAX_LABELS: usize = 20;

/// `$id` of [`config_schema`].
pub const CONFIG_SCHEMA_ID: &str = "https://example.invalid/sandcanary/github-config.schema.json";

/// The JSON Schema of [`GithubConfig`], derived from the type (schema/github-config.schema.json is
/// this, written by a test). Rules across fields (credentials unless `dryRun`) are checked by
/// [`GithubConfig::validate`] only.
pub fn config_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(GithubConfig);
    schema.insert("$id".into(), CONFIG_SCHEMA_ID.into());
    schema.to_value()
}

/// Where failed canary verdicts are filed and how. Secrets are named (env var or file), never
/// inlined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "sandcanary GitHub report settings")]
pub struct GithubConfig {
    /// Repository owner (user or organisation).
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,100}$"))]
    pub owner: String,
    /// Repository name.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,100}$"))]
    pub repo: String,
    /// REST API base URL.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Extra labels on every new issue (the fingerprint label is always added).
    #[serde(default)]
    #[schemars(length(max = MAX_LABELS), inner(length(min = 1, max = MAX_LABEL_CHARS)))]
    pub labels: Vec<String>,
    /// Logins assigned to every new issue, e.g. a coding agent's account.
    #[serde(default)]
    #[schemars(length(max = MAX_ASSIGNEES))]
    pub assignees: Vec<String>,
    /// Render the issue but send nothing; needs no credentials.
    #[serde(default)]
    pub dry_run: bool,
    /// Where the credentials come from.
    #[serde(default)]
    pub auth: AuthConfig,
    /// What to do when the only issue with this fingerprint is closed.
    #[serde(default)]
    pub closed_match: ClosedMatch,
    /// What to do with the Rollout's open issues when a later analysis passes on a newer canary
    /// revision.
    #[serde(default)]
    pub on_recovery: OnRecovery,
    /// Pacing and retry limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Policy for the open issues of a Rollout whose newer canary revision passed its analysis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnRecovery {
    /// Comment on each open issue (which revision passed, the new table) and leave it open.
    #[default]
    Comment,
    /// Comment as above, then close the issue as completed.
    Close,
    /// Leave the issues alone.
    None,
}

/// Policy for a regression whose earlier issue was closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ClosedMatch {
    /// Open a new issue that links to the closed one (someone decided the old one was done).
    #[default]
    Link,
    /// Reopen the closed issue and comment on it.
    Reopen,
}

/// Names the secret's location; exactly one of a token source or `app` is required unless dry run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(inline)]
pub struct AuthConfig {
    /// Name of an environment variable holding a personal access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Path of a file holding a personal access token (e.g. a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// GitHub App installation credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppAuthConfig>,
}

/// A GitHub App installation; the private key comes from a file or an env var.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(inline)]
pub struct AppAuthConfig {
    /// The App's numeric id.
    #[schemars(range(min = 1))]
    pub app_id: u64,
    /// The installation's numeric id in the target account.
    #[schemars(range(min = 1))]
    pub installation_id: u64,
    /// Path of the App's PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_env: Option<String>,
}

/// Pacing and retry limits; the defaults follow GitHub's published REST best practices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[schemars(inline)]
pub struct Limits {
    /// Pause between two mutating requests, in ms; values under 1000 are rejected.
    #[schemars(range(min = 1000))]
    pub min_mutation_interval_ms: u64,
    /// Deadline of one request, in ms; a create that misses it is treated as possibly accepted.
    #[schemars(range(min = 1))]
    pub request_timeout_ms: u64,
    /// Tries per request before giving up.
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: u32,
    /// Longest wait the reporter accepts (Retry-After, reset time); longer means give up now.
    pub max_wait_ms: u64,
    /// Wait after a rate-limit answer that says nothing about when to come back (GitHub: >= 1 min).
    pub rate_limit_fallback_ms: u64,
    /// First back-off after a 5xx, timeout or transport error; doubles on each try.
    pub retry_backoff_ms: u64,
    /// Mutating requests allowed per rolling hour, far under GitHub's 500/h content limit.
    #[schemars(range(min = 1, max = 400))]
    pub max_mutations_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_mutation_interval_ms: 1_000,
            request_timeout_ms: 30_000,
            max_attempts: 4,
            max_wait_ms: 120_000,
            rate_limit_fallback_ms: 60_000,
            retry_backoff_ms: 2_000,
            max_mutations_per_hour: 60,
        }
    }
}

impl Limits {
    pub(crate) fn min_mutation_interval(&self) -> Duration {
        Duration::from_millis(self.min_mutation_interval_ms)
    }
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub(crate) fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
    pub(crate) fn rate_limit_fallback(&self) -> Duration {
        Duration::from_millis(self.rate_limit_fallback_ms)
    }
    pub(crate) fn retry_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_ms)
    }
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_string()
}

impl GithubConfig {
    /// A config for `owner/repo` with every other setting at its default.
    pub fn new(owner: impl Into<String>, repo: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            repo: repo.into(),
            api_url: default_api_url(),
            labels: Vec::new(),
            assignees: Vec::new(),
            dry_run: false,
            auth: AuthConfig::default(),
            closed_match: ClosedMatch::default(),
            on_recovery: OnRecovery::default(),
            limits: Limits::default(),
        }
    }

    /// Checks everything that can be checked without touching the network or the secrets.
    pub fn validate(&self) -> Result<(), GithubConfigError> {
        check_repo_part("owner", &self.owner)?;
        check_repo_part("repo", &self.repo)?;
        let url = url::Url::parse(&self.api_url).map_err(|e| GithubConfigError::Invalid {
            field: "apiUrl",
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(GithubConfigError::Invalid {
                field: "apiUrl",
                reason: "must be an http(s) URL with a host".into(),
            });
        }
        if self.labels.len() > MAX_LABELS {
            return Err(GithubConfigError::Invalid {
                field: "labels",
                reason: format!("at most {MAX_LABELS} labels"),
            });
        }
        for label in &self.labels {
            let trimmed = label.trim();
            if trimmed.is_empty() || trimmed.chars().count() > MAX_LABEL_CHARS {
                return Err(GithubConfigError::Invalid {
                    field: "labels",
                    reason: format!("each label must have 1 to {MAX_LABEL_CHARS} characters"),
                });
            }
            if trimmed.contains(',') || trimmed.chars().any(char::is_control) {
                return Err(GithubConfigError::Invalid {
                    field: "labels",
                    reason: "labels may not contain commas or control characters".into(),
                });
            }
        }
        if self.assignees.len() > MAX_ASSIGNEES {
            return Err(GithubConfigError::Invalid {
                field: "assignees",
                reason: format!("at most {MAX_ASSIGNEES} assignees"),
            });
        }
        for login in &self.assignees {
            if !is_login(login) {
                return Err(GithubConfigError::Invalid {
                    field: "assignees",
                    reason: "each assignee must be a GitHub login (letters, digits, '-', '[bot]' suffix)".into(),
                });
            }
        }
        self.check_limits()?;
        if !self.dry_run {
            self.auth.check_shape()?;
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), GithubConfigError> {
        let l = &self.limits;
        if l.min_mutation_interval() < MIN_MUTATION_INTERVAL {
            return Err(GithubConfigError::Invalid {
                field: "limits.minMutationIntervalMs",
                reason: "GitHub asks for at least 1000 ms between mutating requests".into(),
            });
        }
        if l.request_timeout_ms == 0 {
            return Err(GithubConfigError::Invalid {
                field: "limits.requestTimeoutMs",
                reason: "must be positive".into(),
            });
        }
        if l.max_attempts == 0 || l.max_attempts > 10 {
            return Err(GithubConfigError::Invalid {
                field: "limits.maxAttempts",
                reason: "must be between 1 and 10".into(),
            });
        }
        if l.max_mutations_per_hour == 0 || l.max_mutations_per_hour > 400 {
            return Err(GithubConfigError::Invalid {
                field: "limits.maxMutationsPerHour",
                reason:
                    "must be between 1 and 400 (GitHub allows 500 content writes per hour in total)"
                        .into(),
            });
        }
        Ok(())
    }
}

impl AuthConfig {
    fn check_shape(&self) -> Result<(), GithubConfigError> {
        let token = self.token_env.is_some() || self.token_file.is_some();
        match (&self.app, token) {
            (Some(_), true) => Err(GithubConfigError::Invalid {
                field: "auth",
                reason: "set either a token (tokenEnv / tokenFile) or app, not both".into(),
            }),
            (None, false) => Err(GithubConfigError::Invalid {
                field: "auth",
                reason: "no credentials: set auth.tokenEnv, auth.tokenFile or auth.app (or dryRun)"
                    .into(),
            }),
            (None, true) if self.token_env.is_some() && self.token_file.is_some() => {
                Err(GithubConfigError::Invalid {
                    field: "auth",
                    reason: "set tokenEnv or tokenFile, not both".into(),
                })
            }
            (Some(app), false) => match (&app.private_key_file, &app.private_key_env) {
                (Some(_), None) | (None, Some(_)) => Ok(()),
                _ => Err(GithubConfigError::Invalid {
                    field: "auth.app",
                    reason: "set exactly one of privateKeyFile or privateKeyEnv".into(),
                }),
            },
            (None, true) => Ok(()),
        }
    }
}

/// Owner and repository names: GitHub allows letters, digits, '-', '_' and '.'.
fn check_repo_part(field: &'static str, value: &str) -> Result<(), GithubConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(GithubConfigError::Invalid {
            field,
            reason: "must be 1-100 characters of letters, digits, '-', '_' or '.'".into(),
        })
    }
}

/// GitHub logins are alphanumeric with single hyphens; Apps appear as `name[bot]`.
fn is_login(login: &str) -> bool {
    let name = login.strip_suffix("[bot]").unwrap_or(login);
    !name.is_empty()
        && name.len() <= 39
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> GithubConfig {
        let mut c = GithubConfig::new("acme", "proxy");
        c.auth.token_env = Some("GITHUB_TOKEN".into());
        c
    }

    #[test]
    fn defaults_follow_github_best_practice() {
        let l = Limits::default();
        assert_eq!(l.min_mutation_interval(), Duration::from_secs(1));
        assert!(l.rate_limit_fallback() >= Duration::from_secs(60));
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn parses_camel_case_and_rejects_unknown_keys() {
        let json = r#"{"owner":"acme","repo":"proxy","labels":["perf"],"assignees":["copilot-swe-agent[bot]"],
            "dryRun":true,"closedMatch":"reopen","onRecovery":"close","limits":{"maxAttempts":2}}"#;
        let c: GithubConfig = serde_json::from_str(json).unwrap();
        assert!(c.dry_run);
        assert_eq!(c.limits.max_attempts, 2);
        assert_eq!(c.closed_match, ClosedMatch::Reopen);
        assert_eq!(c.on_recovery, OnRecovery::Close);
        assert_eq!(GithubConfig::new("a", "b").on_recovery, OnRecovery::Comment);
        let err = serde_json::from_str::<GithubConfig>(
            r#"{"owner":"a","repo":"b","onRecovery":"reopen"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `reopen`"),
            "{err}"
        );
        assert_eq!(GithubConfig::new("a", "b").closed_match, ClosedMatch::Link);
        assert_eq!(c.limits.min_mutation_interval_ms, 1000);
        assert_eq!(c.api_url, DEFAULT_API_URL);
        c.validate().unwrap();

        let err = serde_json::from_str::<GithubConfig>(r#"{"owner":"a","repo":"b","token":"x"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `token`"), "{err}");
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        type Mutation = fn(&mut GithubConfig);
        let cases: Vec<(Mutation, &str)> = vec![
            (|c| c.owner = "a/b".into(), "owner"),
            (|c| c.repo = String::new(), "repo"),
            (|c| c.api_url = "ftp://x".into(), "apiUrl"),
            (|c| c.labels = vec!["x".repeat(51)], "labels"),
            (|c| c.labels = vec!["a,b".into()], "labels"),
            (|c| c.assignees = vec!["@someone".into()], "assignees"),
            (
                |c| c.limits.min_mutation_interval_ms = 999,
                "limits.minMutationIntervalMs",
            ),
            (|c| c.limits.max_attempts = 0, "limits.maxAttempts"),
            (|c| c.auth = AuthConfig::default(), "auth"),
            (
                |c| c.auth.token_file = Some("/run/secrets/token".into()),
                "auth",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = valid();
            mutate(&mut c);
            match c.validate() {
                Err(GithubConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
    }

    /// schema/github-config.schema.json is exactly what the type derives; with
    /// `SANDCANARY_WRITE_SCHEMAS=1` the test writes it instead (`make schemas`).
    #[test]
    fn schema_file_is_derived_from_the_type() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/github-config.schema.json"
        );
        let derived = serde_json::to_string_pretty(&super::config_schema()).unwrap() + "\n";
        if std::env::var_os("SANDCANARY_WRITE_SCHEMAS").is_some() {
            std::fs::write(path, &derived).unwrap();
        }
        let file = std::fs::read_to_string(path).unwrap();
        assert!(
            file == derived,
            "{path} is not what GithubConfig derives: run `make schemas` and commit the result"
        );
    }

    /// The published JSON Schema and the serde names must agree, key for key.
    #[test]
    fn schema_matches_the_config_type() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../schema/github-config.schema.json")).unwrap();
        let mut full = valid();
        full.auth = AuthConfig {
            token_env: Some("T".into()),
            token_file: Some("/t".into()),
            app: Some(AppAuthConfig {
                app_id: 1,
                installation_id: 2,
                private_key_file: Some("/k".into()),
                private_key_env: Some("K".into()),
            }),
        };
        let value = serde_json::to_value(&full).unwrap();
        fn keys(v: &serde_json::Value) -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        }
        let props = |path: &[&str]| {
            let mut node = &schema;
            for p in path {
                node = &node["properties"][*p];
            }
            keys(&node["properties"])
        };
        assert_eq!(props(&[]), keys(&value));
        assert_eq!(props(&["auth"]), keys(&value["auth"]));
        assert_eq!(props(&["auth", "app"]), keys(&value["auth"]["app"]));
        assert_eq!(props(&["limits"]), keys(&value["limits"]));
        let defaults = &schema["properties"]["limits"]["properties"];
        for (key, v) in value["limits"].as_object().unwrap() {
            assert_eq!(&defaults[key]["default"], v, "default of limits.{key}");
        }
    }

    #[test]
    fn dry_run_needs_no_credentials() {
        let mut c = GithubConfig::new("acme", "proxy");
        c.dry_run = true;
        c.validate().unwrap();
    }

    #[test]
    fn app_needs_exactly_one_key_source() {
        let mut c = GithubConfig::new("acme", "proxy");
        c.auth.app = Some(AppAuthConfig {
            app_id: 1,
            installation_id: 2,
            private_key_file: None,
            private_key_env: None,
        });
        assert!(c.validate().is_err());
        c.auth.app.as_mut().unwrap().private_key_env = Some("KEY".into());
        c.validate().unwrap();
    }
}
