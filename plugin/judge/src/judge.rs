//! The seam every judge implements.

use async_trait::async_trait;

use crate::model::Comparison;
use crate::verdict::Verdict;

/// Decides whether a canary may be promoted. Invalid input gives an `Error` verdict, never a
/// panic; judges that call out (the LLM judge) are async, so the trait is.
#[async_trait]
pub trait Judge: Send + Sync {
    /// A short name for logs and the verdict (`threshold`, `statistical`, `llm`).
    fn name(&self) -> &str;

    /// Judges one comparison.
    async fn judge(&self, input: &Comparison) -> Verdict;
}
