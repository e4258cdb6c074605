#!/bin/sh
# restore.sh: written by ferry into every bundle. Imports the bundle's images into this node's
# container runtime with nothing but POSIX sh, tar, and ctr (containerd) or skopeo (CRI-O).
# It writes nothing into its own folder, so it runs from a read-only mount, as cloud-init's
# preKubeadmCommands run it:
#
#   /preload/restore.sh [--pin] [--runtime auto|containerd|cri-o]
#   /preload/restore.sh --replace /preload-old/ferry.lock [--remove]   # an upgrade
#   /preload/restore.sh --mirror     # zero import: serve the bundle to this node instead
#
# --replace OLD (a ferry.lock, or a bundle folder holding one; implies --pin) is the upgrade
# from the bundle OLD describes: this bundle is imported and pinned first; then, only when
# every image of it is in, the names OLD had and this bundle has not are unpinned (those
# that another bundle pinned too stay pinned) and, with --remove, deleted when no container
# uses them. Each pin is recorded per bundle: the containerd label
# io.ferry.pinned-by.sha256-<hex of ferry.lock's sha256>, or that digest in a comment beside
# the name in CRI-O's drop-in.
#
# Environment:
#   FERRY_PIN=1                 same as --pin: keep the images from kubelet's image GC
#   FERRY_REPLACE, FERRY_REMOVE=1   same as --replace OLD, --remove
#   FERRY_RUNTIME               auto (default), containerd or cri-o
#   FERRY_PLATFORM              os/arch[/variant] to import (default: this node's)
#   FERRY_NAMESPACE             containerd namespace (default k8s.io)
#   CONTAINERD_ADDRESS          containerd socket (default /run/containerd/containerd.sock, or
#                               k3s and RKE2's /run/k3s/containerd/containerd.sock)
#   FERRY_CONTAINERS_STORAGE    containers-storage spec for skopeo, e.g. [vfs@/var/lib/x+/run/x]
#   FERRY_CRIO_CONF_DIR         where the CRI-O pinning drop-in goes (/etc/crio/crio.conf.d)
#
# --mirror (or FERRY_MIRROR=1) imports nothing: it starts `ferry serve` on this bundle (the
# ferry binary: FERRY_BIN, else the bundle's ferry-linux-<arch> for `uname -m`, from `ferry
# bundle --with-binary`, else ferry on PATH) as a systemd unit when systemd runs (a background
# process otherwise), has it write containerd hosts.toml files and/or a CRI-O registries.conf
# drop-in so the original names are pulled from it, and waits until it answers. The bundle
# must stay mounted. A binary is used only when it is an executable for this machine that
# answers `version` within FERRY_CHECK_TIMEOUT seconds (3); when none does, the images are
# imported instead (the plain-sh path), saying so. Environment:
#   FERRY_MIRROR_ADDR           address to serve on (default 127.0.0.1:5050)
#   FERRY_HOSTS_DIR             containerd hosts.toml folder (default /etc/containerd/certs.d,
#                               written when containerd is installed)
#   FERRY_CONTAINERD_CONFIG     checked for a CRI config_path (/etc/containerd/config.toml)
#   FERRY_REGISTRIES_CONF       CRI-O/podman drop-in (default /etc/containers/registries.conf.d/
#                               50-ferry-mirror.conf, written when CRI-O is installed)
#   FERRY_BIN                   the ferry binary to run
#   FERRY_SERVICE               auto (default), systemd or background
#   FERRY_STATE_DIR             pid and log of a background server (default /run/ferry)
#
# Every image is imported under its reference and under REPOSITORY@DIGEST (kubelet looks pods
# that name images by digest up that way). Running it twice changes nothing: an image already
# in containerd under both names, complete (and pinned, with --pin), is not imported again.
# ctr is the one on PATH, RKE2's (/var/lib/rancher/rke2/bin/ctr) or k3s's (`k3s ctr`).
set -eu

