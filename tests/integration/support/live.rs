//! The live-mode harness shared by tests/live.rs and tests/live_trust.rs: a running
//! `replwatch` whose log and console are captured, convergence polling that is safe against
//! comparing a tree while it is written, and a machine-wide sysctl put back on drop.
//!
//! Nothing here depends on a sleep for correctness: callers poll for convergence (or for a
//! log record) with a generous deadline.

use super::*;

use std::fs::{self, File};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// How long a change may take to reach REPLICA.
pub const CONVERGE: Duration = Duration::from_secs(15);
/// How long the binary may take to do its initial pass and start watching.
pub const STARTUP: Duration = Duration::from_secs(20);
/// How long a matching replica must stay matching to count as converged.
pub const SETTLE: Duration = Duration::from_millis(50);
/// How long a record may take to reach the logfile (it is written by a background thread).
pub const LOG_WAIT: Duration = Duration::from_secs(20);

/// A running `replwatch` in live mode; SIGKILLed on drop if still running.
pub struct Live {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub log: PathBuf,
    pub status: Option<ExitStatus>,
}

impl Live {
    /// Live mode with a 50 ms debounce, no reconciliation during the test and a 5 min cap.
    pub fn start(env: &Env) -> Live {
        Live::with(env, "10m", "5m")
    }

    /// Live mode with a 50 ms debounce and the given `--interval` and `--duration`; returns
    /// once the initial pass is done and the log says it is watching.
    pub fn with(env: &Env, interval: &str, duration: &str) -> Live {
        Live::with_extra(env, interval, duration, &[])
    }

    /// `with`, plus `extra` flags (`--max-delete 5`, `-v`, ...).
    pub fn with_extra(env: &Env, interval: &str, duration: &str, extra: &[&str]) -> Live {
        let mut args = vec!["--debounce", "50ms", "-i", interval, "-d", duration];
        args.extend_from_slice(extra);
        Live::with_args(env, &args)
    }

    /// Live mode with exactly `args` after `-s SRC -r REP -l LOGS` (so a test can choose its
    /// own `--debounce`); returns once the log says it is watching.
    pub fn with_args(env: &Env, args: &[&str]) -> Live {
        let mut live = Live::spawn(env, env.cmd(args));
        live.wait_watching();
        live
    }

    /// Run `cmd` (a live-mode command line for `env`), capturing its console; does not wait.
    pub fn spawn(env: &Env, mut cmd: Command) -> Live {
        let root = env.root();
        let stdout = root.join("live.stdout");
        let stderr = root.join("live.stderr");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Live {
            child,
            stdout,
            stderr,
            log: env.logs.join("replwatch.log"),
            status: None,
        }
    }

    /// Wait until the log says the initial pass is done and the process is watching.
    pub fn wait_watching(&mut self) {
        self.wait_watching_within(STARTUP);
    }

