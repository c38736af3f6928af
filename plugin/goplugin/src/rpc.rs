//! Go's `net/rpc` server side over one byte stream: gob `Request` headers and bodies in,
//! `Response` headers and bodies out, calls run concurrently and are answered by `Seq`.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::gob::{Encoder, GoType, GobError, Limits, MessageDecoder, Struct, Value};

/// What a method returns: the Go type it is declared with, and the value.
pub struct Reply {
    pub ty: GoType,
    pub value: Value,
    /// Fired once the reply has been handed to the transport (used by `Control.Quit`).
    pub written: Option<oneshot::Sender<()>>,
}

impl Reply {
    pub fn new(ty: GoType, value: Value) -> Self {
        Reply {
            ty,
            value,
            written: None,
        }
    }

    /// `struct{}{}`, the reply of `Control` methods and the body of every error reply.
    pub fn empty_struct() -> Self {
        Reply::new(empty_struct_type(), Value::Struct(Struct::new()))
    }
}

pub fn empty_struct_type() -> GoType {
    GoType::structure("", &[])
}

/// A result whose error becomes `Response.Error` (a protocol-level failure).
pub type CallResult = Result<Reply, String>;

/// One `net/rpc` service (the part of `ServiceMethod` before the dot).
pub trait Service: Send + Sync + 'static {
    /// Handles `method` (the part after the dot; `full` is `Service.Method`).
    fn call(
        self: Arc<Self>,
        method: &str,
        full: &str,
        body: Value,
    ) -> BoxFuture<'static, CallResult>;
}

/// The error text Go's server uses for a method it does not have.
pub fn unknown_method(full: &str) -> String {
    format!("rpc: can't find method {full}")
}

/// Services reachable on one stream, by name.
#[derive(Default, Clone)]
pub struct Router {
    services: HashMap<String, Arc<dyn Service>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(mut self, name: &str, service: Arc<dyn Service>) -> Self {
        self.services.insert(name.to_string(), service);
        self
    }

    fn dispatch(&self, full: &str, body: Value) -> BoxFuture<'static, CallResult> {
        let Some(dot) = full.rfind('.') else {
            let e = format!("rpc: service/method request ill-formed: {full}");
            return Box::pin(async move { Err(e) });
        };
        let (service, method) = (&full[..dot], &full[dot + 1..]);
        match self.services.get(service) {
            Some(s) => s.clone().call(method, full, body),
            None => {
                let e = format!("rpc: can't find service {full}");
                Box::pin(async move { Err(e) })
            }
        }
    }
}

struct Outgoing {
    method: String,
    seq: u64,
    result: CallResult,
}

/// net/rpc's `Response` header type.
pub fn response_type() -> GoType {
    GoType::structure(
        "Response",
        &[
            ("ServiceMethod", GoType::String),
            ("Seq", GoType::Uint),
            ("Error", GoType::String),
        ],
    )
}

/// Whether the decoder lost its place in the stream (as opposed to one bad message).
fn framing_lost(e: &GobError) -> bool {
    matches!(
        e,
        GobError::UnexpectedEof
            | GobError::Io(_)
            | GobError::Eof
            | GobError::MessageTooLarge(..)
            | GobError::EmptyMessage
            | GobError::BadLength
    )
}

/// Serves `router` on `stream` until the peer closes it or the framing breaks.
pub async fn serve<S>(stream: S, router: Router, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let writer = tokio::spawn(write_replies(wr, rx));
    read_requests(rd, router, limits, tx).await;
    let _ = writer.await;
}

