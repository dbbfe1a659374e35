#!/usr/bin/env python3
"""Runs CPython's own Lib/test/test_poplib.py against pop3.poplib.

The module is substituted before the test module is imported (sys.modules['poplib']), and
the run fails loudly unless every test passed, none was skipped for a missing feature, and
the test module really used pop3.poplib. Exit status 0 only then.

    python tests/run_cpython_poplib.py [-v]
"""
import sys
import unittest

import pop3.poplib

sys.modules["poplib"] = pop3.poplib
if "test.test_poplib" in sys.modules:
    raise SystemExit("test.test_poplib was imported before the substitution")

import test.test_poplib as suite  # noqa: E402 (after the substitution, on purpose)


def main() -> int:
    assert suite.poplib is pop3.poplib, f"the suite uses {suite.poplib!r}, not pop3.poplib"
    assert suite.poplib.POP3.__module__ == "pop3.poplib"
    assert suite.SUPPORTS_SSL, "the suite would skip its TLS tests"
    verbosity = 2 if "-v" in sys.argv else 1
    tests = unittest.defaultTestLoader.loadTestsFromModule(suite)
    result = unittest.TextTestRunner(verbosity=verbosity).run(tests)
    # setUpModule/tearDownModule run through the suite object; count what really ran.
    if not result.wasSuccessful():
        print("FAILED: CPython's test_poplib against pop3.poplib", file=sys.stderr)
        return 1
    if result.skipped:
        print(f"FAILED: {len(result.skipped)} tests were skipped: {result.skipped}", file=sys.stderr)
        return 1
    if result.testsRun < 60:
        print(f"FAILED: only {result.testsRun} tests ran", file=sys.stderr)
        return 1
    print(f"OK: {result.testsRun} tests of CPython's test_poplib ({suite.__file__}) passed against pop3.poplib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
