//! The OS keyring as the OAuth token store, for real: each test starts a private D-Bus
//! session bus (`dbus-daemon`) and GNOME Keyring's Secret Service on it
//! (`gnome-keyring-daemon --unlock`, a new login keyring in a temporary home), runs `pop3`
//! against the local token endpoint and a ScriptedServer, and checks the keyring with
//! libsecret's `secret-tool`, a client independent of ours.
//!
//! Without those programs the keyring tests skip with a note, except under
//! `POP3_INTEROP=required` (CI), where they fail. The tests of a keyring that does not answer
//! need none of them.
#![cfg(all(feature = "keyring", target_os = "linux"))]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod oauth_endpoint;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use oauth_endpoint::*;
use pop3_dovecot_peer::InteropMode;
use serde_json::{Value, json};

/// The keyring item's attributes, as `pop3` writes them (the keyring crate's scheme).
const SERVICE: &str = "pop3-oauth";
const ACCOUNT: &str = "kr";

/// The private bus's configuration (`LISTEN`: its address).
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>LISTEN</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// A temporary home, runtime and data directory, with (for [`Session::start`]) a private
/// session bus and an unlocked GNOME Keyring on it. Dropping it stops both.
struct Session {
    dir: tempfile::TempDir,
    bus_address: String,
    bus: Option<Child>,
    keyring: Option<Child>,
}

/// Whether `program` can be started (some of them have no `--version`).
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .is_ok()
}

/// Skips (with a note on the real stderr: libtest would report the early return as `ok`),
/// or under `POP3_INTEROP=required` fails.
fn skip(reason: &str) {
    assert!(
        InteropMode::from_env() != InteropMode::Required,
        "POP3_INTEROP=required, but the keyring test cannot run: {reason}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: a keyring test of oauth_keyring ({reason}); it reports `ok` without running"
    );
}

