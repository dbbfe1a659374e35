"""The pop3 package against the private Dovecot (tests/README.md's interop setup).

POP3_DOVECOT_ADDR / POP3_DOVECOT_TLS_ADDR / POP3_DOVECOT_DIR locate it; POP3_INTEROP=required
makes an unreachable Dovecot a failure, ``off`` skips, anything else runs when reachable.
Read-only: nothing is deleted (no QUIT after DELE; mailboxes are shared with other suites).
"""

import asyncio
import io
import os
import socket
import ssl

import pytest

import pop3
import pop3.poplib

MODE = os.environ.get("POP3_INTEROP", "auto")
ADDR = os.environ.get("POP3_DOVECOT_ADDR", "127.0.0.1:11110")
TLS_ADDR = os.environ.get("POP3_DOVECOT_TLS_ADDR", "127.0.0.1:11995")
RUN_DIR = os.environ.get("POP3_DOVECOT_DIR", "/tmp/pop3-run/dovecot")


def split(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def _reachable():
    try:
        socket.create_connection(split(ADDR), 3).close()
        socket.create_connection(split(TLS_ADDR), 3).close()
        return None
    except OSError as e:
        return f"Dovecot at {ADDR}/{TLS_ADDR} is unreachable: {e}"


@pytest.fixture(scope="module", autouse=True)
def dovecot():
    if MODE == "off":
        pytest.skip("POP3_INTEROP=off")
    problem = _reachable()
    if problem:
        if MODE == "required":
            pytest.fail(f"POP3_INTEROP=required: {problem}")
        pytest.skip(problem)


@pytest.fixture
def ctx():
    return ssl.create_default_context(cafile=os.path.join(RUN_DIR, "tls", "cert.pem"))


def test_implicit_tls_scram_and_listings(ctx):
    host, port = split(TLS_ADDR)
    with pop3.Client(host, port, ssl_context=ctx, timeout=30) as c:
        assert c.is_tls
        assert "SCRAM-SHA-256" in c.capabilities.sasl
        assert c.login("bob", "secret-b") == "SCRAM-SHA-256"
        count, size = c.stat()
        assert count >= 1
        sizes = c.list()
        assert len(sizes) == count
        uids = c.uidl()
        assert sorted(uids) == sorted(sizes)


def test_starttls_every_mechanism_and_the_same_bytes_as_poplib(ctx):
    host, port = split(ADDR)
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
        with pop3.Client(host, port, tls="starttls", ssl_context=ctx, timeout=30) as c:
            c.auth(mech, "bob", "secret-b")
            assert c.phase == "transaction"
    with pop3.Client(host, port, tls="starttls", ssl_context=ctx, timeout=30) as c:
        c.login("bob", "secret-b")
        first = c.retr(1)
        streamed = io.BytesIO()
        assert c.retr(1, streamed) == len(first)
        assert streamed.getvalue() == first
    p = pop3.poplib.POP3(host, port, timeout=30)
    assert p.stls(context=ctx).startswith(b"+OK")
    p.user("bob")
    p.pass_("secret-b")
    resp, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == first
    assert octets == len(first)
    p.quit()


def test_wrong_password_is_a_server_error_with_the_auth_code(ctx):
    host, port = split(TLS_ADDR)
    with pop3.Client(host, port, ssl_context=ctx, timeout=30) as c:
        with pytest.raises(pop3.ServerError) as e:
            c.auth("PLAIN", "bob", "wrong")
        assert e.value.code == "AUTH"


def test_retr_many_pipelined_matches_retr(ctx):
    host, port = split(TLS_ADDR)
    with pop3.Client(host, port, ssl_context=ctx, timeout=60) as c:
        c.login("alice", "secret-a")
        count, _ = c.stat()
        msgs = list(range(1, min(count, 200) + 1))
        many = c.retr_many(msgs)
        assert all(isinstance(v, bytes) for v in many.values())
        for m in (1, msgs[-1]):
            assert many[m] == c.retr(m)


def test_poplib_ssl_with_context(ctx):
    host, port = split(TLS_ADDR)
    p = pop3.poplib.POP3_SSL(host, port, context=ctx, timeout=30)
    assert isinstance(p.sock, ssl.SSLSocket)
    p.user("alice")
    p.pass_("secret-a")
    count, size = p.stat()
    resp, listing, _ = p.list()
    assert len(listing) == count
    assert "UIDL" in p.capa()
    p.quit()


def test_async_client(ctx):
    host, port = split(ADDR)

    async def run():
        c = await pop3.AsyncClient.connect(host, port, tls="starttls", ssl_context=ctx, timeout=30)
        async with c:
            assert c.is_tls
            await c.login("alice", "secret-a")
            count, _ = await c.stat()
            got = await c.retr_many(range(1, 51))
            assert len(got) == 50
            assert got[7] == await c.retr(7)

    asyncio.run(run())


def test_poplib_answers_as_the_standard_module(ctx):
    import poplib as std

    host, port = split(TLS_ADDR)
    answers = []
    for module in (std, pop3.poplib):
        p = module.POP3_SSL(host, port, context=ctx, timeout=30)
        p.user("alice")
        p.pass_("secret-a")
        answers.append(
            [p.stat(), p.list(), p.list(3), p.uidl(), p.uidl(3), p.retr(2), p.top(2, 3), p.noop(), p.rset(), p.capa()]
        )
        p.quit()
    assert answers[0] == answers[1]


def test_poplib_takes_lines_the_standard_module_refuses(ctx):
    # Message 1 of alice has lines over poplib's 2048-octet _MAXLINE: the standard module
    # raises "line too long" mid-message; ours returns it (status lines keep the limit).
    import poplib as std

    host, port = split(TLS_ADDR)
    p = std.POP3_SSL(host, port, context=ctx, timeout=30)
    p.user("alice")
    p.pass_("secret-a")
    with pytest.raises(std.error_proto, match="line too long"):
        p.retr(1)
    p.close()
    with pop3.Client(host, port, ssl_context=ctx, timeout=30) as c:
        c.login("alice", "secret-a")
        expected = c.retr(1)
    p = pop3.poplib.POP3_SSL(host, port, context=ctx, timeout=30)
    p.user("alice")
    p.pass_("secret-a")
    resp, lines, octets = p.retr(1)
    assert max(map(len, lines)) > pop3.poplib._MAXLINE
    assert b"\r\n".join(lines) + b"\r\n" == expected and octets == len(expected)
    p.quit()


def test_poplib_verifies_certificates_by_default():
    # Dovecot's certificate is self-signed: without a context, pop3.poplib uses
    # ssl.create_default_context() (the system's CAs, host names checked) and refuses it,
    # where the standard module accepts anything. With the certificate trusted, SSL_CERT_FILE
    # being what create_default_context() reads, the same calls succeed.
    host, port = split(TLS_ADDR)
    with pytest.raises(ssl.SSLCertVerificationError):
        pop3.poplib.POP3_SSL(host, port, timeout=30)
    p = pop3.poplib.POP3(*split(ADDR), timeout=30)
    with pytest.raises(ssl.SSLCertVerificationError):
        p.stls()
    p.close()
    old = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = os.path.join(RUN_DIR, "tls", "cert.pem")
    try:
        p = pop3.poplib.POP3_SSL(host, port, timeout=30)
        assert p.sock.context.verify_mode == ssl.CERT_REQUIRED and p.sock.context.check_hostname
        assert "UIDL" in p.capa()
        p.quit()
        p = pop3.poplib.POP3(*split(ADDR), timeout=30)
        assert p.stls().startswith(b"+OK")
        assert p.sock.context.check_hostname
        p.quit()
    finally:
        if old is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = old
