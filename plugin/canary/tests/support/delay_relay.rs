//! A delaying TCP relay that plays a regressed proxy in tests and in the local demo (the
//! `analyze` example includes this file).

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A TCP relay on 127.0.0.1 that waits `delay` before connecting each accepted connection
/// upstream: every Playwright connect through it is slower by that much, the way a regressed
/// proxy would be.
pub struct DelayRelay {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl DelayRelay {
    /// Relays to 127.0.0.1:`upstream_port`.
    pub async fn start(upstream_port: u16, delay: Duration) -> Self {
        Self::start_to("127.0.0.1".into(), upstream_port, delay)
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// Relays to `host:port`.
    pub async fn start_to(host: String, port: u16, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let host = host.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let Ok(mut outbound) = TcpStream::connect((host.as_str(), port)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Ok(Self { url, task })
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
