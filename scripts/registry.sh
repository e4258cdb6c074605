#!/usr/bin/env bash
# Starts and stops a throwaway CNCF distribution registry (Debian's docker-registry) on loopback.
#
#   scripts/registry.sh start STATE_DIR [--htpasswd FILE] [--tls CERT KEY] [--client-ca CA]
#                                       [--addr IP] [--accesslog] [--readonly] [--data-from DIR]
#                                            # prints host:port (IP defaults to 127.0.0.1)
#   scripts/registry.sh stop STATE_DIR
#
# The registry's storage, config, log and pid live in STATE_DIR. --data-from starts it on a copy
# of another registry's storage folder (STATE_DIR/data of a stopped one): seed once, copy many.
set -euo pipefail

die() { echo "registry.sh: $*" >&2; exit 1; }

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: registry.sh start|stop STATE_DIR [--htpasswd FILE] [--tls CERT KEY]"

case "$cmd" in
start)
  shift 2
  htpasswd=""; cert=""; key=""; client_ca=""; ip=127.0.0.1; accesslog=false; readonly=false; data_from=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --htpasswd) htpasswd=$2; shift 2 ;;
      --tls) cert=$2; key=$3; shift 3 ;;
      --addr) ip=$2; shift 2 ;;
      --client-ca) client_ca=$2; shift 2 ;;
      --readonly) readonly=true; shift ;; # maintenance mode: pushes answer 405
      --accesslog) accesslog=true; shift ;; # one line per request in STATE_DIR/registry.log
      --data-from) data_from=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  command -v docker-registry >/dev/null ||
    die "docker-registry is not installed: apt-get install -y docker-registry (or run scripts/test.sh, which installs it)"
  mkdir -p "$dir/data"
  if [ -n "$data_from" ]; then
    [ -d "$data_from" ] || die "--data-from $data_from: no such folder"
    cp -a "$data_from/." "$dir/data/"
  fi
  dir=$(cd "$dir" && pwd)
  scheme=http; curl_opts=()
  [ -n "$cert" ] && { scheme=https; curl_opts=(-k); }
  # With client certificates required, the readiness probe presents none: any TLS answer will do.
  [ -n "$client_ca" ] && curl_opts=(-k --cert "$cert" --key "$key")
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$ip")
    {
      echo "version: 0.1"
      if [ "$accesslog" = true ]; then echo "log: {level: error}"; else echo "log: {level: error, accesslog: {disabled: true}}"; fi
      echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}, maintenance: {readonly: {enabled: $readonly}}}"
      echo "http:"
      echo "  addr: $ip:$port"
      echo "  secret: ferry-test-secret"
      if [ -n "$cert" ] && [ -n "$client_ca" ]; then
        echo "  tls: {certificate: $cert, key: $key, clientcas: [$client_ca]}"
      elif [ -n "$cert" ]; then
        echo "  tls: {certificate: $cert, key: $key}"
      fi
      [ -n "$htpasswd" ] && echo "auth: {htpasswd: {realm: ferry-test, path: $htpasswd}}"
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
      if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
      code=$(curl -s "${curl_opts[@]}" -o /dev/null -w '%{http_code}' "$scheme://$ip:$port/v2/" || true)
      if [ "$code" = 200 ] || [ "$code" = 401 ]; then
        echo "$ip:$port"
        exit 0
      fi
      sleep 0.05
    done
    kill "$(cat "$dir/pid")" 2>/dev/null || true
  done
  cat "$dir/registry.log" >&2
  die "the registry did not start (log above)"
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
  fi
  ;;
*) die "unknown command $cmd" ;;
esac
