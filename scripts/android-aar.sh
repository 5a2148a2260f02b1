#!/usr/bin/env bash
# Assembles the Android library archive (AAR) without the Android SDK, from what these machines
# can build: classes.jar from the Maven build's classes (android/sod2, the same Kotlin sources the
# Gradle build compiles), jni/arm64-v8a/libsod2_jni.so from the aarch64 cross build, and the
# AndroidManifest.xml (package and minSdk from android/sod2/build.gradle.kts), R.txt (empty: no
# resources), proguard.txt (android/sod2/consumer-rules.pro) and aar-metadata.properties that
# AGP writes. scripts/samples/check_aar.py validates the result.
#
# The .so is an aarch64-unknown-linux-gnu (glibc) build: same instruction set and JNI symbols, but
# not loadable on a phone (Android's libc is bionic). A device AAR comes from the NDK build in
# android/README.md (cargo ndk, target aarch64-linux-android); this script documents and checks
# the archive's layout; given an NDK-built libsod2_jni.so as SO, it packs that one instead.
# usage: scripts/android-aar.sh OUT.aar [SO]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1")
gradle="$root/android/sod2/build.gradle.kts"
package=$(sed -n 's/^ *namespace = "\(.*\)".*/\1/p' "$gradle")
min_sdk=$(sed -n 's/^ *minSdk = \([0-9]*\).*/\1/p' "$gradle")
[ -n "$package" ] && [ -n "$min_sdk" ] || { echo "no namespace/minSdk in $gradle" >&2; exit 1; }

# The aarch64 library (a no-op when current) and the Kotlin classes.
if [ $# -ge 2 ]; then
  so=$(realpath "$2")
else
  if ! rustup toolchain list | grep -q '^debian-web'; then
    rustup toolchain link debian-web /usr
  fi
  cargo +debian-web build --quiet --release --manifest-path "$root/Cargo.toml" --target aarch64-unknown-linux-gnu -p sod2-jni
  so="$root/target/aarch64-unknown-linux-gnu/release/libsod2_jni.so"
fi
(cd "$root/android/sod2" && mvn -q -B compile)
classes="$root/android/sod2/target/classes"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/jni/arm64-v8a" "$stage/META-INF/com/android/build/gradle"
jar --create --no-manifest --file "$stage/classes.jar" -C "$classes" .
# Debug info off (the release profile keeps line tables); the dynamic symbols stay.
aarch64-linux-gnu-strip --strip-debug -o "$stage/jni/arm64-v8a/libsod2_jni.so" "$so"
cat > "$stage/AndroidManifest.xml" <<XML
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="$package" >

    <uses-sdk android:minSdkVersion="$min_sdk" />

</manifest>
XML
: > "$stage/R.txt"
cp "$root/android/sod2/consumer-rules.pro" "$stage/proguard.txt"
printf 'aarFormatVersion=1.0\naarMetadataVersion=1.0\nminCompileSdk=1\nminAndroidGradlePluginVersion=1.0.0\n' \
  > "$stage/META-INF/com/android/build/gradle/aar-metadata.properties"
mkdir -p "$(dirname "$out")"
rm -f "$out"
(cd "$stage" && jar --create --no-manifest --file "$out" AndroidManifest.xml classes.jar R.txt proguard.txt META-INF jni)
echo "$out: $(unzip -Z1 "$out" | grep -v '/$' | tr '\n' ' ')"
