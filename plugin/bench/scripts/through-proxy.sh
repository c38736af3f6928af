#!/usr/bin/env bash
# Starts sandcanary-proxy on the local backend (token identity, session API on), runs
# `sandcanary-bench run` through it with the given arguments, stops the proxy.
#
#   plugin/bench/scripts/through-proxy.sh [--warm-pool N] [--profile debug|release] -- <bench run args>
#   e.g. plugin/bench/scripts/through-proxy.sh --warm-pool 1 -- --scenarios cold,warm,restore --samples 5
#
# Binaries come from $CARGO_TARGET_DIR/<profile> and are built first with cargo.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
warm_pool=1
profile=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --warm-pool) warm_pool="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "through-proxy.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
target_dir="${CARGO_TARGET_DIR:-$root/target}"
flag=(); [[ "$profile" == release ]] && flag=(--release)
(cd "$root" && cargo build "${flag[@]}" -p sandcanary-proxy -p sandcanary-bench >&2)
bin="$target_dir/$profile"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data_port="$(free_port)"; admin_port="$(free_port)"
# Per-run random tokens: they never leave this machine and are never printed.
admin_token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
identity_token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
log="$(mktemp -t sandcanary-proxy.XXXXXX.log)"

(cd "$root" && LISTEN_ADDR="127.0.0.1:$data_port" METRICS_ADDR="127.0.0.1:$admin_port" BACKEND=local \
  IDENTITY=token IDENTITY_TOKEN="$identity_token" SESSION_API_TOKEN="$admin_token" \
  LOCAL_WARM_POOL="$warm_pool" LOCAL_MCP="${LOCAL_MCP:-true}" LOG_FORMAT=text \
  exec "$bin/sandcanary-proxy" >"$log" 2>&1) &
proxy_pid=$!
stop() { kill -TERM "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
trap stop EXIT

for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$proxy_pid" 2>/dev/null; then echo "proxy exited; log: $log" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.2
done
# The proxy does not publish its pool size; give the pool time to fill before the first cold sample.
if [[ "$warm_pool" -gt 0 ]]; then sleep "${POOL_SETTLE_S:-5}"; fi
echo "proxy: data 127.0.0.1:$data_port admin 127.0.0.1:$admin_port warm pool $warm_pool (log $log)" >&2
SANDCANARY_ADMIN_TOKEN="$admin_token" SANDCANARY_IDENTITY_TOKEN="$identity_token" SANDCANARY_ROOT="$root" \
  "$bin/sandcanary-bench" run --proxy "http://127.0.0.1:$data_port" --admin "http://127.0.0.1:$admin_port" \
  --name "proxy-pool$warm_pool" "$@"
