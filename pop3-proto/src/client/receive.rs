//! The receive side: framing the server's bytes into lines and bodies, parsing status lines
//! and listings, and turning them into events.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::body::{BodyDecoder, Decoded};
use crate::capa::Capabilities;
use crate::command::{CommandId, CommandKind, Listing, ReplyShape};
use crate::error::{MAX_NAMED_DUPLICATES, ProtocolError};
use crate::event::{Event, Quirk, Trace};
use crate::response::{self, GreetingLine, StatusLine, StatusView};
use crate::sasl::Mechanism;

use super::send::encode_response;
use super::{Client, InFlight, Pending, Phase, Reply};

/// What a LIST or UIDL listing has shown so far, to catch repeated message numbers and
/// unique-ids (issue 10 item 2). Its size is bounded by [`Config::max_listing_entries`].
#[derive(Debug, Default)]
pub(super) struct ListingCheck {
    numbers: HashSet<u32>,
    uids: HashSet<Box<[u8]>>,
    repeated_numbers: Vec<u32>,
    repeated_uids: Vec<String>,
    repeated: usize,
}

impl ListingCheck {
    /// Records one entry; `uid` for UIDL entries.
    fn record(&mut self, msg: u32, uid: Option<&str>) {
        let mut repeated = false;
        if !self.numbers.insert(msg) {
            repeated = true;
            if self.repeated_numbers.len() < MAX_NAMED_DUPLICATES
                && !self.repeated_numbers.contains(&msg)
            {
                self.repeated_numbers.push(msg);
            }
        }
        if let Some(uid) = uid {
            if !self.uids.insert(uid.as_bytes().into()) {
                repeated = true;
                if self.repeated_uids.len() < MAX_NAMED_DUPLICATES
                    && !self.repeated_uids.iter().any(|u| u == uid)
                {
                    self.repeated_uids.push(uid.to_owned());
                }
            }
        }
        if repeated {
            self.repeated += 1;
        }
    }

    /// The error for a listing that repeated something, if it did.
    fn verdict(self, listing: &'static str) -> Result<(), ProtocolError> {
        if self.repeated == 0 {
            return Ok(());
        }
        Err(ProtocolError::DuplicateEntries {
            listing,
            numbers: self.repeated_numbers,
            uids: self.repeated_uids,
            repeated: self.repeated,
        })
    }
}

/// What one step of the receive path produced.
enum Step {
    Queued,
    Body {
        id: CommandId,
        start: usize,
        end: usize,
    },
    Uid {
        id: CommandId,
        msg: u32,
        start: usize,
        end: usize,
    },
    /// The end of a body, handed out at once rather than queued (its `Ok` is queued).
    BodyEnd {
        id: CommandId,
        octets: u64,
    },
}

impl Client {
    // ---- inputs ----

    /// Records bytes received from the server. It only buffers (a copy); `poll_event` parses.
    /// To save the copy, read straight into [`input_buffer`](Self::input_buffer) instead.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.input_buffer(bytes.len()).copy_from_slice(bytes);
        self.commit_input(bytes.len());
    }

    /// Space of at least `len` bytes at the end of the input buffer, for a read from the
    /// connection to fill directly; then call [`commit_input`](Self::commit_input) with the
    /// number of bytes read. The buffer grows only when a read asks for more room than it has,
    /// so its size is the largest read plus a partial line.
    pub fn input_buffer(&mut self, len: usize) -> &mut [u8] {
        if self.rx_pos > 0 {
            // The consumed bytes are about to be overwritten: keep the last status line.
            if let Some(range) = self.lent.line_at.take() {
                self.lent.line.clear();
                self.lent
                    .line
                    .extend_from_slice(self.rx.get(range).unwrap_or_default());
            }
            self.rx.copy_within(self.rx_pos..self.rx_end, 0);
            self.rx_end -= self.rx_pos;
            self.rx_pos = 0;
        }
        if self.rx.len() < self.rx_end + len {
            self.rx.resize(self.rx_end + len, 0);
        }
        &mut self.rx[self.rx_end..self.rx_end + len]
    }

    /// Records that the first `len` bytes of the last [`input_buffer`](Self::input_buffer)
    /// were filled by a read.
    pub fn commit_input(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        if self.phase == Phase::TlsHandshake {
            self.fail(ProtocolError::StartTlsInjection);
        }
        if self.error.is_none() {
            self.rx_end = (self.rx_end + len).min(self.rx.len());
        }
    }

    /// Records that the server closed the connection (a read returned 0 bytes).
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }
}

