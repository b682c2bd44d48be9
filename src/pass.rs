//! A pass's lifecycle: the engine holds the roots and options of a run, checks SRC and REPLICA
//! before anything is done, and runs a full pass or a batch of watcher work through the right
//! sink: `apply` for a real pass, a dry run for `--dry-run`, and a silent dry run first as the
//! `--max-delete` look-ahead. The walking itself is `walk`'s, the threads `exec`'s.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use slog::{Logger, info, o};

use crate::apply::Applier;
use crate::config::Config;
use crate::copy::CopyOptions;
use crate::exclude::Excludes;
use crate::exec::{dup, new_state};
use crate::exit::Outcome;
use crate::fscaps::Caps;
use crate::links::LinkSets;
use crate::plan::{PlanOptions, mode_kept};
use crate::queue::{Batch, moved};
use crate::report::{Counters, PassReport, Reporter, Trigger};
use crate::roots::{ReplicaMoved, ReplicaRoot, SourceProblem, SourceRoot};
use crate::sink::{DryRun, Sink};
use crate::versions::{Keeper, Retention};
use crate::walk::{self, Body, Ctx, Walk};
use crate::xattr::Namespaces;

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
    /// `--versions`: keep what removals and overwrites would destroy, with this retention.
    pub versions: Option<Retention>,
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

/// Find out what REPLICA's filesystem holds, and say once what will not be mirrored there. A
/// replica that cannot be probed (a dry run without one, a read-only one) is taken to hold
/// everything: what fails then fails per entry, and is reported.
fn probe_replica(replica: &ReplicaRoot, as_root: bool, log: &Logger) -> Caps {
    let Ok(Some(root)) = replica.check() else {
        return Caps::default();
    };
    match crate::fscaps::probe(root, as_root) {
        Ok(caps) => {
            let losses = caps.losses(as_root);
            let fs = crate::fscaps::fs_type(root);
            if losses.is_empty() {
                slog::debug!(log, "replica filesystem keeps everything"; "fs" => %fs);
            } else {
                slog::warn!(log, "REPLICA is on {}: {}; these are not mirrored", fs, losses.join(", ");
                    "action" => "filesystem", "fs" => %fs);
            }
            caps
        }
        Err(e) => {
            slog::debug!(log, "cannot probe the replica filesystem"; "error" => %e);
            Caps::default()
        }
    }
}

impl PassError {
    /// What a pass that did not run means for the exit status: a guard that refused it (an
    /// empty source, `--max-delete`, an interrupted pass) is partial; a root that cannot be
    /// used is fatal.
    pub fn outcome(&self) -> Outcome {
        match self {
            PassError::Source(SourceProblem::Empty)
            | PassError::TooManyDeletes { .. }
            | PassError::Stopped => Outcome::Partial,
            PassError::Source(_) | PassError::Replica(_) | PassError::ReplicaMoved(_) => {
                Outcome::Fatal
            }
        }
    }
}

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
    /// Entries reported as not mirrorable so far (each is logged once per run).
    noted: Arc<Mutex<std::collections::HashSet<PathBuf>>>,
    /// The running pass's counters, for a progress display.
    pub current: Mutex<Option<Arc<Counters>>>,
    /// Hard-link sets met so far (see `links`).
    links: LinkSets,
    /// `--versions` (not in a dry run): where apply keeps what it removes or overwrites.
    keeper: Option<Keeper>,
}

