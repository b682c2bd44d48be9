//! Driving scan -> plan -> apply over a tree (a full pass) or over a few paths (watcher
//! events).
//!
//! The walk goes directory by directory, so memory is bounded by the largest directory and
//! the depth, never the whole tree. File copies go to a small pool of workers so both cores
//! are busy and scanning overlaps copying. A directory's own metadata is set by whoever
//! finishes the last operation inside it (writing into a directory changes its mtime).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use slog::{Logger, error, warn};

use crate::apply::{Applier, DirPair};
use crate::copy::CopyOptions;
use crate::entry::{Entry, Kind};
use crate::handle::{open_child_dir, open_dir_beneath, open_root};
use crate::plan::{Action, PlanOptions, plan_dir};
use crate::report::{Counters, Reporter, Summary, Trigger};
use crate::scan::{Listing, scan_dir, stat_entry};

/// Everything a pass needs to know, fixed for the run.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub plan: PlanOptions,
    pub copy: CopyOptions,
    /// Copy workers beside the walking thread; 0 copies inline.
    pub workers: usize,
    /// Let a pass empty a non-empty replica because the source is empty.
    pub allow_empty_source: bool,
}

/// Why a pass did not run at all. Per-entry faults are not here: they are counted in the
/// summary and the pass goes on.
#[derive(Debug)]
pub enum PassError {
    /// SRC is missing, unreadable, or was replaced: the replica was left untouched.
    Source(io::Error),
    /// REPLICA could not be created or opened.
    Replica(io::Error),
    /// SRC is empty while REPLICA is not: refused (an unmounted disk looks empty).
    EmptySource,
    /// A stop was requested; what was done is consistent, the rest is for the next run.
    Stopped,
}

impl std::fmt::Display for PassError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassError::Source(e) => write!(f, "source unavailable, replica left untouched: {e}"),
            PassError::Replica(e) => write!(f, "replica unavailable: {e}"),
            PassError::EmptySource => f.write_str(
                "source is empty but replica is not: refusing to empty the replica \
                 (is the source unmounted? pass --allow-empty-source if this is intended)",
            ),
            PassError::Stopped => f.write_str("stopped"),
        }
    }
}

/// The roots and options of a run; passes and path syncs are made from it.
pub struct Engine {
    pub source: PathBuf,
    pub replica: PathBuf,
    pub opts: SyncOptions,
    pub log: Logger,
    pub stop: Arc<AtomicBool>,
}

/// A directory pair being worked on. Holding it open keeps every write inside the replica
/// directory that was opened, whatever is renamed or swapped in above it meanwhile.
struct DirState {
    src: OwnedFd,
    dst: OwnedFd,
    rel: PathBuf,
    /// Operations still running in this directory, plus one held by the walker.
    pending: AtomicUsize,
    /// This pass created the directory or wrote in it: its metadata fix is bookkeeping.
    touched: AtomicBool,
}

impl DirState {
    fn pair(&self) -> DirPair<'_> {
        DirPair {
            src: self.src.as_fd(),
            dst: self.dst.as_fd(),
            rel: &self.rel,
        }
    }
}

struct Task {
    parent: Arc<DirState>,
    name: OsString,
    fresh: bool,
}

struct Job {
    dir: Arc<DirState>,
    action: Action,
}

struct Walk<'a> {
    applier: Applier<'a>,
    jobs: Option<SyncSender<Job>>,
    stack: Vec<Task>,
}

impl Engine {
    /// Open SRC by path, now: a root that was deleted, moved or replaced must not be read
    /// through a stale handle (it would list as empty).
    fn open_source_root(&self) -> Result<OwnedFd, PassError> {
        open_root(&self.source).map_err(PassError::Source)
    }

