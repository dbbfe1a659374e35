//! The proxy handshakes, sans-IO: byte-exact requests, every reply fed at every split (one
//! byte at a time up to whole reads), refusals, lies and bounded reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pop3_tls::proxy::{MAX_HTTP_REPLY, ProxyHandshake, ProxyTarget};
use pop3_tls::{Proxy, ProxyError, ProxyKind, ProxyUrlError};

/// Plays `reply` to the handshake, at most `chunk` bytes per read (and never more than
/// `read_size`). Returns what the client sent, the outcome, and the reply bytes it left
/// unread.
fn drive(
    mut handshake: ProxyHandshake,
    reply: &[u8],
    chunk: usize,
) -> (Vec<u8>, Result<(), ProxyError>, Vec<u8>) {
    let mut sent = Vec::new();
    let mut rest = reply;
    loop {
        handshake.poll_transmit(&mut sent);
        if handshake.is_done() {
            return (sent, Ok(()), rest.to_vec());
        }
        let want = handshake.read_size().min(chunk);
        assert!(want > 0, "a running handshake always wants input");
        if rest.is_empty() {
            return (sent, Err(handshake.handle_eof()), Vec::new());
        }
        let n = want.min(rest.len());
        if let Err(error) = handshake.handle_input(&rest[..n]) {
            return (sent, Err(error), rest[n..].to_vec());
        }
        rest = &rest[n..];
    }
}

/// `drive` through the adapters' loop ([`ProxyHandshake::next`] and
/// [`ProxyHandshake::handle_read`]).
fn drive_next(
    mut handshake: ProxyHandshake,
    reply: &[u8],
    chunk: usize,
) -> (Vec<u8>, Result<(), ProxyError>, Vec<u8>) {
    let (mut sent, mut out) = (Vec::new(), Vec::new());
    let mut rest = reply;
    loop {
        let want = match handshake.next(&mut out) {
            Ok(Some(want)) => want,
            Ok(None) => return (sent, Ok(()), rest.to_vec()),
            Err(error) => return (sent, Err(error), rest.to_vec()),
        };
        sent.extend_from_slice(&out);
        let n = want.min(chunk).min(rest.len());
        if let Err(error) = handshake.handle_read(&rest[..n]) {
            return (sent, Err(error), rest[n..].to_vec());
        }
        rest = &rest[n..];
    }
}

/// `drive` at every chunk size from 1 to the reply's length: the same outcome each time, and
/// the same through the adapters' loop.
fn drive_all(
    proxy: &Proxy,
    target: &ProxyTarget,
    reply: &[u8],
) -> (Vec<u8>, Result<(), ProxyError>, Vec<u8>) {
    let first = drive(
        ProxyHandshake::new(proxy, target.clone()).unwrap(),
        reply,
        1,
    );
    for chunk in 2..=reply.len().max(2) {
        let other = drive(
            ProxyHandshake::new(proxy, target.clone()).unwrap(),
            reply,
            chunk,
        );
        // After an error, how much of the reply was read depends on where the lie fell.
        assert_eq!(
            (&other.0, &other.1),
            (&first.0, &first.1),
            "chunk size {chunk}"
        );
        if other.1.is_ok() {
            assert_eq!(other.2, first.2, "chunk size {chunk}");
        }
    }
    for chunk in 1..=reply.len().max(1) {
        let looped = drive_next(
            ProxyHandshake::new(proxy, target.clone()).unwrap(),
            reply,
            chunk,
        );
        assert_eq!(
            (&looped.0, &looped.1),
            (&first.0, &first.1),
            "through next, chunk size {chunk}"
        );
        if looped.1.is_ok() {
            assert_eq!(looped.2, first.2, "through next, chunk size {chunk}");
        }
    }
    first
}

fn name(host: &str, port: u16) -> ProxyTarget {
    ProxyTarget::Name(host.to_owned(), port)
}

const GREETING: &[u8] = b"+OK POP3 ready\r\n";

#[test]
fn socks5h_without_credentials_sends_the_name_and_leaves_the_greeting_unread() {
    let proxy: Proxy = "socks5h://127.0.0.1:1080".parse().unwrap();
    let reply = [
        &[5, 0][..],
        &[5, 0, 0, 1, 10, 0, 0, 1, 0x04, 0x38],
        GREETING,
    ]
    .concat();
    let (sent, result, rest) = drive_all(&proxy, &name("pop.example", 995), &reply);
    result.unwrap();
    let mut expected = vec![5, 1, 0, 5, 1, 0, 3, 11];
    expected.extend_from_slice(b"pop.example");
    expected.extend_from_slice(&995u16.to_be_bytes());
    assert_eq!(sent, expected);
    assert_eq!(
        rest, GREETING,
        "not a byte of the server's greeting is read"
    );
}

