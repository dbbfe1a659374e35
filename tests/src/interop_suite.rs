//! The Dovecot interop suite: the same [`Adapter`] as the [`suite`](crate::suite) module, but
//! against the real Dovecot 2.3 that `scripts/dovecot/start.sh` runs (see [`DovecotPeer`] and
//! `tests/README.md`). Instantiate it with one line per adapter:
//!
//! ```ignore
//! pop3_tests::interop_suite!(Blocking);
//! ```
//!
//! It expands into one `#[test]` per function of this module, all named `dovecot_*`
//! (`cargo test dovecot_` runs only them).
//!
//! # Skipping
//!
//! Every test starts with [`DovecotPeer::from_env`], which honours `POP3_INTEROP`:
//!
//! - `required` (what `.ci/run` sets): the tests run; an unreachable peer or a missing
//!   certificate **fails** every test with a panic that says so.
//! - `auto` or unset: the tests run if the peer answers; otherwise each test returns at once.
//!   libtest has no "skipped" outcome, so such a test is reported as `ok`; to keep that from
//!   looking like a pass, the test binary writes one line starting with
//!   [`SKIP_NOTE`](crate::SKIP_NOTE) (`SKIPPED: the Dovecot interop tests…`, with the reason)
//!   straight to its standard error, which libtest does not capture: it shows in a plain
//!   `cargo test`.
//! - `off`: the same line, and no test touches the network.
//!
//! # Accounts
//!
//! - `alice` (1000 messages) is **read-only**: other test binaries and engineers read it at the
//!   same time. These tests log in, read and QUIT, and never send DELE there.
//! - `carol` (5 messages of about 2000 bytes) is this suite's own: the tests that delete refill
//!   it first with `scripts/dovecot/fill.sh 5 2000 carol --reset`, under a lock (`CarolLock`)
//!   that serialises them across threads *and* across processes (the async instantiation is a
//!   separate test binary, and two people may run the suite at once).
//!
//! # Dovecot's auth penalty
//!
//! Dovecot answers a failed login after `auth_failure_delay` (2 s), and then holds back every
//! login *from the same IP* (all of us: 127.0.0.1) by 4 s, 8 s, then 15 s per further failure,
//! until a login succeeds or 15 s pass. So the suite fails exactly one login
//! ([`dovecot_wrong_password`]), clears the penalty at once with a successful retry, and keeps
//! its other tests from logging in meanwhile; and every session uses a 30 s timeout, in case
//! another process fails a login at the same time.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use pop3_proto::login::{LoginMethod, ServerError, Stat};
use pop3_proto::sasl::{CramMd5, Login, Plain, ScramSha1, ScramSha256};
use pop3_proto::{Capabilities, CommandKind, Phase, ResponseCode};

use crate::suite::{Adapter, ConnectOptions, Failure, Security};
use crate::{DovecotPeer, to_crlf};

/// The read-only account with 1000 messages.
pub const ALICE: (&str, &str) = ("alice", "secret-a");
/// The account the destructive tests delete from (and refill).
pub const CAROL: (&str, &str) = ("carol", "secret-c");
/// How many messages `carol` has after a refill.
pub const CAROL_MESSAGES: u32 = 5;
/// How many messages `alice` has (`fill.sh 1000 4000 alice --reset`).
pub const ALICE_MESSAGES: u32 = 1000;

/// Every SASL mechanism the peer offers before login.
const DOVECOT_SASL: [&str; 6] = [
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "EXTERNAL",
];

/// Expands into one `#[test]` per Dovecot interop test for the given [`Adapter`] type.
#[macro_export]
macro_rules! interop_suite {
    ($adapter:ty) => {
        $crate::interop_suite!(@tests $adapter;
            dovecot_capabilities_before_and_after_stls_and_login,
            dovecot_user_pass,
            dovecot_apop,
            dovecot_auth_plain,
            dovecot_auth_login,
            dovecot_auth_cram_md5,
            dovecot_auth_scram_sha_256,
            dovecot_auth_scram_sha_1,
            dovecot_scram_over_tls_flags_y,
            dovecot_external_with_client_certificate,
            dovecot_client_certificate_with_a_password_login,
            dovecot_wrong_password,
            dovecot_login_chooses_scram,
            dovecot_tls_host_names,
            dovecot_untrusted_certificate_is_refused,
            dovecot_retr_many_all_of_alice,
            dovecot_top,
            dovecot_uidl,
            dovecot_stat_list_noop,
            dovecot_dele_quit_commits,
            dovecot_dele_rset_quit_keeps_everything,
            dovecot_dele_many_pipelined_commits,
            dovecot_drop_after_dele_commits_nothing,
        );
    };
    (@tests $adapter:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::interop_suite::$name::<$adapter>();
            }
        )*
    };
}

