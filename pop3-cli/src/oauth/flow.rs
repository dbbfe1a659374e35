//! The OAuth 2.0 exchanges with the provider: the device authorization grant (RFC 8628) and
//! the refresh token grant (RFC 6749 section 6), their JSON replies and errors (RFC 6749
//! section 5.2, RFC 8628 section 3.5).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pop3_blocking::Secret;
use pop3_blocking::rustls::ClientConfig;
use serde_json::Value;

use super::http::{self, HttpError, Url};
use crate::error::CliError;
use crate::escape::escape;

/// RFC 8628 section 3.2: the polling interval when the server names none.
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 section 3.5: what `slow_down` adds to the interval.
const SLOW_DOWN_STEP: u64 = 5;
/// The longest wait between two polls we accept from a server (a larger `interval` is
/// capped: the user is waiting).
const MAX_INTERVAL: u64 = 60;
/// How long a device code lives when the server does not say (Microsoft's default).
const DEFAULT_DEVICE_LIFETIME: u64 = 900;
/// The longest error description shown (server text).
const MAX_DESCRIPTION: usize = 300;

/// A provider's endpoints and this client's registration.
#[derive(Clone)]
pub(crate) struct Provider {
    pub(crate) device_endpoint: Option<Url>,
    pub(crate) token_endpoint: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) scopes: String,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("device_endpoint", &self.device_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scopes", &self.scopes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A successful token response. `Debug` shows no token.
pub(crate) struct Granted {
    pub(crate) access: Secret,
    pub(crate) refresh: Option<Secret>,
    /// `expires_in`, in seconds.
    pub(crate) expires_in: Option<u64>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// An OAuth error response: the `error` code and its description.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub(crate) code: String,
    pub(crate) description: Option<String>,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code)?;
        if let Some(description) = &self.description {
            write!(f, " ({description})")?;
        }
        Ok(())
    }
}

/// What a token endpoint answered.
#[derive(Debug)]
pub(crate) enum Reply {
    Granted(Granted),
    Refused(OAuthError),
}

impl Provider {
    /// The refresh token grant.
    pub(crate) fn refresh(&self, refresh: &Secret) -> Result<Reply, CliError> {
        let refresh = String::from_utf8_lossy(refresh.expose()).into_owned();
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let secret = self.secret_text();
        if let Some(secret) = &secret {
            pairs.push(("client_secret", secret.as_str()));
        }
        self.token_request(&pairs)
    }

    /// The device authorization flow: asks for a code, shows it on `out`, polls until the
    /// user has signed in (or refused, or the code expired).
    pub(crate) fn device_login(&self, out: &mut dyn Write) -> Result<Granted, CliError> {
        let endpoint = self.device_endpoint.as_ref().ok_or_else(|| {
            CliError::usage(
                "the account has no oauth-device-authorization-endpoint (or oauth-provider)",
            )
        })?;
        let mut pairs = vec![("client_id", self.client_id.as_str())];
        if !self.scopes.is_empty() {
            pairs.push(("scope", self.scopes.as_str()));
        }
        let response = self.post(endpoint, &pairs)?;
        let json = json_body(endpoint, &response)?;
        if let Some(error) = oauth_error(&json) {
            return Err(CliError::Server(format!(
                "device authorization refused by {}: {error}",
                endpoint.authority()
            )));
        }
        if response.status != 200 {
            return Err(CliError::failure(format!(
                "device authorization endpoint {}: HTTP status {}",
                endpoint.authority(),
                response.status
            )));
        }
        let field = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let missing = |name: &str| {
            CliError::failure(format!(
                "device authorization endpoint {}: the response has no {name}",
                endpoint.authority()
            ))
        };
        let device_code = Secret::new(
            field("device_code")
                .ok_or_else(|| missing("device_code"))?
                .as_bytes()
                .to_vec(),
        );
        let user_code = field("user_code").ok_or_else(|| missing("user_code"))?;
        // Google spells it verification_url.
        let uri = field("verification_uri")
            .or_else(|| field("verification_url"))
            .ok_or_else(|| missing("verification_uri"))?;
        let lifetime = number(&json, "expires_in").unwrap_or(DEFAULT_DEVICE_LIFETIME);
        let mut interval = number(&json, "interval")
            .unwrap_or(DEFAULT_INTERVAL)
            .clamp(1, MAX_INTERVAL);
        let _ = writeln!(
            out,
            "To sign in, open {} and enter the code {}",
            escape(uri),
            escape(user_code)
        );
        if let Some(complete) = field("verification_uri_complete") {
            let _ = writeln!(out, "(or open {})", escape(complete));
        }
        let _ = writeln!(
            out,
            "Waiting for the sign-in (the code expires in {} minutes)...",
            lifetime.div_ceil(60)
        );
        let _ = out.flush();
        let expires = Instant::now() + Duration::from_secs(lifetime);
        let device_code = String::from_utf8_lossy(device_code.expose()).into_owned();
        let secret = self.secret_text();
        loop {
            let wake = Instant::now() + Duration::from_secs(interval);
            if wake > expires {
                return Err(expired());
            }
            std::thread::sleep(Duration::from_secs(interval));
            let mut pairs = vec![
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code.as_str()),
                ("client_id", self.client_id.as_str()),
            ];
            if let Some(secret) = &secret {
                pairs.push(("client_secret", secret.as_str()));
            }
            match self.token_request(&pairs)? {
                Reply::Granted(granted) => return Ok(granted),
                Reply::Refused(error) => match error.code.as_str() {
                    "authorization_pending" => {
                        tracing::debug!(target: "pop3_cli", "authorization pending");
                    }
                    "slow_down" => {
                        interval = (interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
                        tracing::debug!(target: "pop3_cli", "slow_down: polling every {interval} s");
                    }
                    "access_denied" => {
                        return Err(CliError::Server(
                            "the sign-in was refused (access_denied)".to_owned(),
                        ));
                    }
                    "expired_token" => return Err(expired()),
                    _ => {
                        return Err(CliError::Server(format!(
                            "the token endpoint refused the device code: {error}"
                        )));
                    }
                },
            }
        }
    }

