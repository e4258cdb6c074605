#!/usr/bin/env bash
# Runs every test of ferry on a fresh Debian machine: installs the real components the tests
# start (docker-registry, skopeo, containerd, e2fsprogs...) when missing, then checks formatting
# and lints, and runs all unit and integration tests. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Four tests at a time on any machine: most of an integration test's time is spent waiting
# (on registries, containerd, throttled transfers), not computing; 2 threads left a 2-core
# machine idle half the time.
cargo test --workspace --all-targets -- --test-threads 4
