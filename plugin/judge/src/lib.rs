//! canary judges.
