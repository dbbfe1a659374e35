//! Settings: the command line merged over a named account of the config file, and the
//! password sources.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pop3_blocking::{Fingerprint, Options, Secret, Security, TlsOptions};
use serde::Deserialize;

use crate::cli::{AuthMode, Cli, Pipelining, RuleArgs, TlsMode};
use crate::error::CliError;

/// The config file: `[accounts.NAME]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    accounts: BTreeMap<String, Account>,
}

/// One `[accounts.NAME]` table. Every key is optional; command-line options win.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Account {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    user: Option<String>,
    password_cmd: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    auth: Option<AuthMode>,
    ca_file: Option<PathBuf>,
    tls_fingerprint: Option<String>,
    timeout: Option<f64>,
    speed_limit: Option<u32>,
    speed_time: Option<f64>,
    pipelining: Option<Pipelining>,
    allow_plaintext_auth: Option<bool>,
    // -- TLS client certificate (issue 12, SASL) --
    /// `--client-cert`.
    client_cert: Option<PathBuf>,
    /// `--client-key`.
    client_key: Option<PathBuf>,
    // --- Delivery targets (at most one of maildir, mbox, mda, lmtp).
    /// The default `fetch --maildir`.
    maildir: Option<PathBuf>,
    /// The default `fetch --mbox`.
    mbox: Option<PathBuf>,
    /// The default `fetch --mda`.
    mda: Option<String>,
    /// The default `fetch --lmtp`.
    lmtp: Option<String>,
    /// The default `fetch --lmtp-rcpt`.
    lmtp_rcpt: Option<String>,
    /// The default `fetch --deliver-timeout`.
    deliver_timeout: Option<f64>,
    // --- end of the delivery targets.
    /// The default `fetch --state`.
    state: Option<PathBuf>,
    // ---- fetch's retention and size rules (see `RuleArgs`) ----
    /// `keep = "7d"`.
    keep: Option<String>,
    /// `skip-larger-than = "10M"` (or a number of bytes).
    skip_larger_than: Option<SizeKey>,
    /// `delete-larger-than = "50M"`.
    delete_larger_than: Option<SizeKey>,
    /// `max-messages = 100`.
    max_messages: Option<u64>,
    /// `max-bytes = "100M"`.
    max_bytes: Option<SizeKey>,
    /// `only-new = true`.
    only_new: Option<bool>,
    /// `filter = "CMD"`.
    filter: Option<String>,
    /// `filter-timeout = 30`.
    filter_timeout: Option<f64>,

    // ---- `poll` (see `crate::poll`) ----
    /// How often `poll` polls the account: a duration (`"90s"`, `"5m"`, `"1h30m"`) or
    /// `"auto"` [default: 5m].
    pub(crate) interval: Option<String>,
    /// The shortest interval of `interval = "auto"` [default: 2m].
    pub(crate) interval_min: Option<String>,
    /// The longest interval of `interval = "auto"` [default: 1h].
    pub(crate) interval_max: Option<String>,
    /// `poll` deletes on the server what it stored (as `fetch --delete`) [default: false].
    pub(crate) delete: Option<bool>,

    // OAuth 2.0 (`pop3 oauth login`, the token store): see crate::oauth.
    pub(crate) oauth_provider: Option<crate::oauth::ProviderName>,
    pub(crate) oauth_client_id: Option<String>,
    pub(crate) oauth_client_secret: Option<String>,
    pub(crate) oauth_tenant: Option<String>,
    pub(crate) oauth_scopes: Option<String>,
    pub(crate) oauth_device_authorization_endpoint: Option<String>,
    pub(crate) oauth_token_endpoint: Option<String>,
    pub(crate) oauth_token_file: Option<PathBuf>,
    pub(crate) oauth_store: Option<crate::oauth::StoreKind>,
    pub(crate) oauth_ca_file: Option<PathBuf>,
    pub(crate) oauth_allow_http: Option<bool>,
    // The network path.
    pub(crate) proxy: Option<String>,
    pub(crate) connect_timeout: Option<f64>,
    pub(crate) bind: Option<std::net::IpAddr>,
    pub(crate) crl_file: Option<PathBuf>,
    pub(crate) trust: Option<String>,
}

