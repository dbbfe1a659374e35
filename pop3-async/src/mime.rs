//! The parsed view of a message (the `mime` feature), through `mail-parser`.

use mail_parser::{Message, MessageParser};
use pop3_proto::request;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{Connection, Error};

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// `RETR msg`, parsed (RFC 5322 headers, MIME parts, decoded bodies) by
    /// [`mail_parser`], re-exported by this crate. Only with the `mime` feature.
    ///
    /// The message is held in memory to be parsed, so at most `max_octets` octets are kept: a
    /// larger message fails with [`Error::MessageTooLarge`] (its rest is read and discarded;
    /// the session goes on). A message with no header `mail_parser` can read is
    /// [`Error::NotAMessage`].
    ///
    /// ```no_run
    /// use pop3_async::mail_parser::MimeHeaders as _;
    ///
    /// # async fn run(pop: &mut pop3_async::Connection) -> Result<(), pop3_async::Error> {
    /// let message = pop.retr_parsed(1, 10 * 1024 * 1024).await?;
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
    pub async fn retr_parsed(
        &mut self,
        msg: u32,
        max_octets: usize,
    ) -> Result<Message<'static>, Error> {
        let body = self.run(request::retr_limited(msg, max_octets)).await?;
        MessageParser::default()
            .parse(&body)
            .map(Message::into_owned)
            .ok_or(Error::NotAMessage { msg })
    }
}
