//! `pop3 serverinfo`: what a server shows before login (as mpop's `--serverinfo`): the TLS
//! version and cipher suite, the certificate chain, the greeting, CAPA before and after STLS
//! and the SASL mechanisms. An untrusted certificate is still shown, then reported (exit 3).

use std::fmt::Write as _;

use pop3_blocking::rustls;
use pop3_blocking::{
    Capabilities, CertificateInfo, CertificateRecorder, Connection, Error, Greeting, Security,
    describe_tls_error,
};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK};
use crate::escape::{escape, json_text};

/// What was seen, as far as the session got.
#[derive(Debug, Default)]
struct Seen {
    greeting: Option<String>,
    /// CAPA of the plaintext session before STLS (`--tls starttls` only).
    capa_before: Option<Vec<String>>,
    /// The negotiated TLS version and cipher suite.
    tls: Option<(String, String)>,
    certificates: Vec<CertificateInfo>,
    /// `None` without TLS; `Some(Err(reason))` when the certificate was refused.
    trusted: Option<Result<(), String>>,
    /// CAPA of the session as it ends up (after STLS, or the only one).
    capa: Option<Vec<String>>,
    sasl: Vec<String>,
}

/// `pop3 serverinfo`.
pub(crate) fn serverinfo(settings: &Settings) -> Result<u8, CliError> {
    let host = settings.host()?;
    let port = settings.port();
    let recorder = CertificateRecorder::new();
    let mut options = settings.options()?;
    options.tls = options.tls.clone().record_certificates(&recorder);
    let security = settings.security();
    let mut seen = Seen::default();

    let first = if security == Security::Implicit {
        Security::Implicit
    } else {
        Security::None
    };
    let connected = Connection::connect(host, port, first, &options);
    let result = match connected {
        Ok(connection) if security == Security::StartTls => {
            seen.greeting = Some(greeting_line(connection.greeting()));
            seen.capa_before = connection.capabilities().map(|c| c.lines.clone());
            connection.stls()
        }
        other => other,
    };
    let outcome = match result {
        Ok(connection) => {
            seen.greeting
                .get_or_insert_with(|| greeting_line(connection.greeting()));
            if let Some(session) = connection.get_ref().tls_session() {
                let version = session
                    .protocol_version()
                    .and_then(|v| v.as_str())
                    .unwrap_or("unknown")
                    .replace('_', ".");
                let suite = session
                    .negotiated_cipher_suite()
                    .and_then(|s| s.suite().as_str())
                    .unwrap_or("unknown")
                    .to_owned();
                seen.tls = Some((version, suite));
                seen.trusted = Some(Ok(()));
            }
            seen.capa = connection.capabilities().map(|c| c.lines.clone());
            seen.sasl = connection
                .capabilities()
                .map(|c: &Capabilities| c.sasl.clone())
                .unwrap_or_default();
            // A polite end; its failure changes nothing of what was seen.
            let _ = connection.quit();
            Ok(())
        }
        Err(Error::Tls(error @ rustls::Error::InvalidCertificate(_)))
            if !recorder.certificates().is_empty() =>
        {
            seen.trusted = Some(Err(describe_tls_error(&error)));
            Err(None)
        }
        Err(error) if seen.greeting.is_some() => Err(Some(CliError::from(error))),
        Err(error) => {
            return Err(crate::session::at_address(
                host,
                port,
                CliError::from(error),
            ));
        }
    };
    for der in recorder.certificates() {
        match CertificateInfo::parse(&der) {
            Ok(info) => seen.certificates.push(info),
            Err(e) => return Err(CliError::failure(format!("the server's certificate: {e}"))),
        }
    }

    let mode = match security {
        Security::Implicit => "implicit",
        Security::StartTls => "starttls",
        _ => "none",
    };
    let text = if settings.json {
        format!("{}\n", json_text(&to_json(&seen, host, port, mode)))
    } else {
        to_text(&seen, host, port, mode)
    };
    print(&text)?;
    match outcome {
        Ok(()) => Ok(EXIT_OK),
        Err(None) => {
            eprintln!("pop3: {host}:{port}: the server's certificate is not trusted");
            Ok(EXIT_FAILURE)
        }
        Err(Some(error)) => Err(error),
    }
}

