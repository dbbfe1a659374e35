//! OAuth 2.0 for XOAUTH2 and OAUTHBEARER: `pop3 oauth login` (the device authorization flow,
//! RFC 8628), the token store (the OS keyring or a 0600 file: `oauth-store`, see `store`), the
//! refresh before each session, and the one refresh and retry after `-ERR [AUTH]`.
//!
//! An account uses the store when it names a provider (`oauth-provider`) or a token endpoint
//! (`oauth-token-endpoint`) and no password source is given on the command line. Tokens stay
//! in [`Secret`]s: never in `Debug`, errors or traces.

mod flow;
mod http;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use pop3_blocking::{Error, ResponseCode, Secret, TlsOptions};
use serde::Deserialize;

use crate::cli::{AuthMode, OauthCommand};
use crate::config::{Account, Settings};
use crate::error::{CliError, EXIT_OK};

use flow::{Granted, Provider, Reply};
use http::Url;
pub(crate) use store::StoreKind;
use store::{Store, Tokens};

/// An access token is refreshed when it expires within this margin: the session's login
/// must not race its expiry.
const EXPIRY_MARGIN: u64 = 120;

/// `oauth-provider`: the presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderName {
    /// Microsoft identity platform (Outlook.com, Microsoft 365).
    Microsoft,
    /// Google (Gmail).
    Google,
}

impl ProviderName {
    /// The device authorization endpoint, the token endpoint and the default scopes.
    fn preset(self, tenant: &str) -> (String, String, &'static str) {
        match self {
            // learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code; the POP scope
            // from "Authenticate an IMAP, POP or SMTP connection using OAuth".
            Self::Microsoft => (
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode"),
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
                "https://outlook.office.com/POP.AccessAsUser.All offline_access",
            ),
            // developers.google.com/identity/protocols/oauth2/limited-input-device; Gmail's
            // POP needs the full-mail scope.
            Self::Google => (
                "https://oauth2.googleapis.com/device/code".to_owned(),
                "https://oauth2.googleapis.com/token".to_owned(),
                "https://mail.google.com/",
            ),
        }
    }
}

/// An account's OAuth settings, resolved.
#[derive(Debug, Clone)]
pub(crate) struct OAuth {
    account: String,
    provider: Provider,
    /// The token file (with the keyring as the store: where the lock file is, and where
    /// tokens to move into the keyring are looked for).
    store: PathBuf,
    store_kind: StoreKind,
}

