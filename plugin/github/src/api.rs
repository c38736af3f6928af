//! The seam between the reporting logic and GitHub's REST API.
//!
//! Only the calls the reporter needs, each returning an [`ApiError`] that says whether the
//! request may have taken effect, which is what the no-duplicate rule depends on.

use std::future::Future;

use crate::error::ApiError;
use crate::render::IssueDraft;

/// What the reporter needs to know about an issue.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueRef {
    /// Issue number.
    pub number: u64,
    /// Web link.
    pub html_url: String,
    /// Markdown body (empty when GitHub has none).
    pub body: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Number of comments.
    pub comments: u64,
}

/// What the reporter needs to know about a comment.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentRef {
    /// Comment id.
    pub id: u64,
    /// Web link.
    pub html_url: String,
    /// Markdown body.
    pub body: String,
}

/// Which issues a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueState {
    /// Open issues.
    Open,
    /// Closed issues.
    Closed,
}

impl IssueState {
    /// GitHub's query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// GitHub issues of one repository.
pub trait IssueApi: Send + Sync {
    /// Issues (not pull requests) in `state` carrying `label`, newest first, first page only.
    fn issues_with_label(
        &self,
        label: &str,
        state: IssueState,
    ) -> impl Future<Output = Result<Vec<IssueRef>, ApiError>> + Send;

    /// Reopens a closed issue. Idempotent, so safe to retry.
    fn reopen_issue(&self, issue: u64) -> impl Future<Output = Result<IssueRef, ApiError>> + Send;

    /// Closes an issue as completed. Idempotent, so safe to retry.
    fn close_issue(&self, issue: u64) -> impl Future<Output = Result<IssueRef, ApiError>> + Send;

    /// Creates an issue. Never retried by the implementation.
    fn create_issue(
        &self,
        draft: &IssueDraft,
    ) -> impl Future<Output = Result<IssueRef, ApiError>> + Send;

    /// One page (1-based, 100 per page) of an issue's comments, oldest first.
    fn comments(
        &self,
        issue: u64,
        page: u64,
    ) -> impl Future<Output = Result<Vec<CommentRef>, ApiError>> + Send;

    /// Adds a comment. Never retried by the implementation.
    fn create_comment(
        &self,
        issue: u64,
        body: &str,
    ) -> impl Future<Output = Result<CommentRef, ApiError>> + Send;
}
