//! Hostile and broken input: every case ends in an error value, never a panic or a hang.

use std::path::PathBuf;

use goplugin::gob::{Decoder, GobError, Limits, put_int, put_uint};

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .unwrap()
}

/// Decodes values until an error; returns how many decoded and the error.
fn drain(bytes: &[u8]) -> (usize, GobError) {
    let mut dec = Decoder::new(bytes);
    let mut n = 0;
    loop {
        match dec.decode() {
            Ok(_) => n += 1,
            Err(e) => return (n, e),
        }
    }
}

#[test]
fn every_truncation_of_the_golden_streams_is_an_error() {
    for name in [
        "control_requests.gob",
        "plugin_requests.gob",
        "go_replies.gob",
    ] {
        let full = golden(name);
        let (complete, end) = drain(&full);
        assert!(matches!(end, GobError::Eof), "{name}: {end}");
        let step = (full.len() / 400).max(1);
        for cut in (1..full.len()).step_by(step) {
            let (n, e) = drain(&full[..cut]);
            assert!(n < complete, "{name} cut at {cut} decoded everything");
            assert!(
                matches!(e, GobError::Eof | GobError::UnexpectedEof),
                "{name} cut at {cut}: {e}"
            );
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    for name in [
        "control_requests.gob",
        "plugin_requests.gob",
        "go_replies.gob",
    ] {
        let full = golden(name);
        let step = (full.len() / 250).max(1);
        for i in (0..full.len()).step_by(step) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = full.clone();
                b[i] ^= flip;
                let _ = drain(&b);
            }
        }
    }
}

#[test]
fn absurd_lengths_are_rejected_without_allocating() {
    // A message claiming 2^62 bytes.
    let mut b = Vec::new();
    put_uint(&mut b, 1 << 62);
    assert!(matches!(drain(&b).1, GobError::MessageTooLarge(..)));
    // A string claiming more bytes than the message holds: singleton string (id 6).
    let mut body = Vec::new();
    put_int(&mut body, 6);
    body.push(0);
    put_uint(&mut body, u64::MAX >> 1);
    let mut msg = Vec::new();
    put_uint(&mut msg, body.len() as u64);
    msg.extend_from_slice(&body);
    assert!(matches!(drain(&msg).1, GobError::LengthTooLarge(_)));
    // A length prefix of more than 8 bytes.
    assert!(matches!(drain(&[0xf0, 1, 2]).1, GobError::BadLength));
    // A small limit applies.
    let big = golden("plugin_requests.gob");
    let mut dec = Decoder::with_limits(
        &big[..],
        Limits {
            max_message: 64,
            max_depth: 100,
        },
    );
    let mut err = None;
    for _ in 0..100 {
        if let Err(e) = dec.decode() {
            err = Some(e);
            break;
        }
    }
    assert!(
        matches!(err, Some(GobError::MessageTooLarge(..))),
        "{err:?}"
    );
}

/// A chain of `depth` slice types, each the element of the next, and a value nested that deep.
fn nested_slices(depth: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..depth {
        let id = 65 + i as i64;
        let elem = if i == 0 { 2 } else { id - 1 };
        let mut body = Vec::new();
        put_int(&mut body, -id);
        body.extend_from_slice(&[2, 1, 2]); // wireType.SliceT, sliceType.CommonType, CommonType.Id
        put_int(&mut body, id);
        body.push(0); // end CommonType
        body.push(1); // sliceType.Elem
        put_int(&mut body, elem);
        body.extend_from_slice(&[0, 0]);
        put_uint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    let mut body = Vec::new();
    put_int(&mut body, 64 + depth as i64);
    body.push(0);
    body.extend(std::iter::repeat_n(1u8, depth)); // one element per level
    body.push(0); // the innermost int
    put_uint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

#[test]
fn deep_nesting_is_bounded() {
    assert!(Decoder::new(&nested_slices(50)[..]).decode().is_ok());
    let e = Decoder::new(&nested_slices(5000)[..]).decode().unwrap_err();
    assert!(matches!(e, GobError::TooDeep(_)), "{e}");
}

#[test]
fn bad_type_definitions_are_errors() {
    // id below 64
    let mut body = Vec::new();
    put_int(&mut body, -10);
    body.extend_from_slice(&[2, 1, 2, 0x14, 0, 1, 4, 0, 0]);
    let mut msg = Vec::new();
    put_uint(&mut msg, body.len() as u64);
    msg.extend_from_slice(&body);
    assert!(matches!(drain(&msg).1, GobError::BadTypeId(10)));
    // the same id twice
    let one = nested_slices(1);
    let def_len = one[0] as usize + 1;
    let mut twice = one[..def_len].to_vec();
    twice.extend_from_slice(&one[..def_len]);
    assert!(matches!(drain(&twice).1, GobError::DuplicateType(65)));
    // a value of a type never defined
    assert!(matches!(
        drain(&[0x03, 0xff, 0x90, 0x00]).1,
        GobError::UnknownType(72)
    ));
}
