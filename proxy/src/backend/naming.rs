//! Object names for sandbox ids. Ids are label values (`[A-Za-z0-9._-]`, up to 63 characters), which
//! are not always valid object names; the reference used `pw-<id>` verbatim and failed with 422 for
//! ids with uppercase letters, `_` or `.`. Here such ids get a deterministic hashed name, and the raw
//! id always stays in a label so `list` can give it back.

use sha2::{Digest, Sha256};

/// Prefix of every object the proxy creates for a sandbox.
pub const PREFIX: &str = "pw-";

/// Longest name we produce: a DNS-1123 label, so the name also works where the controller derives a
/// Service or pod name from it.
const MAX_NAME: usize = 63;

/// Hex digits of the hash kept in a mapped name (64 bits: collisions are checked anyway, see
/// [`crate::backend::sandbox_claim`], but must be practically impossible).
const HASH_HEX: usize = 16;

/// Whether `s` is a DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (what most API objects accept as `metadata.name`).
pub fn valid_object_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(valid_dns_label)
}

/// The object name for sandbox `id`: `pw-<id>` when that is a valid DNS-1123 label, otherwise
/// `pw-<readable part>-<hash>`, where the readable part is the id lower-cased with other characters
/// turned into `-` (for people reading `kubectl get`), and the hash is of the raw id (for uniqueness).
pub fn object_name(id: &str) -> String {
    let plain = format!("{PREFIX}{id}");
    if valid_dns_label(&plain) {
        return plain;
    }
    let digest = Sha256::digest(id.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let room = MAX_NAME - PREFIX.len() - 1 - HASH_HEX;
    let mut readable: String = id
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    // Collapse the edges so the name stays a valid label.
    while readable.ends_with('-') {
        readable.pop();
    }
    let readable = readable.trim_start_matches('-');
    if readable.is_empty() {
        format!("{PREFIX}{hash}")
    } else {
        format!("{PREFIX}{readable}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_keep_the_reference_name() {
        assert_eq!(object_name("abc"), "pw-abc");
        assert_eq!(object_name("tenant-1"), "pw-tenant-1");
    }

    #[test]
    fn invalid_ids_map_to_stable_valid_distinct_names() {
        let ids = [
            "Alice",
            "alice",
            "a_b",
            "a.b",
            "a-b",
            "UPPER_case.mixed-1",
            "-x",
            "x-",
            "___",
            &"z".repeat(63),
            &"Z".repeat(63),
        ];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            let n = object_name(id);
            assert!(
                valid_dns_label(&n),
                "{n:?} for {id:?} is not a DNS-1123 label"
            );
            assert!(n.starts_with(PREFIX));
            assert_eq!(n, object_name(id), "not deterministic for {id:?}");
            assert!(seen.insert(n.clone()), "{n:?} reused for {id:?}");
        }
        assert_eq!(object_name("Alice"), object_name("Alice"));
        assert!(object_name("Alice").starts_with("pw-alice-"));
        assert_eq!(object_name("Alice").len(), "pw-alice-".len() + HASH_HEX);
        // 60 characters fit `pw-` + id exactly; 61 do not.
        assert_eq!(
            object_name(&"a".repeat(60)),
            format!("pw-{}", "a".repeat(60))
        );
        assert_eq!(object_name(&"a".repeat(61)).len(), MAX_NAME);
    }

    #[test]
    fn object_name_rules() {
        assert!(valid_object_name("playwright"));
        assert!(valid_object_name("pool.v2"));
        assert!(!valid_object_name("Pool"));
        assert!(!valid_object_name("a..b"));
        assert!(!valid_object_name(""));
    }
}
