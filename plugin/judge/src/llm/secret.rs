//! API keys: the plugin-wide secret reference (crate `sandcanary-secret`), named in configuration
//! by env, file, own-namespace Secret or Argo argument, never inlined, never logged.

pub use sandcanary_secret::{ExposeSecret, SecretError, SecretKeyRef, SecretRef, SecretString};