log() { printf 'restore.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Byte-wise pattern ranges below, whatever the node's locale.
LC_ALL=C
export LC_ALL

pin=${FERRY_PIN:-0}
replace=${FERRY_REPLACE:-}
remove=${FERRY_REMOVE:-0}
runtime=${FERRY_RUNTIME:-auto}
namespace=${FERRY_NAMESPACE:-k8s.io}
mirror=${FERRY_MIRROR:-0}
while [ $# -gt 0 ]; do
  case $1 in
    --pin) pin=1 ;;
    --runtime) [ $# -ge 2 ] || die "--runtime needs a value"; runtime=$2; shift ;;
    --runtime=*) runtime=${1#*=} ;;
    --mirror) mirror=1 ;;
    --replace) [ $# -ge 2 ] || die "--replace needs the old bundle's ferry.lock"; replace=$2; shift ;;
    --replace=*) replace=${1#*=} ;;
    --remove) remove=1 ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || die "cannot find the bundle folder"
if [ ! -f "$here/oci-layout" ] || [ ! -d "$here/blobs" ]; then
  die "$here is not a ferry bundle"
fi
# A delta (ferry bundle --since) holds only the blobs its base bundle lacks: refused before
# anything reaches the runtime or the node.
if [ -e "$here/ferry-delta.json" ]; then
  log "error: $here is a delta (it has ferry-delta.json), not a bundle: it holds only the blobs its base lacks"
  log "hint: on this side, run 'ferry apply $here BASE' (BASE: the bundle it was made against), then BASE/restore.sh"
  exit 2
fi

if [ "$remove" = 1 ] && [ -z "$replace" ]; then
  die "--remove goes with --replace OLD (it deletes the images OLD had and this bundle has not)"
fi
if [ -n "$replace" ]; then
  [ "$mirror" = 1 ] && die "--replace imports this bundle; it does not go with --mirror"
  [ -d "$replace" ] && replace=$replace/ferry.lock
  if [ ! -f "$replace" ] || [ ! -r "$replace" ]; then die "--replace $replace: no such ferry.lock"; fi
  pin=1
fi

# The platform this machine runs, by `uname -m` (what a binary must be built for).
machine_platform() {
  case $(uname -m) in
    x86_64|amd64) echo linux/amd64 ;;
    aarch64|arm64) echo linux/arm64 ;;
    armv7l|armv7*) echo linux/arm/v7 ;;
    armv6l|armv6*) echo linux/arm/v6 ;;
    ppc64le) echo linux/ppc64le ;;
    s390x) echo linux/s390x ;;
    riscv64) echo linux/riscv64 ;;
    *) return 1 ;;
  esac
}

# --- mirror mode: serve the bundle where it is mounted; nothing is imported ---