/// A size in the config file: a number of bytes, or text with a `k`, `M` or `G` suffix.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeKey {
    Bytes(u64),
    Text(String),
}

impl SizeKey {
    fn bytes(&self, key: &str) -> Result<u64, CliError> {
        match self {
            Self::Bytes(n) => Ok(*n),
            Self::Text(text) => crate::rules::parse_size(text)
                .map_err(|e| CliError::usage(format!("the account's {key}: {e}"))),
        }
    }
}

/// Where the password (or OAuth token) comes from.
#[derive(Debug, Clone)]
pub(crate) enum PasswordSource {
    Env(String),
    File(PathBuf),
    Cmd(String),
}

/// Everything a command needs to connect and log in.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) tls: TlsMode,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) tls_fingerprint: Option<Fingerprint>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<PasswordSource>,
    pub(crate) auth: AuthMode,
    pub(crate) allow_plaintext_auth: bool,
    /// The TLS client certificate and key files (both or neither).
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) timeout: Duration,
    /// The low-speed limit: bytes per second, and the time they are averaged over.
    pub(crate) speed: (u32, Duration),
    pub(crate) pipelining: Pipelining,
    pub(crate) json: bool,
    pub(crate) maildir: Option<PathBuf>,
    /// The account's delivery target keys besides `maildir`.
    pub(crate) targets: crate::deliver::AccountTargets,
    pub(crate) state: Option<PathBuf>,
    /// OAuth 2.0: the account's provider and token store.
    pub(crate) oauth: Option<crate::oauth::OAuth>,
    /// Proxy, connect timeout, source address, CRLs, trust store.
    pub(crate) net: crate::net::NetSettings,
    /// The account's retention keys, merged with the flags by [`Settings::retention`].
    account: Account,
}

impl Settings {
    /// Merges the command line over the account named by `--account`, if any.
    pub(crate) fn resolve(cli: &Cli) -> Result<Self, CliError> {
        let account = match cli.account()? {
            Some(name) => load_account(cli.config.as_deref(), name)?,
            None => {
                if cli.config.is_some() {
                    return Err(CliError::usage("--config needs --account NAME"));
                }
                Account::default()
            }
        };
        Self::merge(cli, account)
    }

