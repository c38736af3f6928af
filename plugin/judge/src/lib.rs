//! Canary judges for sandcanary: they turn bench samples of a stable and a canary proxy into a
//! verdict (Successful / Inconclusive / Failed / Error) with a 0-100 score and reasons.
//!
//! * [`threshold::ThresholdJudge`]: absolute limits per scenario and phase plus a maximum error rate.
//! * [`statistical::StatisticalJudge`]: canary vs stable, Mann-Whitney U and Hodges-Lehmann, scored
//!   the way Kayenta scores (weighted share of metrics passed, critical metrics, no-data rules).
//! * [`llm::LlmJudge`]: asks Gemini, an OpenAI-compatible endpoint or an A2A agent for a
//!   schema-constrained answer and falls back to the statistical verdict when it cannot be trusted.
//!
//! The input model ([`model`]) is plain serde data so the bench's output can be mapped onto it.

pub mod config;
pub mod judge;
pub mod llm;
pub mod model;
pub mod rules;
pub mod statistical;
pub mod stats;
pub mod threshold;
pub mod verdict;

pub use config::{JudgeConfig, JudgeConfigError};
pub use judge::Judge;
pub use model::{Comparison, FailedSample, InputError, MetricKey, ScenarioSamples, TargetSamples};
pub use verdict::{Classification, MetricResult, Verdict, VerdictPhase};
