//! The shared adapter suites, run against `pop3-async` through a Tokio runtime's `block_on`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::sync::LazyLock;

use pop3_async::pop3_proto::login::{
    LoginMethod, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
use pop3_async::pop3_proto::sasl::{ChannelBinding, Mechanism};
use pop3_async::pop3_proto::{Capabilities, Phase};
use pop3_async::{
    Connection, FetchReport, Listings, Pipeline, PipelineEvent, RetrEvent, SeenStore, TlsOptions,
};
use pop3_tests::suite::{Adapter, ConnectOptions, Failure, Greeting, Security};
use tokio::runtime::Runtime;

use pop3_async as adapter;
#[path = "support/adapter_common.rs"]
mod common;
use common::{failure, options, security as security_of};

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

impl Adapter for Async {
    fn connect(
        host: &str,
        port: u16,
        security: Security,
        connect: &ConnectOptions,
    ) -> Result<Self, Failure> {
        let security = security_of(security);
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

    fn connect_addrs(
        addrs: Vec<std::net::SocketAddr>,
        options: &ConnectOptions,
    ) -> std::io::Result<(std::net::SocketAddr, std::net::SocketAddr)> {
        let options =
            self::options(options).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let stream = block_on(pop3_async::connect_addrs(addrs, &options))?;
        Ok((stream.local_addr()?, stream.peer_addr()?))
    }

    fn host(&self) -> Option<String> {
        self.0.host().map(str::to_owned)
    }

    fn channel_binding(&self) -> Option<ChannelBinding> {
        self.0.channel_binding().cloned()
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

    fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Failure> {
        block_on(self.0.dele_many(msgs)).map_err(failure)
    }

    fn retr_into_failing_writer(&mut self, msg: u32) -> Result<u64, Failure> {
        // A pipe whose reader is gone: its first write fails (`BrokenPipe`).
        let (mut writer, reader) = tokio::io::duplex(64);
        drop(reader);
        block_on(self.0.retr(msg, &mut writer)).map_err(failure)
    }

    fn stls_by_parts(
        mut self,
        ca_pem: &str,
        server_name: &str,
        set_binding: bool,
    ) -> Result<Self, Failure> {
        block_on(async {
            self.0.stls_start().await.map_err(failure)?;
            let (stream, mut session) = self.0.into_parts();
            assert!(session.channel_binding().is_none(), "a binding before TLS");
            let pop3_async::Stream::Plain(tcp) = stream else {
                return Err(Failure::Other("not plaintext".into()));
            };
            let config = TlsOptions::default()
                .add_ca_pem(ca_pem.as_bytes())
                .and_then(|tls| tls.build())
                .map_err(|e| failure(e.into()))?;
            let name = pop3_async::rustls::pki_types::ServerName::try_from(server_name.to_owned())
                .map_err(|e| Failure::Other(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Tls(e.to_string()))?;
            if set_binding {
                session.set_channel_binding(pop3_async::channel_binding(tls.get_ref().1));
            }
            Connection::from_parts(pop3_async::Stream::Tls(Box::new(tls)), session)
                .await
                .map(Async)
                .map_err(failure)
        })
    }

    fn retr_many_events(
        &mut self,
        msgs: &[u32],
        on_event: &mut dyn FnMut(u32, RetrEvent<'_>) -> std::io::Result<()>,
    ) -> Result<(), Failure> {
        block_on(self.0.retr_many(msgs, on_event)).map_err(failure)
    }

    fn listings(&mut self) -> Result<Listings, Failure> {
        block_on(self.0.listings()).map_err(failure)
    }

    fn pipeline_events(
        &mut self,
        pipeline: &mut Pipeline,
        count: usize,
        on_event: &mut dyn FnMut(PipelineEvent<'_>) -> std::io::Result<()>,
    ) -> Result<(), Failure> {
        block_on(self.0.pipeline_replies(pipeline, count, on_event)).map_err(failure)
    }

    fn dele_uid(&mut self, msg: u32, uid: &str) -> Result<Reply, Failure> {
        block_on(self.0.dele_uid(msg, uid)).map_err(failure)
    }

    fn fetch_new(
        &mut self,
        store: &mut dyn SeenStore,
        on_event: &mut dyn FnMut(&UniqueIdListing, RetrEvent<'_>) -> std::io::Result<()>,
    ) -> Result<FetchReport, Failure> {
        block_on(self.0.fetch_new(store, on_event)).map_err(failure)
    }

    fn retr_parsed(
        &mut self,
        msg: u32,
        max_octets: usize,
    ) -> Result<pop3_async::mail_parser::Message<'static>, Failure> {
        block_on(self.0.retr_parsed(msg, max_octets)).map_err(failure)
    }

    fn parts_round_trip(self) -> Result<Self, Failure> {
        let (stream, session) = self.0.into_parts();
        block_on(Connection::from_parts(stream, session))
            .map(Async)
            .map_err(failure)
    }
}

pop3_tests::adapter_suite!(Async);
pop3_tests::interop_suite!(Async);
pop3_tests::sasl_suite!(Async);
pop3_tests::api_suite!(Async);
pop3_tests::network_suite!(Async);
