#!/usr/bin/env bash
# The main job end to end, on a built-in default: starts a throwaway registry on loopback, seeds
# it with the sample images of testdata/ (built by make_fixtures.py, pushed by skopeo), bundles
# them with ferry into one OCI layout, verifies it, lists it, reads an image back with skopeo,
# then plays the node: restores the bundle into a throwaway containerd with the bundle's own
# restore.sh and runs one of the images.
#
#   scripts/demo.sh            # work folder in /tmp, kept for a look afterwards
#   FERRY_DEMO_DIR=DIR scripts/demo.sh
#   FERRY=target/debug/ferry scripts/demo.sh   # that binary, no release build (the test suite
#                                              # runs the demo so: tests/it/examples.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -n "${FERRY:-}" ]; then
  ferry=$FERRY
else
  echo "==> building ferry (release)"
  cargo build --release --quiet --bin ferry
  ferry=$PWD/target/release/ferry
fi

work=${FERRY_DEMO_DIR:-$(mktemp -d /tmp/ferry-demo.XXXXXX)}
mkdir -p "$work"
rm -rf "$work/bundle" "$work/fixtures"
echo "==> building the sample images (testdata/make_fixtures.py)"
python3 testdata/make_fixtures.py "$work/fixtures"
reg=$(scripts/registry.sh start "$work/registry")
trap 'scripts/registry.sh stop "$work/registry"; scripts/containerd.sh stop "$work/containerd" 2>/dev/null || true' EXIT
echo "==> registry on $reg; seeding it (skopeo)"
scripts/seed-registry.sh "$reg" "$work/fixtures"

cat >"$work/images.txt" <<LIST
# The sample images: shared base layer, OCI and Docker schema2, gzip, zstd and uncompressed
# layers, and a multi-platform index with an attestation manifest.
$reg/sample/hello:1.0
$reg/sample/world:1.0
$reg/sample/zstd:1.0
$reg/sample/raw:1.0
$reg/sample/hello-docker:1.0
$reg/sample/multi:1.0
$reg/sample/multi-docker:1.0
LIST

echo "==> ferry bundle -f images.txt -o bundle --platform linux/amd64 --platform linux/arm64"
"$ferry" bundle -f "$work/images.txt" -o "$work/bundle" --platform linux/amd64 --platform linux/arm64
echo "==> again: nothing is fetched twice"
"$ferry" bundle -f "$work/images.txt" -o "$work/bundle" --platform linux/amd64 --platform linux/arm64
echo "==> ferry ls bundle"
"$ferry" ls "$work/bundle"
echo "==> ferry verify bundle"
"$ferry" verify "$work/bundle"
echo "==> skopeo reads an image back out of the bundle"
skopeo inspect "oci:$work/bundle:$reg/sample/multi:1.0" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  ", d["Digest"], d["Os"] + "/" + d["Architecture"], len(d["Layers"]), "layers")'
echo "==> on a node: restore.sh into a throwaway containerd, then run an image"
sock=$(scripts/containerd.sh start "$work/containerd")
CONTAINERD_ADDRESS=$sock "$work/bundle/restore.sh" --pin
ctr -a "$sock" -n k8s.io images ls -q | sed 's/^/   /'
printf '   ctr run prints: '
ctr -a "$sock" -n k8s.io run --rm "$reg/sample/hello:1.0" ferry-demo
echo
echo "done: the bundle is in $work/bundle ($(du -sh "$work/bundle" | cut -f1)); ferry.lock records what each reference resolved to"
