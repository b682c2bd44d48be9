//! Driving scan -> plan -> apply over a tree (a full pass) or over a few paths (watcher
//! events).
//!
//! The walk goes directory by directory, so memory is bounded by the largest directory and
//! the depth, never the whole tree. File copies go to a small pool of workers so both cores
//! are busy and scanning overlaps copying. A directory's own metadata is set by whoever
//! finishes the last operation inside it (writing into a directory changes its mtime).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use slog::{Logger, warn};

use crate::apply::{Applier, DirPair};
use crate::copy::CopyOptions;
use crate::entry::Kind;
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
    /// Created by this pass.
    fresh: bool,
    /// Scan and plan its contents; otherwise only its own metadata is brought up to date.
    scan: bool,
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
        let root = new_state(src, dst, PathBuf::new(), false);
        let reporter = self.reporter(trigger);
        let counters = Counters::default();
        self.with_walk(&reporter, &counters, |walk| {
            walk.dir(root, src_list, dst_list, true);
            walk.drain();
        });
        self.finish(&reporter, &counters, started)
    }

    /// Bring the given SRC-relative changes up to date: renames first, in the order they
    /// happened, then paths. Each is planned and applied exactly as in a full pass, limited to
    /// that path (and its subtree when `deep`).
    pub fn sync_batch(&self, batch: &Batch, trigger: Trigger) -> Result<Summary, PassError> {
        let started = Instant::now();
        let src_root = self.open_source_root()?;
        let dst_root = self.open_replica_root()?;
        let reporter = self.reporter(trigger);
        let counters = Counters::default();
        self.with_walk(&reporter, &counters, |walk| {
            for (from, to) in &batch.renames {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                walk.rename(&src_root, &dst_root, from, to);
                walk.drain();
            }
            for (rel, deep) in &batch.paths {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                walk.path(&src_root, &dst_root, rel, *deep);
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
    /// Plan and apply one directory pair's listings, and queue its subdirectories: all of
    /// them when `deep`, else only those this call creates (a new directory is always walked
    /// whole: files made in it before its watch existed have no events).
    fn dir(&mut self, state: Arc<DirState>, src: Listing, dst: Listing, deep: bool) {
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
                let fresh = made.contains(&&e.name);
                self.stack.push(Task {
                    parent: Arc::clone(&state),
                    fresh,
                    scan: deep || fresh,
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
                let dst = open_child_dir(&task.parent.dst, &task.name)
                    .map_err(|e| ("open replica dir", e))?;
                if !task.scan {
                    return Ok((src, Listing::default(), dst, None));
                }
                let src_list = scan_dir(&src).map_err(|e| ("scan", e))?;
                let dst_list = scan_dir(&dst).map_err(|e| ("scan replica", e))?;
                Ok::<_, (&'static str, io::Error)>((src, src_list, dst, Some(dst_list)))
            })();
            match opened {
                Ok((src, src_list, dst, dst_list)) => {
                    let state = new_state(src, dst, rel, task.fresh);
                    match dst_list {
                        Some(dst_list) => self.dir(state, src_list, dst_list, true),
                        None => release(&self.applier, &state),
                    }
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
    /// the way to it, then plan the one name below it (and its subtree, if `deep` or if that
    /// directory had to be created). The root itself only gets its metadata checked: a deep
    /// change of the root is a full pass.
    fn path(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, rel: &Path, deep: bool) {
        let comps = components(rel);
        let a = &self.applier;
        let mut depth = comps.len().saturating_sub(1);
        let (src, dst) = loop {
            let p: PathBuf = comps[..depth].iter().collect();
            match (
                open_dir_beneath(src_root, &p),
                open_dir_beneath(dst_root, &p),
            ) {
                (Ok(s), Ok(d)) => break (s, d),
                (Err(e), _) | (_, Err(e)) if depth == 0 => {
                    a.reporter
                        .fault(a.counters, "open root", Path::new("."), &e);
                    return;
                }
                _ => depth -= 1,
            }
        };
        let base: PathBuf = comps[..depth].iter().collect();
        let Some(name) = comps.get(depth) else {
            // The root: its metadata only.
            release(&self.applier, &new_state(src, dst, base, false));
            return;
        };
        // An ancestor was missing on one side: the whole subtree from there on is new.
        let deep = deep || depth + 1 < comps.len();
        let mut src_list = Listing::default();
        match stat_entry(&src, name) {
            Ok(e) => src_list.entries.extend(e),
            Err(e) => src_list.errors.push((name.to_os_string(), e)),
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
        self.dir(new_state(src, dst, base, true), src_list, dst_list, deep);
    }

    /// Mirror a rename seen in SRC as a rename in REPLICA, when the replica entry under the
    /// old name still matches what SRC now holds under the new one (no recopy). Otherwise, or
    /// if the rename fails, fall back to syncing both paths: copy + delete.
    fn rename(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, from: &Path, to: &Path) {
        let renamed = self.try_rename(src_root, dst_root, from, to);
        // Then fix both parents' metadata, and re-verify a renamed directory's subtree (its
        // children's own events may have named the old path).
        self.path(src_root, dst_root, from, false);
        self.path(src_root, dst_root, to, renamed != Some(Kind::File));
    }

    fn try_rename(
        &mut self,
        src_root: &OwnedFd,
        dst_root: &OwnedFd,
        from: &Path,
        to: &Path,
    ) -> Option<Kind> {
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let src_dir = open_dir_beneath(src_root, &to_dir).ok()?;
        let now = stat_entry(&src_dir, to_name).ok()??;
        let dst_from_dir = open_dir_beneath(dst_root, &from_dir).ok()?;
        let dst_to_dir = open_dir_beneath(dst_root, &to_dir).ok()?;
        let old = stat_entry(&dst_from_dir, from_name).ok()??;
        let matches = old.kind == now.kind
            && match old.kind {
                Kind::File => old.size == now.size && old.mtime == now.mtime,
                Kind::Symlink => old.target == now.target,
                Kind::Dir => true,
                Kind::Special => false,
            };
        if !matches {
            return None;
        }
        let froms = (dst_from_dir.as_fd(), from_name);
        let tos = (dst_to_dir.as_fd(), to_name);
        self.applier
            .rename(froms, tos, (from, to), old.kind)
            .then_some(old.kind)
    }
}

fn components(rel: &Path) -> Vec<&OsStr> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Parent and name of a non-root relative path.
fn split(rel: &Path) -> Option<(PathBuf, &OsStr)> {
    let comps = components(rel);
    let (name, parent) = comps.split_last()?;
    Some((parent.iter().collect(), name))
}

/// A batch of SRC-relative changes from the watcher.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// (from, to), in the order they happened.
    pub renames: Vec<(PathBuf, PathBuf)>,
    /// Paths to bring up to date; `true` to include the whole subtree.
    pub paths: Vec<(PathBuf, bool)>,
}

fn new_state(src: OwnedFd, dst: OwnedFd, rel: PathBuf, touched: bool) -> Arc<DirState> {
    Arc::new(DirState {
        src,
        dst,
        rel,
        pending: AtomicUsize::new(1),
        touched: AtomicBool::new(touched),
    })
}
