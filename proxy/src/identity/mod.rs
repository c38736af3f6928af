//! Who is calling: turns a request (its source address and, in token mode, its headers) into the
//! sandbox id it may use. Headers never choose the id unless the token source is configured.

pub mod pods;
mod static_map;
mod token;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;

pub use pods::PodIdentity;
pub use static_map::StaticIdentity;
pub use token::TokenIdentity;

use crate::config::{Config, IdentitySource};

/// The verdict of one identity source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The caller is `id`. `strip` lists request headers that carried credentials and must not reach
    /// the sandbox. `tenant` is whom admission counts the request against when that is not the id
    /// itself: a token holder names many ids, so its tenant is its address.
    Known {
        id: String,
        strip: Vec<http::HeaderName>,
        tenant: Option<String>,
    },
    /// This source knows nothing about the caller; the next source may.
    Unknown,
    /// The caller presented credentials and they are wrong: stop here (403).
    Rejected(String),
    /// The request is ambiguous about who is calling (a credential or id header given twice): stop
    /// here (400) rather than let one of the values silently win.
    Ambiguous(String),
}

#[async_trait]
pub trait Identity: Send + Sync + 'static {
    async fn identify(&self, peer: IpAddr, headers: &HeaderMap) -> Verdict;

    /// False until the source can answer (a pod cache before its first sync).
    fn ready(&self) -> bool {
        true
    }
}

/// The configuration lists the pods source but no Kubernetes client was given to watch pods with.
#[derive(Debug, thiserror::Error)]
#[error("IDENTITY: the pods identity source needs a Kubernetes client")]
pub struct NoKubeClient;

/// Sources tried in order; the first that knows the caller decides.
pub struct Chain {
    sources: Vec<Arc<dyn Identity>>,
}

impl Chain {
    pub fn new(sources: Vec<Arc<dyn Identity>>) -> Self {
        Self { sources }
    }

    /// The sources the configuration names, for a configuration without `pods` (which needs a
    /// Kubernetes client; see [`Chain::with_kube`]).
    pub fn from_config(cfg: &Config) -> Result<Self, NoKubeClient> {
        Self::with_kube(cfg, None)
    }

    /// The sources the configuration names; `pods` watches through `kube`.
    pub fn with_kube(cfg: &Config, kube: Option<kube::Client>) -> Result<Self, NoKubeClient> {
        let mut sources: Vec<Arc<dyn Identity>> = Vec::new();
        for src in &cfg.identity.sources {
            sources.push(match src {
                IdentitySource::Static(pairs) => {
                    Arc::new(StaticIdentity::new(pairs.iter().cloned()))
                }
                IdentitySource::Token { token, id_header } => {
                    Arc::new(TokenIdentity::new(token.clone(), id_header.clone()))
                }
                IdentitySource::Pods {
                    namespace,
                    lookup_timeout,
                } => Arc::new(PodIdentity::start(
                    kube.clone().ok_or(NoKubeClient)?,
                    namespace,
                    &cfg.label_key,
                    *lookup_timeout,
                )),
            });
        }
        Ok(Self::new(sources))
    }
}

#[async_trait]
impl Identity for Chain {
    async fn identify(&self, peer: IpAddr, headers: &HeaderMap) -> Verdict {
        for s in &self.sources {
            match s.identify(peer, headers).await {
                Verdict::Unknown => continue,
                v => return v,
            }
        }
        Verdict::Unknown
    }

    fn ready(&self) -> bool {
        self.sources.iter().all(|s| s.ready())
    }
}

/// Addresses arrive as IPv4-mapped IPv6 on dual-stack sockets; identities are written as plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_falls_through_unknown_but_stops_at_rejection() {
        let token = "0123456789abcdef0123";
        let chain = Chain::new(vec![
            Arc::new(TokenIdentity::new(
                secrecy::SecretString::from(token),
                http::HeaderName::from_static("x-sandbox-id"),
            )),
            Arc::new(StaticIdentity::new([(
                "127.0.0.2".parse().unwrap(),
                "alice".to_string(),
            )])),
        ]);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        // No credentials: the token source passes, the static map decides.
        let v = chain.identify(ip, &HeaderMap::new()).await;
        assert_eq!(
            v,
            Verdict::Known {
                id: "alice".into(),
                strip: vec![],
                tenant: None
            }
        );
        // Wrong token: rejected even though the IP is known.
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "Bearer wrong-token-wrong-token".parse().unwrap(),
        );
        h.insert("x-sandbox-id", "mallory".parse().unwrap());
        assert!(matches!(chain.identify(ip, &h).await, Verdict::Rejected(_)));
        // Unknown IP, no token.
        let other: IpAddr = "127.0.0.9".parse().unwrap();
        assert_eq!(
            chain.identify(other, &HeaderMap::new()).await,
            Verdict::Unknown
        );
    }

    #[test]
    fn the_pods_source_without_a_client_is_an_error_not_a_panic() {
        use crate::config::tests::base;
        use crate::config::{Config, RawConfig, RawIdentity};
        let cfg = Config::from_raw(RawConfig {
            pod_namespace: Some("proxy".into()),
            identity: RawIdentity {
                identity: Some("static,pods".into()),
                ..base().identity
            },
            ..base()
        })
        .unwrap();
        let e = Chain::from_config(&cfg)
            .err()
            .expect("no client for the pods source");
        assert_eq!(
            e.to_string(),
            "IDENTITY: the pods identity source needs a Kubernetes client"
        );
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.2".parse::<IpAddr>().unwrap());
    }
}