# elf_for FILE PLATFORM: whether FILE is an ELF executable for PLATFORM (its e_machine), so
# that a file for another machine is never run (sh would read it as a script).
elf_for() {
  case $2 in
    linux/amd64) want='3e 00' ;;
    linux/arm64) want='b7 00' ;;
    linux/arm/*) want='28 00' ;;
    linux/ppc64le) want='15 00' ;;
    linux/s390x) want='00 16' ;;
    linux/riscv64) want='f3 00' ;;
    *) return 1 ;;
  esac
  # shellcheck disable=SC2046 # od prints hex tokens only
  set -- $(od -An -tx1 -N20 "$1" 2>/dev/null)
  [ $# -eq 20 ] && [ "$1 $2 $3 $4" = '7f 45 4c 46' ] && [ "${19} ${20}" = "$want" ]
}

# bin_runs BIN: whether BIN answers `version` in time.
bin_runs() {
  if command -v timeout >/dev/null 2>&1; then
    timeout "${FERRY_CHECK_TIMEOUT:-3}" "$1" version >/dev/null 2>&1
  else
    "$1" version >/dev/null 2>&1
  fi
}

# mirror_bin: the ferry binary to serve with: FERRY_BIN, the bundle's own for this machine,
# or ferry on PATH, the first that runs here. None: says what was tried and fails at once.
mirror_bin() {
  tried=''
  if [ -n "${FERRY_BIN:-}" ]; then
    if bin_runs "$FERRY_BIN"; then echo "$FERRY_BIN"; return 0; fi
    tried="FERRY_BIN does not run; "
  fi
  if machine=$(machine_platform); then
    own=ferry-$(printf '%s' "$machine" | tr / -)
    for b in "$own" ferry; do
      if [ ! -f "$here/$b" ]; then
        [ "$b" = ferry ] || tried="${tried}no $b in the bundle; "
        continue
      fi
      if ! elf_for "$here/$b" "$machine"; then
        tried="${tried}$b is not an executable for $machine; "
      elif ! bin_runs "$here/$b"; then
        tried="${tried}$b does not run; "
      else
        echo "$here/$b"; return 0
      fi
    done
  else
    tried="${tried}unknown machine type; "
  fi
  if b=$(command -v ferry 2>/dev/null) && bin_runs "$b"; then echo "$b"; return 0; fi
  log "no ferry binary runs on this ${machine:-$(uname -m)} node (${tried}none on PATH): importing the images instead of serving them"
  return 1
}

# mirror_ready ADDR: whether the server answers /v2/ (status 2 when no probe tool exists).
mirror_ready() {
  url="http://$(printf '%s' "$1" | sed 's/^0\.0\.0\.0:/127.0.0.1:/')/v2/"
  if command -v curl >/dev/null 2>&1; then
    curl -fs -o /dev/null --max-time 2 "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null -T 2 "$url"
  else
    return 2
  fi
}

# mirror_wait ADDR LOG: waits (up to 30 s) for the server to answer /v2/ (without curl or wget:
# for LOG, a background server's log, to say it listens; for systemd, the unit to be active).
mirror_wait() {
  i=0
  while [ "$i" -lt 300 ]; do
    rc=0
    mirror_ready "$1" || rc=$?
    [ "$rc" = 0 ] && return 0
    if [ "$rc" = 2 ]; then
      # No curl or wget: the server's own "serving ... at" line, or systemd's word.
      if [ -n "$2" ]; then
        if [ -f "$2" ] && grep -q ' at http' "$2"; then return 0; fi
      elif systemctl is-active --quiet ferry-mirror.service; then
        return 0
      fi
    fi
    sleep 0.1 2>/dev/null || sleep 1
    i=$((i + 1))
  done
  return 1
}

# The systemd unit running ferry serve (each argument quoted; refused if it holds a quote).
mirror_unit() {
  printf '[Unit]\nDescription=ferry serve: the images of %s as a local registry mirror\n' "$here"
  printf 'After=local-fs.target\nBefore=containerd.service crio.service kubelet.service\n\n'
  printf '[Service]\nExecStart='
  for a in "$@"; do
    case $a in *[\"\\%\$]*) die "cannot quote $a for systemd" ;; esac
    printf '"%s" ' "$a"
  done
  printf '\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n'
}

# mirror_systemd ARGS...: installs or refreshes ferry-mirror.service and starts it.
mirror_systemd() {
  unit=/etc/systemd/system/ferry-mirror.service
  mirror_unit "$@" >"$unit.ferry-tmp" || die "cannot write $unit"
  if [ -f "$unit" ] && cmp -s "$unit" "$unit.ferry-tmp"; then
    rm -f "$unit.ferry-tmp"
    systemctl start ferry-mirror.service || die "systemctl start ferry-mirror.service failed"
  else
    mv "$unit.ferry-tmp" "$unit" || die "cannot write $unit"
    systemctl daemon-reload || die "systemctl daemon-reload failed"
    systemctl enable ferry-mirror.service >/dev/null 2>&1 || die "cannot enable ferry-mirror.service"
    systemctl restart ferry-mirror.service || die "cannot start ferry-mirror.service"
  fi
}

# mirror_background ARGS...: starts ferry serve detached, unless the one started before runs.
mirror_background() {
  state=${FERRY_STATE_DIR:-/run/ferry}
  mkdir -p "$state" || die "cannot create $state"
  if [ -f "$state/serve.pid" ] && kill -0 "$(cat "$state/serve.pid")" 2>/dev/null; then
    log "ferry serve already runs (pid $(cat "$state/serve.pid"))"
    return 0
  fi
  : >"$state/serve.log"
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" </dev/null >>"$state/serve.log" 2>&1 &
  else
    nohup "$@" </dev/null >>"$state/serve.log" 2>&1 &
  fi
  echo $! >"$state/serve.pid"
}

# mirror_main BIN: serves the bundle with BIN.
mirror_main() {
  addr=${FERRY_MIRROR_ADDR:-127.0.0.1:5050}
  bin=$1
  set -- "$bin" serve "$here" --addr "$addr"
  hosts=${FERRY_HOSTS_DIR:-}
  if [ -z "$hosts" ] && { command -v containerd >/dev/null 2>&1 || [ -d /etc/containerd ]; }; then
    hosts=/etc/containerd/certs.d
  fi
  conf=${FERRY_REGISTRIES_CONF:-}
  if [ -z "$conf" ] && { [ -d /etc/crio ] || command -v crio >/dev/null 2>&1; }; then
    conf=/etc/containers/registries.conf.d/50-ferry-mirror.conf
  fi
  [ -n "$hosts$conf" ] || die "found neither containerd nor CRI-O; set FERRY_HOSTS_DIR or FERRY_REGISTRIES_CONF"
  if [ -n "$hosts" ]; then
    set -- "$@" --hosts-dir "$hosts" --containerd-config "${FERRY_CONTAINERD_CONFIG:-/etc/containerd/config.toml}"
  fi
  [ -n "$conf" ] && set -- "$@" --registries-conf "$conf"
  service=${FERRY_SERVICE:-auto}
  if [ "$service" = auto ]; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then service=systemd; else service=background; fi
  fi
  if mirror_ready "$addr"; then
    log "a server already answers on $addr; leaving it"
    return 0
  fi
  case $service in
    systemd) mirror_systemd "$@"; logfile='' ;;
    background) mirror_background "$@"; logfile=${FERRY_STATE_DIR:-/run/ferry}/serve.log ;;
    *) die "unknown FERRY_SERVICE $service (auto, systemd or background)" ;;
  esac
  if ! mirror_wait "$addr" "$logfile"; then
    [ -n "$logfile" ] && cat "$logfile" >&2
    die "ferry serve did not answer on $addr"
  fi
  log "serving this bundle on $addr ($service); images are pulled from it at first use"
}

if [ "$mirror" = 1 ] && bin=$(mirror_bin); then
  mirror_main "$bin"
  exit 0
fi

# The images of this bundle, one a line: reference, manifest digest, media type, size, and
# the platforms present ("-" when the image declares none). Data only: ferry writes nothing
# here that fails the OCI grammars (no space, quote, backslash, newline or %), the
# here-document is quoted, and every line is checked again before use.
images() {
  cat <<'FERRY%IMAGES'
@@IMAGES@@
FERRY%IMAGES
}

# The charts and other artifacts of this bundle, one a line: reference and artifact type. No
# runtime runs them: they are named and left alone. Data only, like the image list.
artifacts() {
  cat <<'FERRY%IMAGES'
@@ARTIFACTS@@
FERRY%IMAGES
}

# valid_line REF DIGEST MEDIA SIZE PLATFORMS: whether each field has only the characters its
# grammar allows (so none can break the JSON or the commands built from it).
valid_line() {
  case $1 in ''|-*|*[!A-Za-z0-9._:/@+=-]*) return 1 ;; esac
  case $2 in ''|*[!A-Za-z0-9:+._=-]*) return 1 ;; esac
  case $3 in ''|*[!A-Za-z0-9/!#\$\&^_.+-]*) return 1 ;; esac
  case $4 in ''|*[!0-9]*) return 1 ;; esac
  case $5 in ''|*[!a-z0-9._,/-]*) return 1 ;; esac
  return 0
}

node_platform() {
  if [ -n "${FERRY_PLATFORM:-}" ]; then echo "$FERRY_PLATFORM"; return; fi
  machine_platform || die "unknown machine type $(uname -m); set FERRY_PLATFORM=os/arch"
}

# serves PLATFORMS NODE: whether one of the comma-separated PLATFORMS runs on NODE
# (linux/arm64/v8 serves linux/arm64, and linux/arm/v7 linux/arm).
serves() {
  [ "$1" = - ] && return 0
  old_ifs=$IFS; IFS=,
  for p in $1; do
    IFS=$old_ifs
    case $p in
      "$2"|"$2"/*) return 0 ;;
    esac
    case $2 in
      "$p"/*) return 0 ;;
    esac
  done
  IFS=$old_ifs
  return 1
}

# The repository of a reference: without its tag (a tag follows the last slash) and digest.
repository() {
  r=${1%@*}
  case ${r##*/} in
    *:*) r=${r%:*} ;;
  esac
  echo "$r"
}

