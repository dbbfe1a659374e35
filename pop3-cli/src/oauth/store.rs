//! The token store: one JSON file per account, mode 0600 in a 0700 directory, replaced
//! atomically (a new file written, synced, renamed over the old one, the directory synced),
//! and an exclusive lock file so that two `pop3` processes do not both spend a rotating
//! refresh token.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pop3_blocking::Secret;

use crate::error::CliError;

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
}

impl Store {
    /// Creates the directory (0700) if needed and takes the lock (`PATH.lock`), waiting for
    /// another `pop3` that holds it.
    pub(crate) fn lock(path: &Path) -> Result<Self, CliError> {
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
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The stored tokens, or `None` if there is no file yet. A file others can read is
    /// refused, as ssh refuses such a key.
    pub(crate) fn load(&self) -> Result<Option<Tokens>, CliError> {
        let context = || format!("token store {}", self.path.display());
        let mut file = match File::open(&self.path) {
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
        let mut text = String::new();
        Read::by_ref(&mut file)
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| CliError::local(context(), &e))?;
        if text.len() as u64 > MAX_FILE {
            return Err(CliError::failure(format!(
                "{}: larger than {MAX_FILE} bytes",
                context()
            )));
        }
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            CliError::failure(format!(
                "{}: not a token file (line {}, column {})",
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
        Ok(Some(Tokens {
            refresh: secret("refresh_token"),
            access: secret("access_token"),
            expires_at: value.get("expires_at").and_then(serde_json::Value::as_u64),
        }))
    }

    /// Replaces the file atomically: a reader (or a crash) sees the old tokens or the new
    /// ones, never a mix, and the file is never readable by others.
    pub(crate) fn save(&self, tokens: &Tokens) -> Result<(), CliError> {
        let context = || format!("token store {}", self.path.display());
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
        let mut bytes = serde_json::to_vec_pretty(&value)
            .map_err(|e| CliError::failure(format!("{}: {e}", context())))?;
        bytes.push(b'\n');
        let temp = with_suffix(&self.path, &format!(".tmp.{}", std::process::id()));
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
            std::fs::rename(&temp, &self.path)?;
            File::open(parent(&self.path))?.sync_all()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(CliError::local(context(), &e));
        }
        Ok(())
    }

    /// Deletes the file (`pop3 oauth logout`); `false` if there was none.
    pub(crate) fn remove(&self) -> Result<bool, CliError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(CliError::local(
                format!("token store {}", self.path.display()),
                &e,
            )),
        }
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
        let store = Store::lock(&path).unwrap();
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