    fn open_replica_root(&self) -> Result<OwnedFd, PassError> {
        match open_root(&self.replica) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.replica).map_err(PassError::Replica)?;
                open_root(&self.replica).map_err(PassError::Replica)
            }
            other => other.map_err(PassError::Replica),
        }
    }

    fn reporter(&self, trigger: Trigger) -> Reporter {
        Reporter {
            log: self.log.clone(),
            trigger,
        }
    }

    /// One full reconciliation of the whole tree.
    pub fn full_pass(&self, trigger: Trigger) -> Result<Summary, PassError> {
        let started = Instant::now();
        let src = self.open_source_root()?;
        // Read SRC before touching REPLICA: a source that cannot be listed changes nothing.
        let src_list = scan_dir(&src).map_err(PassError::Source)?;
        let dst = self.open_replica_root()?;
        let dst_list = scan_dir(&dst).map_err(PassError::Replica)?;
        if src_list.entries.is_empty()
            && src_list.errors.is_empty()
            && !self.opts.allow_empty_source
            && dst_list
                .entries
                .iter()
                .any(|e| !crate::tempname::is_temp_name(&e.name))
        {
            return Err(PassError::EmptySource);
        }
        let root = Arc::new(DirState {
            src,
            dst,
            rel: PathBuf::new(),
            pending: AtomicUsize::new(1),
            touched: AtomicBool::new(false),
        });
        let reporter = self.reporter(trigger);
        let counters = Counters::default();
        self.with_walk(&reporter, &counters, |walk| {
            walk.dir(root, src_list, dst_list);
            walk.drain();
        });
        self.finish(&reporter, &counters, started)
    }

    /// Bring the given SRC-relative paths (files or whole subtrees) up to date. Each is
    /// planned and applied exactly as in a full pass, limited to that path.
    pub fn sync_paths(&self, paths: &[PathBuf], trigger: Trigger) -> Result<Summary, PassError> {
        let started = Instant::now();
        let src_root = self.open_source_root()?;
        let dst_root = self.open_replica_root()?;
        let reporter = self.reporter(trigger);
        let counters = Counters::default();
        self.with_walk(&reporter, &counters, |walk| {
            for rel in paths {
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                walk.path(&src_root, &dst_root, rel);
                walk.drain();
            }
        });
        self.finish(&reporter, &counters, started)
    }

    fn finish(
        &self,
        reporter: &Reporter,
        counters: &Counters,
        started: Instant,
    ) -> Result<Summary, PassError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(PassError::Stopped);
        }
        let summary = counters.summary();
        reporter.summary(&summary, started.elapsed());
        Ok(summary)
    }

    fn with_walk(
        &self,
        reporter: &Reporter,
        counters: &Counters,
        body: impl FnOnce(&mut Walk<'_>),
    ) {
        let applier = || Applier {
            reporter,
            counters,
            plan: self.opts.plan,
            copy: self.opts.copy,
            stop: &self.stop,
        };
        std::thread::scope(|s| {
            let jobs = (self.opts.workers > 0).then(|| {
                let (tx, rx) = sync_channel::<Job>(256);
                let rx = Arc::new(Mutex::new(rx));
                for _ in 0..self.opts.workers {
                    let rx = Arc::clone(&rx);
                    let applier = applier();
                    s.spawn(move || worker(&applier, &rx));
                }
                tx
            });
            let mut walk = Walk {
                applier: applier(),
                jobs,
                stack: Vec::new(),
            };
            body(&mut walk);
            // Dropping the sender ends the workers once the queue is empty; the scope joins.
        });
    }
}

fn worker(applier: &Applier<'_>, rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        applier.apply(job.dir.pair(), &job.action);
        release(applier, &job.dir);
    }
}

/// Drop one hold on a directory; the last one out sets its metadata.
fn release(applier: &Applier<'_>, dir: &DirState) {
    if dir.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
        applier.finish_dir(dir.pair(), dir.touched.load(Ordering::Relaxed));
    }
}

