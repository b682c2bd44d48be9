//! What a pass did: counters shared by the walker and the copy workers, and the one place
//! that turns an action or a fault into a structured log record.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slog::{Logger, error, info, warn};

/// Why a pass or a sync ran: logged with every action it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The first pass of a run, or `--once`.
    Initial,
    /// A watcher event.
    Event,
    /// The periodic reconciliation: anything it repairs is drift the watcher missed.
    Reconcile,
    /// A full pass because the watcher could not vouch for what changed (overflow, error).
    Rescan,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Initial => "initial",
            Trigger::Event => "event",
            Trigger::Reconcile => "reconcile",
            Trigger::Rescan => "rescan",
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub scanned: AtomicU64,
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub meta: AtomicU64,
    pub removed: AtomicU64,
    pub renamed: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub skipped: AtomicU64,
    /// Old entries moved or linked into the versions folder (`--versions`).
    pub versions: AtomicU64,
    /// Versions removed by retention.
    pub pruned: AtomicU64,
    /// Entries that could not be mirrored, with why: known not mirrored until a later pass
    /// or batch compares their directory again.
    pub failed: Mutex<Vec<(PathBuf, String)>>,
    /// Files whose copy saw them being written: to be tried again once writes pause.
    pub deferred: Mutex<Vec<PathBuf>>,
    /// Directories whose two listings were compared (recorded for batches only).
    pub compared: Mutex<Vec<PathBuf>>,
    /// Directories whose contents could not be read: only comparing them again decides them.
    pub unread: Mutex<Vec<PathBuf>>,
    /// The last change made, and its action: for the status record.
    pub last: Mutex<Option<(PathBuf, &'static str)>>,
    /// A stop request cut this pass or batch short (a stop that came after its last step
    /// did not: what it did is complete).
    pub cut: std::sync::atomic::AtomicBool,
    /// A batch met what only a full pass can settle (a hard link whose other names it does
    /// not know).
    pub full_wanted: std::sync::atomic::AtomicBool,
}

/// A snapshot of [`Counters`] at the end of a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub scanned: u64,
    pub created: u64,
    pub updated: u64,
    pub meta: u64,
    pub removed: u64,
    pub renamed: u64,
    pub bytes: u64,
    pub errors: u64,
    pub skipped: u64,
    pub versions: u64,
    pub pruned: u64,
}

/// The kind of counter an action moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    Created,
    Updated,
    Meta,
    Removed,
    Renamed,
}

impl Counters {
    pub fn add(&self, tally: Tally) {
        let c = match tally {
            Tally::Created => &self.created,
            Tally::Updated => &self.updated,
            Tally::Meta => &self.meta,
            Tally::Removed => &self.removed,
            Tally::Renamed => &self.renamed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> Summary {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            scanned: g(&self.scanned),
            created: g(&self.created),
            updated: g(&self.updated),
            meta: g(&self.meta),
            removed: g(&self.removed),
            renamed: g(&self.renamed),
            bytes: g(&self.bytes),
            errors: g(&self.errors),
            skipped: g(&self.skipped),
            versions: g(&self.versions),
            pruned: g(&self.pruned),
        }
    }

    /// Everything a finished pass or batch tells the run loop.
    pub fn report(&self) -> PassReport {
        let take = |m: &Mutex<Vec<PathBuf>>| {
            std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()))
        };
        PassReport {
            summary: self.summary(),
            failed: std::mem::take(&mut *self.failed.lock().unwrap_or_else(|e| e.into_inner())),
            deferred: take(&self.deferred),
            compared: take(&self.compared),
            unread: take(&self.unread),
            full_wanted: self.full_wanted.load(Ordering::Relaxed),
            last_change: self.last.lock().map(|mut l| l.take()).unwrap_or_default(),
        }
    }

    fn fail(&self, path: &Path, why: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.failed.lock() {
            f.push((path.to_path_buf(), why));
        }
    }
}

/// What a finished pass or batch did, and what it left not mirrored.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub summary: Summary,
    /// SRC-relative paths that failed, with the error.
    pub failed: Vec<(PathBuf, String)>,
    /// SRC-relative files deferred because they were being written.
    pub deferred: Vec<PathBuf>,
    /// SRC-relative directories whose listings were compared (batches only).
    pub compared: Vec<PathBuf>,
    /// SRC-relative directories whose contents could not be read (their failures are in
    /// `failed` too).
    pub unread: Vec<PathBuf>,
    /// Only a full pass can settle what this batch met.
    pub full_wanted: bool,
    /// The last change made, with its action.
    pub last_change: Option<(PathBuf, &'static str)>,
}

