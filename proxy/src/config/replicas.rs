//! Settings for running several replicas: leader election and shared activity records
//! (LEADER_ELECTION_* and ACTIVITY_INTERVAL). Off by default: one replica works as it always did,
//! with or without Kubernetes.

use std::time::Duration;

use clap::Args;

use super::values::{boolean, dur, set};
use super::{BackendKind, ConfigError, err};
use crate::backend::naming::{valid_dns_label, valid_object_name};
use crate::config::duration;
use crate::replicas::ElectionConfig;

/// Raw replica settings (flattened into the command line and environment).
#[derive(Debug, Default, Clone, Args)]
#[command(next_help_heading = "Several replicas")]
pub struct RawReplicas {
    /// Run as one of several replicas: elect a leader with a coordination.k8s.io Lease; only the
    /// leader deletes idle sandboxes, judging from activity every replica records on the sandbox
    /// objects. Needs a Kubernetes backend.
    #[arg(long, env = "LEADER_ELECTION")]
    pub leader_election: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, env = "LEADER_ELECTION_LEASE_NAME")]
    pub leader_election_lease_name: Option<String>,
    /// Namespace of the leader Lease (default: POD_NAMESPACE).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// This replica's name in the election (default: POD_NAME, else the host name).
    #[arg(long, env = "LEADER_ELECTION_IDENTITY")]
    pub leader_election_identity: Option<String>,
    /// The pod's name (downward API); the default election identity.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How long the Lease stays valid after a renewal (whole seconds): the longest a dead leader
    /// keeps the others from reaping.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION")]
    pub leader_election_lease_duration: Option<String>,
    /// How long before the Lease expires the leader renews it (whole seconds).
    #[arg(long, env = "LEADER_ELECTION_RENEW_BEFORE")]
    pub leader_election_renew_before: Option<String>,
    /// Least time between two activity writes for one sandbox (default: IDLE_TTL / 4).
    #[arg(long, env = "ACTIVITY_INTERVAL")]
    pub activity_interval: Option<String>,
}

/// Validated replica settings; present only when LEADER_ELECTION is on.
#[derive(Debug, Clone)]
pub struct ReplicasConfig {
    pub election: ElectionConfig,
    pub activity_interval: Duration,
}

fn whole_seconds(
    var: &'static str,
    v: &Option<String>,
    default: &str,
    min: u64,
) -> Result<Duration, ConfigError> {
    let d = dur(var, v, default)?;
    if d.subsec_nanos() != 0 {
        return Err(err(
            var,
            format!(
                "{} is not a whole number of seconds (Lease durations are in seconds)",
                duration::format(d)
            ),
        ));
    }
    if d.as_secs() < min {
        return Err(err(var, format!("must be at least {min}s")));
    }
    Ok(d)
}

/// The host name, the last default for the election identity.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

