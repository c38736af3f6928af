//! Trusted-token identity: a caller holding the configured bearer token names its own sandbox id in a
//! header (the bench uses this to create many ids from one address). Off unless configured.

use std::net::IpAddr;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, header::AUTHORIZATION};
use subtle::ConstantTimeEq;

use super::{Identity, Verdict};
use secrecy::{ExposeSecret, SecretString};

use crate::id::valid as valid_id;

pub struct TokenIdentity {
    token: SecretString,
    header: HeaderName,
}

impl TokenIdentity {
    pub fn new(token: SecretString, header: HeaderName) -> Self {
        Self { token, header }
    }
}

#[async_trait]
impl Identity for TokenIdentity {
    async fn identify(&self, peer: IpAddr, headers: &HeaderMap) -> Verdict {
        let auth = headers.get(AUTHORIZATION);
        let id = headers.get(&self.header);
        if auth.is_none() && id.is_none() {
            return Verdict::Unknown;
        }
        for name in [&AUTHORIZATION, &self.header] {
            if headers.get_all(name).iter().nth(1).is_some() {
                return Verdict::Ambiguous(format!(
                    "more than one {name} header: the identity is ambiguous"
                ));
            }
        }
        let presented = auth
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(presented) = presented else {
            return Verdict::Rejected("missing bearer token".into());
        };
        if !bool::from(
            presented
                .as_bytes()
                .ct_eq(self.token.expose_secret().as_bytes()),
        ) {
            return Verdict::Rejected("invalid identity token".into());
        }
        let Some(id) = id.and_then(|v| v.to_str().ok()).map(str::trim) else {
            return Verdict::Rejected(format!("token given without the {} header", self.header));
        };
        if !valid_id(id) {
            return Verdict::Rejected(format!(
                "invalid sandbox id in {}: want {}",
                self.header,
                crate::id::RULE
            ));
        }
        Verdict::Known {
            id: id.to_string(),
            strip: vec![AUTHORIZATION, self.header.clone()],
            tenant: Some(super::canonical(peer).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> TokenIdentity {
        TokenIdentity::new(
            SecretString::from("0123456789abcdef0123"),
            HeaderName::from_static("x-sandbox-id"),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn accepts_the_token_and_strips_credentials() {
        let v = src()
            .identify(
                "127.0.0.1".parse().unwrap(),
                &headers(&[
                    ("authorization", "Bearer 0123456789abcdef0123"),
                    ("x-sandbox-id", "bench-1"),
                ]),
            )
            .await;
        assert_eq!(
            v,
            Verdict::Known {
                id: "bench-1".into(),
                strip: vec![AUTHORIZATION, HeaderName::from_static("x-sandbox-id")],
                tenant: Some("127.0.0.1".into())
            }
        );
    }

    #[tokio::test]
    async fn rejects_bad_tokens_and_ids() {
        let ip = "127.0.0.1".parse().unwrap();
        let s = src();
        for h in [
            headers(&[("x-sandbox-id", "a")]),
            headers(&[("authorization", "Bearer nope"), ("x-sandbox-id", "a")]),
            headers(&[
                ("authorization", "Basic 0123456789abcdef0123"),
                ("x-sandbox-id", "a"),
            ]),
            headers(&[("authorization", "Bearer 0123456789abcdef0123")]),
            headers(&[
                ("authorization", "Bearer 0123456789abcdef0123"),
                ("x-sandbox-id", "../etc"),
            ]),
        ] {
            assert!(
                matches!(s.identify(ip, &h).await, Verdict::Rejected(_)),
                "{h:?}"
            );
        }
        assert_eq!(s.identify(ip, &HeaderMap::new()).await, Verdict::Unknown);
    }

    #[tokio::test]
    async fn a_repeated_id_or_authorization_header_is_ambiguous() {
        let ip = "127.0.0.1".parse().unwrap();
        let good = "Bearer 0123456789abcdef0123";
        let mut two_ids = headers(&[("authorization", good), ("x-sandbox-id", "a")]);
        two_ids.append("x-sandbox-id", "b".parse().unwrap());
        let mut two_auth = headers(&[("authorization", good), ("x-sandbox-id", "a")]);
        two_auth.append("authorization", good.parse().unwrap());
        // Even a second copy of the same valid token is refused: one value must not silently win.
        for h in [two_ids, two_auth] {
            let v = src().identify(ip, &h).await;
            assert!(
                matches!(&v, Verdict::Ambiguous(m) if m.starts_with("more than one")),
                "{v:?}"
            );
        }
    }
}
