//! Files a failed verdict as a GitHub issue, or as a comment on the open issue of the same
//! regression, without ever creating the same issue twice.
//!
//! The order of calls is the point: look up by fingerprint label, then create or comment; after
//! any failed create, look up again before trying again, because a create GitHub accepted may
//! still have failed on our side (timeout, 5xx after commit, unreadable answer).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::api::{CommentRef, IssueApi, IssueRef, IssueState};
use crate::config::{ClosedMatch, GithubConfig, OnRecovery};
use crate::error::{ApiError, ReportError};
use crate::fingerprint::{
    Fingerprint, recovery_marker, revision_marker, rollout_label, run_marker,
};
use crate::pacing::MutationGate;
use crate::render::{self, IssueDraft};
use crate::rest::RestApi;
use crate::secret::Credentials;
use crate::verdict::{FailedVerdict, PassedVerdict};

/// What a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportOutcome {
    /// Dry run: what would have been sent, nothing was.
    DryRun {
        /// The issue a first occurrence would open.
        draft: IssueDraft,
        /// The comment a repeat would add.
        comment: String,
    },
    /// A new issue. `recovered` means an earlier try had in fact created it.
    Created {
        /// Issue number.
        number: u64,
        /// Web link.
        url: String,
        /// The issue was found by fingerprint after a failed-looking create.
        recovered: bool,
    },
    /// The regression already had an open issue; a comment was added.
    Commented {
        /// Issue number.
        number: u64,
        /// Web link of the issue.
        issue_url: String,
        /// Web link of the comment.
        comment_url: String,
    },
    /// Only a closed issue had the fingerprint and the policy is `reopen`: it was reopened and
    /// commented on.
    Reopened {
        /// Issue number.
        number: u64,
        /// Web link of the issue.
        url: String,
        /// Web link of the comment.
        comment_url: String,
    },
    /// This AnalysisRun was already reported on that issue; nothing was sent.
    AlreadyReported {
        /// Issue number.
        number: u64,
        /// Web link.
        url: String,
    },
}

/// What [`Reporter::recover`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveryOutcome {
    /// `onRecovery: none`: nothing was looked up.
    Disabled,
    /// Dry run: the comment an open issue would get; nothing was sent.
    DryRun {
        /// The recovery comment.
        comment: String,
    },
    /// The Rollout has no open issue for another canary revision.
    NothingOpen,
    /// The open issues of earlier revisions, each commented on (and closed with `close`).
    Resolved(Vec<RecoveredIssue>),
}

/// One open issue a passing revision resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredIssue {
    /// Issue number.
    pub number: u64,
    /// Web link of the issue.
    pub url: String,
    /// A comment was added now (false: this revision's comment was there already).
    pub commented: bool,
    /// The issue was closed.
    pub closed: bool,
}

/// Reports failed verdicts for one repository.
///
/// Reporters are cheap to make (one per AnalysisRun is fine): pacing, the hourly budget and the
/// one-report-at-a-time lock are shared by every reporter of the process that talks to the same
/// API URL, since GitHub counts limits per credential and host, not per object. The limits of
/// the first reporter for an API URL apply to all of them.
pub struct Reporter<A = RestApi> {
    config: GithubConfig,
    api: Option<A>,
    shared: Arc<Shared>,
}

/// What all reporters of one API URL share.
#[derive(Debug)]
struct Shared {
    gate: MutationGate,
    serial: Mutex<()>,
}

/// Process-wide [`Shared`] per API URL.
fn shared_for(config: &GithubConfig) -> Arc<Shared> {
    static BY_API_URL: LazyLock<std::sync::Mutex<HashMap<String, Arc<Shared>>>> =
        LazyLock::new(Default::default);
    let mut map = BY_API_URL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(config.api_url.trim_end_matches('/').to_string())
        .or_insert_with(|| {
            Arc::new(Shared {
                gate: MutationGate::new(
                    config.limits.min_mutation_interval(),
                    config.limits.max_mutations_per_hour,
                ),
                serial: Mutex::new(()),
            })
        })
        .clone()
}