/// The account's OAuth settings, if it has any (`oauth-provider` or `oauth-token-endpoint`).
pub(crate) fn resolve(
    name: Option<&str>,
    keys: &Account,
    timeout: Duration,
) -> Result<Option<OAuth>, CliError> {
    let Some(name) = name else {
        return Ok(None);
    };
    if keys.oauth_provider.is_none() && keys.oauth_token_endpoint.is_none() {
        let any = keys.oauth_client_id.is_some()
            || keys.oauth_client_secret.is_some()
            || keys.oauth_tenant.is_some()
            || keys.oauth_scopes.is_some()
            || keys.oauth_device_authorization_endpoint.is_some()
            || keys.oauth_token_file.is_some()
            || keys.oauth_store.is_some()
            || keys.oauth_ca_file.is_some()
            || keys.oauth_allow_http.is_some();
        if any {
            return Err(CliError::usage(format!(
                "[accounts.{name}]: the oauth-* keys need oauth-provider or oauth-token-endpoint"
            )));
        }
        return Ok(None);
    }
    let usage = |m: String| CliError::usage(format!("[accounts.{name}]: {m}"));
    let tenant = keys.oauth_tenant.as_deref().unwrap_or("common");
    if keys.oauth_tenant.is_some() && keys.oauth_provider != Some(ProviderName::Microsoft) {
        return Err(usage(
            "oauth-tenant is for oauth-provider = \"microsoft\"".to_owned(),
        ));
    }
    if tenant.is_empty()
        || !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(usage(format!(
            "oauth-tenant {tenant:?} is not a tenant name or id"
        )));
    }
    let preset = keys.oauth_provider.map(|p| p.preset(tenant));
    let allow_http = keys.oauth_allow_http.unwrap_or(false);
    let url = |key: &str, text: &str| {
        Url::parse(text, allow_http).map_err(|e| usage(format!("{key}: {e}")))
    };
    let (preset_device, preset_token, preset_scopes) = match &preset {
        Some((device, token, scopes)) => (Some(device.as_str()), Some(token.as_str()), *scopes),
        None => (None, None, ""),
    };
    let token_endpoint = keys
        .oauth_token_endpoint
        .as_deref()
        .or(preset_token)
        .map(|text| url("oauth-token-endpoint", text))
        .transpose()?
        .ok_or_else(|| {
            usage("oauth-token-endpoint is required without oauth-provider".to_owned())
        })?;
    let device_endpoint = keys
        .oauth_device_authorization_endpoint
        .as_deref()
        .or(preset_device)
        .map(|text| url("oauth-device-authorization-endpoint", text))
        .transpose()?;
    let client_id = keys
        .oauth_client_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            usage(
                "oauth-client-id is required (the application registered with the provider)"
                    .to_owned(),
            )
        })?;
    let scopes = keys
        .oauth_scopes
        .clone()
        .unwrap_or_else(|| preset_scopes.to_owned());
    let mut tls = TlsOptions::default();
    if let Some(path) = &keys.oauth_ca_file {
        tls = tls
            .add_ca_file(crate::config::expand_home(path.clone()))
            .map_err(|e| usage(format!("oauth-ca-file: {e}")))?;
    }
    let tls = tls.build().map_err(|e| {
        CliError::failure(format!("the TLS configuration for the token endpoint: {e}"))
    })?;
    let store = match &keys.oauth_token_file {
        Some(path) => crate::config::expand_home(path.clone()),
        None => store::default_path(name).ok_or_else(|| {
            usage("no place for the token store: HOME is not set; set oauth-token-file".to_owned())
        })?,
    };
    // An account that names its token file has chosen the file, unless it asks for the keyring.
    let store_kind = match keys.oauth_store.unwrap_or_default() {
        StoreKind::Auto if keys.oauth_token_file.is_some() => StoreKind::File,
        kind => kind,
    };
    Ok(Some(OAuth {
        account: name.to_owned(),
        provider: Provider {
            device_endpoint,
            token_endpoint,
            client_id,
            client_secret: keys
                .oauth_client_secret
                .as_ref()
                .map(|s| Secret::new(s.as_bytes().to_vec())),
            scopes,
            tls,
            timeout,
        },
        store,
        store_kind,
    }))
}

impl OAuth {
    fn open_store(&self) -> Result<Store, CliError> {
        Store::open(&self.store, self.store_kind, &self.account)
    }
}

/// The default `--auth` of an account with OAuth, and the check that the chosen one takes a
/// token.
pub(crate) fn auth_mode(
    oauth: Option<&OAuth>,
    chosen: Option<AuthMode>,
) -> Result<AuthMode, CliError> {
    match (oauth, chosen) {
        (None, chosen) => Ok(chosen.unwrap_or(AuthMode::Auto)),
        (Some(_), None) => Ok(AuthMode::Xoauth2),
        (Some(_), Some(mode @ (AuthMode::Xoauth2 | AuthMode::Oauthbearer))) => Ok(mode),
        (Some(oauth), Some(_)) => Err(CliError::usage(format!(
            "[accounts.{}] uses OAuth: auth must be xoauth2 or oauthbearer",
            oauth.account
        ))),
    }
}

/// The store's OAuth settings when the session's token comes from the store (not from a
/// password source on the command line).
/// The account's OAuth settings when the session's token comes from the store (no password
/// source given on the command line).
pub(crate) fn store_source(settings: &Settings) -> Option<&OAuth> {
    settings
        .oauth
        .as_ref()
        .filter(|_| settings.password.is_none())
}

/// The secret for this session's login: the store's access token, refreshed first if it has
/// expired or is about to, or else the password (or token) from its source.
pub(crate) fn credential(settings: &Settings) -> Result<Secret, CliError> {
    match store_source(settings) {
        Some(oauth) => fresh_token(oauth, false),
        None => settings.password(),
    }
}

/// Whether the server's refusal of an AUTH XOAUTH2 or OAUTHBEARER says the access token was
/// refused, so one refresh and one retry on the same session are worth it: `[AUTH]` says the
/// credentials were refused (RFC 3206); a server that does not announce AUTH-RESP-CODE cannot
/// say it, so there a bare `-ERR` counts too.
pub(crate) fn refused_token(error: &Error, says_codes: bool) -> bool {
    matches!(error, Error::Server(e)
        if e.code == Some(ResponseCode::Auth) || (e.code.is_none() && !says_codes))
}

