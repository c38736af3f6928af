//! Identity of a regression, used to find an earlier report of the same one.
//!
//! Two failed analyses are "the same regression" when they concern the same Rollout, the same
//! canary revision and the same set of failing metrics. The full hash goes into a hidden marker in
//! the issue body, a short form into a label, so lookups can list open issues by label (cheap and
//! consistent, unlike the search API) and then confirm with the marker.

use sha2::{Digest, Sha256};

use crate::verdict::{FailedVerdict, RolloutRef};

/// Prefix of the dedup label; the short hash follows.
pub const LABEL_PREFIX: &str = "sandcanary:fp-";
/// Hex digits of the hash kept in the label (48 bits: collisions are confirmed by the marker).
const SHORT_HEX: usize = 12;

/// A SHA-256 over the regression's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    hex: String,
}

impl Fingerprint {
    /// Fingerprint of a verdict: rollout, canary revision, failing metrics (trimmed, sorted, unique).
    pub fn of(verdict: &FailedVerdict) -> Self {
        let mut metrics: Vec<&str> = verdict
            .failing_metrics
            .iter()
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
            .collect();
        metrics.sort_unstable();
        metrics.dedup();

        let mut hasher = Sha256::new();
        hasher.update(b"sandcanary-fingerprint-v1");
        // Length-prefix every field so that no two different inputs share an encoding.
        let mut field = |s: &str| {
            hasher.update((s.len() as u64).to_be_bytes());
            hasher.update(s.as_bytes());
        };
        field(verdict.rollout.namespace.trim());
        field(verdict.rollout.name.trim());
        field(verdict.canary_revision.trim());
        field(&metrics.len().to_string());
        for m in metrics {
            field(m);
        }
        let digest = hasher.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { hex }
    }

    /// The full 64-digit hex hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The short hash shown to people and used in the label.
    pub fn short(&self) -> &str {
        &self.hex[..SHORT_HEX]
    }

    /// The dedup label, e.g. `sandcanary:fp-0123456789ab`.
    pub fn label(&self) -> String {
        format!("{LABEL_PREFIX}{}", self.short())
    }

    /// The hidden HTML comment that carries the full hash in the issue body.
    pub fn marker(&self) -> String {
        format!("<!-- sandcanary:fingerprint={} -->", self.hex)
    }

    /// Whether an issue body carries this fingerprint's marker.
    pub fn is_marked_in(&self, body: &str) -> bool {
        body.contains(&self.marker())
    }
}

/// Prefix of the label every issue of one Rollout carries; a short hash of namespace and name
/// follows, so a passing analysis can list the Rollout's open issues with one call.
pub const ROLLOUT_LABEL_PREFIX: &str = "sandcanary:ro-";

