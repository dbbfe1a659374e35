//! A minimal HTTP/1.1 client for the token endpoints: one `POST` of a form per connection,
//! over the workspace's own rustls configuration (the same verifier as the POP3 connection).
//!
//! Bounded on every side: one deadline for the whole exchange (connect, write, read), a
//! response of at most [`MAX_RESPONSE`] bytes, `Content-Length`, chunked or read-to-close
//! bodies. `http://` only for a loopback address, and only when the caller allows it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pop3_blocking::rustls::pki_types::ServerName;
use pop3_blocking::rustls::{ClientConfig, ClientConnection, StreamOwned};

/// The most a token endpoint may send back, head and body together. Token responses are a
/// few kilobytes (Microsoft's JWT access tokens up to about 4 KiB); 64 KiB leaves room.
pub(crate) const MAX_RESPONSE: usize = 64 * 1024;

/// An `https://` (or loopback `http://`) URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) tls: bool,
    /// The host as written, without brackets for IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path and query, starting with `/`.
    pub(crate) target: String,
}

impl Url {
    /// Parses `https://HOST[:PORT][/PATH]` or, with `allow_http`, `http://` to a loopback
    /// address (`127.0.0.0/8`, `::1`, `localhost`).
    pub(crate) fn parse(text: &str, allow_http: bool) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{text:?} is not an https:// URL"));
        };
        if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "{text:?}: a URL cannot hold spaces or control characters"
            ));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let target = match target.find('#') {
            Some(i) => target[..i].to_owned(),
            None => target,
        };
        if authority.contains('@') {
            return Err(format!(
                "{text:?}: user information in the URL is not supported"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?}: no host"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{text:?}: invalid port"))?,
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
        };
        if !tls {
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "{text:?}: http:// only for a loopback address (127.0.0.1, ::1, localhost); token endpoints need https://"
                ));
            }
            if !allow_http {
                return Err(format!(
                    "{text:?}: http:// sends tokens unencrypted: set oauth-allow-http = true to allow it on loopback"
                ));
            }
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// `HOST:PORT` for messages (`[v6]:PORT`).
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What went wrong with an HTTP exchange.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// Name resolution, connect, TLS or a socket error.
    Io(io::Error),
    /// The deadline passed.
    Timeout,
    /// The response broke HTTP/1.1 or a limit.
    Malformed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Malformed(m) => write!(f, "invalid HTTP response: {m}"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Self::Timeout,
            _ => match error
                .get_ref()
                .and_then(|e| e.downcast_ref::<pop3_blocking::rustls::Error>())
            {
                Some(tls) => Self::Io(io::Error::other(format!(
                    "TLS error: {}",
                    pop3_blocking::describe_tls_error(tls)
                ))),
                None => Self::Io(error),
            },
        }
    }
}

/// A response: the status code and the body (de-chunked).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// `POST`s `form` (already `application/x-www-form-urlencoded`) to `url` and reads the
/// response, all within `timeout`. The form holds secrets: it is never logged.
pub(crate) fn post_form(
    url: &Url,
    form: &str,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let tcp = connect(url, deadline)?;
    let host_header = if url.port == if url.tls { 443 } else { 80 } {
        if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        }
    } else {
        url.authority()
    };
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: pop3/{}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        url.target,
        env!("CARGO_PKG_VERSION"),
        form.len()
    );
    if url.tls {
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| HttpError::Malformed(format!("{:?} is not a valid TLS name", url.host)))?;
        let connection = ClientConnection::new(Arc::clone(tls), name)
            .map_err(|e| HttpError::Io(io::Error::other(e)))?;
        let mut stream = StreamOwned::new(connection, Deadlined { tcp, deadline });
        exchange(&mut stream, request.as_bytes())
    } else {
        let mut stream = Deadlined { tcp, deadline };
        exchange(&mut stream, request.as_bytes())
    }
}

fn connect(url: &Url, deadline: Instant) -> Result<TcpStream, HttpError> {
    let addresses: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| {
            HttpError::Io(io::Error::new(
                e.kind(),
                format!("resolving {}: {e}", url.host),
            ))
        })?
        .collect();
    let mut last = None;
    for address in addresses {
        let left = remaining(deadline)?;
        match TcpStream::connect_timeout(&address, left) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(HttpError::Timeout),
            Err(e) => last = Some(e),
        }
    }
    Err(HttpError::Io(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no address")
    })))
}

fn remaining(deadline: Instant) -> Result<Duration, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(HttpError::Timeout)
    } else {
        Ok(left)
    }
}

/// A socket whose every read and write waits at most until the deadline.
struct Deadlined {
    tcp: TcpStream,
    deadline: Instant,
}

