//! Canary analysis job.
