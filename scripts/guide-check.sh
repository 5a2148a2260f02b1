#!/usr/bin/env bash
# Compiles every code block of the getting-started guide (docs/guide.md), so the guide cannot
# drift from the APIs: ```c blocks with cc -Wall -Werror against ffi/include, each linked with
# target/release/libsod2.a (a block with a main() is also run on the sample plan and must exit
# 0); ```kotlin blocks with kotlinc through Maven (scripts/guide/pom.xml) against the Kotlin
# binding installed in the local Maven repository and the Android API; ```swift blocks, when a
# Swift toolchain is on the PATH, as targets of a package that depends on ios/. Other blocks
# (shell, Gradle scripts) are listed, not run.
# Needs what scripts/samples.sh builds: target/release/libsod2.a, target/samples/codebert_tiny.sod2
# and dev.sod2:sod2 installed by `mvn install` in android/sod2.
# usage: scripts/guide-check.sh [GUIDE.md]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
guide=${1:-docs/guide.md}
plan=target/samples/codebert_tiny.sod2
for f in target/release/libsod2.a "$plan"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/samples.sh first"; exit 1; }
done
out=target/guide
rm -rf "$out/c" "$out/kotlin" "$out/swift" "$out/bin"
mkdir -p "$out/bin"
python3 scripts/guide/extract.py "$guide" "$out" > "$out/blocks.txt"
count() { awk -v t="$1" '$1 == t { print $2 }' "$out/blocks.txt"; }
n_c=$(count c); n_kt=$(count kotlin); n_swift=$(count swift)
# A guide without C or Kotlin blocks means the extraction broke, not that there is nothing to check.
[ "${n_c:-0}" -gt 0 ] && [ "${n_kt:-0}" -gt 0 ] || { echo "no c or kotlin blocks found in $guide"; cat "$out/blocks.txt"; exit 1; }

ran=0
for src in "$out"/c/*.c; do
  name=$(basename "$src" .c)
  cc -Wall -Werror -O1 -I ffi/include -c "$src" -o "$out/bin/$name.o"
  if grep -q 'int main(' "$src"; then
    cc "$out/bin/$name.o" target/release/libsod2.a -lpthread -ldl -lm -o "$out/bin/$name"
    "$out/bin/$name" "$plan" > "$out/bin/$name.txt" || { echo "$guide: the C program at $name exited $?"; cat "$out/bin/$name.txt"; exit 1; }
    ran=$((ran + 1))
  else
    # No main: link it anyway with an empty one, so every sod2_* function it calls must exist.
    printf 'int main(void) { return 0; }\n' > "$out/bin/$name.main.c"
    cc -Wall -Werror -Wl,--no-gc-sections "$out/bin/$name.o" "$out/bin/$name.main.c" target/release/libsod2.a -lpthread -ldl -lm -o "$out/bin/$name"
  fi
done
echo "C: $n_c blocks compiled with cc -Wall -Werror and linked against libsod2.a ($ran run on $plan)"

(cd scripts/guide && mvn -q -B -Dstyle.color=never compile) > "$out/kotlin.log" 2>&1 || {
  grep -E '^\[ERROR\] file:|^e: ' "$out/kotlin.log" || cat "$out/kotlin.log"
  echo "$guide: a kotlin block does not compile (files: $out/kotlin/guide/lineN/Snippet.kt, N the block's line in the guide)"
  exit 1
}
echo "Kotlin: $n_kt blocks compiled with kotlinc (warnings are errors) against dev.sod2:sod2 and the Android API"

if [ "${n_swift:-0}" -gt 0 ]; then
  swift=${SWIFT:-swift}
  if command -v "$swift" >/dev/null; then
    cargo build --quiet --release -p sod2-uniffi
    {
      echo '// swift-tools-version:5.9'
      echo 'import PackageDescription'
      echo 'let package = Package(name: "GuideCheck", dependencies: [.package(path: "../../../ios")], targets: ['
      for d in "$out"/swift/line*; do
        echo "  .target(name: \"G$(basename "$d")\", dependencies: [.product(name: \"Sod2\", package: \"ios\")], path: \"$(basename "$d")\"),"
      done
      echo '])'
    } > "$out/swift/Package.swift"
    lib="$root/target/release"
    (cd "$out/swift" && "$swift" build -Xlinker -L"$lib" -Xlinker -rpath -Xlinker "$lib") || { echo "$guide: a swift block does not compile"; exit 1; }
    echo "Swift: $n_swift blocks compiled against the ios/ package"
  else
    echo "Swift: $n_swift blocks NOT compiled: no Swift toolchain installed ('$swift' is not on the PATH)"
  fi
fi
others=$(awk '$1 != "c" && $1 != "kotlin" && $1 != "swift" { printf "%s%s %s", sep, $2, $1; sep = ", " }' "$out/blocks.txt")
[ -z "$others" ] || echo "not compiled (not code of an API): $others blocks"
echo "ok: every c and kotlin block of $guide compiles"
