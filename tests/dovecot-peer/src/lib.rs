//! Finding the Dovecot peer that `scripts/dovecot/start.sh` runs, and whether interop tests
//! must run, may skip, or are off.
//!
//! A crate of its own so that the policy (`POP3_INTEROP=required` fails an unreachable peer; a
//! skip is announced, never silent) is written once: the test kit (`pop3-tests`) re-exports it
//! as its `interop` module, and the `pop3` command's tests use it without depending on the kit.
//! It does not depend on `pop3-proto`.
//!
//! Environment (set by `.ci/run`; see `tests/README.md`):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `POP3_INTEROP` | `required`: interop tests must run, an unreachable peer fails them; `off`: skip them; unset or `auto`: run them if the peer answers, else skip | `auto` |
//! | `POP3_DOVECOT_DIR` | the peer's runtime directory: `tls/cert.pem`, `mail/USER/Maildir` | `/tmp/pop3-run/dovecot` |
//! | `POP3_DOVECOT_ADDR` | cleartext POP3 (STLS offered) | `127.0.0.1:11110` |
//! | `POP3_DOVECOT_TLS_ADDR` | implicit-TLS POP3 | `127.0.0.1:11995` |

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

/// Name of the variable that selects the [`InteropMode`].
pub const ENV_INTEROP: &str = "POP3_INTEROP";
/// Name of the variable holding the Dovecot runtime directory.
pub const ENV_DOVECOT_DIR: &str = "POP3_DOVECOT_DIR";
/// Name of the variable holding the cleartext address.
pub const ENV_DOVECOT_ADDR: &str = "POP3_DOVECOT_ADDR";
/// Name of the variable holding the implicit-TLS address.
pub const ENV_DOVECOT_TLS_ADDR: &str = "POP3_DOVECOT_TLS_ADDR";

/// Whether interop tests run, from `POP3_INTEROP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InteropMode {
    /// Run if the peer answers, skip otherwise (the default).
    Auto,
    /// Run; an unreachable peer is a test failure (CI).
    Required,
    /// Skip.
    Off,
}

impl InteropMode {
    /// Reads `POP3_INTEROP` (`required`, `off`, `auto`; unset means auto).
    ///
    /// # Panics
    ///
    /// On any other value, so that a typo in CI cannot silently skip tests.
    pub fn from_env() -> InteropMode {
        match std::env::var(ENV_INTEROP).as_deref() {
            Err(_) | Ok("" | "auto") => InteropMode::Auto,
            Ok("required") => InteropMode::Required,
            Ok("off") => InteropMode::Off,
            Ok(other) => panic!("{ENV_INTEROP}={other:?}: expected required, off or auto"),
        }
    }
}

/// The line a test binary writes (once) when it skips its interop tests.
pub const SKIP_NOTE: &str = "SKIPPED: the Dovecot interop tests of this test binary";

/// Says, once per test binary, that the interop tests are skipped and why, on the process's
/// real standard error: libtest captures `eprintln!` (it would show only with
/// `--nocapture`) and reports a test that returns early as `ok`, so without this line a plain
/// `cargo test` would show skips as passes.
fn announce_skip(reason: &str) {
    use std::io::Write as _;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let line = format!(
            "\n{SKIP_NOTE} ({reason}); they report `ok` without running. \
             Start scripts/dovecot/start.sh, or set {ENV_INTEROP}=required to fail instead.\n"
        );
        // Straight to the file descriptor: `std::io::stderr()` is not captured by libtest.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    });
}

/// The test accounts the peer scripts create.
pub const DOVECOT_USERS: [(&str, &str); 2] = [("alice", "secret-a"), ("bob", "secret-b")];

/// The private Dovecot started by `scripts/dovecot/start.sh`.
#[derive(Debug, Clone)]
pub struct DovecotPeer {
    addr: SocketAddr,
    tls_addr: SocketAddr,
    dir: PathBuf,
}

impl DovecotPeer {
    /// The peer described by the environment, if interop tests should run.
    ///
    /// Returns `None` (after a note on stderr) when `POP3_INTEROP=off`, or
    /// when it is `auto` and the peer does not accept a connection.
    ///
    /// # Panics
    ///
    /// When `POP3_INTEROP=required` and the peer is unreachable or its
    /// certificate is missing, and on malformed variables.
    pub fn from_env() -> Option<DovecotPeer> {
        let mode = InteropMode::from_env();
        if mode == InteropMode::Off {
            announce_skip(&format!("{ENV_INTEROP}=off"));
            return None;
        }
        let peer = DovecotPeer {
            addr: env_addr(ENV_DOVECOT_ADDR, "127.0.0.1:11110"),
            tls_addr: env_addr(ENV_DOVECOT_TLS_ADDR, "127.0.0.1:11995"),
            dir: std::env::var_os(ENV_DOVECOT_DIR)
                .map_or_else(|| PathBuf::from("/tmp/pop3-run/dovecot"), PathBuf::from),
        };
        let problem = if let Err(e) = TcpStream::connect_timeout(&peer.addr, Duration::from_secs(2))
        {
            Some(format!("Dovecot at {} unreachable: {e}", peer.addr))
        } else if !peer.certificate_path().is_file() {
            Some(format!("{} missing", peer.certificate_path().display()))
        } else {
            None
        };
        match (problem, mode) {
            (None, _) => Some(peer),
            (Some(problem), InteropMode::Required) => {
                panic!("{ENV_INTEROP}=required but {problem} (run scripts/dovecot/start.sh)")
            }
            (Some(problem), _) => {
                announce_skip(&problem);
                None
            }
        }
    }

    /// Cleartext POP3 (STLS offered).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Implicit-TLS POP3.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// The runtime directory (`POP3_DOVECOT_DIR`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's self-signed certificate (PEM): trust it to connect with
    /// TLS under the names `localhost` or `127.0.0.1`.
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("tls").join("cert.pem")
    }

    /// A client config (*ring*) trusting only the peer's certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, pop3_demo_server::Error> {
        pop3_demo_server::client_config_trusting(self.certificate_path())
    }

    /// The Maildir of `user` (files there are LF-terminated; Dovecot sends
    /// CRLF).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user).join("Maildir")
    }
}

fn env_addr(name: &str, default: &str) -> SocketAddr {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("{name}={text:?} is not a socket address"))
}
