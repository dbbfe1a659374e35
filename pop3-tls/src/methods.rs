//! The method set both adapters share, written once: each method is one request of
//! [`pop3_proto::request`] run by the adapter's drive loop (`self.run`), `async` in
//! `pop3-async`. An adapter expands it inside `impl Connection<S>` with
//! `pop3_tls::methods!();` (blocking) or `pop3_tls::methods!(async await);`.

/// Expands the method set both adapters share in an adapter's `impl` block, written once:
/// each method is one request of [`pop3_proto::request`] run by the adapter's drive loop
/// (`self.run`), `async` in `pop3-async`: `pop3_tls::methods!();` (blocking) or
/// `pop3_tls::methods!(async await);`.
///
/// The adapter provides `fn run<R: Request>(&mut self, request: R) -> Result<R::Output,
/// ConnectionError>` (`async` in an async adapter) and a `session: Session` field.
#[macro_export]
macro_rules! methods {
    ($($asyncness:ident $aw:ident)?) => {
        /// `CAPA`: asks for the capabilities (also kept for
        /// [`capabilities`](pop3_tls::Session::capabilities)). A `-ERR` is `Error::Server`
        /// (with the `missing_capa` quirk the session then takes the server to have no
        /// extensions). On a closed connection it is
        /// [`Error::Closed`](pop3_tls::ConnectionError::Closed) (or `Unusable` after a
        /// timeout) and nothing is sent, the same in both adapters: never an empty answer.
        pub $($asyncness)? fn capa(&mut self) -> ::std::result::Result<$crate::pop3_proto::Capabilities, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::capa())$(.$aw)?
        }

        /// `USER name`. Nothing is sent behind it before its reply unless the server pipelines
        /// and a PASS behind it exposes nothing the caller did not allow (TLS, or plaintext
        /// allowed and `USER` announced), so that a refused USER never exposes the password.
        pub $($asyncness)? fn user(&mut self, name: &str) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::user(name)))$(.$aw)?
        }

        /// `PASS password`. Refused (`Error::Usage`) without TLS unless plaintext is allowed.
        /// On success the capabilities are asked again (with `auto_capa`) together with the
        /// next command, and unknown until then.
        pub $($asyncness)? fn pass(&mut self, password: impl Into<$crate::pop3_proto::Secret>) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::pass(password)))$(.$aw)?
        }

        /// `APOP name digest`: needs a greeting timestamp; the secret itself never crosses the
        /// wire.
        pub $($asyncness)? fn apop(&mut self, name: &str, secret: impl Into<$crate::pop3_proto::Secret>) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::apop(name, secret)))$(.$aw)?
        }

        /// `RPOP user` (RFC 1081, obsolete trusted-host login; after `user`).
        pub $($asyncness)? fn rpop(&mut self, user: &str) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::Rpop(user.to_owned())))$(.$aw)?
        }

        /// `AUTH` with any SASL mechanism (see [`pop3_proto::sasl`](pop3_tls::pop3_proto::sasl);
        /// RFC 5034); the core runs the challenge/response exchange. Mechanisms that expose a
        /// reusable secret are refused without TLS unless plaintext is allowed.
        pub $($asyncness)? fn auth(&mut self, mechanism: impl $crate::pop3_proto::sasl::Mechanism + 'static) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::auth(mechanism)))$(.$aw)?
        }

        /// Logs in with the best method the server offers (chosen by
        /// [`choose_login_bound`](pop3_tls::pop3_proto::login::choose_login_bound), carried out
        /// by [`request::login`](pop3_tls::pop3_proto::request::login)): the SCRAM -PLUS
        /// variants first when the TLS connection has a channel binding
        /// ([`Session::channel_binding`](pop3_tls::Session::channel_binding)), then
        /// SCRAM-SHA-512 > SCRAM-SHA-256 > SCRAM-SHA-1 > CRAM-MD5 > APOP (only with
        /// `Options::allow_apop`) > PLAIN > LOGIN > USER/PASS. Without TLS no method is chosen
        /// unless `Options::allow_plaintext`; then this fails with `Error::Login` before
        /// sending anything. Returns the method used.
        ///
        /// Every method `choose_login` returns has its plan: there is no catch-all (a server
        /// offering only unknown SASL mechanisms gets USER/PASS, `choose_login`'s last
        /// resort), the same in both adapters.
        ///
        /// On a session that is already logged in it fails with `Error::AlreadyLoggedIn` and
        /// sends nothing.
        pub $($asyncness)? fn login(&mut self, user: &str, password: impl Into<$crate::pop3_proto::Secret>) -> ::std::result::Result<$crate::pop3_proto::login::LoginMethod, $crate::ConnectionError> {
            let policy = self.session.options().login;
            let binding = self.session.channel_binding().cloned();
            self.run($crate::pop3_proto::request::login(user, password, policy, $crate::scram_nonce()?).channel_binding(binding))$(.$aw)?
        }

        /// Logs in with `method`, whatever the server advertises (see
        /// [`LoginPlan::method`](pop3_tls::pop3_proto::request::LoginPlan::method)): a SCRAM
        /// -PLUS method binds to this TLS connection, and a SCRAM method without binding is
        /// refused (`Error::Login`, nothing sent) when the connection could bind and the server
        /// advertises the -PLUS variant (the RFC 5802 downgrade rule).
        /// [`LoginMethod::External`](pop3_tls::pop3_proto::login::LoginMethod::External)
        /// ignores `password`: the TLS client certificate
        /// ([`TlsOptions::client_cert_files`](pop3_tls::TlsOptions::client_cert_files)) is the
        /// credential.
        pub $($asyncness)? fn login_with(&mut self, method: $crate::pop3_proto::login::LoginMethod, user: &str, password: impl Into<$crate::pop3_proto::Secret>) -> ::std::result::Result<$crate::pop3_proto::login::LoginMethod, $crate::ConnectionError> {
            let policy = self.session.options().login;
            let binding = self.session.channel_binding().cloned();
            self.run($crate::pop3_proto::request::login(user, password, policy, $crate::scram_nonce()?).channel_binding(binding).method(method))$(.$aw)?
        }

        /// `UTF8` (RFC 6856): asks for UTF-8 mode, before login.
        pub $($asyncness)? fn utf8(&mut self) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::Utf8))$(.$aw)?
        }

        /// `LANG`: the languages the server offers, as (tag, description) pairs (RFC 6856).
        pub $($asyncness)? fn lang(&mut self) -> ::std::result::Result<Vec<(String, String)>, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::lang())$(.$aw)?
        }

        /// `LANG tag`: switches the language of the server's texts (`*` lets the server
        /// choose).
        pub $($asyncness)? fn set_lang(&mut self, tag: &str) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::Lang(Some(tag.to_owned()))))$(.$aw)?
        }

        /// `STAT`: the number of messages and their total size.
        pub $($asyncness)? fn stat(&mut self) -> ::std::result::Result<$crate::pop3_proto::reply::Stat, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::stat())$(.$aw)?
        }

        /// `LIST`: every message's number and size.
        pub $($asyncness)? fn list(&mut self) -> ::std::result::Result<Vec<$crate::pop3_proto::reply::ScanListing>, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::list())$(.$aw)?
        }

        /// `LIST n`: one message's size.
        pub $($asyncness)? fn list_one(&mut self, msg: u32) -> ::std::result::Result<$crate::pop3_proto::reply::ScanListing, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::list_one(msg))$(.$aw)?
        }

        /// `UIDL`: every message's unique id.
        pub $($asyncness)? fn uidl(&mut self) -> ::std::result::Result<Vec<$crate::pop3_proto::reply::UniqueIdListing>, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::uidl())$(.$aw)?
        }

        /// `LIST` and `UIDL` together: both queued at once, so a server that pipelines gets
        /// them in one write (one round trip for both; one at a time otherwise). A `-ERR` to
        /// LIST is `Error::Server`, as in `list`; a `-ERR` to UIDL is
        /// [`Listings::unique_ids`](pop3_tls::pop3_proto::reply::Listings::unique_ids)' error
        /// (a server without UIDL is legal). See
        /// [`request::listings`](pop3_tls::pop3_proto::request::listings).
        pub $($asyncness)? fn listings(&mut self) -> ::std::result::Result<$crate::pop3_proto::reply::Listings, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::listings())$(.$aw)?
        }

        /// `UIDL n`: one message's unique id.
        pub $($asyncness)? fn uidl_one(&mut self, msg: u32) -> ::std::result::Result<$crate::pop3_proto::reply::UniqueIdListing, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::uidl_one(msg))$(.$aw)?
        }

        /// `DELE n`: marks the message deleted; the server deletes it only when `quit`
        /// succeeds.
        pub $($asyncness)? fn dele(&mut self, msg: u32) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::dele(msg)))$(.$aw)?
        }

        /// `RSET`: unmarks every deleted message.
        pub $($asyncness)? fn rset(&mut self) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::Rset))$(.$aw)?
        }

        /// `NOOP`.
        pub $($asyncness)? fn noop(&mut self) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::simple($crate::pop3_proto::Command::Noop))$(.$aw)?
        }

        /// Retrieves many messages, pipelined when the server announces PIPELINING (the core
        /// keeps a bounded window in flight), one at a time otherwise. `on_event` sees each
        /// message as one `RetrEvent::Start`, `RetrEvent::Chunk`s (none for an empty message)
        /// and one `RetrEvent::End`, or as one `RetrEvent::Refused`, in the order of `msgs`;
        /// it is called synchronously.
        ///
        /// If `on_event` fails, it is not called again, the remaining replies are read and
        /// discarded, and its error is returned as `Error::Io`; the connection stays usable.
        pub $($asyncness)? fn retr_many(&mut self, msgs: &[u32], on_event: impl FnMut(u32, $crate::pop3_proto::request::RetrEvent<'_>) -> ::std::io::Result<()>) -> ::std::result::Result<(), $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::retr_many(msgs, on_event))$(.$aw)?
        }

        /// Sends what `pipeline` queued (RETRs and DELEs, pipelined when the server announces
        /// PIPELINING, within the core's window; one at a time otherwise) and hands the replies
        /// of its next `count` commands to `on_event`, synchronously, in the order they were
        /// queued: each message of a RETR as in `retr_many`, each DELE as its result. It
        /// returns once the `count`-th reply is complete; the later commands stay in flight
        /// for the next call. See
        /// [`request::Pipeline`](pop3_tls::pop3_proto::request::Pipeline).
        ///
        /// This keeps the wire busy across the batches of a caller that stores messages in
        /// batches: queue batch k+1 before reading the replies of batch k, and no round trip
        /// is lost between them.
        ///
        /// If `on_event` fails, it is not called again, the rest of the `count` replies is
        /// read and discarded, and its error is returned as `Error::Io`; the connection stays
        /// usable and the later commands stay in flight. Run nothing else while the pipeline
        /// has unanswered commands, except `quit` (which reads and discards their replies).
        ///
        /// A QUIT queued with `Pipeline::quit` goes out behind the last commands (in the same
        /// write when the server pipelines) and its reply comes as `PipelineEvent::Quit`,
        /// counted in `count`; the session is then over: `quit` sends no second QUIT (it
        /// fails with `Error::Usage`), and dropping the connection is all that is left.
        pub $($asyncness)? fn pipeline_replies(&mut self, pipeline: &mut $crate::pop3_proto::request::Pipeline, count: usize, on_event: impl FnMut($crate::pop3_proto::request::PipelineEvent<'_>) -> ::std::io::Result<()>) -> ::std::result::Result<(), $crate::ConnectionError> {
            self.run(pipeline.replies(count, on_event))$(.$aw)?
        }

        /// Deletes many messages, pipelined when the server allows; one result per message,
        /// in the order of `msgs`. The server deletes them only when `quit` succeeds.
        pub $($asyncness)? fn dele_many(&mut self, msgs: &[u32]) -> ::std::result::Result<Vec<::std::result::Result<(), $crate::pop3_proto::reply::ServerError>>, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::dele_many(msgs))$(.$aw)?
        }

        /// `DELE msg`, but only if message `msg` is still the one with unique id `uid`: first
        /// `UIDL msg`, and the DELE only when the server answers with that same number and
        /// UID ([`request::dele_uid`](pop3_tls::pop3_proto::request::dele_uid)).
        ///
        /// Message numbers are per session; a number remembered from an earlier session (or
        /// a listing another client changed since) may now name another message. On a
        /// different answer nothing is deleted and the call fails with
        /// `UidError::Mismatch` (as `Error::Uid`); a server without UIDL, or a message
        /// already gone, is an `Error::Server` from the `UIDL`, again with nothing deleted.
        /// The session goes on in every case.
        ///
        /// As with `dele`, the server deletes only when `quit` succeeds: delete only what you
        /// have durably stored.
        pub $($asyncness)? fn dele_uid(&mut self, msg: u32, uid: &str) -> ::std::result::Result<$crate::pop3_proto::reply::Reply, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::dele_uid(msg, uid))$(.$aw)?
        }

        /// Fetches the messages that `store` has not recorded yet (the `pop3` command's "only
        /// what is new" logic, with your store): `UIDL`, then the unrecorded messages with
        /// `retr_many` (pipelined when the server allows); see
        /// [`request::fetch_new`](pop3_tls::pop3_proto::request::fetch_new).
        ///
        /// `on_event` sees each message as in `retr_many`, with its UIDL entry, synchronously.
        /// After the message's `End` was handed over and `on_event` returned `Ok`, its UID is
        /// recorded with `SeenStore::record`: store the message durably in `on_event` before
        /// returning from its `End`. A refused message is not recorded (the next call tries it
        /// again).
        ///
        /// This never deletes anything: deleting stays your decision, with `dele_uid` for each
        /// message you have stored.
        ///
        /// A UIDL listing that gives one UID to two messages (or lists a number twice) fails
        /// before any message is fetched. An error from `on_event` or from the store stops the
        /// handing over (as in `retr_many`, the rest is read and discarded and the connection
        /// stays usable) and is returned as `Error::Io`; the messages recorded before it stay
        /// recorded.
        pub $($asyncness)? fn fetch_new<St: $crate::pop3_proto::uid::SeenStore + ?Sized>(&mut self, store: &mut St, on_event: impl FnMut(&$crate::pop3_proto::reply::UniqueIdListing, $crate::pop3_proto::request::RetrEvent<'_>) -> ::std::io::Result<()>) -> ::std::result::Result<$crate::pop3_proto::uid::FetchReport, $crate::ConnectionError> {
            self.run($crate::pop3_proto::request::fetch_new(store, on_event))$(.$aw)?
        }

        /// `RETR msg`, parsed (RFC 5322 headers, MIME parts, decoded bodies) by `mail_parser`,
        /// re-exported by the adapter. Only with the `mime` feature.
        ///
        /// The message is held in memory to be parsed, so at most `max_octets` octets are
        /// kept: a larger message fails with `Error::MessageTooLarge` (its rest is read and
        /// discarded; the session goes on). A message with no header `mail_parser` can read is
        /// `Error::NotAMessage`.
        #[cfg(feature = "mime")]
        pub $($asyncness)? fn retr_parsed(&mut self, msg: u32, max_octets: usize) -> ::std::result::Result<mail_parser::Message<'static>, $crate::ConnectionError> {
            let body = self.run($crate::pop3_proto::request::retr_limited(msg, max_octets))$(.$aw)?;
            let body = body?;
            mail_parser::MessageParser::default()
                .parse(&body)
                .map(mail_parser::Message::into_owned)
                .ok_or($crate::ConnectionError::NotAMessage { msg })
        }
    };
}