impl Deadlined {
    fn arm(&self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.set_write_timeout(Some(left))
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.tcp.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> Result<Response, HttpError> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut eof = false;
    loop {
        if let Some(response) = parse(&buffer, eof)? {
            return Ok(response);
        }
        if eof {
            return Err(HttpError::Malformed(
                "the connection closed before the end of the response".to_owned(),
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => {
                if buffer.len() + n > MAX_RESPONSE {
                    return Err(HttpError::Malformed(format!(
                        "the response is longer than {MAX_RESPONSE} bytes"
                    )));
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            // A TLS peer that closed without close_notify: a body delimited by its length is
            // complete or not, but one delimited by the close may have been cut short.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return parse(&buffer, false)?.ok_or_else(|| {
                    HttpError::Malformed(
                        "the connection closed (without TLS close_notify) before the end of the response"
                            .to_owned(),
                    )
                });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A complete response in `data`, `None` if more is needed.
fn parse(data: &[u8], eof: bool) -> Result<Option<Response>, HttpError> {
    let Some(head_end) = memfind(data, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&data[..head_end])
        .map_err(|_| HttpError::Malformed("the head is not UTF-8".to_owned()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || status.len() != 3 {
        return Err(HttpError::Malformed(format!(
            "status line {:?}",
            truncate(status_line)
        )));
    }
    let status: u16 = status
        .parse()
        .map_err(|_| HttpError::Malformed(format!("status line {:?}", truncate(status_line))))?;
    let body = &data[head_end + 4..];
    if (100..200).contains(&status) {
        // An interim response (we send no Expect, but a server may): skip it.
        return parse(body, eof);
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("header line {:?}", truncate(line))))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::Malformed(
                    "two different Content-Length".to_owned(),
                ));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Err(HttpError::Malformed(format!("Transfer-Encoding {value:?}")));
            }
        }
    }
    if chunked {
        return dechunk(body).map(|body| body.map(|body| Response { status, body }));
    }
    if let Some(length) = length {
        if length > MAX_RESPONSE {
            return Err(HttpError::Malformed(format!(
                "Content-Length {length} is more than {MAX_RESPONSE}"
            )));
        }
        if body.len() >= length {
            return Ok(Some(Response {
                status,
                body: body[..length].to_vec(),
            }));
        }
        return Ok(None);
    }
    if eof {
        Ok(Some(Response {
            status,
            body: body.to_vec(),
        }))
    } else {
        Ok(None)
    }
}

/// The body of a complete chunked encoding, `None` if more is needed.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = memfind(data, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end])
            .map_err(|_| HttpError::Malformed("a chunk size is not UTF-8".to_owned()))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {:?}", truncate(line))))?;
        if size > MAX_RESPONSE {
            return Err(HttpError::Malformed(format!("chunk size {size}")));
        }
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line.
            return Ok(
                if data.starts_with(b"\r\n") || memfind(data, b"\r\n\r\n").is_some() {
                    Some(body)
                } else {
                    None
                },
            );
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed(
                "a chunk does not end with CRLF".to_owned(),
            ));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// `application/x-www-form-urlencoded` of name/value pairs (every byte but the RFC 3986
/// unreserved ones percent-encoded).
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, name);
        out.push('=');
        encode_into(&mut out, value);
    }
    out
}

fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://login.example.com/t/oauth2/v2.0/token", false).unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str()),
            (true, "login.example.com", 443, "/t/oauth2/v2.0/token")
        );
        let u = Url::parse("https://[::1]:8443?x=1#frag", false).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 8443, "/?x=1")
        );
        assert_eq!(u.authority(), "[::1]:8443");
        assert!(Url::parse("http://127.0.0.1:9/t", false).is_err());
        assert!(Url::parse("http://127.0.0.1:9/t", true).is_ok());
        assert!(Url::parse("http://example.com/t", true).is_err());
        assert!(Url::parse("ftp://example.com/t", true).is_err());
        assert!(Url::parse("https://a@example.com/t", true).is_err());
        assert!(Url::parse("https://example.com:0/t", true).is_err());
        assert!(Url::parse("https://example.com/a b", true).is_err());
        assert!(Url::parse("https:///t", true).is_err());
    }

    #[test]
    fn responses() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}", false)
                .unwrap()
                .is_none()
        );
        let chunked = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = parse(chunked, false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"abcde"[..]));
        for cut in 0..chunked.len() {
            assert!(parse(&chunked[..cut], false).unwrap().is_none(), "{cut}");
        }
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\nabc", true).unwrap().unwrap();
        assert_eq!(r.body, b"abc");
        let r = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(parse(b"SMTP 220\r\n\r\n", false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).is_err());
        assert!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(
            parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
                false
            )
            .is_err()
        );
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form(&[("scope", "a b/c"), ("x", "1&2=ü")]),
            "scope=a%20b%2Fc&x=1%262%3D%C3%BC"
        );
    }
}
