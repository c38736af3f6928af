//! Where the local backend's sandbox program is. Each sandbox starts in a directory of its own, so
//! the path is made absolute here, once, against the directory the proxy was started in; unset, it
//! is the checkout's `deploy/sandbox/server.js`, found from that directory or a parent.

use std::path::{Path, PathBuf};

use super::{ConfigError, err};

/// The sandbox program inside a sandcanary checkout.
pub const IN_CHECKOUT: &str = "deploy/sandbox/server.js";

/// `LOCAL_SANDBOX_SERVER` (relative to `cwd`), or the checkout's server found from `cwd` upwards.
pub fn resolve(value: Option<&str>, cwd: &Path) -> Result<PathBuf, ConfigError> {
    match value {
        Some(v) => {
            let path = cwd.join(v);
            if path.is_file() {
                Ok(path)
            } else {
                Err(err(
                    "LOCAL_SANDBOX_SERVER",
                    format!("{v:?} is not a file (the sandbox server, {IN_CHECKOUT})"),
                ))
            }
        }
        None => cwd
            .ancestors()
            .map(|dir| dir.join(IN_CHECKOUT))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                err(
                    "LOCAL_SANDBOX_SERVER",
                    format!(
                        "not set, and {} is not inside a sandcanary checkout (no {IN_CHECKOUT} there or in a parent): \
                         run from the repository, or set LOCAL_SANDBOX_SERVER to the sandbox server",
                        cwd.display()
                    ),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn relative_value_is_made_absolute_against_the_start_directory() {
        let p = resolve(Some(IN_CHECKOUT), &repo()).unwrap();
        assert!(p.is_absolute() && p.is_file(), "{p:?}");
        assert_eq!(p, repo().join(IN_CHECKOUT));
    }

    #[test]
    fn unset_is_found_from_the_checkout_root_or_a_subdirectory() {
        for dir in [repo(), repo().join("proxy/src")] {
            let p = resolve(None, &dir).unwrap();
            assert!(p.is_absolute() && p.ends_with(IN_CHECKOUT), "{p:?}");
        }
    }

    #[test]
    fn unset_outside_a_checkout_names_the_variable() {
        let e = resolve(None, Path::new("/")).unwrap_err().to_string();
        assert!(e.starts_with("LOCAL_SANDBOX_SERVER: not set"), "{e}");
        assert!(e.contains("set LOCAL_SANDBOX_SERVER"), "{e}");
    }

    #[test]
    fn a_value_that_is_no_file_is_refused() {
        let e = resolve(Some("nope/server.js"), &repo())
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope/server.js\" is not a file"), "{e}");
    }
}
