# node: a real one-node Kubernetes (test/node/cluster.sh: containerd + runc + CNI bridge from Debian; kubelet,
# kube-scheduler, kube-proxy, CoreDNS and the agent-sandbox v1.0.1 controller built from their Go modules; the
# test/kube API server and controller manager), closed in its own network namespace and always torn down.
# test/node/suite.sh runs on it: see test/node/README.md for the scenarios. Warm: about 6 min; cold adds the
# node binaries (about 8 min on the shared machine) and a release sandcanary-bench (about 3 min).
.PHONY: setup-node-cluster test-node
SETUP_TARGETS += setup-node-cluster
TEST_TARGETS += test-node
NODE_CLUSTER_DEBS := containerd runc containernetworking-plugins iptables conntrack jq util-linux iproute2 openssl curl

setup-node-cluster: setup-kube
	@missing=(); for p in $(NODE_CLUSTER_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing+=($$p); done; \
	if (($${#missing[@]})); then echo "setup-node-cluster: installing $${missing[*]}" >&2; \
	  sudo_cmd=(); [[ $$(id -u) -ne 0 ]] && sudo_cmd=(sudo); \
	  "$${sudo_cmd[@]}" apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive "$${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; fi
	test/node/build.sh >/dev/null

# `images` (mk/images.mk) builds the archives before the cluster starts: the cluster's namespace is closed.
test-node: setup-node-cluster images
	$(CARGO) build --release -p sandcanary-bench --bin sandcanary-bench
	test/node/cleanup-test.sh
	SANDCANARY_BENCH_BIN=$(CARGO_TARGET_DIR)/release/sandcanary-bench test/node/cluster.sh run -- test/node/suite.sh

# Argo Rollouts v1.9.1 as a pod on the one-node cluster (test/node/argo.sh test): its controller image
# (quay.io/argoproj/argo-rollouts:v1.9.1, built by `images` from test/kube's Go-module build) installed with
# README "Register the plugin"'s commands as written: the file variant (the plugin image's init container),
# an AnalysisRun answered by sandcanary-plugin, the https variant downloading the plugin and its sha256
# from a release server pod over TLS (the test's CA, trusted through deploy/argo-rollouts/https-ca), a
# wrong sha256 stopping the controller at start, the CA trusted only through https-ca. About 2 min warm.
# Reusable: `test/node/argo.sh install DIR [file|https]` (see test/node/README.md).
.PHONY: test-node-argo
TEST_TARGETS += test-node-argo
test-node-argo: setup-node-cluster images
	test/node/cluster.sh run -- test/node/argo.sh test

# The canary story on the same kind of cluster (test/node/canary-suite.sh, see test/node/README.md): the
# README's install and "Run a canary" commands, Argo Rollouts' controller as a pod with the plugin
# (test/node/argo.sh: README "Register the plugin"), the fake GitHub and LLM as a pod (test/kube/cmd/saas-fake); v2 promoted, the LLM
# template reading both tracks' pod logs, v3 aborted with one issue, agents counted, a WebSocket on a deleted
# proxy pod measured. Measured warm: 8 min 5 s (the suite 402 s, cluster up and down about 40 s).
.PHONY: test-node-canary
TEST_TARGETS += test-node-canary
SAAS_FAKE_BIN := $(CARGO_TARGET_DIR)/go/saas-fake
test-node-canary: setup-node-cluster images
	cd test/kube && CGO_ENABLED=0 go build -ldflags "-s -w" -o $(SAAS_FAKE_BIN) ./cmd/saas-fake
	SANDCANARY_SAAS_FAKE_BIN=$(SAAS_FAKE_BIN) test/node/cluster.sh run -- test/node/canary-suite.sh
