//! Driving scan -> plan -> apply over a tree (a full pass) or over a few paths (watcher
//! events).
//!
//! The walk goes directory by directory, so memory is bounded by the largest directory and
//! the depth, never the whole tree. File copies go to a small pool of workers so both cores
//! are busy and scanning overlaps copying. A directory's own metadata is set by whoever
//! finishes the last operation inside it (writing into a directory changes its mtime).
//! Decisions go to a [`Sink`]: `apply` for a real pass, a dry run for `--dry-run` and for the
//! `--max-delete` look-ahead.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::fs::fstat;
use slog::{Logger, info, o, warn};

use crate::apply::Applier;
use crate::config::Config;
use crate::copy::CopyOptions;
use crate::entry::{Entry, Kind};
use crate::exclude::Excludes;
use crate::handle::{open_child_dir, open_dir_beneath};
use crate::plan::{Action, PlanOptions, dir_meta, plan_dir, rename_matches};
use crate::queue::Batch;
use crate::report::{Counters, PassReport, Reporter, Trigger};
use crate::roots::{ReplicaMoved, ReplicaRoot, SourceProblem, SourceRoot};
use crate::scan::{Listing, entry_from_stat, scan_dir, stat_entry};
use crate::sink::{DryRun, Sink, Target};
use crate::tempname::is_temp_name;

/// Everything a pass needs to know, fixed for the run.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub plan: PlanOptions,
    pub copy: CopyOptions,
    /// Copy workers beside the walking thread; 0 copies inline.
    pub workers: usize,
    /// Let a pass empty a non-empty replica because the source is empty.
    pub allow_empty_source: bool,
    pub excludes: Excludes,
    /// Report what would be done instead of doing it.
    pub dry_run: bool,
    /// Refuse a pass or batch that would remove more entries than this.
    pub max_delete: Option<u64>,
    /// A copy that saw its source being written is deferred for the caller to retry (live
    /// mode) rather than counted as a fault (`--once`, which has no later).
    pub defer: bool,
}

/// Why a pass did not run at all. Per-entry faults are not here: they are counted in the
/// report and the pass goes on.
#[derive(Debug)]
pub enum PassError {
    /// SRC is missing, unmounted, replaced or suddenly empty: the replica was left untouched.
    Source(SourceProblem),
    /// REPLICA could not be created or opened at start.
    Replica(io::Error),
    /// REPLICA's path leads somewhere else now: nothing was written.
    ReplicaMoved(ReplicaMoved),
    /// The pass would remove more than `--max-delete` entries: nothing was done.
    TooManyDeletes { would: u64, max: u64 },
    /// A stop was requested; what was done is consistent, the rest is for the next run.
    Stopped,
}

impl std::fmt::Display for PassError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassError::Source(SourceProblem::Empty) => SourceProblem::Empty.fmt(f),
            PassError::Source(e) => write!(f, "source unavailable, replica left untouched: {e}"),
            PassError::Replica(e) => write!(f, "replica unavailable: {e}"),
            PassError::ReplicaMoved(e) => e.fmt(f),
            PassError::TooManyDeletes { would, max } => write!(
                f,
                "pass would remove {would} entries, more than --max-delete {max}: nothing was changed"
            ),
            PassError::Stopped => f.write_str("stopped"),
        }
    }
}

impl std::error::Error for PassError {}

/// The roots and options of a run; passes and path syncs are made from it.
pub struct Engine {
    /// SRC's path and the identity it must keep.
    pub source: SourceRoot,
    /// REPLICA, opened once and held: never reopened by path.
    pub replica: ReplicaRoot,
    pub opts: SyncOptions,
    pub log: Logger,
    pub stop: Arc<AtomicBool>,
    /// Where `--dry-run` prints its itemized actions.
    pub out: Mutex<Box<dyn Write + Send>>,
    /// The running pass's counters, for a progress display.
    pub current: Mutex<Option<Arc<Counters>>>,
}

