//! The network path of the blocking adapter: Happy Eyeballs against a family that never
//! answers, the connect timeout, the source address, scripted proxies that refuse, lie or
//! reject credentials, an IDN host name through a proxy to a certificate for its A-label,
//! and the real proxies (dante, tinyproxy) on the way to the real Dovecot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

use pop3_blocking::pop3_proto::{Awaiting, Expired};
use pop3_blocking::{Connection, Error, Options, Proxy, ProxyError, Secret, Security, TlsOptions};
use pop3_tests::interop::DovecotPeer;
use pop3_tests::network::{
    BlackHole, FakeProxy, PROXY_PASSWORD, PROXY_USER, ProxyStep, RealProxies,
};
use pop3_tests::{CertSpec, Script, ScriptedServer, TestCa};

fn loopback(v6: bool) -> SocketAddr {
    if v6 {
        "[::1]:0".parse().unwrap()
    } else {
        "127.0.0.1:0".parse().unwrap()
    }
}

/// A listener on one family and a black hole on the other: the connect reaches the listener
/// whichever comes first, because the second attempt starts 250 ms after the first.
#[test]
fn happy_eyeballs_reaches_the_family_that_answers_in_either_order() {
    for live_v6 in [true, false] {
        let live = TcpListener::bind(loopback(live_v6)).unwrap();
        let hole = BlackHole::bind(loopback(!live_v6)).unwrap();
        let options = Options::default().connect_timeout(Duration::from_secs(20));
        for order in [
            [hole.addr(), live.local_addr().unwrap()],
            [live.local_addr().unwrap(), hole.addr()],
        ] {
            let stream = pop3_blocking::connect_addrs(order.to_vec(), &options).unwrap();
            assert_eq!(
                stream.peer_addr().unwrap(),
                live.local_addr().unwrap(),
                "{order:?}"
            );
            let (accepted, _) = live.accept().unwrap();
            assert_eq!(accepted.peer_addr().unwrap(), stream.local_addr().unwrap());
        }
    }
}

/// Without a second address, nothing saves the attempt: the connect timeout ends it, not
/// the (much longer) I/O timeout, and the error says it was the connection.
#[test]
fn the_connect_timeout_is_separate_from_the_io_timeout() {
    let hole = BlackHole::bind(loopback(false)).unwrap();
    let options = Options::default()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_millis(800));
    let error =
        Connection::connect("127.0.0.1", hole.addr().port(), Security::None, &options).unwrap_err();
    let Error::Timeout(Expired::Timeout {
        after,
        awaiting: Awaiting::Connect,
    }) = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(after, Duration::from_millis(800));
    let error = pop3_blocking::connect_addrs(vec![hole.addr()], &options).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn the_source_address_is_used_and_restricts_the_family() {
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let source: IpAddr = "127.0.0.2".parse().unwrap();
    let options = Options::default().bind(source);
    let stream = pop3_blocking::connect_addrs(vec![live.local_addr().unwrap()], &options).unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), source);
    let (_, peer) = live.accept().unwrap();
    assert_eq!(peer.ip(), source);
    let v6_only = Options::default().bind("::1".parse().unwrap());
    let error =
        pop3_blocking::connect_addrs(vec![live.local_addr().unwrap()], &v6_only).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
}

fn through(proxy: &FakeProxy, url_start: &str) -> Options {
    let proxy: Proxy = format!("{url_start}{}", proxy.addr()).parse().unwrap();
    Options::default()
        .timeout(Duration::from_secs(10))
        .proxy(proxy)
}

fn socks_connect_name(host: &str, port: u16) -> Vec<u8> {
    let mut request = vec![5, 1, 0, 3, u8::try_from(host.len()).unwrap()];
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    request
}