/// Logs actions and faults with their paths and counts them.
#[derive(Clone)]
pub struct Reporter {
    pub log: Logger,
    pub trigger: Trigger,
    /// Entries already reported as not mirrorable in this run: a live run says so when it
    /// first finds one, not again at every reconciliation.
    pub noted: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Reporter {
    /// One record per change made to the replica.
    #[allow(clippy::too_many_arguments)]
    pub fn action(
        &self,
        counters: &Counters,
        tally: Tally,
        action: &'static str,
        path: &Path,
        kind: &'static str,
        reason: &'static str,
        bytes: u64,
    ) {
        counters.add(tally);
        counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut l) = counters.last.lock() {
            *l = Some((path.to_path_buf(), action));
        }
        let path = shown(path);
        let drift = self.trigger == Trigger::Reconcile;
        info!(self.log, "{}", action;
            "action" => action, "path" => %path.display(), "kind" => kind,
            "reason" => reason, "bytes" => bytes, "trigger" => self.trigger.as_str(),
            "drift" => drift);
    }

    /// A per-entry fault: logged with its path and errno, counted, and the pass goes on.
    pub fn fault(&self, counters: &Counters, action: &'static str, path: &Path, err: &io::Error) {
        counters.fail(path, format!("{action}: {err}"));
        if matches!(
            action,
            "scan" | "scan replica" | "open source dir" | "open replica dir"
        ) {
            if let Ok(mut u) = counters.unread.lock() {
                u.push(path.to_path_buf());
            }
            // Live mode looks into such a directory again and again: said once per run.
            let first = self
                .noted
                .lock()
                .map(|mut n| n.insert(path.to_path_buf()))
                .unwrap_or(true);
            if !first {
                slog::debug!(self.log, "{} failed again: {}: {}", action, shown(path).display(), err;
                    "action" => action, "path" => %shown(path).display(), "error" => %err);
                return;
            }
        }
        let path = shown(path);
        error!(self.log, "{} failed: {}: {}", action, path.display(), err;
            "action" => action, "path" => %path.display(), "error" => %err,
            "errno" => err.raw_os_error().unwrap_or(0), "trigger" => self.trigger.as_str());
    }

    /// A rename inside the replica: one record naming both ends.
    pub fn renamed(&self, counters: &Counters, from: &Path, to: &Path, kind: &'static str) {
        counters.add(Tally::Renamed);
        if let Ok(mut l) = counters.last.lock() {
            *l = Some((to.to_path_buf(), "rename"));
        }
        info!(self.log, "rename";
            "action" => "rename", "path" => %to.display(), "from" => %from.display(),
            "kind" => kind, "reason" => "renamed", "bytes" => 0, "trigger" => self.trigger.as_str(),
            "drift" => self.trigger == Trigger::Reconcile);
    }

    /// A fault that is not an I/O error (a file that kept changing, a vanished source).
    pub fn fault_msg(&self, counters: &Counters, action: &'static str, path: &Path, msg: &str) {
        counters.fail(path, format!("{action}: {msg}"));
        warn!(self.log, "{} skipped: {}: {}", action, path.display(), msg;
            "action" => action, "path" => %path.display(), "error" => msg,
            "trigger" => self.trigger.as_str());
    }

    /// A copy that saw its source being written: not a fault, it is tried again once the
    /// writes pause (live mode).
    pub fn deferred(&self, counters: &Counters, path: &Path, why: &str) {
        if let Ok(mut d) = counters.deferred.lock() {
            d.push(path.to_path_buf());
        }
        slog::debug!(self.log, "copy deferred: {}: {}", shown(path).display(), why;
            "action" => "defer", "path" => %shown(path).display(), "reason" => why,
            "trigger" => self.trigger.as_str());
    }

