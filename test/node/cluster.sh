#!/usr/bin/env bash
# A real one-node Kubernetes cluster for tests, closed inside its own network namespace.
#
#   cluster.sh up [DIR]          start everything in DIR (default: a new temp dir), print the env (shell syntax)
#   cluster.sh exec DIR -- CMD   run CMD inside the cluster's network namespace with its env exported
#   cluster.sh down DIR          stop and remove everything: pods' containers, their network namespaces and
#                                mounts, the processes, the cluster's network namespace (with its bridge and
#                                every iptables rule kube-proxy and the kubelet wrote), DIR
#   cluster.sh run -- CMD        up, run CMD inside, always down (trap), exit with CMD's status
#   cluster.sh import DIR ARCHIVE...   import image archives (docker-archive) into containerd's k8s.io namespace
#
# What runs (all built from source or Debian packages, see README.md):
#   etcd + kube-apiserver + kube-controller-manager   test/kube/apiserver.sh (SANDCANARY_KUBE_NODE_IP mode)
#   containerd + runc + CNI bridge/host-local          Debian packages, config written here
#   kubelet, kube-scheduler, kube-proxy (iptables)    test/node/build.sh, from k8s.io/kubernetes
#   CoreDNS (cluster names only, no forwarding)       test/node/build.sh, behind the kube-dns Service
#   agent-sandbox-controller (a Deployment)           sigs.k8s.io/agent-sandbox v1.0.1: its own k8s/ kustomization
#
# Addresses are the test's own and exist only inside the namespace: node 10.213.0.1 (on bridge scbr0), pods
# 10.213.0.0/24, Services 10.0.0.0/24 (kubernetes 10.0.0.1, kube-dns 10.0.0.10). The namespace has no route
# out and nothing is masqueraded to the outside; the host's own network and iptables are never touched.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

NODE_NAME=sc-node
NODE_IP=10.213.0.1
POD_CIDR=10.213.0.0/24
BRIDGE=scbr0
DNS_IP=10.0.0.10
SERVICE_CIDR=10.0.0.0/24
PAUSE_IMAGE=sandcanary.local/pause:3.10
HELLO_IMAGE=sandcanary.local/hello:1
AGENT_SANDBOX_IMAGE=sandcanary.local/agent-sandbox-controller:v1.0.1
READY_TIMEOUT="${SANDCANARY_NODE_READY_TIMEOUT:-180}"

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command in the cluster's network namespace (and nothing else: same mounts, PIDs, cgroups).
in_ns() { # dir cmd...
  local d="$1"; shift
  nsenter --net="/run/netns/$(cat "$d/netns")" -- "$@"
}

ctr_() { # dir args...
  local d="$1"; shift
  ctr --address "$d/containerd/containerd.sock" -n k8s.io "$@"
}

# Starts a long-running program in the namespace, logging to DIR/logs/NAME.log, pid in DIR/pids.
spawn() { # dir name cmd...
  local d="$1" name="$2"; shift 2
  # exec: the recorded pid is the program's own (nsenter execs it), so stopping it stops the program.
  (exec nsenter --net="/run/netns/$(cat "$d/netns")" -- "$@") >"$d/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$d/pids/$name.pid"
}

alive_or_die() { # dir name
  kill -0 "$(cat "$1/pids/$2.pid")" 2>/dev/null || { tail -n 40 "$1/logs/$2.log" >&2; die "$2 exited"; }
}

wait_for() { # dir name description timeout cmd...
  local d="$1" name="$2" what="$3" timeout="$4"; shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ -z "$name" ] || alive_or_die "$d" "$name"
    ((SECONDS < deadline)) || { [ -z "$name" ] || tail -n 40 "$d/logs/$name.log" >&2; die "$what: not after ${timeout}s"; }
    sleep 0.5
  done
}

kubectl_() { # dir args...
  local d="$1"; shift
  in_ns "$d" env KUBECONFIG="$d/kube/kubeconfig" "$(cat "$d/kube-bin")/kubectl" "$@"
}

