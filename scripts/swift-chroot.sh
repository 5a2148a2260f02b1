#!/usr/bin/env bash
# Runs the Swift toolchain of a Debian trixie chroot (`swiftlang`, from Debian's own packages:
# Debian 12, which these machines run, has no Swift toolchain) on this repository.
#   scripts/swift-chroot.sh setup      makes the chroot once (debootstrap + apt; root; ~3 min,
#                                      ~1.5 GB under $SOD2_SWIFT_ROOT, default /opt/sod2-swift)
#   scripts/swift-chroot.sh swift ARGS runs `swift ARGS` in the current directory, inside the
#                                      chroot, with the repository bind-mounted at its own path
# scripts/swift-test.sh uses it where no `swift` is on the PATH.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chroot_dir=${SOD2_SWIFT_ROOT:-/opt/sod2-swift}

# Refuses to go on while anything is mounted under $1 (a bind-mounted repository would be
# deleted with the chroot).
unmounted() {
  if grep -q " $1[/ ]" /proc/mounts; then
    echo "swift-chroot: something is mounted under $1; unmount it first" >&2
    exit 1
  fi
}

setup() {
  # A marker, written last (the chroot's /usr/bin/swift is an absolute symlink, meaningless
  # from outside it).
  if [ -f "$chroot_dir/.sod2-swift-ready" ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "swift-chroot: making the chroot needs root" >&2
    exit 1
  fi
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  unmounted "$chroot_dir.partial"
  rm -rf "$chroot_dir.partial"
  debootstrap --variant=minbase trixie "$chroot_dir.partial" http://deb.debian.org/debian >/dev/null
  cp /etc/resolv.conf "$chroot_dir.partial/etc/resolv.conf"
  chroot "$chroot_dir.partial" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swiftlang >/dev/null"
  touch "$chroot_dir.partial/.sod2-swift-ready"
  unmounted "$chroot_dir"
  rm -rf "$chroot_dir"
  mv "$chroot_dir.partial" "$chroot_dir"
}

run_swift() {
  setup
  # The repository (and /proc, /dev) bind-mounted at their own paths for this one command;
  # unmounted again on exit, so nothing outside the chroot is left mounted inside it.
  mounts=()
  for d in /proc /dev "$root"; do
    mkdir -p "$chroot_dir$d"
    mount --bind "$d" "$chroot_dir$d"
    mounts=("$chroot_dir$d" "${mounts[@]}")
  done
  trap 'for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done' EXIT
  chroot "$chroot_dir" /usr/bin/env -C "$PWD" HOME=/root PATH=/usr/bin:/bin swift "$@"
}

case "${1:-}" in
  setup) setup ;;
  swift) shift; run_swift "$@" ;;
  *) echo "usage: scripts/swift-chroot.sh setup | swift ARGS..." >&2; exit 2 ;;
esac
