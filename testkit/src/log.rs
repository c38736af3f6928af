//! The child's stderr: kept as its last lines (for error messages), copied to a file (kept when
//! the test fails) and, on request, echoed to the test's own stderr with a `[label]` prefix.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// How many lines the tail keeps.
const TAIL_LINES: usize = 200;

#[derive(Clone, Default)]
pub(crate) struct LogTail(Arc<Mutex<VecDeque<String>>>);

impl LogTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines, joined with newlines.
    pub(crate) fn last(&self, n: usize) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let skip = lines.len().saturating_sub(n);
        lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Reads `stream` on its own thread until it closes (the proxy's sandboxes may hold it open after
/// the proxy exits, so nobody waits for that thread).
pub(crate) fn capture(
    stream: impl Read + Send + 'static,
    mut file: Option<File>,
    echo: Option<String>,
) -> LogTail {
    let tail = LogTail::default();
    let keep = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if let Some(label) = &echo {
                eprintln!("[{label}] {line}");
            }
            keep.push(line);
        }
    });
    tail
}
