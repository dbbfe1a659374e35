//! The shared adapter suites, run against `pop3-async` through a Tokio runtime's `block_on`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::sync::LazyLock;

use pop3_async::pop3_proto::login::{
    LoginMethod, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
use pop3_async::pop3_proto::sasl::Mechanism;
use pop3_async::pop3_proto::{Capabilities, Phase};
use pop3_async::{ClientCertificate, Connection, Error, Options, RetrEvent, TlsOptions};
use pop3_tests::suite::{Adapter, ConnectOptions, Failure, Greeting, Retrieved, Security};
use tokio::runtime::Runtime;

/// One multi-threaded runtime for every test thread: the connections' sockets stay registered
/// with it between `block_on` calls.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

#[derive(Debug)]
struct Async(Connection);

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
        Error::Closed | Error::Poisoned | Error::Unusable(_) => Failure::Closed,
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

impl Adapter for Async {
    fn connect(
        host: &str,
        port: u16,
        security: Security,
        connect: &ConnectOptions,
    ) -> Result<Self, Failure> {
        let security = match security {
            Security::Implicit => pop3_async::Security::Implicit,
            Security::StartTls => pop3_async::Security::StartTls,
            Security::None => pop3_async::Security::None,
        };
        let options = options(connect)?;
        block_on(Connection::connect(host, port, security, &options))
            .map(Async)
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
        block_on(self.0.capa()).map_err(failure)
    }

    fn user(&mut self, name: &str) -> Result<Reply, Failure> {
        block_on(self.0.user(name)).map_err(failure)
    }

    fn pass(&mut self, password: &str) -> Result<Reply, Failure> {
        block_on(self.0.pass(password)).map_err(failure)
    }

    fn apop(&mut self, name: &str, secret: &str) -> Result<Reply, Failure> {
        block_on(self.0.apop(name, secret)).map_err(failure)
    }

    fn rpop(&mut self, user: &str) -> Result<Reply, Failure> {
        block_on(self.0.rpop(user)).map_err(failure)
    }

    fn auth<M: Mechanism + 'static>(&mut self, mechanism: M) -> Result<Reply, Failure> {
        block_on(self.0.auth(mechanism)).map_err(failure)
    }

    fn login(&mut self, user: &str, password: &str) -> Result<LoginMethod, Failure> {
        block_on(self.0.login(user, password)).map_err(failure)
    }

    fn login_with(
        &mut self,
        method: LoginMethod,
        user: &str,
        password: &str,
    ) -> Result<LoginMethod, Failure> {
        block_on(self.0.login_with(method, user, password)).map_err(failure)
    }

    fn can_bind(&self) -> bool {
        self.0.channel_binding().is_some()
    }

    fn stat(&mut self) -> Result<Stat, Failure> {
        block_on(self.0.stat()).map_err(failure)
    }

    fn list(&mut self) -> Result<Vec<ScanListing>, Failure> {
        block_on(self.0.list()).map_err(failure)
    }

    fn list_one(&mut self, msg: u32) -> Result<ScanListing, Failure> {
        block_on(self.0.list_one(msg)).map_err(failure)
    }

    fn retr(&mut self, msg: u32, out: &mut Vec<u8>) -> Result<u64, Failure> {
        block_on(self.0.retr(msg, out)).map_err(failure)
    }

    /// Through the body stream, so that the suites cover it too.
    fn top(&mut self, msg: u32, lines: u32, out: &mut Vec<u8>) -> Result<u64, Failure> {
        block_on(async {
            let mut stream = self.0.top_stream(msg, lines);
            let mut octets = 0;
            while let Some(chunk) = std::future::poll_fn(|cx| {
                pop3_async::futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
            })
            .await
            {
                let chunk = chunk?;
                octets += chunk.len() as u64;
                out.extend_from_slice(&chunk);
            }
            Ok(octets)
        })
        .map_err(failure)
    }

    fn uidl(&mut self) -> Result<Vec<UniqueIdListing>, Failure> {
        block_on(self.0.uidl()).map_err(failure)
    }

    fn uidl_one(&mut self, msg: u32) -> Result<UniqueIdListing, Failure> {
        block_on(self.0.uidl_one(msg)).map_err(failure)
    }

    fn dele(&mut self, msg: u32) -> Result<Reply, Failure> {
        block_on(self.0.dele(msg)).map_err(failure)
    }

    fn rset(&mut self) -> Result<Reply, Failure> {
        block_on(self.0.rset()).map_err(failure)
    }

    fn noop(&mut self) -> Result<Reply, Failure> {
        block_on(self.0.noop()).map_err(failure)
    }

    fn quit(self) -> Result<Reply, Failure> {
        block_on(self.0.quit()).map_err(failure)
    }

    fn utf8(&mut self) -> Result<Reply, Failure> {
        block_on(self.0.utf8()).map_err(failure)
    }

    fn lang(&mut self) -> Result<Vec<(String, String)>, Failure> {
        block_on(self.0.lang()).map_err(failure)
    }

    fn set_lang(&mut self, tag: &str) -> Result<Reply, Failure> {
        block_on(self.0.set_lang(tag)).map_err(failure)
    }

    fn stls(self) -> Result<Self, Failure> {
        block_on(self.0.stls()).map(Async).map_err(failure)
    }

    fn retr_many(&mut self, msgs: &[u32]) -> Result<Vec<Retrieved>, Failure> {
        let mut done: Vec<Retrieved> = Vec::new();
        let mut body = Vec::new();
        let mut started = false;
        block_on(self.0.retr_many(msgs, |msg, event| {
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
        }))
        .map_err(failure)?;
        Ok(done)
    }

    fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Failure> {
        block_on(self.0.dele_many(msgs)).map_err(failure)
    }

    fn retr_into_failing_writer(&mut self, msg: u32) -> Result<u64, Failure> {
        // A pipe whose reader is gone: its first write fails (`BrokenPipe`).
        let (mut writer, reader) = tokio::io::duplex(64);
        drop(reader);
        block_on(self.0.retr(msg, &mut writer)).map_err(failure)
    }

    fn stls_by_parts(mut self, ca_pem: &str) -> Result<Self, Failure> {
        block_on(async {
            self.0.stls_start().await.map_err(failure)?;
            let (stream, session) = self.0.into_parts();
            let pop3_async::Stream::Plain(tcp) = stream else {
                return Err(Failure::Other("not plaintext".into()));
            };
            let config = TlsOptions::default()
                .add_ca_pem(ca_pem.as_bytes())
                .and_then(|tls| tls.build())
                .map_err(|e| failure(e.into()))?;
            let name = pop3_async::rustls::pki_types::ServerName::try_from("127.0.0.1")
                .map_err(|e| Failure::Other(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Tls(e.to_string()))?;
            Connection::from_parts(pop3_async::Stream::Tls(Box::new(tls)), session)
                .await
                .map(Async)
                .map_err(failure)
        })
    }
}

pop3_tests::adapter_suite!(Async);
pop3_tests::interop_suite!(Async);