# find_ctr: ctr on PATH, RKE2's own, or k3s's `k3s ctr`; ctr_ runs the one found.
find_ctr() {
  if command -v ctr >/dev/null 2>&1; then ctr_kind=path
  elif [ -x /var/lib/rancher/rke2/bin/ctr ]; then ctr_kind=rke2
  elif command -v k3s >/dev/null 2>&1; then ctr_kind=k3s
  else return 1
  fi
}
ctr_() {
  case $ctr_kind in
    path) ctr "$@" ;;
    rke2) /var/lib/rancher/rke2/bin/ctr "$@" ;;
    k3s) k3s ctr "$@" ;;
  esac
}

# find_socket: CONTAINERD_ADDRESS when set, else the system's containerd, else k3s/RKE2's.
find_socket() {
  if [ -n "${CONTAINERD_ADDRESS:-}" ]; then
    [ -S "$CONTAINERD_ADDRESS" ] && echo "$CONTAINERD_ADDRESS"
    return
  fi
  for s in /run/containerd/containerd.sock /run/k3s/containerd/containerd.sock; do
    if [ -S "$s" ]; then echo "$s"; return 0; fi
  done
  return 1
}

@@PINS@@

node=$(node_platform)
case $runtime in
  auto)
    if find_ctr && find_socket >/dev/null; then
      runtime=containerd
    elif command -v skopeo >/dev/null 2>&1 && { [ -S /var/run/crio/crio.sock ] || [ -d /etc/crio ] || [ -n "${FERRY_CONTAINERS_STORAGE:-}" ]; }; then
      runtime=cri-o
    else
      die "found neither containerd (ctr, and a socket at ${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock or /run/k3s/containerd/containerd.sock}) nor CRI-O (skopeo); set CONTAINERD_ADDRESS or --runtime"
    fi ;;
  containerd|cri-o) ;;
  *) die "unknown runtime $runtime (auto, containerd or cri-o)" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-restore.XXXXXX") || die "cannot make a temporary folder"
