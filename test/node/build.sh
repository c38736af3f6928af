#!/usr/bin/env bash
# Builds the one-node cluster's programs from their Go modules into a cache directory keyed by what they are
# built from (go.mod/go.sum here and in coredns/, the pinned versions below, the Go toolchain), so fresh
# clones on the same machine reuse them (the small programs of cmd/ are rebuilt every time, from Go's cache):
#   kubelet, kube-scheduler, kube-proxy   k8s.io/kubernetes (go.mod: same version and replace block as test/kube)
#   coredns                               github.com/coredns/coredns (coredns/go.mod; cluster plugins only)
#   agent-sandbox-controller              sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller@$AGENT_SANDBOX_VERSION
#   pause, hello                          cmd/ here (static; packed into local images by image.sh)
# Prints the directory holding the binaries on stdout (everything else goes to stderr).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# The real agent-sandbox controller (core + extensions). Its CRDs are read from the same module.
AGENT_SANDBOX_VERSION=v1.0.1

k8s_version="$(awk '$1=="k8s.io/kubernetes" {print $2; exit}' go.mod)"
key="$( { cat go.mod go.sum coredns/go.mod coredns/go.sum coredns/main.go; echo "$AGENT_SANDBOX_VERSION"; go version; } | sha256sum | cut -c1-16)"
cache_root="${SANDCANARY_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandcanary/node}"
bin="$cache_root/$k8s_version-$key/bin"
mkdir -p "$bin"

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build_one() { # name dir package ldflags
  local name="$1" dir="$2" pkg="$3" ldflags="$4"
  if [ -x "$bin/$name" ]; then
    echo "node/build.sh: $name cached in $bin" >&2
    return
  fi
  local start=$SECONDS
  echo "node/build.sh: building $name from $pkg ..." >&2
  (cd "$dir" && CGO_ENABLED=0 nice -n 10 go build -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "node/build.sh: $name built in $((SECONDS - start))s ($(du -h "$bin/$name" | cut -f1))" >&2
}

go mod download >&2
for prog in pause hello; do
  CGO_ENABLED=0 go build -ldflags "-s -w" -o "$bin/$prog.tmp" "./cmd/$prog" && mv "$bin/$prog.tmp" "$bin/$prog"
done
build_one kubelet . k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build_one kube-scheduler . k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build_one kube-proxy . k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
(cd coredns && go mod download >&2)
build_one coredns coredns . "-s -w"
if [ ! -x "$bin/agent-sandbox-controller" ]; then
  start=$SECONDS
  echo "node/build.sh: building agent-sandbox-controller $AGENT_SANDBOX_VERSION ..." >&2
  # `go install module@version` builds with the module's own go.mod and go.sum, as its release does.
  tmp="$(mktemp -d)"
  GOBIN="$tmp" CGO_ENABLED=0 nice -n 10 go install -ldflags "-s -w" \
    "sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller@$AGENT_SANDBOX_VERSION" >&2
  mv "$tmp/agent-sandbox-controller" "$bin/agent-sandbox-controller"; rmdir "$tmp"
  echo "node/build.sh: agent-sandbox-controller built in $((SECONDS - start))s" >&2
fi
# Where the controller's CRDs are: the same module, in the module cache.
(cd / && GOFLAGS= go mod download -json "sigs.k8s.io/agent-sandbox@$AGENT_SANDBOX_VERSION") \
  | awk -F'"' '$2=="Dir" {print $4}' >"$bin/agent-sandbox.dir"
echo "$bin"