impl<A> std::fmt::Debug for Reporter<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("owner", &self.config.owner)
            .field("repo", &self.config.repo)
            .field("dry_run", &self.config.dry_run)
            .finish_non_exhaustive()
    }
}

impl Reporter<RestApi> {
    /// Validates the config, loads the credentials it names and builds the GitHub client. A dry
    /// run loads no credentials and builds no client. Call inside a tokio runtime.
    pub fn from_config(config: GithubConfig) -> Result<Self, ReportError> {
        config.validate()?;
        let api = if config.dry_run {
            None
        } else {
            let credentials = Credentials::load(&config.auth)?;
            Some(RestApi::new(&config, credentials)?)
        };
        Ok(Self::assemble(config, api))
    }
}

impl<A: IssueApi> Reporter<A> {
    /// A reporter over any [`IssueApi`]; `dryRun` in the config still wins.
    pub fn with_api(config: GithubConfig, api: A) -> Result<Self, ReportError> {
        config.validate()?;
        let api = (!config.dry_run).then_some(api);
        Ok(Self::assemble(config, api))
    }

    fn assemble(config: GithubConfig, api: Option<A>) -> Self {
        let shared = shared_for(&config);
        Self {
            config,
            api,
            shared,
        }
    }

    /// The issue a first occurrence of this verdict would open.
    pub fn render(&self, verdict: &FailedVerdict) -> IssueDraft {
        render::render_issue(&self.config, verdict)
    }

    /// Files the verdict: a new issue, a comment on the open issue with the same fingerprint, or
    /// nothing if this AnalysisRun is already there. Reports are handled one at a time.
    pub async fn report(&self, verdict: &FailedVerdict) -> Result<ReportOutcome, ReportError> {
        let fp = Fingerprint::of(verdict);
        let draft = render::issue(&self.config, verdict, &fp, None);
        let Some(api) = &self.api else {
            info!(
                owner = %self.config.owner,
                repo = %self.config.repo,
                fingerprint = fp.short(),
                "dry run: rendered the GitHub issue without sending it"
            );
            return Ok(ReportOutcome::DryRun {
                draft,
                comment: render::comment(verdict),
            });
        };

        let _one_at_a_time = self.shared.serial.lock().await;
        let run = run_marker(verdict);
        if let Some(issue) = self.find_issue(api, &fp, IssueState::Open).await? {
            if self.has_run(api, &issue, &run).await? {
                return Ok(already_reported(issue, &fp));
            }
            return self
                .comment(api, issue, &render::comment(verdict), &run)
                .await;
        }
        match self.find_issue(api, &fp, IssueState::Closed).await? {
            None => self.create(api, &fp, &draft).await,
            // Closed after this very run was reported: someone decided, leave it be.
            Some(closed) if self.has_run(api, &closed, &run).await? => {
                Ok(already_reported(closed, &fp))
            }
            Some(closed) => match self.config.closed_match {
                ClosedMatch::Link => {
                    let draft = render::issue(&self.config, verdict, &fp, Some(closed.number));
                    self.create(api, &fp, &draft).await
                }
                ClosedMatch::Reopen => {
                    self.reopen(api, &closed).await?;
                    let outcome = self
                        .comment(api, closed, &render::comment(verdict), &run)
                        .await?;
                    Ok(match outcome {
                        ReportOutcome::Commented {
                            number,
                            issue_url,
                            comment_url,
                        } => ReportOutcome::Reopened {
                            number,
                            url: issue_url,
                            comment_url,
                        },
                        other => other,
                    })
                }
            },
        }
    }

