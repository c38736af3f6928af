//! The `substrate` backend's settings (SUBSTRATE_*): endpoints, the actor template, TLS and the
//! budgets of its gRPC calls and polls.

use super::values::{boolean, count, parse_authority, positive_dur, set};
use super::{ConfigError, err};
use crate::backend::substrate::{SubstrateSettings, SubstrateTls};

/// Settings of the substrate backend, as given.
#[derive(Debug, Default, Clone, clap::Args)]
#[command(next_help_heading = "Substrate backend")]
pub struct RawSubstrate {
    /// The ate-api gRPC endpoint, host:port.
    #[arg(long, env = "SUBSTRATE_API_ENDPOINT")]
    pub substrate_api_endpoint: Option<String>,
    /// The atenet router every sandbox is reached through (by Host header), host:port.
    #[arg(long, env = "SUBSTRATE_ROUTER_ADDR")]
    pub substrate_router_addr: Option<String>,
    /// The ActorTemplate of new actors, namespace/name.
    #[arg(long, env = "SUBSTRATE_ACTOR_TEMPLATE")]
    pub substrate_actor_template: Option<String>,
    /// Resume with boot=true (from the template, not a snapshot).
    #[arg(long, env = "SUBSTRATE_FORCE_BOOT")]
    pub substrate_force_boot: Option<String>,
    /// substrate backend: `verify` (TLS, the default), `skip-verify` (TLS without checking the
    /// certificate: the reference's behaviour) or `plaintext` (no TLS).
    #[arg(long, env = "SUBSTRATE_TLS")]
    pub substrate_tls: Option<String>,
    /// PEM bundle of the CAs that sign the API's certificate (default: system roots).
    #[arg(long, env = "SUBSTRATE_CA_FILE")]
    pub substrate_ca_file: Option<String>,
    /// Name to verify the API's certificate against (and send as SNI), when it is
    /// not the endpoint's host.
    #[arg(long, env = "SUBSTRATE_TLS_SERVER_NAME")]
    pub substrate_tls_server_name: Option<String>,
    /// Deadline of each gRPC call.
    #[arg(long, env = "SUBSTRATE_CALL_TIMEOUT")]
    pub substrate_call_timeout: Option<String>,
    /// Attempts per gRPC call when substrate answers Aborted or Unavailable.
    #[arg(long, env = "SUBSTRATE_MAX_ATTEMPTS")]
    pub substrate_max_attempts: Option<String>,
    /// Interval of the GetActor and readiness polls.
    #[arg(long, env = "SUBSTRATE_POLL_INTERVAL")]
    pub substrate_poll_interval: Option<String>,
    /// How long an actor may take to reach RUNNING (or SUSPENDED on delete).
    #[arg(long, env = "SUBSTRATE_RUNNING_TIMEOUT")]
    pub substrate_running_timeout: Option<String>,
    /// How long a RUNNING actor's workload may take to answer through the router.
    #[arg(long, env = "SUBSTRATE_PROBE_TIMEOUT")]
    pub substrate_probe_timeout: Option<String>,
}