    /// Merges the command line over `account`.
    pub(crate) fn merge(cli: &Cli, account: Account) -> Result<Self, CliError> {
        let password = if let Some(var) = &cli.password_env {
            Some(PasswordSource::Env(var.clone()))
        } else if let Some(path) = &cli.password_file {
            Some(PasswordSource::File(path.clone()))
        } else if let Some(cmd) = &cli.password_cmd {
            Some(PasswordSource::Cmd(cmd.clone()))
        } else {
            let sources = [
                account.password_env.clone().map(PasswordSource::Env),
                account.password_file.clone().map(PasswordSource::File),
                account.password_cmd.clone().map(PasswordSource::Cmd),
            ];
            let mut given = sources.into_iter().flatten();
            let first = given.next();
            if given.next().is_some() {
                return Err(CliError::usage(
                    "the account sets more than one of password-env, password-file, password-cmd",
                ));
            }
            first
        };
        let timeout = cli.timeout.or(account.timeout).unwrap_or(60.0);
        let speed_time = cli.speed_time.or(account.speed_time).unwrap_or(60.0);
        for (name, seconds) in [("timeout", timeout), ("speed-time", speed_time)] {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
                return Err(CliError::usage(format!(
                    "the {name} must be more than 0 and at most 86400 seconds"
                )));
            }
        }
        let oauth =
            crate::oauth::resolve(cli.account()?, &account, Duration::from_secs_f64(timeout))?;
        if oauth.is_some()
            && (account.password_env.is_some()
                || account.password_file.is_some()
                || account.password_cmd.is_some())
        {
            return Err(CliError::usage(
                "the account sets both OAuth (oauth-provider or oauth-token-endpoint) and a password source",
            ));
        }
        let auth = crate::oauth::auth_mode(oauth.as_ref(), cli.auth.or(account.auth))?;
        let tls_fingerprint = match (&cli.tls_fingerprint, &account.tls_fingerprint) {
            (Some(pin), _) => Some(*pin),
            (None, Some(text)) => Some(
                text.parse::<Fingerprint>()
                    .map_err(|e| CliError::usage(format!("the account's tls-fingerprint: {e}")))?,
            ),
            (None, None) => None,
        };
        let kept = account.clone();
        let net = crate::net::NetSettings::resolve(cli, &account)?;
        Ok(Self {
            net,
            tls_fingerprint,
            host: cli.host.clone().or(account.host),
            port: cli.port.or(account.port),
            tls: cli.tls.or(account.tls).unwrap_or(TlsMode::Implicit),
            ca_file: cli.ca_file.clone().or(account.ca_file).map(expand_home),
            user: cli.user.clone().or(account.user),
            password: password.map(|p| match p {
                PasswordSource::File(path) => PasswordSource::File(expand_home(path)),
                other => other,
            }),
            auth,
            allow_plaintext_auth: cli.allow_plaintext_auth
                || account.allow_plaintext_auth.unwrap_or(false),
            client_cert: match (
                cli.client_cert.clone().or(account.client_cert),
                cli.client_key.clone().or(account.client_key),
            ) {
                (Some(cert), Some(key)) => Some((expand_home(cert), expand_home(key))),
                (None, None) => None,
                _ => {
                    return Err(CliError::usage(
                        "client-cert and client-key go together: give both or neither",
                    ));
                }
            },
            timeout: Duration::from_secs_f64(timeout),
            speed: (
                cli.speed_limit.or(account.speed_limit).unwrap_or(10),
                Duration::from_secs_f64(speed_time),
            ),
            pipelining: cli
                .pipelining
                .or(account.pipelining)
                .unwrap_or(Pipelining::Auto),
            json: cli.json,
            maildir: account.maildir.clone().map(expand_home),
            state: account.state.clone().map(expand_home),
            targets: crate::deliver::AccountTargets {
                mbox: account.mbox.map(expand_home),
                mda: account.mda,
                lmtp: account.lmtp,
                lmtp_rcpt: account.lmtp_rcpt,
                deliver_timeout: account.deliver_timeout,
            },
            account: kept,
            oauth,
        })
    }

    /// `fetch`'s retention and size rules and header filter: the flags over the account's
    /// keys.
    pub(crate) fn retention(&self, args: &RuleArgs) -> Result<crate::fetch::Retention, CliError> {
        let a = &self.account;
        let keep = match (args.keep, &a.keep) {
            (Some(seconds), _) => Some(seconds),
            (None, Some(text)) => Some(
                crate::rules::parse_duration(text)
                    .map_err(|e| CliError::usage(format!("the account's keep: {e}")))?,
            ),
            (None, None) => None,
        };
        let size = |flag: Option<u64>, key: &Option<SizeKey>, name: &str| match (flag, key) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(key)) => key.bytes(name).map(Some),
            (None, None) => Ok(None),
        };
        let max_messages = args.max_messages.or(a.max_messages);
        if max_messages == Some(0) {
            return Err(CliError::usage(
                "the account's max-messages must be at least 1",
            ));
        }
        let filter_timeout = args.filter_timeout.or(a.filter_timeout);
        if let Some(seconds) = filter_timeout {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
                return Err(CliError::usage(
                    "the filter-timeout must be more than 0 and at most 86400 seconds",
                ));
            }
        }
        let filter = args.filter.clone().or_else(|| a.filter.clone());
        Ok(crate::fetch::Retention {
            rules: crate::rules::Rules {
                delete: false,
                keep,
                skip_larger_than: size(
                    args.skip_larger_than,
                    &a.skip_larger_than,
                    "skip-larger-than",
                )?,
                delete_larger_than: size(
                    args.delete_larger_than,
                    &a.delete_larger_than,
                    "delete-larger-than",
                )?,
                max_messages: max_messages.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                max_bytes: size(args.max_bytes, &a.max_bytes, "max-bytes")?,
                only_new: args.only_new || a.only_new.unwrap_or(false),
            },
            filter: filter.map(|command| crate::filter::Filter {
                command,
                timeout: filter_timeout.map_or(
                    crate::filter::DEFAULT_FILTER_TIMEOUT,
                    Duration::from_secs_f64,
                ),
            }),
            host: self.host.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
        })
    }

    /// The host, or a usage error.
    pub(crate) fn host(&self) -> Result<&str, CliError> {
        match self.host.as_deref() {
            Some(host) if !host.is_empty() => Ok(host),
            _ => Err(CliError::usage(
                "--host is required (or --account with a host)",
            )),
        }
    }

    /// The port: explicit, or 995 for implicit TLS and 110 otherwise.
    pub(crate) fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 995,
            TlsMode::Starttls | TlsMode::None => 110,
        })
    }

    /// The user, or a usage error.
    pub(crate) fn user(&self) -> Result<&str, CliError> {
        match self.user.as_deref() {
            Some(user) if !user.is_empty() => Ok(user),
            _ => Err(CliError::usage(
                "--user is required to log in (or --account with a user)",
            )),
        }
    }

    /// The adapter's security mode.
    pub(crate) fn security(&self) -> Security {
        match self.tls {
            TlsMode::Implicit => Security::Implicit,
            TlsMode::Starttls => Security::StartTls,
            TlsMode::None => Security::None,
        }
    }

    /// The adapter's options: timeout, trust anchors, plaintext policy, pipelining window.
    pub(crate) fn options(&self) -> Result<Options, CliError> {
        let mut tls = TlsOptions::default();
        if let Some(path) = &self.ca_file {
            tls = tls
                .add_ca_file(path)
                .map_err(|e| CliError::usage(format!("--ca-file: {e}")))?;
        }
        if let Some(pin) = self.tls_fingerprint {
            tls = tls.pin_fingerprint(pin);
        }
        if let Some((cert, key)) = &self.client_cert {
            tls = tls
                .client_cert_files(cert, key)
                .map_err(|e| CliError::usage(format!("--client-cert: {e}")))?;
        }
        let tls = self.net.tls(tls)?;
        let options = Options::default()
            .timeout(self.timeout)
            .speed_limit(self.speed.0, self.speed.1)
            .tls(tls)
            .allow_plaintext(self.allow_plaintext_auth);
        let mut options = self.net.options(options);
        options.config.pipelining = match self.pipelining {
            Pipelining::Auto => pop3_blocking::pop3_proto::Pipelining::Auto,
            Pipelining::On => pop3_blocking::pop3_proto::Pipelining::Always,
            Pipelining::Off => pop3_blocking::pop3_proto::Pipelining::Never,
        };
        Ok(options)
    }

    /// Reads the password from its source; on a terminal without a source, asks for it.
    pub(crate) fn password(&self) -> Result<Secret, CliError> {
        self.password_query().read()
    }

    /// What reading the password needs, detached from the settings (to read it on another
    /// thread).
    pub(crate) fn password_query(&self) -> PasswordQuery {
        PasswordQuery {
            source: self.password.clone(),
            user: self.user.clone(),
            host: self.host.clone(),
        }
    }
}

