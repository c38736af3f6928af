//! Requests leave from the source address asked for, and the answer's status and body come back.

use std::time::Duration;

use sandcanary_testkit::get_from;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_get_leaves_from_the_chosen_source_and_returns_status_and_body() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        let mut head = vec![0u8; 1024];
        let n = s.read(&mut head).await.unwrap();
        s.write_all(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 5\r\n\r\nshort")
            .await
            .unwrap();
        (peer, String::from_utf8_lossy(&head[..n]).into_owned())
    });
    let (status, body) = get_from(Some("127.0.0.9"), to, "/x", Duration::from_secs(5))
        .await
        .unwrap();
    let (peer, request) = server.await.unwrap();
    assert_eq!((status, body.as_str()), (418, "short"));
    assert_eq!(peer.ip().to_string(), "127.0.0.9");
    assert!(request.starts_with("GET /x HTTP/1.1\r\n"), "{request}");
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let err = get_from(None, to, "/", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
}
