//! Secret references in the plugin's configuration, one definition for every crate that sends a
//! secret somewhere (the proxies' tokens, the LLM key, …).
//!
//! A reference says where a secret lives, never what it is, so templates can be shared and
//! logged. Two kinds exist, and they are trusted differently (see [`policy`]):
//! - **operator-level**: `env` (a variable of the controller's process) and `file` (a file the
//!   controller can read). Whoever writes a template could name any of them, so the operator's
//!   [`policy::Policy`] decides which ones a template may use at all.
//! - **tenant-level**: `secretKeyRef` (a Secret in the AnalysisRun's own namespace, read through
//!   the Kubernetes API) and `arg` (an AnalysisRun argument that Argo resolved from
//!   `valueFrom.secretKeyRef` in that namespace). These are the template author's own secrets.
//!
//! Tenant-level references need the Kubernetes API or the AnalysisRun, which this crate does not
//! know: the plugin resolves them first ([`SecretRef::resolved`]) and [`SecretRef::load`] then
//! hands out the value it was given.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
pub use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub mod policy;

/// Where a secret comes from: exactly one of the four fields. `env` and `file` only within what
/// the operator allows (`SANDCANARY_SECRET_ENV`, `SANDCANARY_SECRET_DIRS`).
#[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "secret", extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SecretRef {
    /// An environment variable of the controller (operator-level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env: Option<String>,
    /// A file the controller can read (operator-level); trailing whitespace is trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub file: Option<PathBuf>,
    /// A key of a Secret in the AnalysisRun's own namespace (there is no namespace field: a
    /// template cannot name another namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// An AnalysisRun argument with `valueFrom.secretKeyRef`, which Argo resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"\S"))]
    pub arg: Option<String>,
    /// The value of a tenant-level reference, once the plugin has fetched it. Never serialized.
    #[serde(skip)]
    resolved: Option<SecretString>,
}

/// `secretKeyRef`: a Secret's name and key, as in a Pod's `env[].valueFrom.secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(inline)]
pub struct SecretKeyRef {
    /// The Secret's name (a DNS-1123 subdomain).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// The key within the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Which field of a [`SecretRef`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Env(&'a str),
    File(&'a Path),
    SecretKeyRef(&'a SecretKeyRef),
    Arg(&'a str),
}

/// Why a secret cannot be used. Never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The reference itself is malformed; `field` is the key at fault (`""` for the object).
    #[error("{why}")]
    Invalid { field: &'static str, why: String },
    #[error("environment variable {0} is not set or empty")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {why}")]
    File { path: String, why: String },
    #[error("{0} is empty")]
    Empty(String),
    /// A tenant-level reference that the plugin did not resolve (a bug or a test without the API).
    #[error("{0} was not resolved (only the plugin can read it)")]
    NotResolved(String),
}

impl SecretError {
    fn invalid(field: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            why: why.into(),
        }
    }
}

impl SecretRef {
    pub fn env(name: impl Into<String>) -> Self {
        Self {
            env: Some(name.into()),
            ..Self::default()
        }
    }

    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }

    pub fn secret_key_ref(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            secret_key_ref: Some(SecretKeyRef {
                name: name.into(),
                key: key.into(),
            }),
            ..Self::default()
        }
    }

    pub fn arg(name: impl Into<String>) -> Self {
        Self {
            arg: Some(name.into()),
            ..Self::default()
        }
    }

    /// The one field that is set, or why the reference is malformed.
    pub fn source(&self) -> Result<Source<'_>, SecretError> {
        let set = [
            self.env.is_some(),
            self.file.is_some(),
            self.secret_key_ref.is_some(),
            self.arg.is_some(),
        ];
        match set.iter().filter(|s| **s).count() {
            1 => {}
            0 => {
                return Err(SecretError::invalid(
                    "",
                    "needs one of env, file, secretKeyRef or arg",
                ));
            }
            _ => {
                return Err(SecretError::invalid(
                    "",
                    "give exactly one of env, file, secretKeyRef or arg",
                ));
            }
        }
        Ok(if let Some(e) = &self.env {
            Source::Env(e)
        } else if let Some(f) = &self.file {
            Source::File(f)
        } else if let Some(s) = &self.secret_key_ref {
            Source::SecretKeyRef(s)
        } else {
            Source::Arg(self.arg.as_deref().unwrap_or_default())
        })
    }

    /// Checks the shape: one source, and a well-formed name in it. Messages never repeat the
    /// value given (a string that is not a name may be the secret pasted by mistake).
    pub fn check(&self) -> Result<(), SecretError> {
        match self.source()? {
            Source::Env(e) if is_env_name(e) => Ok(()),
            Source::Env(_) => Err(SecretError::invalid(
                "env",
                "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
            )),
            Source::File(f) if f.as_os_str().is_empty() => {
                Err(SecretError::invalid("file", "must be a non-empty path"))
            }
            Source::File(_) => Ok(()),
            Source::SecretKeyRef(s) if !is_dns_subdomain(&s.name) => Err(SecretError::invalid(
                "secretKeyRef.name",
                "must be a Secret name (DNS subdomain)",
            )),
            Source::SecretKeyRef(s) if !is_secret_key(&s.key) => Err(SecretError::invalid(
                "secretKeyRef.key",
                "must be a Secret key ([-._a-zA-Z0-9]+)",
            )),
            Source::SecretKeyRef(_) => Ok(()),
            Source::Arg(a) if a.trim().is_empty() || a.len() > 253 => {
                Err(SecretError::invalid("arg", "must name an argument"))
            }
            Source::Arg(_) => Ok(()),
        }
    }

    /// `env` and `file` are the controller's own (see the crate docs).
    pub fn is_operator_level(&self) -> bool {
        matches!(self.source(), Ok(Source::Env(_) | Source::File(_)))
    }

    /// Where the secret comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self.source() {
            Ok(Source::Env(e)) => format!("environment variable {e}"),
            Ok(Source::File(f)) => format!("file {}", f.display()),
            Ok(Source::SecretKeyRef(s)) => format!("key {} of Secret {}", s.key, s.name),
            Ok(Source::Arg(a)) => format!("argument {a}"),
            Err(_) => "an invalid reference".into(),
        }
    }

    /// This reference with the value the plugin fetched for it (tenant-level references).
    pub fn resolved(&self, value: SecretString) -> Self {
        Self {
            resolved: Some(value),
            ..self.clone()
        }
    }

    /// Reads the secret now: env and file are read on every call (a rotated Secret file is picked
    /// up by the next measurement); tenant-level references give what [`Self::resolved`] stored.
    pub fn load(&self) -> Result<SecretString, SecretError> {
        if let Some(v) = &self.resolved {
            return Ok(v.clone());
        }
        let raw = match self.source()? {
            Source::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| SecretError::MissingEnv(name.to_string()))?,
            Source::File(path) => std::fs::read_to_string(path).map_err(|e| SecretError::File {
                path: path.display().to_string(),
                why: e.kind().to_string(),
            })?,
            Source::SecretKeyRef(_) | Source::Arg(_) => {
                return Err(SecretError::NotResolved(self.describe()));
            }
        };
        trimmed(raw, || self.describe())
    }
}

