//! Streamed bodies and pipelined batches.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use pop3_proto::login::ServerError;
use pop3_proto::{Command, CommandId, Event};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::connection::{Flow, State, side_event};
use crate::{Connection, Error};

/// One step of a message in [`Connection::retr_many`].
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetrEvent<'a> {
    /// The server accepted the message and its body begins: comes once per retrieved
    /// message, before its first [`Chunk`](Self::Chunk), and also for an empty message (which
    /// has no chunk), so this is where to create the message's file. Not sent for a
    /// [`Refused`](Self::Refused) message.
    Start,
    /// Message bytes, dot-unstuffed, line ends as sent.
    Chunk(&'a [u8]),
    /// The message is complete.
    End {
        /// The number of octets delivered.
        octets: u64,
    },
    /// The server answered `-ERR` for this message; the batch goes on.
    Refused(ServerError),
}

/// The body of one RETR or TOP as a [`Stream`](futures_core::Stream) of [`Bytes`] chunks, from
/// [`Connection::retr_stream`] or [`Connection::top_stream`].
///
/// Each chunk is at most one read (64 KiB): memory is bounded whatever the message size.
/// The stream ends (`None`) after the last chunk, or after one error. Dropping it before its
/// end poisons the connection ([`Error::Poisoned`]).
#[must_use = "streams do nothing unless polled"]
pub struct BodyStream<'a, S> {
    connection: &'a mut Connection<S>,
    command: Option<Command>,
    id: Option<CommandId>,
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<S> std::fmt::Debug for BodyStream<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> BodyStream<'_, S> {
    /// The next chunk of the body, or `None` after the last one (or after an error): the
    /// stream consumed without `futures-util`'s `StreamExt`.
    ///
    /// ```no_run
    /// # async fn run(pop: &mut pop3_async::Connection) -> Result<(), pop3_async::Error> {
    /// let mut body = pop.retr_stream(1);
    /// let mut octets = 0;
    /// while let Some(chunk) = body.next().await {
    ///     octets += chunk?.len();
    /// }
    /// println!("{octets} octets");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    fn end(&mut self, item: Option<Result<Bytes, Error>>) -> Poll<Option<Result<Bytes, Error>>> {
        self.done = true;
        self.sleep = None;
        let state = &mut self.connection.state;
        if *state == State::Busy {
            *state = State::Ready;
        }
        Poll::Ready(item)
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Bytes, Error>>> {
        self.end(Some(Err(error)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for BodyStream<'_, S> {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let id = match (this.id, this.command.take()) {
            (Some(id), _) => id,
            (None, Some(command)) => {
                if let Err(e) = this.connection.begin() {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                match this.connection.enqueue(command) {
                    Ok(id) => {
                        this.id = Some(id);
                        id
                    }
                    Err(e) => return this.fail(e),
                }
            }
            (None, None) => return Poll::Ready(None),
        };
        loop {
            let chunk = match this.connection.poll_event() {
                Ok(Some(Event::Body { id: of, chunk })) if of == id => {
                    Bytes::copy_from_slice(chunk)
                }
                Ok(Some(Event::Ok { id: of, .. })) if of == id => return this.end(None),
                Ok(Some(Event::Err {
                    id: of,
                    command,
                    code,
                    text,
                })) if of == id => {
                    return this.fail(
                        ServerError {
                            command,
                            code,
                            text,
                        }
                        .into(),
                    );
                }
                Ok(Some(event)) => {
                    side_event(event);
                    continue;
                }
                Ok(None) => {
                    match this.connection.poll_io(cx) {
                        Poll::Ready(Ok(())) => {
                            this.sleep = None;
                            continue;
                        }
                        Poll::Ready(Err(e)) => {
                            this.connection.state = State::Broken;
                            return this.fail(e);
                        }
                        Poll::Pending => {}
                    }
                    if this.sleep.is_none() {
                        let now = tokio::time::Instant::now();
                        match this.connection.read_wait(now) {
                            Ok(left) => {
                                this.sleep = Some(Box::pin(tokio::time::sleep_until(now + left)));
                            }
                            Err(expired) => {
                                let error = this.connection.time_out(expired);
                                return this.fail(error);
                            }
                        }
                    }
                    if let Some(sleep) = &mut this.sleep {
                        if sleep.as_mut().poll(cx).is_ready() {
                            let expired = this.connection.expired();
                            let error = this.connection.time_out(expired);
                            return this.fail(error);
                        }
                    }
                    return Poll::Pending;
                }
                Err(e) => {
                    this.connection.state = State::Broken;
                    return this.fail(e.into());
                }
            };
            this.sleep = None;
            return Poll::Ready(Some(Ok(chunk)));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// `RETR n` as a [`Stream`] of chunks (see [`BodyStream`]). Nothing is sent until the
    /// stream is first polled; the stream borrows the connection until it ends.
    ///
    /// Consume it with [`BodyStream::next`] (no extra crate needed), or as a
    /// [`futures_core::Stream`] with the combinators of your choice. Run it to its end
    /// (`None`): a stream dropped early poisons the connection.
    ///
    /// ```no_run
    /// use pop3_async::{Connection, Options, Security};
    /// use tokio::io::AsyncWriteExt as _;
    ///
    /// # async fn run() -> Result<(), pop3_async::Error> {
    /// let options = Options::default();
    /// let mut pop = Connection::connect("pop.example.com", 995, Security::Implicit, &options).await?;
    /// pop.login("alice", "hunter2").await?;
    /// // Name the file by something you chose, never by the server's UID.
    /// let mut file = tokio::fs::File::create("message-1.eml").await?;
    /// let mut body = pop.retr_stream(1);
    /// while let Some(chunk) = body.next().await {
    ///     let chunk: pop3_async::bytes::Bytes = chunk?;
    ///     file.write_all(&chunk).await?;
    /// }
    /// file.flush().await?;
    /// pop.quit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn retr_stream(&mut self, msg: u32) -> BodyStream<'_, S> {
        self.body_stream(Command::retr(msg))
    }

    /// `TOP n lines` as a [`Stream`] of chunks (see [`BodyStream`]), consumed like
    /// [`retr_stream`](Self::retr_stream)'s:
    ///
    /// ```no_run
    /// # async fn run(pop: &mut pop3_async::Connection) -> Result<(), pop3_async::Error> {
    /// let mut headers = Vec::new();
    /// let mut top = pop.top_stream(1, 0);
    /// while let Some(chunk) = top.next().await {
    ///     headers.extend_from_slice(&chunk?);
    /// }
    /// println!("{}", String::from_utf8_lossy(&headers));
    /// # Ok(())
    /// # }
    /// ```
    pub fn top_stream(&mut self, msg: u32, lines: u32) -> BodyStream<'_, S> {
        self.body_stream(Command::top(msg, lines))
    }

    fn body_stream(&mut self, command: Command) -> BodyStream<'_, S> {
        BodyStream {
            connection: self,
            command: Some(command),
            id: None,
            sleep: None,
            done: false,
        }
    }

    /// Retrieves `msgs` pipelined (when the server announces PIPELINING; the core bounds the
    /// window). `on_event` gets each message's [`RetrEvent::Start`], its chunks (none for an
    /// empty message), then its end, or only its refusal; messages come in the order given. An error from `on_event` stops the batch and is returned as
    /// [`Error::Io`]; the connection stays usable (what remains of the batch is still sent and
    /// its replies skipped by the next call).
    ///
    /// While commands are being written the connection also reads, so a server that answers
    /// before it reads the rest of the batch cannot deadlock it.
    pub async fn retr_many(
        &mut self,
        msgs: &[u32],
        mut on_event: impl FnMut(u32, RetrEvent<'_>) -> io::Result<()>,
    ) -> Result<(), Error> {
        self.begin()?;
        let result = async {
            let ids = self.enqueue_all(msgs, Command::retr)?;
            if ids.is_empty() {
                return Ok(());
            }
            let mut next = 0;
            // Whether message `next` got its `Start`.
            let mut started = false;
            self.pump(|event| {
                let Some(&(id, msg)) = ids.get(next) else {
                    return Ok(Flow::Done);
                };
                if let Event::Body { id: of, .. } | Event::BodyEnd { id: of, .. } = event {
                    if of == id && !started {
                        started = true;
                        on_event(msg, RetrEvent::Start)?;
                    }
                }
                match event {
                    Event::Body { id: of, chunk } if of == id => {
                        on_event(msg, RetrEvent::Chunk(chunk))?
                    }
                    Event::BodyEnd { id: of, octets } if of == id => {
                        on_event(msg, RetrEvent::End { octets })?
                    }
                    Event::Ok { id: of, .. } if of == id => {
                        next += 1;
                        started = false;
                    }
                    Event::Err {
                        id: of,
                        command,
                        code,
                        text,
                    } if of == id => {
                        on_event(
                            msg,
                            RetrEvent::Refused(ServerError {
                                command,
                                code,
                                text,
                            }),
                        )?;
                        next += 1;
                        started = false;
                    }
                    _ => {}
                }
                Ok(if next == ids.len() {
                    Flow::Done
                } else {
                    Flow::Continue
                })
            })
            .await
        }
        .await;
        self.finish(result)
    }

    /// Marks `msgs` deleted, pipelined; one result per message, in order. The server deletes
    /// them at [`quit`](Self::quit).
    pub async fn dele_many(&mut self, msgs: &[u32]) -> Result<Vec<Result<(), ServerError>>, Error> {
        self.begin()?;
        let result = async {
            let ids = self.enqueue_all(msgs, Command::dele)?;
            let mut results = Vec::with_capacity(ids.len());
            if ids.is_empty() {
                return Ok(results);
            }
            self.pump(|event| {
                let Some(&(id, _)) = ids.get(results.len()) else {
                    return Ok(Flow::Done);
                };
                match event {
                    Event::Ok { id: of, .. } if of == id => results.push(Ok(())),
                    Event::Err {
                        id: of,
                        command,
                        code,
                        text,
                    } if of == id => {
                        results.push(Err(ServerError {
                            command,
                            code,
                            text,
                        }));
                    }
                    _ => {}
                }
                Ok(if results.len() == ids.len() {
                    Flow::Done
                } else {
                    Flow::Continue
                })
            })
            .await?;
            Ok(results)
        }
        .await;
        self.finish(result)
    }

    /// Queues one command per message, after checking them all (so that a bad number queues
    /// nothing).
    fn enqueue_all(
        &mut self,
        msgs: &[u32],
        make: fn(u32) -> Command,
    ) -> Result<Vec<(CommandId, u32)>, Error> {
        for &msg in msgs {
            make(msg).validate()?;
        }
        msgs.iter()
            .map(|&msg| Ok((self.enqueue(make(msg))?, msg)))
            .collect()
    }
}