    /// A passed analysis: the Rollout's open issues filed for another canary revision get one
    /// comment each (the revision, the new table) and, with `onRecovery: close`, are closed.
    /// Issues of the passing revision itself are left alone, so a flapping canary does not
    /// open-close-open; closed issues are never touched (the reopen/link rules of
    /// [`Reporter::report`] apply when a regression comes back). Safe to call again: a
    /// revision comments at most once per issue, and closing is idempotent.
    pub async fn recover(&self, verdict: &PassedVerdict) -> Result<RecoveryOutcome, ReportError> {
        let policy = self.config.on_recovery;
        if policy == OnRecovery::None {
            return Ok(RecoveryOutcome::Disabled);
        }
        let closing = policy == OnRecovery::Close;
        let body = render::render_recovery_comment(verdict, closing);
        let Some(api) = &self.api else {
            return Ok(RecoveryOutcome::DryRun { comment: body });
        };
        let _one_at_a_time = self.shared.serial.lock().await;
        let label = rollout_label(&verdict.rollout);
        let passing = revision_marker(&verdict.rollout, &verdict.canary_revision);
        let marker = recovery_marker(&verdict.rollout, &verdict.canary_revision);
        let mut open = self
            .read("list the Rollout's open issues", || {
                api.issues_with_label(&label, IssueState::Open)
            })
            .await?;
        // Ours (label and a revision marker) and filed for another revision.
        open.retain(|i| {
            i.labels.contains(&label)
                && i.body.contains("<!-- sandcanary:revision=")
                && !i.body.contains(&passing)
        });
        open.sort_by_key(|i| i.number);
        if open.is_empty() {
            return Ok(RecoveryOutcome::NothingOpen);
        }
        let mut resolved = Vec::with_capacity(open.len());
        for issue in open {
            let commented = if self.has_run(api, &issue, &marker).await? {
                info!(
                    issue = issue.number,
                    "this revision's recovery comment is there already"
                );
                false
            } else {
                self.comment(api, issue.clone(), &body, &marker).await?;
                true
            };
            if closing {
                self.close(api, &issue).await?;
            }
            resolved.push(RecoveredIssue {
                number: issue.number,
                url: issue.html_url,
                commented,
                closed: closing,
            });
        }
        Ok(RecoveryOutcome::Resolved(resolved))
    }

    /// Closes an issue as completed; closing is idempotent, so ordinary retries are safe.
    async fn close(&self, api: &A, issue: &IssueRef) -> Result<(), ReportError> {
        self.retrying("close issue", |_| async {
            self.shared
                .gate
                .run(api.close_issue(issue.number))
                .await
                .map_err(Failure::Stop)?
                .map_err(Failure::Api)?;
            info!(issue = issue.number, "closed recovered issue");
            Ok(())
        })
        .await
    }

    /// Whether this AnalysisRun already wrote the issue or one of its recent comments.
    async fn has_run(&self, api: &A, issue: &IssueRef, run: &str) -> Result<bool, ReportError> {
        Ok(issue.body.contains(run) || self.find_comment(api, issue, run).await?.is_some())
    }

    /// Reopens an issue; reopening is idempotent, so ordinary retries are safe.
    async fn reopen(&self, api: &A, issue: &IssueRef) -> Result<(), ReportError> {
        self.retrying("reopen issue", |_| async {
            self.shared
                .gate
                .run(api.reopen_issue(issue.number))
                .await
                .map_err(Failure::Stop)?
                .map_err(Failure::Api)?;
            info!(issue = issue.number, "reopened issue");
            Ok(())
        })
        .await
    }

    /// The issue in `state` carrying this fingerprint, if any: of several, the oldest open one
    /// (the one people have been following) or the newest closed one.
    async fn find_issue(
        &self,
        api: &A,
        fp: &Fingerprint,
        state: IssueState,
    ) -> Result<Option<IssueRef>, ReportError> {
        let label = fp.label();
        let issues = self
            .read("list issues by fingerprint label", || {
                api.issues_with_label(&label, state)
            })
            .await?;
        let candidates = issues
            .into_iter()
            .filter(|issue| issue.labels.contains(&label))
            .filter(|issue| {
                // The label is the key; the marker, when present, must agree (a short-hash clash).
                let ours = fp.is_marked_in(&issue.body)
                    || !issue.body.contains("<!-- sandcanary:fingerprint=");
                if !ours {
                    warn!(
                        issue = issue.number,
                        label = %label,
                        "issue has the fingerprint label but another fingerprint; ignoring it"
                    );
                }
                ours
            });
        Ok(match state {
            IssueState::Open => candidates.min_by_key(|issue| issue.number),
            IssueState::Closed => candidates.max_by_key(|issue| issue.number),
        })
    }

