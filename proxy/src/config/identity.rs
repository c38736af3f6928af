//! Who a caller is: the identity sources (IDENTITY) and what each needs (static map, trusted token,
//! pod labels), and the pod label key PLAYWRIGHT_LABEL_KEY that the cluster backends also stamp on
//! their sandboxes.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::values::{positive_dur, secret, set};
use super::{BackendKind, ConfigError, RawConfig, err};

/// IDENTITY and the settings of the identity sources, as given.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Identity")]
pub struct RawIdentity {
    /// Identity sources, comma-separated and tried in order: static, token, pods.
    #[arg(long, env = "IDENTITY")]
    pub identity: Option<String>,
    /// File of `<ip> <id>` lines for the static identity source.
    #[arg(long, env = "IDENTITY_STATIC_FILE")]
    pub identity_static_file: Option<String>,
    /// Inline static identities: `ip=id,ip=id`.
    #[arg(long, env = "IDENTITY_STATIC")]
    pub identity_static: Option<String>,
    /// Bearer token that lets a trusted caller name its id in a header (token identity).
    #[arg(long, env = "IDENTITY_TOKEN", hide_env_values = true)]
    pub identity_token: Option<String>,
    /// File holding the identity bearer token.
    #[arg(long, env = "IDENTITY_TOKEN_FILE")]
    pub identity_token_file: Option<String>,
    /// Header in which a token-authenticated caller names its id.
    #[arg(long, env = "IDENTITY_ID_HEADER")]
    pub identity_id_header: Option<String>,
    /// Budget of the API fallback lookup for a caller the pod cache does not know yet (informer lag);
    /// after it the caller gets 403.
    #[arg(long, env = "IDENTITY_LOOKUP_TIMEOUT")]
    pub identity_lookup_timeout: Option<String>,
}

/// Which identity source: what IDENTITY lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Static,
    Token,
    Pods,
}

/// One identity source with the settings it needs, so that a source cannot exist without them.
#[derive(Debug, Clone)]
pub enum IdentitySource {
    /// Fixed address-to-id pairs (IDENTITY_STATIC, IDENTITY_STATIC_FILE).
    Static(Vec<(IpAddr, String)>),
    /// A trusted caller presents `token` and names its id in `id_header`.
    Token {
        token: SecretString,
        id_header: http::HeaderName,
    },
    /// The label of the pod behind the source address, pods watched in `namespace`;
    /// `lookup_timeout` bounds the API fallback for a pod the cache does not know yet.
    Pods {
        namespace: String,
        lookup_timeout: Duration,
    },
}

impl IdentitySource {
    pub fn kind(&self) -> IdentityKind {
        match self {
            Self::Static(_) => IdentityKind::Static,
            Self::Token { .. } => IdentityKind::Token,
            Self::Pods { .. } => IdentityKind::Pods,
        }
    }
}

/// Validated identity settings: the sources IDENTITY lists, in order, each with its settings.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Tried in this order; the first that knows the caller wins.
    pub sources: Vec<IdentitySource>,
}

impl IdentityConfig {
    pub fn uses(&self, kind: IdentityKind) -> bool {
        self.sources.iter().any(|s| s.kind() == kind)
    }

    /// The kinds of the sources, in order (for logs: no settings, no secrets).
    pub fn kinds(&self) -> Vec<IdentityKind> {
        self.sources.iter().map(IdentitySource::kind).collect()
    }
}

/// PLAYWRIGHT_LABEL_KEY, checked as a Kubernetes label key.
pub(super) fn label_key(raw: &RawConfig) -> Result<String, ConfigError> {
    let label_key = set(&raw.playwright_label_key)
        .unwrap_or("playwright-id")
        .trim()
        .to_string();
    if !valid_label_key(&label_key) {
        return Err(err(
            "PLAYWRIGHT_LABEL_KEY",
            format!(
                "{label_key:?} is not a valid label key ([prefix/]name, name of 1-63 characters of [A-Za-z0-9._-] beginning and ending alphanumeric)"
            ),
        ));
    }
    Ok(label_key)
}

