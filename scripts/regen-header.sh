#!/usr/bin/env bash
# Regenerates ffi/include/sod2.h with cbindgen. `--check` fails if the checked-in header is stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cb=$(command -v cbindgen || command -v cbindgen-web || true)
if [ -z "$cb" ]; then
  echo "cbindgen not found (Debian: apt-get install cbindgen-web; or cargo install cbindgen)" >&2
  exit 1
fi
tmp=$(mktemp)
"$cb" --quiet --config "$root/ffi/cbindgen.toml" --crate sod2-ffi --output "$tmp" "$root/ffi"
if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$tmp" "$root/ffi/include/sod2.h"; then
    diff -u "$root/ffi/include/sod2.h" "$tmp" | head -40 || true
    echo "ffi/include/sod2.h is stale: run scripts/regen-header.sh"
    rm -f "$tmp"
    exit 1
  fi
  rm -f "$tmp"
  echo "ffi/include/sod2.h is current"
else
  mv "$tmp" "$root/ffi/include/sod2.h"
fi
