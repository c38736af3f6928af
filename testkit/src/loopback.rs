//! Connections from a chosen loopback source address: the tests' stand-in for a pod's IP, which the
//! proxy's static and pod identities map to a tenant.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `to` from `source` (e.g. `127.0.0.7` or `::1`), on an ephemeral port.
pub async fn connect_from(source: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let source: IpAddr = source
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{source}: {e}")))?;
    let sock = if source.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    sock.bind(SocketAddr::new(source, 0))?;
    sock.connect(to).await
}

/// One `GET path` (HTTP/1.1, `Connection: close`) from `source` (`None`: any address), read to the
/// end within `timeout`; the status (0 when the answer has none) and the body.
pub async fn get_from(
    source: Option<&str>,
    to: SocketAddr,
    path: &str,
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let mut s = match source {
        Some(source) => connect_from(source, to).await?,
        None => TcpStream::connect(to).await?,
    };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(timeout, s.read_to_end(&mut buf))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no response from {to} within {timeout:?}"),
            )
        })??;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}
