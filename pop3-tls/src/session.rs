//! The state both adapters' drive loops share: the core's [`Client`], the greeting, the read
//! deadlines and whether the connection is still usable. An adapter's loop only moves bytes:
//!
//! ```text
//! session.check()?;
//! loop {
//!     if let Some(result) = session.advance(&mut request) { return result }
//!     write what session.transmit() gives;
//!     wait at most session.read_wait(now)? for input; read into session.input_buffer(n);
//!     session.received(n, now)   // or session.io_error(e) on failure
//! }
//! ```

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use pop3_proto::reply::Greeting;
use pop3_proto::request::Request;
use pop3_proto::sasl::ChannelBinding;
use pop3_proto::{Capabilities, Client, Event, Expired, Phase, ReadClock, Trace};

use crate::{ConnectionError as Error, Options, TRACE_TARGET};

/// A POP3 session without its stream: what `into_parts` of an adapter's `Connection` gives
/// (with the stream), and what its `from_parts` takes back, for example after a TLS handshake
/// of your own on that stream (see the adapters' `stls_start`). An adapter's `Connection`
/// dereferences to its session, for the getters below.
pub struct Session {
    client: Client,
    greeting: Greeting,
    clock: ReadClock,
    options: Options,
    host: Option<String>,
    broken: bool,
    timed_out: Option<Expired>,
    eof: bool,
    channel_binding: Option<ChannelBinding>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client)
            .field("greeting", &self.greeting)
            .field("host", &self.host)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session before its greeting. `tls`: the stream is already encrypted. The core's
    /// configuration is [`Options::client_config`], `trace` on when `tracing` has DEBUG
    /// enabled for [`TRACE_TARGET`].
    pub fn new(options: &Options, host: Option<String>, tls: bool) -> Result<Self, Error> {
        let trace = tracing::enabled!(target: TRACE_TARGET, tracing::Level::DEBUG);
        let mut client = Client::new(options.client_config(trace));
        if tls {
            client.handle_tls_established()?;
        }
        Ok(Self {
            client,
            greeting: Greeting::default(),
            clock: options.read_clock(),
            options: options.clone(),
            host,
            broken: false,
            timed_out: None,
            eof: false,
            channel_binding: None,
        })
    }

    /// The session of a connection to `host` made with `security`, before it is dialed: the
    /// host in A-labels ([`ascii_host`](crate::ascii_host): for DNS, the proxy, SNI and the
    /// certificate check; [`host`](Self::host) gives it back for dialing), encrypted from
    /// the start with [`Security::Implicit`](crate::Security::Implicit). Both adapters'
    /// `connect` begin here.
    pub fn connecting(
        host: &str,
        security: crate::Security,
        options: &Options,
    ) -> Result<Self, Error> {
        let host = crate::ascii_host(host)?;
        Self::new(options, Some(host), security == crate::Security::Implicit)
    }

    /// The server's greeting (empty before it came).
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// The capabilities from the latest CAPA, or `None` while unknown (the server has no CAPA
    /// and [`Quirks::missing_capa`](pop3_proto::Quirks::missing_capa) is off, or
    /// [`Config::auto_capa`](pop3_proto::Config::auto_capa) is off and `capa` was not called
    /// since the last login or STLS). Right after a login it is `None` too: the CAPA asked
    /// then goes out with the next command, and its answer is known when that command returns.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    /// The protocol core, to read its state.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session phase.
    pub fn phase(&self) -> Phase {
        self.client.phase()
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.client.is_tls()
    }

    /// Whether the server accepted `utf8`.
    pub fn is_utf8(&self) -> bool {
        self.client.is_utf8()
    }

    /// Whether an earlier fatal error closed the connection (every call now returns
    /// [`Error::Closed`], or [`Error::Unusable`] after a timeout).
    pub fn is_poisoned(&self) -> bool {
        self.broken
    }

    /// The timeout now in force.
    pub fn timeout(&self) -> Duration {
        self.clock.timeout()
    }

    /// The channel binding of the TLS connection (for SCRAM -PLUS), when known: the adapters
    /// set it after each handshake of their own ([`crate::channel_binding`]).
    pub fn channel_binding(&self) -> Option<&ChannelBinding> {
        self.channel_binding.as_ref()
    }

    /// Records the channel binding of the TLS connection the session runs on, for
    /// `Connection::login` (SCRAM -PLUS, and the `y` flag). After a TLS handshake of your own
    /// (`from_parts`), set it from your TLS stack, or leave it unset: the session then does not
    /// bind (GS2 flag `n`).
    pub fn set_channel_binding(&mut self, binding: Option<ChannelBinding>) {
        self.channel_binding = binding;
    }

    /// The host name given to `connect`, for the certificate check after STLS.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The options the connection was made with (timeout and speed limit as set since).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Changes the timeout from the next wait on; zero is refused ([`Error::Io`] of kind
    /// `InvalidInput`).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        if timeout.is_zero() {
            return Err(Error::Io(io::ErrorKind::InvalidInput.into()));
        }
        self.clock.set_timeout(timeout);
        self.options.timeout = timeout;
        Ok(())
    }

    /// Changes the low-speed limit of multi-line replies; 0 turns it off.
    pub fn set_speed_limit(&mut self, bytes_per_second: u32, time: Duration) {
        self.clock.set_speed_limit(bytes_per_second, time);
        self.options.speed_limit = bytes_per_second;
        self.options.speed_time = time;
    }

    /// Fails if an earlier fatal error closed the connection, or closes it if the core has a
    /// fatal error.
    pub fn check(&mut self) -> Result<(), Error> {
        if self.broken {
            return Err(self.timed_out.map_or(Error::Closed, Error::Unusable));
        }
        if let Some(error) = self.client.error() {
            let error = Error::Protocol(error.clone());
            return Err(self.fail(error));
        }
        Ok(())
    }

    /// Closes the connection for good with `error` (a timeout is repeated by every later call).
    pub fn fail(&mut self, error: Error) -> Error {
        self.broken = true;
        if let Error::Timeout(expired) = &error {
            self.timed_out = Some(*expired);
        }
        error
    }

    /// Runs `request` as far as the buffered input allows: its result, or `None` when it
    /// needs I/O. A protocol error, or the end of input before the result, closes the
    /// connection. Traces and quirks go to `tracing`.
    pub fn advance<R: Request>(&mut self, request: &mut R) -> Option<Result<R::Output, Error>> {
        loop {
            if let Some(result) = request.poll(&mut self.client) {
                return Some(result.map_err(Error::from));
            }
            match self.client.poll_event() {
                Ok(Some(event)) => {
                    log(&event);
                    request.on_event(&event);
                }
                Ok(None) if self.eof => return Some(Err(self.fail(Error::Closed))),
                Ok(None) => return None,
                Err(error) => return Some(Err(self.fail(Error::Protocol(error)))),
            }
        }
    }

    /// Records the greeting (from [`pop3_proto::request::open`]).
    pub fn set_greeting(&mut self, greeting: Greeting) {
        self.greeting = greeting;
    }

    /// The command bytes to send now (appended to `out`); the count.
    pub fn transmit(&mut self, out: &mut Vec<u8>) -> usize {
        self.client.poll_transmit(out)
    }

    /// Whether the core waits for the TLS handshake after STLS: read nothing then.
    pub fn is_awaiting_tls(&self) -> bool {
        self.client.is_awaiting_tls()
    }

    /// How long the next read may wait, from what the core awaits now; a deadline already
    /// past closes the connection with [`Error::Timeout`].
    pub fn read_wait(&mut self, now: Instant) -> Result<Duration, Error> {
        self.clock.observe(self.client.awaiting(), now);
        self.clock
            .wait(now)
            .map_err(|expired| self.fail(Error::Timeout(expired)))
    }

    /// The read limit that ran out, when the wait [`read_wait`](Self::read_wait) gave is over:
    /// the connection is closed with it.
    pub fn timed_out(&mut self) -> Error {
        let expired = self.clock.expired();
        self.fail(Error::Timeout(expired))
    }

    /// A failed read or write: the connection is closed with it (a timeout as
    /// [`Error::Timeout`]).
    pub fn io_error(&mut self, error: io::Error) -> Error {
        let expired = self.clock.expired();
        self.fail(Error::from_connection_io(error, expired))
    }

    /// Where the next read goes: at most `len` bytes of the core's input buffer.
    pub fn input_buffer(&mut self, len: usize) -> &mut [u8] {
        self.client.input_buffer(len)
    }

    /// `n` bytes were read into [`input_buffer`](Self::input_buffer) at `now`; 0 is the end of
    /// input.
    pub fn received(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.eof = true;
            self.client.handle_eof();
        } else {
            self.client.commit_input(n);
            self.clock.on_input(n, now);
        }
    }

    /// After the `+OK` to STLS: fails (closing the connection) if the server sent anything
    /// after it (STARTTLS injection) or the session is not waiting for TLS.
    pub fn check_awaiting_tls(&mut self) -> Result<(), Error> {
        // What came with the +OK is processed now: the core flags any byte after it.
        while let Ok(Some(event)) = self.client.poll_event() {
            log(&event);
        }
        self.check()?;
        if !self.client.is_awaiting_tls() {
            return Err(self.fail(Error::Closed));
        }
        Ok(())
    }

    /// The TLS handshake after STLS is done: the core forgets the capabilities and asks again.
    pub fn tls_established(&mut self) -> Result<(), Error> {
        Ok(self.client.handle_tls_established()?)
    }
}

/// Logs what the core says besides replies: the protocol trace and tolerated quirks.
fn log(event: &Event<'_>) {
    match event {
        Event::Trace(Trace::Sent(line)) => tracing::debug!(target: TRACE_TARGET, "C: {line}"),
        Event::Trace(Trace::Received(line)) => tracing::debug!(target: TRACE_TARGET, "S: {line}"),
        Event::Quirk(quirk) => {
            tracing::debug!(target: TRACE_TARGET, "tolerating a server quirk: {quirk:?}")
        }
        _ => {}
    }
}