/// IDENTITY and the settings of the sources it lists. The default is `static` for the local backend
/// and `pods` for the others.
pub(super) fn settings(
    raw: &RawIdentity,
    backend: BackendKind,
    pod_namespace: Option<&str>,
) -> Result<IdentityConfig, ConfigError> {
    let kinds = match set(&raw.identity) {
        None if backend == BackendKind::Local => vec![IdentityKind::Static],
        None => vec![IdentityKind::Pods],
        Some(list) => {
            let mut out = Vec::new();
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let src = match item {
                    "static" => IdentityKind::Static,
                    "token" => IdentityKind::Token,
                    "pods" => IdentityKind::Pods,
                    v => {
                        return Err(err(
                            "IDENTITY",
                            format!("unknown identity source {v:?} (want static, token, pods)"),
                        ));
                    }
                };
                if out.contains(&src) {
                    return Err(err("IDENTITY", format!("{item:?} is listed twice")));
                }
                out.push(src);
            }
            if out.is_empty() {
                return Err(err("IDENTITY", "names no identity source"));
            }
            out
        }
    };

    let mut static_identities = Vec::new();
    if let Some(path) = set(&raw.identity_static_file) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("IDENTITY_STATIC_FILE", format!("cannot read {path:?}: {e}")))?;
        for line in text.lines() {
            static_identities.extend(parse_static_line("IDENTITY_STATIC_FILE", line)?);
        }
    }
    if let Some(inline) = set(&raw.identity_static) {
        for entry in inline.split(',') {
            static_identities.extend(parse_static_line("IDENTITY_STATIC", entry)?);
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (ip, id) in &static_identities {
        if let Some(prev) = seen.insert(*ip, id)
            && prev != id
        {
            return Err(err(
                "IDENTITY_STATIC",
                format!("{ip} is mapped to both {prev:?} and {id:?}"),
            ));
        }
    }
    let lookup_timeout = positive_dur(
        "IDENTITY_LOOKUP_TIMEOUT",
        &raw.identity_lookup_timeout,
        "2s",
    )?;
    let token = secret(
        "IDENTITY_TOKEN",
        "IDENTITY_TOKEN_FILE",
        &raw.identity_token,
        &raw.identity_token_file,
    )?;
    if let Some(t) = &token
        && t.expose_secret().len() < 16
    {
        return Err(err("IDENTITY_TOKEN", "must be at least 16 characters"));
    }
    let header = set(&raw.identity_id_header).unwrap_or("x-sandbox-id");
    let id_header = http::HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
        err(
            "IDENTITY_ID_HEADER",
            format!("{header:?} is not a valid header name"),
        )
    })?;

    // Each listed source takes its settings, or names the variable that is missing.
    let sources = kinds
        .into_iter()
        .map(|kind| {
            Ok(match kind {
                IdentityKind::Static if static_identities.is_empty() => {
                    return Err(err(
                        "IDENTITY_STATIC_FILE",
                        "the static identity source needs IDENTITY_STATIC_FILE or IDENTITY_STATIC (ip=id pairs)",
                    ));
                }
                IdentityKind::Static => IdentitySource::Static(static_identities.clone()),
                IdentityKind::Token => IdentitySource::Token {
                    token: token.clone().ok_or_else(|| {
                        err(
                            "IDENTITY_TOKEN",
                            "the token identity source needs IDENTITY_TOKEN or IDENTITY_TOKEN_FILE",
                        )
                    })?,
                    id_header: id_header.clone(),
                },
                IdentityKind::Pods => IdentitySource::Pods {
                    namespace: pod_namespace
                        .ok_or_else(|| {
                            err(
                                "POD_NAMESPACE",
                                "POD_NAMESPACE is required (set via downward API)",
                            )
                        })?
                        .to_string(),
                    lookup_timeout,
                },
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok(IdentityConfig { sources })
}

/// One `<ip> <id>` or `<ip>=<id>` entry; `#` starts a comment.
fn parse_static_line(
    var: &'static str,
    line: &str,
) -> Result<Option<(IpAddr, String)>, ConfigError> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut parts = line.splitn(2, |c: char| c == '=' || c.is_whitespace());
    let ip = parts.next().unwrap_or("").trim();
    let id = parts.next().unwrap_or("").trim();
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| err(var, format!("{ip:?} is not an IP address (entry {line:?})")))?;
    if !crate::id::valid(id) {
        return Err(err(
            var,
            format!("invalid id {id:?} for {ip}: want {}", crate::id::RULE),
        ));
    }
    Ok(Some((ip, id.to_string())))
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::super::tests::{base, fails};
    use super::super::{Config, RawConfig};
    use super::*;

    #[test]
    fn label_keys() {
        assert!(valid_label_key("playwright-id"));
        assert!(valid_label_key("example.com/pw"));
        assert!(valid_label_key("sandbox.users.io/playwright-id"));
        assert!(!valid_label_key("Example.com/pw"));
        assert!(!valid_label_key("-x"));
        assert!(!valid_label_key("a/b/"));
        fails(
            RawConfig {
                playwright_label_key: Some("bad key".into()),
                ..base()
            },
            "PLAYWRIGHT_LABEL_KEY",
            "not a valid label key",
        );
    }

    #[test]
    fn each_identity_rule_names_its_variable() {
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity: Some("static,ldap".into()),
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY",
            "unknown identity source",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity: Some("token".into()),
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY_TOKEN",
            "needs IDENTITY_TOKEN",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity: Some("token".into()),
                    identity_token: Some("short".into()),
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY_TOKEN",
            "at least 16",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity_static: Some("127.0.0.2=al ice!".into()),
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY_STATIC",
            "invalid id",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity_static: Some("notanip=alice".into()),
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY_STATIC",
            "not an IP address",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity_static: Some("127.0.0.2=a,127.0.0.2=b".into()),
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY_STATIC",
            "mapped to both",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity_static: None,
                    ..base().identity
                },
                ..base()
            },
            "IDENTITY_STATIC_FILE",
            "needs IDENTITY_STATIC_FILE",
        );
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity_lookup_timeout: Some("0s".into()),
                    ..super::super::tests::cluster().identity
                },
                ..super::super::tests::cluster()
            },
            "IDENTITY_LOOKUP_TIMEOUT",
            "greater than zero",
        );
    }

    #[test]
    fn pod_identity_needs_a_namespace_even_with_the_local_backend() {
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity: Some("pods".into()),
                    ..base().identity
                },
                ..base()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required",
        );
        let c = Config::from_raw(RawConfig {
            pod_namespace: Some("proxy".into()),
            identity: RawIdentity {
                identity: Some("static,pods".into()),
                ..base().identity
            },
            ..base()
        })
        .unwrap();
        assert!(c.needs_kube());
        assert!(!Config::from_raw(base()).unwrap().needs_kube());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Config::from_raw(RawConfig {
            identity: RawIdentity {
                identity: Some("static,token".into()),
                identity_token: Some("0123456789abcdef-secret".into()),
                ..base().identity
            },
            ..base()
        })
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0123456789abcdef-secret"));
    }

    #[test]
    fn static_file_parses_comments_and_both_separators() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids");
        std::fs::write(&path, "# pods\n127.0.0.2 alice\n127.0.0.3=bob # second\n\n").unwrap();
        let c = Config::from_raw(RawConfig {
            identity: RawIdentity {
                identity_static: None,
                identity_static_file: Some(path.to_string_lossy().into()),
                ..base().identity
            },
            ..base()
        })
        .unwrap();
        match &c.identity.sources[..] {
            [IdentitySource::Static(pairs)] => {
                assert_eq!(pairs.len(), 2);
                assert_eq!(pairs[1].1, "bob");
            }
            other => panic!("expected one static source, got {other:?}"),
        }
    }
}
