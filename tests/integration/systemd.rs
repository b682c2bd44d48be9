//! systemd's notify protocol (issue 14), against a datagram socket the test binds as
//! NOTIFY_SOCKET: READY=1 once the initial pass is done, STATUS= lines that follow what is
//! mirrored, WATCHDOG=1 when WATCHDOG_USEC is set, STOPPING=1 on the way out.
use crate::support::live::*;
use crate::support::*;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use rustix::process::Signal;

/// The datagrams received so far, one string each.
struct Notify {
    sock: UnixDatagram,
    got: Vec<String>,
}

impl Notify {
    fn bind(env: &Env) -> (Notify, std::path::PathBuf) {
        let path = env.root().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        (Notify { sock, got: vec![] }, path)
    }

    /// Read datagrams until one line of one of them satisfies `want`, or `deadline`.
    #[track_caller]
    fn wait(&mut self, deadline: Duration, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + deadline;
        loop {
            if let Some(l) = self.lines().find(|l| want(l)) {
                return l;
            }
            if Instant::now() > end {
                panic!(
                    "no matching notify line in {deadline:?}; got {:#?}",
                    self.got
                );
            }
            self.recv_one();
        }
    }

    /// Take one datagram, if one comes within the read timeout.
    fn recv_one(&mut self) {
        let mut buf = vec![0u8; 4096];
        if let Ok(n) = self.sock.recv(&mut buf) {
            self.got
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.got.iter().flat_map(|d| d.lines().map(str::to_owned))
    }

    fn count(&self, line: &str) -> usize {
        self.lines().filter(|l| l == line).count()
    }
}

#[test]
fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
    let env = env_with(&[("a.txt", b"alpha"), ("d/b.txt", b"beta")]);
    let (mut notify, path) = Notify::bind(&env);
    let mut cmd = env.cmd(&["--debounce", "50ms", "-i", "10m", "-d", "5m"]);
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID");
    let mut live = Live::spawn(&env, cmd);

    // READY=1 only once the initial pass is done: the replica is complete by then.
    notify.wait(STARTUP, |l| l == "READY=1");
    assert_mirrored(&env.src, &env.rep);
    notify.wait(LOG_WAIT, |l| l.starts_with("STATUS=watching"));

    write(env.src.join("new.txt"), "fresh");
    let status = notify.wait(CONVERGE, |l| {
        l.starts_with("STATUS=watching") && l.contains("last change: copy new.txt")
    });
    assert!(status.contains("no errors"), "{status}");

    // Half of WATCHDOG_USEC: a ping every 0.5 s while the loop turns.
    let end = Instant::now() + LOG_WAIT;
    while notify.count("WATCHDOG=1") < 3 {
        assert!(Instant::now() < end, "watchdog pings: {:#?}", notify.got);
        notify.recv_one();
    }
    assert_eq!(notify.count("READY=1"), 1, "{:#?}", notify.got);

    live.signal(Signal::TERM);
    notify.wait(LOG_WAIT, |l| l == "STOPPING=1");
    assert_eq!(live.wait_exit(LOG_WAIT).unwrap().code(), Some(0));
}

#[test]
fn a_paused_source_shows_in_status_and_no_watchdog_without_watchdog_usec() {
    let env = env_with(&[("a.txt", b"alpha")]);
    let (mut notify, path) = Notify::bind(&env);
    let mut cmd = env.cmd(&["--debounce", "50ms", "-i", "10m", "-d", "5m"]);
    cmd.env("NOTIFY_SOCKET", &path).env_remove("WATCHDOG_USEC");
    let _live = Live::spawn(&env, cmd);
    notify.wait(STARTUP, |l| l == "READY=1");

    std::fs::rename(&env.src, env.root().join("away")).unwrap();
    notify.wait(LOG_WAIT, |l| l.starts_with("STATUS=paused: SRC gone"));
    assert_eq!(notify.count("WATCHDOG=1"), 0, "{:#?}", notify.got);
}