fn greeting_line(greeting: &Greeting) -> String {
    match &greeting.code {
        Some(code) => format!("+OK [{code}] {}", greeting.text),
        None => format!("+OK {}", greeting.text),
    }
}

fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::local("stdout", &e))
}

fn to_text(seen: &Seen, host: &str, port: u16, mode: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "server: {}:{port} (TLS: {mode})", escape(host));
    if let Some(greeting) = &seen.greeting {
        let _ = writeln!(out, "greeting: {}", escape(greeting));
    }
    let capa = |out: &mut String, title: &str, lines: &Option<Vec<String>>| match lines {
        Some(lines) => {
            let _ = writeln!(out, "{title}:");
            for line in lines {
                let _ = writeln!(out, "  {}", escape(line));
            }
        }
        None => {
            let _ = writeln!(out, "{title}: none (no CAPA)");
        }
    };
    if mode == "starttls" {
        capa(&mut out, "capabilities before STLS", &seen.capa_before);
    }
    match &seen.tls {
        Some((version, suite)) => {
            let _ = writeln!(out, "TLS: {version}, {suite}");
        }
        None if seen.trusted.is_some() => {
            let _ = writeln!(out, "TLS: handshake aborted at the certificate check");
        }
        None => {}
    }
    for (i, cert) in seen.certificates.iter().enumerate() {
        let _ = writeln!(out, "certificate {}:", i + 1);
        let _ = writeln!(out, "  subject: {}", escape(&cert.subject));
        let _ = writeln!(out, "  issuer: {}", escape(&cert.issuer));
        let _ = writeln!(
            out,
            "  valid: {} to {}",
            cert.not_before_utc(),
            cert.not_after_utc()
        );
        if !cert.names.is_empty() {
            let _ = writeln!(out, "  names: {}", escape(&cert.names.join(", ")));
        }
        if cert.is_ca {
            let _ = writeln!(out, "  CA: yes");
        }
        let _ = writeln!(out, "  sha256: {}", cert.sha256);
    }
    match &seen.trusted {
        Some(Ok(())) => {
            let _ = writeln!(out, "certificate trusted: yes");
        }
        Some(Err(reason)) => {
            let _ = writeln!(out, "certificate trusted: NO: {}", escape(reason));
        }
        None => {}
    }
    if seen.trusted.as_ref().is_none_or(Result::is_ok) {
        let title = if mode == "starttls" {
            "capabilities after STLS"
        } else {
            "capabilities"
        };
        capa(&mut out, title, &seen.capa);
        let _ = writeln!(out, "SASL mechanisms: {}", escape(&seen.sasl.join(" ")));
    }
    out
}

fn to_json(seen: &Seen, host: &str, port: u16, mode: &str) -> Value {
    let certificates: Vec<Value> = seen
        .certificates
        .iter()
        .map(|c| {
            json!({
                "subject": c.subject,
                "issuer": c.issuer,
                "not_before": c.not_before_utc(),
                "not_after": c.not_after_utc(),
                "names": c.names,
                "ca": c.is_ca,
                "sha256": c.sha256.to_string(),
            })
        })
        .collect();
    json!({
        "host": host,
        "port": port,
        "tls_mode": mode,
        "greeting": seen.greeting,
        "capabilities_before_stls": seen.capa_before,
        "tls": seen.tls.as_ref().map(|(version, suite)| json!({ "version": version, "cipher_suite": suite })),
        "certificates": certificates,
        "trusted": seen.trusted.as_ref().map(Result::is_ok),
        "error": seen.trusted.as_ref().and_then(|t| t.as_ref().err()),
        "capabilities": seen.capa,
        "sasl": seen.sasl,
    })
}
