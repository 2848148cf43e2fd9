//! The generated gRPC/prost code is committed (so building needs no `protoc`); this test
//! regenerates it with a pure-Rust protobuf compiler (protox) and fails when the committed
//! file drifts from the `.proto` sources. Run with `TRIAD_PROTO_BLESS=1` to rewrite it.

use std::path::{Path, PathBuf};

const PROTO_FILES: &[&str] = &[
    "triad/v1/common.proto",
    "triad/v1/agent.proto",
    "triad/v1/coordinator.proto",
];
const GENERATED: &str = "triad.v1.rs";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate_into(out_dir: &Path) {
    let include = crate_dir().join("proto");
    let fds = protox::compile(PROTO_FILES, [&include]).expect("the .proto files compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .out_dir(out_dir)
        .compile_fds(fds)
        .expect("tonic-prost-build generates code");
}

#[test]
fn committed_generated_code_matches_proto_sources() {
    let scratch = tempfile::tempdir().unwrap();
    generate_into(scratch.path());
    let fresh = std::fs::read_to_string(scratch.path().join(GENERATED)).unwrap();
    let committed_path = crate_dir().join("src/gen").join(GENERATED);
    if std::env::var_os("TRIAD_PROTO_BLESS").is_some() {
        std::fs::write(&committed_path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is out of date with proto/proto/**/*.proto; regenerate with \
         `TRIAD_PROTO_BLESS=1 cargo test -p triad-proto --test generated_code_matches_proto`",
        committed_path.display()
    );
}
