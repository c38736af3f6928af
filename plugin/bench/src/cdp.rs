//! CDP client (to do).
