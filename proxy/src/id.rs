//! The one rule for sandbox ids, wherever they come from (static map, token header, pod label,
//! session API path). Ids become object names, directory names, actor names and URL path segments,
//! so besides the character set (1-63 of `[A-Za-z0-9._-]`) they must not be the dot segments
//! `.` and `..`.

/// The rule, as error messages state it.
pub const RULE: &str = "1-63 characters of [A-Za-z0-9._-], not \".\" or \"..\"";

/// Whether `id` may name a sandbox: 1-63 characters of `[A-Za-z0-9._-]` (the characters and length
/// of a Kubernetes label value), except `.` and `..`.
pub fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_bad_characters_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a%2e",
            "é",
            "a\0",
            &"x".repeat(64),
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
        for good in [
            "a",
            "...",
            ".a",
            "a..b",
            "bench-cold-3",
            "A_b.c-D",
            &"x".repeat(63),
        ] {
            assert!(valid(good), "{good:?}");
        }
    }
}
