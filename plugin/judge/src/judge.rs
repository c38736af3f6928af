//! The seam every judge implements.

use async_trait::async_trait;

use crate::llm::prompt::ContextText;
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

    /// Judges with extra untrusted context (the proxies' pod logs). Only the LLM judge reads
    /// it; the numeric judges ignore it, so callers need not know which judge they hold.
    async fn judge_with_context(&self, input: &Comparison, _context: &[ContextText]) -> Verdict {
        self.judge(input).await
    }
}
