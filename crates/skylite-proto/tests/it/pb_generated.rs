//! Keeps the committed Protobuf code (`src/pb/*.rs`) in step with the schema (`proto/*.proto`).
//!
//! The crate must build with nothing but cargo, so the Rust that `prost-build` generates is
//! committed. This test regenerates it into a temporary folder when `protoc` is available
//! (on PATH, or named by `PROTOC`) and fails if anything differs. Without `protoc` it says so
//! and passes, unless `SKYLITE_REQUIRE_PROTOC` is set (CI should set it and install `protoc`,
//! e.g. `apt-get install protobuf-compiler`, so drift is caught there).
//!
//! To regenerate after editing a `.proto` file:
//! `SKYLITE_REGEN_PROTO=1 cargo test -p skylite-proto --test pb_generated`.

use std::path::{Path, PathBuf};

/// The schema files, relative to `proto/`.
const PROTOS: &[&str] = &["hrana.proto", "hrana_ws.proto", "hrana_http.proto"];
/// The files prost-build writes (one per package).
const GENERATED: &[&str] = &["hrana.rs", "hrana.ws.rs", "hrana.http.rs"];

fn protoc_available() -> bool {
    let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
    std::process::Command::new(protoc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn generate(out: &Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| proto_dir.join(p)).collect();
    prost_build::Config::new()
        // Maps are encoded in key order, so the same value always gives the same bytes.
        .btree_map(["."])
        .out_dir(out)
        .compile_protos(&files, &[proto_dir])
        .expect("prost-build compiles the schema");
}

#[test]
fn committed_protobuf_code_matches_the_schema() {
    if !protoc_available() {
        assert!(
            std::env::var_os("SKYLITE_REQUIRE_PROTOC").is_none(),
            "SKYLITE_REQUIRE_PROTOC is set but protoc is not on PATH (nor named by PROTOC)"
        );
        eprintln!("protoc not found: skipping the check of src/pb against proto/");
        return;
    }
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/pb");
    let tmp = tempfile::tempdir().expect("temporary folder");
    generate(tmp.path());
    let regen = std::env::var_os("SKYLITE_REGEN_PROTO").is_some();
    let mut stale = Vec::new();
    for name in GENERATED {
        let fresh = std::fs::read_to_string(tmp.path().join(name)).expect("generated file");
        let path = committed.join(name);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != fresh {
            if regen {
                std::fs::write(&path, &fresh).expect("write generated file");
                eprintln!("regenerated {}", path.display());
            } else {
                stale.push(*name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "src/pb/{stale:?} differ from what proto/*.proto generates; run \
         `SKYLITE_REGEN_PROTO=1 cargo test -p skylite-proto --test pb_generated` and commit"
    );
}
