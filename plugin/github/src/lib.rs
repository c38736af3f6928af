//! GitHub regression reports for failed canary verdicts.
//!
//! Given a [`FailedVerdict`], a [`Reporter`] opens an issue with the comparison table, a Mermaid
//! chart, the judge's reasons and links, or, when an open issue already has the same
//! [`Fingerprint`] (rollout, canary revision, failing metrics), adds a comment to it instead.
//!
//! What it promises:
//! - no duplicate issue, even when a create times out after GitHub accepted it: every retry of a
//!   create is preceded by a lookup by fingerprint label, and octocrab's own retries are off;
//! - GitHub's rate-limit etiquette: mutations one at a time, at least 1 s apart, within an hourly
//!   budget; `retry-after` and `x-ratelimit-reset` honoured, bounded back-off otherwise;
//! - untrusted text (measured data, judge output) is escaped: no mentions, links, HTML or markup;
//! - secrets are read from the env vars or files the config names and never logged;
//! - `dryRun` renders without sending anything;
//! - when a later analysis of the same Rollout passes on a newer canary revision
//!   ([`Reporter::recover`]), its open issues get one comment each (the revision, the new table)
//!   and, with `onRecovery: close`, are closed; retried calls never comment twice.

mod api;
mod chart;
mod config;
mod error;
mod escape;
mod fingerprint;
mod pacing;
mod render;
mod reporter;
mod rest;
mod secret;
mod verdict;

pub use api::{CommentRef, IssueApi, IssueRef, IssueState};
pub use config::{
    AppAuthConfig, AuthConfig, CONFIG_SCHEMA_ID, ClosedMatch, DEFAULT_API_URL, GithubConfig,
    Limits, OnRecovery, config_schema,
};
pub use error::{ApiError, GithubConfigError, ReportError, SecretError};
pub use fingerprint::{Fingerprint, LABEL_PREFIX};
pub use render::{IssueDraft, render_comment, render_issue, render_recovery_comment};
pub use reporter::{RecoveredIssue, RecoveryOutcome, ReportOutcome, Reporter};
pub use rest::RestApi;
pub use secret::Credentials;
pub use verdict::{
    ComparisonRow, FailedVerdict, Links, PassedVerdict, PhaseStats, RolloutRef, SampleSteps, Step,
    Waterfall,
};
