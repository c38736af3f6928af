//! gob's variable-length integers, floats and byte strings, read from and written to byte buffers.

use super::GobError;

/// Appends `v` in gob's unsigned encoding: one byte below 0x80, else a negated byte count and
/// the minimal big-endian bytes.
pub fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    let n = 8 - skip;
    out.push((-(n as i8)) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends `v` in gob's signed encoding (sign folded into the low bit).
pub fn put_int(out: &mut Vec<u8>, v: i64) {
    let u = if v < 0 {
        ((!v as u64) << 1) | 1
    } else {
        (v as u64) << 1
    };
    put_uint(out, u);
}

/// Appends a float: the IEEE bits byte-reversed, sent as an unsigned integer.
pub fn put_float(out: &mut Vec<u8>, v: f64) {
    put_uint(out, v.to_bits().swap_bytes());
}

/// Appends a length-prefixed byte string (also used for Go strings).
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A read position over one gob message (or part of one).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn byte(&mut self) -> Result<u8, GobError> {
        let b = *self.buf.get(self.pos).ok_or(GobError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], GobError> {
        if n > self.remaining() {
            return Err(GobError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn uint(&mut self) -> Result<u64, GobError> {
        let b = self.byte()?;
        if b < 0x80 {
            return Ok(b as u64);
        }
        let n = (b as i8).unsigned_abs() as usize;
        if n > 8 {
            return Err(GobError::BadUint);
        }
        let bytes = self.take(n)?;
        Ok(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    pub fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    pub fn float(&mut self) -> Result<f64, GobError> {
        Ok(f64::from_bits(self.uint()?.swap_bytes()))
    }

    /// A length that must fit in what is left of the buffer, so absurd lengths fail early
    /// instead of allocating.
    pub fn len_within(&mut self, min_item: usize) -> Result<usize, GobError> {
        let n = self.uint()?;
        let cap = (self.remaining() / min_item.max(1)) as u64;
        if n > cap {
            return Err(GobError::LengthTooLarge(n));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], GobError> {
        let n = self.len_within(1)?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, GobError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint_bytes(v: u64) -> Vec<u8> {
        let mut o = Vec::new();
        put_uint(&mut o, v);
        o
    }

    fn int_bytes(v: i64) -> Vec<u8> {
        let mut o = Vec::new();
        put_int(&mut o, v);
        o
    }

    #[test]
    fn uints_match_the_spec_examples() {
        assert_eq!(uint_bytes(0), [0x00]);
        assert_eq!(uint_bytes(7), [0x07]);
        assert_eq!(uint_bytes(127), [0x7f]);
        assert_eq!(uint_bytes(128), [0xff, 0x80]);
        assert_eq!(uint_bytes(256), [0xfe, 0x01, 0x00]);
        assert_eq!(uint_bytes(300), [0xfe, 0x01, 0x2c]);
        assert_eq!(
            uint_bytes(u64::MAX),
            [0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn ints_match_the_spec_examples() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x02]),
            (-1, &[0x01]),
            (22, &[0x2c]),
            (33, &[0x42]),
            (65, &[0xff, 0x82]),
            (-65, &[0xff, 0x81]),
            (-66, &[0xff, 0x83]),
            (-129, &[0xfe, 0x01, 0x01]),
        ];
        for (v, want) in cases {
            assert_eq!(int_bytes(*v), *want, "encoding {v}");
            assert_eq!(Cursor::new(want).int().unwrap(), *v, "decoding {v}");
        }
        for v in [i64::MIN, i64::MAX, -2, 1 << 40] {
            assert_eq!(Cursor::new(&int_bytes(v)).int().unwrap(), v);
        }
    }

    #[test]
    fn float_matches_the_spec_example() {
        let mut o = Vec::new();
        put_float(&mut o, 17.0);
        assert_eq!(o, [0xfe, 0x31, 0x40]);
        assert_eq!(Cursor::new(&o).float().unwrap(), 17.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            Cursor::new(&[0xf7, 0, 0]).uint(),
            Err(GobError::BadUint)
        ));
        assert!(matches!(
            Cursor::new(&[0xfe, 0x01]).uint(),
            Err(GobError::Truncated)
        ));
        assert!(matches!(
            Cursor::new(&[0xfc, 0x7f, 0xff, 0xff, 0xff, b'a']).bytes(),
            Err(GobError::LengthTooLarge(_))
        ));
    }
}
