//! Bodies: as a [`Stream`](futures_core::Stream) of chunks, and into an `AsyncWrite`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use pop3_proto::request::{self, Body, Single, Sink};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Sleep;

use crate::{Connection, Error};

/// The chunks of a body not handed over yet: at most what one read brought.
#[derive(Debug, Default)]
struct Chunks(VecDeque<Bytes>);

impl Sink for Chunks {
    fn chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.push_back(Bytes::copy_from_slice(chunk));
        Ok(())
    }
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
    request: Single<Body<Chunks>>,
    started: bool,
    /// The result of the request, once in: handed over after the chunks before it.
    end: Option<Result<u64, Error>>,
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<S> std::fmt::Debug for BodyStream<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
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

    /// The drive loop of [`Connection::run`], handing each chunk over as it comes.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            if let Some(chunk) = self.request.sink().0.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(end) = self.end.take() {
                self.done = true;
                self.connection.busy = false;
                return Poll::Ready(end.err().map(Err));
            }
            let step = self
                .connection
                .poll_step(cx, &mut self.request, &mut self.sleep);
            self.end = std::task::ready!(step);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for BodyStream<'_, S> {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if !this.started {
            this.started = true;
            if let Err(error) = this.connection.begin() {
                this.done = true;
                return Poll::Ready(Some(Err(error)));
            }
        }
        this.step(cx)
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
        self.body_stream(request::retr(msg, Chunks::default()))
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
        self.body_stream(request::top(msg, lines, Chunks::default()))
    }

    fn body_stream(&mut self, request: Single<Body<Chunks>>) -> BodyStream<'_, S> {
        BodyStream {
            connection: self,
            request,
            started: false,
            end: None,
            sleep: None,
            done: false,
        }
    }

    /// `RETR n`, the message written to `out` as it arrives (dot-unstuffed, line ends as
    /// sent). Returns the number of octets written.
    ///
    /// If `out` fails, it is not written again, the rest of the message is read and
    /// discarded, and its error is returned as [`Error::Io`]; the session goes on.
    pub async fn retr<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: u32,
        out: &mut W,
    ) -> Result<u64, Error> {
        write_body(self.retr_stream(msg), out).await
    }

    /// `RETR n`, collected into a `Vec`.
    pub async fn retr_vec(&mut self, msg: u32) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        self.retr(msg, &mut body).await?;
        Ok(body)
    }

    /// `TOP n lines`: the headers and the first `lines` lines of the body, written to `out`
    /// as [`retr`](Self::retr) does.
    pub async fn top<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        msg: u32,
        lines: u32,
        out: &mut W,
    ) -> Result<u64, Error> {
        write_body(self.top_stream(msg, lines), out).await
    }

    /// `TOP n lines`, collected into a `Vec`.
    pub async fn top_vec(&mut self, msg: u32, lines: u32) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        self.top(msg, lines, &mut body).await?;
        Ok(body)
    }
}

/// Writes a body to `out`; after a failed write the rest is read and discarded (the one
/// behaviour of both adapters for a failing sink), then the write's error is returned.
async fn write_body<S, W>(mut body: BodyStream<'_, S>, out: &mut W) -> Result<u64, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut octets = 0;
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        octets += chunk.len() as u64;
        if failed.is_none() {
            failed = out.write_all(&chunk).await.err();
        }
    }
    match failed {
        Some(error) => Err(Error::Io(error)),
        None => Ok(out.flush().await.map(|()| octets)?),
    }
}
