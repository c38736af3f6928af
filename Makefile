# sandcanary: every target installs what it needs first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Build caches live outside the clone so CI's fresh clones reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/sandcanary/target
export CARGO_TERM_COLOR ?= never
export SANDCANARY_ROOT := $(CURDIR)
CARGO ?= cargo

# Fragments in mk/ add their own targets to these lists.
SETUP_TARGETS := setup-system setup-node
TEST_TARGETS :=
BENCH_TARGETS :=
include $(sort $(wildcard mk/*.mk))

.PHONY: help setup setup-demo setup-system setup-node build lint schemas test-rust test demo bench install
help:
	@echo "make demo     start the proxy on the local backend and run the cold/warm/restore bench through it"
	@echo "make install  put sandcanary-proxy, sandcanary-bench and sandcanary-plugin in \$$PREFIX/bin (~/.local/bin)"
	@echo "make test     install what is needed and run every test"
	@echo "make bench    run the benchmarks (results: BENCHMARKS.md)"

setup-system:
	scripts/setup-system.sh

NODE_DIRS := deploy/sandbox test/playwright
setup-node:
	@for d in $(NODE_DIRS); do \
	  if [ ! -d $$d/node_modules ] || [ $$d/package-lock.json -nt $$d/node_modules/.package-lock.json ]; then \
	    echo "setup-node: npm ci in $$d"; (cd $$d && npm ci --no-audit --no-fund --loglevel=error); fi; done

setup: $(SETUP_TARGETS)

# What the demo runs needs only Chromium and the npm packages (Node sandboxes, the official client the
# bench compares against); the kube and Go setups in SETUP_TARGETS belong to tests.
setup-demo: setup-system setup-node

build: setup
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The plugin's JSON Schemas (plugin/canary/schema, plugin/github/schema) are derived from the config
# types with schemars; this rewrites the checked-in files, whose tests fail until they match.
schemas:
	SANDCANARY_WRITE_SCHEMAS=1 $(CARGO) test -p sandcanary-github --lib schema_file_is_derived_from_the_type
	SANDCANARY_WRITE_SCHEMAS=1 $(CARGO) test -p sandcanary-canary --test schema schema_file_is_derived_from_the_type

test-rust: setup
	$(CARGO) test --workspace

test: setup lint test-rust $(TEST_TARGETS)
	@echo "make test: all suites passed"

demo: setup-demo
	scripts/demo.sh

# Release binaries onto the PATH. The proxy and the bench are built together, as scripts/demo.sh builds
# them, so after `make demo` only the plugin is compiled.
PREFIX ?= $(HOME)/.local
install: setup-demo
	$(CARGO) build --release -p sandcanary-proxy -p sandcanary-bench
	$(CARGO) build --release -p sandcanary-plugin --bin sandcanary-plugin
	install -d $(PREFIX)/bin
	install -m 0755 $(CARGO_TARGET_DIR)/release/sandcanary-proxy $(CARGO_TARGET_DIR)/release/sandcanary-bench \
	  $(CARGO_TARGET_DIR)/release/sandcanary-plugin $(PREFIX)/bin/
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; \
	  *) echo "make install: $(PREFIX)/bin is not on your PATH; add it: export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

bench: setup
	scripts/setup-system.sh --bench
	$(MAKE) $(BENCH_TARGETS)