/// A directory pair being worked on. Holding it open keeps every write inside the replica
/// directory that was opened, whatever is renamed or swapped in above it meanwhile.
struct DirState {
    src: OwnedFd,
    /// `None` only in a dry run, where a directory to be created does not exist yet.
    dst: Option<OwnedFd>,
    rel: PathBuf,
    /// Operations still running in this directory, plus one held by the walker.
    pending: AtomicUsize,
    /// This pass created the directory or wrote in it: its metadata fix is bookkeeping.
    touched: AtomicBool,
}

impl DirState {
    fn target(&self) -> Target<'_> {
        Target {
            src: self.src.as_fd(),
            dst: self.dst.as_ref().map(|d| d.as_fd()),
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

/// Copies for one worker: several files of one directory at once, so the two workers mostly
/// create files in different directories (creating in the same one serialises them on its
/// lock: 22 % of CPU on ext4) and hand-offs between threads are per batch, not per file.
struct Job {
    dir: Arc<DirState>,
    actions: Vec<Action>,
}

/// A batch is sent when it holds this many files...
const BATCH_FILES: usize = 32;
/// ...or this many bytes (a big file travels alone, so the pool stays balanced).
const BATCH_BYTES: u64 = 4 << 20;

/// What a walk needs besides its sink.
struct Ctx<'a> {
    reporter: &'a Reporter,
    counters: &'a Counters,
    plan: PlanOptions,
    excludes: &'a Excludes,
    stop: &'a AtomicBool,
}

struct Walk<'a> {
    sink: &'a dyn Sink,
    ctx: Ctx<'a>,
    jobs: Option<SyncSender<Job>>,
    stack: Vec<Task>,
    /// The batch being synced, if this is not a full pass: which entries to walk whole.
    batch: Option<&'a Batch>,
    /// Renames a sink that does not write (dry run, look-ahead) counted as done: later
    /// listings of the replica are read as if they had happened, so the rename is not also
    /// counted as a removal and a creation. (from, to, the replica entry moved.)
    moved: Vec<(PathBuf, PathBuf, Entry)>,
}

/// The work of one pass or batch, run once as a look-ahead and once for real.
type Body<'b> = dyn Fn(&mut Walk<'_>, &OwnedFd, Option<&OwnedFd>) + 'b;

impl Engine {
    /// Record SRC's identity and open REPLICA (creating it unless this is a dry run).
    pub fn new(config: &Config, log: &Logger, stop: Arc<AtomicBool>) -> Result<Engine, PassError> {
        let owner = rustix::process::geteuid().is_root();
        let source = SourceRoot::new(&config.source)
            .map_err(|e| PassError::Source(SourceProblem::Gone(e)))?;
        let replica =
            ReplicaRoot::open(&config.replica, !config.dry_run).map_err(PassError::Replica)?;
        Ok(Engine {
            source,
            replica,
            opts: SyncOptions {
                plan: PlanOptions {
                    checksum: config.checksum,
                    owner,
                },
                copy: CopyOptions {
                    owner,
                    fsync: config.fsync,
                },
                workers: config.workers,
                allow_empty_source: config.allow_empty_source,
                excludes: config.excludes.clone(),
                dry_run: config.dry_run,
                max_delete: config.max_delete,
                defer: !config.once,
            },
            log: log.clone(),
            stop,
            out: Mutex::new(Box::new(io::stdout())),
            current: Mutex::new(None),
        })
    }

    /// The roots for one pass or batch: REPLICA's held handle, if its path still leads to
    /// it, and SRC opened by path, now, if it is still the source the run started with (a
    /// root that was deleted, moved, unmounted or emptied must not be read through a stale
    /// handle: it would list as empty and empty the replica).
    fn roots(&self) -> Result<(OwnedFd, Option<OwnedFd>), PassError> {
        let dst = self.replica.check().map_err(PassError::ReplicaMoved)?;
        let src = self
            .source
            .open(dst, self.opts.allow_empty_source)
            .map_err(PassError::Source)?;
        let dst = dst
            .map(|d| d.try_clone_to_owned())
            .transpose()
            .map_err(PassError::Replica)?;
        Ok((src, dst))
    }