write_configs() { # dir
  local d="$1"
  mkdir -p "$d/containerd/root" "$d/containerd/state" "$d/cni/net.d" "$d/cni/ipam" "$d/kubelet" \
    "$d/pod-logs" "$d/pki"
  cat >"$d/containerd/config.toml" <<TOML
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
[grpc]
  address = "$d/containerd/containerd.sock"
[ttrpc]
  address = "$d/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  # Built here from a static binary (cmd/pause); no registry is reachable.
  sandbox_image = "$PAUSE_IMAGE"
  disable_apparmor = true
  # The VM withholds CAP_SYS_RESOURCE: never ask for a lower oom_score_adj than containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
TOML
  # Bridge + host-local on the test's subnet. No ipMasq: pods reach only the node and each other.
  cat >"$d/cni/net.d/10-sandcanary.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "sandcanary",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$d/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.213.0.10", "rangeEnd": "10.213.0.250", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  # Pods with dnsPolicy Default get no upstream resolver: names outside the cluster do not resolve.
  printf '# sandcanary one-node cluster: no upstream DNS\n' >"$d/resolv.conf"
  cat >"$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $d/pki/kubelet.crt
tlsPrivateKeyFile: $d/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/kube/pki/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$d/containerd/containerd.sock
# This VM: cgroup v1 (hybrid), no systemd as init, no CAP_SYS_RESOURCE, swap possible, a disk shared with
# other work. The kubelet must neither build QoS cgroups nor evict on disk/memory pressure.
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $d/resolv.conf
podLogsDir: $d/pod-logs
serializeImagePulls: false
maxPods: 60
YAML
  cat >"$d/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
clientConnection:
  kubeconfig: $d/kube/kubeconfig
iptables:
  masqueradeAll: false
  localhostNodePorts: false
# Leave the kernel's conntrack table settings alone (they are not per-namespace writable here).
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
  cat >"$d/Corefile" <<COREFILE
# Cluster names only: no forward plugin, so nothing leaves the cluster.
.:53 {
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $d/kube/kubeconfig sandcanary
        pods insecure
        ttl 5
    }
    cache 5
}
COREFILE
}

# The kubelet's serving certificate, for the node address, signed by the test CA the API server trusts.
kubelet_cert() { # dir
  local p="$1/pki" ca="$1/kube/pki"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=system:node:$NODE_NAME" \
    -keyout "$p/kubelet.key" -out "$p/kubelet.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$NODE_IP" "$NODE_NAME" >"$p/kubelet.ext"
  openssl x509 -req -in "$p/kubelet.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -CAcreateserial \
    -days 3 -extfile "$p/kubelet.ext" -out "$p/kubelet.crt" 2>/dev/null
  rm -f "$p/kubelet.csr" "$p/kubelet.ext"; chmod 600 "$p/kubelet.key"
}

import_images() { # dir archive...
  local d="$1"; shift
  local a
  for a in "$@"; do
    ctr_ "$d" images import "$a" >&2 || die "could not import $a"
  done
}

