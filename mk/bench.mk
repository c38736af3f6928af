# bench: the Playwright cold/warm/restore bench (crate plugin/bench, bin sandcanary-bench).
#
# Its tests run in `test-rust` (cargo test --workspace); they need Chromium (setup-system) and the
# node_modules of deploy/sandbox and test/playwright (setup-node), which `make setup` installs.
# `make bench` runs bench-bench: every table lands in $(BENCH_RESULTS) and on stdout.

BENCH_RESULTS ?= $(HOME)/.cache/sandcanary/bench-results
BENCH_SAMPLES ?= 20
BENCH_BIN = $(CARGO_TARGET_DIR)/release/sandcanary-bench

.PHONY: bench-bench bench-build
bench-build:
	$(CARGO) build --release -p sandcanary-bench -p sandcanary-proxy

bench-bench: bench-build
	@mkdir -p $(BENCH_RESULTS)
	@echo "== our Playwright client vs the official Node client (ratio = rust / node)"
	SANDCANARY_ROOT=$(CURDIR) $(BENCH_BIN) clients --samples $(BENCH_SAMPLES) --format markdown \
	  --json-out $(BENCH_RESULTS)/clients.json | tee $(BENCH_RESULTS)/clients.md
	@echo "== our CDP client vs a bare Node CDP client, same Chromium (ratio = rust / node)"
	SANDCANARY_ROOT=$(CURDIR) $(BENCH_BIN) cdp --baseline --samples $(BENCH_SAMPLES) --format markdown \
	  --json-out $(BENCH_RESULTS)/cdp.json | tee $(BENCH_RESULTS)/cdp.md
	@echo "== local sandboxes, direct (no proxy)"
	SANDCANARY_ROOT=$(CURDIR) $(BENCH_BIN) run --local --scenarios cold,warm,restore,mcp \
	  --samples $(BENCH_SAMPLES) --format markdown --json-out $(BENCH_RESULTS)/local.json \
	  --html-out $(BENCH_RESULTS)/local.html | tee $(BENCH_RESULTS)/local.md
	@echo "== through the proxy, local backend, no warm pool (LOCAL_MCP=false: cold starts no MCP server)"
	LOCAL_MCP=false plugin/bench/scripts/through-proxy.sh --warm-pool 0 -- --scenarios cold,warm,restore \
	  --samples $(BENCH_SAMPLES) --format markdown --json-out $(BENCH_RESULTS)/proxy-pool0.json \
	  | tee $(BENCH_RESULTS)/proxy-pool0.md
	@echo "== through the proxy, local backend, warm pool of 1 (1 s between samples so it refills)"
	LOCAL_MCP=false plugin/bench/scripts/through-proxy.sh --warm-pool 1 -- --scenarios cold,warm,restore \
	  --samples $(BENCH_SAMPLES) --pause-ms 1000 --format markdown \
	  --json-out $(BENCH_RESULTS)/proxy-pool1.json | tee $(BENCH_RESULTS)/proxy-pool1.md

BENCH_TARGETS += bench-bench

# What the breakdown (the 101, newPage's parts, Chromium's navigation timing; used for the issue's
# waterfall) costs the measured phases: local sandboxes sampled with it off and on, alternating, in one
# run; ratio = on / off. BREAKDOWN_SAMPLES per scenario and side (default 20); about 2 minutes.
BREAKDOWN_SAMPLES ?= 20
.PHONY: bench-breakdown-cost
BENCH_TARGETS += bench-breakdown-cost
bench-breakdown-cost: bench-build setup-node
	@mkdir -p $(BENCH_RESULTS)
	SANDCANARY_ROOT=$(CURDIR) $(BENCH_BIN) breakdown-cost --scenarios cold,warm \
	  --samples $(BREAKDOWN_SAMPLES) --format markdown --json-out $(BENCH_RESULTS)/breakdown-cost.json \
	  | tee $(BENCH_RESULTS)/breakdown-cost.md