// ---- peer, connections ----

/// Held shared by every test that logs in, and exclusively by [`dovecot_wrong_password`]:
/// Dovecot's auth penalty after a failed login would delay the others' logins by 4 s or more.
static LOGIN_GATE: RwLock<()> = RwLock::new(());

/// The peer and a shared hold on [`LOGIN_GATE`], or `None` when the test is to be skipped
/// (see the module docs).
fn peer() -> Option<(DovecotPeer, RwLockReadGuard<'static, ()>)> {
    let peer = DovecotPeer::from_env()?;
    let gate = LOGIN_GATE.read().unwrap_or_else(PoisonError::into_inner);
    Some((peer, gate))
}

/// The per-read timeout of the interop sessions: generous, because Dovecot holds logins
/// back by 4 to 15 s after someone else's failed login from 127.0.0.1 (its auth penalty).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Connection options trusting the peer's certificate (and only it).
fn options(peer: &DovecotPeer) -> ConnectOptions {
    let path = peer.certificate_path();
    let pem = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    ConnectOptions {
        ca_pem: Some(pem),
        timeout: TIMEOUT,
        ..ConnectOptions::default()
    }
}

/// [`options`] with passwords allowed in the clear (Dovecot's test config allows them).
fn plaintext_options(peer: &DovecotPeer) -> ConnectOptions {
    ConnectOptions {
        allow_plaintext: true,
        ..options(peer)
    }
}

/// Connects to the cleartext port (`None`, `StartTls`) or the TLS port (`Implicit`) as
/// `host`.
fn try_connect<A: Adapter>(
    peer: &DovecotPeer,
    host: &str,
    security: Security,
    options: &ConnectOptions,
) -> Result<A, Failure> {
    let port = match security {
        Security::Implicit => peer.tls_addr().port(),
        Security::StartTls | Security::None => peer.addr().port(),
    };
    A::connect(host, port, security, options)
}

/// Like [`try_connect`] with the peer's IP address as host; panics on failure.
#[track_caller]
fn connect<A: Adapter>(peer: &DovecotPeer, security: Security, options: &ConnectOptions) -> A {
    let host = peer.addr().ip().to_string();
    try_connect(peer, &host, security, options)
        .unwrap_or_else(|e| panic!("connect to Dovecot ({security:?}) failed: {e:?}"))
}

/// A session of `user` in TRANSACTION (USER/PASS over cleartext).
#[track_caller]
fn session<A: Adapter>(peer: &DovecotPeer, (user, password): (&str, &str)) -> A {
    let mut pop = connect::<A>(peer, Security::None, &plaintext_options(peer));
    pop.user(user).unwrap();
    pop.pass(password).unwrap();
    assert_eq!(pop.phase(), Phase::Transaction);
    pop
}

#[track_caller]
fn server_error<T: std::fmt::Debug>(result: Result<T, Failure>) -> ServerError {
    match result {
        Err(Failure::Server(e)) => e,
        other => panic!("expected a -ERR, got {other:?}"),
    }
}

/// Checks a successful login: TRANSACTION, and alice's maildrop behind it.
#[track_caller]
fn assert_logged_in_as_alice<A: Adapter>(pop: &mut A) {
    assert_eq!(pop.phase(), Phase::Transaction);
    assert_eq!(pop.stat().unwrap().count, ALICE_MESSAGES);
}

/// A fresh SCRAM client nonce (the core takes it from the caller): 48 hex digits from std's
/// randomly keyed hasher. Good enough for tests, not a CSPRNG.
fn scram_nonce() -> String {
    use std::hash::BuildHasher;
    (0..3u8)
        .map(|i| format!("{:016x}", std::hash::RandomState::new().hash_one(i)))
        .collect()
}

// ---- the Maildir behind the peer ----

/// `dovecot-uidlist` of a Maildir: UIDVALIDITY and the base file name of every UID.
#[derive(Debug)]
struct UidList {
    validity: u32,
    names: HashMap<u32, String>,
}

impl UidList {
    /// Reads `dovecot-uidlist` (version 3: a header `3 V<validity> N<next> G<guid>`, then
    /// `<uid> [<ext>…] :<base name>` per message).
    fn read(maildir: &Path) -> UidList {
        let path = maildir.join("dovecot-uidlist");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let validity = header
            .split_whitespace()
            .find_map(|field| field.strip_prefix('V'))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no UIDVALIDITY in {header:?}", path.display()));
        let names = lines
            .filter_map(|line| {
                let (fields, name) = line.split_once(" :")?;
                let uid = fields.split_whitespace().next()?.parse().ok()?;
                Some((uid, name.to_owned()))
            })
            .collect();
        UidList { validity, names }
    }
}

