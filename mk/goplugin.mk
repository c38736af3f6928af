# goplugin (plugin/goplugin, plugin/provider, test/conformance): the Rust crates' own tests run in
# `cargo test --workspace`; this fragment adds the Go conformance harness, which drives the Rust
# plugin binaries with argo-rollouts' real Go client, against three argo release lines.
GOPLUGIN_CONFORMANCE := test/conformance
# v1.9.1 (go-plugin v1.6.3) is go.mod; v1.8.3 (go-plugin v1.6.2) and v1.10.0 (go-plugin v1.8.0,
# yamux v0.1.2, needs Go >= 1.26.1) have their own module files, used with -modfile.
GOPLUGIN_ARGO_MODFILES := go.mod go.v1.8.mod go.v1.10.mod
GOPLUGIN_GO := GOFLAGS=-buildvcs=false go
GOPLUGIN_ENV := SANDCANARY_JOB=placeholder PLUGIN_BIN=$(CARGO_TARGET_DIR)/debug/examples/conformance \
	SANDCANARY_PLUGIN_BIN=$(CARGO_TARGET_DIR)/debug/sandcanary-plugin \
	GOPLUGIN_REPLIES_BIN=$(CARGO_TARGET_DIR)/debug/examples/gobreplies

.PHONY: setup-go-goplugin goplugin-bins test-goplugin golden-goplugin bench-goplugin fuzz-goplugin
setup-go-goplugin:
	@command -v go >/dev/null || { echo "setup-go-goplugin: the Go toolchain is required"; exit 1; }
	cd $(GOPLUGIN_CONFORMANCE) && for m in $(GOPLUGIN_ARGO_MODFILES); do $(GOPLUGIN_GO) mod download -modfile=$$m; done
SETUP_TARGETS += setup-go-goplugin

# The binaries the harness launches: the scripted conformance plugin (an example of the goplugin
# crate), the reply writer for the gob checker, and the real sandcanary-plugin.
goplugin-bins:
	$(CARGO) build -p goplugin --examples
	$(CARGO) build -p sandcanary-plugin --bin sandcanary-plugin

# TestC10Idle idles 90 s (past the 75 s stream-open deadline) on the main line and one keepalive (35 s)
# on the others, to keep CI time down.
test-goplugin: setup-go-goplugin goplugin-bins
	cd $(GOPLUGIN_CONFORMANCE) && for m in $(GOPLUGIN_ARGO_MODFILES); do \
	  idle=35; if [ $$m = go.mod ]; then idle=90; fi; \
	  echo "conformance against $$($(GOPLUGIN_GO) list -modfile=$$m -m github.com/argoproj/argo-rollouts)"; \
	  $(GOPLUGIN_ENV) GOPLUGIN_IDLE_SECONDS=$$idle $(GOPLUGIN_GO) test -modfile=$$m -count=1 -timeout 10m ./...; done
TEST_TARGETS += test-goplugin

# Regenerates the golden gob streams the Rust tests read (committed under plugin/goplugin/tests/golden).
golden-goplugin: setup-go-goplugin
	cd $(GOPLUGIN_CONFORMANCE) && $(GOPLUGIN_GO) run ./cmd/gobgolden -out $(CURDIR)/plugin/goplugin/tests/golden

# Round trips and idle RSS against a Go plugin built from argo's rpc package, and gob decoding
# against Go's encoding/gob, all measured in the same run; prints ratios (Rust / Go).
GOPLUGIN_RELEASE := $(CARGO_TARGET_DIR)/release
bench-goplugin: setup-go-goplugin
	$(CARGO) build --release -p goplugin --examples
	$(CARGO) build --release -p sandcanary-plugin --bin sandcanary-plugin
	mkdir -p bench-results
	cd $(GOPLUGIN_CONFORMANCE) && $(GOPLUGIN_GO) build -o $(CARGO_TARGET_DIR)/goplugin-trivial ./cmd/trivialplugin \
	  && $(GOPLUGIN_GO) build -o $(CARGO_TARGET_DIR)/goplugin-bench ./cmd/pluginbench
	$(CARGO_TARGET_DIR)/goplugin-bench -rust $(GOPLUGIN_RELEASE)/examples/conformance -go $(CARGO_TARGET_DIR)/goplugin-trivial \
	  -rust-decode $(GOPLUGIN_RELEASE)/examples/decode_bench -golden plugin/goplugin/tests/golden/plugin_requests.gob \
	  2>/dev/null | tee bench-results/goplugin.md
	@echo "| sandcanary-plugin release binary | $$(stat -c %s $(GOPLUGIN_RELEASE)/sandcanary-plugin) bytes |" | tee -a bench-results/goplugin.md
BENCH_TARGETS += bench-goplugin

# Fuzzing (nightly + cargo-fuzz): the gob decoder with the Argo model readers, and the net/rpc
# server, seeded with the golden streams. Bounded by GOPLUGIN_FUZZ_SECONDS per target. Not in
# TEST_TARGETS: building the instrumented targets cold takes several minutes.
GOPLUGIN_FUZZ_SECONDS ?= 60
GOPLUGIN_FUZZ_TARGET_DIR := $(HOME)/.cache/sandcanary/target-goplugin-fuzz
fuzz-goplugin:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd plugin/goplugin && for t in gob_stream rpc_serve; do \
	  mkdir -p $(GOPLUGIN_FUZZ_TARGET_DIR)/corpus/$$t; \
	  CARGO_TARGET_DIR=$(GOPLUGIN_FUZZ_TARGET_DIR) $(CARGO) +nightly fuzz run -O $$t \
	    $(GOPLUGIN_FUZZ_TARGET_DIR)/corpus/$$t tests/golden -- \
	    -max_total_time=$(GOPLUGIN_FUZZ_SECONDS) -rss_limit_mb=2048; done