impl Client {
    /// The next event, `Ok(None)` when more input is needed, or the sticky fatal error.
    ///
    /// It is also the one body output path: the chunks of a RETR/TOP body come as
    /// [`Event::Body`], straight from the decoder when the body is in the middle of the
    /// buffer (the fast path, inlined here), from the general path otherwise. Events borrow
    /// everything they carry (texts from buffers the client reuses), so a reply costs no
    /// allocation and an `Event` is `Copy`: moving it out of the `Result` first costs nothing
    /// measurable, and either loop is as fast (the `decode_ratio` benchmark):
    ///
    /// ```no_run
    /// # use pop3_proto::{Client, Event, ProtocolError};
    /// # fn f(client: &mut Client, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    /// while let Some(event) = client.poll_event()? {
    ///     match event {
    ///         Event::Body { chunk, .. } => out.extend_from_slice(chunk),
    ///         Event::Err { text, .. } => eprintln!("refused: {text}"),
    ///         _other => { /* handle it */ }
    ///     }
    /// }
    /// // `Ok(None)`: read more input
    /// # Ok(()) }
    /// ```
    #[inline(always)]
    pub fn poll_event(&mut self) -> Result<Option<Event<'_>>, ProtocolError> {
        // The hot path: the next chunk of a body, straight from the decoder.
        if let Some((id, start, end)) = self.fast_body() {
            return Ok(Some(Event::Body {
                id,
                chunk: &self.rx[start..end],
            }));
        }
        self.poll_event_slow()
    }

    /// The fast path of [`poll_event`](Self::poll_event): the next chunk of a body in the
    /// middle of the buffer (its command and range in `rx`), consumed; `None` (and nothing
    /// changed) for everything else.
    #[inline(always)]
    fn fast_body(&mut self) -> Option<(CommandId, usize, usize)> {
        let Reply::Body { id, decoder, .. } = &mut self.reply else {
            return None;
        };
        if !self.events.is_empty() || self.error.is_some() {
            return None;
        }
        let base = self.rx_pos;
        let (start, end) = decoder.fast_data(&self.rx[base..self.rx_end])?;
        self.rx_pos = base + end;
        Some((*id, base + start, base + end))
    }

    #[inline(never)]
    fn poll_event_slow(&mut self) -> Result<Option<Event<'_>>, ProtocolError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.events.is_empty() {
            match self.advance() {
                Ok(None) => return Ok(None),
                Ok(Some(Step::Queued)) => {}
                Ok(Some(Step::Body { id, start, end })) => {
                    return Ok(Some(Event::Body {
                        id,
                        chunk: &self.rx[start..end],
                    }));
                }
                Ok(Some(Step::Uid {
                    id,
                    msg,
                    start,
                    end,
                })) => {
                    // The parser checked that the uid is printable ASCII.
                    let uid = std::str::from_utf8(&self.rx[start..end]).unwrap_or_default();
                    return Ok(Some(Event::UidlEntry { id, msg, uid }));
                }
                Ok(Some(Step::BodyEnd { id, octets })) => {
                    return Ok(Some(Event::BodyEnd { id, octets }));
                }
                Err(e) => {
                    self.fail(e.clone());
                    return Err(e);
                }
            }
        }
        let Some(pending) = self.events.pop_front() else {
            return Ok(None);
        };
        let lent = &mut self.lent;
        Ok(Some(match pending {
            Pending::Owned(event) => event,
            Pending::Capabilities(id) => Event::Capabilities {
                id,
                capabilities: self.capabilities.as_ref().unwrap_or(&EMPTY_CAPABILITIES),
            },
            Pending::Reply {
                ok: true,
                id,
                command,
            } => Event::Ok {
                id,
                command,
                code: lent.code.as_ref(),
                text: &lent.text,
            },
            Pending::Reply {
                ok: false,
                id,
                command,
            } => Event::Err {
                id,
                command,
                code: lent.code.as_ref(),
                text: &lent.text,
            },
            Pending::Greeting { ok, apop } => Event::Greeting {
                ok,
                code: lent.code.as_ref(),
                text: &lent.text,
                apop,
            },
            Pending::Lang {
                id,
                tag,
                description,
            } => {
                lent.lang = (tag, description);
                Event::LangEntry {
                    id,
                    tag: &lent.lang.0,
                    description: &lent.lang.1,
                }
            }
            Pending::Trace(line) => {
                lent.trace = line;
                Event::Trace(&lent.trace)
            }
        }))
    }
}

