//! Proxies on the way to the server, sans-IO: SOCKS5 (RFC 1928) with optional username/password
//! authentication (RFC 1929), and HTTP CONNECT (RFC 9110 §9.3.6) with optional basic
//! authentication (RFC 7617).
//!
//! [`Proxy`] is the parsed `--proxy` URL; [`ProxyHandshake`] is the dialogue with it, written
//! once for both adapters. It never touches a socket: the adapter connects to
//! [`Proxy::host`]:[`Proxy::port`], then loops
//!
//! ```text
//! while !handshake.is_done() {
//!     write what handshake.poll_transmit(&mut out) appended;
//!     read at most handshake.read_size() bytes;          // never more: see below
//!     handshake.handle_input(&bytes)?  (handle_eof() on end of stream)
//! }
//! ```
//!
//! and the stream is then a tunnel to the target. [`read_size`](ProxyHandshake::read_size)
//! never asks for more than what is left of the proxy's reply, so not a byte of the POP3
//! greeting (or of the TLS handshake) that follows it is read by mistake, and a proxy cannot
//! make the client buffer more than [`MAX_HTTP_REPLY`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use pop3_proto::Secret;

/// The longest HTTP reply head (status line and headers) accepted from an HTTP proxy.
/// Proxies send a few hundred bytes; 16 KiB leaves room for verbose ones and bounds a hostile
/// one.
pub const MAX_HTTP_REPLY: usize = 16 * 1024;

/// Which kind of proxy, from the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// `socks5://`: SOCKS5; the client resolves the server's name and sends an address.
    Socks5,
    /// `socks5h://`: SOCKS5; the proxy resolves the server's name (the client sends it).
    Socks5h,
    /// `http://`: HTTP `CONNECT host:port`; the proxy resolves the name.
    HttpConnect,
}

impl ProxyKind {
    /// Whether the client must resolve the server's name itself (only `socks5://`).
    pub fn resolves_locally(self) -> bool {
        self == Self::Socks5
    }

    fn scheme(self) -> &'static str {
        match self {
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
            Self::HttpConnect => "http",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Socks5 | Self::Socks5h => 1080,
            Self::HttpConnect => 8080,
        }
    }
}

/// A proxy, parsed from a URL: `socks5://[user:password@]host[:port]`, `socks5h://…` or
/// `http://…`. The userinfo is percent-decoded (`%40` for `@`, `%3A` for `:`); the default
/// ports are 1080 (SOCKS) and 8080 (HTTP). The password is a [`Secret`]: `Debug` and
/// [`Display`](fmt::Display) leave it out.
///
/// ```
/// let proxy: pop3_tls::Proxy = "socks5h://me:p%40ss@[::1]:1080".parse()?;
/// assert_eq!(proxy.host(), "::1");
/// assert_eq!(proxy.to_string(), "socks5h://me@[::1]:1080");
/// # Ok::<(), pop3_tls::ProxyUrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, Secret)>,
}

impl Proxy {
    /// A proxy without credentials.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Sets the user name and password (SOCKS5 username/password, HTTP basic).
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.credentials = Some((user.into(), password));
        self
    }

    /// The kind of proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name, if credentials are set.
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }
}

impl fmt::Display for Proxy {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(user) = self.user() {
            write!(f, "{}@", percent_encode(user))?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user())
            .field("password", &self.credentials.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a proxy URL did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyUrlError {
    /// The scheme is not `socks5`, `socks5h` or `http`.
    #[error("a proxy URL starts with socks5://, socks5h:// or http://")]
    Scheme,
    /// No host after the scheme.
    #[error("the proxy URL has no host")]
    MissingHost,
    /// The port is not a number from 1 to 65535.
    #[error("the proxy URL's port is not a number from 1 to 65535")]
    Port,
    /// A bracketed IPv6 address is malformed.
    #[error("the proxy URL's [IPv6 address] is malformed")]
    Ipv6,
    /// A `%` not followed by two hex digits, or userinfo that is not UTF-8 once decoded.
    #[error("the proxy URL's user name or password has a bad %-escape")]
    Escape,
    /// A path, query or fragment after the authority.
    #[error(
        "the proxy URL has a path, query or fragment; only scheme://[user[:password]@]host[:port]"
    )]
    Path,
}

