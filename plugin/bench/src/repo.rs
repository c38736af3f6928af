//! Where the repository's files are. The local targets and the Node baselines run scripts that
//! live in a sandcanary checkout (`deploy/sandbox/server.js`, `test/fixtures/bench/*.js`), so the
//! binary must know the checkout: `SANDCANARY_ROOT` when it is set, otherwise the directory the user
//! stands in or the nearest parent that is one. Paths come out absolute, so a child started in
//! another working directory gets the same file (a relative path would be resolved a second time).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The file that marks a checkout: the sandbox program every local target runs.
pub const SANDBOX_SCRIPT: &str = "deploy/sandbox/server.js";
/// The worker driving the official Playwright client (`sandcanary-bench clients`).
pub const OFFICIAL_CLIENT_SCRIPT: &str = "test/fixtures/bench/official-client.js";
/// The bare Node CDP client (`sandcanary-bench cdp --baseline`).
pub const RAW_CDP_SCRIPT: &str = "test/fixtures/bench/raw-cdp.js";

/// Why the checkout (or a file in it) was not found.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "{cwd} is not inside a sandcanary checkout (no {SANDBOX_SCRIPT} there or in a parent): \
         run from the repository, or set SANDCANARY_ROOT to it{hint}"
    )]
    NotACheckout { cwd: String, hint: &'static str },
    #[error("SANDCANARY_ROOT={root}: not a sandcanary checkout (no {SANDBOX_SCRIPT} there)")]
    BadRoot { root: String },
    #[error("cannot read the working directory")]
    Cwd(#[source] std::io::Error),
    #[error("{what} {path}: no such file{hint}")]
    Missing {
        what: &'static str,
        path: String,
        hint: String,
    },
}

/// A located checkout; its root is absolute.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// `SANDCANARY_ROOT`, else the working directory or its nearest parent holding
    /// [`SANDBOX_SCRIPT`]. `hint` is appended to the not-found error (e.g. naming a flag that
    /// replaces the checkout for this command).
    pub fn locate(hint: &'static str) -> Result<Self, RepoError> {
        let cwd = std::env::current_dir().map_err(RepoError::Cwd)?;
        Self::locate_from(std::env::var_os("SANDCANARY_ROOT"), &cwd, hint)
    }

    /// [`Repo::locate`] with the environment and working directory given (an empty
    /// `SANDCANARY_ROOT` counts as unset).
    pub fn locate_from(
        root_env: Option<OsString>,
        cwd: &Path,
        hint: &'static str,
    ) -> Result<Self, RepoError> {
        if let Some(root) = root_env.filter(|r| !r.is_empty()) {
            let root = cwd.join(root);
            return if root.join(SANDBOX_SCRIPT).is_file() {
                Ok(Self { root })
            } else {
                Err(RepoError::BadRoot {
                    root: root.display().to_string(),
                })
            };
        }
        cwd.ancestors()
            .find(|dir| dir.join(SANDBOX_SCRIPT).is_file())
            .map(|dir| Self {
                root: dir.to_path_buf(),
            })
            .ok_or_else(|| RepoError::NotACheckout {
                cwd: cwd.display().to_string(),
                hint,
            })
    }

    /// The checkout's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An existing file of the checkout; a missing one is an error naming it and, when the
    /// `node_modules` it needs are missing too, `make setup-node`.
    pub fn file(&self, what: &'static str, rel: &str) -> Result<PathBuf, RepoError> {
        let path = self.root.join(rel);
        if !path.is_file() {
            return Err(RepoError::Missing {
                what,
                path: path.display().to_string(),
                hint: String::new(),
            });
        }
        Ok(path)
    }

    /// Fails unless `dir` (relative to the root) has its npm packages installed.
    pub fn require_node_modules(&self, dir: &str) -> Result<(), RepoError> {
        let modules = self.root.join(dir).join("node_modules");
        if modules.is_dir() {
            Ok(())
        } else {
            Err(RepoError::Missing {
                what: "npm packages",
                path: modules.display().to_string(),
                hint: " (run `make setup-node` in the repository)".into(),
            })
        }
    }
}

/// A user-given path made absolute against the working directory, and checked to be a file;
/// `flag` names the flag or variable in the error.
pub fn user_file(flag: &'static str, path: &Path) -> Result<PathBuf, RepoError> {
    let abs = std::path::absolute(path).map_err(RepoError::Cwd)?;
    if abs.is_file() {
        Ok(abs)
    } else {
        Err(RepoError::Missing {
            what: flag,
            path: abs.display().to_string(),
            hint: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout() -> tempfile_dir::Dir {
        let d = tempfile_dir::Dir::new();
        std::fs::create_dir_all(d.0.join("deploy/sandbox/sub")).unwrap();
        std::fs::write(d.0.join(SANDBOX_SCRIPT), "").unwrap();
        d
    }

    /// A temporary directory removed on drop (no extra dependency for one test helper).
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "sandcanary-repo-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn found_from_the_root_and_from_a_subdirectory() {
        let d = checkout();
        let r = Repo::locate_from(None, &d.0, "").unwrap();
        assert_eq!(r.root(), d.0);
        let r = Repo::locate_from(None, &d.0.join("deploy/sandbox/sub"), "").unwrap();
        assert_eq!(r.root(), d.0);
        assert_eq!(
            r.file("sandbox", SANDBOX_SCRIPT).unwrap(),
            d.0.join(SANDBOX_SCRIPT)
        );
    }

    #[test]
    fn outside_a_checkout_names_the_variable() {
        let d = tempfile_dir::Dir::new();
        let e = Repo::locate_from(None, &d.0, " (or --sandbox-script)")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not inside a sandcanary checkout"), "{e}");
        assert!(e.contains("SANDCANARY_ROOT"), "{e}");
        assert!(e.ends_with("(or --sandbox-script)"), "{e}");
    }

    #[test]
    fn sandcanary_root_wins_and_is_checked() {
        let d = checkout();
        let elsewhere = tempfile_dir::Dir::new();
        let r = Repo::locate_from(Some(d.0.clone().into()), &elsewhere.0, "").unwrap();
        assert_eq!(r.root(), d.0);
        let e = Repo::locate_from(Some(elsewhere.0.clone().into()), &d.0, "")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("SANDCANARY_ROOT="), "{e}");
        // Empty counts as unset: found from the working directory.
        assert!(Repo::locate_from(Some("".into()), &d.0, "").is_ok());
    }

    #[test]
    fn missing_node_modules_points_at_setup_node() {
        let d = checkout();
        let r = Repo::locate_from(None, &d.0, "").unwrap();
        let e = r
            .require_node_modules("deploy/sandbox")
            .unwrap_err()
            .to_string();
        assert!(e.contains("make setup-node"), "{e}");
    }
}