impl Client {
    /// Takes one complete line (without its line end) from the buffer, or `None` if none is
    /// complete yet. Enforces `limit` (line end included) and the bare-LF policy.
    fn take_line(
        &mut self,
        limit: usize,
        what: &'static str,
    ) -> Result<Option<(usize, usize)>, ProtocolError> {
        let buffered = &self.rx[self.rx_pos..self.rx_end];
        let Some(i) = memchr::memchr(b'\n', buffered) else {
            if buffered.len() >= limit {
                return Err(ProtocolError::LineTooLong { what, limit });
            }
            return Ok(None);
        };
        if i + 1 > limit {
            return Err(ProtocolError::LineTooLong { what, limit });
        }
        let start = self.rx_pos;
        self.rx_pos += i + 1;
        if i > 0 && buffered[i - 1] == b'\r' {
            return Ok(Some((start, start + i - 1)));
        }
        if !self.config.quirks.bare_lf {
            return Err(ProtocolError::BareLineFeed);
        }
        self.quirk(Quirk::BareLineFeed);
        Ok(Some((start, start + i)))
    }

    /// Handles the end of input: fine after QUIT, fatal anywhere else.
    fn at_eof(&self) -> Result<Option<Step>, ProtocolError> {
        if !self.eof || self.phase == Phase::Closed {
            return Ok(None);
        }
        match self.in_flight.front() {
            Some(f) => Err(ProtocolError::UnexpectedEof { command: f.kind }),
            None => Err(ProtocolError::ConnectionClosed),
        }
    }

    /// Processes buffered input until an event is ready or more input is needed.
    fn advance(&mut self) -> Result<Option<Step>, ProtocolError> {
        loop {
            if let Some(e) = &self.error {
                return Err(e.clone());
            }
            if !self.events.is_empty() {
                return Ok(Some(Step::Queued));
            }
            if self.phase == Phase::TlsHandshake {
                if self.rx_pos < self.rx_end {
                    return Err(ProtocolError::StartTlsInjection);
                }
                return Ok(None);
            }
            let step = match &mut self.reply {
                Reply::Body { decoder, .. } => {
                    let decoded = decoder.decode(&self.rx[self.rx_pos..self.rx_end]).map_err(
                        |crate::body::BodyError::LineTooLong { limit }| {
                            ProtocolError::BodyLineTooLong { limit }
                        },
                    )?;
                    self.body_step(decoded)?
                }
                Reply::Listing { .. } => self.listing_step()?,
                Reply::Status => self.status_step()?,
                Reply::AfterDotCr => match self.rx[..self.rx_end].get(self.rx_pos) {
                    None => Progress::NeedInput,
                    Some(&byte) => {
                        if byte == b'\n' {
                            self.rx_pos += 1;
                        }
                        self.reply = Reply::Status;
                        Progress::Continue
                    }
                },
            };
            match step {
                Progress::Continue => {}
                Progress::NeedInput => return self.at_eof(),
                Progress::Step(step) => return Ok(Some(step)),
            }
        }
    }

    #[inline]
    fn front_id(&self) -> CommandId {
        self.in_flight.front().map_or(CommandId(u64::MAX), |f| f.id)
    }

