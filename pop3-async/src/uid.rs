//! UID-safe helpers: `dele_uid` and `fetch_new`, on the I/O-free decisions of
//! [`pop3_proto::uid`].

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use pop3_proto::login::{Reply, UniqueIdListing};
use pop3_proto::uid::{FetchReport, SeenStore, check_uid, select_new};

use crate::{Connection, Error, RetrEvent};

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
        let answer = self.uidl_one(msg).await?;
        check_uid(&answer, msg, uid)?;
        self.dele(msg).await
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
        mut on_event: impl FnMut(&UniqueIdListing, RetrEvent<'_>) -> io::Result<()>,
    ) -> Result<FetchReport, Error> {
        let listing = self.uidl().await?;
        let wanted = select_new(&listing, &*store)?;
        let msgs: Vec<u32> = wanted.iter().map(|entry| entry.msg).collect();
        let mut report = FetchReport::default();
        // `retr_many` reports the messages in the order given, each to its end or refusal.
        let mut next = 0;
        self.retr_many(&msgs, |msg, event| {
            let Some(entry) = wanted.get(next).filter(|entry| entry.msg == msg) else {
                return Err(io::Error::other(format!(
                    "fetch_new: an event for message {msg} out of order"
                )));
            };
            match event {
                RetrEvent::End { octets } => {
                    on_event(entry, RetrEvent::End { octets })?;
                    store.record(&entry.uid)?;
                    report.fetched.push(entry.clone());
                    next += 1;
                }
                RetrEvent::Refused(error) => {
                    on_event(entry, RetrEvent::Refused(error.clone()))?;
                    report.refused.push((entry.clone(), error));
                    next += 1;
                }
                other => on_event(entry, other)?,
            }
            Ok(())
        })
        .await?;
        Ok(report)
    }
}
