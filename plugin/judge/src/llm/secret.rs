//! API keys: named in configuration by environment variable or file, never inlined, never logged.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a secret comes from. Exactly one of `env` or `file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of an environment variable holding the secret.
    pub env: Option<String>,
    /// Path of a file holding the secret (e.g. a mounted Kubernetes Secret); trailing
    /// whitespace is trimmed.
    pub file: Option<PathBuf>,
}

/// Why a secret could not be read. Never contains the secret itself.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret reference must name exactly one of `env` or `file`")]
    Ambiguous,
    #[error("environment variable {0} is not set or empty")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {why}")]
    File { path: String, why: String },
    #[error("secret file {0} is empty")]
    EmptyFile(String),
}

/// A secret value whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for building an auth header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl SecretRef {
    pub fn check(&self) -> Result<(), SecretError> {
        match (&self.env, &self.file) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(SecretError::Ambiguous),
        }
    }

    /// Reads the secret now (files are re-read on every call so rotated Secrets are picked up).
    pub fn load(&self) -> Result<Secret, SecretError> {
        self.check()?;
        if let Some(var) = &self.env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
                _ => Err(SecretError::MissingEnv(var.clone())),
            };
        }
        let path = self.file.as_ref().expect("checked above");
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            path: shown.clone(),
            why: e.kind().to_string(),
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::EmptyFile(shown));
        }
        Ok(Secret(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The success path of `env`, using a variable every test process has (setting one would
    /// race with other test threads reading the environment).
    #[test]
    fn env_secret_is_read() {
        let expected = std::env::var("PATH").expect("PATH is set for cargo test");
        let r = SecretRef {
            env: Some("PATH".into()),
            file: None,
        };
        assert_eq!(r.load().unwrap().expose(), expected.trim());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?}").contains("sk-very"));
    }

    #[test]
    fn file_secret_is_trimmed_and_errors_name_no_value() {
        let dir = std::env::temp_dir().join(format!("judge-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, "abc123\n").unwrap();
        let r = SecretRef {
            env: None,
            file: Some(path.clone()),
        };
        assert_eq!(r.load().unwrap().expose(), "abc123");
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(r.load(), Err(SecretError::EmptyFile(_))));
        let both = SecretRef {
            env: Some("X".into()),
            file: Some(path),
        };
        assert_eq!(both.load(), Err(SecretError::Ambiguous));
        let missing = SecretRef {
            env: Some("SANDCANARY_JUDGE_TEST_UNSET_VAR".into()),
            file: None,
        };
        assert!(matches!(missing.load(), Err(SecretError::MissingEnv(_))));
        std::fs::remove_dir_all(dir).ok();
    }
}
