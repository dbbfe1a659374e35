//! Establishing the TCP connection: the I/O half of `pop3_tls::connect` (Happy Eyeballs,
//! RFC 8305: one thread per attempt, the schedule from [`HappyEyeballs`]) and of
//! `pop3_tls::proxy` (the proxy handshake, its bytes moved here).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pop3_proto::{Awaiting, Expired};
use pop3_tls::connect::{HappyEyeballs, Step, interleave};
use pop3_tls::proxy::{ProxyHandshake, ProxyTarget};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{Error, Options};

/// Connects to `host:port` as [`Options`] say: through [`Options::proxy`] if set, else
/// straight, racing the addresses (Happy Eyeballs) from [`Options::bind`], all within
/// [`Options::effective_connect_timeout`]. `host` is already in A-labels.
pub(crate) fn dial(host: &str, port: u16, options: &Options) -> Result<TcpStream, Error> {
    let timeout = options.effective_connect_timeout();
    let deadline = Instant::now().checked_add(timeout);
    let expired = Expired::Timeout {
        after: timeout,
        awaiting: Awaiting::Connect,
    };
    let resolve = |host: &str, port| resolve(host, port, deadline, expired);
    let Some(proxy) = &options.proxy else {
        let addrs = resolve(host, port)?;
        return race(addrs, options, remaining(deadline, timeout)).map_err(|e| {
            Error::from_connection_io(pop3_tls::connect_error(host, port, e), expired)
        });
    };
    let proxy_host = pop3_tls::ascii_host(proxy.host())?;
    let addrs = resolve(&proxy_host, proxy.port())?;
    let mut tcp = race(addrs, options, remaining(deadline, timeout)).map_err(|e| {
        let e = io::Error::new(e.kind(), format!("proxy {proxy}: {e}"));
        Error::from_connection_io(pop3_tls::connect_error(host, port, e), expired)
    })?;
    let target = match proxy.kind().resolves_locally() {
        true => ProxyTarget::Addr(resolve(host, port)?[0]),
        false => ProxyTarget::Name(host.to_owned(), port),
    };
    let handshake = ProxyHandshake::new(proxy, target)?;
    drive(&mut tcp, handshake, deadline, expired)?;
    Ok(tcp)
}

/// Resolves with the system resolver within the connect deadline: the lookup runs on a
/// thread of its own, which is left to finish alone if the deadline passes first
/// (`getaddrinfo` cannot be cancelled).
fn resolve(
    host: &str,
    port: u16,
    deadline: Option<Instant>,
    expired: Expired,
) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (done, result) = mpsc::channel();
    let name = host.to_owned();
    std::thread::spawn(move || {
        let _ = done.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
    });
    let left = deadline.map_or(Duration::from_secs(3600), |d| {
        d.saturating_duration_since(Instant::now())
    });
    let addrs = match result.recv_timeout(left) {
        Ok(resolved) => resolved.map_err(|e| pop3_tls::connect_error(host, port, e))?,
        Err(_) => return Err(Error::Timeout(expired)),
    };
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
/// others are dropped. The whole is bounded by [`Options::effective_connect_timeout`] (an
/// error of kind `TimedOut`). The stream has no timeouts set.
///
/// `Connection::connect` uses it after resolving the host name; call it yourself to connect
/// to addresses you resolved, then hand the stream to [`Connection::new`](crate::Connection::new).
pub fn connect_addrs(addrs: Vec<SocketAddr>, options: &Options) -> io::Result<TcpStream> {
    race(addrs, options, options.effective_connect_timeout())
}

/// What is left of the connect timeout (all of it when the deadline overflowed).
fn remaining(deadline: Option<Instant>, timeout: Duration) -> Duration {
    deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()))
}

/// [`connect_addrs`] within `timeout`.
fn race(addrs: Vec<SocketAddr>, options: &Options, timeout: Duration) -> io::Result<TcpStream> {
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let mut race = HappyEyeballs::new(
        interleave(addrs, options.bind),
        options.happy_eyeballs_delay,
        timeout,
        start,
    );
    let (done, results) = mpsc::channel();
    loop {
        let now = Instant::now();
        match race.poll(now) {
            Step::Start(addr) => {
                let done = done.clone();
                let bind = options.bind;
                let left = deadline.map_or(timeout, |d| d.saturating_duration_since(now));
                // The losers finish (or time out) on their own; their streams are dropped.
                std::thread::spawn(move || {
                    let _ = done.send((addr, attempt(addr, bind, left)));
                });
            }
            Step::Wait(until) => match results.recv_timeout(until.saturating_duration_since(now)) {
                Ok((_, Ok(stream))) => return Ok(stream),
                Ok((addr, Err(error))) => race.failed(addr, error, Instant::now()),
                Err(_) => {}
            },
            Step::Failed(error) => return Err(error),
            _ => return Err(io::Error::other("unknown connect step")),
        }
    }
}

fn attempt(addr: SocketAddr, bind: Option<IpAddr>, limit: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(source) = bind {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    socket.connect_timeout(&addr.into(), limit.max(Duration::from_millis(1)))?;
    Ok(socket.into())
}

/// Moves the proxy handshake's bytes, within the connect deadline.
fn drive(
    tcp: &mut TcpStream,
    mut handshake: ProxyHandshake,
    deadline: Option<Instant>,
    expired: Expired,
) -> Result<(), Error> {
    let left = || {
        deadline
            .map_or(Some(Duration::from_secs(3600)), |d| {
                d.checked_duration_since(Instant::now())
            })
            .filter(|left| !left.is_zero())
            .ok_or(Error::Timeout(expired))
    };
    let io = |e: io::Error| Error::from_connection_io(e, expired);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Some(want) = handshake.next(&mut out)? {
        if !out.is_empty() {
            tcp.set_write_timeout(Some(left()?))?;
            tcp.write_all(&out).map_err(io)?;
        }
        tcp.set_read_timeout(Some(left()?))?;
        let want = want.min(buf.len());
        let n = tcp.read(&mut buf[..want]).map_err(io)?;
        handshake.handle_read(&buf[..n])?;
    }
    Ok(())
}
