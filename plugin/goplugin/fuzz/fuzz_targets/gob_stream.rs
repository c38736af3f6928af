//! Any byte stream fed to the gob decoder, and every decoded value to the Argo model readers:
//! errors are fine, panics, hangs and huge allocations are not.
#![no_main]

use goplugin::gob::{Decoder, Limits};
use goplugin::metric::{
    GarbageCollectArgs, GetMetadataArgs, Measurement, RunArgs, TerminateAndResumeArgs,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message: 1 << 20,
        max_depth: 100,
    };
    let mut dec = Decoder::with_limits(data, limits);
    for _ in 0..64 {
        let Ok(v) = dec.decode() else { break };
        let _ = RunArgs::from_value(&v);
        let _ = TerminateAndResumeArgs::from_value(&v);
        let _ = GarbageCollectArgs::from_value(&v);
        let _ = GetMetadataArgs::from_value(&v);
        let _ = Measurement::from_value(&v);
    }
});
