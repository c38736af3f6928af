//! The exact encoder: Go types described by [`GoType`], values as [`Value`], one type table per
//! stream with ids from 65 up.

use std::collections::HashMap;
use std::sync::Arc;

use super::GobError;
use super::primitive::{put_bytes, put_float, put_int, put_uint};
use super::value::Value;
use super::wire::{self, TypeId};

/// The Go type a value is sent as. Equal descriptions share one id on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GoType {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Struct(Arc<StructDef>),
    Slice(Arc<GoType>),
    Map(Arc<GoType>, Arc<GoType>),
    /// A GobEncoder type such as `time.Time`; the name is informational.
    GobEncoder(Arc<str>),
}

/// A struct's name (informational) and exported fields in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructDef {
    pub name: String,
    pub fields: Vec<(String, GoType)>,
}

impl GoType {
    pub fn structure(name: &str, fields: &[(&str, GoType)]) -> GoType {
        GoType::Struct(Arc::new(StructDef {
            name: name.to_string(),
            fields: fields
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        }))
    }

    pub fn map(k: GoType, v: GoType) -> GoType {
        GoType::Map(Arc::new(k), Arc::new(v))
    }

    pub fn slice(e: GoType) -> GoType {
        GoType::Slice(Arc::new(e))
    }

    fn builtin_id(&self) -> Option<TypeId> {
        Some(match self {
            GoType::Bool => wire::BOOL,
            GoType::Int => wire::INT,
            GoType::Uint => wire::UINT,
            GoType::Float => wire::FLOAT,
            GoType::Bytes => wire::BYTES,
            GoType::String => wire::STRING,
            _ => return None,
        })
    }
}

/// Writes gob messages for one stream direction, remembering which types it has defined.
#[derive(Debug, Clone)]
pub struct Encoder {
    next_id: TypeId,
    ids: HashMap<GoType, TypeId>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            next_id: 65,
            ids: HashMap::new(),
        }
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the type definitions still missing on this stream and then the value message.
    /// On error nothing is appended and the type table is unchanged.
    pub fn encode(&mut self, ty: &GoType, v: &Value, out: &mut Vec<u8>) -> Result<(), GobError> {
        let mut fresh = Vec::new();
        let mut ids = self.ids.clone();
        let mut next_id = self.next_id;
        let id = assign(ty, &mut ids, &mut next_id, &mut fresh);
        let mut buf = Vec::new();
        for t in &fresh {
            let mut body = Vec::new();
            put_int(&mut body, -ids[t]);
            type_definition(t, &ids, &mut body);
            put_message(&mut buf, &body);
        }
        let mut body = Vec::new();
        put_int(&mut body, id);
        if !matches!(ty, GoType::Struct(_)) {
            body.push(0);
        }
        encode_value(ty, v, &mut body)?;
        put_message(&mut buf, &body);
        self.ids = ids;
        self.next_id = next_id;
        out.extend_from_slice(&buf);
        Ok(())
    }
}

