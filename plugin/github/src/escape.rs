//! Making untrusted text inert before it goes into an issue.
//!
//! Anything measured, read from the cluster or written by a judge may try to ping people
//! (`@someone`, `#123` cross-references), inject markup (HTML, links, images, fences, table
//! breaks) or carry instructions for whoever reads the issue next, human or coding agent. The
//! text is kept readable but every construct GitHub would act on is neutralised, and lengths are
//! capped.

/// Inserted after `@` and `#` so GitHub neither mentions nor cross-references, while the text
/// still reads the same.
const ZWJ: char = '\u{200D}';
/// Marks text that was cut.
const ELLIPSIS: char = '…';

/// Characters that render as nothing or reorder text; dropped so that nothing hides in plain sight.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Drops invisible characters, turns control characters (newlines included) into spaces,
/// collapses runs of whitespace and cuts to `max_chars` (counting the ellipsis).
fn clean(text: &str, max_chars: usize) -> String {
    let normalised: Vec<char> = text
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    if normalised.len() <= max_chars {
        return normalised.into_iter().collect();
    }
    if max_chars == 0 {
        return String::new();
    }
    let mut out: String = normalised[..max_chars - 1].iter().collect();
    out.push(ELLIPSIS);
    out
}

/// Untrusted text as one line of inert Markdown, safe in a table cell or list item.
pub fn inline(text: &str, max_chars: usize) -> String {
    let cleaned = clean(text, max_chars);
    let chars: Vec<char> = cleaned.chars().collect();
    let mut out = String::with_capacity(cleaned.len() + 16);
    // A leading "1." or "1)" would start an ordered list.
    let leading_digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let wordy = next.is_some_and(|n| n.is_alphanumeric() || n == '-' || n == '_');
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => {
                out.push('@');
                if wordy {
                    out.push(ZWJ);
                }
            }
            '#' => {
                out.push_str("\\#");
                if wordy {
                    out.push(ZWJ);
                }
            }
            // "scheme://" and "www." would be autolinked.
            ':' if chars.get(i + 1..i + 3) == Some(&['/', '/'][..]) => {
                out.push(':');
                out.push(ZWJ);
            }
            '.' if i >= 3
                && chars[i - 3..i]
                    .iter()
                    .collect::<String>()
                    .eq_ignore_ascii_case("www") =>
            {
                out.push(ZWJ);
                out.push_str("\\.");
            }
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '{' | '}' | '|' | '~' | '!' | '$'
            | '"' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' | '=' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '.' if i == leading_digits && i > 0 => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Untrusted text for an issue title (plain text on GitHub): one line, no pings, capped.
pub fn title(text: &str, max_chars: usize) -> String {
    let cleaned = clean(text, max_chars);
    let chars: Vec<char> = cleaned.chars().collect();
    let mut out = String::with_capacity(cleaned.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        out.push(c);
        let next = chars.get(i + 1).copied();
        if c == '@' && next.is_some_and(|n| n.is_alphanumeric() || n == '-') {
            out.push(ZWJ);
        }
    }
    out
}

/// A Mermaid axis label: a short run of characters that cannot close the quoted string or the
/// code fence.
pub fn chart_label(text: &str, max_chars: usize) -> String {
    let cleaned = clean(text, max_chars);
    cleaned
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | '/' | '-' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A link destination for `[text](...)`: only absolute http(s) URLs without credentials, with the
/// characters that could end the destination or start markup percent-encoded.
pub fn link(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let mut out = String::with_capacity(url.as_str().len());
    for c in url.as_str().chars() {
        match c {
            '(' | ')' | '<' | '>' | '"' | '\'' | '`' | '\\' | '|' | ' ' | '[' | ']' | '*' => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            _ => out.push(c),
        }
    }
    (out.chars().count() <= 2_000).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_references_are_broken() {
        let s = inline("ping @octocat and @org/team about #12", 200);
        assert!(!s.contains("@octocat"), "{s}");
        assert!(s.contains("@\u{200D}octocat"));
        assert!(s.contains("@\u{200D}org/team"));
        assert!(!s.contains("#12"));
        // A lone @ stays as it is.
        assert_eq!(inline("a @ b", 20), "a @ b");
    }

    #[test]
    fn html_and_markdown_are_inert() {
        let s = inline(
            "</details><img src=x onerror=alert(1)> [click](https://evil.example) ```js `code` | x **b**",
            500,
        );
        for bad in [
            "<img",
            "</details>",
            "[click](",
            "](",
            "```",
            "`code`",
            "**",
            "https://",
            " | ",
        ] {
            assert!(!s.contains(bad), "{bad:?} survived in {s}");
        }
        assert!(s.contains("&lt;img"));
        assert!(s.contains("\\[click\\]\\("));
    }

    #[test]
    fn structure_cannot_be_started() {
        assert!(!inline("line1\n# heading\n- item", 100).contains('\n'));
        assert_eq!(inline("- item", 20), "\\- item");
        assert_eq!(inline("12. item", 20), "12\\. item");
        assert_eq!(inline("3.5 ms", 20), "3\\.5 ms");
        assert_eq!(inline("took 3.5 ms", 20), "took 3.5 ms");
        assert!(!inline("<!-- sandcanary:fingerprint=00 -->", 100).contains("<!--"));
    }

    #[test]
    fn autolinks_are_broken() {
        let s = inline("see https://evil.example and www.evil.example", 200);
        assert!(!s.contains("://"));
        assert!(!s.to_lowercase().contains("www."));
    }

    #[test]
    fn invisible_and_control_characters_go() {
        let s = inline("a\u{202E}b\u{200B}c\td\r\ne\u{0}", 50);
        assert_eq!(s, "abc d e");
    }

    #[test]
    fn lengths_are_capped_on_char_boundaries() {
        let s = inline(&"é".repeat(1000), 10);
        assert_eq!(s.chars().count(), 10);
        assert!(s.ends_with('…'));
        assert_eq!(clean("exactly10!", 10), "exactly10!");
        assert_eq!(clean("exactly11!!", 10), "exactly11…");
        assert_eq!(clean("short", 10), "short");
        assert_eq!(clean("", 10), "");
        assert_eq!(clean("abc", 0), "");
    }

    #[test]
    fn titles_are_plain_and_quiet() {
        let t = title("regression by @alice\nin proxy", 100);
        assert_eq!(t, "regression by @\u{200D}alice in proxy");
    }

    #[test]
    fn chart_labels_cannot_escape_quotes_or_fences() {
        assert_eq!(chart_label("warm/\"total\"]```", 40), "warm/_total_____");
        assert_eq!(chart_label("cold connect", 40), "cold connect");
    }

    #[test]
    fn links_are_checked_and_encoded() {
        assert_eq!(
            link("https://argo.example/rollouts/prod/proxy").as_deref(),
            Some("https://argo.example/rollouts/prod/proxy")
        );
        assert_eq!(
            link("https://argo.example/a(b)c").as_deref(),
            Some("https://argo.example/a%28b%29c")
        );
        assert!(link("javascript:alert(1)").is_none());
        assert!(link("https://user:pw@argo.example/").is_none());
        assert!(link("not a url").is_none());
        let l = link("https://argo.example/x?q=\"<b>\"&r=`c`").unwrap();
        assert!(!l.contains(['"', '<', '>', '`', '(', ')']), "{l}");
    }
}
