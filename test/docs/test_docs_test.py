#!/usr/bin/env python3
"""The docs test's own tests: it fails, naming file and line, on each kind of bad block, and passes
runnable, skipped, expect and server blocks. Runs on small Markdown files in a temporary git repo."""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "docs_test.py")


def repo(files):
    d = tempfile.mkdtemp(prefix="docs-test-selftest-")
    for name, text in files.items():
        path = os.path.join(d, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
    subprocess.run(["git", "init", "-q"], cwd=d, check=True)
    return d


def docs_test(mode, root, *extra, wait="20"):
    copy = os.path.join(tempfile.mkdtemp(prefix="docs-test-copy-"), "sandcanary")
    p = subprocess.run([sys.executable, SCRIPT, mode, "--root", root, "--setup", "true", *extra],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "DOCS_TEST_SERVER_WAIT": wait, "DOCS_TEST_COPY": copy})
    return p.returncode, p.stdout + p.stderr


GOOD = {
    "README.md": """\
        # t

        ```sh
        echo "samples: ${SAMPLES:-20}"   # runs as written
        test "$SAMPLES" = 2
        ```

        <!-- docs-test: skip (needs a cluster) -->
        ```sh
        kubectl apply -k nowhere
        ```

        <!-- docs-test: expect ^hello docs$ -->
        ```bash
        echo hello docs
        ```

        <!-- docs-test: server http://127.0.0.1:18765/ -->
        ```sh
        python3 -m http.server --bind 127.0.0.1 18765
        ```

        ```yaml
        not: run
        ```

        ```text
        plain text
        ```
        """,
    "crate/README.md": """\
        - a list item with a block:

          ```sh
          pwd | grep -q sandcanary
          ```
        """,
}


class DocsTest(unittest.TestCase):
    def test_runnable_skipped_expect_and_server_blocks_pass(self):
        rc, out = docs_test("run", repo(GOOD))
        self.assertEqual(rc, 0, out)
        self.assertIn("5 shell blocks: 1 expect, 2 run, 1 server, 1 skip", out)
        self.assertIn("skip README.md:9 (needs a cluster)", out)
        self.assertIn("ok   README.md:19 (server", out)

    def test_a_failing_block_is_named_by_file_and_line(self):
        rc, out = docs_test("run", repo({"docs/x.md": "text\n\n```sh\ntrue\nfalse\n```\n"}))
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL docs/x.md:3: ```sh block (run) exited 1", out)
        self.assertIn("--only FILE:LINE", out)

    def test_an_expect_mismatch_fails(self):
        rc, out = docs_test("run", repo({"README.md": "<!-- docs-test: expect PASS -->\n```sh\necho FAIL\n```\n"}))
        self.assertEqual(rc, 1, out)
        self.assertIn("README.md:2: ```sh block (expect) exited 0 but its output does not match /PASS/", out)

    def test_a_server_that_never_answers_fails(self):
        rc, out = docs_test("run", repo({"README.md": "<!-- docs-test: server http://127.0.0.1:18766/ -->\n"
                                                      "```sh\nsleep 600\n```\n"}), wait="3")
        self.assertEqual(rc, 1, out)
        self.assertIn("README.md:2: ```sh block (server) server did not answer http://127.0.0.1:18766/", out)

    def test_unlabeled_fences_and_bad_markers_fail_the_check(self):
        root = repo({"README.md": """\
            ```
            make demo
            ```

            <!-- docs-test: skip -->
            ```sh
            kubectl get pods
            ```

            <!-- docs-test: maybe later -->
            ```sh
            true
            ```

            <!-- docs-test: skip (yaml is never run) -->
            ```yaml
            a: b
            ```
            """})
        rc, out = docs_test("check", root)
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL README.md:1: code fence without a language", out)
        self.assertIn("FAIL README.md:5: docs-test: skip needs a reason", out)
        self.assertIn("FAIL README.md:10: unknown docs-test marker 'maybe later'", out)
        self.assertIn("FAIL README.md:15: docs-test marker above a ```yaml block", out)
        self.assertIn("4 block(s) neither run nor marked correctly", out)

    def test_the_repository_itself_passes_the_check(self):
        rc, out = docs_test("check", os.path.abspath(os.path.join(HERE, "../..")))
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