impl Session {
    /// Directories only; the bus address names a socket nobody listens on.
    fn without_keyring() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "run", "data"] {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir.path().join(sub))
                .unwrap();
        }
        let bus_address = format!("unix:path={}", dir.path().join("run").join("bus").display());
        Self {
            dir,
            bus_address,
            bus: None,
            keyring: None,
        }
    }

    /// A bus and an unlocked keyring, or `None` (after [`skip`]) without the programs.
    fn start() -> Option<Self> {
        for program in [
            "dbus-daemon",
            "dbus-send",
            "gnome-keyring-daemon",
            "secret-tool",
        ] {
            if !have(program) {
                skip(&format!(
                    "{program} is not installed (Debian: dbus, gnome-keyring, libsecret-tools)"
                ));
                return None;
            }
        }
        let mut session = Self::without_keyring();
        // A config of our own: no dependence on the system's session.conf, and no D-Bus
        // activation (nothing starts a second keyring daemon behind the test's back).
        let config = session.dir.path().join("bus.conf");
        std::fs::write(&config, BUS_CONFIG.replace("LISTEN", &session.bus_address)).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon printed {line:?}");
        session.bus_address = line.trim().to_owned();
        session.bus = Some(bus);
        let mut keyring = session
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The new login keyring's password, then EOF.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-keyring-password")
            .unwrap();
        session.keyring = Some(keyring);
        // Ready when it owns the Secret Service's name.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = session
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not take org.freedesktop.secrets within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(session)
    }

    /// `program` in this session's environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let dir = self.dir.path();
        command
            .env("HOME", dir.join("home"))
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    /// `pop3 --config CONFIG --account kr ARGS` in this session.
    fn pop3(&self, config: &Path, args: &[&str]) -> Run {
        let mut command = pop3();
        for (key, value) in self.command("pop3").get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
            .arg("--config")
            .arg(config)
            .args(["--account", ACCOUNT])
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    /// A config for `[accounts.kr]` against the endpoint and `pop_port`, plus `extra`.
    fn config(&self, tokens: &TokenServer, pop_port: u16, extra: &str) -> PathBuf {
        let ca = ca_file(self.dir.path());
        let config = self.dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[accounts.{ACCOUNT}]\nhost = \"127.0.0.1\"\nport = {pop_port}\ntls = \"none\"\n\
                 allow-plaintext-auth = true\nuser = \"alice\"\ntimeout = 10\n\
                 oauth-client-id = \"client-1\"\noauth-device-authorization-endpoint = \"{}\"\n\
                 oauth-token-endpoint = \"{}\"\noauth-ca-file = \"{}\"\n{extra}\n",
                tokens.url("/device"),
                tokens.url("/token"),
                ca.display(),
            ),
        )
        .unwrap();
        config
    }

    /// The default token file of the account (`$XDG_DATA_HOME/pop3/oauth/kr.json`).
    fn token_file(&self) -> PathBuf {
        self.dir
            .path()
            .join("data")
            .join("pop3")
            .join("oauth")
            .join(format!("{ACCOUNT}.json"))
    }

    /// The keyring item, read with libsecret's `secret-tool`; `None` if there is none.
    fn keyring_item(&self) -> Option<Value> {
        let out = self
            .command("secret-tool")
            .args(["lookup", "service", SERVICE, "username", ACCOUNT])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Every file under the temporary directory that holds `text` (the keyring's own file is
    /// encrypted).
    fn files_holding(&self, text: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, text: &[u8], found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    walk(&entry.path(), text, found);
                } else if kind.is_file() {
                    let bytes = std::fs::read(entry.path()).unwrap_or_default();
                    if bytes.windows(text.len()).any(|w| w == text) {
                        found.push(entry.path());
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(self.dir.path(), text.as_bytes(), &mut found);
        found
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for child in [self.keyring.as_mut(), self.bus.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn login_stores_in_the_keyring_not_a_file_and_refresh_works_from_it() {
    let Some(session) = Session::start() else {
        return;
    };
    let tokens = TokenServer::start(true, |req, n| match (req.path.as_str(), n) {
        ("/device", 0) => device_reply(1),
        // Valid for 60 s: inside the refresh margin, so the next session refreshes.
        ("/token", 1) => ok(json!({
            "access_token": "acc-kr-1", "refresh_token": "ref-kr-1",
            "token_type": "Bearer", "expires_in": 60,
        })),
        ("/token", 2) => {
            assert_eq!(
                req.form.get("refresh_token").map(String::as_str),
                Some("ref-kr-1")
            );
            ok(json!({
                "access_token": "acc-kr-2", "refresh_token": "ref-kr-2",
                "token_type": "Bearer", "expires_in": 3600,
            }))
        }
        _ => panic!("unexpected request {n}: {req:?}"),
    });
    let pop = pop_server_expecting(&xoauth2_line("acc-kr-2"));
    let config = session.config(&tokens, pop.port(), "oauth-store = \"keyring\"");
    let secrets = ["acc-kr-1", "ref-kr-1", "acc-kr-2", "ref-kr-2", "dev-code-1"];

    let r = session.pop3(&config, &["-vv", "oauth", "login"]);
    r.expect_code(0);
    assert!(
        r.stdout_str()
            .contains("stored in the keyring (Secret Service)"),
        "{}",
        r.stdout_str()
    );
    assert_no_secret(&r, &secrets);
    let item = session.keyring_item().expect("no keyring item after login");
    assert_eq!(item["refresh_token"], "ref-kr-1");
    assert_eq!(item["access_token"], "acc-kr-1");
    assert!(item["expires_at"].as_u64().unwrap() > now());
    // Not in a file: no token file, only the lock file beside where it would be.
    assert!(!session.token_file().exists());
    assert!(session.token_file().with_extension("json.lock").exists());
    assert_eq!(session.files_holding("ref-kr-1"), Vec::<PathBuf>::new());

    // The next session refreshes with the keyring's refresh token, and the rotated one
    // replaces it there.
    let r = session.pop3(&config, &["-vv", "stat"]);
    r.expect_code(0);
    assert_eq!(r.stdout_str(), "0 0\n");
    assert!(
        r.stderr.contains("token store: the keyring"),
        "{}",
        r.stderr
    );
    assert_no_secret(&r, &secrets);
    pop.finish().unwrap().assert_complete();
    assert_eq!(tokens.requests().len(), 3);
    let item = session.keyring_item().unwrap();
    assert_eq!(item["refresh_token"], "ref-kr-2");
    assert_eq!(item["access_token"], "acc-kr-2");
    assert!(!session.token_file().exists());
    assert_eq!(session.files_holding("ref-kr-2"), Vec::<PathBuf>::new());

    let r = session.pop3(&config, &["oauth", "logout"]);
    r.expect_code(0);
    assert!(
        r.stdout_str().contains("removed the tokens"),
        "{}",
        r.stdout_str()
    );
    assert_eq!(session.keyring_item(), None);
    let r = session.pop3(&config, &["stat"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("no OAuth refresh token stored"),
        "{}",
        r.stderr
    );
}

#[test]
fn auto_takes_the_keyring_and_moves_the_file_into_it() {
    let Some(session) = Session::start() else {
        return;
    };
    let tokens = TokenServer::start(true, |req, n| panic!("unexpected request {n}: {req:?}"));
    let pop = pop_server_expecting(&xoauth2_line("acc-file-1"));
    // No oauth-store: auto.
    let config = session.config(&tokens, pop.port(), "");
    let file = session.token_file();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(file.parent().unwrap())
        .unwrap();
    std::fs::write(
        &file,
        json!({
            "refresh_token": "ref-file-1", "access_token": "acc-file-1",
            "expires_at": now() + 3600,
        })
        .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let r = session.pop3(&config, &["stat"]);
    r.expect_code(0);
    assert_eq!(r.stdout_str(), "0 0\n");
    pop.finish().unwrap().assert_complete();
    assert!(
        r.stderr.contains(&format!(
            "moved the OAuth tokens of account {ACCOUNT} from {} into the keyring",
            file.display()
        )),
        "{}",
        r.stderr
    );
    assert_no_secret(&r, &["ref-file-1", "acc-file-1"]);
    assert!(!file.exists());
    let item = session.keyring_item().unwrap();
    assert_eq!(item["refresh_token"], "ref-file-1");
    assert_eq!(item["access_token"], "acc-file-1");
    assert_eq!(session.files_holding("ref-file-1"), Vec::<PathBuf>::new());

    // A file written again beside a keyring that holds tokens: the keyring's are used, and
    // the file is left alone, with a warning.
    std::fs::write(
        &file,
        json!({"refresh_token": "ref-file-2", "access_token": "acc-file-2", "expires_at": now() + 3600})
            .to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pop = pop_server_expecting(&xoauth2_line("acc-file-1"));
    let config = session.config(&tokens, pop.port(), "oauth-store = \"keyring\"");
    let r = session.pop3(&config, &["stat"]);
    r.expect_code(0);
    pop.finish().unwrap().assert_complete();
    assert!(
        r.stderr.contains(&format!(
            "warning: {} also holds OAuth tokens for account {ACCOUNT}; those in the keyring (Secret Service) are used",
            file.display()
        )),
        "{}",
        r.stderr
    );
    assert!(file.exists());
    assert_eq!(
        session.keyring_item().unwrap()["refresh_token"],
        "ref-file-1"
    );
    assert!(tokens.requests().is_empty());
}

#[test]
fn without_a_keyring_auto_takes_the_file_and_keyring_is_an_error() {
    // A bus address where nothing listens: no keyring answers.
    let session = Session::without_keyring();
    let tokens = TokenServer::start(true, |req, n| match (req.path.as_str(), n) {
        ("/device", 0) => device_reply(1),
        ("/token", 1) => ok(json!({
            "access_token": "acc-nk-1", "refresh_token": "ref-nk-1",
            "token_type": "Bearer", "expires_in": 3600,
        })),
        _ => panic!("unexpected request {n}: {req:?}"),
    });
    let config = session.config(&tokens, closed_port(), "oauth-store = \"keyring\"");
    let r = session.pop3(&config, &["oauth", "login"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains(
            "oauth-store = \"keyring\", but the keyring (Secret Service) is not available"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("oauth-store = \"file\""), "{}", r.stderr);
    // Said before the sign-in, not after it.
    assert!(tokens.requests().is_empty());
    assert!(!session.token_file().exists());

    let config = session.config(&tokens, closed_port(), "oauth-store = \"auto\"");
    let r = session.pop3(&config, &["oauth", "login"]);
    r.expect_code(0);
    let file = session.token_file();
    assert!(
        r.stdout_str().contains(&format!(
            "stored in {} (the keyring (Secret Service) is not available",
            file.display()
        )),
        "{}",
        r.stdout_str()
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["refresh_token"], "ref-nk-1");
}

#[test]
fn oauth_store_file_leaves_the_keyring_alone() {
    let Some(session) = Session::start() else {
        return;
    };
    let tokens = TokenServer::start(true, |req, n| match (req.path.as_str(), n) {
        ("/device", 0) => device_reply(1),
        ("/token", 1) => ok(json!({
            "access_token": "acc-f-1", "refresh_token": "ref-f-1",
            "token_type": "Bearer", "expires_in": 3600,
        })),
        _ => panic!("unexpected request {n}: {req:?}"),
    });
    let pop = pop_server_expecting(&xoauth2_line("acc-f-1"));
    let config = session.config(&tokens, pop.port(), "oauth-store = \"file\"");
    let r = session.pop3(&config, &["oauth", "login"]);
    r.expect_code(0);
    let file = session.token_file();
    assert!(
        r.stdout_str()
            .contains(&format!("stored in {}\n", file.display())),
        "{}",
        r.stdout_str()
    );
    let r = session.pop3(&config, &["stat"]);
    r.expect_code(0);
    pop.finish().unwrap().assert_complete();
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["refresh_token"], "ref-f-1");
    assert_eq!(session.keyring_item(), None);
}
