# Shared by smoke.sh and campaign.sh (sourced): the targets, their libFuzzer options, the build.
# FUZZ_SANITIZER=none (default: builds on stable Rust, coverage only) or address (AddressSanitizer;
# needs nightly, run as `cargo +nightly fuzz`).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fuzz="$root/fuzz"
targets=(plan_load plan_run onnx_compile npy capi)
sanitizer="${FUZZ_SANITIZER:-none}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$fuzz/target/$triple/release"

# libFuzzer's -max_len per target (scripts/fuzz/seeds.py MAX_LEN keeps seeds within it).
max_len() {
  case "$1" in
    plan_load|onnx_compile) echo $((1 << 20)) ;;
    plan_run|capi) echo $((256 << 10)) ;;
    npy) echo $((64 << 10)) ;;
  esac
}

dict() {
  case "$1" in
    plan_load|plan_run|capi) echo "$fuzz/dict/plan.dict" ;;
    onnx_compile) echo "$fuzz/dict/onnx.dict" ;;
    npy) echo "$fuzz/dict/npy.dict" ;;
  esac
}

build_targets() {
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  local toolchain=()
  [ "$sanitizer" = none ] || toolchain=(+nightly)
  (cd "$fuzz" && cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer" "$@")
}

ensure_seeds() {
  local t missing=0
  for t in "${targets[@]}"; do
    [ -n "$(ls -A "$fuzz/corpus/$t" 2>/dev/null)" ] || missing=1
  done
  [ "$missing" = 0 ] || "$root/scripts/fuzz/seeds.sh"
}

# run_target TARGET SECONDS [libFuzzer options...]: fuzzes from fuzz/corpus/TARGET (new inputs
# are added there), crash reproducers go to fuzz/artifacts/TARGET/.
run_target() {
  local t="$1" secs="$2"
  shift 2
  mkdir -p "$fuzz/corpus/$t" "$fuzz/artifacts/$t"
  "$bin_dir/$t" "$fuzz/corpus/$t" -max_total_time="$secs" -max_len="$(max_len "$t")" \
    -dict="$(dict "$t")" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$fuzz/artifacts/$t/" "$@"
}
