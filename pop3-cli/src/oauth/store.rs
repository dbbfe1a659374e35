//! The token store: the OS keyring (`oauth-store` `auto` or `keyring`, with the `keyring`
//! cargo feature), or one JSON file per account, mode 0600 in a 0700 directory, replaced
//! atomically (a new file written, synced, renamed over the old one, the directory synced).
//! Either way an exclusive lock file (a file, beside where the token file is or would be)
//! makes two `pop3` processes take turns, so that they do not both spend a rotating refresh
//! token.
//!
//! The keyring item holds the same JSON record as the file (refresh token, access token,
//! expiry), under the service name `pop3-oauth` and the account's name as the user name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pop3_blocking::Secret;
use serde::Deserialize;

use crate::error::CliError;

/// `oauth-store`: where the tokens are kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// The keyring when a keyring service answers, else the file. An account that names its
    /// `oauth-token-file` uses the file.
    #[default]
    Auto,
    /// The OS keyring; an error when none answers.
    Keyring,
    /// The 0600 file.
    File,
}

/// The most a token file may hold (it is a few kilobytes; the HTTP limit bounds what comes in).
const MAX_FILE: u64 = 256 * 1024;

/// What the store keeps for one account. `Debug` shows no token.
#[derive(Default, Clone)]
pub(crate) struct Tokens {
    pub(crate) refresh: Option<Secret>,
    pub(crate) access: Option<Secret>,
    /// When the access token expires, in seconds since the Unix epoch (`None`: unknown).
    pub(crate) expires_at: Option<u64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .field("access", &self.access.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The default store of `account`: `$XDG_DATA_HOME/pop3/oauth/ACCOUNT.json`, else
/// `~/.local/share/pop3/oauth/ACCOUNT.json`.
pub(crate) fn default_path(account: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|d| !d.is_empty())?)
            .join(".local")
            .join("share"),
    };
    let mut name = String::new();
    for c in account.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') && !name.is_empty() {
            name.push(c);
        } else {
            for byte in c.to_string().bytes() {
                name.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    Some(base.join("pop3").join("oauth").join(format!("{name}.json")))
}

/// An open store, locked exclusively until dropped.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    _lock: File,
    backend: Backend,
    /// Why `auto` chose the file: no keyring answered (this).
    no_keyring: Option<String>,
}

#[derive(Debug)]
enum Backend {
    File,
    Keyring(os_keyring::Entry),
}

impl Store {
    /// Takes the lock (`PATH.lock`, creating the directory with mode 0700 if needed), waiting
    /// for another `pop3` that holds it, then chooses the backend: `kind`, with `auto` trying
    /// the keyring first. With the keyring chosen, tokens found in the file at `path` (and
    /// none in the keyring) are moved into the keyring.
    pub(crate) fn open(path: &Path, kind: StoreKind, account: &str) -> Result<Self, CliError> {
        let lock = lock(path)?;
        let mut store = Self {
            path: path.to_owned(),
            _lock: lock,
            backend: Backend::File,
            no_keyring: None,
        };
        if kind == StoreKind::File {
            tracing::info!(target: "pop3_cli", "token store: {} (oauth-store = \"file\")", path.display());
            return Ok(store);
        }
        match os_keyring::open(account) {
            Ok((entry, has_tokens)) => {
                tracing::info!(target: "pop3_cli", "token store: the {}", os_keyring::NAME);
                store.backend = Backend::Keyring(entry);
                store.migrate(account, has_tokens)?;
                Ok(store)
            }
            Err(reason) if kind == StoreKind::Keyring => Err(CliError::usage(format!(
                "oauth-store = \"keyring\", but {reason}: start the keyring (or unlock it), or set oauth-store = \"file\""
            ))),
            Err(reason) => {
                tracing::info!(target: "pop3_cli", "token store: {} ({reason})", path.display());
                store.no_keyring = Some(reason);
                Ok(store)
            }
        }
    }

    /// The keyring has just been chosen: tokens in the file move into it, unless the keyring
    /// has tokens of its own, which win (the file is then left alone, with a warning).
    fn migrate(&self, account: &str, keyring_has_tokens: bool) -> Result<(), CliError> {
        if keyring_has_tokens {
            if self.path.exists() {
                eprintln!(
                    "pop3: warning: {} also holds OAuth tokens for account {account}; those in the {} are used: delete the file",
                    self.path.display(),
                    os_keyring::NAME
                );
            }
            return Ok(());
        }
        let Some(tokens) = load_file(&self.path)? else {
            return Ok(());
        };
        self.save(&tokens)?;
        remove_file(&self.path)?;
        eprintln!(
            "pop3: moved the OAuth tokens of account {account} from {} into the {}",
            self.path.display(),
            os_keyring::NAME
        );
        Ok(())
    }

