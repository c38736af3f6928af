#!/usr/bin/env bash
# make demo: build, start sandcanary-proxy on the local backend (real Chromium sandboxes, warm pool),
# run the cold / warm / restore bench through it and print the table; then a local canary: two
# proxies (stable, and canary behind a relay adding CANARY_DELAY_MS, default 1500), the plugin's
# analysis path run directly (no Argo), printing the comparison, the verdict and the GitHub issue it
# would file (dry run). DEMO_SAMPLES (default 8) sets the bench's samples per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
samples=${DEMO_SAMPLES:-8}

echo "demo: building (release)…" >&2
cargo build --release --quiet -p sandcanary-proxy -p sandcanary-bench

work=$(mktemp -d)
identity_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
admin_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cleanup() {
  if [[ -n "${proxy_pid:-}" ]] && kill -0 "$proxy_pid" 2>/dev/null; then
    kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Ports chosen by the kernel; the proxy logs the addresses it bound.
LISTEN_ADDR=127.0.0.1:0 METRICS_ADDR=127.0.0.1:0 BACKEND=local \
IDENTITY=token IDENTITY_TOKEN="$identity_token" SESSION_API_TOKEN="$admin_token" \
LOCAL_SANDBOX_SERVER="$root/deploy/sandbox/server.js" LOCAL_WARM_POOL=2 LOCAL_MAX_SANDBOXES=6 \
LOCAL_TMP_DIR="$work/sandboxes" LOG_FORMAT=json RUST_LOG=info \
  "$target/release/sandcanary-proxy" 2>"$work/proxy.log" &
proxy_pid=$!

for _ in $(seq 1 100); do
  grep -q '"message":"listening"' "$work/proxy.log" 2>/dev/null && break
  kill -0 "$proxy_pid" 2>/dev/null || { cat "$work/proxy.log" >&2; exit 1; }
  sleep 0.1
done
line=$(grep -m1 '"message":"listening"' "$work/proxy.log")
data=$(sed -E 's/.*"data":"([^"]+)".*/\1/' <<<"$line")
admin=$(sed -E 's/.*"admin":"([^"]+)".*/\1/' <<<"$line")
echo "demo: proxy on $data (admin $admin), local backend, warm pool 2" >&2
# Let the warm pool fill before the first cold sample.
sleep 3

SANDCANARY_ADMIN_TOKEN="$admin_token" SANDCANARY_IDENTITY_TOKEN="$identity_token" \
  "$target/release/sandcanary-bench" run --proxy "http://$data" --admin "http://$admin" \
  --name local-proxy --scenarios cold,warm,restore --samples "$samples" --format table \
  --json-out "$work/bench.json"

# Stop the first proxy before the canary starts two more.
kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
proxy_pid=
echo >&2
echo "demo: local canary (stable vs a canary with +${CANARY_DELAY_MS:-1500} ms per connection)…" >&2
plugin/canary/scripts/local-canary.sh --delay-ms "${CANARY_DELAY_MS:-1500}"
