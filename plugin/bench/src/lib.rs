//! sandcanary bench.
