//! Internationalized host names (IDNA, UTS #46): a Unicode name such as `mail.bücher.example`
//! is converted to its A-labels (`mail.xn--bcher-kva.example`) before it is resolved, sent to
//! a proxy, sent as SNI and checked against the certificate, which only ever carry A-labels.

use std::net::IpAddr;

use crate::ConnectionError;

/// `host` as it goes to DNS, proxies and TLS: an IP address or an ASCII name unchanged, a
/// Unicode name converted to A-labels (UTS #46 processing, as browsers do). A name that does
/// not convert (disallowed characters, a bad bidi label, too long) is
/// [`ConnectionError::InvalidServerName`].
///
/// ```
/// assert_eq!(pop3_tls::ascii_host("Bücher.example")?, "xn--bcher-kva.example");
/// assert_eq!(pop3_tls::ascii_host("mail.example.org")?, "mail.example.org");
/// assert_eq!(pop3_tls::ascii_host("::1")?, "::1");
/// # Ok::<(), pop3_tls::ConnectionError>(())
/// ```
pub fn ascii_host(host: &str) -> Result<String, ConnectionError> {
    if host.is_ascii() || host.parse::<IpAddr>().is_ok() {
        return Ok(host.to_owned());
    }
    idna::domain_to_ascii(host).map_err(|_| ConnectionError::InvalidServerName(host.to_owned()))
}
