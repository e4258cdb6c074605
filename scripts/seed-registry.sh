#!/usr/bin/env bash
# Seeds a registry with the sample images of an OCI layout built by testdata/make_fixtures.py.
#
#   scripts/seed-registry.sh HOST:PORT FIXTURE_LAYOUT [--creds USER:PASS] [--tls-ca DIR]
#
# Images with only gzip layers go through skopeo (plus a Docker schema2 copy of sample/hello made
# by skopeo); images with zstd or uncompressed layers, and the hand-written Docker manifest list,
# are pushed byte for byte by push_oci.py, because skopeo would recompress or convert them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
registry=${1:?usage: seed-registry.sh HOST:PORT LAYOUT [--creds U:P] [--tls-ca DIR]}
layout=${2:?usage: seed-registry.sh HOST:PORT LAYOUT}
shift 2
creds=""; ca_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --creds) creds=$2; shift 2 ;;
    --tls-ca) ca_dir=$2; shift 2 ;;
    *) echo "seed-registry.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
command -v skopeo >/dev/null || { echo "skopeo is not installed: apt-get install -y skopeo" >&2; exit 1; }

scheme=http
skopeo_opts=(--quiet --dest-tls-verify=false)
[ -n "$ca_dir" ] && { scheme=https; skopeo_opts=(--quiet --dest-cert-dir "$ca_dir"); }
[ -n "$creds" ] && skopeo_opts+=(--dest-creds "$creds")
push_opts=()
[ -n "$creds" ] && push_opts=(--user "$creds")

tags=$(python3 -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1]+"/fixtures.json")))))' "$layout")
for tag in $tags; do
  kind=$(python3 -c '
import json,sys
f=json.load(open(sys.argv[1]+"/fixtures.json"))[sys.argv[2]]
print("exact" if f.get("exact") or any(not l.endswith("+gzip") for l in f.get("layers",[])) else "skopeo")' "$layout" "$tag")
  if [ "$kind" = exact ]; then
    python3 "$here/testdata/push_oci.py" "$layout" "$tag" "$scheme://$registry/$tag" "${push_opts[@]}"
  else
    skopeo copy --all "${skopeo_opts[@]}" "oci:$layout:$tag" "docker://$registry/$tag"
  fi
done
# Docker schema2 media types, converted by skopeo.
if python3 -c 'import json,sys; sys.exit(0 if "sample/hello:1.0" in json.load(open(sys.argv[1]+"/fixtures.json")) else 1)' "$layout"; then
  skopeo copy --format v2s2 "${skopeo_opts[@]}" "oci:$layout:sample/hello:1.0" "docker://$registry/sample/hello-docker:1.0"
fi
