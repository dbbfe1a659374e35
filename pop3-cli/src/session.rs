//! Connecting and logging in as the settings say.

use pop3_blocking::pop3_proto::sasl::{CramMd5, Login, OAuthBearer, Plain, XOAuth2};
use pop3_blocking::{Connection, LoginMethod, Secret};

use crate::cli::{AuthMode, Pipelining};
use crate::config::Settings;
use crate::error::CliError;

/// Connects (TLS as configured) and reads the greeting and capabilities.
pub(crate) fn connect(settings: &Settings) -> Result<Connection, CliError> {
    let host = settings.host()?;
    let port = settings.port();
    let options = settings.options()?;
    tracing::info!(target: "pop3_cli", "connecting to {host}:{port} ({:?})", settings.tls);
    Connection::connect(host, port, settings.security(), &options)
        .map_err(|e| at_address(host, port, CliError::from(e)))
}

/// Prefixes `HOST:PORT: ` unless the message names the address already (the library's
/// connect errors do).
pub(crate) fn at_address(host: &str, port: u16, error: CliError) -> CliError {
    let address = format!("{host}:{port}");
    if error.to_string().contains(&address) {
        error
    } else {
        error.context(address)
    }
}

/// Connects and logs in; returns the connection and the name of the login method used.
pub(crate) fn open(settings: &Settings) -> Result<(Connection, &'static str), CliError> {
    settings.host()?;
    let user = settings.user()?.to_owned();
    // The password first: a prompt or a slow password command must not hold a connection.
    // EXTERNAL has none: the client certificate is the credential.
    let password = match settings.auth {
        AuthMode::External => Secret::default(),
        _ => settings.password()?,
    };
    let mut connection = connect(settings)?;
    // Asked before login: the CAPA after login goes out with the first command after it.
    let announced = connection.capabilities().is_some_and(|c| c.pipelining);
    let method = match login(&mut connection, settings, &user, password) {
        Ok(method) => method,
        Err(error) => {
            // A refused login leaves a usable session: end it politely.
            if !connection.is_poisoned() {
                let _ = connection.quit();
            }
            return Err(error);
        }
    };
    tracing::info!(target: "pop3_cli", "logged in as {user} with {method}");
    if settings.pipelining == Pipelining::On && !announced {
        eprintln!(
            "pop3: warning: --pipelining on, but the server does not announce PIPELINING: pipelining anyway"
        );
    }
    Ok((connection, method))
}

/// Logs in with `--auth`; returns the method's name.
fn login(
    connection: &mut Connection,
    settings: &Settings,
    user: &str,
    password: Secret,
) -> Result<&'static str, CliError> {
    let name = user.to_owned();
    let method = match settings.auth {
        AuthMode::Auto => {
            let method = connection.login(user, password)?;
            return Ok(method_name(method));
        }
        AuthMode::User => {
            connection.user(user)?;
            connection.pass(password)?;
            "USER/PASS"
        }
        AuthMode::Apop => {
            connection.apop(user, password)?;
            "APOP"
        }
        AuthMode::Plain => {
            connection.auth(Plain::new(None, name, password))?;
            "PLAIN"
        }
        AuthMode::Login => {
            connection.auth(Login::new(name, password))?;
            "LOGIN"
        }
        AuthMode::CramMd5 => {
            connection.auth(CramMd5::new(name, password))?;
            "CRAM-MD5"
        }
        AuthMode::Xoauth2 => {
            connection.auth(XOAuth2::new(name, password))?;
            "XOAUTH2"
        }
        AuthMode::Oauthbearer => {
            let host = settings.host()?.to_owned();
            connection.auth(OAuthBearer::new(
                name,
                Some(host),
                Some(settings.port()),
                password,
            ))?;
            "OAUTHBEARER"
        }
        // The SCRAM family and EXTERNAL go through the login plan, which applies the
        // channel-binding rules (the -PLUS binding, `y`, the downgrade refusal).
        AuthMode::ScramSha1 => named(connection, LoginMethod::ScramSha1, user, password)?,
        AuthMode::ScramSha256 => named(connection, LoginMethod::ScramSha256, user, password)?,
        AuthMode::ScramSha512 => named(connection, LoginMethod::ScramSha512, user, password)?,
        AuthMode::ScramSha1Plus => named(connection, LoginMethod::ScramSha1Plus, user, password)?,
        AuthMode::ScramSha256Plus => {
            named(connection, LoginMethod::ScramSha256Plus, user, password)?
        }
        AuthMode::ScramSha512Plus => {
            named(connection, LoginMethod::ScramSha512Plus, user, password)?
        }
        AuthMode::External => named(connection, LoginMethod::External, user, password)?,
    };
    Ok(method)
}

/// Logs in with the method named by `--auth`; returns its name.
fn named(
    connection: &mut Connection,
    method: LoginMethod,
    user: &str,
    password: Secret,
) -> Result<&'static str, CliError> {
    Ok(method_name(connection.login_with(method, user, password)?))
}

/// The display name of a login method.
pub(crate) fn method_name(method: LoginMethod) -> &'static str {
    method.name()
}
