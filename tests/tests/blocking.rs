//! The shared adapter suites, run against `pop3-blocking`.
#![allow(missing_docs)]

use pop3_blocking::pop3_proto::login::{
    LoginMethod, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
use pop3_blocking::pop3_proto::sasl::{ChannelBinding, Mechanism};
use pop3_blocking::pop3_proto::{Capabilities, Phase};
use pop3_blocking::{
    Connection, FetchReport, Listings, Pipeline, PipelineEvent, RetrEvent, SeenStore, TlsOptions,
};
use pop3_tests::suite::{Adapter, ConnectOptions, Failure, Greeting, Security};

use pop3_blocking as adapter;
#[path = "support/adapter_common.rs"]
mod common;
use common::{failure, options, security as security_of};

#[derive(Debug)]
struct Blocking(Connection);

impl Adapter for Blocking {
    fn connect(
        host: &str,
        port: u16,
        security: Security,
        connect: &ConnectOptions,
    ) -> Result<Self, Failure> {
        let security = security_of(security);
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

    fn connect_addrs(
        addrs: Vec<std::net::SocketAddr>,
        options: &ConnectOptions,
    ) -> std::io::Result<(std::net::SocketAddr, std::net::SocketAddr)> {
        let options =
            self::options(options).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let stream = pop3_blocking::connect_addrs(addrs, &options)?;
        Ok((stream.local_addr()?, stream.peer_addr()?))
    }

    fn host(&self) -> Option<String> {
        self.0.host().map(str::to_owned)
    }

    fn channel_binding(&self) -> Option<ChannelBinding> {
        self.0.channel_binding().cloned()
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

    fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Failure> {
        self.0.dele_many(msgs).map_err(failure)
    }

    fn retr_into_failing_writer(&mut self, msg: u32) -> Result<u64, Failure> {
        // A full buffer: its first write fails (`WriteZero`).
        let mut full: &mut [u8] = &mut [];
        self.0.retr(msg, &mut full).map_err(failure)
    }

    fn stls_by_parts(
        mut self,
        ca_pem: &str,
        server_name: &str,
        set_binding: bool,
    ) -> Result<Self, Failure> {
        self.0.stls_start().map_err(failure)?;
        let (stream, mut session) = self.0.into_parts();
        assert!(session.channel_binding().is_none(), "a binding before TLS");
        let pop3_blocking::Stream::Plain(mut tcp) = stream else {
            return Err(Failure::Other("not plaintext".into()));
        };
        let config = TlsOptions::default()
            .add_ca_pem(ca_pem.as_bytes())
            .and_then(|tls| tls.build())
            .map_err(|e| failure(e.into()))?;
        let name = pop3_blocking::rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| Failure::Other(e.to_string()))?;
        let mut tls = pop3_blocking::rustls::ClientConnection::new(config, name)
            .map_err(|e| failure(e.into()))?;
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp)
                .map_err(|e| Failure::Tls(e.to_string()))?;
        }
        if set_binding {
            session.set_channel_binding(pop3_blocking::channel_binding(&tls));
        }
        let stream = pop3_blocking::rustls::StreamOwned::new(tls, tcp);
        Connection::from_parts(pop3_blocking::Stream::Tls(Box::new(stream)), session)
            .map(Blocking)
            .map_err(failure)
    }

    fn retr_many_events(
        &mut self,
        msgs: &[u32],
        on_event: &mut dyn FnMut(u32, RetrEvent<'_>) -> std::io::Result<()>,
    ) -> Result<(), Failure> {
        self.0.retr_many(msgs, on_event).map_err(failure)
    }

    fn listings(&mut self) -> Result<Listings, Failure> {
        self.0.listings().map_err(failure)
    }

    fn pipeline_events(
        &mut self,
        pipeline: &mut Pipeline,
        count: usize,
        on_event: &mut dyn FnMut(PipelineEvent<'_>) -> std::io::Result<()>,
    ) -> Result<(), Failure> {
        self.0
            .pipeline_replies(pipeline, count, on_event)
            .map_err(failure)
    }

    fn dele_uid(&mut self, msg: u32, uid: &str) -> Result<Reply, Failure> {
        self.0.dele_uid(msg, uid).map_err(failure)
    }

    fn fetch_new(
        &mut self,
        store: &mut dyn SeenStore,
        on_event: &mut dyn FnMut(&UniqueIdListing, RetrEvent<'_>) -> std::io::Result<()>,
    ) -> Result<FetchReport, Failure> {
        self.0.fetch_new(store, on_event).map_err(failure)
    }

    fn retr_parsed(
        &mut self,
        msg: u32,
        max_octets: usize,
    ) -> Result<pop3_blocking::mail_parser::Message<'static>, Failure> {
        self.0.retr_parsed(msg, max_octets).map_err(failure)
    }

    fn parts_round_trip(self) -> Result<Self, Failure> {
        let (stream, session) = self.0.into_parts();
        Connection::from_parts(stream, session)
            .map(Blocking)
            .map_err(failure)
    }
}

pop3_tests::adapter_suite!(Blocking);
pop3_tests::interop_suite!(Blocking);
pop3_tests::sasl_suite!(Blocking);
pop3_tests::api_suite!(Blocking);
pop3_tests::network_suite!(Blocking);

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
