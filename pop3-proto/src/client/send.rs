//! The send side: validating and queueing commands, releasing them under the pipelining
//! rules, and writing their lines.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Secret;
use crate::command::{Command, CommandId, CommandKind, Exposure, MAX_COMMAND_LINE};
use crate::config::Pipelining;
use crate::error::{EnqueueError, ProtocolError};
use crate::event::Trace;
use crate::sasl::Mechanism;
use crate::timing::Awaited;

use super::{AuthExchange, Client, InFlight, Phase, Queued};

impl Client {
    // ---- verbs ----

    /// Validates and queues a command; it is sent by a later `poll_transmit` when the
    /// pipelining rules allow. Nothing is queued if this fails.
    ///
    /// Refused: a command of another phase (the phase is that of the replies seen so far, so
    /// queue TRANSACTION commands after [`Event::LoggedIn`](crate::Event::LoggedIn); unless
    /// [`Config::server_enforces_phases`](crate::Config::server_enforces_phases)), arguments with CR, LF or NUL,
    /// lines over 255 octets, message number 0, a password, reusable token or APOP digest
    /// without TLS (unless [`Config::allow_plaintext_auth`](crate::Config::allow_plaintext_auth)), APOP without a greeting timestamp (so also
    /// before the greeting has arrived: queue APOP after [`Event::Greeting`](crate::Event::Greeting)), STLS on a
    /// TLS connection, anything after QUIT or a fatal error.
    pub fn enqueue(&mut self, command: Command) -> Result<CommandId, EnqueueError> {
        let kind = command.kind();
        if self.error.is_some()
            || self.quit_queued
            || matches!(self.phase, Phase::Closed | Phase::Update)
        {
            return Err(EnqueueError::Closed);
        }
        let props = kind.props();
        let allowed = if self.config.server_enforces_phases {
            props.allowed_in_relaxed(self.phase, kind)
        } else {
            props.allowed_in(self.phase)
        };
        if !allowed {
            return Err(EnqueueError::WrongPhase {
                command: kind,
                phase: self.phase,
            });
        }
        command.validate()?;
        // APOP sends no password, but an MD5 digest of a predictable challenge that an observer
        // can crack offline: it needs TLS (or the caller's consent) like PASS.
        let cleartext = match (props.exposure, &command) {
            (Exposure::None, _) => false,
            (Exposure::Always, _) => true,
            (Exposure::Mechanism, Command::Auth(mechanism)) => mechanism.exposes_secret(),
            (Exposure::Mechanism, _) => true,
        };
        if cleartext && !self.tls && !self.config.allow_plaintext_auth {
            return Err(EnqueueError::CleartextCredentials { command: kind });
        }
        match kind {
            CommandKind::Apop if self.timestamp.is_none() => {
                return Err(EnqueueError::ApopUnavailable);
            }
            CommandKind::Stls if self.tls => return Err(EnqueueError::TlsAlreadyActive),
            CommandKind::Quit => self.quit_queued = true,
            _ => {}
        }
        Ok(self.push_command(command))
    }

    /// Cancels the AUTH exchange in progress by answering the next challenge with `*`
    /// (RFC 5034 §4); the server then answers `-ERR`.
    pub fn cancel_auth(&mut self) -> Result<(), EnqueueError> {
        match self.in_flight.front_mut().and_then(|f| f.auth.as_mut()) {
            Some(exchange) if !exchange.cancelled => {
                exchange.cancelled = true;
                self.tx.extend_from_slice(b"*\r\n");
                self.trace(Trace::Sent("*".into()));
                Ok(())
            }
            _ => Err(EnqueueError::NoAuthInProgress),
        }
    }

    // ---- outputs ----

    /// Appends the bytes to send to `out` and returns how many were appended. Releases queued
    /// commands as far as the pipelining rules allow: one at a time until CAPA lists
    /// PIPELINING, then up to [`Config::pipeline_window`](crate::Config::pipeline_window); STLS, AUTH and UTF8 wait for
    /// an empty pipe and hold everything behind them, QUIT may follow commands in flight but
    /// holds everything behind it, and so do PASS/APOP/RPOP (the phase changes).
    ///
    /// USER holds the pipe too unless a PASS behind it exposes nothing the caller did not
    /// allow: when pipelining, a PASS queued behind USER goes out in the same write if the
    /// connection has TLS, or if [`Config::allow_plaintext_auth`](crate::Config::allow_plaintext_auth)
    /// is set and the current capabilities announce `USER`. Otherwise the PASS is sent only
    /// after USER's `+OK`, so a refused USER never exposes it (its `-ERR` cancels the PASS).
    /// A PASS already sent behind a refused USER is answered too: its reply is reported as
    /// any other (a server that logs in on it enters TRANSACTION).
    ///
    /// Nothing at all follows PASS, APOP, RPOP or AUTH on the wire before their reply: some
    /// servers hand the connection to a new process when the login succeeds and drop every
    /// byte that arrived before. The automatic CAPA after login is queued when the `+OK`
    /// arrives, ahead of what the caller queues next, and goes out in the same write as those
    /// commands: between login and that CAPA's answer, the list seen before login decides
    /// whether to pipeline.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        if self.error.is_some() {
            return 0;
        }
        if let Err(e) = self.schedule() {
            self.fail(e);
            return 0;
        }
        let n = self.tx.len();
        out.append(&mut self.tx);
        n
    }
}