/// Hex digits of a length-prefixed SHA-256 over `fields`, under `domain`.
fn short_hash(domain: &[u8], fields: &[&str], hex_digits: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for s in fields {
        hasher.update((s.len() as u64).to_be_bytes());
        hasher.update(s.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..hex_digits].to_string()
}

/// The label of every issue filed for this Rollout, e.g. `sandcanary:ro-0123456789ab`.
pub fn rollout_label(rollout: &RolloutRef) -> String {
    let hex = short_hash(
        b"sandcanary-rollout-v1",
        &[rollout.namespace.trim(), rollout.name.trim()],
        SHORT_HEX,
    );
    format!("{ROLLOUT_LABEL_PREFIX}{hex}")
}

/// Hidden marker of the canary revision an issue was filed for (hex only: the revision is data).
pub fn revision_marker(rollout: &RolloutRef, revision: &str) -> String {
    let hex = short_hash(
        b"sandcanary-revision-v1",
        &[
            rollout.namespace.trim(),
            rollout.name.trim(),
            revision.trim(),
        ],
        16,
    );
    format!("<!-- sandcanary:revision={hex} -->")
}

/// Hidden marker of the recovery comment a passing revision wrote, so a retried or repeated
/// recovery of the same revision never comments twice.
pub fn recovery_marker(rollout: &RolloutRef, revision: &str) -> String {
    let hex = short_hash(
        b"sandcanary-recovery-v1",
        &[
            rollout.namespace.trim(),
            rollout.name.trim(),
            revision.trim(),
        ],
        16,
    );
    format!("<!-- sandcanary:recovered-by={hex} -->")
}

/// Hidden marker naming the AnalysisRun that wrote a body or comment, so a repeated report of the
/// same run (e.g. after a plugin restart) is recognised instead of posted again.
pub fn run_marker(verdict: &FailedVerdict) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"sandcanary-run-v1");
    for s in [&verdict.rollout.namespace, &verdict.analysis_run] {
        hasher.update((s.len() as u64).to_be_bytes());
        hasher.update(s.as_bytes());
    }
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("<!-- sandcanary:run={hex} -->")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Links, RolloutRef};

    fn verdict(metrics: &[&str]) -> FailedVerdict {
        FailedVerdict {
            rollout: RolloutRef {
                namespace: "prod".into(),
                name: "proxy".into(),
            },
            canary_revision: "7d9f".into(),
            stable_revision: "5c1a".into(),
            analysis_run: "proxy-7d9f-3".into(),
            judge: "statistical".into(),
            score: Some(40.0),
            links: Links::default(),
            comparison: vec![],
            failing_metrics: metrics.iter().map(|s| s.to_string()).collect(),
            reasons: vec![],
            waterfall: None,
        }
    }

    #[test]
    fn order_duplicates_and_whitespace_of_metrics_do_not_matter() {
        let a = Fingerprint::of(&verdict(&["warm/total/p90", "cold/connect/median"]));
        let b = Fingerprint::of(&verdict(&[
            " cold/connect/median",
            "warm/total/p90",
            "warm/total/p90",
        ]));
        assert_eq!(a, b);
    }

    #[test]
    fn each_identity_field_changes_the_hash() {
        let base = verdict(&["warm/total/p90"]);
        let fp = Fingerprint::of(&base);
        let mut v = base.clone();
        v.canary_revision = "8e0a".into();
        assert_ne!(Fingerprint::of(&v), fp);
        let mut v = base.clone();
        v.rollout.namespace = "staging".into();
        assert_ne!(Fingerprint::of(&v), fp);
        let mut v = base.clone();
        v.failing_metrics.push("cold/total/p90".into());
        assert_ne!(Fingerprint::of(&v), fp);
        // Fields outside the identity (run, reasons, score, stable revision) do not.
        let mut v = base.clone();
        v.analysis_run = "other".into();
        v.reasons.push("slower".into());
        v.score = Some(1.0);
        v.stable_revision = "x".into();
        assert_eq!(Fingerprint::of(&v), fp);
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = verdict(&[]);
        a.rollout.namespace = "ab".into();
        a.rollout.name = "c".into();
        let mut b = verdict(&[]);
        b.rollout.namespace = "a".into();
        b.rollout.name = "bc".into();
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&b));
    }

    #[test]
    fn label_and_marker_shapes() {
        let fp = Fingerprint::of(&verdict(&["m"]));
        assert_eq!(fp.hex().len(), 64);
        assert!(fp.hex().chars().all(|c| c.is_ascii_hexdigit()));
        let label = fp.label();
        assert!(label.starts_with("sandcanary:fp-"));
        assert_eq!(label.len(), LABEL_PREFIX.len() + 12);
        assert!(label.len() <= 50, "GitHub label limit");
        assert!(fp.is_marked_in(&format!("text\n{}\n", fp.marker())));
        assert!(!fp.is_marked_in("text"));
    }

    #[test]
    fn rollout_label_and_revision_markers() {
        let a = verdict(&["m"]);
        let label = rollout_label(&a.rollout);
        assert!(
            label.starts_with(ROLLOUT_LABEL_PREFIX) && label.len() <= 50,
            "{label}"
        );
        let mut other = a.rollout.clone();
        other.name = "proxy2".into();
        assert_ne!(rollout_label(&other), label);
        assert_ne!(
            revision_marker(&a.rollout, "7d9f"),
            revision_marker(&a.rollout, "8e0a")
        );
        assert_ne!(
            revision_marker(&a.rollout, "7d9f"),
            recovery_marker(&a.rollout, "7d9f")
        );
        let m = recovery_marker(&a.rollout, "<script>");
        assert!(
            m.trim_start_matches("<!-- sandcanary:recovered-by=")
                .trim_end_matches(" -->")
                .chars()
                .all(|c| c.is_ascii_hexdigit()),
            "{m}"
        );
    }

    #[test]
    fn run_marker_depends_on_the_run() {
        let a = verdict(&[]);
        let mut b = a.clone();
        b.analysis_run = "proxy-7d9f-4".into();
        assert_ne!(run_marker(&a), run_marker(&b));
        assert_eq!(run_marker(&a), run_marker(&a.clone()));
    }
}
