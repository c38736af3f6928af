# argo-e2e: the real Argo Rollouts controller runs OUR AnalysisTemplates (analysis-templates/) with OUR
# argo-rollouts-config ConfigMap (deploy/argo-rollouts/file/, location rewritten to the built binary)
# against the real kube-apiserver; the real sandcanary-plugin benches two real sandcanary-proxy
# processes (local backend, real Chromium): healthy canary -> Successful, canary behind a delaying relay
# -> Failed with one issue on a fake GitHub REST API, plugin SIGKILLed mid-bench -> restarted and the
# run still reaches its verdict, the threshold and LLM (fake OpenAI-compatible endpoint) variants, an
# unreachable canary -> Error. The Rollout of rollouts/ runs on real pods in test-node-canary (node.mk).
# About 6 minutes (367 s of tests, 2026-12-07).
.PHONY: test-argo-e2e
test-argo-e2e: setup-kube setup-node
	$(CARGO) build -p sandcanary-plugin --bin sandcanary-plugin -p sandcanary-proxy --bin sandcanary-proxy
	cd $(KUBE_DIR) && SANDCANARY_PLUGIN_BIN=$(CARGO_TARGET_DIR)/debug/sandcanary-plugin \
	  SANDCANARY_PROXY_BIN=$(CARGO_TARGET_DIR)/debug/sandcanary-proxy \
	  go test -tags argoe2e -count=1 -timeout 30m -v ./argoe2e/ \
	  | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+\S+_test.go)'
TEST_TARGETS += test-argo-e2e