/// Splits a UIDL of Dovecot's `pop3_uidl_format = %08Xu%08Xv` into (uid, uidvalidity).
#[track_caller]
fn parse_uidl(uid: &str) -> (u32, u32) {
    assert!(
        uid.len() == 16 && uid.bytes().all(|b| b.is_ascii_hexdigit()),
        "UIDL {uid:?} is not 16 hex digits"
    );
    let hex = |s: &str| u32::from_str_radix(s, 16).unwrap();
    (hex(&uid[..8]), hex(&uid[8..]))
}

/// The message files of a Maildir by base name (the part before `:2,flags`), from `cur/` and
/// `new/`.
fn maildir_files(maildir: &Path) -> HashMap<String, PathBuf> {
    let mut files = HashMap::new();
    for sub in ["cur", "new"] {
        let dir = maildir.join(sub);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let base = name.split_once(':').map_or(name.as_str(), |(b, _)| b);
            files.insert(base.to_owned(), entry.path());
        }
    }
    files
}

/// The messages of a Maildir in the order of the session's UIDL listing, each in the form
/// Dovecot sends it (CRLF).
///
/// Dovecot may rename a file while we read (flag changes by a concurrent session move it
/// from `new/` to `cur/` or change its `:2,` suffix), so a vanished file is looked up again.
fn maildir_messages(maildir: &Path, uidls: &[String]) -> Vec<Vec<u8>> {
    let uidlist = UidList::read(maildir);
    let mut files = maildir_files(maildir);
    uidls
        .iter()
        .map(|uidl| {
            let (uid, validity) = parse_uidl(uidl);
            assert_eq!(
                validity, uidlist.validity,
                "UIDL {uidl}: UIDVALIDITY differs from dovecot-uidlist's"
            );
            let name = uidlist
                .names
                .get(&uid)
                .unwrap_or_else(|| panic!("UID {uid} ({uidl}) not in dovecot-uidlist"));
            for attempt in 0..3 {
                if let Some(path) = files.get(name.as_str()) {
                    match std::fs::read(path) {
                        Ok(bytes) => return to_crlf(&bytes),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 2 => {}
                        Err(e) => panic!("cannot read {}: {e}", path.display()),
                    }
                }
                files = maildir_files(maildir);
            }
            panic!("no file for UID {uid} ({name}) in {}", maildir.display())
        })
        .collect()
}

/// Panics with the first differing offset instead of two walls of bytes.
#[track_caller]
fn assert_same_bytes(got: &[u8], expected: &[u8], what: &str) {
    if got != expected {
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        let around = |bytes: &[u8]| {
            let from = at.saturating_sub(40);
            String::from_utf8_lossy(&bytes[from..(at + 40).min(bytes.len())]).into_owned()
        };
        panic!(
            "{what}: {} bytes, expected {}; first difference at offset {at}:\n got      {:?}\n expected {:?}",
            got.len(),
            expected.len(),
            around(got),
            around(expected)
        );
    }
}

/// The UIDL strings of a session, in message order.
fn uidls<A: Adapter>(pop: &mut A) -> Vec<String> {
    let listing = pop.uidl().unwrap();
    for (i, entry) in listing.iter().enumerate() {
        assert_eq!(entry.msg as usize, i + 1, "UIDL listing out of order");
    }
    listing.into_iter().map(|u| u.uid).collect()
}

// ---- carol: refilled, and locked across threads and processes ----

/// Exclusive use of `carol`'s mailbox, refilled to [`CAROL_MESSAGES`] fresh messages.
///
/// Two locks, because tests run in parallel threads of one binary *and* the blocking and the
/// async instantiations are separate binaries (which a developer may run concurrently with CI,
/// or with another developer's run):
///
/// - a process-wide [`Mutex`] makes the threads of one binary wait without polling;
/// - on Linux, a listening Unix socket bound to an *abstract* address (no file) derived from
///   the peer's directory: the kernel lets only one socket hold the name, and frees it when the
///   socket closes, including when the process dies or is killed. So there is no stale lock
///   file to clean up (unlike a `create_new` lock file), no extra crate (unlike `fs4`'s
///   `flock`), and no `File::lock` (newer than the workspace's `rust-version`). Its scope is
///   the network namespace, which is also the scope of the peer's 127.0.0.1.
///
/// Other platforms get only the process-wide lock (the Dovecot scripts are Linux-only).
#[derive(Debug)]
struct CarolLock {
    _process: MutexGuard<'static, ()>,
    #[cfg(target_os = "linux")]
    _system: std::os::unix::net::UnixListener,
}

static CAROL_PROCESS_LOCK: Mutex<()> = Mutex::new(());

/// How long to wait for another process's carol tests.
const CAROL_LOCK_WAIT: Duration = Duration::from_secs(120);

