//! sandcanary-proxy library.
