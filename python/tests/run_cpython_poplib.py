#!/usr/bin/env python3
"""Runs CPython's own Lib/test/test_poplib.py against pop3.poplib.

The module is substituted before the test module is imported (sys.modules['poplib']), and
the run fails loudly unless every test passed, none was skipped for a missing feature, and
the test module really used pop3.poplib. Exit status 0 only then.

    python tests/run_cpython_poplib.py [-v]
"""
import os
import sys
import unittest

import pop3.poplib

sys.modules["poplib"] = pop3.poplib
if "test.test_poplib" in sys.modules:
    raise SystemExit("test.test_poplib was imported before the substitution")

import test.test_poplib as suite  # noqa: E402 (after the substitution, on purpose)


# pop3.poplib verifies certificates and host names by default (ssl.create_default_context();
# the standard module verifies nothing without a context). The suite's servers present
# certdata/keycert3.pem, issued by the suite's own test CA (certdata/pycacert.pem): trust that
# CA explicitly, for this process only, through OpenSSL's SSL_CERT_FILE, which
# create_default_context() reads. Nothing is verified less.
os.environ["SSL_CERT_FILE"] = suite.CAFILE

# The certificate names DNS:localhost, while the suite names its servers by address
# (DummyPOP3Server.host is getsockname()'s '127.0.0.1'): with host names checked, every
# connection of TestPOP3_SSLClass and TestPOP3_TLSClass, and TestPOP3Class.test_stls, would
# fail with "IP address mismatch" (the standard module never checks). So the servers are
# named by the name their certificate carries, "localhost" (the same loopback server);
# except in TestPOP3Class.test_stls_context, which checks exactly that verifying against the
# address fails and then connects to "localhost" itself.
_BY_ADDRESS = {("TestPOP3Class", "test_stls_context")}
_server_init = suite.DummyPOP3Server.__init__
_current = [None]


def _named_server_init(self, *args, **kwargs):
    _server_init(self, *args, **kwargs)
    if _current[0] not in _BY_ADDRESS:
        self.host = "localhost"


suite.DummyPOP3Server.__init__ = _named_server_init
_run = unittest.TestCase.run


def _run_naming_the_test(self, result=None):
    _current[0] = (type(self).__name__, self._testMethodName)
    return _run(self, result)


unittest.TestCase.run = _run_naming_the_test


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
