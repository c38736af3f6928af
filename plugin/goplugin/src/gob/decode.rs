//! The streaming decoder: reads length-prefixed gob messages from any `Read`, learns type
//! definitions as they arrive and turns values into [`Value`]s.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use super::GobError;
use super::primitive::Cursor;
use super::value::{Struct, Value};
use super::wire::{self, TypeId, WireType, parse_wire_type};

/// Bounds that keep hostile input from exhausting memory or stack.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted message, in bytes. AnalysisRuns are capped near 1.5 MiB by etcd.
    pub max_message: usize,
    /// Deepest accepted nesting of values.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 64 << 20,
            max_depth: 100,
        }
    }
}

/// The types learned so far on one stream.
#[derive(Debug, Default)]
pub(crate) struct TypeTable {
    types: HashMap<TypeId, Arc<WireType>>,
}

impl TypeTable {
    fn define(&mut self, id: TypeId, wt: WireType) -> Result<(), GobError> {
        if id < wire::FIRST_USER_ID {
            return Err(GobError::BadTypeId(id));
        }
        if self.types.contains_key(&id) {
            return Err(GobError::DuplicateType(id));
        }
        self.types.insert(id, Arc::new(wt));
        Ok(())
    }

    fn get(&self, id: TypeId) -> Result<Arc<WireType>, GobError> {
        self.types
            .get(&id)
            .cloned()
            .ok_or(GobError::UnknownType(id))
    }

    fn is_struct(&self, id: TypeId) -> bool {
        matches!(
            self.types.get(&id).map(|t| &**t),
            Some(WireType::Struct { .. })
        )
    }
}

/// Reads gob values from one stream, as Go's `gob.Decoder` does.
pub struct Decoder<R> {
    reader: R,
    types: TypeTable,
    limits: Limits,
}

impl<R: Read> Decoder<R> {
    pub fn new(reader: R) -> Self {
        Self::with_limits(reader, Limits::default())
    }

    pub fn with_limits(reader: R, limits: Limits) -> Self {
        Decoder {
            reader,
            types: TypeTable::default(),
            limits,
        }
    }

    /// How many type definitions this stream has sent so far.
    pub fn type_count(&self) -> usize {
        self.types.types.len()
    }

    /// Reads one message. A clean end of stream before its first byte is [`GobError::Eof`].
    fn read_message(&mut self) -> Result<Vec<u8>, GobError> {
        let mut first = [0u8; 1];
        loop {
            match self.reader.read(&mut first) {
                Ok(0) => return Err(GobError::Eof),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let len = if first[0] < 0x80 {
            first[0] as u64
        } else {
            let n = (first[0] as i8).unsigned_abs() as usize;
            if n > 8 {
                return Err(GobError::BadLength);
            }
            let mut b = [0u8; 8];
            self.read_exact(&mut b[8 - n..])?;
            u64::from_be_bytes(b)
        };
        if len == 0 {
            return Err(GobError::EmptyMessage);
        }
        if len > self.limits.max_message as u64 {
            return Err(GobError::MessageTooLarge(len, self.limits.max_message));
        }
        let mut msg = vec![0u8; len as usize];
        self.read_exact(&mut msg)?;
        Ok(msg)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), GobError> {
        self.reader.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                GobError::UnexpectedEof
            } else {
                GobError::Io(e)
            }
        })
    }

    /// Decodes the next top-level value, reading type definitions on the way.
    pub fn decode(&mut self) -> Result<Value, GobError> {
        loop {
            let msg = self.read_message()?;
            let mut cur = Cursor::new(&msg);
            let id = cur.int()?;
            if id < 0 {
                let wt = parse_wire_type(&mut cur)?;
                if !cur.is_empty() {
                    return Err(GobError::ExtraData);
                }
                self.types.define(-id, wt)?;
                continue;
            }
            if id == wire::INTERFACE {
                if cur.uint()? != 0 {
                    return Err(GobError::BadSingleton);
                }
                let pos = msg.len() - cur.remaining();
                return self.top_interface(msg, pos);
            }
            return decode_top(&mut self.types, &mut cur, id, &self.limits);
        }
    }

    /// A top-level interface, whose type definitions may span several messages.
    fn top_interface(&mut self, mut msg: Vec<u8>, mut pos: usize) -> Result<Value, GobError> {
        let name = {
            let mut cur = Cursor::new(&msg[pos..]);
            let name = cur.string()?;
            pos = msg.len() - cur.remaining();
            name
        };
        if name.is_empty() {
            return Ok(Value::Nil);
        }
        loop {
            if pos == msg.len() {
                msg = self.read_message()?;
                pos = 0;
            }
            let mut cur = Cursor::new(&msg[pos..]);
            let id = cur.int()?;
            if id < 0 {
                let wt = parse_wire_type(&mut cur)?;
                self.types.define(-id, wt)?;
                if !cur.is_empty() {
                    cur.uint()?; // delimiter Go leaves between nested type definitions
                }
                pos = msg.len() - cur.remaining();
                continue;
            }
            let v = interface_body(&mut self.types, &mut cur, id, &self.limits, 0)?;
            return Ok(Value::Interface(name, Box::new(v)));
        }
    }
}

