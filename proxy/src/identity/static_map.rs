//! A fixed IP -> id map, for the local backend and for tests that play pods with loopback addresses.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;
use http::HeaderMap;

use super::{Identity, Verdict, canonical};

pub struct StaticIdentity {
    map: HashMap<IpAddr, String>,
}

impl StaticIdentity {
    pub fn new(entries: impl IntoIterator<Item = (IpAddr, String)>) -> Self {
        Self {
            map: entries
                .into_iter()
                .map(|(ip, id)| (canonical(ip), id))
                .collect(),
        }
    }
}

#[async_trait]
impl Identity for StaticIdentity {
    async fn identify(&self, peer: IpAddr, _headers: &HeaderMap) -> Verdict {
        match self.map.get(&canonical(peer)) {
            Some(id) => Verdict::Known {
                id: id.clone(),
                strip: vec![],
                tenant: None,
            },
            None => Verdict::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn headers_cannot_spoof_a_static_identity() {
        let s = StaticIdentity::new([("127.0.0.2".parse().unwrap(), "alice".to_string())]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "127.0.0.2".parse().unwrap());
        h.insert("forwarded", "for=127.0.0.2".parse().unwrap());
        h.insert("x-sandbox-id", "alice".parse().unwrap());
        assert_eq!(
            s.identify("127.0.0.3".parse().unwrap(), &h).await,
            Verdict::Unknown
        );
        assert_eq!(
            s.identify("127.0.0.2".parse().unwrap(), &HeaderMap::new())
                .await,
            Verdict::Known {
                id: "alice".into(),
                strip: vec![],
                tenant: None
            }
        );
    }
}
