#!/usr/bin/env bash
# Runs every test of ferry on a fresh Debian machine: installs the real components the tests
# start (docker-registry, skopeo, containerd, e2fsprogs...) when missing, then checks formatting
# and lints, and runs all unit and integration tests. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --all-targets
