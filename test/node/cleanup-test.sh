#!/usr/bin/env bash
# The cluster is removed even when the test inside it fails: `cluster.sh run` around a command that starts a
# pod (a container, its network namespace, volume mounts, iptables rules for its Service) and then exits 3.
# Passes when run exits with 3 and nothing of the cluster is left: processes, mounts, network namespaces
# (the cluster's and the pod's), the state directory. (cluster.sh's own leftover check runs too.)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sandcanary-cleanup-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
before_netns="$(ip netns list | awk '{print $1}' | sort)"
set +e
TMPDIR="$tmp" "$here/cluster.sh" run -- bash -euo pipefail -c '
  kubectl -n default create deployment crash --image sandcanary.local/hello:1 --port 8080 >/dev/null
  kubectl -n default expose deployment crash --port 80 --target-port 8080 >/dev/null
  kubectl -n default rollout status deployment/crash --timeout 120s >&2
  kubectl -n default get pods -o wide >&2
  echo "the test fails now, with a pod running" >&2
  exit 3' 2>"$tmp.log"
status=$?
set -e
tail -n 5 "$tmp.log" >&2
rm -f "$tmp.log"
[ "$status" = 3 ] || { echo "FAIL: cluster.sh run exited $status, want the command's 3" >&2; exit 1; }
leftover=0
if [ -n "$(ls -A "$tmp")" ]; then echo "FAIL: left in $tmp: $(ls -A "$tmp")" >&2; leftover=1; fi
if grep -qF "$tmp/" /proc/self/mountinfo; then echo "FAIL: mounts left under $tmp" >&2; leftover=1; fi
if pgrep -f -- "$tmp/" >/dev/null; then echo "FAIL: processes left: $(pgrep -af -- "$tmp/")" >&2; leftover=1; fi
after_netns="$(ip netns list | awk '{print $1}' | sort)"
new_netns="$(comm -13 <(echo "$before_netns") <(echo "$after_netns") | grep -E '^(sc-node-|cni-)' || true)"
# Other tests on this machine may create namespaces meanwhile; ours are named sc-node-* / cni-* by containerd.
if [ -n "$new_netns" ]; then echo "FAIL: network namespaces left: $new_netns" >&2; leftover=1; fi
[ "$leftover" = 0 ] || exit 1
echo "PASS: cluster.sh run exited 3 and removed everything" >&2