/// Decodes bytes as one top-level value of type `id` (struct encoding or singleton).
fn decode_top(
    types: &mut TypeTable,
    cur: &mut Cursor<'_>,
    id: TypeId,
    limits: &Limits,
) -> Result<Value, GobError> {
    if types.is_struct(id) {
        return value(types, cur, id, limits, 0);
    }
    if cur.uint()? != 0 {
        return Err(GobError::BadSingleton);
    }
    value(types, cur, id, limits, 0)
}

/// `[uint len][value]` after an interface's concrete type id.
fn interface_body(
    types: &mut TypeTable,
    cur: &mut Cursor<'_>,
    id: TypeId,
    limits: &Limits,
    depth: usize,
) -> Result<Value, GobError> {
    let n = cur.len_within(1)?;
    let mut inner = Cursor::new(cur.take(n)?);
    if !types.is_struct(id) && inner.uint()? != 0 {
        return Err(GobError::BadSingleton);
    }
    value(types, &mut inner, id, limits, depth + 1)
}

fn value(
    types: &mut TypeTable,
    cur: &mut Cursor<'_>,
    id: TypeId,
    limits: &Limits,
    depth: usize,
) -> Result<Value, GobError> {
    if depth > limits.max_depth {
        return Err(GobError::TooDeep(limits.max_depth));
    }
    Ok(match id {
        wire::BOOL => Value::Bool(cur.uint()? != 0),
        wire::INT => Value::Int(cur.int()?),
        wire::UINT => Value::Uint(cur.uint()?),
        wire::FLOAT => Value::Float(cur.float()?),
        wire::BYTES => Value::Bytes(cur.bytes()?.to_vec()),
        wire::STRING => Value::String(cur.string()?),
        wire::COMPLEX => Value::Complex(cur.float()?, cur.float()?),
        wire::INTERFACE => nested_interface(types, cur, limits, depth)?,
        _ => {
            let wt = types.get(id)?;
            match &*wt {
                WireType::Struct { name, fields } => {
                    let mut s = Struct::new();
                    let mut field: u64 = u64::MAX;
                    loop {
                        let delta = cur.uint()?;
                        if delta == 0 {
                            break;
                        }
                        field = field.wrapping_add(delta);
                        let (fname, fid) = fields
                            .get(field as usize)
                            .ok_or_else(|| GobError::BadField(field, name.clone()))?;
                        let v = value(types, cur, *fid, limits, depth + 1)?;
                        s.fields.push((fname.clone(), v));
                    }
                    Value::Struct(s)
                }
                WireType::Slice { elem, .. } => {
                    let n = cur.len_within(1)?;
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        out.push(value(types, cur, *elem, limits, depth + 1)?);
                    }
                    Value::Slice(out)
                }
                WireType::Array { elem, len, .. } => {
                    let n = cur.len_within(1)?;
                    if n as i64 != *len {
                        return Err(GobError::BadArrayLength(n, *len));
                    }
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        out.push(value(types, cur, *elem, limits, depth + 1)?);
                    }
                    Value::Array(out)
                }
                WireType::Map { key, elem, .. } => {
                    let n = cur.len_within(2)?;
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        let k = value(types, cur, *key, limits, depth + 1)?;
                        let v = value(types, cur, *elem, limits, depth + 1)?;
                        out.push((k, v));
                    }
                    Value::Map(out)
                }
                WireType::Opaque { .. } => Value::Opaque(cur.bytes()?.to_vec()),
            }
        }
    })
}

/// An interface inside a value: its type definitions travel inline in the same message.
fn nested_interface(
    types: &mut TypeTable,
    cur: &mut Cursor<'_>,
    limits: &Limits,
    depth: usize,
) -> Result<Value, GobError> {
    let name = cur.string()?;
    if name.is_empty() {
        return Ok(Value::Nil);
    }
    loop {
        if cur.is_empty() {
            return Err(GobError::NestedInterfaceSpansMessages);
        }
        let id = cur.int()?;
        if id < 0 {
            let wt = parse_wire_type(cur)?;
            types.define(-id, wt)?;
            if !cur.is_empty() {
                cur.uint()?;
            }
            continue;
        }
        let v = interface_body(types, cur, id, limits, depth)?;
        return Ok(Value::Interface(name, Box::new(v)));
    }
}