    /// A comment with this run's marker near the end of the issue's comments, if any.
    async fn find_comment(
        &self,
        api: &A,
        issue: &IssueRef,
        run: &str,
    ) -> Result<Option<CommentRef>, ReportError> {
        // With `n` known comments, a new one lands at index n: look at its page and the one
        // holding the last known comment.
        let mut pages = vec![issue.comments / 100 + 1];
        if issue.comments > 0 {
            pages.insert(0, (issue.comments - 1) / 100 + 1);
        }
        pages.dedup();
        for page in pages {
            let comments = self
                .read("list comments", || api.comments(issue.number, page))
                .await?;
            if let Some(found) = comments.into_iter().find(|c| c.body.contains(run)) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn create(
        &self,
        api: &A,
        fp: &Fingerprint,
        draft: &IssueDraft,
    ) -> Result<ReportOutcome, ReportError> {
        let draft = std::sync::Mutex::new(draft.clone());
        self.retrying("create issue", |attempt| {
            let draft = &draft;
            async move {
                // A retry must first rule out that the previous try went through.
                if attempt > 1
                    && let Some(issue) = self
                        .find_issue(api, fp, IssueState::Open)
                        .await
                        .map_err(Failure::Stop)?
                {
                    info!(
                        issue = issue.number,
                        fingerprint = fp.short(),
                        "an earlier create had gone through; not creating again"
                    );
                    return Ok(ReportOutcome::Created {
                        number: issue.number,
                        url: issue.html_url,
                        recovered: true,
                    });
                }
                let current = draft.lock().expect("draft lock").clone();
                match self
                    .shared
                    .gate
                    .run(api.create_issue(&current))
                    .await
                    .map_err(Failure::Stop)?
                {
                    Ok(issue) => {
                        if !issue.labels.contains(&fp.label()) {
                            warn!(
                                issue = issue.number,
                                "GitHub dropped the fingerprint label (does the credential have \
                                 triage access?); repeats of this regression will open new issues"
                            );
                        }
                        info!(
                            issue = issue.number,
                            fingerprint = fp.short(),
                            "opened issue"
                        );
                        Ok(ReportOutcome::Created {
                            number: issue.number,
                            url: issue.html_url,
                            recovered: false,
                        })
                    }
                    // GitHub refuses the whole issue when an assignee cannot be assigned; the
                    // report matters more than the hand-off, so file it unassigned (nothing was
                    // created).
                    Err(ApiError::Rejected {
                        status: 422,
                        message,
                    }) if !current.assignees.is_empty() => {
                        warn!(
                            assignees = ?current.assignees,
                            %message,
                            "GitHub refused the assignees; filing the issue unassigned"
                        );
                        draft.lock().expect("draft lock").assignees.clear();
                        Err(Failure::Again(ApiError::Rejected {
                            status: 422,
                            message,
                        }))
                    }
                    Err(e) => Err(Failure::Api(e)),
                }
            }
        })
        .await
    }

    async fn comment(
        &self,
        api: &A,
        issue: IssueRef,
        body: &str,
        run: &str,
    ) -> Result<ReportOutcome, ReportError> {
        self.retrying("comment on issue", |attempt| {
            let issue = &issue;
            async move {
                // A retry must first rule out that the previous try went through.
                if attempt > 1
                    && let Some(comment) = self
                        .find_comment(api, issue, run)
                        .await
                        .map_err(Failure::Stop)?
                {
                    info!(
                        issue = issue.number,
                        comment = comment.id,
                        "an earlier comment had gone through; not commenting again"
                    );
                    return Ok(ReportOutcome::Commented {
                        number: issue.number,
                        issue_url: issue.html_url.clone(),
                        comment_url: comment.html_url,
                    });
                }
                let comment = self
                    .shared
                    .gate
                    .run(api.create_comment(issue.number, body))
                    .await
                    .map_err(Failure::Stop)?
                    .map_err(Failure::Api)?;
                info!(
                    issue = issue.number,
                    comment = comment.id,
                    "commented on issue"
                );
                Ok(ReportOutcome::Commented {
                    number: issue.number,
                    issue_url: issue.html_url.clone(),
                    comment_url: comment.html_url,
                })
            }
        })
        .await
    }

    /// Runs a read, retrying what is worth retrying.
    async fn read<T, F, Fut>(&self, operation: &'static str, mut call: F) -> Result<T, ReportError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        self.retrying(operation, |_| {
            let read = call();
            async move { read.await.map_err(Failure::Api) }
        })
        .await
    }