impl ReplicasConfig {
    pub fn from_raw(
        raw: &RawReplicas,
        backend: BackendKind,
        pod_namespace: Option<&str>,
        idle_ttl: Duration,
    ) -> Result<Option<Self>, ConfigError> {
        let enabled = boolean("LEADER_ELECTION", &raw.leader_election, false)?;
        if !enabled {
            return Ok(None);
        }
        if backend == BackendKind::Local {
            return Err(err(
                "LEADER_ELECTION",
                "the local backend's sandboxes are this process's children, so they cannot be shared between replicas; use a Kubernetes backend or leave LEADER_ELECTION off",
            ));
        }
        let lease_name = set(&raw.leader_election_lease_name)
            .unwrap_or("sandcanary-proxy")
            .trim()
            .to_string();
        if !valid_object_name(&lease_name) {
            return Err(err(
                "LEADER_ELECTION_LEASE_NAME",
                format!("{lease_name:?} is not a valid object name (DNS-1123 subdomain)"),
            ));
        }
        let namespace = match set(&raw.leader_election_namespace).or(pod_namespace) {
            Some(ns) => ns.trim().to_string(),
            None => {
                return Err(err(
                    "LEADER_ELECTION_NAMESPACE",
                    "set LEADER_ELECTION_NAMESPACE or POD_NAMESPACE",
                ));
            }
        };
        if !valid_dns_label(&namespace) {
            return Err(err(
                "LEADER_ELECTION_NAMESPACE",
                format!("{namespace:?} is not a valid namespace name"),
            ));
        }
        let (var, identity) = match (
            set(&raw.leader_election_identity),
            set(&raw.pod_name),
            host_name(),
        ) {
            (Some(i), _, _) => ("LEADER_ELECTION_IDENTITY", i.trim().to_string()),
            (None, Some(p), _) => ("POD_NAME", p.trim().to_string()),
            (None, None, Some(h)) => ("LEADER_ELECTION_IDENTITY", h),
            (None, None, None) => {
                return Err(err(
                    "LEADER_ELECTION_IDENTITY",
                    "no identity: set LEADER_ELECTION_IDENTITY or POD_NAME (the host name is unknown)",
                ));
            }
        };
        if identity.len() > 253 || identity.chars().any(|c| c.is_control()) {
            return Err(err(
                var,
                format!("{identity:?} is not a usable identity (at most 253 printable characters)"),
            ));
        }
        let lease_duration = whole_seconds(
            "LEADER_ELECTION_LEASE_DURATION",
            &raw.leader_election_lease_duration,
            "15s",
            2,
        )?;
        let renew_before = whole_seconds(
            "LEADER_ELECTION_RENEW_BEFORE",
            &raw.leader_election_renew_before,
            "5s",
            1,
        )?;
        if renew_before >= lease_duration {
            return Err(err(
                "LEADER_ELECTION_RENEW_BEFORE",
                format!(
                    "{} must be shorter than LEADER_ELECTION_LEASE_DURATION ({})",
                    duration::format(renew_before),
                    duration::format(lease_duration)
                ),
            ));
        }
        let activity_interval = match set(&raw.activity_interval) {
            None => (idle_ttl / 4).max(Duration::from_millis(100)),
            Some(_) => dur("ACTIVITY_INTERVAL", &raw.activity_interval, "")?,
        };
        if activity_interval.is_zero() || activity_interval > idle_ttl / 2 {
            return Err(err(
                "ACTIVITY_INTERVAL",
                format!(
                    "{} must be greater than zero and at most half of IDLE_TTL ({}), so that a sandbox in use is on record well before it could look idle",
                    duration::format(activity_interval),
                    duration::format(idle_ttl)
                ),
            ));
        }
        Ok(Some(Self {
            election: ElectionConfig {
                lease_name,
                namespace,
                identity,
                lease_duration,
                renew_before,
            },
            activity_interval,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawReplicas {
        let mut r = RawReplicas {
            leader_election: Some("true".into()),
            ..Default::default()
        };
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "LEADER_ELECTION" => r.leader_election = v,
                "LEADER_ELECTION_LEASE_NAME" => r.leader_election_lease_name = v,
                "LEADER_ELECTION_NAMESPACE" => r.leader_election_namespace = v,
                "LEADER_ELECTION_IDENTITY" => r.leader_election_identity = v,
                "POD_NAME" => r.pod_name = v,
                "LEADER_ELECTION_LEASE_DURATION" => r.leader_election_lease_duration = v,
                "LEADER_ELECTION_RENEW_BEFORE" => r.leader_election_renew_before = v,
                "ACTIVITY_INTERVAL" => r.activity_interval = v,
                other => panic!("unknown {other}"),
            }
        }
        r
    }

    const TTL: Duration = Duration::from_secs(600);

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<ReplicasConfig>, ConfigError> {
        ReplicasConfig::from_raw(&raw(pairs), BackendKind::SandboxClaim, Some("proxy"), TTL)
    }

    #[test]
    fn off_by_default_and_on_with_defaults() {
        let off = ReplicasConfig::from_raw(&RawReplicas::default(), BackendKind::Local, None, TTL)
            .unwrap();
        assert!(off.is_none());
        let on = parse(&[("POD_NAME", "proxy-0")]).unwrap().unwrap();
        assert_eq!(on.election.lease_name, "sandcanary-proxy");
        assert_eq!(on.election.namespace, "proxy");
        assert_eq!(on.election.identity, "proxy-0");
        assert_eq!(on.election.lease_duration, Duration::from_secs(15));
        assert_eq!(on.election.renew_before, Duration::from_secs(5));
        assert_eq!(on.activity_interval, Duration::from_secs(150));
        let named = parse(&[("POD_NAME", "p"), ("LEADER_ELECTION_IDENTITY", "me")])
            .unwrap()
            .unwrap();
        assert_eq!(named.election.identity, "me");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (pairs, var) in [
            (vec![("LEADER_ELECTION", "maybe")], "LEADER_ELECTION"),
            (
                vec![("LEADER_ELECTION_LEASE_NAME", "Not_Valid")],
                "LEADER_ELECTION_LEASE_NAME",
            ),
            (
                vec![("LEADER_ELECTION_NAMESPACE", "a.b")],
                "LEADER_ELECTION_NAMESPACE",
            ),
            (
                vec![("LEADER_ELECTION_LEASE_DURATION", "1500ms")],
                "LEADER_ELECTION_LEASE_DURATION",
            ),
            (
                vec![("LEADER_ELECTION_LEASE_DURATION", "1s")],
                "LEADER_ELECTION_LEASE_DURATION",
            ),
            (
                vec![
                    ("LEADER_ELECTION_LEASE_DURATION", "4s"),
                    ("LEADER_ELECTION_RENEW_BEFORE", "4s"),
                ],
                "LEADER_ELECTION_RENEW_BEFORE",
            ),
            (vec![("ACTIVITY_INTERVAL", "0s")], "ACTIVITY_INTERVAL"),
            (vec![("ACTIVITY_INTERVAL", "301s")], "ACTIVITY_INTERVAL"),
            (vec![("ACTIVITY_INTERVAL", "soon")], "ACTIVITY_INTERVAL"),
            (
                vec![("LEADER_ELECTION_IDENTITY", "a\nb")],
                "LEADER_ELECTION_IDENTITY",
            ),
        ] {
            let e = parse(&pairs).expect_err(&format!("{pairs:?} is rejected"));
            assert_eq!(e.var, var, "{pairs:?}: {e}");
        }
        let e = ReplicasConfig::from_raw(&raw(&[]), BackendKind::Local, None, TTL).unwrap_err();
        assert_eq!(e.var, "LEADER_ELECTION");
        let e =
            ReplicasConfig::from_raw(&raw(&[]), BackendKind::SandboxClaim, None, TTL).unwrap_err();
        assert_eq!(e.var, "LEADER_ELECTION_NAMESPACE");
    }
}
