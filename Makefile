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

.PHONY: help setup setup-system setup-node build lint test-rust test demo bench
help:
	@echo "make demo   start the proxy on the local backend and run the cold/warm/restore bench through it"
	@echo "make test   install what is needed and run every test"
	@echo "make bench  run the benchmarks (results: BENCHMARKS.md)"

setup-system:
	scripts/setup-system.sh

NODE_DIRS := deploy/sandbox test/playwright
setup-node:
	@for d in $(NODE_DIRS); do \
	  if [ ! -d $$d/node_modules ] || [ $$d/package-lock.json -nt $$d/node_modules/.package-lock.json ]; then \
	    echo "setup-node: npm ci in $$d"; (cd $$d && npm ci --no-audit --no-fund --loglevel=error); fi; done

setup: $(SETUP_TARGETS)

build: setup
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: setup
	$(CARGO) test --workspace

test: setup lint test-rust $(TEST_TARGETS)
	@echo "make test: all suites passed"

demo: setup
	scripts/demo.sh

bench: setup
	scripts/setup-system.sh --bench
	$(MAKE) $(BENCH_TARGETS)
