//! Times decoding the first four values of a golden plugin stream (InitPlugin's header and body,
//! then the first Run with the maximal RunArgs and all its type definitions) and counts heap
//! allocations. Prints "<ns per decode> <allocations per decode>" for test/conformance's
//! pluginbench, which compares it with Go's encoding/gob in the same run.
//! Usage: `decode_bench <plugin_requests.gob> <iterations>`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use goplugin::gob::Decoder;
use goplugin::metric::RunArgs;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn decode_once(bytes: &[u8]) -> Result<(), String> {
    let mut dec = Decoder::new(bytes);
    for _ in 0..3 {
        dec.decode().map_err(|e| e.to_string())?;
    }
    let run = dec.decode().map_err(|e| e.to_string())?;
    RunArgs::from_value(&run).map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(iters)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: decode_bench <plugin_requests.gob> <iterations>");
        return std::process::ExitCode::FAILURE;
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = decode_once(&bytes) {
        eprintln!("decode failed: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..iters.max(1) {
        let _ = decode_once(&bytes);
    }
    let ns = start.elapsed().as_nanos() as f64 / iters.max(1) as f64;
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / iters.max(1) as f64;
    println!("{ns:.0} {allocs:.0}");
    std::process::ExitCode::SUCCESS
}
