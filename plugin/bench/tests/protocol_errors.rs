//! The Playwright client against servers that misbehave on purpose: garbage frames, silence, a close
//! in the middle of a call, error answers and results that lack what the protocol promises.
//! A real Playwright server cannot be made to do these things, so these servers are scripted; the
//! 428 version check and real server errors are tested against the real sandbox in local_sandbox.rs.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sandcanary_bench::playwright::{ConnectOptions, PlaywrightClient, PlaywrightError, WireError};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Answers initialize with a frame that is not JSON.
    Garbage,
    /// Answers initialize with a binary frame.
    Binary,
    /// Accepts the WebSocket, never answers.
    Silent,
    /// Initializes properly, then closes when newContext arrives.
    CloseOnNewContext,
    /// Initializes properly, then answers newContext with an error.
    ErrorOnNewContext,
    /// Initializes without offering a browser.
    NoBrowser,
    /// Sends a response for an id never used and an event with odd shapes before the real answer.
    Noise,
}

async fn serve(behaviour: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let call: Value = serde_json::from_str(text.as_str()).unwrap();
                    let id = call["id"].clone();
                    let method = call["method"].as_str().unwrap_or("").to_string();
                    let send = |v: Value| Message::Text(v.to_string().into());
                    match (behaviour, method.as_str()) {
                        (Misbehaviour::Silent, _) => {}
                        (Misbehaviour::Garbage, _) => {
                            let _ = ws.send(Message::Text("this is not json".into())).await;
                        }
                        (Misbehaviour::Binary, _) => {
                            let _ = ws.send(Message::Binary(vec![1, 2, 3].into())).await;
                        }
                        (Misbehaviour::NoBrowser, "initialize") => {
                            let _ = ws
                                .send(send(json!({"guid": "", "method": "__create__",
                                    "params": {"type": "Playwright", "guid": "Playwright", "initializer": {}}})))
                                .await;
                            let _ = ws.send(send(json!({"id": id, "result": {"playwright": {"guid": "Playwright"}}}))).await;
                        }
                        (_, "initialize") => {
                            if let Misbehaviour::Noise = behaviour {
                                let _ = ws.send(send(json!({"id": 9999, "result": {}}))).await;
                                let _ = ws
                                    .send(send(json!({"guid": "x", "method": "__create__"})))
                                    .await;
                                let _ = ws.send(send(json!({"method": "__dispose__"}))).await;
                            }
                            let _ = ws
                                .send(send(json!({"guid": "", "method": "__create__",
                                    "params": {"type": "Playwright", "guid": "Playwright",
                                               "initializer": {"preLaunchedBrowser": {"guid": "browser@1"}}}})))
                                .await;
                            let _ = ws.send(send(json!({"id": id, "result": {"playwright": {"guid": "Playwright"}}}))).await;
                        }
                        (Misbehaviour::CloseOnNewContext, "newContext") => {
                            let _ = ws.close(None).await;
                            return;
                        }
                        (Misbehaviour::ErrorOnNewContext, "newContext") => {
                            let _ = ws
                                .send(send(json!({"id": id, "error": {"error": {
                                    "message": "Target page, context or browser has been closed",
                                    "name": "TargetClosedError", "stack": "..."}}})))
                                .await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    format!("ws://{addr}/")
}

fn opts(url: String) -> ConnectOptions {
    let mut o = ConnectOptions::new(url);
    o.connect_timeout = Duration::from_secs(2);
    o.call_timeout = Duration::from_secs(2);
    o
}

/// Every failure must come back well within this bound: no hangs.
const BOUND: Duration = Duration::from_secs(10);

async fn connect_err(behaviour: Misbehaviour) -> PlaywrightError {
    let url = serve(behaviour).await;
    match tokio::time::timeout(BOUND, PlaywrightClient::connect(&opts(url))).await {
        Ok(Err(e)) => e,
        Ok(Ok(_)) => panic!("connect succeeded against a broken server"),
        Err(_) => panic!("connect hung"),
    }
}

#[tokio::test]
async fn garbage_frame_is_a_malformed_message_error() {
    let e = connect_err(Misbehaviour::Garbage).await;
    assert!(
        matches!(e, PlaywrightError::Wire(WireError::Malformed { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("invalid JSON"), "{e}");
}

#[tokio::test]
async fn binary_frame_is_a_malformed_message_error() {
    let e = connect_err(Misbehaviour::Binary).await;
    assert!(e.to_string().contains("binary frame"), "{e}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let e = connect_err(Misbehaviour::Silent).await;
    match e {
        PlaywrightError::Wire(WireError::Timeout { what, .. }) => assert_eq!(what, "initialize"),
        other => panic!("expected a timeout, got {other}"),
    }
}

#[tokio::test]
async fn upgrade_that_never_completes_times_out() {
    // Bound but never accepted: the TCP handshake completes in the backlog, the upgrade never does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let e = tokio::time::timeout(BOUND, PlaywrightClient::connect(&opts(url)))
        .await
        .expect("no hang")
        .err()
        .expect("must fail");
    assert!(
        matches!(e, PlaywrightError::Wire(WireError::Timeout { .. })),
        "{e}"
    );
    drop(listener);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = PlaywrightClient::connect(&opts(format!("ws://127.0.0.1:{port}/")))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, PlaywrightError::Wire(WireError::Connect { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn invalid_url_is_a_clear_error() {
    let e = PlaywrightClient::connect(&opts("not a url".into()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, PlaywrightError::Wire(WireError::InvalidRequest { .. })),
        "{e}"
    );
}

#[tokio::test]
async fn missing_browser_is_a_protocol_error() {
    let e = connect_err(Misbehaviour::NoBrowser).await;
    assert!(e.to_string().contains("pre-launched browser"), "{e}");
}

#[tokio::test]
async fn close_mid_call_fails_the_call_and_later_calls() {
    let url = serve(Misbehaviour::CloseOnNewContext).await;
    let client = PlaywrightClient::connect(&opts(url)).await.unwrap();
    let e = tokio::time::timeout(BOUND, client.new_page())
        .await
        .expect("no hang")
        .unwrap_err();
    match &e {
        PlaywrightError::Wire(WireError::Closed { what, .. }) => assert_eq!(what, "newContext"),
        other => panic!("expected closed, got {other}"),
    }
    let again = tokio::time::timeout(BOUND, client.new_page())
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        matches!(again, PlaywrightError::Wire(WireError::Closed { .. })),
        "{again}"
    );
}

#[tokio::test]
async fn server_error_keeps_its_name_and_message() {
    let url = serve(Misbehaviour::ErrorOnNewContext).await;
    let client = PlaywrightClient::connect(&opts(url)).await.unwrap();
    let e = client.new_page().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "server error in newContext: TargetClosedError: Target page, context or browser has been closed"
    );
}

#[tokio::test]
async fn stray_responses_and_odd_events_are_ignored() {
    let url = serve(Misbehaviour::Noise).await;
    let client = PlaywrightClient::connect(&opts(url)).await.unwrap();
    assert_eq!(client.browser_guid(), "browser@1");
}

#[tokio::test]
async fn version_mismatch_answer_is_reported_as_such() {
    // Scripted 428 in the shape playwrightServer.ts sends; the real server's 428 is in local_sandbox.rs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let body = "Playwright version mismatch: server 1.65.1, client 1.2.3";
        let resp = format!(
            "HTTP/1.1 428 Precondition Required\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(resp.as_bytes()).await;
    });
    let mut o = opts(format!("ws://{addr}/"));
    o.client_version = Some("1.2.3".into());
    let e = PlaywrightClient::connect(&o).await.err().unwrap();
    assert_eq!(
        e.to_string(),
        "Playwright version mismatch: server rejected client version 1.2.3 with HTTP 428: \
         Playwright version mismatch: server 1.65.1, client 1.2.3"
    );
}