/// Validates the SUBSTRATE_* settings; only read when BACKEND=substrate.
pub(super) fn settings(raw: &RawSubstrate) -> Result<SubstrateSettings, ConfigError> {
    let api_endpoint = parse_authority(
        "SUBSTRATE_API_ENDPOINT",
        set(&raw.substrate_api_endpoint).unwrap_or("api.ate-system.svc.cluster.local:443"),
    )?;
    let router = parse_authority(
        "SUBSTRATE_ROUTER_ADDR",
        set(&raw.substrate_router_addr).unwrap_or("atenet-router.ate-system.svc.cluster.local:80"),
    )?;
    let Some(template) = set(&raw.substrate_actor_template).map(str::trim) else {
        return Err(err(
            "SUBSTRATE_ACTOR_TEMPLATE",
            "SUBSTRATE_ACTOR_TEMPLATE (namespace/name) is required for substrate backend",
        ));
    };
    let (template_namespace, template_name) = match template.split_once('/') {
        Some((ns, name))
            if crate::backend::naming::valid_dns_label(ns)
                && crate::backend::naming::valid_object_name(name) =>
        {
            (ns.to_string(), name.to_string())
        }
        _ => {
            return Err(err(
                "SUBSTRATE_ACTOR_TEMPLATE",
                format!("SUBSTRATE_ACTOR_TEMPLATE must be 'namespace/name', got {template:?}"),
            ));
        }
    };
    let force_boot = boolean("SUBSTRATE_FORCE_BOOT", &raw.substrate_force_boot, false)?;
    let tls = match set(&raw.substrate_tls).map(str::trim).unwrap_or("verify") {
        "verify" => SubstrateTls::Verify,
        "skip-verify" => SubstrateTls::SkipVerify,
        "plaintext" => SubstrateTls::Plaintext,
        v => {
            return Err(err(
                "SUBSTRATE_TLS",
                format!("{v:?} is not one of verify, skip-verify, plaintext"),
            ));
        }
    };
    let ca_certs = match set(&raw.substrate_ca_file).map(str::trim) {
        None => Vec::new(),
        Some(_) if tls != SubstrateTls::Verify => {
            return Err(err(
                "SUBSTRATE_CA_FILE",
                "is only used with SUBSTRATE_TLS=verify; unset one of them",
            ));
        }
        Some(path) => read_ca_bundle(path)?,
    };
    let tls_server_name = match set(&raw.substrate_tls_server_name).map(str::trim) {
        None => None,
        Some(_) if tls == SubstrateTls::Plaintext => {
            return Err(err(
                "SUBSTRATE_TLS_SERVER_NAME",
                "is meaningless with SUBSTRATE_TLS=plaintext",
            ));
        }
        Some(name) => {
            if rustls::pki_types::ServerName::try_from(name.to_string()).is_err() {
                return Err(err(
                    "SUBSTRATE_TLS_SERVER_NAME",
                    format!("{name:?} is not a DNS name or IP address"),
                ));
            }
            Some(name.to_string())
        }
    };
    let max_attempts = count("SUBSTRATE_MAX_ATTEMPTS", &raw.substrate_max_attempts, 5, 1)?;
    if max_attempts > 100 {
        return Err(err(
            "SUBSTRATE_MAX_ATTEMPTS",
            format!("{max_attempts} is above the maximum 100"),
        ));
    }
    Ok(SubstrateSettings {
        api_endpoint,
        router,
        template_namespace,
        template_name,
        force_boot,
        tls,
        ca_certs,
        tls_server_name,
        call_timeout: positive_dur("SUBSTRATE_CALL_TIMEOUT", &raw.substrate_call_timeout, "10s")?,
        max_attempts: max_attempts as u32,
        poll_interval: positive_dur(
            "SUBSTRATE_POLL_INTERVAL",
            &raw.substrate_poll_interval,
            "200ms",
        )?,
        running_timeout: positive_dur(
            "SUBSTRATE_RUNNING_TIMEOUT",
            &raw.substrate_running_timeout,
            "60s",
        )?,
        probe_timeout: positive_dur(
            "SUBSTRATE_PROBE_TIMEOUT",
            &raw.substrate_probe_timeout,
            "30s",
        )?,
    })
}

