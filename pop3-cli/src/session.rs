//! Connecting and logging in as the settings say.

use pop3_blocking::pop3_proto::sasl::{CramMd5, Login, OAuthBearer, Plain, XOAuth2};
use pop3_blocking::{Connection, LoginMethod, Secret};

use crate::cli::{AuthMode, Pipelining};
use crate::config::Settings;
use crate::error::CliError;

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

/// Connecting and logging in, written once for both adapters: `session_fns!()` expands the
/// blocking functions, `session_fns!(async await)` the async ones (as `pop3_tls::methods!`).
macro_rules! session_fns {
    ($($asyncness:ident $aw:ident)?) => {
        /// Connects (TLS as configured) and reads the greeting and capabilities.
        pub(crate) $($asyncness)? fn connect(settings: &Settings) -> Result<Connection, CliError> {
            let host = settings.host()?;
            let port = settings.port();
            let options = settings.options()?;
            tracing::info!(target: "pop3_cli", "connecting to {host}:{port} ({:?})", settings.tls);
            Connection::connect(host, port, settings.security(), &options)
                $(.$aw)?
                .map_err(|e| at_address(host, port, CliError::from(e)))
        }

        /// Connects and logs in; returns the connection and the name of the login method used.
        pub(crate) $($asyncness)? fn open(settings: &Settings) -> Result<(Connection, &'static str), CliError> {
            settings.host()?;
            let user = settings.user()?.to_owned();
            // The password first: a prompt or a slow password command must not hold a connection.
            // EXTERNAL has none: the client certificate is the credential.
            let password = match settings.auth {
                AuthMode::External => Secret::default(),
                _ => read_password(settings)$(.$aw)??,
            };
            let mut connection = connect(settings)$(.$aw)??;
            // Asked before login: the CAPA after login goes out with the first command after it.
            let announced = connection.capabilities().is_some_and(|c| c.pipelining);
            let method = match login(&mut connection, settings, &user, password)$(.$aw)? {
                Ok(method) => method,
                Err(error) => {
                    // A refused login leaves a usable session: end it politely.
                    if !connection.is_poisoned() {
                        let _ = connection.quit()$(.$aw)?;
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
        $($asyncness)? fn login(
            connection: &mut Connection,
            settings: &Settings,
            user: &str,
            password: Secret,
        ) -> Result<&'static str, CliError> {
            let name = user.to_owned();
            let method = match settings.auth {
                AuthMode::Auto => {
                    let method = connection.login(user, password)$(.$aw)??;
                    return Ok(method_name(method));
                }
                AuthMode::User => {
                    connection.user(user)$(.$aw)??;
                    connection.pass(password)$(.$aw)??;
                    "USER/PASS"
                }
                AuthMode::Apop => {
                    connection.apop(user, password)$(.$aw)??;
                    "APOP"
                }
                AuthMode::Plain => {
                    connection.auth(Plain::new(None, name, password))$(.$aw)??;
                    "PLAIN"
                }
                AuthMode::Login => {
                    connection.auth(Login::new(name, password))$(.$aw)??;
                    "LOGIN"
                }
                AuthMode::CramMd5 => {
                    connection.auth(CramMd5::new(name, password))$(.$aw)??;
                    "CRAM-MD5"
                }
                AuthMode::Xoauth2 | AuthMode::Oauthbearer => {
                    match oauth_attempt(connection, settings, &name, password)$(.$aw)? {
                        Ok(method) => method,
                        Err(error) => {
                            // With the token store as the source, a refused token is refreshed
                            // once and tried once more on the same session (see crate::oauth).
                            let says_codes =
                                connection.capabilities().is_some_and(|c| c.auth_resp_code);
                            match crate::oauth::store_source(settings) {
                                Some(oauth)
                                    if crate::oauth::refused_token(&error, says_codes)
                                        && !connection.is_poisoned() =>
                                {
                                    tracing::info!(target: "pop3_cli", "the server refused the access token: refreshing it and trying once more");
                                    let token = refreshed_token(oauth)$(.$aw)??;
                                    oauth_attempt(connection, settings, &name, token)$(.$aw)??
                                }
                                _ => return Err(error.into()),
                            }
                        }
                    }
                }
                // The SCRAM family and EXTERNAL go through the login plan, which applies the
                // channel-binding rules (the -PLUS binding, `y`, the downgrade refusal).
                AuthMode::ScramSha1
                | AuthMode::ScramSha256
                | AuthMode::ScramSha512
                | AuthMode::ScramSha1Plus
                | AuthMode::ScramSha256Plus
                | AuthMode::ScramSha512Plus
                | AuthMode::External => {
                    let method = match settings.auth {
                        AuthMode::ScramSha1 => LoginMethod::ScramSha1,
                        AuthMode::ScramSha256 => LoginMethod::ScramSha256,
                        AuthMode::ScramSha512 => LoginMethod::ScramSha512,
                        AuthMode::ScramSha1Plus => LoginMethod::ScramSha1Plus,
                        AuthMode::ScramSha256Plus => LoginMethod::ScramSha256Plus,
                        AuthMode::ScramSha512Plus => LoginMethod::ScramSha512Plus,
                        // Only EXTERNAL is left.
                        _ => LoginMethod::External,
                    };
                    method_name(connection.login_with(method, user, password)$(.$aw)??)
                }
            };
            Ok(method)
        }

        /// One AUTH XOAUTH2 or OAUTHBEARER with `token`.
        $($asyncness)? fn oauth_attempt(
            connection: &mut Connection,
            settings: &Settings,
            user: &str,
            token: Secret,
        ) -> Result<&'static str, pop3_blocking::Error> {
            if settings.auth == AuthMode::Oauthbearer {
                let host = settings.host.clone().unwrap_or_default();
                connection
                    .auth(OAuthBearer::new(user.to_owned(), Some(host), Some(settings.port()), token))
                    $(.$aw)??;
                Ok("OAUTHBEARER")
            } else {
                connection.auth(XOAuth2::new(user.to_owned(), token))$(.$aw)??;
                Ok("XOAUTH2")
            }
        }
    };
}

session_fns!();

/// The password, from its source: the OAuth token store's access token (refreshed first when
/// it has expired or is about to), or the password (or token) source.
fn read_password(settings: &Settings) -> Result<Secret, CliError> {
    crate::oauth::credential(settings)
}

/// A new access token after the server refused the stored one.
fn refreshed_token(oauth: &crate::oauth::OAuth) -> Result<Secret, CliError> {
    crate::oauth::fresh_token(oauth, true)
}

/// The same on `pop3-async`, for `fetch` and `poll`.
pub(crate) mod nonblocking {
    use pop3_async::Connection;
    use pop3_blocking::{LoginMethod, Secret};

    use super::{at_address, method_name};
    use crate::cli::{AuthMode, Pipelining};
    use crate::config::Settings;
    use crate::error::CliError;
    use pop3_blocking::pop3_proto::sasl::{CramMd5, Login, OAuthBearer, Plain, XOAuth2};

    session_fns!(async await);

    /// The password, from its source, on the blocking pool: a password command (a password
    /// manager, an OAuth helper) must not stall the other sessions of `poll`.
    async fn read_password(settings: &Settings) -> Result<Secret, CliError> {
        if let Some(oauth) = crate::oauth::store_source(settings) {
            // A refresh is an HTTPS request: on the blocking pool too.
            let oauth = oauth.clone();
            return tokio::task::spawn_blocking(move || crate::oauth::fresh_token(&oauth, false))
                .await
                .map_err(|_| CliError::failure("refreshing the access token stopped"))?;
        }
        let query = settings.password_query();
        tokio::task::spawn_blocking(move || query.read())
            .await
            .map_err(|_| CliError::failure("reading the password stopped"))?
    }

    /// A new access token after the server refused the stored one, on the blocking pool.
    async fn refreshed_token(oauth: &crate::oauth::OAuth) -> Result<Secret, CliError> {
        let oauth = oauth.clone();
        tokio::task::spawn_blocking(move || crate::oauth::fresh_token(&oauth, true))
            .await
            .map_err(|_| CliError::failure("refreshing the access token stopped"))?
    }
}

/// The display name of a login method.
pub(crate) fn method_name(method: LoginMethod) -> &'static str {
    method.name()
}
