#!/usr/bin/env bash
# Builds and runs every binding and sample, and checks each against the CLI on the same inputs:
# the C header is current (cbindgen), the C sample (also under valgrind and, cross-built, under
# qemu-aarch64), the C misuse tests, the Kotlin/JVM binding and sample (on the host JVM, then on
# an arm64 JVM under qemu-aarch64 against the aarch64 libsod2_jni), the AAR layout, the uniffi
# bindings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py="$root/.venv/bin/python"
step() { printf '\n---- %s\n' "$*"; }
cargo build --quiet --release -p sod2 -p sod2-ffi
mkdir -p target/samples
plan=target/samples/codebert_tiny.sod2
target/release/sod2 compile samples/models/codebert_tiny.onnx -o "$plan" --dim batch=1..8 --dim seq=1..128 >/dev/null
check() { "$py" scripts/samples/check.py --sod2 target/release/sod2 --plan "$plan" "$1"; }

step "C header is current (cbindgen)"
scripts/regen-header.sh --check

step "C sample (cc -Wall -Werror), against sod2 run"
link=(target/release/libsod2.a -lpthread -ldl -lm)
cc -Wall -Werror -O2 -I ffi/include samples/c/main.c "${link[@]}" -o target/samples/c_sample
target/samples/c_sample "$plan" > target/samples/c_sample.txt
check target/samples/c_sample.txt

step "C misuse tests"
cc -Wall -Werror -O2 -I ffi/include ffi/tests/misuse.c "${link[@]}" -o target/samples/c_misuse
target/samples/c_misuse "$plan" | tail -n 1

step "valgrind: C sample and misuse tests (no leaks, no errors)"
for b in c_sample c_misuse; do
  valgrind --quiet --suppressions=scripts/samples/valgrind.supp --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 \
    "target/samples/$b" "$plan" > /dev/null
  echo "valgrind $b: 0 errors, 0 leaks"
done

step "C sample cross-built for arm64, run under qemu-aarch64, against sod2 run"
scripts/cross-arm64.sh "$plan" target/samples/c_sample_arm64.txt > /dev/null 2> target/samples/arm64-build.log || { cat target/samples/arm64-build.log; exit 1; }
check target/samples/c_sample_arm64.txt

step "Rust sample, against sod2 run"
cargo run --quiet --release -p sod2-sample-rust -- "$plan" > target/samples/rust_sample.txt
check target/samples/rust_sample.txt

step "Kotlin binding on the JVM: JUnit tests against the host libsod2_jni"
cargo build --quiet --release -p sod2-jni
mvn_args=(-q -B -Dsod2.lib.dir="$root/target/release" -Dsod2.plan="$root/$plan")
(cd android/sod2 && mvn "${mvn_args[@]}" install)
grep -h "Tests run" android/sod2/target/surefire-reports/*.txt

step "Kotlin sample (JVM), against sod2 run"
(cd samples/kotlin && mvn "${mvn_args[@]}" compile exec:exec) > target/samples/kotlin_sample.txt
check target/samples/kotlin_sample.txt

step "Kotlin on arm64: libsod2_jni cross-built for aarch64, JUnit tests on an arm64 JVM under qemu-aarch64 (mvn -Parm64)"
t0=$SECONDS
cargo +debian-web build --quiet --release --target aarch64-unknown-linux-gnu -p sod2-jni
echo "libsod2_jni.so: $(file -b target/aarch64-unknown-linux-gnu/release/libsod2_jni.so | cut -d, -f1-2)"
arm_args=(-q -B -Parm64 -Dsod2.plan="$root/$plan")
rm -rf android/sod2/target/surefire-reports
# install (tests, then the jar) right before the sample, which resolves the binding from ~/.m2
(cd android/sod2 && mvn "${arm_args[@]}" install)
grep -h "Tests run" android/sod2/target/surefire-reports/*.txt
# The profile's os.arch test must have run, not been skipped: the tests ran on an aarch64 JVM.
grep -q "Skipped: 0" android/sod2/target/surefire-reports/dev.sod2.Sod2Test.txt || { echo "a test was skipped on arm64"; exit 1; }
grep -ho '<property name="os.arch" value="[^"]*"/>' android/sod2/target/surefire-reports/TEST-*.xml
echo "($((SECONDS - t0)) s)"

step "Kotlin sample on an arm64 JVM under qemu-aarch64 (mvn -Parm64), against sod2 run"
t0=$SECONDS
(cd samples/kotlin && mvn "${arm_args[@]}" compile exec:exec) > target/samples/kotlin_sample_arm64.txt
# Its header names os.arch (Maven's colour codes may precede it on the line).
grep -o 'sod2 [^ ]* on [a-z0-9_]*: .*' target/samples/kotlin_sample_arm64.txt | head -n 1
grep -q 'sod2 [^ ]* on aarch64: ' target/samples/kotlin_sample_arm64.txt || { echo "the sample did not run on aarch64"; exit 1; }
check target/samples/kotlin_sample_arm64.txt
echo "($((SECONDS - t0)) s)"

step "AAR layout without the Android SDK (scripts/android-aar.sh), checked by check_aar.py and its self-tests"
t0=$SECONDS
scripts/android-aar.sh target/samples/sod2-arm64.aar
"$py" scripts/samples/check_aar.py target/samples/sod2-arm64.aar
log=target/samples/check_aar_tests.log
SOD2_AAR=target/samples/sod2-arm64.aar "$py" -m unittest scripts/samples/test_check_aar.py > "$log" 2>&1 || { cat "$log"; exit 1; }
echo "check_aar.py self-tests (broken AARs rejected): $(grep -E '^Ran ' "$log"), $(tail -n 1 "$log")"
echo "($((SECONDS - t0)) s)"

step "uniffi: Swift bindings are current; end-to-end through the generated Python bindings"
scripts/regen-uniffi.sh --check
"$py" scripts/samples/uniffi_test.py target/uniffi-python "$plan" > target/samples/uniffi_sample.txt
check target/samples/uniffi_sample.txt