impl Engine {
    /// Record SRC's identity and open REPLICA (creating it unless this is a dry run).
    pub fn new(config: &Config, log: &Logger, stop: Arc<AtomicBool>) -> Result<Engine, PassError> {
        let owner = rustix::process::geteuid().is_root();
        let source = SourceRoot::new(&config.source)
            .map_err(|e| PassError::Source(SourceProblem::Gone(e)))?;
        let replica =
            ReplicaRoot::open(&config.replica, !config.dry_run).map_err(PassError::Replica)?;
        // A dry run writes nothing, not even the probe: it plans as for a filesystem that
        // holds everything (README: Dry run).
        let caps = if config.dry_run {
            Caps::default()
        } else {
            probe_replica(&replica, owner, log)
        };
        let keeper = match (config.versions, replica.check()) {
            (Some(retention), Ok(Some(root))) if !config.dry_run => {
                Some(Keeper::new(root, retention).map_err(PassError::Replica)?)
            }
            _ => None,
        };
        let plan = PlanOptions {
            checksum: config.checksum,
            owner: owner && caps.owner,
            caps,
            hard_links: config.hard_links && caps.hard_links,
            appends: config.versions.is_none(),
            xattrs: Namespaces {
                user: config.xattrs && caps.xattr_user,
                acl: config.acls && caps.acl,
                privileged: config.xattrs && owner && caps.xattr_trusted,
            },
        };
        Ok(Engine {
            source,
            replica,
            opts: SyncOptions {
                plan,
                copy: CopyOptions {
                    owner: plan.owner,
                    fsync: config.fsync,
                    mode_mask: if caps.perms { mode_kept(plan) } else { 0 },
                    set_atime: caps.set_atime,
                    xattrs: plan.xattrs,
                    bare_temp: false,
                },
                workers: config.workers,
                allow_empty_source: config.allow_empty_source,
                excludes: config.excludes.clone(),
                dry_run: config.dry_run,
                max_delete: config.max_delete,
                defer: !config.once,
                versions: config.versions,
            },
            log: log.clone(),
            stop,
            out: Mutex::new(Box::new(io::stdout())),
            noted: Arc::default(),
            current: Mutex::new(None),
            links: LinkSets::default(),
            keeper,
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
            noted: Arc::clone(&self.noted),
        }
    }

    /// One full reconciliation of the whole tree.
    pub fn full_pass(&self, trigger: Trigger) -> Result<PassReport, PassError> {
        self.run(
            trigger,
            None,
            &|walk, src, dst| match walk.list_pair(src, dst) {
                Ok((sl, dl)) => {
                    let root = new_state(dup(src), dst.map(dup), PathBuf::new(), false);
                    walk.dir(root, sl, dl, true);
                    walk.drain();
                }
                Err((what, e)) => walk.fault(what, Path::new(""), &e),
            },
        )
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
            walk.set_dst_root(dst);
            for (i, (from, to)) in batch.renames.iter().enumerate() {
                if walk.stopping() {
                    return;
                }
                // Where `to` is in SRC now: later renames of it or of an ancestor moved it.
                let now_at = batch.renames[i + 1..]
                    .iter()
                    .fold(to.clone(), |p, (f, t)| moved(&p, f, t).unwrap_or(p));
                walk.rename(src, dst, (from, to), &now_at);
            }
            // A departure whose arrival the watcher missed (moved into a directory made a
            // moment before, not watched yet) is a rename if a new tree now holds an entry of
            // that name which the plan matches with it: else the comparisons below copy and
            // remove as for any other change.
            // Only when the pairing is unambiguous: one departure of that name, and one new
            // entry of that name in SRC.
            for from in &batch.moved_out {
                let Some(name) = from.file_name() else {
                    continue;
                };
                let departures = batch
                    .moved_out
                    .iter()
                    .filter(|f| f.file_name() == Some(name))
                    .count();
                let in_src = |p: &Path| {
                    let parent = p.parent().unwrap_or(Path::new(""));
                    crate::handle::open_dir_beneath(src, parent)
                        .ok()
                        .and_then(|d| crate::scan::stat_entry(&d, name).ok().flatten())
                        .is_some()
                };
                let arrivals: BTreeSet<PathBuf> = batch
                    .deep
                    .iter()
                    .flat_map(|t| [t.join(name), t.clone()])
                    .filter(|to| to.file_name() == Some(name) && to != from && in_src(to))
                    .collect();
                if let (1, Some(to)) = (departures, arrivals.first())
                    && arrivals.len() == 1
                {
                    walk.rename(src, dst, (from, to), to);
                }
            }
            for dir in &batch.dirs {
                if walk.stopping() {
                    return;
                }
                if !batch.covered(dir) {
                    walk.compare(src, dst, dir);
                    walk.drain();
                }
            }
            walk.relink(src, dst);
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
                noted: Arc::default(),
            };
            let look = DryRun::new(None, false);
            let roots = (&src, dst.as_ref());
            let links = self.links.snapshot();
            self.walk(
                &look,
                (&quiet, &Counters::default(), &links),
                0,
                batch,
                roots,
                |w| body(w, &src, dst.as_ref()),
            );
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
            let dry = DryRun::new(Some(&self.out), self.opts.versions.is_some());
            let roots = (&src, dst.as_ref());
            self.walk(
                &dry,
                (&reporter, &counters, &self.links),
                0,
                batch,
                roots,
                |w| body(w, &src, dst.as_ref()),
            );
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
                versions: self.keeper.as_ref(),
            };
            applier.open_versions();
            self.walk(
                &applier,
                (&reporter, &counters, &self.links),
                self.opts.workers,
                batch,
                (&src, dst.as_ref()),
                |w| body(w, &src, dst.as_ref()),
            );
            // Once per full pass: versions past --versions-max-age anywhere in the folder.
            if batch.is_none() && !counters.cut.load(Ordering::Relaxed) {
                applier.sweep_versions();
            }
            None
        };
        if batch.is_none()
            && let Ok(mut c) = self.current.lock()
        {
            *c = None;
        }
        if counters.cut.load(Ordering::Relaxed) {
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

    fn walk(
        &self,
        sink: &dyn Sink,
        (reporter, counters, links): (&Reporter, &Counters, &LinkSets),
        workers: usize,
        batch: Option<&Batch>,
        roots: (&OwnedFd, Option<&OwnedFd>),
        body: impl FnOnce(&mut Walk<'_>),
    ) {
        let ctx = Ctx {
            reporter,
            counters,
            plan: self.opts.plan,
            excludes: &self.opts.excludes,
            stop: &self.stop,
            links,
            roots,
        };
        walk::walk(sink, ctx, workers, batch, body);
    }
}