trap 'rm -rf "$tmp"' EXIT INT TERM

# Which images serve this node; the others are reported and make the exit status non-zero.
failed=0
: >"$tmp/serving"
images >"$tmp/images"
while read -r ref digest media size platforms; do
  [ -n "$ref" ] || continue
  if ! valid_line "$ref" "$digest" "$media" "$size" "$platforms"; then
    log "skipping a malformed image line"
    failed=1
    continue
  fi
  if serves "$platforms" "$node"; then
    printf '%s %s %s %s\n' "$ref" "$digest" "$media" "$size" >>"$tmp/serving"
  else
    log "$ref: no image for $node in this bundle (it has $platforms)"
    failed=1
  fi
done <"$tmp/images"
artifacts | while read -r ref kind; do
  [ -n "$ref" ] || continue
  valid_line "$ref" sha256:0 "$kind" 0 - || continue
  log "$ref: left alone, an artifact of type $kind (containerd and CRI-O run images only; pull it from ferry serve or a registry)"
done
count=$(wc -l <"$tmp/serving" | tr -d ' ')
[ "$count" -gt 0 ] || [ -z "$(artifacts)" ] || { log "no image in this bundle: nothing to import"; exit 0; }
[ "$count" -gt 0 ] || die "no image in this bundle runs on $node"
prepare_pins