/// A secret value with surrounding whitespace (a file's final newline) removed; empty is an error.
pub fn trimmed(raw: String, origin: impl FnOnce() -> String) -> Result<SecretString, SecretError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(SecretError::Empty(origin()));
    }
    Ok(SecretString::from(value.to_string()))
}

/// Shows where the secret comes from and whether it was resolved, never the value.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRef")
            .field("source", &self.describe())
            .field("resolved", &self.resolved.is_some())
            .finish()
    }
}

/// Two references are equal when they name the same place; a fetched value does not count.
impl PartialEq for SecretRef {
    fn eq(&self, other: &Self) -> bool {
        self.env == other.env
            && self.file == other.file
            && self.secret_key_ref == other.secret_key_ref
            && self.arg == other.arg
    }
}
impl Eq for SecretRef {}

pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A key of a Secret's `data`.
fn is_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<SecretRef, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn each_source_parses_and_is_classified() {
        let r = parse(json!({"env": "TOKEN"})).unwrap();
        assert_eq!(r.source().unwrap(), Source::Env("TOKEN"));
        assert!(r.is_operator_level());
        let r = parse(json!({"secretKeyRef": {"name": "proxy-tokens", "key": "admin"}})).unwrap();
        assert!(r.check().is_ok() && !r.is_operator_level());
        assert_eq!(r.describe(), "key admin of Secret proxy-tokens");
        let r = parse(json!({"arg": "admin-token"})).unwrap();
        assert!(r.check().is_ok() && !r.is_operator_level());
    }

    #[test]
    fn a_secret_key_ref_cannot_name_a_namespace() {
        let e = parse(json!({"secretKeyRef": {"name": "t", "key": "k", "namespace": "other"}}))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `namespace`"), "{e}");
    }

    #[test]
    fn malformed_references_name_the_field_not_the_value() {
        for (v, field) in [
            (json!({}), ""),
            (json!({"env": "A", "file": "/b"}), ""),
            (json!({"env": "A", "arg": "b"}), ""),
            (json!({"env": "ghp_abc-123.secret"}), "env"),
            (json!({"file": ""}), "file"),
            (
                json!({"secretKeyRef": {"name": "Not_A_Name", "key": "k"}}),
                "secretKeyRef.name",
            ),
            (
                json!({"secretKeyRef": {"name": "n", "key": "a/b"}}),
                "secretKeyRef.key",
            ),
            (json!({"arg": " "}), "arg"),
        ] {
            let e = parse(v.clone()).unwrap().check().unwrap_err();
            match &e {
                SecretError::Invalid { field: f, .. } => assert_eq!(*f, field, "{v}"),
                other => panic!("{v}: {other:?}"),
            }
            assert!(!e.to_string().contains("ghp_abc"), "{e}");
        }
    }

    #[test]
    fn env_and_file_are_read_and_trimmed_and_errors_hide_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-token\n").unwrap();
        assert_eq!(
            SecretRef::file(&path).load().unwrap().expose_secret(),
            "file-token"
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            SecretRef::file(&path).load(),
            Err(SecretError::Empty(_))
        ));
        // A variable every test process has (setting one would race with other tests).
        let expected = std::env::var("PATH").unwrap();
        assert_eq!(
            SecretRef::env("PATH").load().unwrap().expose_secret(),
            expected.trim()
        );
        let e = SecretRef::env("SANDCANARY_SECRET_TEST_UNSET")
            .load()
            .unwrap_err();
        assert!(
            e.to_string().contains("SANDCANARY_SECRET_TEST_UNSET"),
            "{e}"
        );
    }

    #[test]
    fn tenant_references_load_only_once_resolved_and_never_print_the_value() {
        let r = SecretRef::secret_key_ref("t", "k");
        assert!(matches!(r.load(), Err(SecretError::NotResolved(_))));
        let r = r.resolved(SecretString::from("sk-very-secret"));
        assert_eq!(r.load().unwrap().expose_secret(), "sk-very-secret");
        assert!(!format!("{r:?}").contains("sk-very"));
        assert_eq!(r, SecretRef::secret_key_ref("t", "k"));
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("sk-very"), "{json}");
    }
}