impl CarolLock {
    /// Takes both locks, then refills carol's mailbox.
    fn acquire(peer: &DovecotPeer) -> CarolLock {
        let process = CAROL_PROCESS_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lock = CarolLock {
            _process: process,
            #[cfg(target_os = "linux")]
            _system: system_lock(peer),
        };
        refill_carol(peer);
        lock
    }
}

#[cfg(target_os = "linux")]
fn system_lock(peer: &DovecotPeer) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    // Abstract names are at most 107 bytes: keep the tail of the path.
    let dir = peer.dir().to_string_lossy();
    let tail = &dir[dir.len().saturating_sub(80)..];
    let name = format!("pop3-tests/carol/{tail}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let started = Instant::now();
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                assert!(
                    started.elapsed() < CAROL_LOCK_WAIT,
                    "another process held the carol lock (@{name}) for {CAROL_LOCK_WAIT:?}"
                );
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => panic!("cannot bind the carol lock @{name}: {e}"),
        }
    }
}

/// The repository root (the kit lives in `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `scripts/dovecot/fill.sh 5 2000 carol --reset` (needs root, like the scripts).
fn refill_carol(peer: &DovecotPeer) {
    let root = repo_root();
    let output = Command::new("bash")
        .arg("scripts/dovecot/fill.sh")
        .args([&CAROL_MESSAGES.to_string(), "2000", CAROL.0, "--reset"])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash scripts/dovecot/fill.sh: {e}"));
    assert!(
        output.status.success(),
        "fill.sh {CAROL_MESSAGES} 2000 carol --reset failed ({}): {}\n\
         (is Dovecot running from a start.sh that knows carol? If not: \
         bash scripts/dovecot/stop.sh && bash scripts/dovecot/start.sh)",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let maildir = peer.maildir(CAROL.0);
    assert!(
        maildir.join("new").is_dir(),
        "fill.sh filled a Maildir other than {} (POP3_RUNROOT and POP3_DOVECOT_DIR disagree?)",
        maildir.display()
    );
}

/// A new carol session's UIDLs (and its STAT, checked against them); QUITs.
fn carol_uidls<A: Adapter>(peer: &DovecotPeer) -> Vec<String> {
    let mut pop = session::<A>(peer, CAROL);
    let stat = pop.stat().unwrap();
    let uids = uidls(&mut pop);
    assert_eq!(stat.count as usize, uids.len());
    pop.quit().unwrap();
    uids
}

// ---- capabilities ----

#[track_caller]
fn assert_common_capabilities(c: &Capabilities) {
    assert!(
        c.top && c.uidl && c.resp_codes && c.pipelining && c.auth_resp_code,
        "{c:?}"
    );
}

#[track_caller]
fn assert_sasl_offered(c: &Capabilities) {
    for mechanism in DOVECOT_SASL {
        assert!(c.supports_sasl(mechanism), "{mechanism} missing: {c:?}");
    }
    assert!(c.user, "USER missing: {c:?}");
}

/// CAPA before STLS (STLS, USER, SASL), after STLS (no STLS), after login (no SASL, no USER),
/// and over implicit TLS (no STLS); the greeting carries an APOP timestamp.
pub fn dovecot_capabilities_before_and_after_stls_and_login<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let pop = connect::<A>(&peer, Security::None, &options(&peer));
    let greeting = pop.greeting();
    assert!(greeting.text.contains("ready"), "{greeting:?}");
    assert!(
        greeting.apop,
        "Dovecot with `apop` sends a timestamp: {greeting:?}"
    );
    assert_eq!(pop.phase(), Phase::Authorization);
    assert!(!pop.is_tls());
    let before = pop.capabilities().expect("Dovecot answers CAPA");
    assert_common_capabilities(&before);
    assert_sasl_offered(&before);
    assert!(before.stls, "{before:?}");

    let mut pop = pop.stls().unwrap();
    assert!(pop.is_tls());
    let after_tls = pop.capabilities().unwrap();
    assert!(
        !after_tls.stls,
        "STLS still offered over TLS: {after_tls:?}"
    );
    assert_common_capabilities(&after_tls);
    assert_sasl_offered(&after_tls);
    assert_eq!(pop.capa().unwrap(), after_tls);

    assert_eq!(
        pop.login(ALICE.0, ALICE.1).unwrap(),
        LoginMethod::ScramSha256
    );
    assert_logged_in_as_alice(&mut pop);
    let after_login = pop.capabilities().unwrap();
    assert_common_capabilities(&after_login);
    assert!(
        after_login.sasl.is_empty(),
        "SASL after login: {after_login:?}"
    );
    assert!(!after_login.user && !after_login.stls, "{after_login:?}");
    assert_eq!(pop.capa().unwrap(), after_login);
    assert_eq!(pop.quit().unwrap().text, "Logging out.");

    let pop = connect::<A>(&peer, Security::Implicit, &options(&peer));
    assert!(pop.is_tls());
    let implicit = pop.capabilities().unwrap();
    assert!(!implicit.stls, "{implicit:?}");
    assert_common_capabilities(&implicit);
    assert_sasl_offered(&implicit);
    assert_eq!(pop.quit().unwrap().text, "Logging out");
}