    fn body_step(&mut self, decoded: Decoded) -> Result<Progress, ProtocolError> {
        let id = self.front_id();
        match decoded {
            Decoded::Data { start, end } => {
                let base = self.rx_pos;
                self.rx_pos += end;
                if end > start {
                    return Ok(Progress::Step(Step::Body {
                        id,
                        start: base + start,
                        end: base + end,
                    }));
                }
                Ok(Progress::Continue)
            }
            Decoded::NeedMore { consumed } => {
                self.rx_pos += consumed;
                Ok(Progress::NeedInput)
            }
            Decoded::End { consumed } => {
                let dot_cr = consumed == 2 && self.rx.get(self.rx_pos + 1) == Some(&b'\r');
                if dot_cr {
                    self.quirk(Quirk::DotCrTerminator);
                }
                self.rx_pos += consumed;
                let next = if dot_cr {
                    Reply::AfterDotCr
                } else {
                    Reply::Status
                };
                let Reply::Body { decoder, .. } = std::mem::replace(&mut self.reply, next) else {
                    return Ok(Progress::Continue);
                };
                let octets = decoder.octets();
                if !self.events.is_empty() {
                    // A quirk reported on the way: the end comes after it, in order.
                    self.push(Event::BodyEnd { id, octets });
                    self.complete_ok();
                    return Ok(Progress::Continue);
                }
                // The common case: the end straight out, then the queued `Ok`.
                self.complete_ok();
                Ok(Progress::Step(Step::BodyEnd { id, octets }))
            }
        }
    }

    fn listing_step(&mut self) -> Result<Progress, ProtocolError> {
        let Some((start, end)) = self.take_line(self.config.max_listing_line, "listing")? else {
            return Ok(Progress::NeedInput);
        };
        let Reply::Listing { kind, lines } = &mut self.reply else {
            return Ok(Progress::Continue);
        };
        let kind = *kind;
        let mut line = &self.rx[start..end];
        if line == b"." {
            self.reply = Reply::Status;
            let id = self.front_id();
            let check = std::mem::take(&mut self.listing_check);
            match kind {
                Listing::Scan => check.verdict("LIST")?,
                Listing::UniqueId => check.verdict("UIDL")?,
                _ => {}
            }
            if kind == Listing::Capability {
                let capabilities = std::mem::take(&mut self.collecting);
                if let Some(before) = self.pre_login_capabilities.take() {
                    // Gmail announces PIPELINING, TOP and UIDL only after login (QUIRKS.md 11).
                    let gained = |now: bool, then: bool| now && !then;
                    if gained(capabilities.pipelining, before.pipelining)
                        || gained(capabilities.top, before.top)
                        || gained(capabilities.uidl, before.uidl)
                    {
                        self.quirk(Quirk::CapabilitiesAfterLogin);
                    }
                }
                self.capabilities = Some(capabilities);
                self.events.push_back(Pending::Capabilities(id));
            }
            self.complete_ok();
            return Ok(Progress::Continue);
        }
        *lines += 1;
        let count = *lines;
        let mut offset = start;
        if line.first() == Some(&b'.') {
            line = &line[1..];
            offset += 1;
        }
        let id = self.front_id();
        let malformed = |what| move |error| ProtocolError::Malformed { what, error };
        let listing = match kind {
            Listing::Scan => Some("LIST"),
            Listing::UniqueId => Some("UIDL"),
            Listing::Language => Some("LANG"),
            Listing::Capability => None,
        };
        if let Some(listing) = listing {
            if count > self.config.max_listing_entries {
                return Err(ProtocolError::TooManyEntries {
                    listing,
                    limit: self.config.max_listing_entries,
                });
            }
        }
        match kind {
            Listing::Scan => {
                let (msg, size) =
                    response::parse_scan_listing(line, self.config.max_message_number)
                        .map_err(malformed("LIST entry"))?;
                self.listing_check.record(msg, None);
                self.push(Event::ListEntry { id, msg, size });
            }
            Listing::UniqueId => {
                let (msg, uid) = response::parse_unique_id_listing(
                    line,
                    self.config.max_message_number,
                    self.config.max_uid_len,
                )
                .map_err(malformed("UIDL entry"))?;
                self.listing_check.record(msg, Some(uid));
                let uid_start = offset + (uid.as_ptr() as usize - line.as_ptr() as usize);
                return Ok(Progress::Step(Step::Uid {
                    id,
                    msg,
                    start: uid_start,
                    end: uid_start + uid.len(),
                }));
            }
            Listing::Capability => {
                if count > self.config.max_capabilities {
                    return Err(ProtocolError::TooManyCapabilities {
                        limit: self.config.max_capabilities,
                    });
                }
                self.collecting
                    .add_line(line)
                    .map_err(malformed("capability"))?;
            }
            Listing::Language => {
                let (tag, description) =
                    response::parse_lang_listing(line).map_err(malformed("LANG entry"))?;
                self.events.push_back(Pending::Lang {
                    id,
                    tag,
                    description,
                });
            }
        }
        Ok(Progress::Continue)
    }