    /// Where the tokens are: the file's path, or the keyring's name.
    pub(crate) fn location(&self) -> String {
        match &self.backend {
            Backend::File => match &self.no_keyring {
                Some(reason) => format!("{} ({reason})", self.path.display()),
                None => self.path.display().to_string(),
            },
            Backend::Keyring(_) => format!("the {}", os_keyring::NAME),
        }
    }

    /// The stored tokens, or `None` if there are none yet.
    pub(crate) fn load(&self) -> Result<Option<Tokens>, CliError> {
        match &self.backend {
            Backend::File => load_file(&self.path),
            Backend::Keyring(entry) => os_keyring::load(entry),
        }
    }

    /// Replaces the tokens: a reader (or a crash) sees the old tokens or the new ones, never
    /// a mix, and the file is never readable by others.
    pub(crate) fn save(&self, tokens: &Tokens) -> Result<(), CliError> {
        match &self.backend {
            Backend::File => save_file(&self.path, tokens),
            Backend::Keyring(entry) => os_keyring::save(entry, tokens),
        }
    }

    /// With the keyring as the store, deletes a token file left at the store's path (after a
    /// new sign-in, whose tokens replace it); `false` if there was none.
    pub(crate) fn remove_stale_file(&self) -> Result<bool, CliError> {
        match &self.backend {
            Backend::File => Ok(false),
            Backend::Keyring(_) => remove_file(&self.path),
        }
    }

    /// Deletes the tokens (`pop3 oauth logout`): the keyring's item and the file, whichever
    /// exist; `false` if there were none.
    pub(crate) fn remove(&self) -> Result<bool, CliError> {
        let removed = match &self.backend {
            Backend::File => false,
            Backend::Keyring(entry) => os_keyring::remove(entry)?,
        };
        Ok(remove_file(&self.path)? || removed)
    }
}

/// Creates the directory (0700) if needed and takes the lock (`PATH.lock`).
fn lock(path: &Path) -> Result<File, CliError> {
    let dir = parent(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::local(format!("token store {}", dir.display()), &e))?;
    let lock_path = with_suffix(path, ".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| CliError::local(format!("token store {}", lock_path.display()), &e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
        CliError::local(
            format!("locking the token store {}", lock_path.display()),
            &e.into(),
        )
    })?;
    Ok(lock)
}

/// The tokens as the store keeps them: a JSON object.
fn encode(tokens: &Tokens) -> Vec<u8> {
    let text = |s: &Option<Secret>| {
        s.as_ref().map_or(serde_json::Value::Null, |s| {
            serde_json::Value::String(String::from_utf8_lossy(s.expose()).into_owned())
        })
    };
    let value = serde_json::json!({
        "refresh_token": text(&tokens.refresh),
        "access_token": text(&tokens.access),
        "expires_at": tokens.expires_at,
    });
    let mut bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The tokens from the store's JSON; an error says where, and never shows the content.
fn decode(bytes: &[u8], context: &dyn Fn() -> String) -> Result<Tokens, CliError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        CliError::failure(format!(
            "{}: not a token record (line {}, column {})",
            context(),
            e.line(),
            e.column()
        ))
    })?;
    let secret = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.as_bytes().to_vec()))
    };
    Ok(Tokens {
        refresh: secret("refresh_token"),
        access: secret("access_token"),
        expires_at: value.get("expires_at").and_then(serde_json::Value::as_u64),
    })
}

/// The tokens in the file, or `None` if there is no file. A file others can read is
/// refused, as ssh refuses such a key.
fn load_file(path: &Path) -> Result<Option<Tokens>, CliError> {
    let context = || format!("token store {}", path.display());
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::local(context(), &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| CliError::local(context(), &e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(CliError::usage(format!(
            "{}: the file is accessible to other users (mode {:o}): chmod 600 it, or run `pop3 oauth login` again",
            context(),
            meta.mode() & 0o777
        )));
    }
    let mut bytes = Vec::new();
    Read::by_ref(&mut file)
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::local(context(), &e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(CliError::failure(format!(
            "{}: larger than {MAX_FILE} bytes",
            context()
        )));
    }
    decode(&bytes, &context).map(Some)
}

/// Replaces the file atomically: a new file written beside it (0600), synced, renamed over
/// it, the directory synced.
fn save_file(path: &Path, tokens: &Tokens) -> Result<(), CliError> {
    let context = || format!("token store {}", path.display());
    let bytes = encode(tokens);
    let temp = with_suffix(path, &format!(".tmp.{}", std::process::id()));
    let result = (|| {
        // Left by a crashed process of the same id: under the lock, nobody else writes it.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        File::open(parent(path))?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(CliError::local(context(), &e));
    }
    Ok(())
}

/// Deletes the file; `false` if there was none.
fn remove_file(path: &Path) -> Result<bool, CliError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::local(
            format!("token store {}", path.display()),
            &e,
        )),
    }
}

/// The OS keyring through the `keyring` crate, where this build has a native backend for the
/// platform (the crate would otherwise fall back to an in-memory mock, which is no store).
#[cfg(all(
    feature = "keyring",
    any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "macos",
        target_os = "windows"
    )
))]
mod os_keyring {
    pub(super) use ::keyring::Entry;
    use ::keyring::Error;

