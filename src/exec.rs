//! The parallel executor under a walk: directory pairs held open, copies batched to a small
//! pool of workers, and each directory's metadata set by whoever finishes the last operation in
//! it (writing into a directory changes its mtime, so its own metadata must come last).

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::fs::fstat;

use crate::plan::{Action, PlanOptions, dir_meta};
use crate::scan::entry_from_stat;
use crate::sink::{Sink, Target};
use crate::xattr;

/// A directory pair being worked on. Holding it open keeps every write inside the replica
/// directory that was opened, whatever is renamed or swapped in above it meanwhile.
pub(crate) struct DirState {
    pub(crate) src: OwnedFd,
    /// `None` only in a dry run, where a directory to be created does not exist yet.
    pub(crate) dst: Option<OwnedFd>,
    pub(crate) rel: PathBuf,
    /// Operations still running in this directory, plus one held by the walker.
    pub(crate) pending: AtomicUsize,
    /// This pass created the directory or wrote in it: its metadata fix is bookkeeping.
    pub(crate) touched: AtomicBool,
    /// Does a file created in the replica directory inherit an ACL (it has a default ACL)?
    /// Asked once, at its first copy (see `copy::CopyOptions::bare_temp`).
    pub(crate) inherits_acl: OnceLock<bool>,
    /// Queued subdirectories that open themselves through these handles (see
    /// `walk::HELD_DIRS`); only the walker counts them.
    pub(crate) queued: AtomicUsize,
}

impl DirState {
    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            src: self.src.as_fd(),
            dst: self.dst.as_ref().map(|d| d.as_fd()),
            rel: &self.rel,
            inherits_acl: Some(&self.inherits_acl),
        }
    }
}

/// Copies for one worker: several files of one directory at once, so the two workers mostly
/// create files in different directories (creating in the same one serialises them on its
/// lock: 22 % of CPU on ext4) and hand-offs between threads are per batch, not per file.
pub(crate) struct Job {
    pub(crate) dir: Arc<DirState>,
    pub(crate) actions: Vec<Action>,
}

/// A batch is sent when it holds this many files...
pub(crate) const BATCH_FILES: usize = 32;
/// ...or this many bytes (a big file travels alone, so the pool stays balanced).
pub(crate) const BATCH_BYTES: u64 = 4 << 20;

/// Run `f` with a pool of `workers` copy workers (none: `f` gets no sender and copies
/// inline). Returns once `f` is done and every job it sent has been carried out.
pub(crate) fn with_workers<R>(
    sink: &dyn Sink,
    workers: usize,
    plan: PlanOptions,
    f: impl FnOnce(Option<SyncSender<Job>>) -> R,
) -> R {
    std::thread::scope(|s| {
        let jobs = (workers > 0).then(|| {
            // Each queued job holds its directory's two handles: a short queue keeps the
            // descriptors a walk holds bounded (and the workers busy all the same).
            let (tx, rx) = sync_channel::<Job>(32);
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..workers {
                let rx = Arc::clone(&rx);
                // A named thread shows in `top -H` and profiles; if it cannot be started,
                // the others (or the walker, inline) do its share.
                let _ = std::thread::Builder::new()
                    .name("replwatch-copy".into())
                    .spawn_scoped(s, move || worker(sink, &rx, plan));
            }
            tx
        });
        // The sender was dropped by `f`: the workers end once the queue is empty; the scope
        // joins them.
        f(jobs)
    })
}

pub(crate) fn dup(fd: &OwnedFd) -> OwnedFd {
    // The walk takes ownership of its directory handles; the roots stay open for the next
    // path of a batch. A `dup` of an open fd fails only when out of descriptors.
    fd.try_clone().expect("duplicate a directory handle")
}

fn worker(sink: &dyn Sink, rx: &Mutex<Receiver<Job>>, plan: PlanOptions) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        for action in &job.actions {
            sink.apply(job.dir.target(), action);
        }
        release(sink, &job.dir, plan);
    }
}

/// Drop one hold on a directory; the last one out has its metadata brought up to date, as the
/// plan decides from the two directories as they are now (writing inside a directory changes
/// its mtime, so this waits for the last operation in it).
pub(crate) fn release(sink: &dyn Sink, dir: &DirState, plan: PlanOptions) {
    if dir.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
        let Some(dst) = &dir.dst else { return };
        let fix = (|| {
            let mut src = entry_from_stat(OsString::new(), &fstat(&dir.src)?);
            let mut rep = entry_from_stat(OsString::new(), &fstat(dst)?);
            if plan.xattrs.any() || plan.caps.perms {
                src.xattrs = Some(xattr::read(
                    xattr::Target::Fd(dir.src.as_fd()),
                    plan.xattrs,
                )?);
            }
            if plan.xattrs.any() {
                rep.xattrs = Some(xattr::read(xattr::Target::Fd(dst.as_fd()), plan.xattrs)?);
            }
            Ok(dir_meta(&src, &rep, plan))
        })();
        sink.finish_dir(dir.target(), fix, dir.touched.load(Ordering::Relaxed));
    }
}

pub(crate) fn new_state(
    src: OwnedFd,
    dst: Option<OwnedFd>,
    rel: PathBuf,
    touched: bool,
) -> Arc<DirState> {
    Arc::new(DirState {
        src,
        dst,
        rel,
        pending: AtomicUsize::new(1),
        touched: AtomicBool::new(touched),
        inherits_acl: OnceLock::new(),
        queued: AtomicUsize::new(0),
    })
}