impl Walk<'_> {
    /// Plan and apply one directory pair's listings, and queue its subdirectories.
    fn dir(&mut self, state: Arc<DirState>, src: Listing, dst: Listing) {
        let a = &self.applier;
        a.counters
            .scanned
            .fetch_add(src.entries.len() as u64, Ordering::Relaxed);
        let mut keep = Vec::with_capacity(src.errors.len());
        for (name, err) in src.errors {
            a.reporter
                .fault(a.counters, "scan", &state.rel.join(&name), &err);
            keep.push(name);
        }
        let actions = plan_dir(&src.entries, &dst.entries, &keep, a.plan);
        if !actions.is_empty() {
            state.touched.store(true, Ordering::Relaxed);
        }
        let mut failed: Vec<&OsString> = Vec::new();
        let mut made: Vec<&OsString> = Vec::new();
        for action in &actions {
            match action {
                Action::CopyFile { .. } | Action::CheckContent { .. } => {
                    if let Some(tx) = &self.jobs {
                        state.pending.fetch_add(1, Ordering::AcqRel);
                        let job = Job {
                            dir: Arc::clone(&state),
                            action: action.clone(),
                        };
                        if let Err(back) = tx.send(job) {
                            state.pending.fetch_sub(1, Ordering::AcqRel);
                            a.apply(state.pair(), &back.0.action);
                        }
                        continue;
                    }
                    a.apply(state.pair(), action);
                }
                _ => {
                    let ok = a.apply(state.pair(), action);
                    match (ok, action) {
                        (false, _) => failed.push(action.name()),
                        (true, Action::MakeDir { name, .. }) => made.push(name),
                        _ => {}
                    }
                }
            }
        }
        for e in src.entries.iter().rev() {
            if e.kind == Kind::Dir && !failed.contains(&&e.name) {
                self.stack.push(Task {
                    parent: Arc::clone(&state),
                    fresh: made.contains(&&e.name),
                    name: e.name.clone(),
                });
            }
        }
        release(&self.applier, &state);
    }

    /// Work through queued subdirectories, depth first.
    fn drain(&mut self) {
        while let Some(task) = self.stack.pop() {
            if self.applier.stop.load(Ordering::Relaxed) {
                self.stack.clear();
                return;
            }
            let rel = task.parent.rel.join(&task.name);
            let a = &self.applier;
            let opened = (|| {
                let src = open_child_dir(&task.parent.src, &task.name)
                    .map_err(|e| ("open source dir", e))?;
                let src_list = scan_dir(&src).map_err(|e| ("scan", e))?;
                let dst = open_child_dir(&task.parent.dst, &task.name)
                    .map_err(|e| ("open replica dir", e))?;
                let dst_list = scan_dir(&dst).map_err(|e| ("scan replica", e))?;
                Ok::<_, (&'static str, io::Error)>((src, src_list, dst, dst_list))
            })();
            match opened {
                Ok((src, src_list, dst, dst_list)) => {
                    let state = Arc::new(DirState {
                        src,
                        dst,
                        rel,
                        pending: AtomicUsize::new(1),
                        touched: AtomicBool::new(task.fresh),
                    });
                    self.dir(state, src_list, dst_list);
                }
                // Never delete on the strength of a failed scan: the subtree is left alone.
                Err((what, e)) if e.kind() == io::ErrorKind::NotFound => {
                    warn!(a.reporter.log, "{} vanished during the pass: {}", what, rel.display();
                        "path" => %rel.display());
                }
                Err((what, e)) => a.reporter.fault(a.counters, what, &rel, &e),
            }
        }
    }

    /// Sync one SRC-relative path: find the deepest directory that exists on both sides on
    /// the way to it, then plan the one name below it (and its subtree, if a directory).
    fn path(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, rel: &Path) {
        let comps: Vec<&std::ffi::OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let a = &self.applier;
        if comps.is_empty() {
            // The root itself: a full listing of it.
            let lists = (|| Ok::<_, io::Error>((scan_dir(src_root)?, scan_dir(dst_root)?)))();
            let (Ok(s), Ok(d)) = (
                open_dir_beneath(src_root, Path::new("")),
                open_dir_beneath(dst_root, Path::new("")),
            ) else {
                return;
            };
            match lists {
                Ok((sl, dl)) => self.dir(new_state(s, d, PathBuf::new()), sl, dl),
                Err(e) => a.reporter.fault(a.counters, "scan", Path::new("."), &e),
            }
            return;
        }
        let mut depth = comps.len() - 1;
        let (src, dst) = loop {
            let p: PathBuf = comps[..depth].iter().collect();
            match (
                open_dir_beneath(src_root, &p),
                open_dir_beneath(dst_root, &p),
            ) {
                (Ok(s), Ok(d)) => break (s, d),
                _ if depth == 0 => {
                    error!(a.reporter.log, "cannot open the roots"; "path" => %rel.display());
                    return;
                }
                _ => depth -= 1,
            }
        };
        let base: PathBuf = comps[..depth].iter().collect();
        let name = comps[depth];
        let mut src_list = Listing::default();
        match stat_entry(&src, name) {
            Ok(e) => src_list.entries.extend(e),
            Err(e) => src_list.errors.push((name.to_owned(), e)),
        }
        let mut dst_list = Listing::default();
        match stat_entry(&dst, name) {
            Ok(e) => dst_list.entries.extend(e),
            Err(e) => {
                a.reporter
                    .fault(a.counters, "stat replica", &base.join(name), &e);
                return;
            }
        }
        self.dir(new_state(src, dst, base), src_list, dst_list);
    }
}

fn new_state(src: OwnedFd, dst: OwnedFd, rel: PathBuf) -> Arc<DirState> {
    Arc::new(DirState {
        src,
        dst,
        rel,
        pending: AtomicUsize::new(1),
        touched: AtomicBool::new(true),
    })
}

/// Entries of a listing, for callers that only need the entries.
pub fn entries(l: &Listing) -> &[Entry] {
    &l.entries
}