# state NAME DIGEST: "pinned" (with this bundle's record) or "unpinned" when containerd holds
# NAME at DIGEST with all its content, "absent" otherwise (from the listings sort_present wrote).
state() {
  awk -v n="$1" -v d="$2" '
    FNR == NR { if ($1 == n) complete = 1; next }
    $1 == n && $2 == d && complete { s = $3 }
    END { print (s == "" ? "absent" : s) }' "$tmp/complete" "$tmp/listed"
}

# Splits the serving images into those to import, those only to pin, and those already there.
sort_present() {
  rec=''
  [ -z "$new_id" ] || rec="$(record_key "$new_id")="
  ctr_ -n "$namespace" images ls 2>/dev/null |
    awk -v rec="$rec" 'NR > 1 {
      pinned = ($NF ~ /(^|,)io[.]cri-containerd[.]pinned=pinned(,|$)/) && (rec == "" || index("," $NF, "," rec))
      print $1, $3, pinned ? "pinned" : "unpinned" }' >"$tmp/listed" || :
  ctr_ -n "$namespace" images check 2>/dev/null | awk 'NR > 1 && $4 == "complete" { print $1 }' >"$tmp/complete" || :
  : >"$tmp/import"; : >"$tmp/pin-only"; present=0
  while read -r ref digest media size; do
    a=$(state "$ref" "$digest"); b=$(state "$(repository "$ref")@$digest" "$digest")
    if [ "$a" = absent ] || [ "$b" = absent ]; then
      printf '%s %s %s %s\n' "$ref" "$digest" "$media" "$size" >>"$tmp/import"
    elif [ "$pin" = 1 ] && { [ "$a" != pinned ] || [ "$b" != pinned ]; }; then
      printf '%s %s %s %s\n' "$ref" "$digest" "$media" "$size" >>"$tmp/pin-only"
    else
      log "$ref ($digest) already present"
      present=$((present + 1))
    fi
  done <"$tmp/serving"
}

