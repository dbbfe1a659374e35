//! What the adapters' `Adapter` implementations (`blocking.rs`, `async.rs`, which include this
//! file by `#[path]`) share: both adapters re-export the same `pop3-tls` option and error
//! types, so the suites' options map onto them, and their errors onto [`Failure`], once. The
//! including file names its adapter crate `adapter`.

use pop3_tests::suite::{ConnectOptions, Failure, Security};

use crate::adapter::{ClientCertificate, Error, Options, Proxy, TlsOptions};

/// The adapter's error, classified for the suites.
pub(crate) fn failure(error: Error) -> Failure {
    match error {
        Error::Io(e) => Failure::Io(e.kind(), e.to_string()),
        Error::Proxy(e) => Failure::Proxy(format!("{e:?}")),
        Error::Tls(e) => Failure::Tls(e.to_string()),
        Error::Timeout(e) => Failure::Timeout(e),
        Error::Protocol(e) => Failure::Protocol(e),
        Error::Server(e) => Failure::Server(e),
        Error::Usage(e) => Failure::Usage(e),
        Error::Login(e) => Failure::Login(e),
        Error::InvalidServerName(name) => Failure::InvalidServerName(name),
        Error::GreetingRefused { code, text } => Failure::GreetingRefused { code, text },
        error @ Error::AlreadyLoggedIn => Failure::AlreadyLoggedIn(error.to_string()),
        Error::Uid(e) => {
            let message = e.to_string();
            Failure::Uid(e, message)
        }
        Error::MessageTooLarge { msg, limit } => Failure::MessageTooLarge { msg, limit },
        Error::NotAMessage { msg } => Failure::NotAMessage { msg },
        Error::Closed | Error::Poisoned | Error::Unusable(_) => Failure::Closed,
        other => Failure::Other(other.to_string()),
    }
}

/// The suites' connection options as the adapter's.
pub(crate) fn options(options: &ConnectOptions) -> Result<Options, Failure> {
    let mut tls = TlsOptions::default();
    if let Some(pem) = &options.ca_pem {
        tls = tls
            .add_ca_pem(pem.as_bytes())
            .map_err(|e| failure(e.into()))?;
    }
    if let Some(path) = &options.ca_file {
        tls = tls.add_ca_file(path).map_err(|e| failure(e.into()))?;
    }
    if options.accept_any_certificate {
        tls = tls.dangerous_accept_any_certificate();
    }
    if let Some((cert, key)) = &options.client_cert {
        let cert = ClientCertificate::from_pem(cert.as_bytes(), key.as_bytes())
            .map_err(|e| failure(e.into()))?;
        tls = tls.client_cert(cert);
    }
    let mut result = Options::default();
    if let Some(timeout) = options.connect_timeout {
        result = result.connect_timeout(timeout);
    }
    if let Some(source) = options.bind {
        result = result.bind(source);
    }
    if let Some(url) = &options.proxy {
        let proxy: Proxy = url.parse().map_err(|e| Failure::Other(format!("{e}")))?;
        result = result.proxy(proxy);
    }
    Ok(result
        .timeout(options.timeout)
        .config(options.config.clone())
        .tls(tls)
        .allow_plaintext(options.allow_plaintext)
        .allow_apop(options.allow_apop))
}

/// The suites' security mode as the adapter's.
pub(crate) fn security(security: Security) -> crate::adapter::Security {
    match security {
        Security::Implicit => crate::adapter::Security::Implicit,
        Security::StartTls => crate::adapter::Security::StartTls,
        Security::None => crate::adapter::Security::None,
    }
}
