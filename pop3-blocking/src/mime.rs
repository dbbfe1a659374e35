//! The parsed view of a message (the `mime` feature), through `mail-parser`.

use std::io::{self, Read, Write};

use mail_parser::{Message, MessageParser};

use crate::{Connection, Error};

/// A sink that keeps at most `limit` octets and refuses the rest.
struct Limited {
    body: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for Limited {
    fn write(&mut self, chunk: &[u8]) -> io::Result<usize> {
        if self.body.len().saturating_add(chunk.len()) > self.limit {
            self.exceeded = true;
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "the message is larger than the limit",
            ));
        }
        self.body.extend_from_slice(chunk);
        Ok(chunk.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Read + Write> Connection<S> {
    /// `RETR msg`, parsed (RFC 5322 headers, MIME parts, decoded bodies) by
    /// [`mail_parser`], re-exported by this crate. Only with the `mime` feature.
    ///
    /// The message is held in memory to be parsed, so at most `max_octets` octets are kept: a
    /// larger message fails with [`Error::MessageTooLarge`] (its rest is read and discarded;
    /// the session goes on). A message with no header `mail_parser` can read is
    /// [`Error::NotAMessage`].
    ///
    /// ```no_run
    /// use pop3_blocking::mail_parser::MimeHeaders as _;
    ///
    /// # fn run(pop: &mut pop3_blocking::Connection) -> Result<(), pop3_blocking::Error> {
    /// let message = pop.retr_parsed(1, 10 * 1024 * 1024)?;
    /// println!("subject: {:?}", message.subject());
    /// if let Some(text) = message.body_text(0) {
    ///     println!("{text}");
    /// }
    /// for attachment in message.attachments() {
    ///     println!("attachment {:?}: {} octets", attachment.attachment_name(), attachment.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn retr_parsed(&mut self, msg: u32, max_octets: usize) -> Result<Message<'static>, Error> {
        let mut sink = Limited {
            body: Vec::new(),
            limit: max_octets,
            exceeded: false,
        };
        match self.retr(msg, &mut sink) {
            Ok(_) => {}
            Err(Error::Io(_)) if sink.exceeded => {
                return Err(Error::MessageTooLarge {
                    msg,
                    limit: max_octets,
                });
            }
            Err(error) => return Err(error),
        }
        MessageParser::default()
            .parse(&sink.body)
            .map(Message::into_owned)
            .ok_or(Error::NotAMessage { msg })
    }
}
