//! GitHub regression reports.
