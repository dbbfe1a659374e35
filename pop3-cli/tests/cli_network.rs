//! The `pop3` command's network path: `--proxy` (and the `proxy` config key, and
//! `POP3_PROXY`) through the real dante and tinyproxy to the real Dovecot, over POP3 with
//! STLS and POP3S; `--connect-timeout` against an address that never answers; `--bind`;
//! `--crl-file`; `--trust`. The proxies and Dovecot are gated by `POP3_INTEROP` (required in
//! CI), the rest runs everywhere. alice is read-only here.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use pop3_dovecot_peer::DovecotPeer;
use pop3_scripted_server::network::{
    BlackHole, PROXY_PASSWORD, PROXY_USER, RealProxies, RevokingCa,
};
use pop3_scripted_server::{Script, ScriptedServer};

fn pop3_hermetic() -> Command {
    let mut command = pop3();
    command
        .env_remove("POP3_PROXY")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    command
}

fn run_cmd(command: &mut Command) -> Run {
    command.output().expect("run pop3").into()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pop3-cli-net-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// alice on Dovecot: `--tls implicit` on the POP3S port or `starttls` on the POP3 port.
fn alice(peer: &DovecotPeer, implicit: bool) -> Vec<String> {
    let (mode, addr) = if implicit {
        ("implicit", peer.tls_addr())
    } else {
        ("starttls", peer.addr())
    };
    [
        "--host",
        "localhost",
        "--port",
        &addr.port().to_string(),
        "--tls",
        mode,
        "--ca-file",
        peer.certificate_path().to_str().unwrap(),
        "--user",
        "alice",
        "--password-env",
        "POP3_TEST_PASSWORD",
        "--timeout",
        "30",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn stat_through_each_real_proxy_over_pop3_and_pop3s() {
    let (Some(proxies), Some(peer)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let dir = temp_dir("proxies");
    let with_auth = |scheme: &str, addr| {
        format!(
            "{scheme}://{PROXY_USER}:{}@{addr}",
            PROXY_PASSWORD.replace('-', "%2D")
        )
    };
    for implicit in [true, false] {
        // On the command line, without credentials.
        for url in [
            format!("socks5://{}", proxies.socks),
            format!("socks5h://{}", proxies.socks),
            format!("http://{}", proxies.http),
        ] {
            let run = run_cmd(
                pop3_hermetic()
                    .args(alice(&peer, implicit))
                    .args(["--proxy", &url, "stat"]),
            );
            run.expect_code(0);
            assert!(
                run.stdout_str().starts_with("1000 "),
                "{url}: {}",
                run.stdout_str()
            );
        }
        // With credentials: from the config file's `proxy` key, and from POP3_PROXY.
        for url in [
            with_auth("socks5h", proxies.socks_auth),
            with_auth("http", proxies.http_auth),
        ] {
            let config = write_config(&dir, &format!("[accounts.a]\nproxy = \"{url}\"\n"));
            let run = run_cmd(pop3_hermetic().args(alice(&peer, implicit)).args([
                "--config",
                config.to_str().unwrap(),
                "--account",
                "a",
                "stat",
            ]));
            run.expect_code(0);
            let run = run_cmd(
                pop3_hermetic()
                    .env("POP3_PROXY", &url)
                    .args(alice(&peer, implicit))
                    .arg("stat"),
            );
            run.expect_code(0);
            assert!(run.stdout_str().starts_with("1000 "), "{url}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn proxy_refusals_are_network_errors_with_the_reason() {
    let (Some(proxies), Some(peer)) = (RealProxies::from_env(), DovecotPeer::from_env()) else {
        return;
    };
    let cases = [
        (
            format!("socks5://{PROXY_USER}:wrong@{}", proxies.socks_auth),
            "rejected the user name or password",
        ),
        (
            format!("http://{}", proxies.http_auth),
            "requires authentication",
        ),
    ];
    for (url, message) in cases {
        let run = run_cmd(
            pop3_hermetic()
                .args(alice(&peer, true))
                .args(["--proxy", &url, "stat"]),
        );
        run.expect_code(3);
        assert!(run.stderr.contains(message), "{url}: {}", run.stderr);
        assert!(
            !run.stderr.contains("wrong"),
            "the proxy password is not shown: {}",
            run.stderr
        );
    }
    let run = run(&["--host", "h", "--proxy", "socks4://h", "stat"]);
    run.expect_code(2);
    assert!(run.stderr.contains("socks5://"), "{}", run.stderr);
}

#[test]
fn the_connect_timeout_ends_a_connect_to_an_address_that_never_answers() {
    let hole = BlackHole::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut args = plain_args(hole.addr().port());
    args.extend(["--timeout", "300", "--connect-timeout", "0.5"].map(str::to_owned));
    let run = run_cmd(pop3_hermetic().args(&args).arg("stat"));
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("timed out after 0.5 s waiting for the connection"),
        "{}",
        run.stderr
    );
}

/// A server that answers CAPA and QUIT: what `pop3 capa` needs.
fn capa_script() -> Script {
    Script::parse("S: +OK\nC: CAPA\nS-RAW: +OK\\r\\nUSER\\r\\n.\\r\\n\nC: QUIT\nS: +OK\n").unwrap()
}

#[test]
fn bind_sets_the_source_address() {
    // A source of the other family leaves no address to try (nothing is connected).
    let mut args = plain_args(9);
    args.extend(["--bind", "::1"].map(str::to_owned));
    let run = run_cmd(pop3_hermetic().args(&args).arg("capa"));
    run.expect_code(3);
    assert!(run.stderr.contains("no usable address"), "{}", run.stderr);
    let server = ScriptedServer::start(capa_script()).unwrap();
    let mut args = plain_args(server.port());
    args.extend(["--bind", "127.0.0.1"].map(str::to_owned));
    run_cmd(pop3_hermetic().args(&args).arg("capa")).expect_code(0);
    server.finish().unwrap().assert_complete();
}

#[test]
fn crl_file_refuses_a_revoked_certificate() {
    let ca = RevokingCa::generate().unwrap();
    let dir = temp_dir("crl");
    let (ca_file, crl_file) = (dir.join("ca.pem"), dir.join("crl.pem"));
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    std::fs::write(&crl_file, &ca.crl_pem).unwrap();
    for (config, revoked) in [(ca.revoked.clone(), true), (ca.good.clone(), false)] {
        let script = capa_script();
        let server = ScriptedServer::builder(script)
            .tls_config(config)
            .implicit_tls()
            .start()
            .unwrap();
        let args = [
            "--host",
            "localhost",
            "--port",
            &server.port().to_string(),
            "--ca-file",
            ca_file.to_str().unwrap(),
            "--crl-file",
            crl_file.to_str().unwrap(),
            "capa",
        ];
        let run = run_cmd(pop3_hermetic().args(args));
        if revoked {
            run.expect_code(3);
            assert!(run.stderr.contains("revoked"), "{}", run.stderr);
        } else {
            run.expect_code(0);
        }
        drop(server.finish());
    }
    let run = run(&[
        "--host",
        "h",
        "--crl-file",
        ca_file.to_str().unwrap(),
        "capa",
    ]);
    run.expect_code(2);
    assert!(run.stderr.contains("no CRL"), "{}", run.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--trust system` and `both` read the system store (here `SSL_CERT_FILE`, honoured by
/// rustls-native-certs); `--trust mozilla`, the default, does not.
#[test]
fn trust_chooses_the_root_store() {
    let Some(peer) = DovecotPeer::from_env() else {
        return;
    };
    let cert = peer.certificate_path();
    let base = [
        "--host",
        "localhost",
        "--port",
        &peer.tls_addr().port().to_string(),
        "--timeout",
        "30",
        "capa",
    ];
    let with_store = |trust: Option<&str>| {
        let mut command = pop3_hermetic();
        command.env("SSL_CERT_FILE", &cert);
        if let Some(trust) = trust {
            command.args(["--trust", trust]);
        }
        run_cmd(command.args(base))
    };
    with_store(Some("system")).expect_code(0);
    with_store(Some("both")).expect_code(0);
    for default_or_mozilla in [None, Some("mozilla")] {
        let run = with_store(default_or_mozilla);
        run.expect_code(3);
        assert!(
            run.stderr.contains("not signed by an authority we trust"),
            "{}",
            run.stderr
        );
    }
    run_cmd(pop3_hermetic().args(["--trust", "nss"]).args(base)).expect_code(2);
}

/// The config keys `connect-timeout`, `bind`, `trust` and `crl-file` do what their flags do.
#[test]
fn the_network_config_keys() {
    let dir = temp_dir("keys");
    let hole = BlackHole::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = write_config(
        &dir,
        "[accounts.a]\nconnect-timeout = 0.5\nbind = \"127.0.0.1\"\n",
    );
    let mut args = plain_args(hole.addr().port());
    args.extend(["--config", config.to_str().unwrap(), "--account", "a"].map(str::to_owned));
    let run = run_cmd(pop3_hermetic().args(&args).arg("stat"));
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("timed out after 0.5 s waiting for the connection"),
        "{}",
        run.stderr
    );

    let ca = RevokingCa::generate().unwrap();
    let (ca_file, crl_file) = (dir.join("ca.pem"), dir.join("crl.pem"));
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    std::fs::write(&crl_file, &ca.crl_pem).unwrap();
    let config = write_config(
        &dir,
        &format!(
            "[accounts.a]\nhost = \"localhost\"\ntrust = \"system\"\ncrl-file = {:?}\n",
            crl_file.to_str().unwrap()
        ),
    );
    for (server_config, expected) in [(ca.good.clone(), 0), (ca.revoked.clone(), 3)] {
        let server = ScriptedServer::builder(capa_script())
            .tls_config(server_config)
            .implicit_tls()
            .start()
            .unwrap();
        let port = server.port().to_string();
        let run = run_cmd(pop3_hermetic().env("SSL_CERT_FILE", &ca_file).args([
            "--config",
            config.to_str().unwrap(),
            "--account",
            "a",
            "--port",
            &port,
            "capa",
        ]));
        run.expect_code(expected);
        if expected == 3 {
            assert!(run.stderr.contains("revoked"), "{}", run.stderr);
        }
        drop(server.finish());
    }
    let config = write_config(&dir, "[accounts.a]\nhost = \"h\"\ntrust = \"nss\"\n");
    common::run(&[
        "--config",
        config.to_str().unwrap(),
        "--account",
        "a",
        "capa",
    ])
    .expect_code(2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A Unicode `--host` reaches the proxy and TLS as A-labels: the fake SOCKS5 proxy checks
/// the name it is sent, and the certificate names only the A-label.
#[test]
fn an_idn_host_on_the_command_line() {
    use pop3_demo_server::{CertSpec, TestCa};
    use pop3_scripted_server::network::{FakeProxy, ProxyStep};
    let a_label = "xn--caf-dma.example";
    let ca = TestCa::generate_with(&CertSpec::new().names(&[a_label])).unwrap();
    let dir = temp_dir("idn");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.certificate_pem()).unwrap();
    let server = ScriptedServer::builder(capa_script())
        .tls_config(ca.server_config())
        .implicit_tls()
        .start()
        .unwrap();
    let mut request = vec![5, 1, 0, 3, u8::try_from(a_label.len()).unwrap()];
    request.extend_from_slice(a_label.as_bytes());
    request.extend_from_slice(&995u16.to_be_bytes());
    let proxy = FakeProxy::start(vec![
        ProxyStep::Expect(vec![5, 1, 0]),
        ProxyStep::Send(vec![5, 0]),
        ProxyStep::Expect(request),
        ProxyStep::Send(vec![5, 0, 0, 1, 127, 0, 0, 1, 0, 0]),
        ProxyStep::Tunnel(server.addr()),
    ])
    .unwrap();
    let run = run_cmd(pop3_hermetic().args([
        "--host",
        "café.example",
        "--proxy",
        &format!("socks5h://{}", proxy.addr()),
        "--ca-file",
        ca_file.to_str().unwrap(),
        "capa",
    ]));
    run.expect_code(0);
    server.finish().unwrap().assert_complete();
    proxy.finish().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