    /// Runs `attempt(n)` for n = 1, 2, ... until it succeeds, fails for good, or
    /// `limits.maxAttempts` is spent. Between tries it waits as long as GitHub asked (a wait longer
    /// than `limits.maxWaitMs` ends the operation at once), or backs off: doubling from
    /// `retryBackoffMs`, or from `rateLimitFallbackMs` after a rate limit that named no wait, never
    /// longer than `limits.maxWaitMs`. Refusals are never retried.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, ReportError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let limits = &self.config.limits;
        let max_wait = limits.max_wait();
        let attempts = AtomicU32::new(0);
        let too_long = std::sync::Mutex::new(None);
        let backoff = ExponentialBuilder::new()
            .with_min_delay(limits.retry_backoff())
            .with_max_delay(max_wait)
            .with_max_times(limits.max_attempts.saturating_sub(1) as usize);
        let result = (|| attempt(attempts.fetch_add(1, Ordering::Relaxed) + 1))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| match f {
                Failure::Stop(_) | Failure::Api(ApiError::Rejected { .. }) => false,
                Failure::Api(_) | Failure::Again(_) => true,
            })
            .adjust(|f: &Failure, wait| {
                let error = match f {
                    // The request changed and nothing was created: go again at once.
                    Failure::Again(_) => return Some(Duration::ZERO),
                    Failure::Api(e) => e,
                    Failure::Stop(_) => return None,
                };
                // `None` from the backoff: the attempts are spent.
                let wait = wait?;
                let wait = match error {
                    ApiError::RateLimited {
                        wait: Some(asked), ..
                    } => {
                        if *asked > max_wait {
                            *too_long.lock().expect("wait lock") = Some(*asked);
                            return None;
                        }
                        *asked
                    }
                    ApiError::RateLimited { wait: None, .. } => {
                        let tried = attempts.load(Ordering::Relaxed);
                        let doubling = 2u32.saturating_pow(tried.saturating_sub(1).min(16));
                        limits.rate_limit_fallback().saturating_mul(doubling)
                    }
                    _ => wait,
                };
                Some(wait.min(max_wait))
            })
            .notify(|f: &Failure, wait| {
                if let Failure::Api(error) = f {
                    warn!(
                        operation,
                        attempt = attempts.load(Ordering::Relaxed),
                        wait_ms = wait.as_millis() as u64,
                        may_have_applied = error.is_ambiguous(),
                        error = %error,
                        "GitHub call failed; retrying"
                    );
                }
            })
            .await;
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Stop(e)) => Err(e),
            Err(Failure::Api(source) | Failure::Again(source)) => {
                if let Some(wait) = too_long.lock().expect("wait lock").take() {
                    return Err(ReportError::WaitTooLong { operation, wait });
                }
                Err(ReportError::Api {
                    operation,
                    attempts: attempts.load(Ordering::Relaxed),
                    source,
                })
            }
        }
    }
}

/// How one try of a retried call ended, when it did not succeed.
enum Failure {
    /// GitHub's (or the transport's) error: retried unless it is a refusal.
    Api(ApiError),
    /// The request was changed after this refusal (assignees dropped) and is sent again at once.
    Again(ApiError),
    /// Ends the operation as it is (a failed look-up before a retry, the mutation budget).
    Stop(ReportError),
}

fn already_reported(issue: IssueRef, fp: &Fingerprint) -> ReportOutcome {
    info!(
        issue = issue.number,
        fingerprint = fp.short(),
        "this analysis run is already reported"
    );
    ReportOutcome::AlreadyReported {
        number: issue.number,
        url: issue.html_url,
    }
}
