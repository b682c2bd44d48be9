//! The live process's status record: `LOGDIR/replwatch.status.json`, kept current so that
//! "is the replica up to date right now, and if not, what is failing?" has an answer without
//! reading the log (`replwatch status`, monitoring scripts).
//!
//! A file rather than a socket: it needs no server thread, works for any user who can read
//! LOGDIR, and says something even after the process died (the reader sees a stale record
//! and says so). It is replaced atomically (a temp file written, then renamed over the
//! record) through the LOGDIR handle, never following a symlink, so a reader never sees half
//! a record and a planted link cannot redirect the write.
//!
//! The run loop writes it when what it says changes, and at least every
//! [`HEARTBEAT`] otherwise.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::logfile::LogDir;

/// The record's name inside LOGDIR.
pub const STATUS_FILE: &str = "replwatch.status.json";

/// How often an unchanged record is written again (its `updated` moves on).
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How many failing entries the record lists (it counts them all).
pub const FAILING_LISTED: usize = 20;

/// What the live process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The initial pass is running.
    Starting,
    /// Mirroring changes as they come.
    Watching,
    /// A full pass (periodic, or after lost events) is running; changes are still mirrored.
    Reconciling,
    /// SRC is gone, unmounted or replaced: REPLICA is left alone until it is back.
    PausedSourceGone,
    /// REPLICA's root is gone or moved.
    PausedReplicaGone,
    /// The process ended (the record stays as its last word).
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Watching => "watching",
            State::Reconciling => "reconciling",
            State::PausedSourceGone => "paused: SRC gone",
            State::PausedReplicaGone => "paused: REPLICA gone",
            State::Stopped => "stopped",
        }
    }
}

/// The last full pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPass {
    pub trigger: String,
    pub finished: String,
    pub scanned: u64,
    pub created: u64,
    pub updated: u64,
    pub meta: u64,
    pub removed: u64,
    pub renamed: u64,
    pub bytes: u64,
    pub errors: u64,
    pub elapsed_ms: u64,
}

/// The last change a watcher event led to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastChange {
    pub path: String,
    pub action: String,
    pub at: String,
    /// From the first event of its burst to the change being done (the debounce included).
    pub lag_ms: u64,
}

/// An entry not mirrored, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    pub path: String,
    pub error: String,
}

/// Work known but not done yet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWork {
    /// Changes seen by the watcher and waiting for the debounce.
    pub queued: bool,
    /// Files being written, to be copied once the writes pause.
    pub deferred: usize,
    /// Why a full pass must still finish before the replica is known complete.
    pub full_pass_needed: Option<String>,
}

/// The record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22): with
    /// the pid, it tells this process from a later one given the same pid.
    pub start_ticks: u64,
    pub source: PathBuf,
    pub replica: PathBuf,
    pub state: State,
    /// Why paused, or why the run ended.
    pub detail: Option<String>,
    /// When `state` began (RFC 3339, UTC).
    pub since: String,
    /// When the record was written.
    pub updated: String,
    pub last_pass: Option<LastPass>,
    pub last_change: Option<LastChange>,
    /// How many entries are failing; the first [`FAILING_LISTED`] are in `failing`.
    pub failing_count: usize,
    pub failing: Vec<Failing>,
    pub pending: PendingWork,
}

impl Status {
    /// The record in one line, for systemd's `STATUS=` (what `systemctl status` shows).
    pub fn one_line(&self) -> String {
        let mut parts = vec![match (&self.state, &self.detail) {
            (State::Starting, _) => "starting: initial pass running".to_owned(),
            (State::PausedSourceGone | State::PausedReplicaGone, Some(why)) => {
                format!("{} ({why}); replica left as it is", self.state.as_str())
            }
            (state, _) => state.as_str().to_owned(),
        }];
        if let Some(c) = &self.last_change {
            parts.push(format!(
                "last change: {} {} at {} ({} ms after its event)",
                c.action, c.path, c.at, c.lag_ms
            ));
        }
        parts.push(match self.failing_count {
            0 => "no errors".to_owned(),
            n => format!(
                "{n} entries failing (e.g. {}: {})",
                self.failing.first().map_or("", |f| f.path.as_str()),
                self.failing.first().map_or("", |f| f.error.as_str())
            ),
        });
        parts.join("; ")
    }
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The start time of process `pid`, in clock ticks since boot.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Keeps the record current: writes it when it changes, or every [`HEARTBEAT`].
pub struct Keeper {
    dir: Arc<LogDir>,
    last: Option<(Status, Instant)>,
    /// The first write error, said once by the caller.
    pub error: Option<io::Error>,
}

impl Keeper {
    pub fn new(dir: Arc<LogDir>) -> Keeper {
        Keeper {
            dir,
            last: None,
            error: None,
        }
    }

