//! `time.Time` in its `MarshalBinary` layout, as `metav1.Time` travels inside gob.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::GobError;

/// Seconds from 0001-01-01 to 1970-01-01, Go's `unixToInternal`.
const UNIX_TO_INTERNAL: i64 = (1969 * 365 + 1969 / 4 - 1969 / 100 + 1969 / 400) * 86400;

/// An instant with Go's zone information: `offset_secs == None` is the `time.UTC` location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    pub unix_secs: i64,
    pub nanos: u32,
    pub offset_secs: Option<i32>,
}

impl GoTime {
    /// A UTC time from Unix seconds and nanoseconds.
    pub fn from_unix(unix_secs: i64, nanos: u32) -> Self {
        GoTime {
            unix_secs,
            nanos,
            offset_secs: None,
        }
    }

    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Go's zero `time.Time` (year 1), which `IsZero` reports as unset.
    pub fn is_zero(&self) -> bool {
        self.unix_secs == -UNIX_TO_INTERNAL && self.nanos == 0
    }

    /// The same instant plus `d`, in UTC.
    pub fn plus(&self, d: Duration) -> Self {
        let total = self.nanos as u64 + d.subsec_nanos() as u64;
        GoTime {
            unix_secs: self.unix_secs + d.as_secs() as i64 + (total / 1_000_000_000) as i64,
            nanos: (total % 1_000_000_000) as u32,
            offset_secs: None,
        }
    }

    pub fn to_system_time(&self) -> SystemTime {
        if self.unix_secs >= 0 {
            UNIX_EPOCH + Duration::new(self.unix_secs as u64, self.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.unix_secs.unsigned_abs())
                + Duration::from_nanos(self.nanos as u64)
        }
    }

    /// Encodes as Go's `MarshalBinary` would: version 1, or 2 when the offset has seconds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sec = self.unix_secs + UNIX_TO_INTERNAL;
        let (version, offset_min, offset_sec) = match self.offset_secs {
            None => (1u8, -1i16, 0i8),
            Some(o) if o % 60 != 0 => (2, (o / 60) as i16, (o % 60) as i8),
            Some(o) => (1, (o / 60) as i16, 0),
        };
        let mut out = Vec::with_capacity(16);
        out.push(version);
        out.extend_from_slice(&sec.to_be_bytes());
        out.extend_from_slice(&(self.nanos as i32).to_be_bytes());
        out.extend_from_slice(&offset_min.to_be_bytes());
        if version == 2 {
            out.push(offset_sec as u8);
        }
        out
    }

    /// Decodes Go's `MarshalBinary` layout; an offset of -1 minute means UTC.
    pub fn from_bytes(b: &[u8]) -> Result<Self, GobError> {
        let version = *b.first().ok_or(GobError::BadTime("no data"))?;
        let want = match version {
            1 => 15,
            2 => 16,
            _ => return Err(GobError::BadTime("unsupported version")),
        };
        if b.len() != want {
            return Err(GobError::BadTime("invalid length"));
        }
        let sec = i64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
        let nsec = i32::from_be_bytes(b[9..13].try_into().expect("4 bytes"));
        if !(0..1_000_000_000).contains(&nsec) {
            return Err(GobError::BadTime("nanoseconds out of range"));
        }
        let offset_min = i16::from_be_bytes(b[13..15].try_into().expect("2 bytes"));
        let mut offset = offset_min as i32 * 60;
        if version == 2 {
            offset += b[15] as i32;
        }
        Ok(GoTime {
            unix_secs: sec.wrapping_sub(UNIX_TO_INTERNAL),
            nanos: nsec as u32,
            offset_secs: if offset == -60 { None } else { Some(offset) },
        })
    }

    /// RFC 3339 with nanoseconds in UTC, for logs and digests.
    pub fn to_rfc3339(&self) -> String {
        humantime::format_rfc3339_nanos(self.to_system_time()).to_string()
    }
}

impl From<SystemTime> for GoTime {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => GoTime::from_unix(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let (mut s, mut n) = (-(d.as_secs() as i64), d.subsec_nanos());
                if n > 0 {
                    s -= 1;
                    n = 1_000_000_000 - n;
                }
                GoTime::from_unix(s, n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn matches_the_computed_examples() {
        let t = GoTime::from_unix(1_704_067_200, 0);
        assert_eq!(
            t.to_bytes(),
            hex("01 00 00 00 0e dd 23 f7 80 00 00 00 00 ff ff")
        );
        let local = GoTime {
            offset_secs: Some(0),
            ..t
        };
        assert_eq!(
            local.to_bytes(),
            hex("01 00 00 00 0e dd 23 f7 80 00 00 00 00 00 00")
        );
        let ist = GoTime {
            unix_secs: 1_704_067_200,
            nanos: 500_000_000,
            offset_secs: Some(330 * 60),
        };
        let b = hex("01 00 00 00 0e dd 23 f7 80 1d cd 65 00 01 4a");
        assert_eq!(ist.to_bytes(), b);
        assert_eq!(GoTime::from_bytes(&b).unwrap(), ist);
        let published = GoTime::from_unix(1_517_495_400, 0);
        assert_eq!(
            published.to_bytes(),
            hex("01 00 00 00 0e d2 05 1b 68 00 00 00 00 ff ff")
        );
    }

    #[test]
    fn round_trips_and_rejects_bad_lengths() {
        let t = GoTime::from_unix(1_800_000_000, 123_456_789);
        assert_eq!(GoTime::from_bytes(&t.to_bytes()).unwrap(), t);
        let lmt = GoTime {
            unix_secs: -2_000_000_000,
            nanos: 1,
            offset_secs: Some(19 * 60 + 32),
        };
        let b = lmt.to_bytes();
        assert_eq!(b.len(), 16);
        assert_eq!(GoTime::from_bytes(&b).unwrap(), lmt);
        assert!(GoTime::from_bytes(&b[..15]).is_err());
        assert!(GoTime::from_bytes(&[]).is_err());
        assert!(GoTime::from_bytes(&[9; 15]).is_err());
        assert_eq!(t.to_rfc3339(), "2027-01-15T08:00:00.123456789Z");
        assert_eq!(GoTime::from(t.to_system_time()), t);
    }
}