    fn status_step(&mut self) -> Result<Progress, ProtocolError> {
        let in_auth = self.in_flight.front().is_some_and(|f| f.auth.is_some());
        let limit = if in_auth {
            self.config.max_continuation_line
        } else {
            self.config.max_status_line
        };
        let Some((start, end)) = self.take_line(limit, "status")? else {
            return Ok(Progress::NeedInput);
        };
        if self.phase == Phase::Greeting {
            return self.greeting(start, end).map(|()| Progress::Continue);
        }
        let line = &self.rx[start..end];
        let loose = self.config.quirks.loose_status_indicator;
        if let Some(challenge) = response::parse_continuation(line).filter(|_| in_auth || !loose) {
            if !in_auth {
                return Err(ProtocolError::UnexpectedContinuation);
            }
            let challenge = BASE64
                .decode(challenge)
                .map_err(|_| ProtocolError::InvalidBase64)?;
            self.continuation(&challenge)?;
            return Ok(Progress::Continue);
        }
        if self.in_flight.is_empty() {
            if self.phase == Phase::Closed {
                // After QUIT: whatever a server says on its way out changes nothing.
                return Ok(Progress::Continue);
            }
            return Err(ProtocolError::UnsolicitedData);
        }
        let accept_codes = self
            .capabilities
            .as_ref()
            .is_some_and(Capabilities::accepts_response_codes);
        let (StatusView { ok, code, text }, loose_used) =
            match response::status_line(line, accept_codes) {
                Ok(view) => (view, false),
                Err(error) => match loose_status(line).filter(|_| loose) {
                    Some(view) => (view, true),
                    None => {
                        return Err(ProtocolError::Malformed {
                            what: "status line",
                            error,
                        });
                    }
                },
            };
        // The reply's code and text, lent by its terminal event. No other terminal event is
        // waiting: `advance` reads a line only once the queue is empty (a quirk of this line
        // may be there).
        debug_assert!(!self.events.iter().any(Pending::lends_status));
        self.lent.line_at = Some(start..end);
        self.lent.code = code;
        response::decode_lossy_into(&mut self.lent.text, text);
        if loose_used {
            self.quirk(Quirk::LooseStatusIndicator);
        }
        if self.config.trace {
            let text = String::from_utf8_lossy(&self.rx[start..end]).into_owned();
            self.trace(Trace::Received(text));
        }
        if !ok {
            self.complete_err();
            return Ok(Progress::Continue);
        }
        let Some(front) = self.in_flight.front() else {
            return Ok(Progress::Continue);
        };
        let id = front.id;
        let malformed = |what| move |error| ProtocolError::Malformed { what, error };
        match front.shape {
            ReplyShape::Single => self.complete_ok(),
            ReplyShape::Stat => {
                let (count, size) =
                    response::parse_stat(&self.lent.text).map_err(malformed("STAT reply"))?;
                self.push(Event::Stat { id, count, size });
                self.complete_ok();
            }
            ReplyShape::ScanOne(expected) => {
                let (msg, size) = response::parse_scan_listing(
                    self.lent.text.as_bytes(),
                    self.config.max_message_number,
                )
                .map_err(malformed("LIST reply"))?;
                if msg != expected {
                    return Err(ProtocolError::WrongMessageNumber { expected, got: msg });
                }
                self.push(Event::ListEntry { id, msg, size });
                self.complete_ok();
            }
            ReplyShape::UniqueIdOne(expected) => {
                // Parse the raw line, so that the uid can be lent out of the buffer.
                let line = &self.rx[start..end];
                let (msg, uid, number_missing) = response::parse_unique_id_reply(
                    line,
                    expected,
                    self.config.max_message_number,
                    self.config.max_uid_len,
                )
                .map_err(malformed("UIDL reply"))?;
                if msg != expected {
                    return Err(ProtocolError::WrongMessageNumber { expected, got: msg });
                }
                let uid_start = start + (uid.as_ptr() as usize - line.as_ptr() as usize);
                let uid_end = uid_start + uid.len();
                if number_missing {
                    self.quirk(Quirk::UidlWithoutMessageNumber);
                }
                self.complete_ok();
                return Ok(Progress::Step(Step::Uid {
                    id,
                    msg,
                    start: uid_start,
                    end: uid_end,
                }));
            }
            ReplyShape::Listing(kind) => {
                if kind == Listing::Capability {
                    self.collecting = Capabilities::default();
                }
                self.listing_check = ListingCheck::default();
                self.reply = Reply::Listing { kind, lines: 0 };
            }
            ReplyShape::Body => {
                // LF framing (a line starts after any LF, `.` LF ends the body) only for a
                // server whose greeting ended in a bare LF: decided once per connection.
                let lf_lines = self.lf_server && self.config.quirks.bare_lf;
                let decoder = BodyDecoder::new(
                    lf_lines,
                    self.config.quirks.dot_cr_terminator,
                    self.config.max_body_line,
                );
                self.reply = Reply::Body { id, decoder };
            }
        }
        Ok(Progress::Continue)
    }