    use super::{Tokens, decode, encode};
    use crate::error::CliError;

    /// The item's service name; its user name is the account's name.
    const KEYRING_SERVICE: &str = "pop3-oauth";

    #[cfg(target_os = "macos")]
    pub(super) const NAME: &str = "keyring (macOS Keychain)";
    #[cfg(target_os = "windows")]
    pub(super) const NAME: &str = "keyring (Windows Credential Manager)";
    #[cfg(not(any(target_os = "macos", target_os = "windows")))]
    pub(super) const NAME: &str = "keyring (Secret Service)";

    /// The account's entry, if the keyring answers, and whether it holds tokens; else why
    /// not. Reading the item may show the keyring's unlock prompt.
    pub(super) fn open(account: &str) -> Result<(Entry, bool), String> {
        let entry = Entry::new(KEYRING_SERVICE, account).map_err(|e| unavailable(&e))?;
        match entry.get_secret() {
            Ok(_) => Ok((entry, true)),
            Err(Error::NoEntry) => Ok((entry, false)),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Why the keyring cannot be used, escaped: it may go to stdout (`pop3 oauth login`).
    fn unavailable(error: &Error) -> String {
        format!(
            "the {NAME} is not available: {}",
            crate::escape::escape(&describe(error))
        )
    }

    /// The error without what the keyring crate may attach (a `BadEncoding` error holds the
    /// secret's bytes).
    fn describe(error: &Error) -> String {
        match error {
            Error::BadEncoding(_) => "the item is not UTF-8".to_owned(),
            other => other.to_string(),
        }
    }

    fn failure(what: &str, error: &Error) -> CliError {
        CliError::failure(format!("{what} the {NAME}: {}", describe(error)))
    }

    pub(super) fn load(entry: &Entry) -> Result<Option<Tokens>, CliError> {
        match entry.get_secret() {
            Ok(bytes) => decode(&bytes, &|| format!("the {NAME}")).map(Some),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(failure("reading the tokens from", &e)),
        }
    }

    pub(super) fn save(entry: &Entry, tokens: &Tokens) -> Result<(), CliError> {
        entry
            .set_secret(&encode(tokens))
            .map_err(|e| failure("storing the tokens in", &e))
    }

    pub(super) fn remove(entry: &Entry) -> Result<bool, CliError> {
        match entry.delete_credential() {
            Ok(()) => Ok(true),
            Err(Error::NoEntry) => Ok(false),
            Err(e) => Err(failure("deleting the tokens from", &e)),
        }
    }
}

/// No keyring in this build (or no native backend for this platform): `auto` takes the file.
#[cfg(not(all(
    feature = "keyring",
    any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "macos",
        target_os = "windows"
    )
)))]
mod os_keyring {
    use super::Tokens;
    use crate::error::CliError;

    pub(super) const NAME: &str = "keyring";

    /// No entry can exist.
    #[derive(Debug)]
    pub(super) enum Entry {}

    pub(super) fn open(_account: &str) -> Result<(Entry, bool), String> {
        Err("this pop3 was built without a keyring backend for this platform".to_owned())
    }

    pub(super) fn load(entry: &Entry) -> Result<Option<Tokens>, CliError> {
        match *entry {}
    }

    pub(super) fn save(entry: &Entry, _tokens: &Tokens) -> Result<(), CliError> {
        match *entry {}
    }

    pub(super) fn remove(entry: &Entry) -> Result<bool, CliError> {
        match *entry {}
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn round_trip_mode_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("acct.json");
        let store = Store::open(&path, StoreKind::File, "acct").unwrap();
        assert!(store.load().unwrap().is_none());
        let tokens = Tokens {
            refresh: Some("r-1".into()),
            access: Some("a-1".into()),
            expires_at: Some(42),
        };
        store.save(&tokens).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let inode = std::fs::metadata(&path).unwrap().ino();
        store
            .save(&Tokens {
                refresh: Some("r-2".into()),
                ..tokens
            })
            .unwrap();
        // A new file renamed over the old one, not the old one rewritten in place.
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode);
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.refresh.unwrap().expose(), b"r-2");
        assert_eq!(back.access.unwrap().expose(), b"a-1");
        assert_eq!(back.expires_at, Some(42));
        assert!(!format!("{:?}", store.load().unwrap()).contains("r-2"));
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(store.load().unwrap_err().exit_code(), 2);
        assert!(store.remove().unwrap());
        assert!(!store.remove().unwrap());
    }

    #[test]
    fn default_paths_are_one_file_name() {
        let path = default_path("../a b").unwrap();
        assert!(path.ends_with("pop3/oauth/%2E.%2Fa%20b.json"), "{path:?}");
        assert!(
            default_path("work.mail")
                .unwrap()
                .ends_with("oauth/work.mail.json")
        );
    }
}
