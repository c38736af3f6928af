//! Header rules shared by the HTTP and WebSocket paths.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Comma-separated tokens of every value of `name` (a header may be split over several lines).
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// A WebSocket upgrade: `Connection` lists `upgrade` (in any of its lines; a list split over
/// several lines is one list) and `Upgrade` lists `websocket`.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    tokens(headers, &header::CONNECTION).any(|t| t == "upgrade")
        && tokens(headers, &header::UPGRADE).any(|t| t == "websocket")
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and those `Connection` names (RFC 9110 §7.6.1). `TE: trailers` survives
/// because it is end-to-end in meaning.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = tokens(headers, &header::CONNECTION).collect();
    for n in named {
        if let Ok(name) = HeaderName::from_bytes(n.as_bytes()) {
            headers.remove(name);
        }
    }
    for h in HOP_BY_HOP.iter() {
        headers.remove(h);
    }
    let keeps_trailers = tokens(headers, &header::TE).any(|t| t == "trailers");
    headers.remove(header::TE);
    if keeps_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// `X-Forwarded-For`: the client's values joined, then the peer appended (on both paths, WebSocket
/// upgrades included, so the client's hops are never dropped).
pub fn forwarded_for(headers: &HeaderMap, peer: IpAddr) -> HeaderValue {
    let prior: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let value = if prior.is_empty() {
        peer.to_string()
    } else {
        format!("{}, {peer}", prior.join(", "))
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn upgrade_detection() {
        assert!(is_websocket_upgrade(&h(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(is_websocket_upgrade(&h(&[
            ("connection", "keep-alive"),
            ("connection", "upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!is_websocket_upgrade(&h(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c")
        ])));
        assert!(!is_websocket_upgrade(&h(&[("upgrade", "websocket")])));
        assert!(!is_websocket_upgrade(&h(&[("connection", "keep-alive")])));
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut m = h(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers, gzip"),
            ("transfer-encoding", "chunked"),
            ("accept", "text/event-stream"),
        ]);
        remove_hop_by_hop(&mut m);
        assert!(m.get("x-secret").is_none());
        assert!(m.get("keep-alive").is_none());
        assert!(m.get("transfer-encoding").is_none());
        assert_eq!(m.get("te").unwrap(), "trailers");
        assert_eq!(m.get("accept").unwrap(), "text/event-stream");
    }

    #[test]
    fn xff_appends() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(forwarded_for(&HeaderMap::new(), ip), "127.0.0.2");
        assert_eq!(
            forwarded_for(
                &h(&[
                    ("x-forwarded-for", "10.0.0.1"),
                    ("x-forwarded-for", "10.0.0.2")
                ]),
                ip
            ),
            "10.0.0.1, 10.0.0.2, 127.0.0.2"
        );
    }
}