/// Reads a PEM bundle of CA certificates; each must be one rustls accepts as a trust anchor.
fn read_ca_bundle(
    path: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    const VAR: &str = "SUBSTRATE_CA_FILE";
    let bytes = std::fs::read(path).map_err(|e| err(VAR, format!("cannot read {path:?}: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(
                VAR,
                format!("{path:?} is not a PEM certificate bundle: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(err(VAR, format!("{path:?} holds no PEM certificate")));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots.add(c.clone()).map_err(|e| {
            err(
                VAR,
                format!("{path:?}: a certificate is unusable as a CA: {e}"),
            )
        })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{base, fails};
    use super::super::{BackendConfig, Config, RawConfig, RawIdentity};
    use super::*;

    fn substrate(c: Config) -> SubstrateSettings {
        match c.backend {
            BackendConfig::Substrate(s) => s,
            other => panic!("not substrate: {other:?}"),
        }
    }

    #[test]
    fn substrate_settings_are_validated_by_name() {
        let sub = || RawConfig {
            backend: Some("substrate".into()),
            identity: RawIdentity {
                identity: Some("static".into()),
                ..base().identity
            },
            substrate: RawSubstrate {
                substrate_actor_template: Some("ate-test/playwright".into()),
                ..base().substrate
            },
            ..base()
        };
        let c = Config::from_raw(sub()).unwrap();
        assert!(!c.needs_kube(), "substrate needs no Kubernetes client");
        let s = substrate(c);
        assert_eq!(
            s.api_endpoint.to_string(),
            "api.ate-system.svc.cluster.local:443"
        );
        assert_eq!(
            s.router.to_string(),
            "atenet-router.ate-system.svc.cluster.local:80"
        );
        assert_eq!(
            (s.template_namespace.as_str(), s.template_name.as_str()),
            ("ate-test", "playwright")
        );
        assert!(!s.force_boot);
        assert_eq!(s.tls, SubstrateTls::Verify);
        assert!(s.ca_certs.is_empty());
        assert_eq!(s.call_timeout, Duration::from_secs(10));
        assert_eq!(s.max_attempts, 5);
        assert_eq!(s.poll_interval, Duration::from_millis(200));
        assert_eq!(s.running_timeout, Duration::from_secs(60));
        assert_eq!(s.probe_timeout, Duration::from_secs(30));
        // IPv6 routers work when bracketed (the reference split at the first ':').
        let c = Config::from_raw(RawConfig {
            substrate: RawSubstrate {
                substrate_router_addr: Some("[fd00::1]:8080".into()),
                substrate_force_boot: Some("true".into()),
                substrate_tls: Some("plaintext".into()),
                ..sub().substrate
            },
            ..sub()
        })
        .unwrap();
        let s = substrate(c);
        assert_eq!(s.router.to_string(), "[fd00::1]:8080");
        assert!(s.force_boot);
        assert_eq!(s.tls, SubstrateTls::Plaintext);
        // Default identity for substrate is the pod one, which needs POD_NAMESPACE.
        fails(
            RawConfig {
                identity: RawIdentity {
                    identity: None,
                    ..sub().identity
                },
                ..sub()
            },
            "POD_NAMESPACE",
            "POD_NAMESPACE is required",
        );
        fails(
            RawConfig {
                substrate: RawSubstrate {
                    substrate_actor_template: None,
                    ..sub().substrate
                },
                ..sub()
            },
            "SUBSTRATE_ACTOR_TEMPLATE",
            "SUBSTRATE_ACTOR_TEMPLATE (namespace/name) is required for substrate backend",
        );
        for bad in ["playwright", "/playwright", "ns/", "NS/x", "a/b/c"] {
            fails(
                RawConfig {
                    substrate: RawSubstrate {
                        substrate_actor_template: Some(bad.into()),
                        ..sub().substrate
                    },
                    ..sub()
                },
                "SUBSTRATE_ACTOR_TEMPLATE",
                "SUBSTRATE_ACTOR_TEMPLATE must be 'namespace/name', got",
            );
        }
        let bad_addr = |var: &'static str, v: &str, needle: &str| {
            let mut raw = sub();
            match var {
                "SUBSTRATE_API_ENDPOINT" => raw.substrate.substrate_api_endpoint = Some(v.into()),
                _ => raw.substrate.substrate_router_addr = Some(v.into()),
            }
            fails(raw, var, needle);
        };
        bad_addr("SUBSTRATE_API_ENDPOINT", "api.example", "host:port");
        bad_addr("SUBSTRATE_API_ENDPOINT", "api.example:0", "out of range");
        bad_addr(
            "SUBSTRATE_API_ENDPOINT",
            "https://api:443",
            "without a scheme",
        );
        bad_addr("SUBSTRATE_ROUTER_ADDR", "fd00::1:80", "must be bracketed");
        bad_addr("SUBSTRATE_ROUTER_ADDR", "router:http", "not an integer");
        bad_addr("SUBSTRATE_ROUTER_ADDR", "[nothost]:80", "host:port");
        let one = |f: fn(&mut RawConfig), var: &str, needle: &str| {
            let mut raw = sub();
            f(&mut raw);
            fails(raw, var, needle);
        };
        one(
            |r| r.upstream_host = Some("preserve".into()),
            "UPSTREAM_HOST",
            "atenet routes by the Host header",
        );
        one(
            |r| r.substrate.substrate_force_boot = Some("yes please".into()),
            "SUBSTRATE_FORCE_BOOT",
            "not a boolean",
        );
        one(
            |r| r.substrate.substrate_tls = Some("off".into()),
            "SUBSTRATE_TLS",
            "verify, skip-verify, plaintext",
        );
        one(
            |r| r.substrate.substrate_ca_file = Some("/nonexistent/ca.pem".into()),
            "SUBSTRATE_CA_FILE",
            "cannot read",
        );
        one(
            |r| {
                r.substrate.substrate_tls = Some("skip-verify".into());
                r.substrate.substrate_ca_file = Some("/etc/hostname".into());
            },
            "SUBSTRATE_CA_FILE",
            "only used with SUBSTRATE_TLS=verify",
        );
        one(
            |r| {
                r.substrate.substrate_tls = Some("plaintext".into());
                r.substrate.substrate_tls_server_name = Some("api".into());
            },
            "SUBSTRATE_TLS_SERVER_NAME",
            "meaningless",
        );
        one(
            |r| r.substrate.substrate_tls_server_name = Some("not a name!".into()),
            "SUBSTRATE_TLS_SERVER_NAME",
            "not a DNS name",
        );
        one(
            |r| r.substrate.substrate_call_timeout = Some("0s".into()),
            "SUBSTRATE_CALL_TIMEOUT",
            "greater than zero",
        );
        one(
            |r| r.substrate.substrate_poll_interval = Some("fast".into()),
            "SUBSTRATE_POLL_INTERVAL",
            "duration",
        );
        one(
            |r| r.substrate.substrate_running_timeout = Some("-1s".into()),
            "SUBSTRATE_RUNNING_TIMEOUT",
            "negative",
        );
        one(
            |r| r.substrate.substrate_probe_timeout = Some("0".into()),
            "SUBSTRATE_PROBE_TIMEOUT",
            "greater than zero",
        );
        one(
            |r| r.substrate.substrate_max_attempts = Some("0".into()),
            "SUBSTRATE_MAX_ATTEMPTS",
            "below the minimum",
        );
        one(
            |r| r.substrate.substrate_max_attempts = Some("1000".into()),
            "SUBSTRATE_MAX_ATTEMPTS",
            "above the maximum",
        );

        // CA bundles: PEM certificates only.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        fails(
            RawConfig {
                substrate: RawSubstrate {
                    substrate_ca_file: Some(junk.to_string_lossy().into()),
                    ..sub().substrate
                },
                ..sub()
            },
            "SUBSTRATE_CA_FILE",
            "holds no PEM certificate",
        );
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        fails(
            RawConfig {
                substrate: RawSubstrate {
                    substrate_ca_file: Some(broken.to_string_lossy().into()),
                    ..sub().substrate
                },
                ..sub()
            },
            "SUBSTRATE_CA_FILE",
            "unusable as a CA",
        );
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let c = Config::from_raw(RawConfig {
            substrate: RawSubstrate {
                substrate_ca_file: Some(good.to_string_lossy().into()),
                substrate_tls_server_name: Some("api.ate-system.svc".into()),
                ..sub().substrate
            },
            ..sub()
        })
        .unwrap();
        let s = substrate(c);
        assert_eq!(s.ca_certs.len(), 1);
        assert_eq!(s.tls_server_name.as_deref(), Some("api.ate-system.svc"));
    }
}
