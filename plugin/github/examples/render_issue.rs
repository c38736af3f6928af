//! Prints the issue a failed verdict would open, without sending anything.
//!
//! `cargo run -p sandcanary-github --example render_issue -- verdict.json [owner/repo]`
//! where `verdict.json` holds a `FailedVerdict` (camelCase JSON).

use std::process::ExitCode;

use sandcanary_github::{FailedVerdict, GithubConfig, render_issue};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: render_issue VERDICT.json [OWNER/REPO]");
        return ExitCode::from(2);
    };
    let verdict: FailedVerdict = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot read a verdict from {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (owner, repo) = args
        .get(1)
        .and_then(|r| r.split_once('/'))
        .unwrap_or(("example", "example"));
    let mut config = GithubConfig::new(owner, repo);
    config.dry_run = true;
    if let Err(e) = config.validate() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let draft = render_issue(&config, &verdict);
    println!("Title: {}", draft.title);
    println!("Labels: {}", draft.labels.join(", "));
    println!("\n{}", draft.body);
    ExitCode::SUCCESS
}