/// The next whole value from the stream, reading more bytes as needed; `None` at a clean end.
async fn next_value<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    start: &mut usize,
    dec: &mut MessageDecoder,
) -> Option<Result<Value, GobError>> {
    loop {
        match dec.complete_len(&buf[*start..]) {
            Ok(Some(n)) => {
                let v = dec.decode(&buf[*start..*start + n]);
                *start += n;
                return Some(v);
            }
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        if *start > 0 && *start * 2 >= buf.len() {
            buf.drain(..*start);
            *start = 0;
        }
        buf.reserve(16 << 10);
        match rd.read_buf(buf).await {
            Ok(0) if *start == buf.len() => return None,
            Ok(0) => return Some(Err(GobError::UnexpectedEof)),
            Ok(_) => {}
            Err(e) => return Some(Err(e.into())),
        }
    }
}

async fn read_requests<R: AsyncRead + Unpin>(
    mut rd: R,
    router: Router,
    limits: Limits,
    tx: mpsc::UnboundedSender<Outgoing>,
) {
    let mut dec = MessageDecoder::new(limits);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut start = 0;
    loop {
        let header = match next_value(&mut rd, &mut buf, &mut start, &mut dec).await {
            None => {
                tracing::debug!("rpc stream closed by peer");
                return;
            }
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                tracing::error!(error = %e, "rpc: server cannot decode request; closing stream");
                return;
            }
        };
        if !matches!(header, Value::Struct(_)) {
            tracing::error!("rpc: request header is not a struct; closing stream");
            return;
        }
        let method = header
            .field("ServiceMethod")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let seq = header.field("Seq").and_then(Value::as_u64).unwrap_or(0);
        match next_value(&mut rd, &mut buf, &mut start, &mut dec).await {
            Some(Ok(body)) => {
                let fut = router.dispatch(&method, body);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let result = fut.await;
                    let _ = tx.send(Outgoing {
                        method,
                        seq,
                        result,
                    });
                });
            }
            other => {
                let e = match other {
                    Some(Err(e)) => e,
                    _ => GobError::UnexpectedEof,
                };
                let lost = framing_lost(&e);
                tracing::warn!(error = %e, method = %method, seq, "rpc: cannot decode request body");
                let _ = tx.send(Outgoing {
                    method,
                    seq,
                    result: Err(e.to_string()),
                });
                if lost {
                    return;
                }
            }
        }
    }
}

async fn write_replies<W: AsyncWrite>(wr: W, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    tokio::pin!(wr);
    let mut enc = Encoder::new();
    let rtype = response_type();
    while let Some(out) = rx.recv().await {
        let mut buf = Vec::new();
        let (error, mut reply) = match out.result {
            Ok(r) => (String::new(), r),
            Err(e) => (e, Reply::empty_struct()),
        };
        let mut encoded = encode_reply(
            &mut enc,
            &rtype,
            &out.method,
            out.seq,
            &error,
            &reply,
            &mut buf,
        );
        if let Err(e) = encoded {
            // The method's reply did not fit its Go type: answer with an error instead, so the
            // client's stream stays readable.
            tracing::error!(error = %e, method = %out.method, "rpc: cannot encode reply");
            buf.clear();
            let text = format!("plugin could not encode reply: {e}");
            reply = Reply::empty_struct();
            encoded = encode_reply(
                &mut enc,
                &rtype,
                &out.method,
                out.seq,
                &text,
                &reply,
                &mut buf,
            );
        }
        if let Err(e) = encoded {
            tracing::error!(error = %e, "rpc: cannot encode error reply");
            return;
        }
        if let Err(e) = wr.write_all(&buf).await {
            tracing::debug!(error = %e, "rpc: peer gone while writing reply");
            return;
        }
        if let Err(e) = wr.flush().await {
            tracing::debug!(error = %e, "rpc: peer gone while flushing reply");
            return;
        }
        if let Some(done) = reply.written.take() {
            let _ = done.send(());
        }
    }
}

