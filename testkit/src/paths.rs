//! Where things are in the checkout: the repository root, the sandbox server and the proxy binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The local backend's sandbox server, `deploy/sandbox/server.js`.
pub fn sandbox_server() -> PathBuf {
    repo_root().join("deploy/sandbox/server.js")
}

/// Fails, naming the make target, when the sandbox server's Node modules are not installed.
pub fn require_sandbox_node_modules() -> Result<(), Error> {
    let dir = repo_root().join("deploy/sandbox/node_modules/playwright-core");
    if dir.exists() {
        Ok(())
    } else {
        Err(Error::NodeModules(dir))
    }
}

/// The `sandcanary-proxy` binary of the running test's profile (`target/<profile>/`), built with
/// cargo when missing. For tests of other crates: cargo gives `CARGO_BIN_EXE_sandcanary-proxy` only
/// to the proxy crate's own tests and benches, which should pass that to [`crate::ProxyBuilder::new`].
pub fn proxy_binary() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Build(e.to_string()))?;
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| Error::Build(format!("no profile directory above {}", exe.display())))?;
    let bin = profile_dir.join("sandcanary-proxy");
    if bin.exists() {
        return Ok(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "sandcanary-proxy"])
        .current_dir(repo_root());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| Error::Build(e.to_string()))?;
    if !status.success() {
        return Err(Error::Build(status.to_string()));
    }
    if !bin.exists() {
        return Err(Error::Build(format!(
            "{} missing after build",
            bin.display()
        )));
    }
    Ok(bin)
}
