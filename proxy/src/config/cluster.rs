//! Settings of the Kubernetes-object backends (sandboxclaim, karssandbox, isola): each builds the
//! backend's own settings type from its variables and the settings all three share.

use super::values::{list, set};
use super::{ConfigError, err};
use crate::backend::isola::IsolaSettings;
use crate::backend::kars::KarsSettings;
use crate::backend::naming::{valid_dns_label, valid_object_name};
use crate::backend::sandbox_claim::SandboxClaimSettings;

/// Settings of the sandboxclaim backend, as given.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Sandboxclaim backend")]
pub struct RawSandboxClaim {
    /// The SandboxWarmPool every claim references.
    #[arg(long, env = "WARMPOOL_NAME")]
    pub warmpool_name: Option<String>,
    /// Accepted for compatibility with the reference; v1beta1 claims reference
    /// only the warm pool, so it is not used.
    #[arg(long, env = "SANDBOX_TEMPLATE_NAME")]
    pub sandbox_template_name: Option<String>,
}

/// Settings of the karssandbox backend, as given.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Karssandbox backend")]
pub struct RawKars {
    /// The inference reference every sandbox gets.
    #[arg(long, env = "KARS_INFERENCE_REF")]
    pub kars_inference_ref: Option<String>,
    /// The sandbox container image.
    #[arg(long, env = "KARS_SANDBOX_IMAGE")]
    pub kars_sandbox_image: Option<String>,
}

/// Settings of the isola backend, as given.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Isola backend")]
pub struct RawIsola {
    /// Namespace of the Sandbox objects (isola's `sandboxNamespace.name`).
    #[arg(long, env = "ISOLA_NAMESPACE")]
    pub isola_namespace: Option<String>,
    /// The sandbox container image.
    #[arg(long, env = "ISOLA_SANDBOX_IMAGE")]
    pub isola_sandbox_image: Option<String>,
    /// Comma-separated CIDRs the sandboxes may reach besides the internet.
    #[arg(long, env = "ISOLA_ALLOWED_EGRESS_CIDRS")]
    pub isola_allowed_egress_cidrs: Option<String>,
}

/// What every cluster backend takes from the general settings.
pub(super) struct Common {
    /// POD_NAMESPACE: where the sandbox objects live (isola's are in ISOLA_NAMESPACE).
    pub namespace: String,
    pub label_key: String,
    pub sandbox_port: u16,
    pub mcp_port: Option<u16>,
}

pub(super) fn sandbox_claim(
    raw: &RawSandboxClaim,
    c: Common,
) -> Result<SandboxClaimSettings, ConfigError> {
    let Some(pool) = set(&raw.warmpool_name) else {
        return Err(err(
            "WARMPOOL_NAME",
            "WARMPOOL_NAME is required for sandboxclaim backend",
        ));
    };
    let pool = pool.trim().to_string();
    if !valid_object_name(&pool) {
        return Err(err(
            "WARMPOOL_NAME",
            format!("{pool:?} is not a valid object name (DNS-1123 subdomain)"),
        ));
    }
    Ok(SandboxClaimSettings {
        namespace: c.namespace,
        warmpool: pool,
        label_key: c.label_key,
        sandbox_port: c.sandbox_port,
        mcp_port: c.mcp_port,
    })
}

pub(super) fn kars(raw: &RawKars, c: Common) -> Result<KarsSettings, ConfigError> {
    let Some(inference_ref) = set(&raw.kars_inference_ref) else {
        return Err(err(
            "KARS_INFERENCE_REF",
            "KARS_INFERENCE_REF is required for karssandbox backend",
        ));
    };
    let Some(image) = set(&raw.kars_sandbox_image) else {
        return Err(err(
            "KARS_SANDBOX_IMAGE",
            "KARS_SANDBOX_IMAGE is required for karssandbox backend",
        ));
    };
    Ok(KarsSettings {
        namespace: c.namespace,
        image: image.trim().to_string(),
        inference_ref: inference_ref.trim().to_string(),
        label_key: c.label_key,
        sandbox_port: c.sandbox_port,
    })
}

