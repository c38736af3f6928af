//! The client's view of the server's object tree, kept from `__create__`, `__adopt__`, `__dispose__`.

use std::collections::HashMap;

use serde_json::Value;

#[derive(Debug)]
struct Object {
    kind: String,
    parent: String,
    initializer: Value,
}

/// guid -> object; disposing an object also forgets its descendants, as the server does.
#[derive(Debug, Default)]
pub struct ObjectTable {
    objects: HashMap<String, Object>,
}

impl ObjectTable {
    /// Applies one event; events that are not about the object tree are ignored.
    pub fn apply(&mut self, msg: &Value) {
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            return;
        };
        let target = msg.get("guid").and_then(Value::as_str).unwrap_or("");
        let params = msg.get("params");
        let param_guid = params
            .and_then(|p| p.get("guid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        match method {
            "__create__" => {
                let (Some(guid), Some(p)) = (param_guid, params) else {
                    tracing::debug!("__create__ without a guid ignored");
                    return;
                };
                let kind = p
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let initializer = p.get("initializer").cloned().unwrap_or(Value::Null);
                self.objects.insert(
                    guid,
                    Object {
                        kind,
                        parent: target.to_string(),
                        initializer,
                    },
                );
            }
            "__adopt__" => {
                if let Some(obj) = param_guid.and_then(|g| self.objects.get_mut(&g)) {
                    obj.parent = target.to_string();
                }
            }
            "__dispose__" => self.dispose(target),
            _ => {}
        }
    }

    fn dispose(&mut self, guid: &str) {
        let children: Vec<String> = self
            .objects
            .iter()
            .filter(|(_, o)| o.parent == guid)
            .map(|(g, _)| g.clone())
            .collect();
        for child in children {
            self.dispose(&child);
        }
        self.objects.remove(guid);
    }

    pub fn initializer(&self, guid: &str) -> Option<&Value> {
        self.objects.get(guid).map(|o| &o.initializer)
    }

    pub fn kind(&self, guid: &str) -> Option<&str> {
        self.objects.get(guid).map(|o| o.kind.as_str())
    }

    #[cfg(test)]
    pub fn parent(&self, guid: &str) -> Option<&str> {
        self.objects.get(guid).map(|o| o.parent.as_str())
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(parent: &str, kind: &str, guid: &str, init: Value) -> Value {
        json!({"guid": parent, "method": "__create__",
               "params": {"type": kind, "guid": guid, "initializer": init}})
    }

    #[test]
    fn create_adopt_dispose_track_the_tree() {
        let mut t = ObjectTable::default();
        t.apply(&create(
            "",
            "Browser",
            "browser@1",
            json!({"name": "chromium"}),
        ));
        t.apply(&create("browser@1", "Tracing", "tracing@1", json!({})));
        t.apply(&create("browser@1", "BrowserContext", "ctx@1", json!({})));
        t.apply(&json!({"guid": "ctx@1", "method": "__adopt__", "params": {"guid": "tracing@1"}}));
        assert_eq!(t.parent("tracing@1"), Some("ctx@1"));
        assert_eq!(t.kind("browser@1"), Some("Browser"));
        assert_eq!(t.initializer("browser@1").unwrap()["name"], "chromium");
        t.apply(&json!({"guid": "ctx@1", "method": "__dispose__", "params": {}}));
        assert_eq!(t.kind("ctx@1"), None);
        assert_eq!(
            t.kind("tracing@1"),
            None,
            "children are disposed with their parent"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn odd_events_are_ignored() {
        let mut t = ObjectTable::default();
        t.apply(&json!({"guid": "x", "method": "__create__"}));
        t.apply(&json!({"no": "method"}));
        t.apply(&json!({"guid": "x", "method": "__adopt__", "params": {"guid": "missing"}}));
        t.apply(&json!({"guid": "x", "method": "loadstate", "params": {"add": "load"}}));
        assert!(t.is_empty());
    }
}