    /// The state `status` was in before (to keep `since`), if any.
    pub fn previous(&self) -> Option<&Status> {
        self.last.as_ref().map(|(s, _)| s)
    }

    /// Write `status` if it differs from the last written (but for `updated`), or the
    /// heartbeat is due. Returns a write error the first time one happens.
    pub fn publish(&mut self, mut status: Status) -> Option<io::Error> {
        let now = Instant::now();
        if let Some((old, at)) = &self.last {
            let mut same = old.clone();
            same.updated.clone_from(&status.updated);
            if same == status && now.duration_since(*at) < HEARTBEAT {
                return None;
            }
        }
        status.updated = timestamp(SystemTime::now());
        let result = write_atomically(&self.dir, STATUS_FILE, &status);
        self.last = Some((status, now));
        match result {
            Ok(()) => None,
            Err(e) if self.error.is_none() => {
                self.error = Some(io::Error::new(e.kind(), e.to_string()));
                Some(e)
            }
            Err(_) => None,
        }
    }
}

/// Write `status` as `name` in `dir`: a temp file, then a rename over the old record.
fn write_atomically(dir: &LogDir, name: &str, status: &Status) -> io::Result<()> {
    let tmp = format!(".{name}.tmp");
    let fd = dir.fd();
    // A temp file left by a crash (or anything planted under its name): the name is
    // removed, never followed.
    match rustix::fs::unlinkat(fd, tmp.as_str(), AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(named(dir, &tmp, e.into())),
    }
    let file = rustix::fs::openat(
        fd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| named(dir, &tmp, e.into()))?;
    let mut file = std::fs::File::from(file);
    let mut text = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
    text.push(b'\n');
    file.write_all(&text).map_err(|e| named(dir, &tmp, e))?;
    drop(file);
    rustix::fs::renameat(fd, tmp.as_str(), fd, name).map_err(|e| named(dir, name, e.into()))
}

fn named(dir: &LogDir, name: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{}: {e}", dir.path().join(name).display()),
    )
}

/// Read the record in `log_dir` (not following a symlink).
pub fn read(log_dir: &Path) -> io::Result<Status> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = log_dir.join(STATUS_FILE);
    let text = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .and_then(|mut f| {
            let mut s = String::new();
            io::Read::read_to_string(&mut f, &mut s).map(|_| s)
        })
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a status record: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Status {
        Status {
            pid: std::process::id(),
            start_ticks: start_ticks(std::process::id()).unwrap(),
            source: "/s".into(),
            replica: "/r".into(),
            state: State::Watching,
            detail: None,
            since: timestamp(SystemTime::now()),
            updated: String::new(),
            last_pass: None,
            last_change: None,
            failing_count: 0,
            failing: vec![],
            pending: PendingWork::default(),
        }
    }

    #[test]
    fn the_record_is_replaced_whole_and_reads_back() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = Arc::new(LogDir::open(t.path()).unwrap());
        // A symlink planted as the record is replaced, its target left alone.
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join(STATUS_FILE)).unwrap();
        let mut k = Keeper::new(dir);
        assert!(k.publish(sample()).is_none());
        let back = read(t.path()).unwrap();
        assert_eq!(back.state, State::Watching);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let mut s = sample();
        s.state = State::PausedSourceGone;
        assert!(k.publish(s).is_none());
        assert_eq!(read(t.path()).unwrap().state, State::PausedSourceGone);
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn start_ticks_tell_processes_apart() {
        let me = start_ticks(std::process::id()).unwrap();
        assert!(me > 0);
        assert_eq!(start_ticks(std::process::id()), Some(me));
    }
}