    /// Check SRC and REPLICA without doing anything.
    pub fn check_roots(&self) -> Result<(), PassError> {
        self.roots().map(|_| ())
    }

    /// After SRC went away: accept what stands at its path now, if it can be a source.
    pub fn adopt_source(&self) -> Result<(), PassError> {
        let dst = self.replica.check().map_err(PassError::ReplicaMoved)?;
        self.source
            .adopt(dst, self.opts.allow_empty_source)
            .map_err(PassError::Source)
    }

    fn reporter(&self, trigger: Trigger) -> Reporter {
        Reporter {
            log: self.log.clone(),
            trigger,
        }
    }

    /// One full reconciliation of the whole tree.
    pub fn full_pass(&self, trigger: Trigger) -> Result<PassReport, PassError> {
        self.run(trigger, None, &|walk, src, dst| {
            let lists = (|| Ok::<_, io::Error>((scan_dir(src)?, dst.map(scan_dir).transpose()?)))();
            match lists {
                Ok((sl, dl)) => {
                    let root = new_state(dup(src), dst.map(dup), PathBuf::new(), false);
                    walk.dir(root, sl, dl.unwrap_or_default(), true);
                    walk.drain();
                }
                Err(e) => walk.fault("scan", Path::new(""), &e),
            }
        })
    }

    /// Bring what a batch of watcher events points at up to date: renames first, in the
    /// order they happened (an optimisation: no recopy), then every directory the events
    /// touched is compared with its replica, exactly as a full pass compares it, walking
    /// created and moved-in entries whole.
    pub fn sync_batch(&self, batch: &Batch, trigger: Trigger) -> Result<PassReport, PassError> {
        self.run(trigger, Some(batch), &|walk, src, dst| {
            let Some(dst) = dst else {
                // Dry run without a replica yet: a full pass is what would happen.
                return;
            };
            for (from, to) in &batch.renames {
                if walk.ctx.stop.load(Ordering::Relaxed) {
                    return;
                }
                walk.rename(src, dst, from, to);
            }
            for dir in &batch.dirs {
                if walk.ctx.stop.load(Ordering::Relaxed) {
                    return;
                }
                if !batch.covered(dir) {
                    walk.compare(src, dst, dir);
                    walk.drain();
                }
            }
        })
    }

