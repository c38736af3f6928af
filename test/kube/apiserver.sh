#!/usr/bin/env bash
# Runs a real etcd + kube-apiserver on loopback for tests.
#
#   apiserver.sh start [DIR]      start in DIR (default: a new temp dir), wait for /readyz, print the env
#   apiserver.sh env DIR          print the env of a running instance again
#   apiserver.sh stop DIR         stop every process started in DIR and remove DIR
#   apiserver.sh run -- CMD...    start, run CMD with the env exported, always stop; exits with CMD's status
#   apiserver.sh stop-apiserver DIR    stop only kube-apiserver (etcd keeps the data): an API outage
#   apiserver.sh start-apiserver DIR   start it again on the same port, certificates and data
#   apiserver.sh start-controller-manager DIR   also run kube-controller-manager (ReplicaSets -> pods, GC,
#                                     namespace deletion); pair it with cmd/node-sim to get running pods
#
# The env printed (shell syntax, safe to eval) is:
#   KUBECONFIG                 kubeconfig for a cluster-admin user (token auth, group system:masters)
#   SANDCANARY_KUBE_DIR        the state dir (certs, logs, pids); pass it to `stop`
#   SANDCANARY_KUBE_SERVER     https://127.0.0.1:<port>
#   SANDCANARY_KUBE_CA         CA bundle that signed the serving cert
#   SANDCANARY_KUBE_BIN        dir with kube-apiserver, kubectl, etcd, rollouts-controller
# Secrets (token, keys) stay in files under the state dir and are never printed.
#
# Binaries come from build.sh (cached under ~/.cache/sandcanary/kube), or from KUBE_BIN_DIR when set.
# SANDCANARY_KUBE_KUBELET_TLS=1 (at `start`) makes the server trust kubelets whose serving certificate
# is signed by the test CA ($SANDCANARY_KUBE_DIR/pki/ca.{crt,key}) and reach them by InternalIP, so a
# test can register a Node that points at its own HTTPS endpoint and serve pods/log. Off by default.
# SANDCANARY_KUBE_NODE_IP=<ip> (at `start`, for test/node's real one-node cluster, run inside its network
# namespace): listen on all addresses of that namespace, advertise <ip> (the `kubernetes` Service gets real
# endpoints), ServiceAccount admission on (pods get tokens), the serving certificate also for <ip>, and the
# server reaches kubelets at their InternalIP with the admin client certificate (`kubectl logs`).
# ETCD=/path/to/etcd overrides etcd (Debian's etcd-server 3.4 works too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
READY_TIMEOUT="${SANDCANARY_KUBE_READY_TIMEOUT:-120}"