// ---- each login method with the right password ----

/// USER/PASS in the clear (allowed by the caller; the test Dovecot allows it too).
pub fn dovecot_user_pass<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = connect::<A>(&peer, Security::None, &plaintext_options(&peer));
    pop.user(ALICE.0).unwrap();
    assert_eq!(pop.phase(), Phase::Authorization);
    assert_eq!(pop.pass(ALICE.1).unwrap().text, "Logged in.");
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// APOP with the timestamp of Dovecot's greeting.
pub fn dovecot_apop<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    // Without TLS, APOP needs plaintext allowed (its digest can be cracked offline).
    let mut pop = connect::<A>(&peer, Security::None, &plaintext_options(&peer));
    assert!(pop.greeting().apop);
    pop.apop(ALICE.0, ALICE.1).unwrap();
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// AUTH PLAIN over implicit TLS (no plaintext permission needed).
pub fn dovecot_auth_plain<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = connect::<A>(&peer, Security::Implicit, &options(&peer));
    pop.auth(Plain::new(None, ALICE.0.into(), ALICE.1.into()))
        .unwrap();
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// AUTH LOGIN after STLS.
pub fn dovecot_auth_login<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = connect::<A>(&peer, Security::StartTls, &options(&peer));
    assert!(pop.is_tls());
    pop.auth(Login::new(ALICE.0.into(), ALICE.1.into()))
        .unwrap();
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// AUTH CRAM-MD5 in the clear (the password does not cross the wire).
pub fn dovecot_auth_cram_md5<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = connect::<A>(&peer, Security::None, &options(&peer));
    pop.auth(CramMd5::new(ALICE.0.into(), ALICE.1.into()))
        .unwrap();
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// AUTH SCRAM-SHA-256 in the clear; the client checks Dovecot's server signature.
pub fn dovecot_auth_scram_sha_256<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = connect::<A>(&peer, Security::None, &options(&peer));
    pop.auth(ScramSha256::new(
        ALICE.0.into(),
        ALICE.1.into(),
        scram_nonce(),
    ))
    .unwrap();
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// AUTH SCRAM-SHA-1 (RFC 5802) in the clear; the client checks Dovecot's server signature.
pub fn dovecot_auth_scram_sha_1<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = connect::<A>(&peer, Security::None, &options(&peer));
    pop.auth(ScramSha1::new(
        ALICE.0.into(),
        ALICE.1.into(),
        scram_nonce(),
    ))
    .unwrap();
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

/// SCRAM-SHA-1 and SCRAM-SHA-256 by name over implicit TLS and STLS: the connection can bind
/// but Dovecot 2.3 offers no -PLUS variant, so the client sends the GS2 flag `y`, which
/// Dovecot accepts. `login` picks SCRAM-SHA-256 (no SHA-512 on offer, no -PLUS).
pub fn dovecot_scram_over_tls_flags_y<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    for security in [Security::Implicit, Security::StartTls] {
        for method in [LoginMethod::ScramSha1, LoginMethod::ScramSha256] {
            let mut pop = connect::<A>(&peer, security, &options(&peer));
            assert!(pop.can_bind(), "{security:?}: no channel binding");
            let caps = pop.capabilities().unwrap();
            // Dovecot 2.3 has no channel binding (2.4 adds the -PLUS variants).
            assert!(!caps.supports_sasl("SCRAM-SHA-256-PLUS"), "{caps:?}");
            assert_eq!(pop.login_with(method, ALICE.0, ALICE.1).unwrap(), method);
            assert_logged_in_as_alice(&mut pop);
            pop.quit().unwrap();
        }
    }
}

/// The client certificate for alice that `scripts/dovecot/start.sh` issues, as PEMs.
fn alice_client_cert(peer: &DovecotPeer) -> (String, String) {
    let read = |name: &str| {
        let path = peer.dir().join("tls").join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {} (start.sh makes it): {e}", path.display()))
    };
    (read("alice-client.pem"), read("alice-client.key"))
}

/// AUTH EXTERNAL with alice's TLS client certificate, over implicit TLS and STLS: Dovecot
/// takes the user from the certificate's commonName; no password is sent.
pub fn dovecot_external_with_client_certificate<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let options = ConnectOptions {
        client_cert: Some(alice_client_cert(&peer)),
        ..options(&peer)
    };
    for security in [Security::Implicit, Security::StartTls] {
        let mut pop = connect::<A>(&peer, security, &options);
        assert_eq!(
            pop.login_with(LoginMethod::External, ALICE.0, "").unwrap(),
            LoginMethod::External
        );
        assert_logged_in_as_alice(&mut pop);
        pop.quit().unwrap();
    }
}

