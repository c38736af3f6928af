# provider (plugin/provider, the sandcanary-plugin binary): its plain Rust tests run in `cargo test
# --workspace`; this fragment adds the pod-log reader against the real kube-apiserver, and the Run
# latency benchmark.

# The kube-rs pod-log reader through a real kube-apiserver, which proxies pods/log to a test kubelet
# (HTTPS, certificate from the test CA, registered as a Node); SANDCANARY_KUBE_KUBELET_TLS=1 makes
# apiserver.sh verify kubelet certificates against that CA. About 20 s with cached binaries.
.PHONY: test-plugin-kube-logs
TEST_TARGETS += test-plugin-kube-logs
test-plugin-kube-logs: setup-kube
	SANDCANARY_KUBE_KUBELET_TLS=1 test/kube/apiserver.sh run -- \
	  $(CARGO) test -p sandcanary-plugin --test pod_logs -- --include-ignored

# Run and Resume round trips through argo's RPC client while the real bench job benches two real proxies,
# against the same binary's placeholder job in the same run (ratio = while benching / baseline). Release
# builds. RUN_LATENCY_SAMPLES sets the bench's samples per scenario and target (default 10).
RUN_LATENCY_SAMPLES ?= 10
.PHONY: bench-plugin-run-latency
BENCH_TARGETS += bench-plugin-run-latency
bench-plugin-run-latency: setup setup-go-goplugin
	$(CARGO) build --release -p sandcanary-plugin --bin sandcanary-plugin -p sandcanary-proxy --bin sandcanary-proxy
	@mkdir -p bench-results
	cd test/conformance && SANDCANARY_PLUGIN_BIN=$(CARGO_TARGET_DIR)/release/sandcanary-plugin \
	  SANDCANARY_PROXY_BIN=$(CARGO_TARGET_DIR)/release/sandcanary-proxy SANDCANARY_ROOT=$(CURDIR) \
	  RUN_LATENCY_SAMPLES=$(RUN_LATENCY_SAMPLES) GOFLAGS=-buildvcs=false go test -tags canarye2e,runlatency \
	  -count=1 -timeout 20m -run TestRunLatencyWhileBenching -v ./canarye2e/ \
	  | grep -E '^(\||##|bench:|--- |FAIL|ok|\s+runlatency_test.go)' | tee $(CURDIR)/bench-results/plugin-run-latency.md

# Verdict events (kubernetesEvents) through the real kube-apiserver: written with the argo-rollouts
# ServiceAccount's token and only deploy/argo-rollouts/events-rbac.yaml, read back by `kubectl describe
# analysisrun` (Argo's CRDs from the argo-rollouts Go module). About 15 s with cached binaries.
.PHONY: test-plugin-kube-events
TEST_TARGETS += test-plugin-kube-events
test-plugin-kube-events: setup-kube
	SANDCANARY_ARGO_CRDS="$$(cd $(KUBE_DIR) && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)/manifests/crds" \
	  test/kube/apiserver.sh run -- $(CARGO) test -p sandcanary-plugin --test events -- --include-ignored
# secretKeyRef through the real kube-apiserver: a run's namespace only (tests/kube_secrets.rs). About 15 s
# with cached binaries.
.PHONY: test-plugin-kube-secrets
TEST_TARGETS += test-plugin-kube-secrets
test-plugin-kube-secrets: setup-kube
	test/kube/apiserver.sh run -- $(CARGO) test -p sandcanary-plugin --test kube_secrets -- --include-ignored
