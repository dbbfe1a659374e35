//! The network suite: the adapters' network path, through the same [`Adapter`] as the
//! [`suite`](crate::suite) module. Happy Eyeballs against a family that never answers (in
//! either order), the connect timeout, the source address, scripted proxies that refuse, lie or
//! reject credentials, an IDN host name through a proxy to a certificate for its A-label, a
//! greeting in the same segment as the proxy's reply, and the real proxies (dante, tinyproxy,
//! see [`RealProxies`]) on the way to the real Dovecot ([`DovecotPeer`]). Instantiate it with
//! one line per adapter:
//!
//! ```ignore
//! pop3_tests::network_suite!(Blocking);
//! ```
//!
//! It expands into one `#[test]` per function of this module, all named `network_*`.
//!
//! Proxy errors are compared by their `Debug` form ([`Failure::Proxy`]): the kit does not
//! depend on `pop3-tls`, whose tests depend on the kit.
#![allow(clippy::unwrap_used)]

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

use pop3_proto::{Awaiting, Expired};

use crate::interop::DovecotPeer;
use crate::network::{BlackHole, FakeProxy, PROXY_PASSWORD, PROXY_USER, ProxyStep, RealProxies};
use crate::suite::{Adapter, ConnectOptions, Failure, Security};
use crate::{CertSpec, Script, ScriptedServer, TestCa};

/// Expands into one `#[test]` per function of [`network_suite`](mod@crate::network_suite) for the
/// given [`Adapter`] type.
#[macro_export]
macro_rules! network_suite {
    ($adapter:ty) => {
        $crate::__suite_tests!(network_suite, $adapter;
            network_happy_eyeballs_reaches_the_family_that_answers_in_either_order,
            network_the_connect_timeout_is_separate_from_the_io_timeout,
            network_the_source_address_is_used_and_restricts_the_family,
            network_scripted_proxies_that_refuse_lie_or_reject_credentials,
            network_an_idn_host_goes_to_the_proxy_and_to_tls_as_a_labels,
            network_the_greeting_right_behind_the_proxy_reply_is_not_lost,
            network_real_proxies_reach_dovecot,
            network_real_proxies_reject_bad_credentials,
            network_real_proxies_refuse_what_their_rules_forbid,
        );
    };
}

fn loopback(v6: bool) -> SocketAddr {
    if v6 {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    }
}

/// A listener on one family and a black hole on the other: the connect reaches the listener
/// whichever comes first, because the second attempt starts 250 ms after the first.
pub fn network_happy_eyeballs_reaches_the_family_that_answers_in_either_order<A: Adapter>() {
    for live_v6 in [true, false] {
        let live = TcpListener::bind(loopback(live_v6)).unwrap();
        let live_addr = live.local_addr().unwrap();
        let hole = BlackHole::bind(loopback(!live_v6)).unwrap();
        let options = ConnectOptions {
            connect_timeout: Some(Duration::from_secs(20)),
            ..ConnectOptions::default()
        };
        for order in [[hole.addr(), live_addr], [live_addr, hole.addr()]] {
            let (local, peer) = A::connect_addrs(order.to_vec(), &options).unwrap();
            assert_eq!(peer, live_addr, "{order:?}");
            let (_, accepted) = live.accept().unwrap();
            assert_eq!(accepted, local);
        }
    }
}

/// Without a second address, nothing saves the attempt: the connect timeout ends it, not
/// the (much longer) I/O timeout, and the error says it was the connection. On IPv4 without
/// TLS and on IPv6 with implicit TLS; `connect_addrs` alone times out too.
pub fn network_the_connect_timeout_is_separate_from_the_io_timeout<A: Adapter>() {
    for (v6, security, millis) in [
        (false, Security::None, 800),
        (true, Security::Implicit, 700),
    ] {
        let hole = BlackHole::bind(loopback(v6)).unwrap();
        let options = ConnectOptions {
            timeout: Duration::from_secs(120),
            connect_timeout: Some(Duration::from_millis(millis)),
            ..ConnectOptions::default()
        };
        let host = if v6 { "::1" } else { "127.0.0.1" };
        let error = A::connect(host, hole.addr().port(), security, &options).unwrap_err();
        let Failure::Timeout(Expired::Timeout {
            after,
            awaiting: Awaiting::Connect,
        }) = error
        else {
            panic!("{error:?}");
        };
        assert_eq!(after, Duration::from_millis(millis));
        let error = A::connect_addrs(vec![hole.addr()], &options).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut);
    }
}

