//! Loopback ports for listeners that must be named before the program starts.

use std::net::{SocketAddr, TcpListener};

use crate::Error;

/// A loopback port that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> Result<u16, Error> {
    Ok(free_loopback_addr()?.port())
}

/// `127.0.0.1:<a port that was free a moment ago>`.
pub fn free_loopback_addr() -> Result<SocketAddr, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(Error::Port)
}