pub(super) fn isola(raw: &RawIsola, c: Common) -> Result<IsolaSettings, ConfigError> {
    let Some(image) = set(&raw.isola_sandbox_image) else {
        return Err(err(
            "ISOLA_SANDBOX_IMAGE",
            "ISOLA_SANDBOX_IMAGE is required for isola backend",
        ));
    };
    let namespace = set(&raw.isola_namespace)
        .unwrap_or("isola-sandboxes")
        .trim()
        .to_string();
    if !valid_dns_label(&namespace) {
        return Err(err(
            "ISOLA_NAMESPACE",
            format!("{namespace:?} is not a valid namespace name"),
        ));
    }
    Ok(IsolaSettings {
        namespace,
        image: image.trim().to_string(),
        allowed_egress_cidrs: list(&raw.isola_allowed_egress_cidrs),
        label_key: c.label_key,
        sandbox_port: c.sandbox_port,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{cluster, fails};
    use super::super::{BackendConfig, Config, IdentitySource, RawConfig, RawIdentity};
    use super::{RawIsola, RawKars, RawSandboxClaim};

    #[test]
    fn sandboxclaim_defaults_to_pod_identity_and_needs_a_warm_pool() {
        let c = Config::from_raw(cluster()).unwrap();
        match &c.identity.sources[..] {
            [
                IdentitySource::Pods {
                    namespace,
                    lookup_timeout,
                },
            ] => {
                assert_eq!(namespace, "proxy");
                assert_eq!(*lookup_timeout, Duration::from_secs(2));
            }
            other => panic!("expected the pods source alone, got {other:?}"),
        }
        let BackendConfig::SandboxClaim(claim) = c.backend else {
            panic!("not sandboxclaim")
        };
        assert_eq!(claim.warmpool, "playwright");
        assert_eq!(claim.namespace, "proxy");
        fails(
            RawConfig {
                sandbox_claim: RawSandboxClaim {
                    warmpool_name: None,
                    ..cluster().sandbox_claim
                },
                ..cluster()
            },
            "WARMPOOL_NAME",
            "WARMPOOL_NAME is required for sandboxclaim backend",
        );
        fails(
            RawConfig {
                sandbox_claim: RawSandboxClaim {
                    warmpool_name: Some("Not_A_Name".into()),
                    ..cluster().sandbox_claim
                },
                ..cluster()
            },
            "WARMPOOL_NAME",
            "not a valid object name",
        );
        fails(
            RawConfig {
                pod_namespace: None,
                identity: RawIdentity {
                    identity: Some("static".into()),
                    identity_static: Some("127.0.0.2=alice".into()),
                    ..cluster().identity
                },
                ..cluster()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required (set via downward API)",
        );
    }

    #[test]
    fn kars_needs_an_inference_ref_and_an_image() {
        let kars = || RawConfig {
            backend: Some("karssandbox".into()),
            kars: RawKars {
                kars_inference_ref: Some("gpt".into()),
                kars_sandbox_image: Some("img:1".into()),
            },
            ..cluster()
        };
        let BackendConfig::KarsSandbox(k) = Config::from_raw(kars()).unwrap().backend else {
            panic!("not karssandbox")
        };
        assert_eq!(
            (k.inference_ref.as_str(), k.image.as_str()),
            ("gpt", "img:1")
        );
        fails(
            RawConfig {
                kars: RawKars {
                    kars_inference_ref: None,
                    ..kars().kars
                },
                ..kars()
            },
            "KARS_INFERENCE_REF",
            "KARS_INFERENCE_REF is required for karssandbox backend",
        );
        fails(
            RawConfig {
                kars: RawKars {
                    kars_sandbox_image: None,
                    ..kars().kars
                },
                ..kars()
            },
            "KARS_SANDBOX_IMAGE",
            "KARS_SANDBOX_IMAGE is required for karssandbox backend",
        );
    }

    #[test]
    fn isola_needs_an_image_and_splits_cidrs() {
        let isola = || RawConfig {
            backend: Some("isola".into()),
            isola: RawIsola {
                isola_sandbox_image: Some("img:1".into()),
                ..cluster().isola
            },
            ..cluster()
        };
        let c = Config::from_raw(RawConfig {
            isola: RawIsola {
                isola_allowed_egress_cidrs: Some(" 10.244.0.0/16, ,10.96.0.0/12 ".into()),
                ..isola().isola
            },
            ..isola()
        })
        .unwrap();
        let BackendConfig::Isola(i) = c.backend else {
            panic!("not isola")
        };
        assert_eq!(i.namespace, "isola-sandboxes");
        assert_eq!(
            i.allowed_egress_cidrs,
            vec!["10.244.0.0/16", "10.96.0.0/12"]
        );
        fails(
            RawConfig {
                isola: RawIsola {
                    isola_sandbox_image: None,
                    ..isola().isola
                },
                ..isola()
            },
            "ISOLA_SANDBOX_IMAGE",
            "ISOLA_SANDBOX_IMAGE is required for isola backend",
        );
        fails(
            RawConfig {
                isola: RawIsola {
                    isola_namespace: Some("Bad_NS".into()),
                    ..isola().isola
                },
                ..isola()
            },
            "ISOLA_NAMESPACE",
            "not a valid namespace",
        );
    }
}