node_ready() { # dir
  [ "$(kubectl_ "$1" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

up() { # [dir]
  local d="${1:-}"
  if [ -z "$d" ]; then d="$(mktemp -d "${TMPDIR:-/tmp}/sandcanary-node.XXXXXX")"; else mkdir -p "$d"; fi
  d="$(cd "$d" && pwd)"
  [ -z "$(ls -A "$d")" ] || die "$d is not empty"
  touch "$d/.sandcanary-node"
  mkdir -p "$d/logs" "$d/pids"
  local start=$SECONDS
  for tool in containerd runc ctr nsenter iptables ip openssl /usr/lib/cni/bridge; do
    command -v "$tool" >/dev/null || die "$tool not found (make setup-node-cluster installs it)"
  done

  local kube_bin node_bin
  kube_bin="$("$root/test/kube/build.sh" all)"
  node_bin="$("$here/build.sh")"
  echo "$kube_bin" >"$d/kube-bin"; echo "$node_bin" >"$d/node-bin"

  # The cluster's own network namespace: loopback, and the bridge the CNI plugin will attach pods to,
  # carrying the node address from the start (the API server advertises it, the kubelet reports it).
  local ns="sc-node-${d##*.}"
  echo "$ns" >"$d/netns"
  ip netns add "$ns"
  in_ns "$d" ip link set lo up
  in_ns "$d" ip link add "$BRIDGE" type bridge
  in_ns "$d" ip addr add "$NODE_IP/24" dev "$BRIDGE"
  in_ns "$d" ip link set "$BRIDGE" up
  # Node-side clients (the bench) reach Service IPs: a route for the Service range, so the kernel lets the
  # packet through to kube-proxy's DNAT instead of failing with "network unreachable". Still inside.
  in_ns "$d" ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  # Service traffic between pods on one bridge passes iptables (kube-proxy's DNAT) both ways.
  in_ns "$d" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

  SANDCANARY_KUBE_NODE_IP="$NODE_IP" SANDCANARY_KUBE_KUBELET_TLS=1 KUBE_BIN_DIR="$kube_bin" \
    in_ns "$d" "$root/test/kube/apiserver.sh" start "$d/kube" >"$d/kube.env"
  KUBE_BIN_DIR="$kube_bin" in_ns "$d" "$root/test/kube/apiserver.sh" start-controller-manager "$d/kube"

  write_configs "$d"
  kubelet_cert "$d"

  spawn "$d" containerd containerd --config "$d/containerd/config.toml"
  wait_for "$d" containerd "containerd" 30 ctr_ "$d" version
  "$here/binimage.sh" "$PAUSE_IMAGE" "$d/images/pause.tar" /usr/local/bin/pause "$node_bin/pause"
  "$here/binimage.sh" "$HELLO_IMAGE" "$d/images/hello.tar" /usr/local/bin/hello "$node_bin/hello"
  import_images "$d" "$d/images/pause.tar" "$d/images/hello.tar"

  spawn "$d" kubelet "$node_bin/kubelet" --config "$d/kubelet.yaml" --kubeconfig "$d/kube/kubeconfig" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$d/kubelet" --cert-dir "$d/pki"
  spawn "$d" kube-proxy "$node_bin/kube-proxy" --config "$d/kube-proxy.yaml"
  spawn "$d" kube-scheduler "$node_bin/kube-scheduler" --kubeconfig "$d/kube/kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259
  spawn "$d" coredns "$node_bin/coredns" -conf "$d/Corefile"
  wait_for "$d" kubelet "node $NODE_NAME Ready" "$READY_TIMEOUT" node_ready "$d"

  # kube-dns: a Service without selector whose EndpointSlice points at CoreDNS on the node address.
  kubectl_ "$d" apply -f - >&2 <<YAML
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: sandcanary-node}
addressType: IPv4
endpoints:
  - addresses: ["$NODE_IP"]
    conditions: {ready: true}
ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
YAML
  wait_for "$d" coredns "CoreDNS ready" 60 in_ns "$d" curl -fsS --max-time 2 http://127.0.0.1:18181/ready

  # agent-sandbox v1.0.1 installed as its release installs it: the module's own kustomization (CRDs, RBAC,
  # the controller Deployment in agent-sandbox-system with --extensions), rendered with the controller image
  # in place of its ko:// placeholder, as its release tooling does. The image is the binary built here.
  local as_dir
  as_dir="$(cat "$node_bin/agent-sandbox.dir")"
  "$here/binimage.sh" "$AGENT_SANDBOX_IMAGE" "$d/images/agent-sandbox-controller.tar" \
    /usr/local/bin/agent-sandbox-controller "$node_bin/agent-sandbox-controller"
  import_images "$d" "$d/images/agent-sandbox-controller.tar"
  kubectl_ "$d" kustomize "$as_dir/k8s" |
    sed "s#ko://sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller#$AGENT_SANDBOX_IMAGE#" >"$d/agent-sandbox.yaml"
  kubectl_ "$d" apply --server-side -f "$d/agent-sandbox.yaml" >&2
  kubectl_ "$d" wait --for condition=Established --timeout 60s \
    crd/sandboxes.agents.x-k8s.io crd/sandboxclaims.extensions.agents.x-k8s.io \
    crd/sandboxtemplates.extensions.agents.x-k8s.io crd/sandboxwarmpools.extensions.agents.x-k8s.io >&2
  kubectl_ "$d" -n agent-sandbox-system rollout status deploy/agent-sandbox-controller --timeout 120s >&2 ||
    die "agent-sandbox-controller not available"

  {
    cat "$d/kube.env"
    printf 'export SANDCANARY_NODE_DIR=%q\n' "$d"
    printf 'export SANDCANARY_NODE_NETNS=%q\n' "$ns"
    printf 'export SANDCANARY_NODE_BIN=%q\n' "$node_bin"
    printf 'export PATH=%q\n' "$kube_bin:$PATH"
  } >"$d/env"
  log "node $NODE_NAME Ready in $((SECONDS - start))s (state in $d, network namespace $ns)"
  cat "$d/env"
}

# Every pod sandbox's network namespace, from containerd's own records (the pause containers' specs).
pod_netns_paths() { # dir
  local d="$1" id
  for id in $(ctr_ "$d" containers list -q 2>/dev/null); do
    ctr_ "$d" containers info "$id" 2>/dev/null |
      jq -r '.Spec.linux.namespaces[]? | select(.type=="network") | .path // empty' 2>/dev/null || true
  done | sort -u
}

stop_pid() { # pidfile
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() { # dir
  local d="$1"
  [ -d "$d" ] || { log "nothing to stop in $d"; return 0; }
  [ -f "$d/.sandcanary-node" ] || die "$d was not created by cluster.sh; refusing to remove it"
  local name
  # The node's programs first, so nothing restarts what is removed next.
  for name in coredns kube-scheduler kube-proxy kubelet; do stop_pid "$d/pids/$name.pid"; done
  # Pod containers: kill, delete, and remove their network namespaces (veths go with them).
  if [ -f "$d/pids/containerd.pid" ] && kill -0 "$(cat "$d/pids/containerd.pid")" 2>/dev/null; then
    local netns_paths id
    netns_paths="$(pod_netns_paths "$d")"
    for id in $(ctr_ "$d" tasks list -q 2>/dev/null); do ctr_ "$d" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr_ "$d" tasks list -q 2>/dev/null); do ctr_ "$d" tasks delete -f "$id" >/dev/null 2>&1 || true; done
    local ids
    ids="$(ctr_ "$d" containers list -q 2>/dev/null || true)"
    for id in $ids; do ctr_ "$d" containers delete "$id" >/dev/null 2>&1 || true; done
    # cgroupsPerQOS is off, so containers' cgroups are /k8s.io/<id> in every hierarchy; runc removes them
    # on a clean delete, a killed container may leave the empty directories.
    for id in $ids; do
      for cg in /sys/fs/cgroup/*/k8s.io/"$id" /sys/fs/cgroup/unified/k8s.io/"$id"; do
        [ -d "$cg" ] && rmdir "$cg" 2>/dev/null || true
      done
    done
    local p
    for p in $netns_paths; do
      case "$p" in /var/run/netns/cni-*|/run/netns/cni-*) umount "$p" 2>/dev/null || true; rm -f "$p" ;; esac
    done
  fi
  stop_pid "$d/pids/containerd.pid"
  # Leftover shims (they outlive containerd by design).
  pkill_shims "$d"
  [ -d "$d/kube" ] && "$root/test/kube/apiserver.sh" stop "$d/kube" || true
  # Mounts under DIR (kubelet volumes, overlay rootfs, shm), deepest first.
  local m
  for m in $(awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # The namespace takes its bridge, veth ends and every iptables rule of the node with it.
  local ns=""
  [ -f "$d/netns" ] && ns="$(cat "$d/netns")" && { ip netns delete "$ns" 2>/dev/null || true; }
  rm -rf "$d"
  leftovers "$d" "$ns" || die "cleanup of $d incomplete"
  log "stopped and removed $d"
}

# Prints what of a cluster is still there (status 1 if anything): processes started from its directory
# (node programs, shims, containers' processes are children of shims), mounts, its namespace, pod netns.
leftovers() { # dir netns
  local d="$1" ns="$2" found=0 pid
  for pid in $(pgrep -f -- "$d/" 2>/dev/null); do
    [ "$pid" = "$$" ] && continue
    log "leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"; found=1
  done
  if awk -v d="$d/" 'index($5, d) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "leftover mounts under $d"; found=1
  fi
  if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then log "leftover network namespace $ns"; found=1; fi
  [ -e "$d" ] && { log "leftover directory $d"; found=1; }
  return "$found"
}

# containerd-shim-runc-v2 processes whose address is this cluster's containerd: by pid, never by name.
pkill_shims() { # dir
  local d="$1" pid
  for pid in $(pgrep -x containerd-shim 2>/dev/null; pgrep -f containerd-shim-runc-v2 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$d/containerd/containerd.sock"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up) up "${1:-}" ;;
  down) [ -n "${1:-}" ] || die "usage: cluster.sh down DIR"; down "$1" ;;
  import) [ $# -ge 2 ] || die "usage: cluster.sh import DIR ARCHIVE..."; d="$1"; shift; import_images "$d" "$@" ;;
  exec)
    d="${1:-}"; shift || true
    [ -n "$d" ] && [ -f "$d/env" ] || die "usage: cluster.sh exec DIR -- CMD..."
    [ "${1:-}" = "--" ] && shift
    # shellcheck disable=SC1091
    source "$d/env"
    in_ns "$d" "$@"
    ;;
  run)
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: cluster.sh run -- CMD..."
    d="$(mktemp -d "${TMPDIR:-/tmp}/sandcanary-node.XXXXXX")"
    trap 'down "$d"' EXIT
    trap 'exit 130' INT TERM
    up "$d" >/dev/null
    # shellcheck disable=SC1091
    source "$d/env"
    set +e; in_ns "$d" "$@"; status=$?; set -e
    exit "$status"
    ;;
  *) die "usage: cluster.sh up [DIR] | down DIR | exec DIR -- CMD... | run -- CMD... | import DIR ARCHIVE..." ;;
esac