/// Where the next length-prefixed message in `buf[pos..]` lies, if it has fully arrived.
fn next_message(buf: &[u8], pos: usize, limit: usize) -> Result<Option<(usize, usize)>, GobError> {
    let Some(&first) = buf.get(pos) else {
        return Ok(None);
    };
    let (len, head) = if first < 0x80 {
        (first as u64, 1)
    } else {
        let n = (first as i8).unsigned_abs() as usize;
        if n > 8 {
            return Err(GobError::BadLength);
        }
        let Some(bytes) = buf.get(pos + 1..pos + 1 + n) else {
            return Ok(None);
        };
        (bytes.iter().fold(0u64, |a, &b| (a << 8) | b as u64), 1 + n)
    };
    if len == 0 {
        return Err(GobError::EmptyMessage);
    }
    if len > limit as u64 {
        return Err(GobError::MessageTooLarge(len, limit));
    }
    let start = pos + head;
    let end = start + len as usize;
    Ok((end <= buf.len()).then_some((start, end)))
}

/// Decodes values from bytes that arrive in pieces (an async socket), keeping the stream's type
/// table between values. [`MessageDecoder::complete_len`] says when a whole value has arrived,
/// so decoding itself never waits.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    types: TypeTable,
    limits: Limits,
}

impl MessageDecoder {
    pub fn new(limits: Limits) -> Self {
        MessageDecoder {
            types: TypeTable::default(),
            limits,
        }
    }

    /// How many type definitions the stream has sent so far.
    pub fn type_count(&self) -> usize {
        self.types.types.len()
    }

    /// The length of the next top-level value at the start of `buf` (with the type definitions
    /// before it), or `None` while part of it is still to come. Errors mean the framing itself
    /// is broken and the stream cannot be read further.
    pub fn complete_len(&self, buf: &[u8]) -> Result<Option<usize>, GobError> {
        let limit = self.limits.max_message;
        let mut pos = 0;
        // Type definitions, then the message that starts the value.
        let (start, end) = loop {
            let Some((start, end)) = next_message(buf, pos, limit)? else {
                return Ok(None);
            };
            pos = end;
            match Cursor::new(&buf[start..end]).int() {
                Ok(id) if id < 0 => continue,
                _ => break (start, end),
            }
        };
        let mut cur = Cursor::new(&buf[start..end]);
        if cur.int().ok() != Some(wire::INTERFACE) {
            return Ok(Some(end));
        }
        // A top-level interface: its concrete type's definitions may follow in further messages.
        let name_empty = cur.uint().and_then(|_| cur.bytes()).map(|n| n.is_empty());
        match name_empty {
            Ok(false) => {}
            _ => return Ok(Some(end)),
        }
        if !cur.is_empty() && cur.int().is_ok_and(|id| id >= 0) {
            return Ok(Some(end));
        }
        loop {
            let Some((start, end)) = next_message(buf, pos, limit)? else {
                return Ok(None);
            };
            pos = end;
            match Cursor::new(&buf[start..end]).int() {
                Ok(id) if id < 0 => continue,
                _ => return Ok(Some(end)),
            }
        }
    }

    /// Decodes one value from exactly the bytes [`complete_len`](Self::complete_len) measured.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Value, GobError> {
        let mut d = Decoder {
            reader: bytes,
            types: std::mem::take(&mut self.types),
            limits: self.limits,
        };
        let r = d.decode();
        self.types = d.types;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_len_waits_for_every_message_of_an_interface_value() {
        // nil interface: one message
        let dec = MessageDecoder::new(Limits::default());
        assert_eq!(
            dec.complete_len(&[0x03, 0x10, 0x00, 0x00]).unwrap(),
            Some(4)
        );
        assert_eq!(dec.complete_len(&[0x03, 0x10, 0x00]).unwrap(), None);
        // name + first typedef in message A, value in message Z
        let a = [0x05, 0x10, 0x00, 0x01, b'X', 0x01]; // remainder starts with int -1: typedef
        assert_eq!(dec.complete_len(&a).unwrap(), None);
        let mut ab = a.to_vec();
        ab.extend_from_slice(&[0x03, 0xff, 0x81, 0x00]); // another typedef message (id -65)
        assert_eq!(dec.complete_len(&ab).unwrap(), None);
        ab.extend_from_slice(&[0x04, 0xff, 0x82, 0x01, 0x00]); // value message (id 65)
        assert_eq!(dec.complete_len(&ab).unwrap(), Some(ab.len()));
        // steady state: name and id in one message
        assert_eq!(
            dec.complete_len(&[0x06, 0x10, 0x00, 0x01, b'X', 0x04, 0x00])
                .unwrap(),
            Some(7)
        );
        assert!(matches!(
            dec.complete_len(&[0xf0]),
            Err(GobError::BadLength)
        ));
    }
}
