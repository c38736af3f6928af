//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use sandcanary_bench::sandbox_process::SandboxCommand;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real sandbox workload with real Chromium.
pub fn sandbox_command() -> SandboxCommand {
    let cmd = SandboxCommand::from_repo(repo_root());
    assert!(
        cmd.script.exists(),
        "sandbox script {} missing",
        cmd.script.display()
    );
    assert!(
        repo_root()
            .join("deploy/sandbox/node_modules/playwright-core")
            .exists(),
        "run `make setup-node` first: deploy/sandbox/node_modules is missing"
    );
    cmd
}
