//! Dynamic gob values: what the decoder produces and what the encoder consumes.

use std::sync::Arc;

/// A decoded (or to-be-encoded) gob value. `Nil` stands for what Go leaves off the wire: a nil
/// pointer, map or interface.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Complex(f64, f64),
    Bytes(Vec<u8>),
    String(String),
    Struct(Struct),
    Slice(Vec<Value>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A non-nil interface: the registered concrete-type name and the value.
    Interface(String, Box<Value>),
    /// The bytes of a GobEncoder / BinaryMarshaler value (e.g. `time.Time`).
    Opaque(Vec<u8>),
}

/// A struct value: the fields that were present, by name, in wire order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Struct {
    pub fields: Vec<(Arc<str>, Value)>,
}

impl Struct {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder used by encoders of typed replies.
    pub fn with(mut self, name: &str, v: Value) -> Self {
        self.fields.push((Arc::from(name), v));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v)
    }
}

impl Value {
    /// The named field of a struct value; `None` when absent or not a struct.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(s) => s.get(name),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(u) => Some(*u),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Slice(v) | Value::Array(v) => Some(v),
            _ => None,
        }
    }

    /// Counts every value in the tree (used for digests and limits).
    pub fn node_count(&self) -> usize {
        1 + match self {
            Value::Struct(s) => s.fields.iter().map(|(_, v)| v.node_count()).sum(),
            Value::Slice(v) | Value::Array(v) => v.iter().map(Value::node_count).sum(),
            Value::Map(m) => m.iter().map(|(k, v)| k.node_count() + v.node_count()).sum(),
            Value::Interface(_, v) => v.node_count(),
            _ => 0,
        }
    }
}