/// The access token: the stored one while it is valid for [`EXPIRY_MARGIN`] more, else (or
/// with `force`) a new one from the refresh token grant, stored before it is returned. Within
/// the margin, a token that has not expired yet is still used when there is no refresh token
/// or the token endpoint cannot be reached (with a warning).
pub(crate) fn fresh_token(oauth: &OAuth, force: bool) -> Result<Secret, CliError> {
    let store = oauth.open_store()?;
    let tokens = store.load()?.unwrap_or_default();
    let now = store::now();
    // The stored access token while it has not expired (not after the server refused it).
    let unexpired = match (&tokens.access, tokens.expires_at) {
        (Some(access), Some(expires_at)) if !force && expires_at > now => {
            if expires_at > now.saturating_add(EXPIRY_MARGIN) {
                tracing::info!(target: "pop3_cli", "the access token is valid for {} s more", expires_at - now);
                return Ok(access.clone());
            }
            Some(access.clone())
        }
        _ => None,
    };
    let login_again = format!("run `pop3 oauth login --account {}`", oauth.account);
    let Some(refresh) = &tokens.refresh else {
        if let Some(access) = unexpired {
            return Ok(access);
        }
        return Err(CliError::usage(format!(
            "no OAuth refresh token stored for account {} in {}: {login_again}",
            oauth.account,
            store.location()
        )));
    };
    tracing::info!(target: "pop3_cli", "refreshing the access token");
    let reply = match (oauth.provider.refresh(refresh), unexpired) {
        (Ok(reply), _) => reply,
        // The endpoint is unreachable or slow, but the token has not expired yet: use it.
        (Err(error @ CliError::Failure(_)), Some(access)) => {
            eprintln!(
                "pop3: warning: {}; using the stored access token, which expires in {} s",
                crate::escape::escape(&error.to_string()),
                tokens.expires_at.unwrap_or(now).saturating_sub(now)
            );
            return Ok(access);
        }
        (Err(error), _) => return Err(error),
    };
    match reply {
        Reply::Granted(granted) => {
            let access = granted.access.clone();
            store.save(&merge(tokens, granted, now))?;
            Ok(access)
        }
        Reply::Refused(error) if error.code == "invalid_grant" => Err(CliError::Server(format!(
            "the provider refused the stored refresh token ({error}): it was revoked or has expired; {login_again} again"
        ))),
        Reply::Refused(error) => Err(CliError::Server(format!(
            "the token endpoint refused to refresh the access token: {error}"
        ))),
    }
}

/// The store's new content: a rotated refresh token replaces the old one; without one in
/// the reply, the old one stays.
fn merge(old: Tokens, granted: Granted, now: u64) -> Tokens {
    Tokens {
        refresh: granted.refresh.or(old.refresh),
        access: Some(granted.access),
        expires_at: granted.expires_in.map(|s| now.saturating_add(s)),
    }
}

