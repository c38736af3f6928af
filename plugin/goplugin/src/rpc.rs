//! Go's `net/rpc` server side over one byte stream: gob `Request` headers and bodies in,
//! `Response` headers and bodies out, calls run concurrently and are answered by `Seq`.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::SyncIoBridge;

use crate::gob::{Decoder, Encoder, GoType, GobError, Limits, Struct, Value};

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

fn response_type() -> GoType {
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
        GobError::Truncated
            | GobError::Io(_)
            | GobError::Eof
            | GobError::MessageTooLarge(..)
            | GobError::EmptyMessage
            | GobError::BadUint
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
    let bridge = SyncIoBridge::new(rd);
    let handle = tokio::runtime::Handle::current();
    let reader = tokio::task::spawn_blocking(move || {
        let mut dec = Decoder::with_limits(BufReader::with_capacity(64 << 10, bridge), limits);
        loop {
            let header = match dec.decode() {
                Ok(h) => h,
                Err(GobError::Eof) => {
                    tracing::debug!("rpc stream closed by peer");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "rpc: server cannot decode request; closing stream");
                    return;
                }
            };
            let method = header
                .field("ServiceMethod")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let seq = header.field("Seq").and_then(Value::as_u64).unwrap_or(0);
            if !matches!(header, Value::Struct(_)) {
                tracing::error!("rpc: request header is not a struct; closing stream");
                return;
            }
            match dec.decode() {
                Ok(body) => {
                    let fut = router.dispatch(&method, body);
                    let tx = tx.clone();
                    handle.spawn(async move {
                        let result = fut.await;
                        let _ = tx.send(Outgoing {
                            method,
                            seq,
                            result,
                        });
                    });
                }
                Err(e) => {
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
    });
    let _ = reader.await;
    let _ = writer.await;
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

fn encode_reply(
    enc: &mut Encoder,
    rtype: &GoType,
    method: &str,
    seq: u64,
    error: &str,
    reply: &Reply,
    buf: &mut Vec<u8>,
) -> Result<(), GobError> {
    // Encode the body first into a scratch buffer so a failure leaves no half-written header.
    let mut body = Vec::new();
    enc.encode(&reply.ty, &reply.value, &mut body)?;
    let header = Value::Struct(
        Struct::new()
            .with("ServiceMethod", Value::String(method.to_string()))
            .with("Seq", Value::Uint(seq))
            .with("Error", Value::String(error.to_string())),
    );
    enc.encode(rtype, &header, buf)?;
    buf.extend_from_slice(&body);
    Ok(())
}
