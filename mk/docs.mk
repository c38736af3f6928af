# docs: every shell block of the repository's Markdown (README.md, BENCHMARKS.md, docs/, each crate's and
# directory's README) runs as written in a fresh copy of the repository after the demo's setup (make
# install into a temporary PREFIX, its bin first on PATH; sample counts from SAMPLES / DEMO_SAMPLES = 2),
# each in its own network namespace, or is marked on the line above its fence with
# <!-- docs-test: skip (reason) -->. Other markers: expect REGEX, server URL (test/docs/docs_test.py).
# test-docs-check only classifies the blocks (seconds); test-docs first runs the checker's own tests.
DOCS_TEST_SETUP ?= make install

.PHONY: test-docs test-docs-check
TEST_TARGETS += test-docs

test-docs-check:
	python3 test/docs/docs_test.py check

test-docs: setup-demo setup-manifests
	python3 test/docs/test_docs_test.py
	python3 test/docs/docs_test.py run --setup '$(DOCS_TEST_SETUP)'