/// Scripted proxies: a refusal, lies, and rejected credentials each fail the connect with
/// their own `ProxyError`, and nothing reaches a server.
#[test]
fn scripted_proxies_that_refuse_lie_or_reject_credentials() {
    use ProxyStep::{Expect, Send};
    let hello = vec![5, 1, 0];
    let hello_auth = vec![5, 2, 0, 2];
    let auth = [&[1, 4][..], b"user", &[5], b"wrong"].concat();
    let cases: Vec<(&str, Vec<ProxyStep>, ProxyError)> = vec![
        (
            "socks5h://",
            vec![
                Expect(hello.clone()),
                Send(vec![5, 0]),
                Expect(socks_connect_name("pop.example", 110)),
                Send(vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
            ],
            ProxyError::Socks5Refused { code: 5 },
        ),
        (
            "socks5h://",
            vec![Expect(hello.clone()), Send(vec![4, 90])],
            ProxyError::Malformed("not a SOCKS5 method selection"),
        ),
        (
            "socks5h://",
            vec![
                Expect(hello.clone()),
                Send(vec![5, 0]),
                Expect(socks_connect_name("pop.example", 110)),
                Send(vec![5, 0, 0, 1, 127]),
                ProxyStep::Close,
            ],
            ProxyError::Closed,
        ),
        (
            "socks5h://user:wrong@",
            vec![
                Expect(hello_auth),
                Send(vec![5, 2]),
                Expect(auth),
                Send(vec![1, 1]),
            ],
            ProxyError::AuthenticationFailed,
        ),
        (
            "socks5h://",
            vec![Expect(hello), Send(vec![5, 0xFF])],
            ProxyError::NoAcceptableMethod { offered: "none" },
        ),
        (
            "http://",
            vec![
                Expect(
                    b"CONNECT pop.example:110 HTTP/1.1\r\nHost: pop.example:110\r\n\r\n".to_vec(),
                ),
                Send(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n".to_vec()),
            ],
            ProxyError::AuthenticationRequired,
        ),
        (
            "http://",
            vec![
                Expect(
                    b"CONNECT pop.example:110 HTTP/1.1\r\nHost: pop.example:110\r\n\r\n".to_vec(),
                ),
                Send(b"HTTP/1.1 403 Forbidden\r\n\r\n".to_vec()),
            ],
            ProxyError::HttpRefused {
                status: 403,
                reason: "Forbidden".to_owned(),
            },
        ),
        (
            "http://",
            vec![
                Expect(
                    b"CONNECT pop.example:110 HTTP/1.1\r\nHost: pop.example:110\r\n\r\n".to_vec(),
                ),
                Send(b"+OK I am no proxy\r\n\r\n".to_vec()),
            ],
            ProxyError::Malformed("the reply is not HTTP/1.x"),
        ),
    ];
    for (scheme, steps, expected) in cases {
        let proxy = FakeProxy::start(steps).unwrap();
        let options = through(&proxy, scheme);
        let error = Connection::connect("pop.example", 110, Security::None, &options).unwrap_err();
        assert!(
            matches!(&error, Error::Proxy(e) if *e == expected),
            "{scheme}: {error:?}"
        );
        drop(proxy.finish().unwrap());
    }
}

/// A Unicode host name goes to the proxy in A-labels, and TLS verifies the certificate
/// against the A-label (the certificate names only `xn--bcher-kva.example`).
#[test]
fn an_idn_host_goes_to_the_proxy_and_to_tls_as_a_labels() {
    let a_label = "xn--bcher-kva.example";
    let ca = TestCa::generate_with(&CertSpec::new().names(&[a_label])).unwrap();
    let script = Script::parse(
        r"
        S: +OK tls
        C: CAPA
        S-RAW: +OK\r\nUSER\r\n.\r\n
        C: QUIT
        S: +OK bye
        ",
    )
    .unwrap();
    let server = ScriptedServer::builder(script)
        .tls_config(ca.server_config())
        .implicit_tls()
        .start()
        .unwrap();
    let proxy = FakeProxy::start(vec![
        ProxyStep::Expect(vec![5, 1, 0]),
        ProxyStep::Send(vec![5, 0]),
        ProxyStep::Expect(socks_connect_name(a_label, 995)),
        ProxyStep::Send(vec![5, 0, 0, 1, 127, 0, 0, 1, 0, 0]),
        ProxyStep::Tunnel(server.addr()),
    ])
    .unwrap();
    let options = through(&proxy, "socks5h://").tls(
        TlsOptions::default()
            .add_ca_pem(ca.certificate_pem().as_bytes())
            .unwrap(),
    );
    let pop = Connection::connect("Bücher.example", 995, Security::Implicit, &options).unwrap();
    assert_eq!(pop.host(), Some(a_label));
    assert_eq!(pop.greeting().text, "tls");
    pop.quit().unwrap();
    server.finish().unwrap().assert_complete();
    proxy.finish().unwrap();
}

/// dante and tinyproxy, with and without credentials, to Dovecot over STLS and POP3S.
#[test]
fn real_proxies_reach_dovecot() {
    let (Some(proxies), Some(dovecot)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let tls = TlsOptions::default()
        .add_ca_file(dovecot.certificate_path())
        .unwrap();
    let auth = format!("{PROXY_USER}:{PROXY_PASSWORD}@");
    let urls = [
        format!("socks5://{}", proxies.socks),
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
            let options = Options::default()
                .timeout(Duration::from_secs(20))
                .tls(tls.clone())
                .proxy(url.parse().unwrap());
            let mut pop = Connection::connect("localhost", addr.port(), security, &options)
                .unwrap_or_else(|e| panic!("{url} {security:?}: {e}"));
            pop.login("bob", Secret::from("secret-b")).unwrap();
            assert!(pop.stat().unwrap().count > 0, "{url}");
            pop.quit().unwrap();
        }
    }
}

/// The real proxies' own refusals: wrong or missing credentials.
#[test]
fn real_proxies_reject_bad_credentials() {
    let (Some(proxies), Some(dovecot)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let cases = [
        (
            format!("socks5h://{PROXY_USER}:wrong@{}", proxies.socks_auth),
            ProxyError::AuthenticationFailed,
        ),
        (
            format!("socks5h://{}", proxies.socks_auth),
            ProxyError::NoAcceptableMethod { offered: "none" },
        ),
        (
            format!("http://{PROXY_USER}:wrong@{}", proxies.http_auth),
            ProxyError::AuthenticationFailed,
        ),
        (
            format!("http://{}", proxies.http_auth),
            ProxyError::AuthenticationRequired,
        ),
    ];
    for (url, expected) in cases {
        let options = Options::default()
            .timeout(Duration::from_secs(20))
            .proxy(url.parse().unwrap());
        let error =
            Connection::connect("localhost", dovecot.addr().port(), Security::None, &options)
                .unwrap_err();
        assert!(
            matches!(&error, Error::Proxy(e) if *e == expected),
            "{url}: {error:?}"
        );
    }
}

/// The proxy's reply is read to its last byte and no further: a server greeting that
/// arrives in the same segment as the proxy's reply is the session's.
#[test]
fn the_greeting_right_behind_the_proxy_reply_is_not_lost() {
    let proxy = FakeProxy::start(vec![
        ProxyStep::Expect(
            b"CONNECT h.example:110 HTTP/1.1\r\nHost: h.example:110\r\n\r\n".to_vec(),
        ),
        ProxyStep::Send(b"HTTP/1.1 200 OK\r\n\r\n+OK hello\r\n".to_vec()),
        ProxyStep::Expect(b"CAPA\r\n".to_vec()),
        ProxyStep::Send(b"+OK\r\nUSER\r\n.\r\n".to_vec()),
    ])
    .unwrap();
    let options = through(&proxy, "http://");
    let pop = Connection::connect("h.example", 110, Security::None, &options).unwrap();
    assert_eq!(pop.greeting().text, "hello");
    drop(pop);
    let received = proxy.finish().unwrap();
    assert_eq!(
        received,
        b"CONNECT h.example:110 HTTP/1.1\r\nHost: h.example:110\r\n\r\nCAPA\r\n"
    );
}

/// The real proxies refuse what their rules forbid: dante a destination outside 127.0.0.0/8
/// (SOCKS5 reply 2, "not allowed by ruleset"), tinyproxy a CONNECT to a port it does not
/// allow (403). And a proxy that is not there is an I/O error that names it.
#[test]
fn real_proxies_refuse_what_their_rules_forbid() {
    let Some(proxies) = RealProxies::from_env() else {
        return;
    };
    let options = |url: String| {
        Options::default()
            .timeout(Duration::from_secs(20))
            .proxy(url.parse().unwrap())
    };
    let error = Connection::connect(
        "192.0.2.1",
        110,
        Security::None,
        &options(format!("socks5://{}", proxies.socks)),
    )
    .unwrap_err();
    assert!(
        matches!(&error, Error::Proxy(ProxyError::Socks5Refused { code: 2 })),
        "{error:?}"
    );
    let error = Connection::connect(
        "127.0.0.1",
        25,
        Security::None,
        &options(format!("http://{}", proxies.http)),
    )
    .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Proxy(ProxyError::HttpRefused { status: 403, .. })
        ),
        "{error:?}"
    );

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = Connection::connect(
        "pop.example",
        995,
        Security::Implicit,
        &options(format!("socks5h://{closed}")),
    )
    .unwrap_err();
    assert!(
        matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&format!("proxy socks5h://{closed}")),
        "{error}"
    );
}
