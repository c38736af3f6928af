//! Errors. Messages name fields, env vars and files, never the secret values behind them.

use std::path::PathBuf;
use std::time::Duration;

/// A config value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GithubConfigError {
    /// The named field (JSON spelling) is wrong.
    #[error("github config field `{field}`: {reason}")]
    Invalid {
        /// The field's JSON name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A secret that could not be read; never carries the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The named environment variable is unset or not UTF-8.
    #[error("environment variable {name} is not set")]
    MissingEnv {
        /// Variable name.
        name: String,
    },
    /// The named file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// File path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The secret is empty or has characters that cannot go in a header.
    #[error("the secret from {origin} is empty or not a valid token")]
    Malformed {
        /// Where it came from (env var name or file path).
        origin: String,
    },
    /// The App private key is not a PEM RSA key.
    #[error("the GitHub App private key from {origin} is not a PEM RSA key")]
    BadKey {
        /// Where it came from.
        origin: String,
    },
}

/// What one GitHub REST call ended with, sorted by what the caller may safely do next.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// Primary or secondary rate limit (429, or 403 saying so); nothing was done.
    #[error("rate limited (HTTP {status}): {message}")]
    RateLimited {
        /// HTTP status.
        status: u16,
        /// How long GitHub asked us to wait, from `retry-after` or `x-ratelimit-reset`.
        wait: Option<Duration>,
        /// GitHub's message.
        message: String,
    },
    /// A 4xx other than a rate limit: the request was refused and repeating it will not help.
    #[error("GitHub refused the request (HTTP {status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// A 5xx: the request may or may not have taken effect.
    #[error("GitHub server error (HTTP {status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// No answer within the deadline: the request may or may not have taken effect.
    #[error("no answer from GitHub within {0:?}")]
    Timeout(Duration),
    /// The connection failed: the request may or may not have taken effect.
    #[error("transport error talking to GitHub: {0}")]
    Transport(String),
    /// A success status with a body we cannot read: the request did take effect.
    #[error("malformed answer from GitHub: {0}")]
    Malformed(String),
}

impl ApiError {
    /// True when a mutating request may have been applied even though we saw an error.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Timeout(_) | Self::Transport(_) | Self::Malformed(_)
        )
    }
}

/// Why a report could not be filed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] GithubConfigError),
    /// A secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The GitHub client could not be built.
    #[error("cannot build the GitHub client: {0}")]
    Client(String),
    /// A call failed for good.
    #[error("{operation} failed after {attempts} attempt(s): {source}")]
    Api {
        /// What we were doing.
        operation: &'static str,
        /// How many tries were made.
        attempts: u32,
        /// The last error.
        source: ApiError,
    },
    /// GitHub asked for a longer pause than `limits.maxWaitMs` allows.
    #[error("{operation}: GitHub asked to wait {wait:?}, longer than the configured maximum")]
    WaitTooLong {
        /// What we were doing.
        operation: &'static str,
        /// The requested wait.
        wait: Duration,
    },
    /// The hourly mutation budget is spent; nothing was sent.
    #[error("mutation budget of {0} per hour is spent; not sending")]
    BudgetExhausted(u32),
}