    /// An entry the replica's filesystem cannot hold: not mirrored, so the run is partial;
    /// logged the first time only.
    pub fn unsupported(&self, counters: &Counters, path: &Path, why: &str) {
        counters.fail(path, format!("not mirrored: {why}"));
        let first = self
            .noted
            .lock()
            .map(|mut n| n.insert(path.to_path_buf()))
            .unwrap_or(true);
        if first {
            warn!(self.log, "not mirrored: {}: {}", shown(path).display(), why;
                "action" => "skip", "path" => %shown(path).display(), "reason" => why,
                "trigger" => self.trigger.as_str());
        } else {
            slog::debug!(self.log, "not mirrored: {}: {}", shown(path).display(), why;
                "action" => "skip", "path" => %shown(path).display());
        }
    }

    /// An old entry kept in the versions folder instead of being removed or overwritten.
    pub fn version(&self, counters: &Counters, path: &Path, to: &Path, kind: &'static str) {
        counters.versions.fetch_add(1, Ordering::Relaxed);
        info!(self.log, "version";
            "action" => "version", "path" => %shown(path).display(), "to" => %to.display(),
            "kind" => kind, "trigger" => self.trigger.as_str());
    }

    /// A version removed by retention (`--keep-versions`, `--versions-max-age`). Info, not
    /// debug: it is the moment an old copy is gone for good, which a person looking for it
    /// needs to be able to find in the log.
    pub fn pruned(&self, counters: &Counters, path: &Path) {
        counters.pruned.fetch_add(1, Ordering::Relaxed);
        info!(self.log, "prune";
            "action" => "prune", "path" => %path.display(), "trigger" => self.trigger.as_str());
    }

    /// A version retention could not remove: housekeeping inside the versions folder, not a
    /// mirror fault (the replica is complete), so a warning that leaves the exit status alone.
    pub fn prune_failed(&self, path: &Path, err: &io::Error) {
        warn!(self.log, "prune failed: {}: {}", path.display(), err;
            "action" => "prune", "path" => %path.display(), "error" => %err,
            "errno" => err.raw_os_error().unwrap_or(0), "trigger" => self.trigger.as_str());
    }

    /// What retention did, as told by [`crate::versions::Keeper`].
    pub fn retention(&self, counters: &Counters, kept: &crate::versions::Kept) {
        for p in &kept.pruned {
            self.pruned(counters, p);
        }
        for (p, e) in &kept.prune_errors {
            self.prune_failed(p, e);
        }
    }

    pub fn skipped(&self, counters: &Counters, path: &Path, why: &str) {
        counters.skipped.fetch_add(1, Ordering::Relaxed);
        warn!(self.log, "skip {}", path.display();
            "action" => "skip", "path" => %path.display(), "reason" => why);
    }

    /// The record that ends a pass or batch. A batch that changed nothing (a retry that found
    /// the file settled, a re-check) says so at debug level only.
    pub fn summary(&self, s: &Summary, elapsed: Duration) {
        let quiet = self.trigger == Trigger::Event
            && s.created + s.updated + s.meta + s.removed + s.renamed + s.errors + s.skipped == 0
            && s.versions + s.pruned == 0;
        let ms = elapsed.as_millis() as u64;
        if quiet {
            slog::debug!(self.log, "pass done";
                "action" => "summary", "trigger" => self.trigger.as_str(),
                "scanned" => s.scanned, "elapsed_ms" => ms);
            return;
        }
        if s.versions + s.pruned > 0 {
            // Only when there is something to say: most passes keep no versions.
            info!(self.log, "pass done";
                "action" => "summary", "trigger" => self.trigger.as_str(),
                "scanned" => s.scanned, "created" => s.created, "updated" => s.updated,
                "meta" => s.meta, "removed" => s.removed, "renamed" => s.renamed,
                "bytes" => s.bytes, "errors" => s.errors, "skipped" => s.skipped,
                "versions" => s.versions, "pruned" => s.pruned, "elapsed_ms" => ms);
            return;
        }
        info!(self.log, "pass done";
            "action" => "summary", "trigger" => self.trigger.as_str(),
            "scanned" => s.scanned, "created" => s.created, "updated" => s.updated,
            "meta" => s.meta, "removed" => s.removed, "renamed" => s.renamed,
            "bytes" => s.bytes, "errors" => s.errors, "skipped" => s.skipped,
            "elapsed_ms" => ms);
    }
}

/// Paths are logged relative to the roots; the root itself shows as ".".
fn shown(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}