/// A client certificate does not get in the way of a password login (`login`).
pub fn dovecot_client_certificate_with_a_password_login<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let options = ConnectOptions {
        client_cert: Some(alice_client_cert(&peer)),
        ..options(&peer)
    };
    let mut pop = connect::<A>(&peer, Security::Implicit, &options);
    assert_eq!(
        pop.login(ALICE.0, ALICE.1).unwrap(),
        LoginMethod::ScramSha256
    );
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
}

// ---- a wrong password ----

/// A wrong password: `login` (SCRAM-SHA-256) gets `-ERR [AUTH] Authentication failed.` for
/// AUTH, the session stays in AUTHORIZATION and usable (CAPA), and a second SASL exchange on
/// the same connection logs in.
///
/// Only one failure per run, and no other test of the binary logs in meanwhile (the
/// exclusive `LOGIN_GATE`): Dovecot answers a failure after `auth_failure_delay` (2 s), and
/// its auth penalty then holds back *every* login from 127.0.0.1 by 4 s (8 s, 15 s after more
/// failures) until one succeeds. The retry here is that success, which clears the penalty.
pub fn dovecot_wrong_password<A: Adapter>() {
    let Some(peer) = DovecotPeer::from_env() else {
        return;
    };
    let _gate = LOGIN_GATE.write().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    // Without TLS, SCRAM needs plaintext allowed (an exchange can be cracked offline).
    let mut pop = connect::<A>(&peer, Security::None, &plaintext_options(&peer));
    let e = server_error(pop.login(ALICE.0, "not-the-password"));
    assert_eq!(
        (e.command, e.code, e.text.as_str()),
        (
            CommandKind::Auth,
            Some(ResponseCode::Auth),
            "Authentication failed."
        )
    );
    assert_eq!(pop.phase(), Phase::Authorization);
    assert_sasl_offered(&pop.capa().unwrap());
    assert_eq!(
        pop.login(ALICE.0, ALICE.1).unwrap(),
        LoginMethod::ScramSha256
    );
    assert_logged_in_as_alice(&mut pop);
    pop.quit().unwrap();
    eprintln!(
        "wrong password, then the right one: {:?}",
        started.elapsed()
    );
}

// ---- login() and TLS ----

/// `login` picks SCRAM-SHA-256 over implicit TLS, after STLS, and in the clear (where it needs
/// no plaintext permission, as it sends no password).
pub fn dovecot_login_chooses_scram<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    for security in [Security::Implicit, Security::StartTls, Security::None] {
        // Without TLS, SCRAM needs plaintext allowed (an exchange can be cracked offline).
        let options = if security == Security::None {
            plaintext_options(&peer)
        } else {
            options(&peer)
        };
        let mut pop = connect::<A>(&peer, security, &options);
        assert_eq!(pop.is_tls(), security != Security::None);
        assert_eq!(
            pop.login(ALICE.0, ALICE.1).unwrap(),
            LoginMethod::ScramSha256,
            "{security:?}"
        );
        assert_logged_in_as_alice(&mut pop);
        pop.quit().unwrap();
    }
}

/// Implicit TLS and STLS with the peer's certificate under both names it carries.
pub fn dovecot_tls_host_names<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    for host in ["localhost", "127.0.0.1"] {
        for security in [Security::Implicit, Security::StartTls] {
            let mut pop = try_connect::<A>(&peer, host, security, &options(&peer))
                .unwrap_or_else(|e| panic!("{host} {security:?}: {e:?}"));
            assert!(pop.is_tls(), "{host} {security:?}");
            assert!(!pop.capabilities().unwrap().stls, "{host} {security:?}");
            pop.login(ALICE.0, ALICE.1).unwrap();
            assert_logged_in_as_alice(&mut pop);
            pop.quit().unwrap();
        }
    }
}

/// Without the peer's certificate among the trust anchors, neither TLS mode connects.
pub fn dovecot_untrusted_certificate_is_refused<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    // The kit's own CA, which did not sign Dovecot's certificate.
    let untrusted = ConnectOptions {
        timeout: TIMEOUT,
        ..ConnectOptions::default()
    };
    for security in [Security::Implicit, Security::StartTls] {
        match try_connect::<A>(&peer, "localhost", security, &untrusted) {
            Err(Failure::Tls(_)) => {}
            other => panic!("{security:?}: expected a TLS failure, got {other:?}"),
        }
    }
}

// ---- reading alice (read-only) ----