    fn greeting(&mut self, start: usize, end: usize) -> Result<(), ProtocolError> {
        let line = &self.rx[start..end];
        let mut loose = false;
        let GreetingLine {
            status,
            timestamp,
            bracketed_text,
            ..
        } = match response::parse_greeting(line) {
            Ok(greeting) => greeting,
            Err(error) => {
                match loose_status(line).filter(|_| self.config.quirks.loose_status_indicator) {
                    Some(view) => {
                        loose = true;
                        GreetingLine {
                            status: StatusLine {
                                ok: view.ok,
                                code: None,
                                text: String::from_utf8_lossy(view.text).into_owned(),
                            },
                            timestamp: crate::apop::greeting_timestamp(response::status_text(line)),
                            bracketed_text: false,
                        }
                    }
                    None => {
                        return Err(ProtocolError::Malformed {
                            what: "greeting",
                            error,
                        });
                    }
                }
            }
        };
        let timestamp = match timestamp {
            None if self.config.relaxed_apop_timestamp => {
                crate::apop::relaxed_greeting_timestamp(response::status_text(line))
            }
            strict => strict,
        };
        self.timestamp = timestamp.map(<[u8]>::to_vec);
        self.lf_server = self.rx.get(end) == Some(&b'\n');
        if self.config.trace {
            let text = String::from_utf8_lossy(&self.rx[start..end]).into_owned();
            self.trace(Trace::Received(text));
        }
        if bracketed_text {
            self.quirk(Quirk::BracketedGreetingText);
        }
        if loose {
            self.quirk(Quirk::LooseStatusIndicator);
        }
        let ok = status.ok;
        self.lent.line_at = Some(start..end);
        self.lent.code = status.code;
        self.lent.text = status.text;
        self.events.push_back(Pending::Greeting {
            ok,
            apop: self.timestamp.is_some(),
        });
        if ok {
            self.phase = Phase::Authorization;
            self.ask_capabilities();
        } else {
            self.phase = Phase::Closed;
            self.queue.clear();
        }
        Ok(())
    }

    fn continuation(&mut self, challenge: &[u8]) -> Result<(), ProtocolError> {
        let Some(exchange) = self.in_flight.front_mut().and_then(|f| f.auth.as_mut()) else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        if exchange.cancelled {
            // The `*` is on its way; the server's `-ERR` follows.
            return Ok(());
        }
        let response = match exchange.deferred_initial.take() {
            Some(initial) => initial,
            None => exchange
                .mechanism
                .step(challenge)
                .map_err(|error| ProtocolError::Sasl {
                    mechanism: exchange.mechanism.name().to_owned(),
                    error,
                })?,
        };
        self.tx
            .extend_from_slice(&encode_response(&response, false));
        self.tx.extend_from_slice(b"\r\n");
        if self.config.trace {
            self.trace(Trace::Received(format!(
                "+ <{} octets of SASL challenge>",
                challenge.len()
            )));
            self.trace(Trace::Sent("<SASL response redacted>".into()));
        }
        Ok(())
    }