fn put_message(out: &mut Vec<u8>, body: &[u8]) {
    put_uint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Gives `ty` and every type it reaches an id, recording the new ones in pre-order.
fn assign(
    ty: &GoType,
    ids: &mut HashMap<GoType, TypeId>,
    next: &mut TypeId,
    fresh: &mut Vec<GoType>,
) -> TypeId {
    if let Some(id) = ty.builtin_id() {
        return id;
    }
    if let Some(id) = ids.get(ty) {
        return *id;
    }
    let id = *next;
    *next += 1;
    ids.insert(ty.clone(), id);
    fresh.push(ty.clone());
    match ty {
        GoType::Struct(def) => {
            for (_, f) in &def.fields {
                assign(f, ids, next, fresh);
            }
        }
        GoType::Slice(e) => {
            assign(e, ids, next, fresh);
        }
        GoType::Map(k, v) => {
            assign(k, ids, next, fresh);
            assign(v, ids, next, fresh);
        }
        _ => {}
    }
    id
}

fn id_of(ty: &GoType, ids: &HashMap<GoType, TypeId>) -> TypeId {
    ty.builtin_id().unwrap_or_else(|| ids[ty])
}

/// `CommonType{Name, Id}` with Go's omission of an empty name.
fn common(name: &str, id: TypeId, out: &mut Vec<u8>) {
    if !name.is_empty() {
        out.push(1);
        put_bytes(out, name.as_bytes());
        out.push(1);
    } else {
        out.push(2);
    }
    put_int(out, id);
    out.push(0);
}

/// The `wireType` struct value describing `ty`.
fn type_definition(ty: &GoType, ids: &HashMap<GoType, TypeId>, out: &mut Vec<u8>) {
    let id = ids[ty];
    match ty {
        GoType::Struct(def) => {
            out.push(3); // wireType.StructT
            out.push(1); // structType.CommonType
            common(&def.name, id, out);
            if !def.fields.is_empty() {
                out.push(1); // structType.Field
                put_uint(out, def.fields.len() as u64);
                for (name, fty) in &def.fields {
                    out.push(1);
                    put_bytes(out, name.as_bytes());
                    out.push(1);
                    put_int(out, id_of(fty, ids));
                    out.push(0);
                }
            }
            out.push(0);
        }
        GoType::Slice(e) => {
            out.push(2); // wireType.SliceT
            out.push(1);
            common(&format!("[]{}", go_name(e)), id, out);
            out.push(1);
            put_int(out, id_of(e, ids));
            out.push(0);
        }
        GoType::Map(k, v) => {
            out.push(4); // wireType.MapT
            out.push(1);
            common(&format!("map[{}]{}", go_name(k), go_name(v)), id, out);
            out.push(1);
            put_int(out, id_of(k, ids));
            out.push(1);
            put_int(out, id_of(v, ids));
            out.push(0);
        }
        GoType::GobEncoder(name) => {
            out.push(5); // wireType.GobEncoderT
            out.push(1);
            common(name, id, out);
            out.push(0);
        }
        _ => unreachable!("built-in types are never defined"),
    }
    out.push(0);
}

/// Go's spelling of a type, used only for the informational names of maps and slices.
fn go_name(t: &GoType) -> String {
    match t {
        GoType::Bool => "bool".into(),
        GoType::Int => "int".into(),
        GoType::Uint => "uint".into(),
        GoType::Float => "float64".into(),
        GoType::Bytes => "[]uint8".into(),
        GoType::String => "string".into(),
        GoType::Struct(d) => d.name.clone(),
        GoType::Slice(e) => format!("[]{}", go_name(e)),
        GoType::Map(k, v) => format!("map[{}]{}", go_name(k), go_name(v)),
        GoType::GobEncoder(n) => n.to_string(),
    }
}

/// Whether Go would leave this struct field off the wire.
fn omitted(ty: &GoType, v: &Value) -> bool {
    match (ty, v) {
        (_, Value::Nil) => true,
        (GoType::Bool, Value::Bool(b)) => !b,
        (GoType::Int, Value::Int(i)) => *i == 0,
        (GoType::Uint, Value::Uint(u)) => *u == 0,
        (GoType::Float, Value::Float(f)) => *f == 0.0,
        (GoType::String, Value::String(s)) => s.is_empty(),
        (GoType::Bytes, Value::Bytes(b)) => b.is_empty(),
        (GoType::Slice(_), Value::Slice(s)) => s.is_empty(),
        _ => false,
    }
}

fn mismatch(ty: &GoType, v: &Value) -> GobError {
    let shown = format!("{v:?}");
    let shown: String = shown.chars().take(60).collect();
    GobError::Mismatch(format!("{} vs {shown}", go_name(ty)))
}

fn encode_value(ty: &GoType, v: &Value, out: &mut Vec<u8>) -> Result<(), GobError> {
    match (ty, v) {
        (GoType::Bool, Value::Bool(b)) => put_uint(out, *b as u64),
        (GoType::Int, Value::Int(i)) => put_int(out, *i),
        (GoType::Uint, Value::Uint(u)) => put_uint(out, *u),
        (GoType::Float, Value::Float(f)) => put_float(out, *f),
        (GoType::Bytes, Value::Bytes(b)) => put_bytes(out, b),
        (GoType::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
        (GoType::GobEncoder(_), Value::Opaque(b)) => put_bytes(out, b),
        (GoType::Slice(e), Value::Slice(items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                encode_value(e, item, out)?;
            }
        }
        (GoType::Map(kt, vt), Value::Map(entries)) => {
            put_uint(out, entries.len() as u64);
            for (k, val) in entries {
                encode_value(kt, k, out)?;
                encode_value(vt, val, out)?;
            }
        }
        (GoType::Struct(def), Value::Struct(s)) => {
            if let Some((unknown, _)) = s
                .fields
                .iter()
                .find(|(n, _)| !def.fields.iter().any(|(f, _)| f == n.as_ref()))
            {
                return Err(GobError::Mismatch(format!(
                    "field {unknown} is not in struct {}",
                    def.name
                )));
            }
            let mut last: i64 = -1;
            for (i, (name, fty)) in def.fields.iter().enumerate() {
                let Some(fv) = s.get(name) else { continue };
                if omitted(fty, fv) {
                    continue;
                }
                put_uint(out, (i as i64 - last) as u64);
                last = i as i64;
                encode_value(fty, fv, out)?;
            }
            out.push(0);
        }
        _ => return Err(mismatch(ty, v)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gob::value::Struct;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn reproduces_the_point_example_from_the_gob_docs() {
        let point = GoType::structure("Point", &[("X", GoType::Int), ("Y", GoType::Int)]);
        let v = Value::Struct(
            Struct::new()
                .with("X", Value::Int(22))
                .with("Y", Value::Int(33)),
        );
        let mut out = Vec::new();
        Encoder::new().encode(&point, &v, &mut out).unwrap();
        let want = hex(
            "1f ff 81 03 01 01 05 50 6f 69 6e 74 01 ff 82 00 01 02 01 01 58 01 04 00 \
             01 01 59 01 04 00 00 00 07 ff 82 01 2c 01 42 00",
        );
        assert_eq!(out, want);
    }

    #[test]
    fn second_use_sends_no_definitions() {
        let empty = GoType::structure("", &[]);
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode(&empty, &Value::Struct(Struct::new()), &mut out)
            .unwrap();
        assert_eq!(out, hex("0a ff 81 03 01 02 ff 82 00 00 00 03 ff 82 00"));
        out.clear();
        enc.encode(&empty, &Value::Struct(Struct::new()), &mut out)
            .unwrap();
        assert_eq!(out, hex("03 ff 82 00"));
    }

    #[test]
    fn singletons_and_mismatches() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode(&GoType::Uint, &Value::Uint(1), &mut out)
            .unwrap();
        assert_eq!(out, hex("03 06 00 01"));
        out.clear();
        enc.encode(
            &GoType::String,
            &Value::String("RPCPlugin".into()),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, hex("0c 0c 00 09 52 50 43 50 6c 75 67 69 6e"));
        let err = enc.encode(&GoType::Uint, &Value::Int(1), &mut Vec::new());
        assert!(matches!(err, Err(GobError::Mismatch(_))));
        let s = GoType::structure("S", &[("A", GoType::Int)]);
        let bad = Value::Struct(Struct::new().with("B", Value::Int(1)));
        assert!(enc.encode(&s, &bad, &mut Vec::new()).is_err());
        // a failed encode must not have defined S on the stream
        out.clear();
        enc.encode(&s, &Value::Struct(Struct::new()), &mut out)
            .unwrap();
        assert_eq!(out[1], 0xff, "definition of S still sent: {out:02x?}");
    }
}