/// All 1000 messages of alice with one pipelined `retr_many`, byte for byte against the
/// Maildir files (LF there, CRLF on the wire), each LIST size equal to the CRLF size.
pub fn dovecot_retr_many_all_of_alice<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = session::<A>(&peer, ALICE);
    let stat = pop.stat().unwrap();
    // The CAPA asked after login went out with STAT.
    assert!(pop.capabilities().unwrap().pipelining);
    assert_eq!(stat.count, ALICE_MESSAGES);
    let sizes = pop.list().unwrap();
    let uids = uidls(&mut pop);
    let expected = maildir_messages(&peer.maildir(ALICE.0), &uids);
    let numbers: Vec<u32> = (1..=stat.count).collect();
    let started = Instant::now();
    let fetched = pop.retr_many(&numbers).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(fetched.len(), numbers.len());
    let mut total = 0;
    for (i, ((msg, body), expected)) in fetched.into_iter().zip(&expected).enumerate() {
        assert_eq!(msg as usize, i + 1, "retr_many out of order");
        let body = body.unwrap_or_else(|e| panic!("RETR {msg}: {e:?}"));
        assert_same_bytes(&body, expected, &format!("RETR {msg} ({})", uids[i]));
        assert_eq!(sizes[i].size, expected.len() as u64, "LIST size of {msg}");
        total += body.len() as u64;
    }
    assert_eq!(total, stat.size);
    eprintln!(
        "retr_many: {} messages, {total} bytes in {elapsed:?}",
        numbers.len()
    );
    // A single RETR of the message with the 10,000-byte line, after the batch.
    let mut first = Vec::new();
    let octets = pop.retr(1, &mut first).unwrap();
    assert_eq!(octets, first.len() as u64);
    assert_same_bytes(&first, &expected[0], "RETR 1");
    pop.quit().unwrap();
}

/// The header and blank line of a CRLF message, then up to `lines` body lines.
fn top_of(message: &[u8], lines: usize) -> Vec<u8> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |at| at + 4);
    let body = &message[header_end..];
    let body_end: usize = body
        .split_inclusive(|&b| b == b'\n')
        .take(lines)
        .map(<[u8]>::len)
        .sum();
    message[..header_end + body_end].to_vec()
}

/// TOP n 0 (header and blank line) and TOP n 5 (and five body lines, which include
/// dot-stuffed ones) for the first, a middle and the last message.
pub fn dovecot_top<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = session::<A>(&peer, ALICE);
    let uids = uidls(&mut pop);
    let picks = [1, 2, ALICE_MESSAGES / 2, ALICE_MESSAGES];
    let chosen: Vec<String> = picks
        .iter()
        .map(|&n| uids[n as usize - 1].clone())
        .collect();
    let messages = maildir_messages(&peer.maildir(ALICE.0), &chosen);
    for (&msg, message) in picks.iter().zip(&messages) {
        for lines in [0, 5] {
            let mut out = Vec::new();
            let octets = pop.top(msg, lines, &mut out).unwrap();
            assert_eq!(octets, out.len() as u64);
            let expected = top_of(message, lines as usize);
            assert!(expected.ends_with(b"\r\n"));
            assert_same_bytes(&out, &expected, &format!("TOP {msg} {lines}"));
        }
    }
    let mut out = Vec::new();
    let e = server_error(pop.top(ALICE_MESSAGES + 1, 0, &mut out));
    assert_eq!(e.command, CommandKind::Top);
    assert!(out.is_empty());
    pop.quit().unwrap();
}

/// UIDL (all, and one by one): 16 hex digits (UID and UIDVALIDITY, as in dovecot-uidlist),
/// unique, and the same in the listing and singly; a missing message is a `-ERR`.
pub fn dovecot_uidl<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = session::<A>(&peer, ALICE);
    let uids = uidls(&mut pop);
    assert_eq!(uids.len(), ALICE_MESSAGES as usize);
    let unique: HashSet<&String> = uids.iter().collect();
    assert_eq!(unique.len(), uids.len(), "duplicate UIDLs");
    let uidlist = UidList::read(&peer.maildir(ALICE.0));
    for uid in &uids {
        let (number, validity) = parse_uidl(uid);
        assert_eq!(validity, uidlist.validity, "{uid}");
        assert!(
            uidlist.names.contains_key(&number),
            "{uid} not in dovecot-uidlist"
        );
    }
    for msg in [1, 2, 500, ALICE_MESSAGES] {
        let one = pop.uidl_one(msg).unwrap();
        assert_eq!(one.msg, msg);
        assert_eq!(one.uid, uids[msg as usize - 1]);
    }
    let e = server_error(pop.uidl_one(ALICE_MESSAGES + 1));
    assert_eq!(
        (e.command, e.text.as_str()),
        (CommandKind::Uidl, "There's no message 1001.")
    );
    pop.noop().unwrap();
    pop.quit().unwrap();
}