impl FromStr for Proxy {
    type Err = ProxyUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = url.split_once("://").ok_or(ProxyUrlError::Scheme)?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            "http" => ProxyKind::HttpConnect,
            _ => return Err(ProxyUrlError::Scheme),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(ProxyUrlError::Path);
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(ProxyUrlError::Ipv6)?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| ProxyUrlError::Ipv6)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(ProxyUrlError::Port)?),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(ProxyUrlError::MissingHost);
        }
        let port = match port {
            None => kind.default_port(),
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(ProxyUrlError::Port),
            },
        };
        let mut proxy = Proxy::new(kind, host, port);
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            proxy = proxy.credentials(
                percent_decode(user)?,
                Secret::new(percent_decode(password)?),
            );
        }
        Ok(proxy)
    }
}

fn percent_decode(text: &str) -> Result<String, ProxyUrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(ProxyUrlError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ProxyUrlError::Escape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ProxyUrlError::Escape)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyUrlError::Escape)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Where the proxy is asked to connect: a name (resolved by the proxy) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// A host name (in A-labels) and port.
    Name(String, u16),
    /// An address the client resolved.
    Addr(SocketAddr),
}

/// Why the proxy did not open the tunnel: it refused, demanded or rejected credentials, or
/// broke its protocol. The connection to the proxy is then useless.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The SOCKS5 proxy accepts none of the authentication methods offered (`0xFF`):
    /// it wants credentials and none were given, or it does not take the ones we have.
    #[error("the SOCKS5 proxy accepts none of the offered authentication methods ({offered})")]
    NoAcceptableMethod {
        /// What was offered, in words.
        offered: &'static str,
    },
    /// The proxy rejected the user name or password (SOCKS5 status ≠ 0, HTTP 407 or 401
    /// after credentials were sent).
    #[error("the proxy rejected the user name or password")]
    AuthenticationFailed,
    /// The HTTP proxy wants credentials (407) and none were given.
    #[error("the HTTP proxy requires authentication (407) and no credentials were given")]
    AuthenticationRequired,
    /// The SOCKS5 proxy refused the CONNECT with this reply code (RFC 1928 §6).
    #[error("the SOCKS5 proxy refused to connect: {} (reply {code:#04x})", socks_reply(*.code))]
    Socks5Refused {
        /// The REP field.
        code: u8,
    },
    /// The HTTP proxy answered CONNECT with a status other than 2xx.
    #[error("the HTTP proxy refused to connect: {status} {reason}")]
    HttpRefused {
        /// The status code.
        status: u16,
        /// The reason phrase, printable ASCII only, at most 200 characters.
        reason: String,
    },
    /// The proxy's reply is not what its protocol allows (wrong version, a method we did not
    /// offer, a reserved byte set, an unknown address type, a malformed status line, ...).
    #[error("the proxy broke its protocol: {0}")]
    Malformed(&'static str),
    /// The HTTP proxy's reply head is longer than [`MAX_HTTP_REPLY`].
    #[error("the HTTP proxy's reply is longer than {MAX_HTTP_REPLY} bytes")]
    ReplyTooLong,
    /// The proxy closed the connection before the end of its reply.
    #[error("the proxy closed the connection in the middle of the handshake")]
    Closed,
    /// A user name or password longer than 255 bytes or empty (SOCKS5's limit), or a host
    /// name longer than 255 bytes: nothing was sent.
    #[error("{0} is too long (or empty) for a SOCKS5 request")]
    TooLong(&'static str),
    /// A host name with a control character or space, a credential with CR, LF or NUL, or an
    /// HTTP basic-authentication user name with a colon (RFC 7617): nothing was sent.
    #[error("{0} contains a character the proxy protocol cannot carry")]
    ControlCharacter(&'static str),
}

fn socks_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// SOCKS5: waiting for the method selection (2 bytes).
    Socks5Method,
    /// SOCKS5: waiting for the username/password status (2 bytes).
    Socks5Auth,
    /// SOCKS5: waiting for the CONNECT reply.
    Socks5Reply,
    /// HTTP: waiting for the reply head, up to CRLF CRLF.
    HttpReply,
    Done,
    Failed,
}

/// The dialogue with a proxy that opens a tunnel to the target: see the module docs for the
/// loop that drives it. After an error every call keeps failing the same way (sticky).
pub struct ProxyHandshake {
    kind: ProxyKind,
    state: State,
    target: ProxyTarget,
    credentials: Option<(String, Secret)>,
    out: Vec<u8>,
    input: Vec<u8>,
    error: Option<ProxyError>,
}

impl fmt::Debug for ProxyHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandshake")
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

const SOCKS_VERSION: u8 = 5;
const METHOD_NONE: u8 = 0;
const METHOD_USERPASS: u8 = 2;
const METHOD_REFUSED: u8 = 0xFF;
const USERPASS_VERSION: u8 = 1;

impl ProxyHandshake {
    /// The handshake with `proxy` for a tunnel to `target`. A [`ProxyTarget::Name`] with
    /// `socks5://` is sent as a name all the same (the adapters resolve first for
    /// `socks5://`: see [`ProxyKind::resolves_locally`]).
    ///
    /// Fails, before anything is sent, on credentials or a host name that the protocol cannot
    /// carry ([`ProxyError::TooLong`], [`ProxyError::ControlCharacter`]).
    pub fn new(proxy: &Proxy, target: ProxyTarget) -> Result<Self, ProxyError> {
        if let ProxyTarget::Name(name, _) = &target {
            if name.is_empty() || name.len() > 255 {
                return Err(ProxyError::TooLong("the server's host name"));
            }
            if name.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(ProxyError::ControlCharacter("the server's host name"));
            }
        }
        if let Some((user, password)) = &proxy.credentials {
            let socks = proxy.kind != ProxyKind::HttpConnect;
            for (what, value) in [
                ("the proxy user name", user.as_bytes()),
                ("the proxy password", password.expose()),
            ] {
                if socks && (value.is_empty() || value.len() > 255) {
                    return Err(ProxyError::TooLong(what));
                }
                if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err(ProxyError::ControlCharacter(what));
                }
            }
            if !socks && user.contains(':') {
                // RFC 7617: the user-id of basic authentication cannot contain a colon.
                return Err(ProxyError::ControlCharacter(
                    "the proxy user name (a colon)",
                ));
            }
        }
        let mut handshake = Self {
            kind: proxy.kind,
            state: State::Socks5Method,
            target,
            credentials: proxy.credentials.clone(),
            out: Vec::new(),
            input: Vec::new(),
            error: None,
        };
        match proxy.kind {
            ProxyKind::Socks5 | ProxyKind::Socks5h => {
                let out = &mut handshake.out;
                if handshake.credentials.is_some() {
                    out.extend_from_slice(&[SOCKS_VERSION, 2, METHOD_NONE, METHOD_USERPASS]);
                } else {
                    out.extend_from_slice(&[SOCKS_VERSION, 1, METHOD_NONE]);
                }
            }
            ProxyKind::HttpConnect => {
                handshake.http_request();
                handshake.state = State::HttpReply;
            }
        }
        Ok(handshake)
    }

    /// Whether the tunnel is open: the stream now carries the target's bytes.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// How many bytes to read next, at most: never beyond the end of the proxy's reply.
    /// Zero when the handshake is done or failed.
    pub fn read_size(&self) -> usize {
        match self.state {
            State::Socks5Method | State::Socks5Auth => 2 - self.input.len(),
            State::Socks5Reply => self.socks_reply_len() - self.input.len(),
            State::HttpReply => {
                // The head ends with CRLF CRLF: reading as many bytes as are missing from
                // the longest partial terminator at the end cannot go past it.
                let tail = &self.input[self.input.len().saturating_sub(3)..];
                let partial = [&b"\r\n\r"[..], b"\r\n", b"\r"]
                    .iter()
                    .find(|p| tail.ends_with(p))
                    .map_or(0, |p| p.len());
                (4 - partial).min(MAX_HTTP_REPLY + 1 - self.input.len())
            }
            State::Done | State::Failed => 0,
        }
    }

    /// The SOCKS5 reply's whole length, as far as known from what came: 5 bytes until the
    /// address type (and, for a name, its length byte) is in.
    fn socks_reply_len(&self) -> usize {
        match (self.input.get(3), self.input.get(4)) {
            (Some(1), _) => 4 + 4 + 2,
            (Some(4), _) => 4 + 16 + 2,
            (Some(3), Some(&len)) => 5 + usize::from(len) + 2,
            _ => 5,
        }
    }

    /// Appends the bytes to send to `out`; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.out.len();
        out.append(&mut self.out);
        n
    }

    /// Takes bytes read from the proxy: at most [`read_size`](Self::read_size) of them (more
    /// is refused as [`ProxyError::Malformed`]: the caller broke the contract, and the extra
    /// bytes would belong to the server).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ProxyError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        if data.len() > self.read_size() {
            return self.fail(ProxyError::Malformed("more bytes than the reply can hold"));
        }
        self.input.extend_from_slice(data);
        let result = self.advance();
        if let Err(error) = &result {
            self.error = Some(error.clone());
            self.state = State::Failed;
        }
        result
    }

    /// The next step of a driver's loop: `None` once the tunnel is open; else the bytes to
    /// write (in `out`, cleared first; maybe none) and then how many bytes to read at most.
    /// A handshake that failed, or wants nothing more and is not done, is an error here.
    /// With [`handle_read`](Self::handle_read) it is the whole loop of both adapters:
    ///
    /// ```text
    /// while let Some(want) = handshake.next(&mut out)? {
    ///     write out; read at most `want` bytes into buf[..n];
    ///     handshake.handle_read(&buf[..n])?;
    /// }
    /// ```
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, ProxyError> {
        if self.is_done() {
            return Ok(None);
        }
        out.clear();
        self.poll_transmit(out);
        match self.read_size() {
            0 => Err(self.handle_eof()),
            want => Ok(Some(want)),
        }
    }

    /// Takes the bytes of one read from the proxy: none is the end of the connection
    /// ([`handle_eof`](Self::handle_eof)), else as [`handle_input`](Self::handle_input).
    pub fn handle_read(&mut self, data: &[u8]) -> Result<(), ProxyError> {
        if data.is_empty() {
            return Err(self.handle_eof());
        }
        self.handle_input(data)
    }

    /// The proxy closed the connection: the error to report (the sticky one, if any).
    pub fn handle_eof(&mut self) -> ProxyError {
        if let Some(error) = &self.error {
            return error.clone();
        }
        self.error = Some(ProxyError::Closed);
        self.state = State::Failed;
        ProxyError::Closed
    }

    fn fail(&mut self, error: ProxyError) -> Result<(), ProxyError> {
        self.error = Some(error.clone());
        self.state = State::Failed;
        Err(error)
    }

    fn advance(&mut self) -> Result<(), ProxyError> {
        match self.state {
            State::Socks5Method if self.input.len() == 2 => {
                let (version, method) = (self.input[0], self.input[1]);
                self.input.clear();
                if version != SOCKS_VERSION {
                    return Err(ProxyError::Malformed("not a SOCKS5 method selection"));
                }
                match method {
                    METHOD_NONE => self.socks_connect(),
                    METHOD_USERPASS if self.credentials.is_some() => {
                        let (user, password) = self.credentials.as_ref().expect("checked");
                        let out = &mut self.out;
                        out.push(USERPASS_VERSION);
                        out.push(user.len() as u8);
                        out.extend_from_slice(user.as_bytes());
                        out.push(password.expose().len() as u8);
                        out.extend_from_slice(password.expose());
                        self.state = State::Socks5Auth;
                    }
                    METHOD_REFUSED => {
                        return Err(ProxyError::NoAcceptableMethod {
                            offered: match self.credentials {
                                Some(_) => "none, username/password",
                                None => "none",
                            },
                        });
                    }
                    _ => return Err(ProxyError::Malformed("a method the client did not offer")),
                }
            }
            State::Socks5Auth if self.input.len() == 2 => {
                let (version, status) = (self.input[0], self.input[1]);
                self.input.clear();
                // RFC 1929 says version 1; a few servers echo the SOCKS version 5.
                if version != USERPASS_VERSION && version != SOCKS_VERSION {
                    return Err(ProxyError::Malformed("not a username/password status"));
                }
                if status != 0 {
                    return Err(ProxyError::AuthenticationFailed);
                }
                self.socks_connect();
            }
            State::Socks5Reply => {
                let input = &self.input;
                if input.first().is_some_and(|&v| v != SOCKS_VERSION) {
                    return Err(ProxyError::Malformed("the CONNECT reply is not SOCKS5"));
                }
                if let Some(&code) = input.get(1)
                    && code != 0
                {
                    return Err(ProxyError::Socks5Refused { code });
                }
                if input.get(2).is_some_and(|&r| r != 0) {
                    return Err(ProxyError::Malformed(
                        "the reserved byte of the reply is set",
                    ));
                }
                if input.get(3).is_some_and(|t| ![1, 3, 4].contains(t)) {
                    return Err(ProxyError::Malformed(
                        "an unknown address type in the reply",
                    ));
                }
                if input.len() >= 5 && input.len() == self.socks_reply_len() {
                    self.input.clear();
                    self.state = State::Done;
                }
            }
            State::HttpReply => {
                if self.input.ends_with(b"\r\n\r\n") {
                    self.http_reply()?;
                } else if self.input.len() > MAX_HTTP_REPLY {
                    return Err(ProxyError::ReplyTooLong);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn socks_connect(&mut self) {
        let out = &mut self.out;
        out.extend_from_slice(&[SOCKS_VERSION, 1, 0]);
        let port = match &self.target {
            ProxyTarget::Name(name, port) => {
                out.push(3);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                *port
            }
            ProxyTarget::Addr(addr) => {
                match addr.ip() {
                    IpAddr::V4(ip) => {
                        out.push(1);
                        out.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        out.push(4);
                        out.extend_from_slice(&ip.octets());
                    }
                }
                addr.port()
            }
        };
        out.extend_from_slice(&port.to_be_bytes());
        self.state = State::Socks5Reply;
    }

    fn http_request(&mut self) {
        use base64::Engine as _;
        let authority = match &self.target {
            ProxyTarget::Name(name, port) => format!("{name}:{port}"),
            ProxyTarget::Addr(addr) => addr.to_string(),
        };
        let mut request =
            format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
        if let Some((user, password)) = &self.credentials {
            let mut plain = format!("{user}:").into_bytes();
            plain.extend_from_slice(password.expose());
            let token = base64::engine::general_purpose::STANDARD.encode(&plain);
            request.extend_from_slice(b"Proxy-Authorization: Basic ");
            request.extend_from_slice(token.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        self.out = request;
    }

    /// The status line of a complete reply head: `HTTP/1.x SP 3DIGIT SP reason`.
    fn http_reply(&mut self) -> Result<(), ProxyError> {
        let head = std::mem::take(&mut self.input);
        let line_end = head
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(head.len());
        let line = &head[..line_end];
        let rest = line
            .strip_prefix(b"HTTP/1.")
            .filter(|r| r.first().is_some_and(u8::is_ascii_digit))
            .ok_or(ProxyError::Malformed("the reply is not HTTP/1.x"))?;
        let status = rest
            .get(1..5)
            .filter(|s| s[0] == b' ' && s[1..].iter().all(u8::is_ascii_digit))
            .filter(|_| rest.get(5).is_none_or(|&b| b == b' '))
            .ok_or(ProxyError::Malformed(
                "the status line has no 3-digit status",
            ))?;
        let status: u16 = status[1..]
            .iter()
            .fold(0, |n, d| n * 10 + u16::from(d - b'0'));
        let reason: String = rest
            .get(6..)
            .unwrap_or_default()
            .iter()
            .filter(|b| b.is_ascii_graphic() || **b == b' ')
            .take(200)
            .map(|&b| char::from(b))
            .collect();
        match status {
            200..=299 => {
                self.state = State::Done;
                Ok(())
            }
            // 407 is the proxy's "authentication required"; tinyproxy (1.11) answers wrong
            // credentials with 401, which, in reply to CONNECT, can only be about them too.
            401 | 407 if self.credentials.is_some() => Err(ProxyError::AuthenticationFailed),
            407 => Err(ProxyError::AuthenticationRequired),
            100..=199 => Err(ProxyError::Malformed("an interim 1xx reply to CONNECT")),
            _ => Err(ProxyError::HttpRefused { status, reason }),
        }
    }
}