restore_containerd() {
  find_ctr || die "ctr not found; install containerd (or k3s, RKE2)"
  CONTAINERD_ADDRESS=$(find_socket) ||
    die "no containerd socket at ${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock or /run/k3s/containerd/containerd.sock}; set CONTAINERD_ADDRESS"
  export CONTAINERD_ADDRESS
  sort_present
  todo=$(wc -l <"$tmp/import" | tr -d ' ')
  if [ "$todo" -gt 0 ]; then
    # An index of the images to import only: ctr would record the others without their content.
    {
      printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
      sep=''
      while read -r ref digest media size; do
        printf '%s{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}' \
          "$sep" "$media" "$digest" "$size" "$ref" "$ref"
        sep=,
      done <"$tmp/import"
      printf ']}\n'
    } >"$tmp/index.json"
    log "importing $todo image(s) for $node into containerd namespace $namespace"
    # One tar stream, straight from the bundle: no copy of it on the node.
    tar -cf - -C "$tmp" index.json -C "$here" oci-layout blobs |
      ctr_ -n "$namespace" images import --platform "$node" - >"$tmp/import.log" 2>&1 ||
      { cat "$tmp/import.log" >&2; die "ctr images import failed"; }
  fi
  cat "$tmp/import" "$tmp/pin-only" | while read -r ref digest media size; do
    twin="$(repository "$ref")@$digest"
    if [ "$twin" != "$ref" ]; then
      ctr_ -n "$namespace" images tag --force "$ref" "$twin" >/dev/null || { log "$ref: cannot tag $twin"; echo 1 >"$tmp/failed"; continue; }
    fi
    if [ "$pin" = 1 ]; then
      for name in "$ref" "$twin"; do
        set -- io.cri-containerd.pinned=pinned
        [ -z "$new_id" ] || set -- "$@" "$(record_key "$new_id")=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        ctr_ -n "$namespace" images label "$name" "$@" >/dev/null ||
          { log "$ref: cannot pin $name"; echo 1 >"$tmp/failed"; }
      done
    fi
    pinned=''
    if [ "$pin" = 1 ]; then pinned=', pinned'; fi
    log "$ref ($digest) restored$pinned"
  done
  if [ -f "$tmp/failed" ]; then failed=1; fi
}

restore_crio() {
  command -v skopeo >/dev/null 2>&1 || die "skopeo not found; install skopeo"
  storage=${FERRY_CONTAINERS_STORAGE:-}
  os=${node%%/*}; rest=${node#*/}; arch=${rest%%/*}; variant=''
  [ "$rest" != "$arch" ] && variant=${rest#*/}
  set -- --override-os "$os" --override-arch "$arch"
  [ -n "$variant" ] && set -- "$@" --override-variant "$variant"
  log "copying $count image(s) for $node into containers-storage"
  while read -r ref digest media size; do
    # A one-image layout whose blobs are the bundle's (a link, no copy): skopeo then reads
    # any media type, Docker's too.
    rm -rf "$tmp/layout" && mkdir "$tmp/layout"
    ln -s "$here/blobs" "$tmp/layout/blobs"
    cp "$here/oci-layout" "$tmp/layout/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s}]}\n' "$media" "$digest" "$size" >"$tmp/layout/index.json"
    if skopeo copy --quiet "$@" "oci:$tmp/layout" "containers-storage:$storage$ref" >"$tmp/copy.log" 2>&1; then
      log "$ref ($digest) restored"
    else
      cat "$tmp/copy.log" >&2
      log "$ref: skopeo copy failed"
      failed=1
    fi
  done <"$tmp/serving"
  if [ "$pin" = 1 ]; then
    dir=${FERRY_CRIO_CONF_DIR:-/etc/crio/crio.conf.d}
    file=$dir/50-ferry-pinned.conf
    mkdir -p "$dir" || die "cannot create $dir"
    if [ -n "$replace" ] && [ "$failed" != 0 ]; then
      old_id='' ; : >"$tmp/gone"
      log "nothing unpinned: not every image of this bundle was restored"
    fi
    crio_pins "$file"
    while read -r name; do log "$name unpinned (only $old_id had it)"; done <"$tmp/dropped"
    [ "$remove" != 1 ] || [ ! -s "$tmp/dropped" ] || crio_remove
    log "pinned in $file; apply it with: systemctl reload crio"
  fi
}

case $runtime in
  containerd)
    restore_containerd
    if [ -n "$replace" ]; then
      if [ "$failed" = 0 ]; then replace_containerd
      else log "nothing unpinned: not every image of this bundle was restored"
      fi
    fi ;;
  cri-o) restore_crio ;;
esac
[ "$failed" = 0 ] || die "some images were not restored (see above)"
if [ "${present:-0}" -gt 0 ]; then
  log "done: $count image(s), $present already present"
else
  log "done: $count image(s)"
fi