    fn pop_in_flight(&mut self) -> Option<InFlight> {
        let front = self.in_flight.pop_front()?;
        self.in_flight_bytes -= front.len;
        if self.phase == Phase::Transaction
            && self
                .in_flight
                .front()
                .is_some_and(|next| next.kind == CommandKind::Quit)
        {
            // The last reply before a pipelined QUIT: the server is now in UPDATE.
            self.phase = Phase::Update;
        }
        Some(front)
    }

    /// The `-ERR` to the front command (its code and text are in `lent`).
    fn complete_err(&mut self) {
        let Some(front) = self.pop_in_flight() else {
            return;
        };
        match front.kind {
            CommandKind::Quit => self.phase = Phase::Closed,
            kind if kind.props().precedes_secret
                && self
                    .queue
                    .front()
                    .is_some_and(|q| q.command.kind() == CommandKind::Pass) =>
            {
                if let Some(pass) = self.queue.pop_front() {
                    self.push_reply(false, &front);
                    self.push(Event::Cancelled {
                        id: pass.id,
                        command: CommandKind::Pass,
                    });
                    return;
                }
            }
            CommandKind::Stls => {
                // Everything queued behind STLS was meant for an encrypted connection: never
                // send it in plaintext (issue 10 item 10). The caller decides what now.
                self.push_reply(false, &front);
                for queued in std::mem::take(&mut self.queue) {
                    self.push(Event::Cancelled {
                        id: queued.id,
                        command: queued.command.kind(),
                    });
                }
                self.quit_queued = false;
                return;
            }
            CommandKind::Capa if self.config.quirks.missing_capa => {
                self.capabilities = Some(Capabilities::default());
                self.quirk(Quirk::MissingCapa);
            }
            _ => {}
        }
        self.push_reply(false, &front);
    }

    /// Queues the terminal `Ok` (`ok`) or `Err` to `front`, which lends `lent`'s code and text.
    fn push_reply(&mut self, ok: bool, front: &InFlight) {
        self.events.push_back(Pending::Reply {
            ok,
            id: front.id,
            command: front.kind,
        });
    }

    /// The `+OK` to the front command (its code and text are in `lent`).
    fn complete_ok(&mut self) {
        let Some(mut front) = self.pop_in_flight() else {
            return;
        };
        let id = front.id;
        match front.kind {
            kind if kind.props().login => {
                if let Some(exchange) = front.auth.as_mut() {
                    if let Err(error) = exchange.mechanism.finish() {
                        let mechanism = exchange.mechanism.name().to_owned();
                        self.fail(ProtocolError::Sasl { mechanism, error });
                        return;
                    }
                }
                if self.phase == Phase::Transaction {
                    // A second login accepted after the first (only with
                    // `Config::server_enforces_phases`): nothing changes.
                    self.push_reply(true, &front);
                    return;
                }
                self.phase = Phase::Transaction;
                self.pre_login_capabilities = self.capabilities.take();
                self.push(Event::LoggedIn { id });
                // Only now: a byte sent before this reply may be dropped by the server.
                self.ask_capabilities();
            }
            CommandKind::Stls => {
                self.phase = Phase::TlsHandshake;
                self.capabilities = None;
                self.push(Event::StartTls { id });
                return;
            }
            CommandKind::Quit => self.phase = Phase::Closed,
            CommandKind::Utf8 => self.utf8 = true,
            _ => {}
        }
        self.push_reply(true, &front);
    }
}

/// A line that is neither `+OK` nor `-ERR` read by its first octet
/// ([`Quirks::loose_status_indicator`](crate::Quirks::loose_status_indicator)): `+` is OK, `-`
/// is ERR, the text follows the first run of spaces; no response code.
fn loose_status(line: &[u8]) -> Option<StatusView<'_>> {
    let ok = match line.first() {
        Some(b'+') => true,
        Some(b'-') => false,
        _ => return None,
    };
    Some(StatusView {
        ok,
        code: None,
        text: response::status_text(line),
    })
}

