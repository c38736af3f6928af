# canary analysis (plugin/canary). Its Rust tests run with `cargo test --workspace` (test-rust);
# they need chromium and deploy/sandbox/node_modules, which `setup` installs.

CANARY_DELAY_MS ?= 1500

.PHONY: demo-canary
# Two local proxies (stable, canary behind a delaying relay), the plugin's analysis path run
# directly (no Argo): comparison table, verdict and the GitHub issue it would file (dry run).
# CANARY_DELAY_MS=0 shows a healthy canary.
demo-canary: setup-demo
	plugin/canary/scripts/local-canary.sh --delay-ms $(CANARY_DELAY_MS)

# The real sandcanary-plugin driven by argo-rollouts' Go client (GetMetricPlugin with a file://
# location), benching two real proxies: healthy canary -> Successful, delayed canary -> Failed.
.PHONY: test-canary-argo
test-canary-argo: setup setup-go-goplugin
	$(CARGO) build -p sandcanary-plugin --bin sandcanary-plugin -p sandcanary-proxy --bin sandcanary-proxy
	cd test/conformance && SANDCANARY_PLUGIN_BIN=$(CARGO_TARGET_DIR)/debug/sandcanary-plugin \
	  SANDCANARY_PROXY_BIN=$(CARGO_TARGET_DIR)/debug/sandcanary-proxy SANDCANARY_ROOT=$(CURDIR) \
	  GOFLAGS=-buildvcs=false go test -tags canarye2e -count=1 -timeout 20m -v ./canarye2e/ \
	  | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+canary_test.go)'
TEST_TARGETS += test-canary-argo