#[test]
fn socks5_with_credentials_sends_an_address_and_rfc1929_auth() {
    let proxy: Proxy = "socks5://us%40er:p%3Ass@[::1]".parse().unwrap();
    assert_eq!(proxy.port(), 1080);
    let target = ProxyTarget::Addr("[2001:db8::1]:110".parse().unwrap());
    // A reply with a domain-name bound address (type 3), and IPv6 (type 4).
    for bound in [
        &[3, 4, b'h', b'o', b's', b't', 0, 1][..],
        &[[4].as_slice(), &[0; 16], &[0, 1]].concat(),
    ] {
        let reply = [&[5, 2][..], &[1, 0], &[5, 0, 0], bound, GREETING].concat();
        let (sent, result, rest) = drive_all(&proxy, &target, &reply);
        result.unwrap();
        let mut expected = vec![5, 2, 0, 2, 1, 5];
        expected.extend_from_slice(b"us@er");
        expected.push(4);
        expected.extend_from_slice(b"p:ss");
        expected.extend_from_slice(&[5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8]);
        expected.extend_from_slice(&[0; 11]);
        expected.extend_from_slice(&[1, 0, 110]);
        assert_eq!(sent, expected);
        assert_eq!(rest, GREETING);
    }
}

#[test]
fn socks5_refusals_and_authentication_failures_are_typed() {
    let plain: Proxy = "socks5h://proxy".parse().unwrap();
    let with_auth: Proxy = "socks5h://u:p@proxy".parse().unwrap();
    let target = name("pop.example", 110);
    let cases: Vec<(&Proxy, Vec<u8>, ProxyError)> = vec![
        (
            &plain,
            vec![5, 0xFF],
            ProxyError::NoAcceptableMethod { offered: "none" },
        ),
        (
            &with_auth,
            vec![5, 0xFF],
            ProxyError::NoAcceptableMethod {
                offered: "none, username/password",
            },
        ),
        (
            &with_auth,
            vec![5, 2, 1, 1],
            ProxyError::AuthenticationFailed,
        ),
        (
            &plain,
            vec![5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0],
            ProxyError::Socks5Refused { code: 5 },
        ),
        (
            &plain,
            vec![5, 0, 5, 2, 0, 1],
            ProxyError::Socks5Refused { code: 2 },
        ),
    ];
    for (proxy, reply, expected) in cases {
        let (_, result, _) = drive_all(proxy, &target, &reply);
        assert_eq!(result, Err(expected.clone()), "{reply:?}");
    }
    let refused = ProxyError::Socks5Refused { code: 5 };
    assert_eq!(
        refused.to_string(),
        "the SOCKS5 proxy refused to connect: connection refused (reply 0x05)"
    );
}

#[test]
fn socks5_lies_are_malformed_and_short_replies_are_closed() {
    let plain: Proxy = "socks5h://proxy".parse().unwrap();
    let with_auth: Proxy = "socks5h://u:p@proxy".parse().unwrap();
    let target = name("pop.example", 110);
    let lies: Vec<(&Proxy, Vec<u8>)> = vec![
        (&plain, vec![4, 0]),                          // SOCKS4 answering
        (&plain, vec![5, 2]),                          // a method we did not offer
        (&plain, vec![5, 1]),                          // GSSAPI, not offered
        (&with_auth, vec![5, 2, 2, 0]),                // a username/password status of version 2
        (&plain, vec![5, 0, 4, 0, 0, 1]),              // the CONNECT reply in version 4
        (&plain, vec![5, 0, 5, 0, 1, 1]),              // the reserved byte set
        (&plain, vec![5, 0, 5, 0, 0, 9]),              // address type 9
        (&plain, b"HTTP/1.1 200 OK\r\n\r\n".to_vec()), // an HTTP proxy
    ];
    for (proxy, reply) in lies {
        let (_, result, _) = drive_all(proxy, &target, &reply);
        assert!(
            matches!(result, Err(ProxyError::Malformed(_))),
            "{reply:?}: {result:?}"
        );
    }
    for short in [
        &[5][..],
        &[5, 0, 5, 0, 0, 1, 127, 0, 0],
        &[5, 0, 5, 0, 0, 3, 200, b'x'],
    ] {
        let (_, result, _) = drive_all(&plain, &target, short);
        assert_eq!(result, Err(ProxyError::Closed), "{short:?}");
    }
}

