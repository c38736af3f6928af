#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd, the Argo Rollouts controller and its sample metric plugin from the Go modules pinned in go.mod,
# into a cache directory keyed by go.mod, go.sum and the Go toolchain, so fresh clones reuse earlier builds.
# Prints the directory holding the binaries on stdout (everything else goes to stderr).
#
# Usage: build.sh [all|apiserver|rollouts]   (default: all)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

what="${1:-all}"
k8s_version="$(awk '$1=="k8s.io/kubernetes" {print $2; exit}' go.mod)"
key="$( { cat go.mod go.sum; go version; } | sha256sum | cut -c1-16)"
cache_root="${SANDCANARY_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandcanary/kube}"
bin="$cache_root/$k8s_version-$key/bin"
mkdir -p "$bin"

# Keep binaries small and stamp kube-apiserver/kubectl with their real version so clients see v1.x, not v0.0.0.
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
rollouts_version="$(awk '$1=="github.com/argoproj/argo-rollouts" {print $2; exit}' go.mod)"
rollouts_ldflags="-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=${rollouts_version#v}"

build_one() { # name package ldflags
  local name="$1" pkg="$2" ldflags="$3"
  if [ -x "$bin/$name" ]; then
    echo "build.sh: $name cached in $bin" >&2
    return
  fi
  local start=$SECONDS
  echo "build.sh: building $name from $pkg ..." >&2
  CGO_ENABLED=0 nice -n 10 go build -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg"
  mv "$bin/$name.tmp" "$bin/$name"
  echo "build.sh: $name built in $((SECONDS - start))s ($(du -h "$bin/$name" | cut -f1))" >&2
}

go mod download >&2
case "$what" in
  all|apiserver)
    build_one kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
    build_one kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
    build_one etcd go.etcd.io/etcd/server/v3 "-s -w"
    ;;&
  all|rollouts)
    build_one rollouts-controller github.com/argoproj/argo-rollouts/cmd/rollouts-controller "$rollouts_ldflags"
    # Argo's own sample metric plugin: proves the plugin path (file:// location, go-plugin exec) works here.
    build_one metrics-plugin-sample github.com/argoproj/argo-rollouts/test/cmd/metrics-plugin-sample "-s -w"
    # ReplicaSet/GC/namespace controllers, so Rollouts get pods (cmd/node-sim plays scheduler and kubelet).
    build_one kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
    ;;
  all|apiserver) ;;
  *) echo "build.sh: unknown target '$what' (all|apiserver|rollouts)" >&2; exit 2 ;;
esac
echo "$bin"
