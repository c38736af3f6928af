//! The `sandcanary-bench` binary as a script would call it, against real local sandboxes.

mod common;

use std::process::Command;

use serde_json::Value;

fn bench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sandcanary-bench"));
    c.env("SANDCANARY_ROOT", common::repo_root());
    c
}

#[test]
fn run_local_prints_json_with_every_sample_and_writes_html() {
    common::sandbox_command();
    let dir = std::env::temp_dir().join(format!("sandcanary-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("r.html");
    let out = bench()
        .args([
            "run",
            "--local",
            "--samples",
            "2",
            "--scenarios",
            "cold,warm,restore,mcp",
            "--format",
            "json",
        ])
        .arg("--html-out")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 8);
    assert!(
        samples
            .iter()
            .all(|s| s["ok"] == true && s["total_ms"].as_f64().unwrap() > 0.0)
    );
    let summary = report["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 4);
    assert!(summary[0]["phases"]["total_ms"]["p99"].as_f64().is_some());
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 16);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_two_local_targets_prints_ratios() {
    common::sandbox_command();
    let out = bench()
        .args([
            "compare",
            "--samples",
            "2",
            "--scenarios",
            "warm",
            "--format",
            "markdown",
            "--pause-ms",
            "50",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| stable | warm | PASS |"), "{stdout}");
    assert!(stdout.contains("| canary | warm | PASS |"), "{stdout}");
    assert!(stdout.contains("| warm | total_ms |"), "{stdout}");
    assert!(stdout.contains("ratio p50"), "{stdout}");
}

#[test]
fn cdp_command_measures_a_bare_chromium() {
    let out = bench()
        .args(["cdp", "--samples", "2", "--format", "table"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("cdp  ") && stdout.contains("PASS"),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = bench()
        .args(["run", "--scenarios", "tepid", "--local"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));
    let out = bench().args(["run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose a target"));
    let out = bench()
        .args([
            "run",
            "--proxy",
            "http://127.0.0.1:1",
            "--admin",
            "http://127.0.0.1:1",
        ])
        .env_remove("SANDCANARY_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("session API token"));
}

#[test]
fn clients_command_runs_both_clients_against_one_sandbox() {
    common::sandbox_command();
    assert!(
        common::repo_root()
            .join("test/playwright/node_modules/playwright-core")
            .exists(),
        "run `make setup-node` first: test/playwright/node_modules is missing"
    );
    let out = bench()
        .args([
            "clients",
            "--samples",
            "2",
            "--format",
            "json",
            "--pause-ms",
            "50",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let samples = report["samples"].as_array().unwrap();
    for client in ["rust-client", "node-client"] {
        let mine: Vec<&Value> = samples.iter().filter(|s| s["target"] == client).collect();
        assert_eq!(mine.len(), 2, "{client}");
        assert!(
            mine.iter().all(|s| s["ok"] == true && s["status"] == 200),
            "{client}: {mine:?}"
        );
    }
}

/// The binary as a user runs it: no SANDCANARY_ROOT (issue 16).
fn bench_in(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sandcanary-bench"));
    // No backtrace variables either (the test runner may set them): the error as a user sees it.
    c.env_remove("SANDCANARY_ROOT")
        .env_remove("SANDCANARY_SANDBOX_SCRIPT")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .current_dir(dir);
    c
}

#[test]
fn from_inside_the_checkout_the_scripts_are_found_without_sandcanary_root() {
    common::sandbox_command();
    // The repository root and a subdirectory: the sandbox and the official client must start from
    // both (a relative default used to be resolved again inside deploy/sandbox).
    for (dir, args) in [
        (
            common::repo_root(),
            &["run", "--local", "--scenarios", "warm", "--samples", "1"][..],
        ),
        (
            common::repo_root().join("plugin/bench"),
            &["clients", "--samples", "1"][..],
        ),
    ] {
        let out = bench_in(&dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("PASS"));
    }
}

#[test]
fn outside_a_checkout_one_error_names_what_to_set_before_any_sample() {
    let dir = std::env::temp_dir().join(format!("sandcanary-outside-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (args, names) in [
        (
            &["run", "--local", "--samples", "20"][..],
            &["SANDCANARY_ROOT", "--sandbox-script"][..],
        ),
        (
            &["clients", "--samples", "20"][..],
            &["SANDCANARY_ROOT", "--official-script"][..],
        ),
        (
            &["run", "--local", "--sandbox-script", "nope/server.js"][..],
            &["--sandbox-script", "nope/server.js: no such file"][..],
        ),
    ] {
        let start = std::time::Instant::now();
        let out = bench_in(&dir).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: a report was printed");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one error: {err}");
        for name in names {
            assert!(err.contains(name), "{args:?}: {err}");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{args:?}: no sample may run"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