/// Encodes one whole reply (header and body, with any first-use type definitions) into `buf`;
/// what the server writes for each call.
pub fn encode_reply(
    enc: &mut Encoder,
    rtype: &GoType,
    method: &str,
    seq: u64,
    error: &str,
    reply: &Reply,
    buf: &mut Vec<u8>,
) -> Result<(), GobError> {
    // Header first, as Go writes it; on a body failure the type table is rolled back so the
    // stream never references a definition that was not sent.
    let snapshot = enc.clone();
    let start = buf.len();
    let header = Value::Struct(
        Struct::new()
            .with("ServiceMethod", Value::String(method.to_string()))
            .with("Seq", Value::Uint(seq))
            .with("Error", Value::String(error.to_string())),
    );
    let result = enc
        .encode(rtype, &header, buf)
        .and_then(|_| enc.encode(&reply.ty, &reply.value, buf));
    if let Err(e) = result {
        *enc = snapshot;
        buf.truncate(start);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::RpcError;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    fn reply(enc: &mut Encoder, method: &str, seq: u64, err: &str, r: &Reply) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_reply(enc, &response_type(), method, seq, err, r, &mut buf).unwrap();
        buf
    }

    /// The exact bytes Go's net/rpc server (encoding/gob) writes for these replies on the control
    /// stream (1, plugin → controller), so a Go client decodes ours as it decodes a Go plugin's.
    #[test]
    fn control_stream_replies_match_go_net_rpc_bytes() {
        let mut enc = Encoder::new();
        let dispense = reply(
            &mut enc,
            "Dispenser.Dispense",
            0,
            "",
            &Reply::new(GoType::Uint, Value::Uint(1)),
        );
        let want = hex(
            "3a ff 81 03 01 01 08 52 65 73 70 6f 6e 73 65 01 ff 82 00 01 03 01 0d 53 65 72 76 69 63 65 4d 65 74 68 6f 64 01 0c 00 01 03 53 65 71 01 06 00 01 05 45 72 72 6f 72 01 0c 00 00 00 \
             17 ff 82 01 12 44 69 73 70 65 6e 73 65 72 2e 44 69 73 70 65 6e 73 65 00 \
             03 06 00 01",
        );
        assert_eq!(dispense, want);
        let ping = reply(&mut enc, "Control.Ping", 1, "", &Reply::empty_struct());
        let want = hex(
            "13 ff 82 01 0c 43 6f 6e 74 72 6f 6c 2e 50 69 6e 67 01 01 00 \
             0a ff 83 03 01 02 ff 84 00 00 00 03 ff 84 00",
        );
        assert_eq!(ping, want);
        let err = reply(
            &mut enc,
            "Plugin.Foo",
            7,
            "rpc: can't find method Plugin.Foo",
            &Reply::empty_struct(),
        );
        let want = hex(
            "34 ff 82 01 0a 50 6c 75 67 69 6e 2e 46 6f 6f 01 07 01 21 72 70 63 3a 20 63 61 6e 27 74 20 66 69 6e 64 20 6d 65 74 68 6f 64 20 50 6c 75 67 69 6e 2e 46 6f 6f 00 \
             03 ff 84 00",
        );
        assert_eq!(err, want);
    }

    /// The same for the plugin's own stream (7, plugin → controller), which starts a fresh gob
    /// type table.
    #[test]
    fn plugin_stream_replies_match_go_net_rpc_bytes() {
        let mut enc = Encoder::new();
        let init = reply(
            &mut enc,
            "Plugin.InitPlugin",
            0,
            "",
            &Reply::new(RpcError::gob_type(), RpcError::default().to_value()),
        );
        let tail = hex(
            "16 ff 82 01 11 50 6c 75 67 69 6e 2e 49 6e 69 74 50 6c 75 67 69 6e 00 \
             26 ff 83 03 01 01 08 52 70 63 45 72 72 6f 72 01 ff 84 00 01 01 01 0b 45 72 72 6f 72 53 74 72 69 6e 67 01 0c 00 00 00 \
             03 ff 84 00",
        );
        assert!(init.ends_with(&tail), "{init:02x?}");
        let boom = RpcError {
            error_string: "boom".into(),
        };
        let gc = reply(
            &mut enc,
            "Plugin.GarbageCollect",
            1,
            "",
            &Reply::new(RpcError::gob_type(), boom.to_value()),
        );
        assert!(gc.ends_with(&hex("09 ff 84 01 04 62 6f 6f 6d 00")));
        let ty = reply(
            &mut enc,
            "Plugin.Type",
            2,
            "",
            &Reply::new(GoType::String, Value::String("RPCPlugin".into())),
        );
        assert!(ty.ends_with(&hex("0c 0c 00 09 52 50 43 50 6c 75 67 69 6e")));
    }

    #[test]
    fn a_body_that_does_not_fit_its_type_leaves_the_stream_clean() {
        let mut enc = Encoder::new();
        let mut buf = Vec::new();
        let bad = Reply::new(GoType::Uint, Value::String("x".into()));
        let r = encode_reply(&mut enc, &response_type(), "M.X", 1, "", &bad, &mut buf);
        assert!(r.is_err());
        assert!(buf.is_empty());
        // The Response type was rolled back, so the next reply defines it again.
        let ok = reply(&mut enc, "M.X", 2, "", &Reply::empty_struct());
        assert_eq!(&ok[..3], &[0x3a, 0xff, 0x81]);
    }
}
