//! Who a caller is: the identity sources (IDENTITY) and what each needs (static map, trusted token,
//! pod labels), and the pod label key PLAYWRIGHT_LABEL_KEY that the cluster backends also stamp on
//! their sandboxes.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::values::{positive_dur, secret, set};
use super::{BackendKind, ConfigError, RawConfig, err};

/// One identity source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    Static,
    Token,
    Pods,
}

/// Validated identity settings: only what the listed sources use is required.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Tried in this order; the first that knows the caller wins.
    pub sources: Vec<IdentitySource>,
    pub static_identities: Vec<(IpAddr, String)>,
    pub token: Option<SecretString>,
    pub id_header: http::HeaderName,
    /// Budget of the pod identity's API fallback lookup.
    pub lookup_timeout: Duration,
}

impl IdentityConfig {
    pub fn uses(&self, source: IdentitySource) -> bool {
        self.sources.contains(&source)
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
    raw: &RawConfig,
    backend: BackendKind,
    pod_namespace: Option<&str>,
) -> Result<IdentityConfig, ConfigError> {
    let sources = match set(&raw.identity) {
        None if backend == BackendKind::Local => vec![IdentitySource::Static],
        None => vec![IdentitySource::Pods],
        Some(list) => {
            let mut out = Vec::new();
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let src = match item {
                    "static" => IdentitySource::Static,
                    "token" => IdentitySource::Token,
                    "pods" => IdentitySource::Pods,
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
    if sources.contains(&IdentitySource::Pods) && pod_namespace.is_none() {
        return Err(err(
            "POD_NAMESPACE",
            "POD_NAMESPACE is required (set via downward API)",
        ));
    }
    if sources.contains(&IdentitySource::Static) && static_identities.is_empty() {
        return Err(err(
            "IDENTITY_STATIC_FILE",
            "the static identity source needs IDENTITY_STATIC_FILE or IDENTITY_STATIC (ip=id pairs)",
        ));
    }

    let token = secret(
        "IDENTITY_TOKEN",
        "IDENTITY_TOKEN_FILE",
        &raw.identity_token,
        &raw.identity_token_file,
    )?;
    if sources.contains(&IdentitySource::Token) && token.is_none() {
        return Err(err(
            "IDENTITY_TOKEN",
            "the token identity source needs IDENTITY_TOKEN or IDENTITY_TOKEN_FILE",
        ));
    }
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
    Ok(IdentityConfig {
        sources,
        static_identities,
        token,
        id_header,
        lookup_timeout,
    })
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
                identity: Some("static,ldap".into()),
                ..base()
            },
            "IDENTITY",
            "unknown identity source",
        );
        fails(
            RawConfig {
                identity: Some("token".into()),
                ..base()
            },
            "IDENTITY_TOKEN",
            "needs IDENTITY_TOKEN",
        );
        fails(
            RawConfig {
                identity: Some("token".into()),
                identity_token: Some("short".into()),
                ..base()
            },
            "IDENTITY_TOKEN",
            "at least 16",
        );
        fails(
            RawConfig {
                identity_static: Some("127.0.0.2=al ice!".into()),
                ..base()
            },
            "IDENTITY_STATIC",
            "invalid id",
        );
        fails(
            RawConfig {
                identity_static: Some("notanip=alice".into()),
                ..base()
            },
            "IDENTITY_STATIC",
            "not an IP address",
        );
        fails(
            RawConfig {
                identity_static: Some("127.0.0.2=a,127.0.0.2=b".into()),
                ..base()
            },
            "IDENTITY_STATIC",
            "mapped to both",
        );
        fails(
            RawConfig {
                identity_static: None,
                ..base()
            },
            "IDENTITY_STATIC_FILE",
            "needs IDENTITY_STATIC_FILE",
        );
        fails(
            RawConfig {
                identity_lookup_timeout: Some("0s".into()),
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
                identity: Some("pods".into()),
                ..base()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required",
        );
        let c = Config::from_raw(RawConfig {
            identity: Some("static,pods".into()),
            pod_namespace: Some("proxy".into()),
            ..base()
        })
        .unwrap();
        assert!(c.needs_kube());
        assert!(!Config::from_raw(base()).unwrap().needs_kube());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Config::from_raw(RawConfig {
            identity: Some("static,token".into()),
            identity_token: Some("0123456789abcdef-secret".into()),
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
            identity_static: None,
            identity_static_file: Some(path.to_string_lossy().into()),
            ..base()
        })
        .unwrap();
        assert_eq!(c.identity.static_identities.len(), 2);
        assert_eq!(c.identity.static_identities[1].1, "bob");
    }
}