/// The source address is the connection's, and an IPv6 source cannot reach an IPv4 address.
pub fn network_the_source_address_is_used_and_restricts_the_family<A: Adapter>() {
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    for source in ["127.0.0.2", "127.0.0.3"] {
        let source: IpAddr = source.parse().unwrap();
        let options = ConnectOptions {
            bind: Some(source),
            ..ConnectOptions::default()
        };
        let (local, _) = A::connect_addrs(vec![live.local_addr().unwrap()], &options).unwrap();
        assert_eq!(local.ip(), source);
        let (_, peer) = live.accept().unwrap();
        assert_eq!(peer.ip(), source);
    }
    let v6_only = ConnectOptions {
        bind: Some("::1".parse().unwrap()),
        ..ConnectOptions::default()
    };
    let error = A::connect_addrs(vec![live.local_addr().unwrap()], &v6_only).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

/// Options through `proxy`, its URL starting with `url_start` (scheme and credentials).
fn through(proxy: &FakeProxy, url_start: &str) -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_secs(10),
        proxy: Some(format!("{url_start}{}", proxy.addr())),
        ..ConnectOptions::default()
    }
}

/// Options through the proxy at `url`, to a real server.
fn through_url(url: &str) -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_secs(20),
        proxy: Some(url.to_owned()),
        ..ConnectOptions::default()
    }
}

/// A SOCKS5 CONNECT request for a host name (address type 3).
fn socks_connect_name(host: &str, port: u16) -> Vec<u8> {
    let mut request = vec![5, 1, 0, 3, u8::try_from(host.len()).unwrap()];
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    request
}

#[track_caller]
fn assert_proxy_error<T: std::fmt::Debug>(
    result: Result<T, Failure>,
    expected: &str,
    context: &str,
) {
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Failure::Proxy(e) if e == expected),
        "{context}: {error:?}, expected {expected}"
    );
}

/// One scripted proxy case: the URL start, where to, the proxy's steps, the error expected
/// (`Debug` form of the `ProxyError`).
type ProxyCase = (
    &'static str,
    &'static str,
    u16,
    Security,
    Vec<ProxyStep>,
    String,
);

