# canary analysis (plugin/canary). Its Rust tests run with `cargo test --workspace` (test-rust);
# they need chromium and deploy/sandbox/node_modules, which `setup` installs.

CANARY_DELAY_MS ?= 1500

.PHONY: demo-canary
# Two local proxies (stable, canary behind a delaying relay), the plugin's analysis path run
# directly (no Argo): comparison table, verdict and the GitHub issue it would file (dry run).
# CANARY_DELAY_MS=0 shows a healthy canary.
demo-canary: setup
	plugin/canary/scripts/local-canary.sh --delay-ms $(CANARY_DELAY_MS)