#[test]
fn errors_are_sticky_and_extra_input_is_refused() {
    let proxy: Proxy = "socks5h://proxy".parse().unwrap();
    let mut handshake = ProxyHandshake::new(&proxy, name("h", 1)).unwrap();
    assert_eq!(handshake.read_size(), 2);
    assert!(matches!(
        handshake.handle_input(&[5, 0, 5]),
        Err(ProxyError::Malformed(_))
    ));
    assert!(matches!(
        handshake.handle_input(&[5]),
        Err(ProxyError::Malformed(_))
    ));
    assert!(matches!(handshake.handle_eof(), ProxyError::Malformed(_)));
    assert_eq!(handshake.read_size(), 0);
}

#[test]
fn http_connect_with_basic_auth_is_byte_exact_and_stops_at_the_blank_line() {
    let proxy: Proxy = "http://Aladdin:open%20sesame@proxy:3128".parse().unwrap();
    let reply = [
        &b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n"[..],
        GREETING,
    ]
    .concat();
    let (sent, result, rest) = drive_all(&proxy, &name("pop.example", 995), &reply);
    result.unwrap();
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        "CONNECT pop.example:995 HTTP/1.1\r\nHost: pop.example:995\r\n\
         Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    );
    assert_eq!(rest, GREETING);
    let v6 = ProxyTarget::Addr("[::1]:110".parse().unwrap());
    let (sent, result, _) = drive_all(
        &"http://proxy".parse().unwrap(),
        &v6,
        b"HTTP/1.0 200 OK\r\n\r\n",
    );
    result.unwrap();
    assert_eq!(
        sent,
        b"CONNECT [::1]:110 HTTP/1.1\r\nHost: [::1]:110\r\n\r\n"
    );
}

#[test]
fn http_refusals_authentication_and_lies() {
    let plain: Proxy = "http://proxy".parse().unwrap();
    let with_auth: Proxy = "http://u:p@proxy".parse().unwrap();
    let target = name("pop.example", 110);
    let cases: Vec<(&Proxy, &[u8], ProxyError)> = vec![
        (
            &plain,
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            ProxyError::AuthenticationRequired,
        ),
        (
            &with_auth,
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            ProxyError::AuthenticationFailed,
        ),
        (
            &with_auth,
            b"HTTP/1.1 401 Unauthorized\r\n\r\n",
            ProxyError::AuthenticationFailed,
        ),
        (
            &plain,
            b"HTTP/1.1 403 Access violation\x1b[2J\r\n\r\n",
            ProxyError::HttpRefused {
                status: 403,
                reason: "Access violation[2J".to_owned(),
            },
        ),
        (
            &plain,
            b"HTTP/1.1 502\r\n\r\n",
            ProxyError::HttpRefused {
                status: 502,
                reason: String::new(),
            },
        ),
    ];
    for (proxy, reply, expected) in cases {
        let (_, result, _) = drive_all(proxy, &target, reply);
        assert_eq!(result, Err(expected), "{}", String::from_utf8_lossy(reply));
    }
    let lies: [&[u8]; 6] = [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"\x05\x00\r\n\r\n",
    ];
    for reply in lies {
        let (_, result, _) = drive_all(&plain, &target, reply);
        assert!(
            matches!(result, Err(ProxyError::Malformed(_))),
            "{reply:?}: {result:?}"
        );
    }
    let (_, result, _) = drive_all(&plain, &target, b"HTTP/1.1 200 OK\r\n");
    assert_eq!(result, Err(ProxyError::Closed));
}

#[test]
fn an_endless_http_reply_is_cut_at_the_limit() {
    let proxy: Proxy = "http://proxy".parse().unwrap();
    let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
    while reply.len() <= MAX_HTTP_REPLY + 10 {
        reply.extend_from_slice(b"X-Filler: 0123456789\r\n");
    }
    let (_, result, _) = drive(
        ProxyHandshake::new(&proxy, name("h", 1)).unwrap(),
        &reply,
        4096,
    );
    assert_eq!(result, Err(ProxyError::ReplyTooLong));
}

#[test]
fn what_the_protocols_cannot_carry_is_refused_before_sending() {
    let long = "x".repeat(256);
    let socks: Proxy = format!("socks5h://{long}:p@proxy").parse().unwrap();
    assert_eq!(
        ProxyHandshake::new(&socks, name("h", 1)).unwrap_err(),
        ProxyError::TooLong("the proxy user name")
    );
    let plain: Proxy = "socks5h://proxy".parse().unwrap();
    assert!(matches!(
        ProxyHandshake::new(&plain, name(&long, 1)),
        Err(ProxyError::TooLong(_))
    ));
    assert!(matches!(
        ProxyHandshake::new(&plain, name("a\r\nb", 1)),
        Err(ProxyError::ControlCharacter(_))
    ));
    let http: Proxy = "http://u:p%0Aq@proxy".parse().unwrap();
    assert!(matches!(
        ProxyHandshake::new(&http, name("h", 1)),
        Err(ProxyError::ControlCharacter(_))
    ));
}

