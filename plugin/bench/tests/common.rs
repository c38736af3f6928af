//! Shared helpers for the integration tests.
#![allow(dead_code)]

use sandcanary_bench::sandbox_process::SandboxCommand;
pub use sandcanary_testkit::repo_root;

/// The real sandbox workload with real Chromium.
pub fn sandbox_command() -> SandboxCommand {
    let cmd = SandboxCommand::from_repo(repo_root());
    assert!(
        cmd.script.exists(),
        "sandbox script {} missing",
        cmd.script.display()
    );
    sandcanary_testkit::require_sandbox_node_modules().unwrap();
    cmd
}