    /// `wait_watching` with a deadline of its own (a big tree's initial pass).
    pub fn wait_watching_within(&mut self, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            if self.log_text().lines().any(is_watching_line) {
                return;
            }
            if self.poll_exit().is_some() {
                panic!("replwatch exited before watching");
            }
            if Instant::now() > end {
                panic!("replwatch not watching after {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    pub fn signal(&self, sig: Signal) {
        kill_process(self.pid(), sig).unwrap();
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The logfile's lines from the first "watching" record on (empty before it).
    pub fn log_after_watching(&self) -> Vec<String> {
        after_watching(&self.log_text())
    }

    /// How many log lines contain every one of `parts`.
    pub fn count_log(&self, parts: &[&str]) -> usize {
        self.log_text()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }

    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// The exit status, if the process ends within `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(s) = self.poll_exit() {
                return Some(s);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Poll the logfile until one line contains every one of `parts` (records are written by
    /// a background thread, a moment after the change they describe); fail otherwise.
    #[track_caller]
    pub fn wait_log(&self, parts: &[&str], deadline: Duration) {
        if !self.wait_log_count(parts, 1, deadline) {
            panic!("no log line with all of {parts:?} after {deadline:?}");
        }
    }

    /// Poll the logfile until at least `n` lines contain every one of `parts`.
    pub fn wait_log_count(&self, parts: &[&str], n: usize, deadline: Duration) -> bool {
        wait_until(deadline, || self.count_log(parts) >= n)
    }

    /// Everything the process said, for failure messages.
    pub fn output(&self) -> String {
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        format!(
            "exit {:?}\n--- log\n{}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.log_text(),
            read(&self.stdout),
            read(&self.stderr)
        )
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = kill_process(self.pid(), Signal::KILL);
            let _ = self.child.wait();
        }
        // A failing test shows what the process logged (any test, with
        // REPLWATCH_TEST_SHOW_LOG=1 and --nocapture).
        if std::thread::panicking() || std::env::var_os("REPLWATCH_TEST_SHOW_LOG").is_some() {
            eprintln!("{}", self.output());
        }
    }
}

/// The "watching" record that ends start-up (not "source is back; watching again").
pub fn is_watching_line(l: &str) -> bool {
    l.contains(" watching, ") || l.ends_with(" watching") || l.contains("\"msg\":\"watching\"")
}

/// The lines of `log` from the first "watching" record on.
pub fn after_watching(log: &str) -> Vec<String> {
    log.lines()
        .skip_while(|l| !is_watching_line(l))
        .map(str::to_owned)
        .collect()
}

/// Wait for REPLICA to mirror SRC; on timeout, fail with the differences (and, from
/// `Live`'s drop, the log).
#[track_caller]
pub fn converge(env: &Env) {
    converge_within(env, CONVERGE);
}

/// `wait_mirrored`, made safe against two races of comparing a tree that is being written:
///
/// - support's listing unwraps every stat, so it panics when an entry vanishes between
///   readdir and stat (a temp file renamed into place while a copy finishes); such a look
///   counts as "not yet";
/// - a walk is no snapshot: it reads a directory's mtime before its entries, so it can see
///   the mtime fixed by one operation and the entries left by the next, in flight, and match
///   for a moment. The trees must match on two looks `SETTLE` apart.
///
/// Then the strict check runs once more on what is by now a quiet tree.
#[track_caller]
pub fn converge_within(env: &Env, deadline: Duration) {
    if let Err(d) = try_converge(env, deadline) {
        panic!(
            "replica did not converge in {deadline:?}:\n{}",
            d.join("\n")
        );
    }
    assert_mirrored(&env.src, &env.rep);
}

/// `converge_within` that returns the remaining differences instead of failing.
pub fn try_converge(env: &Env, deadline: Duration) -> Result<(), Vec<String>> {
    let settled = || {
        quiet_diff(&env.src, &env.rep).is_empty() && {
            std::thread::sleep(SETTLE);
            quiet_diff(&env.src, &env.rep).is_empty()
        }
    };
    if wait_until(deadline, settled) {
        Ok(())
    } else {
        Err(quiet_diff(&env.src, &env.rep))
    }
}

/// `tree_diff` that reports a tree changing under the walk as a difference, not a panic.
pub fn quiet_diff(src: &Path, rep: &Path) -> Vec<String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| tree_diff(src, rep)))
        .unwrap_or_else(|_| vec!["(the tree changed while it was compared)".into()])
}

/// An environment with `files` (relative path, contents) in SRC before the run starts.
pub fn env_with(files: &[(&str, &[u8])]) -> Env {
    let env = Env::new();
    for (p, data) in files {
        write(env.src.join(p), data);
    }
    env
}

pub const QUEUED_EVENTS: &str = "/proc/sys/fs/inotify/max_queued_events";

/// A sysctl set for the test and put back on drop, even on panic. A lock file serialises
/// this across test processes too: two runs interleaving set/restore would otherwise leave
/// the lowered value behind for the whole machine.
pub struct Sysctl {
    path: &'static str,
    old: String,
    _lock: File,
}

impl Sysctl {
    pub fn set(path: &'static str, value: &str) -> std::io::Result<Sysctl> {
        let lock = File::create(std::env::temp_dir().join("replwatch-test-sysctl.lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let old = fs::read_to_string(path)?.trim().to_owned();
        fs::write(path, value)?;
        Ok(Sysctl {
            path,
            old,
            _lock: lock,
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = fs::write(self.path, &self.old) {
            eprintln!("cannot restore {} to {}: {e}", self.path, self.old);
        }
    }
}
