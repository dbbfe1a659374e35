//! The systemd notification protocol (`sd_notify(3)`): `READY=1`, `WATCHDOG=1`,
//! `RELOADING=1`, `STOPPING=1` and `STATUS=` as datagrams on the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Without the variable every
//! call does nothing.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, if anywhere.
#[derive(Debug)]
pub(crate) struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; an unusable value is reported once and then ignored.
    pub(crate) fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let open = || -> io::Result<(UnixDatagram, SocketAddr)> {
                let bytes = path.as_encoded_bytes();
                let addr = match bytes.strip_prefix(b"@") {
                    Some(name) => {
                        use std::os::linux::net::SocketAddrExt as _;
                        SocketAddr::from_abstract_name(name)?
                    }
                    None => SocketAddr::from_pathname(&path)?,
                };
                Ok((UnixDatagram::unbound()?, addr))
            };
            open()
                .inspect_err(|e| eprintln!("pop3: warning: NOTIFY_SOCKET: {e}"))
                .ok()
        });
        Self { target }
    }

    /// Sends one notification (newline-separated `KEY=VALUE` lines); failures are ignored,
    /// as `sd_notify` callers do: the service goes on without its supervisor's view.
    pub(crate) fn send(&self, state: &str) {
        if let Some((socket, addr)) = &self.target {
            let _ = socket.send_to_addr(state.as_bytes(), addr);
        }
    }

    /// Whether notifications go anywhere.
    pub(crate) fn is_active(&self) -> bool {
        self.target.is_some()
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if it is set for this process
/// (`$WATCHDOG_PID`, when present, must be ours).
pub(crate) fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
