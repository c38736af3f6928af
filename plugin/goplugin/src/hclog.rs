//! Logs as hclog-compatible JSON lines on file descriptor 2, which go-plugin's host re-logs at
//! the line's `@level`. Every value is a JSON string: a non-string `@message`, `@level` or
//! `@timestamp` would crash the host's log reader.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

/// Values longer than this are cut so a line stays far below the host's 64 KiB line limit.
const MAX_VALUE: usize = 4096;

/// A `tracing` layer writing hclog JSON to stderr.
pub struct HclogLayer {
    module: String,
}

impl HclogLayer {
    pub fn new(module: &str) -> Self {
        HclogLayer {
            module: module.to_string(),
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_VALUE {
        let mut cut = MAX_VALUE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

struct Fields {
    message: String,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, s);
    }
}

impl Fields {
    fn put(&mut self, field: &Field, s: String) {
        if field.name().starts_with("log.") {
            // Source locations bridged from the `log` crate: noise in the controller's log.
            return;
        }
        if field.name() == "message" {
            self.message = clip(s);
        } else {
            // Keys starting with '@' are reserved by hclog; keep ours apart.
            let key = field.name().trim_start_matches('@').to_string();
            self.rest.insert(key, Value::String(clip(s)));
        }
    }
}

/// One log line for `level`, `message` and string fields (public for tests and callers
/// that log before `tracing` is set up).
pub fn format_line(level: &str, module: &str, message: &str, fields: Map<String, Value>) -> String {
    let mut obj = Map::new();
    obj.insert("@level".into(), Value::String(level.into()));
    obj.insert("@message".into(), Value::String(message.into()));
    obj.insert(
        "@timestamp".into(),
        Value::String(humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()),
    );
    obj.insert("@module".into(), Value::String(module.into()));
    for (k, v) in fields {
        obj.entry(k).or_insert(v);
    }
    let mut line = Value::Object(obj).to_string();
    line.push('\n');
    line
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields {
            message: String::new(),
            rest: Map::new(),
        };
        event.record(&mut f);
        let line = format_line(
            level_name(event.metadata().level()),
            &self.module,
            &f.message,
            f.rest,
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Installs the hclog layer as the global subscriber at `max_level`; the yamux crate's own
/// chatter is kept to warnings.
pub fn init(module: &str, max_level: Level) {
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(max_level)
        .with_target("tokio_yamux", Level::WARN);
    let _ = tracing_subscriber::registry()
        .with(HclogLayer::new(module).with_filter(filter))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys_are_strings_and_timestamp_has_micros() {
        let mut m = Map::new();
        m.insert("metric".into(), Value::String("m".into()));
        m.insert("@level".into(), Value::String("bogus".into()));
        let line = format_line("warn", "sandcanary", "hello", m);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "hello");
        assert_eq!(v["metric"], "m");
        let ts = v["@timestamp"].as_str().unwrap();
        // 2006-01-02T15:04:05.000000Z07:00
        assert_eq!(ts.len(), "2026-01-02T03:04:05.000000Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn long_values_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_VALUE);
        let c = clip(s);
        assert!(c.len() <= MAX_VALUE + '…'.len_utf8());
    }
}
