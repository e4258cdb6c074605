#!/usr/bin/env bash
# Starts and stops a private containerd (Debian's package) for tests and restores: its own root,
# state and socket under STATE_DIR, the CRI plugin disabled.
#
#   scripts/containerd.sh start STATE_DIR      # prints the socket path
#   scripts/containerd.sh stop STATE_DIR
set -euo pipefail

die() { echo "containerd.sh: $*" >&2; exit 1; }
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: containerd.sh start|stop STATE_DIR"

case "$cmd" in
start)
  command -v containerd >/dev/null ||
    die "containerd is not installed: apt-get install -y containerd (or run scripts/test.sh)"
  [ "$(id -u)" = 0 ] || die "containerd needs root"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  sock="$dir/containerd.sock"
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$dir/debug.sock"
TOML
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 1 200); do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      cat "$dir/containerd.log" >&2
      die "containerd exited (log above)"
    fi
    if ctr -a "$sock" version >/dev/null 2>&1; then
      echo "$sock"
      exit 0
    fi
    sleep 0.05
  done
  cat "$dir/containerd.log" >&2
  die "containerd did not come up (log above)"
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
    # Snapshots may leave mounts behind; release them so the folder can be removed.
    grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount "$m" 2>/dev/null || true; done
  fi
  ;;
*) die "unknown command $cmd" ;;
esac
