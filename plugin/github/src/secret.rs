//! Loading credentials from the places the config names.
//!
//! Secrets live only in [`Credentials`], whose `Debug` is redacted, and in octocrab's own secret
//! types after that. Errors say where a secret should have come from, never what it was.

use std::path::Path;

use octocrab::EncodingKey;
use octocrab::secrecy::SecretString;

use crate::config::AuthConfig;
use crate::error::SecretError;

/// GitHub credentials, ready for the client.
pub enum Credentials {
    /// A personal (or fine-grained) access token, sent as `Authorization: Bearer <token>`.
    Token(SecretString),
    /// A GitHub App installation: JWTs are signed with `key` to mint installation tokens.
    App {
        /// The App's id.
        app_id: u64,
        /// The installation's id.
        installation_id: u64,
        /// The App's private key.
        key: EncodingKey,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
            Self::App {
                app_id,
                installation_id,
                ..
            } => f
                .debug_struct("Credentials::App")
                .field("app_id", app_id)
                .field("installation_id", installation_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Credentials {
    /// Loads what `auth` names from the process environment and the file system.
    pub fn load(auth: &AuthConfig) -> Result<Self, SecretError> {
        Self::load_with(auth, |name| std::env::var(name).ok())
    }

    /// Like [`Credentials::load`], with the environment given as a lookup function.
    pub fn load_with(
        auth: &AuthConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SecretError> {
        if let Some(app) = &auth.app {
            let (pem, origin) = match (&app.private_key_file, &app.private_key_env) {
                (Some(path), _) => (read_file(path)?, path.display().to_string()),
                (None, Some(name)) => (read_env(&env, name)?, format!("${name}")),
                (None, None) => {
                    return Err(SecretError::MissingEnv {
                        name: "auth.app.privateKeyFile or auth.app.privateKeyEnv".into(),
                    });
                }
            };
            let key = EncodingKey::from_rsa_pem(pem.trim().as_bytes())
                .map_err(|_| SecretError::BadKey { origin })?;
            return Ok(Self::App {
                app_id: app.app_id,
                installation_id: app.installation_id,
                key,
            });
        }
        let (token, origin) = match (&auth.token_file, &auth.token_env) {
            (Some(path), _) => (read_file(path)?, path.display().to_string()),
            (None, Some(name)) => (read_env(&env, name)?, format!("${name}")),
            (None, None) => {
                return Err(SecretError::MissingEnv {
                    name: "auth.tokenEnv or auth.tokenFile".into(),
                });
            }
        };
        let token = token.trim();
        // The token ends up in a header: visible ASCII only.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SecretError::Malformed { origin });
        }
        Ok(Self::Token(SecretString::from(token.to_string())))
    }
}

fn read_env(env: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, SecretError> {
    env(name).ok_or_else(|| SecretError::MissingEnv {
        name: name.to_string(),
    })
}

fn read_file(path: &Path) -> Result<String, SecretError> {
    std::fs::read_to_string(path).map_err(|source| SecretError::File {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppAuthConfig;
    use octocrab::secrecy::ExposeSecret;

    const TOKEN: &str = "ghp_unit_test_token_value";

    fn env(name: &str) -> Option<String> {
        match name {
            "GH_TOKEN" => Some(format!("  {TOKEN}\n")),
            "BAD_TOKEN" => Some("two words".into()),
            "EMPTY" => Some(" \n".into()),
            _ => None,
        }
    }

    fn token_env(name: &str) -> AuthConfig {
        AuthConfig {
            token_env: Some(name.into()),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn token_from_env_is_trimmed_and_redacted() {
        let c = Credentials::load_with(&token_env("GH_TOKEN"), env).unwrap();
        let Credentials::Token(t) = &c else {
            panic!("expected a token")
        };
        assert_eq!(t.expose_secret(), TOKEN);
        let shown = format!("{c:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    #[test]
    fn token_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        let auth = AuthConfig {
            token_file: Some(path),
            ..AuthConfig::default()
        };
        let Credentials::Token(t) = Credentials::load_with(&auth, env).unwrap() else {
            panic!("expected a token")
        };
        assert_eq!(t.expose_secret(), TOKEN);
    }

    #[test]
    fn errors_name_the_source_not_the_value() {
        let e = Credentials::load_with(&token_env("UNSET"), env).unwrap_err();
        assert_eq!(e.to_string(), "environment variable UNSET is not set");
        let e = Credentials::load_with(&token_env("BAD_TOKEN"), env).unwrap_err();
        assert!(e.to_string().contains("$BAD_TOKEN"));
        assert!(!e.to_string().contains("two words"));
        assert!(Credentials::load_with(&token_env("EMPTY"), env).is_err());
        let auth = AuthConfig {
            token_file: Some("/nonexistent/sandcanary/token".into()),
            ..AuthConfig::default()
        };
        let e = Credentials::load_with(&auth, env).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/sandcanary/token"));
    }

    #[test]
    fn app_key_must_be_pem() {
        let auth = AuthConfig {
            app: Some(AppAuthConfig {
                app_id: 1,
                installation_id: 2,
                private_key_file: None,
                private_key_env: Some("GH_TOKEN".into()),
            }),
            ..AuthConfig::default()
        };
        let e = Credentials::load_with(&auth, env).unwrap_err();
        assert!(matches!(e, SecretError::BadKey { .. }));
        assert!(!e.to_string().contains(TOKEN));
    }
}