/// What one step of the receive path did.
enum Progress {
    Continue,
    NeedInput,
    Step(Step),
}

static EMPTY_CAPABILITIES: std::sync::LazyLock<Capabilities> =
    std::sync::LazyLock::new(Capabilities::default);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{Client, Command, Config, Event};

    /// A client in TRANSACTION (USER/PASS without TLS allowed, no automatic CAPA), after one
    /// exchange of `command` and `reply` for each pair of `exchanges`.
    fn logged_in(config: Config, exchanges: Vec<(Command, &[u8])>) -> Client {
        let mut c = Client::new(Config {
            allow_plaintext_auth: true,
            auto_capa: false,
            ..config
        });
        c.handle_input(b"+OK hi\r\n");
        while c.poll_event().unwrap().is_some() {}
        let login = (Command::pass("p"), &b"+OK\r\n"[..]);
        for (command, reply) in std::iter::once(login).chain(exchanges) {
            c.enqueue(command).unwrap();
            c.poll_transmit(&mut Vec::new());
            c.handle_input(reply);
            while c.poll_event().unwrap().is_some() {}
        }
        c
    }

    /// The ordinary case goes through the fast path, or the fast path is never exercised:
    /// the first chunk after a status line comes from the slow path (it parsed the status
    /// line); each stuffed line after it starts a chunk of its own for the fast path.
    #[test]
    fn fast_path_serves_plain_bodies() {
        let mut c = logged_in(Config::default(), Vec::new());
        c.enqueue(Command::retr(1)).unwrap();
        c.poll_transmit(&mut Vec::new());
        c.handle_input(b"+OK\r\nline one\r\n..b\r\n..c\r\nline four\r\n..d\r\n.\r\n");
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        loop {
            if let Some((_, start, end)) = c.fast_body() {
                fast.push(c.rx[start..end].to_vec());
                continue;
            }
            match c.poll_event().unwrap() {
                Some(Event::Body { chunk, .. }) => slow.push(chunk.to_vec()),
                Some(_) => {}
                None => break,
            }
        }
        assert_eq!(slow, [b"line one\r\n".to_vec()]);
        assert_eq!(
            fast,
            [
                b".b\r\n".to_vec(),
                b".c\r\nline four\r\n".to_vec(),
                b".d\r\n".to_vec()
            ]
        );
        assert!(c.is_idle());
    }

    /// The texts events lend from the client's reused buffer belong to their own reply, in
    /// order, across bodies, a quirk reported on the way (before the body's end) and a `-ERR`;
    /// and a body's end comes before its `Ok` whether it was queued or handed out at once.
    #[test]
    fn lent_texts_and_the_order_at_a_body_end() {
        let config = Config {
            quirks: crate::Quirks {
                dot_cr_terminator: true,
                ..crate::Quirks::default()
            },
            ..Config::default()
        };
        let capa = (Command::Capa, &b"+OK\r\nPIPELINING\r\n.\r\n"[..]);
        let mut c = logged_in(config, vec![capa]);
        for n in 1..=3 {
            c.enqueue(Command::retr(n)).unwrap();
        }
        let mut sent = Vec::new();
        c.poll_transmit(&mut sent);
        assert_eq!(sent, b"RETR 1\r\nRETR 2\r\nRETR 3\r\n");
        c.handle_input(
            b"+OK first \xff\r\na\r\n.\r+OK second\r\nb\r\n.\r\n-ERR [SYS/TEMP] third\r\n",
        );
        let mut seen = Vec::new();
        while let Some(event) = c.poll_event().unwrap() {
            seen.push(match event {
                Event::Body { chunk, .. } => format!("body {}", String::from_utf8_lossy(chunk)),
                Event::BodyEnd { octets, .. } => format!("end {octets}"),
                Event::Ok { code, text, .. } => format!("ok {code:?} {text}"),
                Event::Err { code, text, .. } => format!("err {code:?} {text}"),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            seen,
            [
                "body a\r\n",
                "Quirk(DotCrTerminator)",
                "end 3",
                "ok None first \u{fffd}",
                "body b\r\n",
                "end 3",
                "ok None second",
                "err Some(SysTemp) third",
            ]
        );
        assert!(c.is_idle());
    }
}
