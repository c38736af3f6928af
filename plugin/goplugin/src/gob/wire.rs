//! Type descriptors (`wireType`) as Go sends them, and the built-in type ids.

use std::sync::Arc;

use super::GobError;
use super::primitive::Cursor;

/// A gob type id as it appears on one stream.
pub type TypeId = i64;

pub const BOOL: TypeId = 1;
pub const INT: TypeId = 2;
pub const UINT: TypeId = 3;
pub const FLOAT: TypeId = 4;
pub const BYTES: TypeId = 5;
pub const STRING: TypeId = 6;
pub const COMPLEX: TypeId = 7;
pub const INTERFACE: TypeId = 8;
/// The first id a user type may have; lower ids are reserved by gob.
pub const FIRST_USER_ID: TypeId = 64;

/// How a user type is laid out on the wire. Names are informational only.
#[derive(Debug, Clone, PartialEq)]
pub enum WireType {
    Array {
        name: String,
        elem: TypeId,
        len: i64,
    },
    Slice {
        name: String,
        elem: TypeId,
    },
    Struct {
        name: String,
        fields: Arc<[(Arc<str>, TypeId)]>,
    },
    Map {
        name: String,
        key: TypeId,
        elem: TypeId,
    },
    /// GobEncoder, BinaryMarshaler or TextMarshaler: the value is opaque bytes.
    Opaque {
        name: String,
    },
}

impl WireType {
    pub fn name(&self) -> &str {
        match self {
            WireType::Array { name, .. }
            | WireType::Slice { name, .. }
            | WireType::Struct { name, .. }
            | WireType::Map { name, .. }
            | WireType::Opaque { name } => name,
        }
    }
}

/// Walks a gob struct encoding, calling `f` with each present field number.
pub(crate) fn read_fields<'a>(
    cur: &mut Cursor<'a>,
    mut f: impl FnMut(u64, &mut Cursor<'a>) -> Result<(), GobError>,
) -> Result<(), GobError> {
    let mut field: u64 = u64::MAX; // -1: the first delta of 1 means field 0
    loop {
        let delta = cur.uint()?;
        if delta == 0 {
            return Ok(());
        }
        field = field.wrapping_add(delta);
        f(field, cur)?;
    }
}

fn common(cur: &mut Cursor<'_>) -> Result<(String, i64), GobError> {
    let mut name = String::new();
    let mut id = 0;
    read_fields(cur, |f, cur| {
        match f {
            0 => name = cur.string()?,
            1 => id = cur.int()?,
            _ => return Err(GobError::BadWireType("unknown CommonType field")),
        }
        Ok(())
    })?;
    Ok((name, id))
}

/// Parses one `wireType` value (struct encoding, no singleton marker).
pub fn parse_wire_type(cur: &mut Cursor<'_>) -> Result<WireType, GobError> {
    let mut out: Option<WireType> = None;
    read_fields(cur, |f, cur| {
        if out.is_some() {
            return Err(GobError::BadWireType("more than one kind set"));
        }
        out = Some(match f {
            0 => {
                let (mut name, mut elem, mut len) = (String::new(), 0, 0);
                read_fields(cur, |g, cur| {
                    match g {
                        0 => name = common(cur)?.0,
                        1 => elem = cur.int()?,
                        2 => len = cur.int()?,
                        _ => return Err(GobError::BadWireType("unknown arrayType field")),
                    }
                    Ok(())
                })?;
                WireType::Array { name, elem, len }
            }
            1 => {
                let (mut name, mut elem) = (String::new(), 0);
                read_fields(cur, |g, cur| {
                    match g {
                        0 => name = common(cur)?.0,
                        1 => elem = cur.int()?,
                        _ => return Err(GobError::BadWireType("unknown sliceType field")),
                    }
                    Ok(())
                })?;
                WireType::Slice { name, elem }
            }
            2 => {
                let mut name = String::new();
                let mut fields: Vec<(Arc<str>, TypeId)> = Vec::new();
                read_fields(cur, |g, cur| {
                    match g {
                        0 => name = common(cur)?.0,
                        1 => {
                            let n = cur.len_within(1)?;
                            fields.reserve(n);
                            for _ in 0..n {
                                let (mut fname, mut fid) = (String::new(), 0);
                                read_fields(cur, |h, cur| {
                                    match h {
                                        0 => fname = cur.string()?,
                                        1 => fid = cur.int()?,
                                        _ => {
                                            return Err(GobError::BadWireType(
                                                "unknown fieldType field",
                                            ));
                                        }
                                    }
                                    Ok(())
                                })?;
                                fields.push((Arc::from(fname), fid));
                            }
                        }
                        _ => return Err(GobError::BadWireType("unknown structType field")),
                    }
                    Ok(())
                })?;
                WireType::Struct {
                    name,
                    fields: fields.into(),
                }
            }
            3 => {
                let (mut name, mut key, mut elem) = (String::new(), 0, 0);
                read_fields(cur, |g, cur| {
                    match g {
                        0 => name = common(cur)?.0,
                        1 => key = cur.int()?,
                        2 => elem = cur.int()?,
                        _ => return Err(GobError::BadWireType("unknown mapType field")),
                    }
                    Ok(())
                })?;
                WireType::Map { name, key, elem }
            }
            4..=6 => {
                let mut name = String::new();
                read_fields(cur, |g, cur| {
                    match g {
                        0 => name = common(cur)?.0,
                        _ => return Err(GobError::BadWireType("unknown gobEncoderType field")),
                    }
                    Ok(())
                })?;
                WireType::Opaque { name }
            }
            _ => return Err(GobError::BadWireType("unknown wireType field")),
        });
        Ok(())
    })?;
    out.ok_or(GobError::BadWireType("no kind set"))
}