impl Client {
    // ---- internals: sending ----

    fn push_command(&mut self, command: Command) -> CommandId {
        let id = CommandId(self.next_id);
        self.next_id += 1;
        self.queue.push_back(Queued { id, command });
        id
    }

    /// Queues an automatic CAPA ahead of everything the caller queued.
    pub(super) fn ask_capabilities(&mut self) {
        if self.config.auto_capa && self.phase != Phase::Closed {
            let id = CommandId(self.next_id);
            self.next_id += 1;
            self.queue.push_front(Queued {
                id,
                command: Command::Capa,
            });
        }
    }

    /// Whether commands go out without waiting for the replies before them now: the rule of
    /// [`Config::pipelining`](crate::Config::pipelining) and
    /// [`Config::pipeline_window`](crate::Config::pipeline_window) on the capabilities known
    /// (those seen before login speak for the server until the CAPA after it is answered).
    /// The scheduler's rule; a driver that plans ahead (how much to request before reading)
    /// asks here rather than repeating it.
    pub fn pipelines(&self) -> bool {
        self.config.pipeline_window > 1
            && match self.config.pipelining {
                // Between login and the answer to the CAPA that follows it, the list seen
                // before login still speaks for the server (the same connection, the same
                // security context).
                Pipelining::Auto => match (&self.capabilities, &self.pre_login_capabilities) {
                    (Some(now), _) => now.pipelining,
                    (None, Some(before)) => self.phase == Phase::Transaction && before.pipelining,
                    (None, None) => false,
                },
                Pipelining::Always => true,
                Pipelining::Never => false,
            }
    }

    /// Whether a PASS behind USER exposes nothing the caller did not allow: TLS, or plaintext
    /// allowed and `USER` announced by the current capabilities.
    fn pass_may_follow_user(&self) -> bool {
        self.tls
            || (self.config.allow_plaintext_auth
                && self.capabilities.as_ref().is_some_and(|c| c.user))
    }

    fn schedule(&mut self) -> Result<(), ProtocolError> {
        if matches!(
            self.phase,
            Phase::Greeting | Phase::TlsHandshake | Phase::Closed
        ) {
            return Ok(());
        }
        while let Some(next) = self.queue.front() {
            let kind = next.command.kind();
            if let Some(last) = self.in_flight.back() {
                if kind.props().barrier
                    || last.kind.props().holds_pipe(self.pass_may_follow_user())
                    || !self.pipelines()
                    || self.in_flight.len() >= self.config.pipeline_window
                    || self.in_flight_bytes + next.command.line_len_bound()
                        > self.config.max_pipeline_bytes
                {
                    break;
                }
            }
            let Some(Queued { id, command }) = self.queue.pop_front() else {
                break;
            };
            self.send(id, command)?;
        }
        Ok(())
    }

    fn send(&mut self, id: CommandId, command: Command) -> Result<(), ProtocolError> {
        let kind = command.kind();
        let shape = command.reply_shape();
        let msg = Awaited::message_number(&command);
        if self.config.trace {
            self.trace(Trace::Sent(command.redacted()));
        }
        let before = self.tx.len();
        let auth = match command {
            Command::Auth(mut mechanism) => {
                mechanism.configure(&self.config);
                let initial =
                    mechanism
                        .initial_response()
                        .map_err(|error| ProtocolError::SaslStart {
                            mechanism: mechanism.name().to_owned(),
                            error,
                        })?;
                let start = self.tx.len();
                self.tx.extend_from_slice(b"AUTH ");
                self.tx.extend_from_slice(mechanism.name().as_bytes());
                let mut deferred_initial = None;
                if let Some(initial) = initial {
                    let encoded = encode_response(&initial, true);
                    // RFC 5034 §4: the initial response only if the line stays within 255
                    // octets; otherwise it goes with the first (empty) continuation.
                    if self.tx.len() - start + 1 + encoded.len() + 2 <= MAX_COMMAND_LINE {
                        self.tx.push(b' ');
                        self.tx.extend_from_slice(&encoded);
                    } else {
                        deferred_initial = Some(initial);
                    }
                }
                self.tx.extend_from_slice(b"\r\n");
                Some(AuthExchange {
                    mechanism,
                    deferred_initial,
                    cancelled: false,
                })
            }
            command => {
                command.encode(&mut self.tx, self.timestamp.as_deref());
                None
            }
        };
        // UPDATE once every reply before QUIT is in: `phase()` is that of the replies
        // processed so far, and a pipelined QUIT may follow commands still in flight.
        if kind == CommandKind::Quit
            && self.phase == Phase::Transaction
            && self.in_flight.is_empty()
        {
            self.phase = Phase::Update;
        }
        let len = self.tx.len() - before;
        self.in_flight_bytes += len;
        self.in_flight.push_back(InFlight {
            id,
            kind,
            shape,
            auth,
            len,
            msg,
        });
        Ok(())
    }
}

/// Base64 of a SASL response: `=` for an empty initial response (RFC 5034 §4), an empty line
/// for an empty response to a challenge.
pub(super) fn encode_response(response: &Secret, initial: bool) -> Vec<u8> {
    if response.is_empty() {
        return if initial { b"=".to_vec() } else { Vec::new() };
    }
    BASE64.encode(response.expose()).into_bytes()
}