/// Scripted proxies: a refusal, lies, and rejected credentials each fail the connect with
/// their own `ProxyError`, and nothing reaches a server.
pub fn network_scripted_proxies_that_refuse_lie_or_reject_credentials<A: Adapter>() {
    use ProxyStep::{Close, Expect, Send};
    let hello = vec![5, 1, 0];
    let hello_auth = vec![5, 2, 0, 2];
    let auth = [&[1, 4][..], b"user", &[5], b"wrong"].concat();
    let connect_110 = b"CONNECT pop.example:110 HTTP/1.1\r\nHost: pop.example:110\r\n\r\n".to_vec();
    let connect_995 =
        b"CONNECT mail.example:995 HTTP/1.1\r\nHost: mail.example:995\r\n\r\n".to_vec();
    let plain = |host| (host, 110, Security::None);
    let tls = |host| (host, 995, Security::Implicit);
    let (p, m) = ("pop.example", "mail.example");
    let cases: Vec<ProxyCase> = [
        ("socks5h://", plain(p), vec![Expect(hello.clone()), Send(vec![5, 0]), Expect(socks_connect_name(p, 110)), Send(vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0])], "Socks5Refused { code: 5 }"),
        ("socks5h://", plain(p), vec![Expect(hello.clone()), Send(vec![4, 90])], r#"Malformed("not a SOCKS5 method selection")"#),
        ("socks5h://", plain(p), vec![Expect(hello.clone()), Send(vec![5, 0]), Expect(socks_connect_name(p, 110)), Send(vec![5, 0, 0, 1, 127]), Close], "Closed"),
        ("socks5h://user:wrong@", plain(p), vec![Expect(hello_auth), Send(vec![5, 2]), Expect(auth), Send(vec![1, 1])], "AuthenticationFailed"),
        ("socks5h://", plain(p), vec![Expect(hello.clone()), Send(vec![5, 0xFF])], r#"NoAcceptableMethod { offered: "none" }"#),
        ("http://", plain(p), vec![Expect(connect_110.clone()), Send(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n".to_vec())], "AuthenticationRequired"),
        ("http://", plain(p), vec![Expect(connect_110.clone()), Send(b"HTTP/1.1 403 Forbidden\r\n\r\n".to_vec())], r#"HttpRefused { status: 403, reason: "Forbidden" }"#),
        ("http://", plain(p), vec![Expect(connect_110), Send(b"+OK I am no proxy\r\n\r\n".to_vec())], r#"Malformed("the reply is not HTTP/1.x")"#),
        ("socks5h://", tls(m), vec![Expect(hello.clone()), Send(vec![5, 0]), Expect(socks_connect_name(m, 995)), Send(vec![5, 4, 0, 1, 0, 0, 0, 0, 0, 0])], "Socks5Refused { code: 4 }"),
        ("socks5h://", tls(m), vec![Expect(hello.clone()), Send(vec![5, 0]), Expect(socks_connect_name(m, 995)), Send(vec![5, 0, 1, 1])], r#"Malformed("the reserved byte of the reply is set")"#),
        ("socks5h://", tls(m), vec![Expect(hello.clone()), Send(vec![5, 2])], r#"Malformed("a method the client did not offer")"#),
        ("socks5h://", tls(m), vec![Expect(hello), Close], "Closed"),
        ("socks5h://me:pw@", tls(m), vec![Expect(vec![5, 2, 0, 2]), Send(vec![5, 2]), Expect([&[1, 2][..], b"me", &[2], b"pw"].concat()), Send(vec![1, 0x10])], "AuthenticationFailed"),
        ("http://me:pw@", tls(m), vec![Expect(b"CONNECT mail.example:995 HTTP/1.1\r\nHost: mail.example:995\r\nProxy-Authorization: Basic bWU6cHc=\r\n\r\n".to_vec()), Send(b"HTTP/1.1 407 No\r\n\r\n".to_vec())], "AuthenticationFailed"),
        ("http://", tls(m), vec![Expect(connect_995.clone()), Send(b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec())], r#"HttpRefused { status: 503, reason: "Service Unavailable" }"#),
        ("http://", tls(m), vec![Expect(connect_995), Send(b"HTTP/1.1 OK 200\r\n\r\n".to_vec())], r#"Malformed("the status line has no 3-digit status")"#),
    ]
    .into_iter()
    .map(|(scheme, (host, port, security), steps, expected)| {
        (scheme, host, port, security, steps, expected.to_owned())
    })
    .collect();
    for (scheme, host, port, security, steps, expected) in cases {
        let proxy = FakeProxy::start(steps).unwrap();
        let result = A::connect(host, port, security, &through(&proxy, scheme));
        assert_proxy_error(result, &expected, scheme);
        proxy.finish().unwrap();
    }
}

/// One IDN case: a server with a certificate for `a_label` only, playing `script` (with
/// implicit TLS or not), behind a scripted proxy that expects `handshake` and then tunnels
/// to it; the client connects to `host` (a U-label) through `scheme`. Checks the session's
/// host name, and that the script and the proxy's steps completed.
fn idn_session<A: Adapter>(
    a_label: &str,
    script: &str,
    implicit_tls: bool,
    handshake: Vec<ProxyStep>,
    scheme: &str,
    (host, port, security): (&str, u16, Security),
    session: impl FnOnce(&A),
) {
    let ca = TestCa::generate_with(&CertSpec::new().names(&[a_label])).unwrap();
    let mut builder = ScriptedServer::builder(Script::parse(script).unwrap());
    builder = builder.tls_config(ca.server_config());
    if implicit_tls {
        builder = builder.implicit_tls();
    }
    let server = builder.start().unwrap();
    let mut steps = handshake;
    steps.push(ProxyStep::Tunnel(server.addr()));
    let proxy = FakeProxy::start(steps).unwrap();
    let options = ConnectOptions {
        ca_pem: Some(ca.certificate_pem().to_owned()),
        ..through(&proxy, scheme)
    };
    let pop = A::connect(host, port, security, &options).unwrap();
    assert_eq!(pop.host().as_deref(), Some(a_label));
    session(&pop);
    pop.quit().unwrap();
    server.finish().unwrap().assert_complete();
    proxy.finish().unwrap();
}

/// A Unicode host name goes to the proxy in A-labels, and TLS verifies the certificate
/// against the A-label (the certificate names only the A-label): through SOCKS5 with implicit
/// TLS, and through HTTP CONNECT with STLS.
pub fn network_an_idn_host_goes_to_the_proxy_and_to_tls_as_a_labels<A: Adapter>() {
    let a_label = "xn--bcher-kva.example";
    idn_session::<A>(
        a_label,
        r"
        S: +OK tls
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        true,
        vec![
            ProxyStep::Expect(vec![5, 1, 0]),
            ProxyStep::Send(vec![5, 0]),
            ProxyStep::Expect(socks_connect_name(a_label, 995)),
            ProxyStep::Send(vec![5, 0, 0, 1, 127, 0, 0, 1, 0, 0]),
        ],
        "socks5h://",
        ("Bücher.example", 995, Security::Implicit),
        |pop| assert_eq!(pop.greeting().text, "tls"),
    );

    let a_label = "xn--mnchen-3ya.example";
    idn_session::<A>(
        a_label,
        r"
        S: +OK
        C: CAPA
        S-RAW: +OK\r\nSTLS\r\n.\r\n
        C: STLS
        S: +OK go ahead
        STARTTLS
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
        false,
        vec![
            ProxyStep::Expect(
                format!("CONNECT {a_label}:110 HTTP/1.1\r\nHost: {a_label}:110\r\n\r\n")
                    .into_bytes(),
            ),
            ProxyStep::Send(b"HTTP/1.0 200 Connection established\r\n\r\n".to_vec()),
        ],
        "http://",
        ("München.example", 110, Security::StartTls),
        |pop| assert!(pop.is_tls()),
    );
}

/// The proxy's reply is read to its last byte and no further: a server greeting that
/// arrives in the same segment as the proxy's reply is the session's.
pub fn network_the_greeting_right_behind_the_proxy_reply_is_not_lost<A: Adapter>() {
    let proxy = FakeProxy::start(vec![
        ProxyStep::Expect(
            b"CONNECT h.example:110 HTTP/1.1\r\nHost: h.example:110\r\n\r\n".to_vec(),
        ),
        ProxyStep::Send(b"HTTP/1.1 200 OK\r\n\r\n+OK hello\r\n".to_vec()),
        ProxyStep::Expect(b"CAPA\r\n".to_vec()),
        ProxyStep::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
    ])
    .unwrap();
    let pop = A::connect(
        "h.example",
        110,
        Security::None,
        &through(&proxy, "http://"),
    )
    .unwrap();
    assert_eq!(pop.greeting().text, "hello");
    drop(pop);
    let received = proxy.finish().unwrap();
    assert_eq!(
        received,
        b"CONNECT h.example:110 HTTP/1.1\r\nHost: h.example:110\r\n\r\nCAPA\r\n"
    );
}

/// dante and tinyproxy, with and without credentials, with local and remote name resolution,
/// to Dovecot over STLS and POP3S.
pub fn network_real_proxies_reach_dovecot<A: Adapter>() {
    let (Some(proxies), Some(dovecot)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let ca_file = Some(dovecot.certificate_path().to_owned());
    let auth = format!("{PROXY_USER}:{PROXY_PASSWORD}@");
    let urls = [
        format!("socks5://{}", proxies.socks),
        format!("socks5://{auth}{}", proxies.socks_auth),
        format!("socks5h://{}", proxies.socks),
        format!("socks5h://{auth}{}", proxies.socks_auth),
        format!("http://{}", proxies.http),
        format!("http://{auth}{}", proxies.http_auth),
    ];
    for url in &urls {
        for (security, addr) in [
            (Security::StartTls, dovecot.addr()),
            (Security::Implicit, dovecot.tls_addr()),
        ] {
            let options = ConnectOptions {
                ca_file: ca_file.clone(),
                ..through_url(url)
            };
            let mut pop = A::connect("localhost", addr.port(), security, &options)
                .unwrap_or_else(|e| panic!("{url} {security:?}: {e:?}"));
            pop.login("bob", "secret-b").unwrap();
            assert!(pop.stat().unwrap().count > 0, "{url}");
            pop.quit().unwrap();
        }
    }
}

/// The real proxies' own refusals: wrong or missing credentials (a wrong password, an unknown
/// user), on the way to Dovecot's POP3 and POP3S ports.
pub fn network_real_proxies_reject_bad_credentials<A: Adapter>() {
    let (Some(proxies), Some(dovecot)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let failed = "AuthenticationFailed";
    let cases = [
        (
            format!("socks5h://{PROXY_USER}:wrong@{}", proxies.socks_auth),
            failed,
        ),
        (
            format!(
                "socks5://nobody-here:{PROXY_PASSWORD}@{}",
                proxies.socks_auth
            ),
            failed,
        ),
        (
            format!("socks5h://{}", proxies.socks_auth),
            r#"NoAcceptableMethod { offered: "none" }"#,
        ),
        (
            format!("socks5://{}", proxies.socks_auth),
            r#"NoAcceptableMethod { offered: "none" }"#,
        ),
        (
            format!("http://{PROXY_USER}:wrong@{}", proxies.http_auth),
            failed,
        ),
        (
            format!("http://{PROXY_USER}:{PROXY_USER}@{}", proxies.http_auth),
            failed,
        ),
        (
            format!("http://{}", proxies.http_auth),
            "AuthenticationRequired",
        ),
    ];
    for (url, expected) in cases {
        for (security, addr) in [
            (Security::None, dovecot.addr()),
            (Security::Implicit, dovecot.tls_addr()),
        ] {
            let result = A::connect("localhost", addr.port(), security, &through_url(&url));
            assert_proxy_error(result, expected, &format!("{url} {security:?}"));
        }
    }
}

/// The real proxies refuse what their rules forbid: dante a destination outside 127.0.0.0/8
/// (SOCKS5 reply 2, "not allowed by ruleset"), tinyproxy a CONNECT to a port it does not
/// allow (403). And a proxy that is not there is an I/O error that names it.
pub fn network_real_proxies_refuse_what_their_rules_forbid<A: Adapter>() {
    let Some(proxies) = RealProxies::from_env() else {
        return;
    };
    for (url, host, port, security) in [
        (
            format!("socks5://{}", proxies.socks),
            "192.0.2.1",
            110,
            Security::None,
        ),
        (
            format!("socks5h://{}", proxies.socks),
            "192.0.2.7",
            995,
            Security::Implicit,
        ),
    ] {
        let result = A::connect(host, port, security, &through_url(&url));
        assert_proxy_error(result, "Socks5Refused { code: 2 }", &url);
    }
    for (host, port) in [("127.0.0.1", 25), ("localhost", 22)] {
        let url = format!("http://{}", proxies.http);
        let error = A::connect(host, port, Security::None, &through_url(&url)).unwrap_err();
        assert!(
            matches!(&error, Failure::Proxy(e) if e.starts_with("HttpRefused { status: 403,")),
            "{host}:{port}: {error:?}"
        );
    }

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("socks5h://{closed}");
    let error = A::connect("pop.example", 995, Security::Implicit, &through_url(&url)).unwrap_err();
    let Failure::Io(kind, message) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*kind, ErrorKind::ConnectionRefused);
    assert!(message.contains(&format!("proxy {url}")), "{message}");
}
