# goplugin (plugin/goplugin, plugin/analysis, test/conformance): the Rust crates' own tests run in
# `cargo test --workspace`; this fragment adds the Go conformance harness, which drives the Rust
# plugin binaries with argo-rollouts' real Go client, against two argo release lines.
GOPLUGIN_CONFORMANCE := test/conformance
# v1.9.1 (go-plugin v1.6.3) is go.mod; the second release line has its own module file.
GOPLUGIN_ARGO_MODFILES := go.mod go.v1.8.mod
GOPLUGIN_GO := GOFLAGS=-buildvcs=false go
GOPLUGIN_ENV := PLUGIN_BIN=$(CARGO_TARGET_DIR)/debug/examples/conformance \
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

test-goplugin: setup-go-goplugin goplugin-bins
	cd $(GOPLUGIN_CONFORMANCE) && for m in $(GOPLUGIN_ARGO_MODFILES); do \
	  echo "conformance against $$($(GOPLUGIN_GO) list -modfile=$$m -m github.com/argoproj/argo-rollouts)"; \
	  $(GOPLUGIN_ENV) $(GOPLUGIN_GO) test -modfile=$$m -count=1 -timeout 10m ./...; done
TEST_TARGETS += test-goplugin

# Regenerates the golden gob streams the Rust tests read (committed under plugin/goplugin/tests/golden).
golden-goplugin: setup-go-goplugin
	cd $(GOPLUGIN_CONFORMANCE) && $(GOPLUGIN_GO) run ./cmd/gobgolden -out $(CURDIR)/plugin/goplugin/tests/golden
