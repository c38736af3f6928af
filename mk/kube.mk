# kube: a real etcd + kube-apiserver (and the Argo Rollouts controller) built from Go modules, for tests.
# Binaries are cached under ~/.cache/sandcanary/kube, keyed by test/kube/go.{mod,sum} and the Go toolchain.
KUBE_DIR := test/kube

.PHONY: setup-kube test-kube-infra
SETUP_TARGETS += setup-kube
TEST_TARGETS += test-kube-infra

setup-kube:
	@command -v go >/dev/null || { echo "setup-kube: Go (>= 1.24) is required on PATH" >&2; exit 1; }
	$(KUBE_DIR)/build.sh all >/dev/null

# Starts the API server, installs deploy/crds and Argo's CRDs, round-trips objects, dry-runs, stops;
# then runs the real Argo Rollouts controller against it (AnalysisRuns to Successful and Failed), and
# cmd/sandbox-sim (the sandbox controllers' stand-in, starting real Chromium sandboxes; needs setup-node).
test-kube-infra: setup-kube setup-node
	cd $(KUBE_DIR) && go test -count=1 -timeout 20m ./...