/// A password source, and the user and host a prompt names.
#[derive(Debug)]
pub(crate) struct PasswordQuery {
    source: Option<PasswordSource>,
    user: Option<String>,
    host: Option<String>,
}

impl PasswordQuery {
    /// Reads the password from its source; on a terminal without a source, asks for it.
    pub(crate) fn read(self) -> Result<Secret, CliError> {
        let text = match &self.source {
            Some(PasswordSource::Env(var)) => std::env::var(var).map_err(|_| {
                CliError::usage(format!(
                    "--password-env {var}: the variable is not set (or not UTF-8)"
                ))
            })?,
            Some(PasswordSource::File(path)) => first_line_of_file(path)?,
            Some(PasswordSource::Cmd(cmd)) => first_line_of_command(cmd)?,
            None => {
                if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                    let prompt = format!(
                        "Password for {}@{}: ",
                        self.user.as_deref().unwrap_or_default(),
                        self.host.as_deref().unwrap_or_default()
                    );
                    rpassword::prompt_password(prompt)
                        .map_err(|e| CliError::local("reading the password", &e))?
                } else {
                    return Err(CliError::usage(
                        "no password source: use --password-env VAR, --password-file PATH or --password-cmd CMD",
                    ));
                }
            }
        };
        Ok(Secret::new(text.into_bytes()))
    }
}

