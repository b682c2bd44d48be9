//! systemd's notify protocol (`Type=notify`), through the `sd-notify` crate: `READY=1` once
//! the watcher is up and the initial pass is done, a `STATUS=` line kept current (what
//! `systemctl status` shows), `WATCHDOG=1` when `WatchdogSec=` is set, and `STOPPING=1`.
//!
//! The watchdog is pinged from the run loop itself, at half of `WATCHDOG_USEC`, never from a
//! thread of its own: a thread would keep pinging while the loop hangs (on a dead NFS
//! mount, say), which is exactly what the watchdog is there to catch. The loop wakes at
//! least every second, and the ping's due time is one of the times it wakes for; only a
//! single event batch (a big file copied on the loop thread) can hold it longer, so
//! `WatchdogSec=` must exceed the longest copy a batch may make (full passes run on their own
//! thread and do not count).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::escape;

pub struct Systemd {
    enabled: bool,
    /// How often to ping the watchdog: half of `WATCHDOG_USEC`.
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
    ready: bool,
    last_status: String,
    /// The first failure to notify, said once by the caller.
    failed: bool,
}

impl Systemd {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
    pub fn from_env() -> Systemd {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let ping_every = enabled
            .then(sd_notify::watchdog_enabled)
            .flatten()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2);
        Systemd {
            enabled,
            ping_every,
            next_ping: ping_every.map(|_| Instant::now()),
            ready: false,
            last_status: String::new(),
            failed: false,
        }
    }

    /// When the loop must wake next to ping the watchdog.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_ping
    }

    /// Called from the run loop on every turn: pings the watchdog when due, keeps `STATUS=`
    /// current, and says `READY=1` the first time `ready` is true. Returns an error the first
    /// time sending fails.
    pub fn tick(&mut self, ready: bool, status: &str) -> Option<std::io::Error> {
        if !self.enabled {
            return None;
        }
        let mut states = Vec::new();
        let now = Instant::now();
        if let (Some(every), Some(due)) = (self.ping_every, self.next_ping)
            && now >= due
        {
            states.push(NotifyState::Watchdog);
            self.next_ping = Some(now + every);
        }
        let status = escape::line(status);
        let changed = status != self.last_status;
        if changed {
            self.last_status = status.into_owned();
        }
        let status = self.last_status.clone();
        if changed {
            states.push(NotifyState::Status(&status));
        }
        if ready && !self.ready {
            self.ready = true;
            states.push(NotifyState::Ready);
        }
        self.send(&states)
    }

    /// Says `STOPPING=1` and the last status.
    pub fn stopping(&mut self, status: &str) -> Option<std::io::Error> {
        if !self.enabled {
            return None;
        }
        let status = escape::line(status);
        self.send(&[NotifyState::Stopping, NotifyState::Status(&status)])
    }

    fn send(&mut self, states: &[NotifyState<'_>]) -> Option<std::io::Error> {
        if states.is_empty() {
            return None;
        }
        match sd_notify::notify(states) {
            Ok(()) => None,
            Err(e) if !self.failed => {
                self.failed = true;
                // No path-less errors: say which socket.
                let socket = std::env::var_os("NOTIFY_SOCKET").unwrap_or_default();
                Some(std::io::Error::new(
                    e.kind(),
                    format!("NOTIFY_SOCKET {}: {e}", socket.to_string_lossy()),
                ))
            }
            Err(_) => None,
        }
    }
}
