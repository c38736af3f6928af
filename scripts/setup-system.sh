#!/usr/bin/env bash
# Installs the Debian packages the demo, tests and benchmarks need, only when they are missing.
# Usage: scripts/setup-system.sh [--bench]
set -euo pipefail
want=(chromium)
[[ "${1:-}" == "--bench" ]] && want+=(nginx-light wrk)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup-system: installing ${missing[*]}" >&2
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "setup-system: /usr/bin/chromium does not run" >&2; exit 1; }
