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
  # tests/it/binary_delta.rs builds an image the way registries get them (Go's gzip).
  "buildah:buildah"
  "shellcheck:shellcheck"
  # The tests' arm64 build of ferry (scripts/dist.sh arm64): the C compiler and linker for
  # ring's and zstd's C, and qemu to run it. (`cargo xtask dist` for amd64 also wants
  # musl-tools; the tests do not build it.)
  "aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu"
  "qemu-aarch64-static:qemu-user-static"
  "umoci:umoci"
  "script:util-linux"
  # The fan-out bench case's limit: a static file server with sendfile.
  "nginx:nginx-light"
)
# The static arm64 Rust target the tests build ferry for, from rustup when it manages Rust.
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx aarch64-unknown-linux-musl ||
    rustup target add aarch64-unknown-linux-musl
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
