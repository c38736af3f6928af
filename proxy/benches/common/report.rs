//! Plain Markdown tables on stdout, so a run's output can be pasted into docs/benchmarks/proxy.md.

pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    println!("\n### {title}\n");
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
    println!();
}

/// "met" / "NOT met", for the target column.
pub fn verdict(ok: bool) -> String {
    if ok { "met".into() } else { "NOT met".into() }
}