    /// Open the roots and run `body` through the right sink: after a silent look-ahead
    /// when `--max-delete` is set, then for real (or as a dry run).
    fn run(
        &self,
        trigger: Trigger,
        batch: Option<&Batch>,
        body: &Body<'_>,
    ) -> Result<PassReport, PassError> {
        let started = Instant::now();
        let (src, dst) = self.roots()?;
        let reporter = self.reporter(trigger);
        if let Some(max) = self.opts.max_delete
            && !self.opts.dry_run
        {
            let quiet = Reporter {
                log: Logger::root(slog::Discard, o!()),
                trigger,
            };
            let look = DryRun::new(None);
            self.walk(&look, &quiet, &Counters::default(), 0, batch, |w| {
                body(w, &src, dst.as_ref())
            });
            let would = look.removals.load(Ordering::Relaxed);
            if would > max {
                return Err(PassError::TooManyDeletes { would, max });
            }
        }
        let counters = Arc::new(Counters::default());
        if batch.is_none()
            && let Ok(mut c) = self.current.lock()
        {
            *c = Some(Arc::clone(&counters));
        }
        let dry_actions = if self.opts.dry_run {
            let dry = DryRun::new(Some(&self.out));
            self.walk(&dry, &reporter, &counters, 0, batch, |w| {
                body(w, &src, dst.as_ref())
            });
            Some(dry.actions.load(Ordering::Relaxed))
        } else {
            let applier = Applier {
                reporter: &reporter,
                counters: &counters,
                plan: self.opts.plan,
                copy: self.opts.copy,
                stop: &self.stop,
                snapshot: batch.map(|b| &b.snapshot),
                defer: self.opts.defer,
            };
            self.walk(
                &applier,
                &reporter,
                &counters,
                self.opts.workers,
                batch,
                |w| body(w, &src, dst.as_ref()),
            );
            None
        };
        if batch.is_none()
            && let Ok(mut c) = self.current.lock()
        {
            *c = None;
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(PassError::Stopped);
        }
        let report = counters.report();
        reporter.summary(&report.summary, started.elapsed());
        if let Some(n) = dry_actions {
            info!(self.log, "dry run: {} actions listed, nothing changed", n;
                "action" => "dry-run", "actions" => n);
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        sink: &dyn Sink,
        reporter: &Reporter,
        counters: &Counters,
        workers: usize,
        batch: Option<&Batch>,
        body: impl FnOnce(&mut Walk<'_>),
    ) {
        let ctx = || Ctx {
            reporter,
            counters,
            plan: self.opts.plan,
            excludes: &self.opts.excludes,
            stop: &self.stop,
        };
        std::thread::scope(|s| {
            let jobs = (workers > 0).then(|| {
                let (tx, rx) = sync_channel::<Job>(256);
                let rx = Arc::new(Mutex::new(rx));
                for _ in 0..workers {
                    let rx = Arc::clone(&rx);
                    let plan = self.opts.plan;
                    s.spawn(move || worker(sink, &rx, plan));
                }
                tx
            });
            let mut walk = Walk {
                sink,
                ctx: ctx(),
                jobs,
                stack: Vec::new(),
                batch,
                moved: Vec::new(),
            };
            body(&mut walk);
            // Dropping the sender ends the workers once the queue is empty; the scope joins.
        });
    }
}

fn dup(fd: &OwnedFd) -> OwnedFd {
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
fn release(sink: &dyn Sink, dir: &DirState, plan: PlanOptions) {
    if dir.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
        let Some(dst) = &dir.dst else { return };
        let fix = (|| {
            let src = entry_from_stat(OsString::new(), &fstat(&dir.src)?);
            let rep = entry_from_stat(OsString::new(), &fstat(dst)?);
            Ok(dir_meta(&src, &rep, plan))
        })();
        sink.finish_dir(dir.target(), fix, dir.touched.load(Ordering::Relaxed));
    }
}

impl Walk<'_> {
    fn fault(&self, what: &'static str, rel: &Path, e: &io::Error) {
        self.ctx.reporter.fault(self.ctx.counters, what, rel, e);
    }

    /// Leave excluded entries out of both listings (neither copied nor deleted). Temp files
    /// of ours are never excluded: a crashed run's leftovers must still be cleaned.
    fn exclude(&self, rel: &Path, src: &mut Listing, dst: &mut Listing) {
        let ex = self.ctx.excludes;
        if ex.is_empty() {
            return;
        }
        let out = |name: &OsStr, dir: bool| ex.excludes(&rel.join(name), dir);
        src.entries.retain(|e| !out(&e.name, e.kind == Kind::Dir));
        src.errors.retain(|(n, _)| !out(n, false));
        dst.entries
            .retain(|e| is_temp_name(&e.name) || !out(&e.name, e.kind == Kind::Dir));
    }

    /// Plan and apply one directory pair's listings, and queue its subdirectories: all of
    /// them when `deep`, else only those this call creates (a new directory is always walked
    /// whole: files made in it before its watch existed have no events).
    fn dir(&mut self, state: Arc<DirState>, mut src: Listing, mut dst: Listing, deep: bool) {
        self.exclude(&state.rel, &mut src, &mut dst);
        self.overlay(&state.rel, &mut dst);
        let c = &self.ctx;
        if self.batch.is_some()
            && let Ok(mut compared) = c.counters.compared.lock()
        {
            compared.push(state.rel.clone());
        }
        c.counters
            .scanned
            .fetch_add(src.entries.len() as u64, Ordering::Relaxed);
        let mut keep = Vec::with_capacity(src.errors.len());
        for (name, err) in src.errors {
            c.reporter
                .fault(c.counters, "scan", &state.rel.join(&name), &err);
            keep.push(name);
        }
        let actions = plan_dir(&src.entries, &dst.entries, &keep, c.plan);
        if !actions.is_empty() {
            state.touched.store(true, Ordering::Relaxed);
            self.sink.prepare_dir(state.target());
        }
        let mut failed: Vec<&OsString> = Vec::new();
        let mut made: Vec<&OsString> = Vec::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0u64;
        for action in &actions {
            match action {
                Action::CopyFile { name, .. } | Action::CheckContent { name } => {
                    if self.jobs.is_none() {
                        self.sink.apply(state.target(), action);
                        continue;
                    }
                    batch_bytes += src
                        .entries
                        .binary_search_by(|e| e.name.as_os_str().cmp(name))
                        .map_or(0, |i| src.entries[i].size);
                    batch.push(action.clone());
                    if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                        self.send(&state, std::mem::take(&mut batch));
                        batch_bytes = 0;
                    }
                }
                _ => {
                    let ok = self.sink.apply(state.target(), action);
                    match (ok, action) {
                        (false, _) => failed.push(action.name()),
                        (true, Action::MakeDir { name, .. }) => made.push(name),
                        _ => {}
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.send(&state, batch);
        }
        for e in src.entries.iter().rev() {
            if e.kind == Kind::Dir && !failed.contains(&&e.name) {
                let fresh = made.contains(&&e.name);
                let queued_deep = self
                    .batch
                    .is_some_and(|b| b.deep.contains(&state.rel.join(&e.name)));
                self.stack.push(Task {
                    parent: Arc::clone(&state),
                    fresh,
                    scan: deep || fresh || queued_deep,
                    name: e.name.clone(),
                });
            }
        }
        release(self.sink, &state, self.ctx.plan);
    }

    /// Hand a batch of copies to the workers (or do it here if they are gone).
    fn send(&self, state: &Arc<DirState>, actions: Vec<Action>) {
        let Some(tx) = &self.jobs else { return };
        state.pending.fetch_add(1, Ordering::AcqRel);
        let job = Job {
            dir: Arc::clone(state),
            actions,
        };
        if let Err(back) = tx.send(job) {
            for action in &back.0.actions {
                self.sink.apply(state.target(), action);
            }
            state.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Work through queued subdirectories, depth first.
    fn drain(&mut self) {
        while let Some(task) = self.stack.pop() {
            if self.ctx.stop.load(Ordering::Relaxed) {
                self.stack.clear();
                return;
            }
            let rel = task.parent.rel.join(&task.name);
            let opened = (|| {
                let src = open_child_dir(&task.parent.src, &task.name)
                    .map_err(|e| ("open source dir", e))?;
                let dst = match &task.parent.dst {
                    Some(parent) => match open_child_dir(parent, &task.name) {
                        Ok(d) => Some(d),
                        // Only a dry run gets here: the directory was not really made (or
                        // not really renamed there).
                        Err(e)
                            if e.kind() == io::ErrorKind::NotFound
                                && (task.fresh || !self.sink.writes()) =>
                        {
                            None
                        }
                        Err(e) => return Err(("open replica dir", e)),
                    },
                    None => None,
                };
                if !task.scan {
                    return Ok((src, Listing::default(), dst, None));
                }
                let src_list = scan_dir(&src).map_err(|e| ("scan", e))?;
                let dst_list = match &dst {
                    Some(d) => scan_dir(d).map_err(|e| ("scan replica", e))?,
                    None => Listing::default(),
                };
                Ok::<_, (&'static str, io::Error)>((src, src_list, dst, Some(dst_list)))
            })();
            match opened {
                Ok((src, src_list, dst, dst_list)) => {
                    let state = new_state(src, dst, rel, task.fresh);
                    match dst_list {
                        Some(dst_list) => self.dir(state, src_list, dst_list, true),
                        None => release(self.sink, &state, self.ctx.plan),
                    }
                }
                // Never delete on the strength of a failed scan: the subtree is left alone.
                Err((what, e)) if e.kind() == io::ErrorKind::NotFound => {
                    warn!(self.ctx.reporter.log, "{} vanished during the pass: {}", what, rel.display();
                        "path" => %rel.display());
                }
                Err((what, e)) => self.fault(what, &rel, &e),
            }
        }
    }

    /// Compare one SRC-relative directory with its replica: both listings, planned and
    /// applied as in a full pass; subdirectories get their own metadata checked, and new ones
    /// (or ones the batch walks whole) are walked. Where the directory is missing on either
    /// side, the deepest ancestor present on both is compared instead: what is missing is then
    /// created whole or removed from there.
    fn compare(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, rel: &Path) {
        let comps = components(rel);
        let mut depth = comps.len();
        let (src, dst) = loop {
            let p: PathBuf = comps[..depth].iter().collect();
            match (
                open_dir_beneath(src_root, &p),
                open_dir_beneath(dst_root, &p),
            ) {
                (Ok(s), Ok(d)) => break (s, d),
                (Err(e), _) | (_, Err(e)) if depth == 0 => {
                    self.fault("open root", Path::new(""), &e);
                    return;
                }
                _ => depth -= 1,
            }
        };
        let base: PathBuf = comps[..depth].iter().collect();
        let lists = (|| {
            let s = scan_dir(&src).map_err(|e| ("scan", e))?;
            let d = scan_dir(&dst).map_err(|e| ("scan replica", e))?;
            Ok::<_, (&'static str, io::Error)>((s, d))
        })();
        match lists {
            Ok((sl, dl)) => self.dir(new_state(src, Some(dst), base, false), sl, dl, false),
            Err((what, e)) => self.fault(what, &base, &e),
        }
    }

    /// Mirror a rename seen in SRC as a rename in REPLICA when the plan says the replica
    /// entry under the old name is what SRC now holds under the new one (no recopy). If not,
    /// or if the rename fails, nothing happens here: comparing both directories, which the
    /// batch does next, copies and removes what it must.
    fn rename(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, from: &Path, to: &Path) {
        let ex = self.ctx.excludes;
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) = (split(from), split(to))
        else {
            return;
        };
        let found = (|| {
            let src_dir = open_dir_beneath(src_root, &to_dir).ok()?;
            let now = stat_entry(&src_dir, to_name).ok()??;
            let is_dir = now.kind == Kind::Dir;
            if ex.excludes(from, is_dir) || ex.excludes(to, is_dir) {
                return None;
            }
            let dst_from = open_dir_beneath(dst_root, &from_dir).ok()?;
            let dst_to = open_dir_beneath(dst_root, &to_dir).ok()?;
            let old = stat_entry(&dst_from, from_name).ok()??;
            rename_matches(&old, &now).then_some((dst_from, dst_to, old))
        })();
        let Some((dst_from, dst_to, old)) = found else {
            return;
        };
        let done = self.sink.rename(
            (dst_from.as_fd(), from_name),
            (dst_to.as_fd(), to_name),
            (from, to),
            old.kind,
        );
        if done && !self.sink.writes() {
            self.moved.push((from.to_path_buf(), to.to_path_buf(), old));
        }
    }

    /// Read a replica listing as if the renames a non-writing sink counted had happened.
    fn overlay(&self, rel: &Path, dst: &mut Listing) {
        for (from, to, entry) in &self.moved {
            if let Some((dir, name)) = split(from)
                && dir == rel
            {
                dst.entries.retain(|e| e.name != name);
            }
            if let Some((dir, name)) = split(to)
                && dir == rel
            {
                dst.entries.retain(|e| e.name != name);
                let mut e = entry.clone();
                e.name = name.to_os_string();
                let at = dst.entries.partition_point(|x| x.name < e.name);
                dst.entries.insert(at, e);
            }
        }
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

fn new_state(src: OwnedFd, dst: Option<OwnedFd>, rel: PathBuf, touched: bool) -> Arc<DirState> {
    Arc::new(DirState {
        src,
        dst,
        rel,
        pending: AtomicUsize::new(1),
        touched: AtomicBool::new(touched),
    })
}
