//! Byte splicing between the client and the sandbox after a WebSocket upgrade. Frames are never
//! parsed. Each direction borrows a buffer only while data is flowing, so an idle connection costs
//! its two sockets and a small task, not 2 x 8 KiB of copy buffers.

use std::io;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const CHUNK: usize = 32 * 1024;

/// Relays until both directions are closed. A clean end of one direction (the peer's FIN) is passed
/// on as a write shutdown while the other direction keeps flowing (half-close); a reset ends both.
pub async fn splice(
    client: Upgraded,
    upstream: TcpStream,
    to_client_first: Bytes,
) -> io::Result<(u64, u64)> {
    match client.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let client = parts.io.into_inner();
            let (cr, mut cw) = client.into_split();
            let (ur, mut uw) = upstream.into_split();
            // Bytes the client sent right after its upgrade request, before our 101 reached it.
            if !parts.read_buf.is_empty() {
                uw.write_all(&parts.read_buf).await?;
            }
            if !to_client_first.is_empty() {
                cw.write_all(&to_client_first).await?;
            }
            tokio::try_join!(pump(cr, uw), pump(ur, cw))
        }
        Err(client) => {
            // Not a plain TCP connection underneath (never the case for our listener): generic copy.
            let mut client = TokioIo::new(client);
            let mut upstream = upstream;
            if !to_client_first.is_empty() {
                client.write_all(&to_client_first).await?;
            }
            generic(&mut client, &mut upstream).await
        }
    }
}

async fn generic<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::io::copy_bidirectional(a, b).await
}

async fn pump(r: OwnedReadHalf, mut w: OwnedWriteHalf) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        r.readable().await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.try_read(&mut buf) {
                Ok(0) => {
                    // The peer finished sending: pass the FIN on, keep the other direction open.
                    let _ = w.shutdown().await;
                    return Ok(total);
                }
                Ok(n) => {
                    w.write_all(&buf[..n]).await?;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        // `buf` is released here, while the connection waits for more data.
    }
}