/// The default config file: `$XDG_CONFIG_HOME/pop3/config.toml`, else
/// `~/.config/pop3/config.toml`.
fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("pop3").join("config.toml"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| {
            PathBuf::from(home)
                .join(".config")
                .join("pop3")
                .join("config.toml")
        })
}

/// The config file's path: `path`, or the default one.
pub(crate) fn config_path(path: Option<&Path>) -> Result<PathBuf, CliError> {
    match path {
        Some(path) => Ok(path.to_owned()),
        None => default_config_path()
            .ok_or_else(|| CliError::usage("no config file: HOME is not set; use --config PATH")),
    }
}

/// Reads and parses the config file at `path`.
fn read_config(path: &Path) -> Result<(ConfigFile, String), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("config file {}: {e}", path.display())))?;
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| CliError::usage(format!("config file {}: {e}", path.display())))?;
    Ok((file, text))
}

/// Every account of the config file at `path`, each with its table as written (to tell
/// which accounts a reload changed, whatever keys they use).
pub(crate) fn load_accounts(
    path: &Path,
) -> Result<BTreeMap<String, (Account, toml::Value)>, CliError> {
    let (file, text) = read_config(path)?;
    let mut tables: BTreeMap<String, toml::Value> = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|mut t| t.remove("accounts"))
        .and_then(|a| a.try_into().ok())
        .unwrap_or_default();
    Ok(file
        .accounts
        .into_iter()
        .map(|(name, account)| {
            let table = tables.remove(&name).unwrap_or(toml::Value::Boolean(false));
            (name, (account, table))
        })
        .collect())
}

fn load_account(path: Option<&Path>, name: &str) -> Result<Account, CliError> {
    let path = config_path(path)?;
    let (file, _) = read_config(&path)?;
    file.accounts.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = file.accounts.keys().map(String::as_str).collect();
        CliError::usage(format!(
            "config file {}: no [accounts.{name}] (accounts: {})",
            path.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// `~/x` becomes `$HOME/x`.
pub(crate) fn expand_home(path: PathBuf) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~") {
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    path
}

fn strip_line_end(mut line: String) -> String {
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    line
}

fn first_line_of_file(path: &Path) -> Result<String, CliError> {
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::usage(format!("--password-file {}: {e}", path.display())))?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("--password-file {}: {e}", path.display())))?;
    Ok(strip_line_end(line))
}

fn first_line_of_command(cmd: &str) -> Result<String, CliError> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| CliError::usage(format!("--password-cmd: cannot run sh: {e}")))?;
    if !output.status.success() {
        return Err(CliError::usage(format!(
            "--password-cmd failed ({})",
            output.status
        )));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| CliError::usage("--password-cmd printed something that is not UTF-8"))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    Ok(strip_line_end(line))
}