    fn secret_text(&self) -> Option<String> {
        self.client_secret
            .as_ref()
            .map(|s| String::from_utf8_lossy(s.expose()).into_owned())
    }

    fn token_request(&self, pairs: &[(&str, &str)]) -> Result<Reply, CliError> {
        let endpoint = &self.token_endpoint;
        let response = self.post(endpoint, pairs)?;
        let json = json_body(endpoint, &response)?;
        if let Some(error) = oauth_error(&json) {
            return Ok(Reply::Refused(error));
        }
        if response.status != 200 {
            return Err(CliError::failure(format!(
                "token endpoint {}: HTTP status {}",
                endpoint.authority(),
                response.status
            )));
        }
        let access = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                CliError::failure(format!(
                    "token endpoint {}: the response has no access_token",
                    endpoint.authority()
                ))
            })?;
        if let Some(kind) = json.get("token_type").and_then(Value::as_str) {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(CliError::failure(format!(
                    "token endpoint {}: token_type {:?} is not Bearer",
                    endpoint.authority(),
                    truncate(kind)
                )));
            }
        }
        let token = |s: &str| {
            // A token goes into a SASL message between ^A separators and on a command line.
            if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                Ok(Secret::new(s.as_bytes().to_vec()))
            } else {
                Err(CliError::failure(format!(
                    "token endpoint {}: a token holds characters that are not printable ASCII",
                    endpoint.authority()
                )))
            }
        };
        Ok(Reply::Granted(Granted {
            access: token(access)?,
            refresh: json
                .get("refresh_token")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(token)
                .transpose()?,
            expires_in: number(&json, "expires_in"),
        }))
    }

    fn post(&self, url: &Url, pairs: &[(&str, &str)]) -> Result<http::Response, CliError> {
        tracing::info!(target: "pop3_cli", "POST {}{} ({} fields)", url.authority(), url.target, pairs.len());
        http::post_form(url, &http::form(pairs), &self.tls, self.timeout).map_err(|e| match e {
            HttpError::Timeout => CliError::failure(format!(
                "OAuth endpoint {}: no complete answer within {:.1} s (--timeout)",
                url.authority(),
                self.timeout.as_secs_f64()
            )),
            other => CliError::failure(format!("OAuth endpoint {}: {other}", url.authority())),
        })
    }
}

fn expired() -> CliError {
    CliError::Server(
        "the code expired before the sign-in was done: run `pop3 oauth login` again".to_owned(),
    )
}

fn json_body(url: &Url, response: &http::Response) -> Result<Value, CliError> {
    serde_json::from_slice(&response.body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            CliError::failure(format!(
                "OAuth endpoint {}: HTTP status {} without a JSON object",
                url.authority(),
                response.status
            ))
        })
}

fn oauth_error(json: &Value) -> Option<OAuthError> {
    let code = json.get("error")?.as_str()?;
    Some(OAuthError {
        code: truncate(code).to_owned(),
        description: json
            .get("error_description")
            .and_then(Value::as_str)
            .map(|d| truncate(d).to_owned()),
    })
}

/// A JSON number, or a string holding one (some servers send `"3600"`).
fn number(json: &Value, name: &str) -> Option<u64> {
    match json.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(MAX_DESCRIPTION) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
