//! The network path of the Tokio adapter: Happy Eyeballs against a family that never
//! answers (in either order), the connect timeout, the source address, scripted proxies that
//! refuse, lie or reject credentials, an IDN host through a proxy to a certificate for its
//! A-label, and the real proxies (dante, tinyproxy) on the way to the real Dovecot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pop3_async::pop3_proto::{Awaiting, Expired};
use pop3_async::{Connection, Error, Options, Proxy, ProxyError, Secret, Security, TlsOptions};
use pop3_tests::interop::DovecotPeer;
use pop3_tests::network::{
    BlackHole, FakeProxy, PROXY_PASSWORD, PROXY_USER, ProxyStep, RealProxies,
};
use pop3_tests::{CertSpec, Script, ScriptedServer, TestCa};
use tokio::net::TcpListener;

fn any_port(v6: bool) -> SocketAddr {
    SocketAddr::new(
        if v6 {
            "::1".parse().unwrap()
        } else {
            "127.0.0.1".parse().unwrap()
        },
        0,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_eyeballs_reaches_the_family_that_answers_in_either_order() {
    for live_v6 in [false, true] {
        let live = TcpListener::bind(any_port(live_v6)).await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let hole = BlackHole::bind(any_port(!live_v6)).unwrap();
        let options = Options::default().connect_timeout(Duration::from_secs(20));
        for order in [vec![hole.addr(), live_addr], vec![live_addr, hole.addr()]] {
            let stream = pop3_async::connect_addrs(order.clone(), &options)
                .await
                .unwrap();
            assert_eq!(stream.peer_addr().unwrap(), live_addr, "{order:?}");
            let (_, peer) = live.accept().await.unwrap();
            assert_eq!(peer, stream.local_addr().unwrap());
        }
    }
}

#[tokio::test]
async fn the_connect_timeout_is_separate_from_the_io_timeout() {
    let hole = BlackHole::bind(any_port(true)).unwrap();
    let options = Options::default()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_millis(700));
    let error = Connection::connect("::1", hole.addr().port(), Security::Implicit, &options)
        .await
        .unwrap_err();
    let Error::Timeout(Expired::Timeout {
        after,
        awaiting: Awaiting::Connect,
    }) = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(after, Duration::from_millis(700));
}

#[tokio::test]
async fn the_source_address_is_used_and_restricts_the_family() {
    let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source: IpAddr = "127.0.0.3".parse().unwrap();
    let stream = pop3_async::connect_addrs(
        vec![live.local_addr().unwrap()],
        &Options::default().bind(source),
    )
    .await
    .unwrap();
    let (_, peer) = live.accept().await.unwrap();
    assert_eq!(
        (stream.local_addr().unwrap().ip(), peer.ip()),
        (source, source)
    );
    let v6_only = Options::default().bind("::1".parse().unwrap());
    let error = pop3_async::connect_addrs(vec![live.local_addr().unwrap()], &v6_only)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
}

fn options_through(proxy: &FakeProxy, scheme: &str) -> Options {
    let url: Proxy = format!("{scheme}{}", proxy.addr()).parse().unwrap();
    Options::default()
        .timeout(Duration::from_secs(10))
        .proxy(url)
}

/// A SOCKS5 CONNECT request for a host name (address type 3).
fn connect_request(host: &str, port: u16) -> Vec<u8> {
    [
        &[5, 1, 0, 3, u8::try_from(host.len()).unwrap()][..],
        host.as_bytes(),
        &port.to_be_bytes(),
    ]
    .concat()
}

#[tokio::test(flavor = "multi_thread")]
async fn scripted_proxies_that_refuse_lie_or_reject_credentials() {
    use ProxyStep::{Close, Expect, Send};
    let connect_http =
        b"CONNECT mail.example:995 HTTP/1.1\r\nHost: mail.example:995\r\n\r\n".to_vec();
    let cases: Vec<(&str, Vec<ProxyStep>, ProxyError)> = vec![
        ("socks5h://", vec![Expect(vec![5, 1, 0]), Send(vec![5, 0]), Expect(connect_request("mail.example", 995)), Send(vec![5, 4, 0, 1, 0, 0, 0, 0, 0, 0])], ProxyError::Socks5Refused { code: 4 }),
        ("socks5h://", vec![Expect(vec![5, 1, 0]), Send(vec![5, 0]), Expect(connect_request("mail.example", 995)), Send(vec![5, 0, 1, 1])], ProxyError::Malformed("the reserved byte of the reply is set")),
        ("socks5h://", vec![Expect(vec![5, 1, 0]), Send(vec![5, 2])], ProxyError::Malformed("a method the client did not offer")),
        ("socks5h://", vec![Expect(vec![5, 1, 0]), Close], ProxyError::Closed),
        ("socks5h://me:pw@", vec![Expect(vec![5, 2, 0, 2]), Send(vec![5, 2]), Expect([&[1, 2][..], b"me", &[2], b"pw"].concat()), Send(vec![1, 0x10])], ProxyError::AuthenticationFailed),
        ("http://me:pw@", vec![Expect(b"CONNECT mail.example:995 HTTP/1.1\r\nHost: mail.example:995\r\nProxy-Authorization: Basic bWU6cHc=\r\n\r\n".to_vec()), Send(b"HTTP/1.1 407 No\r\n\r\n".to_vec())], ProxyError::AuthenticationFailed),
        ("http://", vec![Expect(connect_http.clone()), Send(b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec())], ProxyError::HttpRefused { status: 503, reason: "Service Unavailable".to_owned() }),
        ("http://", vec![Expect(connect_http), Send(b"HTTP/1.1 OK 200\r\n\r\n".to_vec())], ProxyError::Malformed("the status line has no 3-digit status")),
    ];
    for (scheme, steps, expected) in cases {
        let proxy = FakeProxy::start(steps).unwrap();
        let options = options_through(&proxy, scheme);
        let error = Connection::connect("mail.example", 995, Security::Implicit, &options)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::Proxy(e) if *e == expected),
            "{scheme}: {error:?}"
        );
        proxy.finish().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idn_host_goes_to_the_proxy_and_to_tls_as_a_labels() {
    let a_label = "xn--mnchen-3ya.example";
    let ca = TestCa::generate_with(&CertSpec::new().names(&[a_label])).unwrap();
    let script = Script::parse(
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
    )
    .unwrap();
    let server = ScriptedServer::builder(script)
        .tls_config(ca.server_config())
        .start()
        .unwrap();
    let proxy = FakeProxy::start(vec![
        ProxyStep::Expect(
            format!("CONNECT {a_label}:110 HTTP/1.1\r\nHost: {a_label}:110\r\n\r\n").into_bytes(),
        ),
        ProxyStep::Send(b"HTTP/1.0 200 Connection established\r\n\r\n".to_vec()),
        ProxyStep::Tunnel(server.addr()),
    ])
    .unwrap();
    let options = options_through(&proxy, "http://").tls(
        TlsOptions::default()
            .add_ca_pem(ca.certificate_pem().as_bytes())
            .unwrap(),
    );
    let pop = Connection::connect("München.example", 110, Security::StartTls, &options)
        .await
        .unwrap();
    assert_eq!(pop.host(), Some(a_label));
    assert!(pop.is_tls());
    pop.quit().await.unwrap();
    server.finish_async().await.unwrap().assert_complete();
    proxy.finish().unwrap();
}

#[tokio::test]
async fn real_proxies_reach_dovecot() {
    let (Some(proxies), Some(dovecot)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let tls = TlsOptions::default()
        .add_ca_file(dovecot.certificate_path())
        .unwrap();
    let credentials = format!("{PROXY_USER}:{PROXY_PASSWORD}@");
    let urls = [
        format!("socks5://{credentials}{}", proxies.socks_auth),
        format!("socks5h://{}", proxies.socks),
        format!("http://{}", proxies.http),
        format!("http://{credentials}{}", proxies.http_auth),
    ];
    for url in &urls {
        for (security, port) in [
            (Security::Implicit, dovecot.tls_addr().port()),
            (Security::StartTls, dovecot.addr().port()),
        ] {
            let options = Options::default()
                .timeout(Duration::from_secs(20))
                .tls(tls.clone())
                .proxy(url.parse().unwrap());
            let mut pop = Connection::connect("localhost", port, security, &options)
                .await
                .unwrap_or_else(|e| panic!("{url} {security:?}: {e}"));
            pop.login("bob", Secret::from("secret-b")).await.unwrap();
            assert!(pop.stat().await.unwrap().count > 0, "{url}");
            pop.quit().await.unwrap();
        }
    }
}

#[tokio::test]
async fn real_proxies_reject_bad_credentials() {
    let (Some(proxies), Some(dovecot)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let cases = [
        (
            format!(
                "socks5://nobody-here:{PROXY_PASSWORD}@{}",
                proxies.socks_auth
            ),
            ProxyError::AuthenticationFailed,
        ),
        (
            format!("socks5://{}", proxies.socks_auth),
            ProxyError::NoAcceptableMethod { offered: "none" },
        ),
        (
            format!("http://{PROXY_USER}:{PROXY_USER}@{}", proxies.http_auth),
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
        let error = Connection::connect(
            "localhost",
            dovecot.tls_addr().port(),
            Security::Implicit,
            &options,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&error, Error::Proxy(e) if *e == expected),
            "{url}: {error:?}"
        );
    }
}

/// dante refuses a destination its rules forbid (reply 2), tinyproxy a port it does not allow
/// (403).
#[tokio::test]
async fn real_proxies_refuse_what_their_rules_forbid() {
    let Some(proxies) = RealProxies::from_env() else {
        return;
    };
    let through = |url: String| {
        Options::default()
            .timeout(Duration::from_secs(20))
            .proxy(url.parse().unwrap())
    };
    let error = Connection::connect(
        "192.0.2.7",
        995,
        Security::Implicit,
        &through(format!("socks5h://{}", proxies.socks)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, Error::Proxy(ProxyError::Socks5Refused { code: 2 })),
        "{error:?}"
    );
    let error = Connection::connect(
        "localhost",
        22,
        Security::None,
        &through(format!("http://{}", proxies.http)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Proxy(ProxyError::HttpRefused { status: 403, .. })
        ),
        "{error:?}"
    );
}
