//! The operator's rules for operator-level references (`env`, `file`).
//!
//! The plugin runs inside the Argo Rollouts controller, which serves every namespace: without
//! rules, any template author could name the controller's service-account token or the
//! organisation's API keys and have them sent to a host of their choosing. So a template may name
//! only the environment variables and directories the operator lists in the controller's own
//! environment ([`ENV_VAR`], [`DIRS_VAR`]); templates cannot change these.

use std::path::{Component, Path, PathBuf};

use crate::{SecretRef, Source};

/// Comma-separated variable names a template may name; `PREFIX_*` allows a prefix; `none`
/// allows none. Unset: [`DEFAULT_ENV`].
pub const ENV_VAR: &str = "SANDCANARY_SECRET_ENV";
/// Comma-separated absolute directories whose files a template may name. Unset: none.
pub const DIRS_VAR: &str = "SANDCANARY_SECRET_DIRS";
/// The variables deploy/argo-rollouts/ gives the controller for the plugin.
pub const DEFAULT_ENV: &[&str] = &["GITHUB_TOKEN", "SANDCANARY_LLM_API_KEY"];
/// The controller's own Kubernetes credentials: never readable through a template, whatever the
/// operator allows.
pub const FORBIDDEN_DIRS: &[&str] = &[
    "/var/run/secrets/kubernetes.io",
    "/run/secrets/kubernetes.io",
];

/// Which `env` and `file` references templates may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    env_names: Vec<String>,
    env_prefixes: Vec<String>,
    dirs: Vec<PathBuf>,
}

/// A setting of the operator's rules that cannot be used; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {why}")]
pub struct PolicyConfigError {
    pub var: &'static str,
    pub why: String,
}

/// Why a template's reference is refused: names the rule, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl Default for Policy {
    fn default() -> Self {
        Self {
            env_names: DEFAULT_ENV.iter().map(|s| s.to_string()).collect(),
            env_prefixes: Vec::new(),
            dirs: Vec::new(),
        }
    }
}

impl Policy {
    /// Reads the rules from the process environment.
    pub fn from_env() -> Result<Self, PolicyConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the rules through `get` (an empty value counts as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyConfigError> {
        let mut policy = Self::default();
        let get = |name| get(name).filter(|v| !v.trim().is_empty());
        if let Some(list) = get(ENV_VAR) {
            policy.env_names.clear();
            if list.trim() != "none" {
                for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    match entry.strip_suffix('*') {
                        Some(prefix) if crate::is_env_name(prefix) => {
                            policy.env_prefixes.push(prefix.to_string())
                        }
                        None if crate::is_env_name(entry) => {
                            policy.env_names.push(entry.to_string())
                        }
                        _ => {
                            return Err(PolicyConfigError {
                                var: ENV_VAR,
                                why: format!(
                                    "{entry:?} is neither a variable name nor a PREFIX_* pattern"
                                ),
                            });
                        }
                    }
                }
            }
        }
        if let Some(list) = get(DIRS_VAR) {
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let dir = PathBuf::from(entry);
                if !is_plain_absolute(&dir) || dir == Path::new("/") {
                    return Err(PolicyConfigError {
                        var: DIRS_VAR,
                        why: format!(
                            "{entry:?} must be an absolute directory other than / without . or .."
                        ),
                    });
                }
                policy.dirs.push(dir);
            }
        }
        Ok(policy)
    }

    /// Allows exactly these variables and directories (tests, embedding).
    pub fn new(env_names: &[&str], env_prefixes: &[&str], dirs: &[&Path]) -> Self {
        Self {
            env_names: env_names.iter().map(|s| s.to_string()).collect(),
            env_prefixes: env_prefixes.iter().map(|s| s.to_string()).collect(),
            dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        }
    }

    /// Whether a template may use `r`. Tenant-level references (`secretKeyRef`, `arg`) are always
    /// allowed here: they only reach the AnalysisRun's own namespace.
    pub fn check(&self, r: &SecretRef) -> Result<(), Refusal> {
        match r.source() {
            Ok(Source::Env(name)) => self.check_env(name),
            Ok(Source::File(path)) => self.check_file(path),
            _ => Ok(()),
        }
    }

    fn check_env(&self, name: &str) -> Result<(), Refusal> {
        if self.env_names.iter().any(|n| n == name)
            || self
                .env_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()))
        {
            return Ok(());
        }
        Err(Refusal(format!(
            "env references are limited to the variables the operator lists in {ENV_VAR} \
             (allowed: {}); use secretKeyRef for a Secret in the AnalysisRun's namespace",
            self.env_allowed()
        )))
    }

    fn check_file(&self, path: &Path) -> Result<(), Refusal> {
        let outside = || {
            Refusal(format!(
                "file references are limited to the directories the operator lists in {DIRS_VAR} \
                 (allowed: {}); use secretKeyRef for a Secret in the AnalysisRun's namespace",
                self.dirs_allowed()
            ))
        };
        if !is_plain_absolute(path) {
            return Err(Refusal(
                "file references must be absolute paths without . or .. components".into(),
            ));
        }
        // Checked on the path as written and, where it exists, with symlinks resolved: a link
        // inside an allowed directory must not lead out of it.
        let forbidden = |p: &Path| {
            FORBIDDEN_DIRS.iter().any(|d| {
                p.starts_with(d) || std::fs::canonicalize(d).is_ok_and(|c| p.starts_with(c))
            })
        };
        let real = std::fs::canonicalize(path).ok();
        if forbidden(path) || real.as_deref().is_some_and(forbidden) {
            return Err(Refusal(
                "file references never reach the controller's Kubernetes service-account \
                 credentials"
                    .into(),
            ));
        }
        let inside = |p: &Path| {
            self.dirs.iter().any(|d| {
                p.starts_with(d) || std::fs::canonicalize(d).is_ok_and(|c| p.starts_with(c))
            })
        };
        if !inside(path) || real.as_deref().is_some_and(|r| !inside(r)) {
            return Err(outside());
        }
        Ok(())
    }

    fn env_allowed(&self) -> String {
        let all: Vec<String> = self
            .env_names
            .iter()
            .cloned()
            .chain(self.env_prefixes.iter().map(|p| format!("{p}*")))
            .collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }

    fn dirs_allowed(&self) -> String {
        if self.dirs.is_empty() {
            return "none".into();
        }
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(", ")
    }
}

