//! Requests refused before identity and session work, so that nothing the proxy cannot forward
//! creates a sandbox or takes a slot: `CONNECT` (a tunnel, not a request to the sandbox), `TRACE`
//! and methods outside HTTP's usual set, WebSocket upgrades that are not `GET` (RFC 6455 §4.1), and
//! heads that say two different things about where they go (more than one `Host`, RFC 9112 §3.2).

use http::header::{ALLOW, HOST};
use hyper::{HeaderMap, Method, StatusCode};

use super::{Body, text};

/// The methods forwarded to a sandbox (MCP over HTTP uses GET, POST and DELETE).
const FORWARDED: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
];
const ALLOWED: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/// The answer for a request the proxy will not forward, or `None` for one it will.
pub fn refuse(
    method: &Method,
    headers: &HeaderMap,
    websocket: bool,
) -> Option<hyper::Response<Body>> {
    if *method == Method::CONNECT {
        return Some(not_allowed(
            "CONNECT is not supported: this proxy forwards HTTP and WebSocket requests to the caller's sandbox; it is not a tunnel",
            ALLOWED,
        ));
    }
    if !FORWARDED.contains(method) {
        return Some(not_allowed(
            &format!("method {method} is not forwarded (allowed: {ALLOWED})"),
            ALLOWED,
        ));
    }
    if websocket && *method != Method::GET {
        return Some(not_allowed(
            &format!("a WebSocket upgrade must be a GET request, not {method}"),
            "GET",
        ));
    }
    if headers.get_all(HOST).iter().nth(1).is_some() {
        return Some(text(StatusCode::BAD_REQUEST, "more than one Host header"));
    }
    None
}

fn not_allowed(message: &str, allow: &'static str) -> hyper::Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, message);
    resp.headers_mut()
        .insert(ALLOW, http::HeaderValue::from_static(allow));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(m: &str, h: &HeaderMap, ws: bool) -> Option<StatusCode> {
        refuse(&Method::from_bytes(m.as_bytes()).unwrap(), h, ws).map(|r| r.status())
    }

    #[test]
    fn only_forwardable_requests_pass() {
        let none = HeaderMap::new();
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            assert_eq!(status(m, &none, false), None, "{m}");
        }
        for m in ["CONNECT", "TRACE", "PROPFIND", "BREW"] {
            assert_eq!(
                status(m, &none, false),
                Some(StatusCode::METHOD_NOT_ALLOWED),
                "{m}"
            );
        }
        assert_eq!(status("GET", &none, true), None);
        assert_eq!(
            status("POST", &none, true),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        let mut two_hosts = HeaderMap::new();
        two_hosts.append(HOST, "a".parse().unwrap());
        two_hosts.append(HOST, "b".parse().unwrap());
        assert_eq!(
            status("GET", &two_hosts, false),
            Some(StatusCode::BAD_REQUEST)
        );
        let r = refuse(&Method::CONNECT, &none, false).unwrap();
        assert_eq!(r.headers()[ALLOW], ALLOWED);
    }
}
