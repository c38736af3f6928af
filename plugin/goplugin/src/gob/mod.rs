//! A dynamic, streaming decoder and an exact encoder for Go's `encoding/gob`.
//!
//! The decoder takes every type from the wire (ids are never assumed), keeps unknown fields as
//! dynamic [`Value`]s and reads interface values by their registered name. The encoder keeps its
//! own per-stream type table with ids from 65 up, as Go's decoder expects.

mod decode;
mod encode;
mod primitive;
mod time;
mod value;
mod wire;

pub use decode::{Decoder, Limits, MessageDecoder};
pub use encode::{Encoder, GoType, StructDef};
pub use primitive::{Cursor, put_bytes, put_int, put_uint};
pub use time::GoTime;
pub use value::{Struct, Value};
pub use wire::{TypeId, WireType};

/// Everything that can go wrong reading or writing gob.
#[derive(Debug, thiserror::Error)]
pub enum GobError {
    #[error("gob: unexpected end of data")]
    Truncated,
    #[error("gob: malformed unsigned integer")]
    BadUint,
    #[error("gob: length {0} exceeds the data that remains")]
    LengthTooLarge(u64),
    #[error("gob: message of {0} bytes exceeds the limit of {1}")]
    MessageTooLarge(u64, usize),
    #[error("gob: empty message")]
    EmptyMessage,
    #[error("gob: extra data in buffer after a type definition")]
    ExtraData,
    #[error("gob: invalid type id {0}")]
    BadTypeId(i64),
    #[error("gob: duplicate type received: {0}")]
    DuplicateType(i64),
    #[error("gob: unknown type id {0}")]
    UnknownType(i64),
    #[error("gob: malformed type definition: {0}")]
    BadWireType(&'static str),
    #[error("gob: non-zero delta for singleton")]
    BadSingleton,
    #[error("gob: field number {0} out of range for struct {1:?}")]
    BadField(u64, String),
    #[error("gob: array length {0} does not match its type ({1})")]
    BadArrayLength(usize, i64),
    #[error("gob: nesting deeper than {0}")]
    TooDeep(usize),
    #[error("gob: interface value spans messages where it cannot")]
    NestedInterfaceSpansMessages,
    #[error("gob: value does not match its Go type: {0}")]
    Mismatch(String),
    #[error("gob: invalid time: {0}")]
    BadTime(&'static str),
    #[error("gob: i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("gob: end of stream")]
    Eof,
    #[error("gob: stream ended inside a message")]
    UnexpectedEof,
    #[error("gob: malformed message length")]
    BadLength,
}
