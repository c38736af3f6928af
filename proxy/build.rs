//! Generates the substrate gRPC client and server stubs from proto/ateapi.proto with a pure-Rust
//! protobuf compiler (protox), so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ateapi.proto");
    let fds = protox::compile(["ateapi.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
