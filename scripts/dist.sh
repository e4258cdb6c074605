#!/usr/bin/env bash
# Builds the ferry binaries `ferry bundle --with-binary --binaries target/dist` puts into
# bundles: target/dist/ferry-linux-amd64 and target/dist/ferry-linux-arm64, static (musl: no C
# library needed on the node, so they run on any distribution, however old, whose kernel Rust
# supports: 3.2+ on x86-64, 4.1+ on arm64) and stripped (Cargo profile `dist`, about 14 MB).
# The arm64 one is cross-built with Debian's gcc-aarch64-linux-gnu (for ring's and zstd's C).
# Builds are cached under target/<triple>/dist; a re-run after no change takes a second.
#
# Usage: scripts/dist.sh [amd64] [arm64]      (default: both; `cargo xtask dist` runs this)
#
# FERRY_DIST_PROFILE=dist-test builds the same static, stripped binaries without optimisation
# into target/dist-test/ (the tests run that arm64 build under qemu: 300 CPU-seconds instead of
# 600 on a cold build).
set -euo pipefail
cd "$(dirname "$0")/.."

# The same build whether run by hand or by a test under `cargo test`, whose CARGO_PKG_*,
# LD_LIBRARY_PATH and the like would otherwise make cargo rebuild ring and all above it.
while IFS='=' read -r name _; do
  case $name in
    CARGO|CARGO_BIN_EXE_*|CARGO_MANIFEST_*|CARGO_PKG_*|CARGO_CRATE_NAME|CARGO_PRIMARY_PACKAGE|\
    CARGO_TARGET_TMPDIR|LD_LIBRARY_PATH|RUSTUP_TOOLCHAIN_SOURCE|RUST_RECURSION_COUNT) unset "$name" ;;
  esac
done < <(env)

profile=${FERRY_DIST_PROFILE:-dist}
case $profile in
  dist|dist-test) ;;
  *) echo "dist.sh: FERRY_DIST_PROFILE must be dist or dist-test, not $profile" >&2; exit 2 ;;
esac
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64)
mkdir -p "target/$profile"
for arch in "${archs[@]}"; do
  case $arch in
    amd64) target=x86_64-unknown-linux-musl cc=musl-gcc packages=musl-tools ;;
    arm64) target=aarch64-unknown-linux-musl cc=aarch64-linux-gnu-gcc
           packages="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
    *) echo "dist.sh: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
  esac
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "dist.sh: $cc is missing; install it with: apt-get install -y $packages" >&2
    exit 1
  fi
  if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
  fi
  triple=${target//-/_}
  export "CC_$triple=$cc"
  if [ "$arch" = arm64 ]; then
    export "AR_$triple=aarch64-linux-gnu-ar" "CARGO_TARGET_${triple^^}_LINKER=$cc"
  fi
  cargo build --quiet --profile "$profile" --target "$target" --bin ferry
  out="target/$profile/ferry-linux-$arch"
  tmp="target/$profile/.ferry-linux-$arch.tmp"
  install -m 0755 "target/$target/$profile/ferry" "$tmp"
  mv -f "$tmp" "$out"
  echo "$out ($(du -h "$out" | cut -f1))" >&2
done
