#!/usr/bin/env bash
# A local canary analysis without Argo: starts two sandcanary-proxy processes on the local backend
# (real Chromium sandboxes), one as stable and one as canary, puts a delaying relay in front of the
# canary (a simulated regression), and runs the plugin's analysis path on them. Prints the
# comparison table, the verdict and the GitHub issue it would file (dry run).
#
#   plugin/canary/scripts/local-canary.sh [--delay-ms 1500] [--config FILE] [--profile release|debug]
#
# --delay-ms 0 gives a healthy canary. Binaries are built with cargo into $CARGO_TARGET_DIR.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
delay_ms=1500
config="$root/plugin/canary/examples/local-demo.json"
profile=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --delay-ms) delay_ms="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    *) echo "local-canary.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
target_dir="${CARGO_TARGET_DIR:-$root/target}"
flag=(); [[ "$profile" == release ]] && flag=(--release)
(cd "$root" && cargo build "${flag[@]}" --quiet -p sandcanary-proxy -p sandcanary-canary --example analyze >&2)
bin="$target_dir/$profile"

work="$(mktemp -d)"
# Per-run random tokens shared by both proxies (as one Secret would be); never printed.
admin_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
identity_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start_proxy() { # name -> sets data_<name>, admin_<name>
  local name="$1" log="$work/$1.log"
  (cd "$root" && LISTEN_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 BACKEND=local \
    IDENTITY=token IDENTITY_TOKEN="$identity_token" SESSION_API_TOKEN="$admin_token" \
    LOCAL_WARM_POOL=0 LOCAL_TMP_DIR="$work/$name" LOG_FORMAT=json RUST_LOG=info \
    exec "$bin/sandcanary-proxy" 2>"$log") &
  pids+=($!)
  for _ in $(seq 1 300); do
    grep -q '"message":"listening"' "$log" 2>/dev/null && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  local line; line=$(grep -m1 '"message":"listening"' "$log")
  printf -v "data_$name" 'http://%s' "$(sed -E 's/.*"data":"([^"]+)".*/\1/' <<<"$line")"
  printf -v "admin_$name" 'http://%s' "$(sed -E 's/.*"admin":"([^"]+)".*/\1/' <<<"$line")"
}
start_proxy stable
start_proxy canary
echo "local-canary: stable $data_stable, canary $data_canary (+${delay_ms} ms per connection)" >&2

delay=(); [[ "$delay_ms" -gt 0 ]] && delay=(--canary-delay-ms "$delay_ms")
SANDCANARY_ADMIN_TOKEN="$admin_token" SANDCANARY_IDENTITY_TOKEN="$identity_token" \
  "$bin/examples/analyze" --config "$config" \
  --arg "stable-data=$data_stable" --arg "stable-admin=$admin_stable" \
  --arg "canary-data=$data_canary" --arg "canary-admin=$admin_canary" "${delay[@]}"