log() { echo "apiserver.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib.sh
source "$here/lib.sh"

gen_certs() { # dir [extra IP for the serving certificate]
  local d="$1" extra_san="${2:+,IP:$2}"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=sandcanary-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1%s\nextendedKeyUsage=serverAuth\n' "$extra_san" >"$d/apiserver.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  # A client certificate for the same admin identity, for clients that prefer certs over tokens.
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=sandcanary-admin-cert" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$d/admin.ext"
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3 -extfile "$d/admin.ext" -out "$d/admin.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  rm -f "$d"/*.csr "$d"/*.ext
  chmod 600 "$d"/*.key
}

print_env() { # dir
  local d="$1"
  [ -f "$d/env" ] || die "$d is not a running instance (no env file)"
  cat "$d/env"
}

# Sends TERM to the pid in a pid file, waits, then KILLs.
stop_pidfile() { # file
  local f="$1" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$(basename "$f" .pid) ignored TERM, killing"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$f"
}

stop() { # dir
  local d="$1"
  [ -d "$d" ] || { log "nothing to stop in $d"; return 0; }
  [ -f "$d/.sandcanary-kube" ] || die "$d was not created by apiserver.sh; refusing to remove it"
  # Extra processes (e.g. the rollouts controller) register pid files under $d/pids too; stop them first.
  for f in "$d"/pids/*.pid; do
    case "$f" in *"/kube-apiserver.pid"|*"/etcd.pid") ;; *) stop_pidfile "$f" ;; esac
  done
  stop_pidfile "$d/pids/kube-apiserver.pid"
  stop_pidfile "$d/pids/etcd.pid"
  rm -rf "$d"
  log "stopped and removed $d"
}

wait_ready() { # dir server token_file
  local d="$1" server="$2" token
  token="$(cat "$3")"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS --max-time 5 --cacert "$d/pki/ca.crt" -H "Authorization: Bearer $token" \
      "$server/readyz" >/dev/null 2>&1; do
    kill -0 "$(cat "$d/pids/kube-apiserver.pid")" 2>/dev/null || { tail -n 30 "$d/logs/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
    kill -0 "$(cat "$d/pids/etcd.pid")" 2>/dev/null || { tail -n 30 "$d/logs/etcd.log" >&2; die "etcd exited"; }
    ((SECONDS < deadline)) || { tail -n 30 "$d/logs/kube-apiserver.log" >&2; die "kube-apiserver not ready after ${READY_TIMEOUT}s"; }
    sleep 0.5
  done
}

# Starts kube-apiserver (in the background) against etcd, with the state in dir.
launch_apiserver() { # dir bin etcd_client_port api_port
  local d="$1" bin="$2" etcd_client="$3" api_port="$4"
  # With the kubelet-tls marker (SANDCANARY_KUBE_KUBELET_TLS=1 at start), pods/log and exec are proxied to
  # test kubelets: their serving certificates are checked against the test CA, addresses are InternalIP.
  local kubelet_args=()
  [ -f "$d/kubelet-tls" ] && kubelet_args=(--kubelet-certificate-authority "$d/pki/ca.crt"
    --kubelet-preferred-address-types InternalIP --kubelet-timeout 10s)
  # RBAC as in a real cluster; the test user gets cluster-admin through system:masters. ServiceAccount
  # admission is off because no kube-controller-manager creates `default` service accounts here; the
  # `kubernetes` Service has no endpoints (nothing could reach 127.0.0.1 from a pod anyway).
  local where=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1
    --disable-admission-plugins ServiceAccount --endpoint-reconciler-type none)
  if [ -f "$d/node-ip" ]; then
    # A real node (test/node): inside its own network namespace, so all addresses are the test's.
    where=(--bind-address 0.0.0.0 --advertise-address "$(cat "$d/node-ip")"
      --kubelet-client-certificate "$d/pki/admin.crt" --kubelet-client-key "$d/pki/admin.key")
    [ -f "$d/kubelet-tls" ] || kubelet_args=(--kubelet-preferred-address-types InternalIP)
  fi
  "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_client" --etcd-prefix /registry \
    "${where[@]}" --secure-port "$api_port" \
    --tls-cert-file "$d/pki/apiserver.crt" --tls-private-key-file "$d/pki/apiserver.key" \
    --client-ca-file "$d/pki/ca.crt" \
    --token-auth-file "$d/pki/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/pki/sa.pub" --service-account-signing-key-file "$d/pki/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 \
    --allow-privileged=true \
    --cert-dir "$d/pki" \
    --profiling=false \
    "${kubelet_args[@]}" \
    >"$d/logs/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$d/pids/kube-apiserver.pid"
}

start_once() { # dir bin
  local d="$1" bin="$2"
  local etcd_bin="${ETCD:-$bin/etcd}"
  local etcd_client etcd_peer api_port
  etcd_client="$(free_port)"; etcd_peer="$(free_port)"; api_port="$(free_port)"
  local server="https://127.0.0.1:$api_port"

  # Test data need not survive a power cut; skip fsync where this etcd supports it (3.5+).
  local etcd_extra=()
  local etcd_help
  etcd_help="$("$etcd_bin" --help 2>&1 || true)"
  [[ "$etcd_help" == *--unsafe-no-fsync* ]] && etcd_extra+=(--unsafe-no-fsync)
  "$etcd_bin" --name sandcanary --data-dir "$d/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "sandcanary=http://127.0.0.1:$etcd_peer" \
    --quota-backend-bytes 1073741824 "${etcd_extra[@]}" \
    >"$d/logs/etcd.log" 2>&1 </dev/null &
  echo $! >"$d/pids/etcd.pid"
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 "http://127.0.0.1:$etcd_client/health" >/dev/null 2>&1; do
    kill -0 "$(cat "$d/pids/etcd.pid")" 2>/dev/null || { tail -n 30 "$d/logs/etcd.log" >&2; log "etcd exited"; return 1; }
    ((SECONDS < deadline)) || { tail -n 30 "$d/logs/etcd.log" >&2; log "etcd not healthy after 30s"; return 1; }
    sleep 0.2
  done

  printf 'ETCD_CLIENT_PORT=%s\nAPI_PORT=%s\nBIN=%q\n' "$etcd_client" "$api_port" "$bin" >"$d/ports"
  launch_apiserver "$d" "$bin" "$etcd_client" "$api_port"
  wait_ready "$d" "$server" "$d/pki/token"

  cat >"$d/kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: sandcanary
  cluster:
    server: $server
    certificate-authority: $d/pki/ca.crt
users:
- name: sandcanary-admin
  user:
    tokenFile: $d/pki/token
- name: sandcanary-admin-cert
  user:
    client-certificate: $d/pki/admin.crt
    client-key: $d/pki/admin.key
contexts:
- name: sandcanary
  context: {cluster: sandcanary, user: sandcanary-admin, namespace: default}
- name: sandcanary-cert
  context: {cluster: sandcanary, user: sandcanary-admin-cert, namespace: default}
current-context: sandcanary
KCFG
  chmod 600 "$d/kubeconfig"
  {
    printf 'export KUBECONFIG=%q\n' "$d/kubeconfig"
    printf 'export SANDCANARY_KUBE_DIR=%q\n' "$d"
    printf 'export SANDCANARY_KUBE_SERVER=%q\n' "$server"
    printf 'export SANDCANARY_KUBE_CA=%q\n' "$d/pki/ca.crt"
    printf 'export SANDCANARY_KUBE_BIN=%q\n' "$bin"
  } >"$d/env"
}

start() { # [dir]
  local d="${1:-}"
  if [ -z "$d" ]; then d="$(mktemp -d "${TMPDIR:-/tmp}/sandcanary-kube.XXXXXX")"; else mkdir -p "$d"; fi
  d="$(cd "$d" && pwd)"
  [ -z "$(ls -A "$d")" ] || die "$d is not empty"
  touch "$d/.sandcanary-kube"
  [ "${SANDCANARY_KUBE_KUBELET_TLS:-0}" = 1 ] && touch "$d/kubelet-tls"
  [ -n "${SANDCANARY_KUBE_NODE_IP:-}" ] && echo "$SANDCANARY_KUBE_NODE_IP" >"$d/node-ip"
  local bin="${KUBE_BIN_DIR:-}"
  [ -n "$bin" ] || bin="$("$here/build.sh" apiserver)"
  mkdir -p "$d/pki" "$d/logs" "$d/pids"
  gen_certs "$d/pki" "${SANDCANARY_KUBE_NODE_IP:-}"
  # A random static token for the admin user (token-auth-file: token,user,uid,"groups").
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/pki/token"
  printf '%s,sandcanary-admin,sandcanary-admin,"system:masters"\n' "$(cat "$d/pki/token")" >"$d/pki/tokens.csv"
  chmod 600 "$d/pki/token" "$d/pki/tokens.csv"

  # Free ports are picked before the servers bind them; on the rare lost race, start again on new ports.
  local attempt
  for attempt in 1 2 3; do
    if (start_once "$d" "$bin"); then
      log "ready at $(grep SERVER= "$d/env" | cut -d= -f2) (state in $d)"
      print_env "$d"
      return 0
    fi
    log "start attempt $attempt failed; retrying on new ports"
    stop_pidfile "$d/pids/kube-apiserver.pid"; stop_pidfile "$d/pids/etcd.pid"
    mkdir -p "$d/failed-$attempt"; mv "$d/logs" "$d/failed-$attempt/" || true
    rm -rf "$d/etcd"; mkdir -p "$d/logs"
  done
  stop "$d"
  die "could not start the API server"
}

# Stops only kube-apiserver (etcd and the state stay), for outage tests.
stop_apiserver() { # dir
  local d="$1"
  [ -f "$d/ports" ] || die "$d is not a running instance"
  stop_pidfile "$d/pids/kube-apiserver.pid"
  log "kube-apiserver stopped (etcd still running)"
}

# Starts kube-apiserver again on the same port with the same certificates, tokens and data.
start_apiserver() { # dir
  local d="$1" ETCD_CLIENT_PORT API_PORT BIN
  [ -f "$d/ports" ] || die "$d is not a running instance"
  # shellcheck disable=SC1091
  source "$d/ports"
  if [ -f "$d/pids/kube-apiserver.pid" ] && kill -0 "$(cat "$d/pids/kube-apiserver.pid")" 2>/dev/null; then
    die "kube-apiserver is already running"
  fi
  local log_n=1
  while [ -e "$d/logs/kube-apiserver.$log_n.log" ]; do log_n=$((log_n + 1)); done
  mv "$d/logs/kube-apiserver.log" "$d/logs/kube-apiserver.$log_n.log" 2>/dev/null || true
  launch_apiserver "$d" "$BIN" "$ETCD_CLIENT_PORT" "$API_PORT"
  wait_ready "$d" "https://127.0.0.1:$API_PORT" "$d/pki/token"
  log "kube-apiserver ready again at https://127.0.0.1:$API_PORT"
}

# Starts kube-controller-manager with the controllers that turn workloads into pods and clean up after
# them (ReplicaSet, Deployment, garbage collector, namespace, service accounts, EndpointSlices). With
# cmd/node-sim binding and "running" the pods, Deployments and Argo Rollouts make progress.
start_controller_manager() { # dir
  local d="$1" ETCD_CLIENT_PORT API_PORT BIN
  [ -f "$d/ports" ] || die "$d is not a running instance"
  # shellcheck disable=SC1091
  source "$d/ports"
  local bin="${KUBE_BIN_DIR:-}"
  [ -n "$bin" ] || bin="$("$here/build.sh" rollouts)"
  [ -x "$bin/kube-controller-manager" ] || die "kube-controller-manager not built in $bin"
  local controllers=replicaset,deployment,garbagecollector,namespace,serviceaccount,serviceaccount-token,endpointslice
  # A real kubelet mounts the kube-root-ca.crt ConfigMap into every pod's service-account volume; the node
  # lifecycle controller lifts the not-ready taint a registering kubelet puts on its node.
  [ -f "$d/node-ip" ] && controllers+=,root-ca-cert-publisher,podgc,nodelifecycle
  "$bin/kube-controller-manager" \
    --kubeconfig "$d/kubeconfig" \
    --controllers "$controllers" \
    --service-account-private-key-file "$d/pki/sa.key" --root-ca-file "$d/pki/ca.crt" \
    --use-service-account-credentials=false --leader-elect=false \
    --secure-port 0 --concurrent-replicaset-syncs 5 \
    >"$d/logs/kube-controller-manager.log" 2>&1 </dev/null &
  echo $! >"$d/pids/kube-controller-manager.pid"
  sleep 1
  kill -0 "$(cat "$d/pids/kube-controller-manager.pid")" 2>/dev/null || {
    tail -n 30 "$d/logs/kube-controller-manager.log" >&2; die "kube-controller-manager exited"; }
  log "kube-controller-manager started (log: $d/logs/kube-controller-manager.log)"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  start) start "${1:-}" ;;
  env) [ -n "${1:-}" ] || die "usage: apiserver.sh env DIR"; print_env "$1" ;;
  stop) [ -n "${1:-}" ] || die "usage: apiserver.sh stop DIR"; stop "$1" ;;
  stop-apiserver) [ -n "${1:-}" ] || die "usage: apiserver.sh stop-apiserver DIR"; stop_apiserver "$1" ;;
  start-apiserver) [ -n "${1:-}" ] || die "usage: apiserver.sh start-apiserver DIR"; start_apiserver "$1" ;;
  start-controller-manager) [ -n "${1:-}" ] || die "usage: apiserver.sh start-controller-manager DIR"; start_controller_manager "$1" ;;
  run)
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: apiserver.sh run -- CMD..."
    envfile="$(mktemp)"
    trap 'rm -f "$envfile"' EXIT
    start >"$envfile"
    # shellcheck disable=SC1090
    source "$envfile"; rm -f "$envfile"
    trap 'stop "$SANDCANARY_KUBE_DIR"' EXIT
    trap 'exit 130' INT TERM
    set +e; "$@"; status=$?; set -e
    exit "$status"
    ;;
  *) die "usage: apiserver.sh start [DIR] | env DIR | stop DIR | run -- CMD... | stop-apiserver DIR | start-apiserver DIR | start-controller-manager DIR" ;;
esac
