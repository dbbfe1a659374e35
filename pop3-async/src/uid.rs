//! UID-safe helpers: `dele_uid` and `fetch_new`, the requests [`pop3_proto::request::dele_uid`]
//! and [`pop3_proto::request::fetch_new`] on the decisions of [`pop3_proto::uid`].

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use pop3_proto::request::{self, RetrEvent};
use pop3_proto::uid::{FetchReport, SeenStore};

use crate::{Connection, Error, Reply, UniqueIdListing};

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// `DELE msg`, but only if message `msg` is still the one with unique id `uid`: first
    /// `UIDL msg`, and the DELE only when the server answers with that same number and UID.
    ///
    /// Message numbers are per session; a number remembered from an earlier session (or a
    /// listing another client changed since) may now name another message. On a different
    /// answer nothing is deleted and the call fails with
    /// [`UidError::Mismatch`](pop3_proto::uid::UidError::Mismatch) (as [`Error::Uid`]); a
    /// server without UIDL, or a message already gone, is an [`Error::Server`] from the
    /// `UIDL`, again with nothing deleted. The session goes on in every case.
    ///
    /// As with [`dele`](Self::dele), the server deletes only when [`quit`](Self::quit)
    /// succeeds: delete only what you have durably stored.
    pub async fn dele_uid(&mut self, msg: u32, uid: &str) -> Result<Reply, Error> {
        self.run(request::dele_uid(msg, uid)).await
    }

    /// Fetches the messages that `store` has not recorded yet (the `pop3` command's "only
    /// what is new" logic, with your store): `UIDL`, then the unrecorded messages with
    /// [`retr_many`](Self::retr_many) (pipelined when the server allows).
    ///
    /// `on_event` sees each message as in `retr_many` ([`RetrEvent::Start`], chunks,
    /// [`RetrEvent::End`], or [`RetrEvent::Refused`]), with its UIDL entry; like
    /// `retr_many`'s, it is called synchronously. After the
    /// message's `End` was handed over and `on_event` returned `Ok`, its UID is recorded with
    /// [`SeenStore::record`]: store the message durably in `on_event` before returning from its
    /// `End`. A refused message is not recorded (the next call tries it again).
    ///
    /// This never deletes anything: deleting stays your decision, with
    /// [`dele_uid`](Self::dele_uid) for each message you have stored.
    ///
    /// A UIDL listing that gives one UID to two messages (or lists a number twice) fails with
    /// [`Error::Uid`] before any message is fetched. An error from `on_event` or from the store
    /// stops the handing over (as in `retr_many`, the connection stays usable) and is returned
    /// as [`Error::Io`]; the messages recorded before it stay recorded.
    pub async fn fetch_new<St: SeenStore + ?Sized>(
        &mut self,
        store: &mut St,
        on_event: impl FnMut(&UniqueIdListing, RetrEvent<'_>) -> io::Result<()>,
    ) -> Result<FetchReport, Error> {
        self.run(request::fetch_new(store, on_event)).await
    }
}
