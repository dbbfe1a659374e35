//! The network-path settings: `--proxy`, `--connect-timeout`, `--bind`, `--crl-file` and
//! `--trust`, merged over the account's `proxy`, `connect-timeout`, `bind`, `crl-file` and
//! `trust` keys (and, for the proxy, the `POP3_PROXY` environment variable last).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use pop3_blocking::{Options, Proxy, TlsOptions, TrustStore};

use crate::cli::Cli;
use crate::config::{Account, expand_home};
use crate::error::CliError;

/// The environment variable read for the proxy URL when neither `--proxy` nor the account's
/// `proxy` is set: a way to keep a proxy password out of the process list and the config.
pub(crate) const PROXY_ENV: &str = "POP3_PROXY";

/// The CLI's default trust store: the Mozilla roots built in (see the README for why).
pub(crate) const DEFAULT_TRUST: TrustStore = TrustStore::Mozilla;

#[derive(Debug, Default)]
pub(crate) struct NetSettings {
    pub(crate) proxy: Option<Proxy>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) bind: Option<IpAddr>,
    pub(crate) crl_file: Option<PathBuf>,
    pub(crate) trust: TrustStore,
}

impl NetSettings {
    pub(crate) fn resolve(cli: &Cli, account: &Account) -> Result<Self, CliError> {
        let proxy = match (&cli.proxy, &account.proxy) {
            (Some(proxy), _) => Some(proxy.clone()),
            (None, Some(url)) => Some(
                url.parse::<Proxy>()
                    .map_err(|e| CliError::usage(format!("the account's proxy: {e}")))?,
            ),
            (None, None) => match std::env::var(PROXY_ENV) {
                Ok(url) if !url.is_empty() => Some(
                    url.parse::<Proxy>()
                        .map_err(|e| CliError::usage(format!("{PROXY_ENV}: {e}")))?,
                ),
                _ => None,
            },
        };
        let connect_timeout = match cli.connect_timeout.or(account.connect_timeout) {
            Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 => {
                Some(Duration::from_secs_f64(seconds))
            }
            Some(_) => {
                return Err(CliError::usage(
                    "the connect-timeout must be more than 0 and at most 86400 seconds",
                ));
            }
            None => None,
        };
        let trust = match (&cli.trust, &account.trust) {
            (Some(store), _) => *store,
            (None, Some(text)) => text
                .parse()
                .map_err(|e| CliError::usage(format!("the account's trust: {e}")))?,
            (None, None) => DEFAULT_TRUST,
        };
        Ok(Self {
            proxy,
            connect_timeout,
            bind: cli.bind.or(account.bind),
            crl_file: cli
                .crl_file
                .clone()
                .or(account.crl_file.clone())
                .map(expand_home),
            trust,
        })
    }

    /// The TLS options with the trust store and the CRLs.
    pub(crate) fn tls(&self, tls: TlsOptions) -> Result<TlsOptions, CliError> {
        let mut tls = tls
            .trust_store(self.trust)
            .map_err(|e| CliError::usage(format!("--trust {}: {e}", self.trust)))?;
        if let Some(path) = &self.crl_file {
            tls = tls
                .add_crl_file(path)
                .map_err(|e| CliError::usage(format!("--crl-file: {e}")))?;
        }
        Ok(tls)
    }

    /// The options with the proxy, the connect timeout and the source address.
    pub(crate) fn options(&self, mut options: Options) -> Options {
        options.proxy = self.proxy.clone();
        options.connect_timeout = self.connect_timeout;
        options.bind = self.bind;
        options
    }
}
