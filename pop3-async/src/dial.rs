//! Establishing the TCP connection: the I/O half of `pop3_tls::connect` (Happy Eyeballs,
//! RFC 8305: attempts as futures raced in one task, the schedule from [`HappyEyeballs`]) and
//! of `pop3_tls::proxy` (the proxy handshake, its bytes moved here).

use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use pop3_proto::{Awaiting, Expired};
use pop3_tls::connect::{HappyEyeballs, Step, interleave};
use pop3_tls::proxy::{ProxyHandshake, ProxyTarget};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::{Error, Options};

type Attempt = Pin<Box<dyn Future<Output = (SocketAddr, io::Result<TcpStream>)> + Send>>;

/// Connects to `host:port` as [`Options`] say: through [`Options::proxy`] if set, else
/// straight, racing the addresses (Happy Eyeballs) from [`Options::bind`]; resolution, TCP
/// and the proxy handshake all within [`Options::effective_connect_timeout`]. `host` is
/// already in A-labels.
pub(crate) async fn dial(host: &str, port: u16, options: &Options) -> Result<TcpStream, Error> {
    let timeout = options.effective_connect_timeout();
    let expired = Expired::Timeout {
        after: timeout,
        awaiting: Awaiting::Connect,
    };
    match tokio::time::timeout(timeout, dial_unbounded(host, port, options, expired)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout(expired)),
    }
}

async fn dial_unbounded(
    host: &str,
    port: u16,
    options: &Options,
    expired: Expired,
) -> Result<TcpStream, Error> {
    let Some(proxy) = &options.proxy else {
        let addrs = resolve(host, port).await?;
        return connect_addrs(addrs, options).await.map_err(|e| {
            Error::from_connection_io(pop3_tls::connect_error(host, port, e), expired)
        });
    };
    let proxy_host = pop3_tls::ascii_host(proxy.host())?;
    let addrs = resolve(&proxy_host, proxy.port()).await?;
    let mut tcp = connect_addrs(addrs, options).await.map_err(|e| {
        let e = io::Error::new(e.kind(), format!("proxy {proxy}: {e}"));
        Error::from_connection_io(pop3_tls::connect_error(host, port, e), expired)
    })?;
    let target = match proxy.kind().resolves_locally() {
        true => ProxyTarget::Addr(resolve(host, port).await?[0]),
        false => ProxyTarget::Name(host.to_owned(), port),
    };
    let mut handshake = ProxyHandshake::new(proxy, target)?;
    let io = |e: io::Error| Error::from_connection_io(e, expired);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Some(want) = handshake.next(&mut out)? {
        if !out.is_empty() {
            tcp.write_all(&out).await.map_err(io)?;
        }
        let want = want.min(buf.len());
        let n = tcp.read(&mut buf[..want]).await.map_err(io)?;
        handshake.handle_read(&buf[..n])?;
    }
    Ok(tcp)
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| pop3_tls::connect_error(host, port, e))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )));
    }
    Ok(addrs)
}

/// Connects to the first of `addrs` to answer, Happy Eyeballs style (RFC 8305): the
/// addresses interleaved by family ([`interleave`]; only those of [`Options::bind`]'s family
/// when it is set), a new attempt every [`Options::happy_eyeballs_delay`] or as soon as the
/// previous one failed, earlier attempts still running; the first connected wins and the
/// others are dropped (cancelled). The whole is bounded by
/// [`Options::effective_connect_timeout`] (an error of kind `TimedOut`).
///
/// `Connection::connect` uses it after resolving the host name; call it yourself to connect
/// to addresses you resolved, then hand the stream to [`Connection::new`](crate::Connection::new).
pub async fn connect_addrs(addrs: Vec<SocketAddr>, options: &Options) -> io::Result<TcpStream> {
    let mut race = HappyEyeballs::new(
        interleave(addrs, options.bind),
        options.happy_eyeballs_delay,
        options.effective_connect_timeout(),
        Instant::now(),
    );
    let mut attempts: Vec<Attempt> = Vec::new();
    loop {
        match race.poll(Instant::now()) {
            Step::Start(addr) => attempts.push(Box::pin(attempt(addr, options.bind))),
            Step::Wait(until) => {
                let sleep = tokio::time::sleep_until(until.into());
                let mut sleep = std::pin::pin!(sleep);
                let ended = poll_fn(|cx| {
                    for i in 0..attempts.len() {
                        if let Poll::Ready(ended) = attempts[i].as_mut().poll(cx) {
                            drop(attempts.swap_remove(i));
                            return Poll::Ready(Some(ended));
                        }
                    }
                    match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await;
                match ended {
                    Some((_, Ok(stream))) => return Ok(stream),
                    Some((addr, Err(error))) => race.failed(addr, error, Instant::now()),
                    None => {}
                }
            }
            Step::Failed(error) => return Err(error),
            _ => return Err(io::Error::other("unknown connect step")),
        }
    }
}

async fn attempt(addr: SocketAddr, bind: Option<IpAddr>) -> (SocketAddr, io::Result<TcpStream>) {
    let connect = async {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(source) = bind {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        socket.connect(addr).await
    };
    (addr, connect.await)
}
