#!/usr/bin/env bash
# Installs the real components ferry's tests and demo use, from Debian's packages, when missing.
# Needs root (apt-get); prints what to install otherwise.
set -euo pipefail

# command -> Debian package
deps=(
  "docker-registry:docker-registry"
  "skopeo:skopeo"
  "containerd:containerd"
  "ctr:containerd"
  "mkfs.ext4:e2fsprogs"
  "htpasswd:apache2-utils"
  "openssl:openssl"
  "curl:curl"
  "zstd:zstd"
  "python3:python3"
  "sha256sum:coreutils"
  "podman:podman"
  "shellcheck:shellcheck"
  # Cross builds of ferry for the bundle (cargo xtask dist): arm64's C parts (ring, zstd) and
  # linker, x86_64's musl C compiler, and qemu to run the arm64 binary in the tests.
  "aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu"
  "musl-gcc:musl-tools"
  "qemu-aarch64-static:qemu-user-static"
)
# The static (musl) Rust targets cargo xtask dist builds, from rustup when it manages Rust.
if command -v rustup >/dev/null 2>&1; then
  for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  done
fi
missing=()
for d in "${deps[@]}"; do
  command -v "${d%%:*}" >/dev/null 2>&1 || missing+=("${d##*:}")
done
# The sample images carry a static busybox so that they run under containerd.
[ -x /bin/busybox ] || missing+=(busybox-static)
# The arm64 C headers the cross compiler builds ring and zstd against.
[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || missing+=(libc6-dev-arm64-cross)
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