/// `pop3 oauth ...`.
pub(crate) fn command(settings: &Settings, command: &OauthCommand) -> Result<u8, CliError> {
    let oauth = settings.oauth.as_ref().ok_or_else(|| {
        CliError::usage(
            "pop3 oauth needs --account NAME, an account with oauth-provider (or oauth-token-endpoint) and oauth-client-id",
        )
    })?;
    match command {
        OauthCommand::Login => {
            // The store is checked before the sign-in (an unavailable keyring is said before
            // the user signs in for nothing), but not locked during it: other sessions go on.
            drop(oauth.open_store()?);
            let granted = oauth.provider.device_login(&mut std::io::stderr())?;
            let store = oauth.open_store()?;
            let old = store.load().ok().flatten().unwrap_or_default();
            let without_refresh = granted.refresh.is_none();
            // A new sign-in replaces whatever was stored, the old refresh token included.
            let tokens = merge(
                Tokens {
                    refresh: None,
                    ..old
                },
                granted,
                store::now(),
            );
            store.save(&tokens)?;
            store.remove_stale_file()?;
            if without_refresh {
                eprintln!(
                    "pop3: warning: the provider sent no refresh token (is offline_access among the scopes?): you will have to sign in again when the access token expires"
                );
            }
            crate::outln!(
                "signed in; tokens for account {} stored in {}",
                oauth.account,
                store.location()
            )?;
        }
        OauthCommand::Logout => {
            let store = oauth.open_store()?;
            if store.remove()? {
                crate::outln!(
                    "removed the tokens of account {} ({}); the grant itself stays valid at the provider until you revoke it there",
                    oauth.account,
                    store.location()
                )?;
            } else {
                crate::outln!("no tokens stored for account {}", oauth.account)?;
            }
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn account(provider: ProviderName) -> Account {
        let mut account = Account::default();
        account.oauth_provider = Some(provider);
        account.oauth_client_id = Some("client".into());
        account.oauth_token_file = Some("/nonexistent/t.json".into());
        account
    }

    #[test]
    fn presets() {
        let timeout = Duration::from_secs(5);
        let ms = resolve(Some("w"), &account(ProviderName::Microsoft), timeout)
            .unwrap()
            .unwrap();
        let device = ms.provider.device_endpoint.unwrap();
        assert_eq!(
            (device.host.as_str(), device.target.as_str()),
            (
                "login.microsoftonline.com",
                "/common/oauth2/v2.0/devicecode"
            )
        );
        assert_eq!(
            ms.provider.token_endpoint.target,
            "/common/oauth2/v2.0/token"
        );
        assert_eq!(
            ms.provider.scopes,
            "https://outlook.office.com/POP.AccessAsUser.All offline_access"
        );
        let mut tenant = account(ProviderName::Microsoft);
        tenant.oauth_tenant = Some("contoso.onmicrosoft.com".into());
        tenant.oauth_scopes = Some("x".into());
        let ms = resolve(Some("w"), &tenant, timeout).unwrap().unwrap();
        assert_eq!(
            ms.provider.token_endpoint.target,
            "/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(ms.provider.scopes, "x");
        let google = resolve(Some("g"), &account(ProviderName::Google), timeout)
            .unwrap()
            .unwrap();
        assert_eq!(
            google.provider.device_endpoint.unwrap(),
            Url::parse("https://oauth2.googleapis.com/device/code", false).unwrap()
        );
        assert_eq!(
            google.provider.token_endpoint,
            Url::parse("https://oauth2.googleapis.com/token", false).unwrap()
        );
        assert_eq!(google.provider.scopes, "https://mail.google.com/");
        // Without an account name (no --account), no OAuth.
        assert!(
            resolve(None, &account(ProviderName::Google), timeout)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn store_kind() {
        let timeout = Duration::from_secs(5);
        let kind = |store: Option<StoreKind>, file: bool| {
            let mut keys = account(ProviderName::Google);
            keys.oauth_store = store;
            if !file {
                keys.oauth_token_file = None;
            }
            resolve(Some("g"), &keys, timeout)
                .unwrap()
                .unwrap()
                .store_kind
        };
        // auto, unless the account names its token file; an explicit choice stays.
        assert_eq!(kind(None, false), StoreKind::Auto);
        assert_eq!(kind(Some(StoreKind::Auto), false), StoreKind::Auto);
        assert_eq!(kind(None, true), StoreKind::File);
        assert_eq!(kind(Some(StoreKind::Auto), true), StoreKind::File);
        assert_eq!(kind(Some(StoreKind::Keyring), true), StoreKind::Keyring);
        assert_eq!(kind(Some(StoreKind::File), false), StoreKind::File);
        // Without an endpoint, oauth-store is one of the oauth-* keys that need one.
        let mut keys = Account::default();
        keys.oauth_store = Some(StoreKind::Keyring);
        assert_eq!(
            resolve(Some("g"), &keys, timeout).unwrap_err().exit_code(),
            2
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut keys = account(ProviderName::Google);
        keys.oauth_client_secret = Some("client-secret-xyz".into());
        let oauth = resolve(Some("g"), &keys, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        let debug = format!("{oauth:?}");
        assert!(!debug.contains("client-secret-xyz"), "{debug}");
        let granted = Granted {
            access: "acc-xyz".into(),
            refresh: Some("ref-xyz".into()),
            expires_in: Some(1),
        };
        let first = format!("{granted:?}");
        let debug = format!("{first} {:?}", merge(Tokens::default(), granted, 0));
        assert!(!debug.contains("-xyz"), "{debug}");
    }
}