fn is_plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn by_default_only_the_shipped_variables_and_no_files_are_allowed() {
        let p = Policy::from_lookup(lookup(&[])).unwrap();
        assert!(p.check(&SecretRef::env("GITHUB_TOKEN")).is_ok());
        assert!(p.check(&SecretRef::env("SANDCANARY_LLM_API_KEY")).is_ok());
        let e = p
            .check(&SecretRef::env("AWS_SECRET_ACCESS_KEY"))
            .unwrap_err();
        assert!(e.0.contains(ENV_VAR) && e.0.contains("secretKeyRef"), "{e}");
        assert!(
            !e.0.contains("AWS_SECRET"),
            "names the rule, not the reference: {e}"
        );
        for path in [
            "/etc/shadow",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/run/secrets/kubernetes.io/serviceaccount/token",
        ] {
            let e = p.check(&SecretRef::file(path)).unwrap_err();
            assert!(e.0.contains("file references"), "{path}: {e}");
        }
        assert!(p.check(&SecretRef::secret_key_ref("t", "k")).is_ok());
        assert!(p.check(&SecretRef::arg("token")).is_ok());
    }

    #[test]
    fn the_operator_lists_names_prefixes_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("plugin-secrets");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("token"), "t").unwrap();
        let outside = dir.path().join("other");
        std::fs::write(&outside, "t").unwrap();
        // A link inside the allowed directory that leads out of it.
        std::os::unix::fs::symlink(&outside, allowed.join("escape")).unwrap();
        let p = Policy::new(&["ONE"], &["TEAM_"], &[&allowed]);
        assert!(p.check(&SecretRef::env("ONE")).is_ok());
        assert!(p.check(&SecretRef::env("TEAM_A_TOKEN")).is_ok());
        assert!(p.check(&SecretRef::env("GITHUB_TOKEN")).is_err());
        assert!(p.check(&SecretRef::file(allowed.join("token"))).is_ok());
        assert!(p.check(&SecretRef::file(allowed.join("missing"))).is_ok());
        assert!(p.check(&SecretRef::file(&outside)).is_err());
        assert!(p.check(&SecretRef::file(allowed.join("escape"))).is_err());
        assert!(p.check(&SecretRef::file(allowed.join("../other"))).is_err());
        assert!(p.check(&SecretRef::file("token")).is_err(), "relative");
    }

    #[test]
    fn the_service_account_is_refused_even_inside_an_allowed_directory() {
        let p = Policy::new(&[], &[], &[Path::new("/var/run/secrets")]);
        let e = p
            .check(&SecretRef::file(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ))
            .unwrap_err();
        assert!(e.0.contains("service-account"), "{e}");
    }

    #[test]
    fn settings_are_parsed_and_bad_ones_name_the_variable() {
        let p = Policy::from_lookup(lookup(&[(ENV_VAR, "none")])).unwrap();
        assert!(p.check(&SecretRef::env("GITHUB_TOKEN")).is_err());
        let p = Policy::from_lookup(lookup(&[(ENV_VAR, "A, B_*"), (DIRS_VAR, "/etc/sc")])).unwrap();
        assert_eq!(p, Policy::new(&["A"], &["B_"], &[Path::new("/etc/sc")]));
        for (var, value) in [
            (ENV_VAR, "A-B"),
            (ENV_VAR, "*"),
            (DIRS_VAR, "relative/dir"),
            (DIRS_VAR, "/"),
            (DIRS_VAR, "/etc/../root"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([(var, value)]));
            let e = Policy::from_lookup(lookup(pairs)).unwrap_err();
            assert_eq!(e.var, var, "{value}: {e}");
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }
}