#[test]
fn proxy_urls_parse_decode_and_redact() {
    let proxy: Proxy = "SOCKS5H://me:s%65cret@proxy.example:9050/".parse().unwrap();
    assert_eq!(proxy.kind(), ProxyKind::Socks5h);
    assert_eq!(
        (proxy.host(), proxy.port(), proxy.user()),
        ("proxy.example", 9050, Some("me"))
    );
    assert_eq!(proxy.to_string(), "socks5h://me@proxy.example:9050");
    assert!(!format!("{proxy:?}").contains("secret"));
    let options = pop3_tls::Options::default().proxy(proxy.clone());
    assert!(!format!("{options:?}").contains("secret"), "{options:?}");
    assert_eq!("http://[::1]".parse::<Proxy>().unwrap().port(), 8080);
    let bad: [(&str, ProxyUrlError); 8] = [
        ("socks4://h", ProxyUrlError::Scheme),
        ("h:1080", ProxyUrlError::Scheme),
        ("http://", ProxyUrlError::MissingHost),
        ("http://h:0", ProxyUrlError::Port),
        ("http://h:+80", ProxyUrlError::Port),
        ("http://[::1", ProxyUrlError::Ipv6),
        ("http://u:%zz@h", ProxyUrlError::Escape),
        ("http://h/path", ProxyUrlError::Path),
    ];
    for (url, error) in bad {
        assert_eq!(url.parse::<Proxy>(), Err(error), "{url}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn any_proxy() -> impl Strategy<Value = Proxy> {
        prop_oneof![
            Just("socks5h://proxy"),
            Just("socks5h://u:p@proxy"),
            Just("http://proxy"),
            Just("http://u:p@proxy"),
        ]
        .prop_map(|url| url.parse().unwrap())
    }

    proptest! {
        /// Whatever a proxy answers, in whatever pieces: no panic, never a byte accepted
        /// beyond `read_size`, and a tunnel only after a reply the protocol allows.
        #[test]
        fn any_reply_is_handled_within_bounds(
            proxy in any_proxy(),
            reply in proptest::collection::vec(any::<u8>(), 0..64),
            chunks in proptest::collection::vec(1usize..8, 1..16),
        ) {
            let mut handshake = ProxyHandshake::new(&proxy, name("pop.example", 995)).unwrap();
            let mut rest = &reply[..];
            let mut sent = Vec::new();
            for chunk in chunks.iter().cycle().take(200) {
                handshake.poll_transmit(&mut sent);
                if handshake.is_done() || rest.is_empty() {
                    break;
                }
                let n = handshake.read_size().min(*chunk).min(rest.len());
                prop_assert!(n > 0);
                if handshake.handle_input(&rest[..n]).is_err() {
                    prop_assert_eq!(handshake.read_size(), 0);
                    break;
                }
                rest = &rest[n..];
            }
            if handshake.is_done() {
                let consumed = &reply[..reply.len() - rest.len()];
                match proxy.kind() {
                    ProxyKind::HttpConnect => {
                        prop_assert!(consumed.starts_with(b"HTTP/1.") && consumed.ends_with(b"\r\n\r\n"));
                    }
                    _ => prop_assert_eq!(consumed.first(), Some(&5)),
                }
            }
        }

        /// A well-formed SOCKS5 reply with any bound address is consumed exactly, and what
        /// follows it is left for the server's session.
        #[test]
        fn socks_replies_are_consumed_exactly(
            host in "[a-z]{1,40}",
            tail in proptest::collection::vec(any::<u8>(), 0..32),
            chunk in 1usize..12,
        ) {
            let proxy: Proxy = "socks5h://proxy".parse().unwrap();
            let mut reply = vec![5, 0, 5, 0, 0, 3, u8::try_from(host.len()).unwrap()];
            reply.extend_from_slice(host.as_bytes());
            reply.extend_from_slice(&[0, 110]);
            reply.extend_from_slice(&tail);
            let (_, result, rest) = drive(ProxyHandshake::new(&proxy, name("h", 1)).unwrap(), &reply, chunk);
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(rest, tail);
        }
    }
}
