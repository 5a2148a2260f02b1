//! Regenerates the checked-in prost bindings for `onnx.proto`.
//! Run through `scripts/regen-proto.sh`; needs `protoc` on PATH.
fn main() -> std::io::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| ".".to_string());
    let proto_dir = format!("{root}/core/onnx/proto");
    let out_dir = format!("{root}/core/onnx/src/proto");
    std::fs::create_dir_all(&out_dir)?;
    let mut cfg = prost_build::Config::new();
    cfg.out_dir(&out_dir);
    cfg.compile_protos(&[format!("{proto_dir}/onnx.proto")], &[proto_dir])?;
    Ok(())
}
