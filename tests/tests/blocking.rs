//! The shared adapter suites, run against `pop3-blocking`.
#![allow(missing_docs)]

use pop3_blocking::pop3_proto::login::{
    LoginMethod, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
use pop3_blocking::pop3_proto::sasl::Mechanism;
use pop3_blocking::pop3_proto::{Capabilities, Phase};
use pop3_blocking::{ClientCertificate, Connection, Error, Options, RetrEvent, TlsOptions};
use pop3_tests::suite::{Adapter, ConnectOptions, Failure, Greeting, Retrieved, Security};

#[derive(Debug)]
struct Blocking(Connection);

fn failure(error: Error) -> Failure {
    match error {
        Error::Io(e) => Failure::Io(e.to_string()),
        Error::Tls(e) => Failure::Tls(e.to_string()),
        Error::Timeout(_) => Failure::Timeout,
        Error::Protocol(e) => Failure::Protocol(e),
        Error::Server(e) => Failure::Server(e),
        Error::Usage(e) => Failure::Usage(e),
        Error::Login(e) => Failure::Login(e),
        Error::InvalidServerName(name) => Failure::InvalidServerName(name),
        Error::GreetingRefused { code, text } => Failure::GreetingRefused { code, text },
        Error::Closed | Error::Unusable(_) => Failure::Closed,
        other => Failure::Other(other.to_string()),
    }
}

fn options(options: &ConnectOptions) -> Result<Options, Failure> {
    let mut tls = TlsOptions::default();
    if let Some(pem) = &options.ca_pem {
        tls = tls
            .add_ca_pem(pem.as_bytes())
            .map_err(|e| failure(e.into()))?;
    }
    if options.accept_any_certificate {
        tls = tls.dangerous_accept_any_certificate();
    }
    if let Some((cert, key)) = &options.client_cert {
        let cert = ClientCertificate::from_pem(cert.as_bytes(), key.as_bytes())
            .map_err(|e| failure(e.into()))?;
        tls = tls.client_cert(cert);
    }
    Ok(Options::default()
        .timeout(options.timeout)
        .config(options.config.clone())
        .tls(tls)
        .allow_plaintext(options.allow_plaintext)
        .allow_apop(options.allow_apop))
}

impl Adapter for Blocking {
    fn connect(
        host: &str,
        port: u16,
        security: Security,
        connect: &ConnectOptions,
    ) -> Result<Self, Failure> {
        let security = match security {
            Security::Implicit => pop3_blocking::Security::Implicit,
            Security::StartTls => pop3_blocking::Security::StartTls,
            Security::None => pop3_blocking::Security::None,
        };
        Connection::connect(host, port, security, &options(connect)?)
            .map(Blocking)
            .map_err(failure)
    }

    fn greeting(&self) -> Greeting {
        let g = self.0.greeting();
        Greeting {
            text: g.text.clone(),
            code: g.code.clone(),
            apop: g.apop,
        }
    }

    fn capabilities(&self) -> Option<Capabilities> {
        self.0.capabilities().cloned()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }

    fn phase(&self) -> Phase {
        self.0.phase()
    }

    fn capa(&mut self) -> Result<Capabilities, Failure> {
        self.0.capa().map_err(failure)
    }

    fn user(&mut self, name: &str) -> Result<Reply, Failure> {
        self.0.user(name).map_err(failure)
    }

    fn pass(&mut self, password: &str) -> Result<Reply, Failure> {
        self.0.pass(password).map_err(failure)
    }

    fn apop(&mut self, name: &str, secret: &str) -> Result<Reply, Failure> {
        self.0.apop(name, secret).map_err(failure)
    }

    fn rpop(&mut self, user: &str) -> Result<Reply, Failure> {
        self.0.rpop(user).map_err(failure)
    }

    fn auth<M: Mechanism + 'static>(&mut self, mechanism: M) -> Result<Reply, Failure> {
        self.0.auth(mechanism).map_err(failure)
    }

    fn login(&mut self, user: &str, password: &str) -> Result<LoginMethod, Failure> {
        self.0.login(user, password).map_err(failure)
    }

    fn login_with(
        &mut self,
        method: LoginMethod,
        user: &str,
        password: &str,
    ) -> Result<LoginMethod, Failure> {
        self.0.login_with(method, user, password).map_err(failure)
    }

    fn can_bind(&self) -> bool {
        self.0.channel_binding().is_some()
    }

    fn stat(&mut self) -> Result<Stat, Failure> {
        self.0.stat().map_err(failure)
    }

    fn list(&mut self) -> Result<Vec<ScanListing>, Failure> {
        self.0.list().map_err(failure)
    }

    fn list_one(&mut self, msg: u32) -> Result<ScanListing, Failure> {
        self.0.list_one(msg).map_err(failure)
    }

    fn retr(&mut self, msg: u32, out: &mut Vec<u8>) -> Result<u64, Failure> {
        self.0.retr(msg, out).map_err(failure)
    }

    fn top(&mut self, msg: u32, lines: u32, out: &mut Vec<u8>) -> Result<u64, Failure> {
        self.0.top(msg, lines, out).map_err(failure)
    }

    fn uidl(&mut self) -> Result<Vec<UniqueIdListing>, Failure> {
        self.0.uidl().map_err(failure)
    }

    fn uidl_one(&mut self, msg: u32) -> Result<UniqueIdListing, Failure> {
        self.0.uidl_one(msg).map_err(failure)
    }

    fn dele(&mut self, msg: u32) -> Result<Reply, Failure> {
        self.0.dele(msg).map_err(failure)
    }

    fn rset(&mut self) -> Result<Reply, Failure> {
        self.0.rset().map_err(failure)
    }

    fn noop(&mut self) -> Result<Reply, Failure> {
        self.0.noop().map_err(failure)
    }

    fn quit(self) -> Result<Reply, Failure> {
        self.0.quit().map_err(failure)
    }

    fn utf8(&mut self) -> Result<Reply, Failure> {
        self.0.utf8().map_err(failure)
    }

    fn lang(&mut self) -> Result<Vec<(String, String)>, Failure> {
        self.0.lang().map_err(failure)
    }

    fn set_lang(&mut self, tag: &str) -> Result<Reply, Failure> {
        self.0.set_lang(tag).map_err(failure)
    }

    fn stls(self) -> Result<Self, Failure> {
        self.0.stls().map(Blocking).map_err(failure)
    }

    fn retr_many(&mut self, msgs: &[u32]) -> Result<Vec<Retrieved>, Failure> {
        let mut done: Vec<Retrieved> = Vec::new();
        let mut body = Vec::new();
        let mut started = false;
        self.0
            .retr_many(msgs, |msg, event| {
                match event {
                    RetrEvent::Start => {
                        assert!(!started && body.is_empty(), "Start twice, or after a chunk");
                        started = true;
                    }
                    RetrEvent::Chunk(chunk) => {
                        assert!(started, "a chunk before Start");
                        body.extend_from_slice(chunk);
                    }
                    RetrEvent::End { octets } => {
                        assert!(std::mem::take(&mut started), "End without Start");
                        assert_eq!(octets, body.len() as u64);
                        done.push((msg, Ok(std::mem::take(&mut body))));
                    }
                    RetrEvent::Refused(e) => {
                        assert!(!started, "Start for a refused message");
                        done.push((msg, Err(e)));
                    }
                    other => panic!("unexpected {other:?}"),
                }
                Ok(())
            })
            .map_err(failure)?;
        Ok(done)
    }

    fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Failure> {
        self.0.dele_many(msgs).map_err(failure)
    }

    fn retr_into_failing_writer(&mut self, msg: u32) -> Result<u64, Failure> {
        // A full buffer: its first write fails (`WriteZero`).
        let mut full: &mut [u8] = &mut [];
        self.0.retr(msg, &mut full).map_err(failure)
    }

    fn stls_by_parts(mut self, ca_pem: &str) -> Result<Self, Failure> {
        self.0.stls_start().map_err(failure)?;
        let (stream, session) = self.0.into_parts();
        let pop3_blocking::Stream::Plain(tcp) = stream else {
            return Err(Failure::Other("not plaintext".into()));
        };
        let config = TlsOptions::default()
            .add_ca_pem(ca_pem.as_bytes())
            .and_then(|tls| tls.build())
            .map_err(|e| failure(e.into()))?;
        let name = pop3_blocking::rustls::pki_types::ServerName::try_from("127.0.0.1")
            .map_err(|e| Failure::Other(e.to_string()))?;
        let tls = pop3_blocking::rustls::ClientConnection::new(config, name)
            .map_err(|e| failure(e.into()))?;
        let stream = pop3_blocking::rustls::StreamOwned::new(tls, tcp);
        Connection::from_parts(pop3_blocking::Stream::Tls(Box::new(stream)), session)
            .map(Blocking)
            .map_err(failure)
    }
}

pop3_tests::adapter_suite!(Blocking);
pop3_tests::interop_suite!(Blocking);

/// A skipped interop test must be visible in a plain `cargo test`, not only with
/// `--nocapture`: this binary runs one of its own interop tests again with `POP3_INTEROP=off`
/// and output capture on, and looks for the skip line on its standard error.
#[test]
fn skipped_interop_tests_say_so_without_nocapture() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args(["--exact", "dovecot_user_pass", "--test-threads", "1"])
        .env("POP3_INTEROP", "off")
        .output()
        .expect("the test binary runs");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(pop3_tests::SKIP_NOTE) && stderr.contains("POP3_INTEROP=off"),
        "stderr: {stderr}\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