/// STAT equals the LIST count and the sum of its sizes; LIST n equals the listing's entry; a
/// missing message is a `-ERR` that keeps the session; NOOP.
pub fn dovecot_stat_list_noop<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let mut pop = session::<A>(&peer, ALICE);
    pop.noop().unwrap();
    let stat = pop.stat().unwrap();
    let list = pop.list().unwrap();
    assert_eq!(
        stat,
        Stat {
            count: list.len() as u32,
            size: list.iter().map(|l| l.size).sum()
        }
    );
    assert_eq!(stat.count, ALICE_MESSAGES);
    for (i, entry) in list.iter().enumerate() {
        assert_eq!(entry.msg as usize, i + 1);
    }
    for msg in [1, 777, ALICE_MESSAGES] {
        assert_eq!(pop.list_one(msg).unwrap(), list[msg as usize - 1]);
    }
    let e = server_error(pop.list_one(ALICE_MESSAGES + 1));
    assert_eq!(e.command, CommandKind::List);
    assert_eq!(pop.noop().unwrap().text, "");
    assert_eq!(pop.quit().unwrap().text, "Logging out.");
}

// ---- deleting from carol ----

/// DELE, then QUIT commits: the next session has one message fewer, exactly the deleted one.
/// Inside the session the deleted message is gone from STAT and refused by LIST and RETR.
pub fn dovecot_dele_quit_commits<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let _carol = CarolLock::acquire(&peer);
    let mut pop = session::<A>(&peer, CAROL);
    let before = pop.stat().unwrap();
    assert_eq!(before.count, CAROL_MESSAGES);
    let uids = uidls(&mut pop);
    let size_2 = pop.list_one(2).unwrap().size;
    assert_eq!(pop.dele(2).unwrap().text, "Marked to be deleted.");
    assert_eq!(
        pop.stat().unwrap(),
        Stat {
            count: before.count - 1,
            size: before.size - size_2
        }
    );
    assert_eq!(server_error(pop.list_one(2)).text, "Message is deleted.");
    assert_eq!(
        server_error(pop.retr(2, &mut Vec::new())).command,
        CommandKind::Retr
    );
    assert_eq!(server_error(pop.dele(2)).command, CommandKind::Dele);
    pop.noop().unwrap();
    assert_eq!(pop.quit().unwrap().text, "Logging out, messages deleted.");

    let mut expected = uids;
    expected.remove(1);
    assert_eq!(carol_uidls::<A>(&peer), expected);
}

/// DELE, RSET, QUIT commits nothing.
pub fn dovecot_dele_rset_quit_keeps_everything<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let _carol = CarolLock::acquire(&peer);
    let mut pop = session::<A>(&peer, CAROL);
    let before = pop.stat().unwrap();
    let uids = uidls(&mut pop);
    pop.dele(1).unwrap();
    pop.dele(CAROL_MESSAGES).unwrap();
    assert_eq!(pop.stat().unwrap().count, CAROL_MESSAGES - 2);
    pop.rset().unwrap();
    assert_eq!(pop.stat().unwrap(), before);
    pop.list_one(1).unwrap();
    pop.quit().unwrap();
    assert_eq!(carol_uidls::<A>(&peer), uids);
}

/// A pipelined DELE batch, with a refusal in place (a message deleted twice), then QUIT.
pub fn dovecot_dele_many_pipelined_commits<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let _carol = CarolLock::acquire(&peer);
    let mut pop = session::<A>(&peer, CAROL);
    let uids = uidls(&mut pop);
    let results = pop.dele_many(&[1, 3, 3, 5]).unwrap();
    assert_eq!(results.len(), 4);
    assert!(
        results[0].is_ok() && results[1].is_ok() && results[3].is_ok(),
        "{results:?}"
    );
    let refused = results[2].as_ref().unwrap_err();
    assert_eq!(
        (refused.command, refused.text.as_str()),
        (CommandKind::Dele, "Message is deleted.")
    );
    assert_eq!(pop.stat().unwrap().count, 2);
    pop.quit().unwrap();
    assert_eq!(
        carol_uidls::<A>(&peer),
        vec![uids[1].clone(), uids[3].clone()]
    );
}

/// Dropping the connection after DELE, without QUIT, commits nothing.
pub fn dovecot_drop_after_dele_commits_nothing<A: Adapter>() {
    let Some((peer, _gate)) = peer() else { return };
    let _carol = CarolLock::acquire(&peer);
    let mut pop = session::<A>(&peer, CAROL);
    let uids = uidls(&mut pop);
    let numbers: Vec<u32> = (1..=CAROL_MESSAGES).collect();
    assert!(pop.dele_many(&numbers).unwrap().iter().all(Result::is_ok));
    assert_eq!(pop.stat().unwrap().count, 0);
    drop(pop);
    assert_eq!(carol_uidls::<A>(&peer), uids);
}
