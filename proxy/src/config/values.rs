//! Parsers for single values (durations, ports, counts, booleans, addresses, lists), shared by every
//! component's settings; each error names the variable it came from.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, duration, err};

/// The value if it is set and not blank: empty strings count as unset.
pub(super) fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

pub(super) fn dur(
    var: &'static str,
    v: &Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    duration::parse(set(v).unwrap_or(default)).map_err(|m| err(var, m))
}

pub(super) fn positive_dur(
    var: &'static str,
    v: &Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let d = dur(var, v, default)?;
    if d.is_zero() {
        return Err(err(var, "must be greater than zero"));
    }
    Ok(d)
}

pub(super) fn port(var: &'static str, v: &str) -> Result<u16, ConfigError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| err(var, format!("{v:?} is not an integer")))?;
    if !(1..=65535).contains(&n) {
        return Err(err(var, format!("{n} out of range 1..65535")));
    }
    Ok(n as u16)
}

pub(super) fn count(
    var: &'static str,
    v: &Option<String>,
    default: usize,
    min: usize,
) -> Result<usize, ConfigError> {
    let Some(s) = set(v) else { return Ok(default) };
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| err(var, format!("{s:?} is not a non-negative integer")))?;
    if n < min {
        return Err(err(var, format!("{n} is below the minimum {min}")));
    }
    Ok(n)
}

pub(super) fn boolean(
    var: &'static str,
    v: &Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    match set(v).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(s) => match s.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(err(var, format!("{s:?} is not a boolean (true or false)"))),
        },
    }
}

/// Parses a listen address in Go's forms: `:9000`, `127.0.0.1:9000`, `[::1]:9000`, `localhost:9000`.
/// `:9000` means every address of both families, as in Go: `[::]:9000`, which the server binds
/// dual-stack (IPv4 callers arrive as IPv4-mapped addresses, which identity canonicalizes).
pub fn parse_listen_addr(var: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    let v = v.trim();
    if let Some(p) = v.strip_prefix(':') {
        return Ok(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            port(var, p)?,
        ));
    }
    if let Some(p) = v.strip_prefix("localhost:") {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port(var, p)?,
        ));
    }
    if let Ok(addr) = v.parse::<SocketAddr>() {
        // Port 0 is allowed on purpose: tests and the demo let the kernel choose.
        return Ok(addr);
    }
    Err(err(
        var,
        format!("{v:?} is not an address of the form host:port, :port or [v6]:port"),
    ))
}

/// A secret given inline (`var`) or in a file (`file_var`), not both; never echoed in an error.
pub(super) fn secret(
    var: &'static str,
    file_var: &'static str,
    value: &Option<String>,
    file: &Option<String>,
) -> Result<Option<SecretString>, ConfigError> {
    match (set(value), set(file)) {
        (Some(_), Some(_)) => Err(err(
            var,
            format!("set either {var} or {file_var}, not both"),
        )),
        (Some(v), None) => Ok(Some(SecretString::from(v.trim()))),
        (None, Some(path)) => {
            let s = std::fs::read_to_string(path)
                .map_err(|e| err(file_var, format!("cannot read {path:?}: {e}")))?;
            let s = s.trim();
            if s.is_empty() {
                return Err(err(file_var, format!("{path:?} is empty")));
            }
            Ok(Some(SecretString::from(s)))
        }
        (None, None) => Ok(None),
    }
}

/// A comma-separated list; blank items are dropped.
pub(super) fn list(v: &Option<String>) -> Vec<String> {
    set(v)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Parses `host:port` or `[v6]:port` (the reference split at the first `:`, which broke IPv6).
pub fn parse_authority(
    var: &'static str,
    v: &str,
) -> Result<crate::backend::Authority, ConfigError> {
    let v = v.trim();
    let bad = || {
        err(
            var,
            format!("{v:?} is not an address of the form host:port or [v6]:port"),
        )
    };
    if v.contains("://") {
        return Err(err(var, format!("{v:?}: give host:port without a scheme")));
    }
    let (host, p) = if let Some(rest) = v.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        (h, p)
    } else {
        let (h, p) = v.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(err(
                var,
                format!("{v:?}: an IPv6 address must be bracketed, as in [fd00::1]:443"),
            ));
        }
        (h, p)
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return Err(bad());
    }
    let auth = crate::backend::Authority::new(host, port(var, p)?);
    // The gRPC client builds a URI from it; make sure that works now rather than at the first call.
    format!("http://{auth}")
        .parse::<http::Uri>()
        .map_err(|_| bad())?;
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_in_go_forms() {
        assert_eq!(
            parse_listen_addr("X", ":9000").unwrap().to_string(),
            "[::]:9000"
        );
        assert_eq!(
            parse_listen_addr("X", "0.0.0.0:9000").unwrap().to_string(),
            "0.0.0.0:9000"
        );
        assert_eq!(parse_listen_addr("X", "127.0.0.1:0").unwrap().port(), 0);
        assert_eq!(
            parse_listen_addr("X", "[::1]:9000").unwrap().to_string(),
            "[::1]:9000"
        );
        assert_eq!(
            parse_listen_addr("X", "localhost:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn lists_drop_blank_items() {
        assert_eq!(list(&Some(" a, ,b ".into())), vec!["a", "b"]);
        assert!(list(&Some("  ".into())).is_empty());
        assert!(list(&None).is_empty());
    }
}
