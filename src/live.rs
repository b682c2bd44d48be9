//! Live mode: the run loop that keeps REPLICA mirrored until the duration ends or a stop is
//! requested.
//!
//! One thread waits on one channel for raw watcher events, finished full passes and stop
//! requests. Events only say where to look: they are gathered in the queue, and `--debounce`
//! after the first of a burst the gathered directories are compared with their replicas.
//! Full passes (the initial one, every `--interval`, and after the watcher lost events) run on
//! a thread of their own, so a change made during a long pass is mirrored by its events within
//! the debounce, not after the pass; the directories such batches touched are compared again
//! once the pass ends, since the pass may have listed them before the batch changed them.
//! Watching starts *before* the initial pass, so a change made during that pass arrives as an
//! event instead of falling in the gap.
//!
//! Before each batch and pass, and every second while idle, SRC and REPLICA are checked (see
//! `roots`): a source that is gone, unmounted, replaced or suddenly empty, or a replica path
//! that leads somewhere else, pauses mirroring with REPLICA untouched until it is back.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use slog::{Logger, debug, error, info, warn};

use crate::config::Config;
use crate::exit::Outcome;
use crate::logfile::LogDir;
use crate::pass::{Engine, PassError};
use crate::pending::Pending;
use crate::queue::{Queue, Work};
use crate::report::{PassReport, Trigger};
use crate::roots::SourceProblem;
use crate::status::{self, Keeper, LastChange, LastPass, State, Status};
use crate::systemd::Systemd;
use crate::watch::{self, LOST_EVENTS, WATCH_LIMIT_HINT, Watch};

/// What wakes the run loop.
pub enum Msg {
    /// A raw watcher event, or a watcher error.
    Event(notify::Result<notify::Event>),
    /// A full pass finished on the pass thread.
    PassDone(Trigger, Result<PassReport, PassError>),
    /// Ctrl-C, SIGTERM or SIGHUP.
    Stop,
}

/// How often SRC and REPLICA are checked while nothing else happens (an unmounted source
/// sends no event that says so on every kernel), and how often a paused run looks for them.
const ROOT_CHECK: Duration = Duration::from_secs(1);

/// Why mirroring is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Paused {
    Source,
    Replica,
}

struct Live<'a> {
    config: &'a Config,
    engine: &'a Engine,
    log: &'a Logger,
    tx: Sender<Msg>,
    /// Requests for the pass thread.
    passes: Sender<Trigger>,
    watch: Option<Watch>,
    paused: Option<Paused>,
    /// The watcher hit the inotify watch limit: some directories have no watch.
    watch_partial: bool,
    /// Some directory's path is too long for inotify (longer than PATH_MAX): it has no watch,
    /// nor has anything below it.
    too_deep: bool,
    /// ...and how far the watcher reaches was looked at for this watcher.
    limit_reported: bool,
    /// What was last said about it (watched, directories): said again only when it changes.
    coverage_said: Option<(u64, u64)>,
    /// When a batch last asked for a full pass to find a new link set's other names.
    link_pass: Option<Instant>,
    queue: Queue,
    /// When the first event of the burst being gathered arrived.
    first_event: Option<Instant>,
    /// When the latest event of that burst arrived: the burst is mirrored once SRC has been
    /// quiet for `--settle` (or `--debounce` after it began, if it goes on).
    last_event: Option<Instant>,
    /// A full pass is running on the pass thread.
    pass_running: bool,
    /// Another full pass is wanted once the running one ends.
    pass_wanted: Option<Trigger>,
    /// Directories batches compared while a full pass ran.
    during_pass: BTreeSet<PathBuf>,
    /// What is known not mirrored.
    pending: Pending,
    /// The last full pass was refused (`--max-delete`): why.
    refused: Option<String>,
    /// Files already reported as never settling.
    unsettled_reported: BTreeSet<PathBuf>,
    watching: bool,
    /// Why a full pass must still finish before the replica is known complete.
    needs_full: Option<&'static str>,
    /// A batch was stopped part-way.
    interrupted: bool,
    /// The status record in LOGDIR.
    status: Keeper,
    /// The state the record last said, and since when.
    state: (State, SystemTime),
    /// Why mirroring is paused, in words.
    pause_why: Option<String>,
    last_pass: Option<LastPass>,
    last_change: Option<LastChange>,
    /// When the first event of the batch being mirrored arrived.
    burst_started: Option<Instant>,
    /// When the running full pass was started.
    pass_started: Option<Instant>,
    /// systemd's notify protocol (readiness, STATUS=, watchdog).
    systemd: Systemd,
    start_ticks: u64,
}

/// Run live mode. `tx`/`rx` is the loop's channel; the signal handler sends `Msg::Stop` on it.
/// Why a batch asks for a full pass: a file it met has names elsewhere that were never seen
/// (`ln d1/a d2/b` makes an event in `d2` only, and `d1/a` had one name until then).
const NEW_LINK_SET: &str = "a hard link to a file whose other names are not known yet";

pub fn run(
    config: &Config,
    engine: &Engine,
    log: &Logger,
    log_dir: Arc<LogDir>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
) -> Outcome {
    let (passes, requests) = std::sync::mpsc::channel::<Trigger>();
    std::thread::scope(|s| {
        let done = tx.clone();
        s.spawn(move || {
            for trigger in requests {
                let result = engine.full_pass(trigger);
                if done.send(Msg::PassDone(trigger, result)).is_err() {
                    return;
                }
            }
        });
        let mut live = Live {
            config,
            engine,
            log,
            tx,
            passes,
            watch: None,
            paused: None,
            watch_partial: false,
            too_deep: false,
            limit_reported: false,
            coverage_said: None,
            link_pass: None,
            queue: Queue::default(),
            first_event: None,
            last_event: None,
            pass_running: false,
            pass_wanted: None,
            during_pass: BTreeSet::new(),
            // A file still open for writing waits for its writes to pause, but no longer than
            // an interval, nor than the window in which a write counts as in flight.
            pending: Pending::new(
                config.interval.min(crate::copy::IN_FLIGHT_WINDOW),
                config.interval,
            ),
            refused: None,
            unsettled_reported: BTreeSet::new(),
            watching: false,
            needs_full: None,
            interrupted: false,
            status: Keeper::new(log_dir),
            state: (State::Starting, SystemTime::now()),
            pause_why: None,
            last_pass: None,
            last_change: None,
            burst_started: None,
            pass_started: None,
            systemd: Systemd::from_env(),
            start_ticks: status::start_ticks(std::process::id()).unwrap_or(0),
        };
        let outcome = live.run(rx);
        // A pass still running stops at its next entry; the scope joins its thread.
        engine.stop.store(true, Ordering::Relaxed);
        drop(live);
        outcome
    })
}

impl Live<'_> {
    fn run(&mut self, rx: Receiver<Msg>) -> Outcome {
        let end = self.config.duration.map(|d| Instant::now() + d);
        self.start_watch();
        self.request_pass(Trigger::Initial);
        let mut next_full = Instant::now() + self.config.interval;
        let mut next_check = Instant::now() + ROOT_CHECK;
        loop {
            self.publish();
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) {
                info!(self.log, "duration reached, stopping"; "action" => "stop", "reason" => "duration");
                // What events asked for is done before the end, not left behind (one last
                // batch: bounded, unlike a pass).
                self.check_roots();
                if self.paused.is_none() && !self.queue.is_empty() {
                    self.sync();
                }
                return self.finish();
            }
            let mut wake = next_check;
            if let Some(e) = end {
                wake = wake.min(e);
            }
            if let Some(ping) = self.systemd.next_due() {
                // The watchdog is pinged from this loop: only a loop that turns proves it lives.
                wake = wake.min(ping);
            }
            if self.paused.is_none() {
                // While paused, resuming runs the pass: the interval is not what wakes us.
                wake = wake.min(next_full);
                if let Some(due) = self.burst_due() {
                    wake = wake.min(due);
                }
                if let Some(due) = self.pending.next_due() {
                    wake = wake.min(due);
                }
            }
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Msg::Stop) => {
                    info!(self.log, "stop requested, stopping"; "action" => "stop", "reason" => "signal");
                    return self.finish();
                }
                Ok(Msg::Event(e)) => self.absorb(e),
                Ok(Msg::PassDone(trigger, result)) => self.pass_done(trigger, result),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            }
            let now = Instant::now();
            let root_event = self.queue.take_check_source();
            if root_event && self.paused.is_none() {
                // SRC itself was removed, moved or unmounted: its watches are gone even if a
                // directory is back at the path by now. Pause, and resume (re-watch and
                // reconcile) only once the check below accepts what is there.
                self.pause_for(&PassError::Source(SourceProblem::Replaced));
            }
            if root_event || now >= next_check {
                next_check = now + ROOT_CHECK;
                self.check_roots();
            }
            if self.paused.is_some() {
                continue;
            }
            if now >= next_full {
                next_full = now + self.config.interval;
                if self.watch_partial && !self.pass_running {
                    // Watches may have been freed since: watch the whole tree afresh (the
                    // pass that follows covers the moment in between).
                    self.start_watch();
                }
                self.request_pass(Trigger::Reconcile);
            }
            for due in self.pending.take_due(now) {
                if due.walk {
                    // A directory that could not be read: look into it again, and have the
                    // watcher try it again (it could not watch it either).
                    let path = self.config.source.join(&due.path);
                    if let Some(w) = &mut self.watch
                        && path.symlink_metadata().is_ok_and(|m| m.is_dir())
                    {
                        let _ = w.rewatch(&path);
                    }
                    self.queue.tree(due.path);
                } else if due.snapshot {
                    self.queue.snapshot(due.path);
                } else {
                    self.queue
                        .dir(due.path.parent().map(PathBuf::from).unwrap_or_default());
                }
                self.first_event.get_or_insert(now);
                self.last_event = Some(now);
            }
            if self.burst_due().is_some_and(|due| now >= due) {
                self.burst_started = self.first_event.take();
                self.last_event = None;
                if !self.queue.is_empty() {
                    self.sync();
                }
            }
        }
    }

    fn start_watch(&mut self) {
        self.watch = None;
        let backend = match self.config.poll {
            Some(every) => watch::Backend::Poll(every),
            None => watch::Backend::Inotify,
        };
        let was_partial = self.watch_partial;
        self.limit_reported = false;
        // A new watcher tries every directory again, and says again which it cannot watch.
        self.too_deep = false;
        match watch::start(&self.config.source, backend, self.tx.clone(), Msg::Event) {
            Ok(started) => {
                self.watch_partial = started.partial.is_some();
                if was_partial && !self.watch_partial {
                    self.coverage_said = None;
                    info!(self.log, "the inotify watch limit no longer stops the watcher: every directory is watched";
                        "action" => "watch-limit");
                }
                self.watch = Some(started.watch);
            }
            Err(e) => warn!(self.log, "cannot watch the source; mirroring by periodic passes only";
                "error" => %e),
        }
    }

    /// The watcher stopped at the inotify watch limit, or found directories too deep to watch:
    /// say how many directories it watches and how many it does not (and, at debug level,
    /// which), once per watcher. What it does not watch is mirrored by the full pass every
    /// `--interval`, which also retries the watcher (at the limit: watches may be freed).
    fn report_watch_limit(&mut self) {
        if !(self.watch_partial || self.too_deep) || self.limit_reported {
            return;
        }
        self.limit_reported = true;
        match watch::coverage(&self.config.source) {
            Ok(cov) => {
                let missing = cov.unwatched.len() as u64;
                let said = Some((cov.dirs - missing, cov.dirs));
                if std::mem::replace(&mut self.coverage_said, said) == said {
                    debug!(self.log, "the watcher still misses directories";
                        "watched" => cov.dirs - missing, "unwatched" => missing);
                    return;
                }
                if !self.watch_partial {
                    warn!(self.log, "some directories are too deep for inotify (a path longer than 4096 bytes): {} of {} directories are watched; changes in the other {} are mirrored by the full pass every {}",
                        cov.dirs - missing, cov.dirs, missing,
                        humantime::format_duration(self.config.interval);
                        "action" => "watch-depth", "watched" => cov.dirs - missing,
                        "unwatched" => missing);
                } else {
                    warn!(self.log, "the inotify watch limit stopped the watcher: {} of {} directories are watched; changes in the other {} are mirrored by the full pass every {}, which also tries the watcher again; {}",
                        cov.dirs - missing, cov.dirs, missing,
                        humantime::format_duration(self.config.interval), WATCH_LIMIT_HINT;
                        "action" => "watch-limit", "watched" => cov.dirs - missing,
                        "unwatched" => missing);
                }
                for rel in cov.unwatched.iter().take(1000) {
                    debug!(self.log, "not watched"; "path" => %rel.display());
                }
            }
            Err(e) => {
                warn!(self.log, "the inotify watch limit stopped the watcher: changes in some directories are mirrored by the full pass every {}, which also tries the watcher again; {}",
                    humantime::format_duration(self.config.interval), WATCH_LIMIT_HINT;
                    "action" => "watch-limit", "error" => %e);
            }
        }
    }

    /// Walk whole, with the next batch, the directories a watcher error names.
    fn look_into(&mut self, paths: &[std::path::PathBuf]) {
        for p in paths {
            if let Ok(rel) = p.strip_prefix(&self.config.source) {
                self.queue.add(watch::Hint::Tree(rel.to_path_buf()));
            }
        }
    }

    fn absorb(&mut self, event: notify::Result<notify::Event>) {
        match event {
            Ok(ev) => {
                debug!(self.log, "event"; "kind" => ?ev.kind, "paths" => ?ev.paths);
                let hints = watch::interpret(&ev, &self.config.source);
                for hint in watch::drop_excluded(hints, &self.config.excludes) {
                    self.queue.add(hint);
                }
            }
            Err(e) if watch::is_watch_limit(&e) => {
                // A new directory found the limit reached: its watch is missing; said once the
                // next full pass has run (and tried again then).
                self.watch_partial = true;
                debug!(self.log, "watch limit reached"; "error" => %e);
            }
            Err(e) if watch::is_too_long(&e) => {
                // Too deep for inotify: it and what is below it are mirrored by the full pass
                // (said, with how many, once the next pass has run). What was made there
                // before it was met is looked at now.
                self.too_deep = true;
                self.limit_reported = false;
                debug!(self.log, "too deep to watch"; "error" => %e);
                self.look_into(&e.paths);
            }
            Err(e) if !e.paths.is_empty() => {
                // A directory the watcher could not watch (unreadable, or moved away while it
                // was being added): look at it, and at its parent, now. Watching it is the
                // watcher's; mirroring it is ours.
                warn!(self.log, "watcher error; comparing the directories it names"; "error" => %e);
                self.look_into(&e.paths);
            }
            Err(e) if watch::is_vanished(&e) && !self.queue.is_empty() => {
                // The watcher found a directory it was adding gone or no longer a directory:
                // the race of a rename, exchange or removal whose own events are queued (their
                // targets are walked whole, an exchange's re-watched). Nothing else is lost.
                debug!(self.log, "watcher: a directory changed while being watched"; "error" => %e);
            }
            Err(e) => {
                warn!(self.log, "watcher error; scheduling a full pass"; "error" => %e);
                self.queue.full_pass("watcher error");
            }
        }
        if !self.queue.is_empty() {
            let now = Instant::now();
            self.first_event.get_or_insert(now);
            self.last_event = Some(now);
        }
    }

    /// When the burst being gathered is to be mirrored: once SRC has been quiet for
    /// `--settle`, or `--debounce` after the burst began, whichever comes first. An isolated
    /// change (a save, a copy: a few events within a millisecond) goes at once; a burst that
    /// goes on is gathered and mirrored every `--debounce`.
    fn burst_due(&self) -> Option<Instant> {
        let first = self.first_event?;
        let by_cap = first + self.config.debounce;
        Some(match self.last_event {
            Some(last) => by_cap.min(last + self.config.settle),
            None => by_cap,
        })
    }

    /// Carry out what the queue holds.
    fn sync(&mut self) {
        match self.queue.take() {
            Work::Full(why) => {
                info!(self.log, "full pass: {}", why; "action" => "full-pass", "reason" => %why);
                if why == LOST_EVENTS || self.watch.is_none() {
                    // The lost events may include the creation of directories, which is how
                    // the watcher learns to watch them: watch the whole tree afresh, then
                    // reconcile (a change in between is caught by the pass).
                    self.start_watch();
                }
                self.request_pass(Trigger::Rescan);
            }
            Work::Batch(batch) => {
                if let Some(w) = &mut self.watch {
                    // After an exchange the watcher knows each swapped directory by the
                    // other's name: watching both names again tells it where they are.
                    for rel in &batch.exchanged {
                        // Only a real directory: watching a symlink would follow it (to a
                        // directory watched under its own name, or outside SRC).
                        let path = self.config.source.join(rel);
                        if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                            let _ = w.rewatch(&path);
                        }
                    }
                }
                let result = self.engine.sync_batch(&batch, Trigger::Event);
                if let Ok(report) = &result
                    && self.pass_running
                {
                    self.during_pass.extend(report.compared.iter().cloned());
                }
                self.record_batch(result);
            }
        }
    }

    fn request_pass(&mut self, trigger: Trigger) {
        if trigger != Trigger::Reconcile {
            // Initial and rescan passes repair what nothing else knows about: until one has
            // finished, the replica is not known complete.
            self.needs_full.get_or_insert(match trigger {
                Trigger::Initial => "the initial pass did not finish",
                _ => "a full pass after lost events did not finish",
            });
        }
        if self.pass_running {
            // One at a time: the running pass may have gone past what this one is for.
            self.pass_wanted.get_or_insert(trigger);
            return;
        }
        self.pass_running = true;
        self.pass_started = Some(Instant::now());
        let _ = self.passes.send(trigger);
    }

    fn pass_done(&mut self, trigger: Trigger, result: Result<PassReport, PassError>) {
        self.pass_running = false;
        match &result {
            Ok(report) => {
                let s = &report.summary;
                self.last_pass = Some(LastPass {
                    trigger: trigger.as_str().to_owned(),
                    finished: status::timestamp(SystemTime::now()),
                    scanned: s.scanned,
                    created: s.created,
                    updated: s.updated,
                    meta: s.meta,
                    removed: s.removed,
                    renamed: s.renamed,
                    bytes: s.bytes,
                    errors: s.errors,
                    elapsed_ms: self
                        .pass_started
                        .map_or(0, |t| t.elapsed().as_millis() as u64),
                });
                self.pending.after_full_pass(report, Instant::now());
                self.refused = None;
                if self.pass_wanted.is_none() {
                    self.needs_full = None;
                }
            }
            Err(PassError::Stopped) => {}
            Err(e @ PassError::TooManyDeletes { .. }) => {
                error!(self.log, "{}", e; "action" => "refused");
                self.refused = Some(e.to_string());
            }
            Err(e) => self.pause_for(e),
        }
        if trigger == Trigger::Initial && !self.watching {
            self.watching = true;
            info!(self.log, "watching"; "source" => %self.config.source.display(),
                "debounce_ms" => self.config.debounce.as_millis() as u64,
                "interval_s" => self.config.interval.as_secs_f64());
        }
        if result.is_ok() {
            self.report_pending();
            self.report_watch_limit();
        }
        // What batches did during the pass may have been undone by its older listings.
        for dir in std::mem::take(&mut self.during_pass) {
            self.queue.dir(dir);
            self.first_event.get_or_insert_with(Instant::now);
        }
        if let Some(t) = self.pass_wanted.take() {
            self.request_pass(t);
        }
    }

    fn record_batch(&mut self, result: Result<PassReport, PassError>) {
        match result {
            Ok(report) => {
                if let Some((path, action)) = &report.last_change {
                    let now = Instant::now();
                    self.last_change = Some(LastChange {
                        path: path.display().to_string(),
                        action: (*action).to_owned(),
                        at: status::timestamp(SystemTime::now()),
                        lag_ms: self
                            .burst_started
                            .map_or(0, |b| now.duration_since(b).as_millis() as u64),
                    });
                }
                let src = self.engine.source.path();
                let rep = self.engine.replica.path();
                let exists = |p: &std::path::Path| {
                    src.join(p).symlink_metadata().is_ok() || rep.join(p).symlink_metadata().is_ok()
                };
                let readable = self.pending.after_batch(&report, Instant::now(), exists);
                if let Some(w) = &mut self.watch {
                    // Readable at last: watch it now (the watcher gave up on it before).
                    // Then look at it once more: a change between that walk and this watch
                    // made no event.
                    for rel in readable {
                        let path = self.config.source.join(&rel);
                        if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                            let _ = w.rewatch(&path);
                            self.queue.tree(rel);
                            self.first_event.get_or_insert_with(Instant::now);
                        }
                    }
                }
                if !report.failed.is_empty() || !report.deferred.is_empty() {
                    self.report_pending();
                }
                // At most one such pass per interval: a tree whose files have names outside SRC
                // (a package store's links) would otherwise ask at every batch; the interval's
                // own pass settles what comes after.
                let due = self
                    .link_pass
                    .is_none_or(|at| at.elapsed() >= self.config.interval);
                if report.full_wanted && due {
                    self.link_pass = Some(Instant::now());
                    self.queue.full_pass(NEW_LINK_SET);
                    self.first_event.get_or_insert_with(Instant::now);
                }
            }
            Err(PassError::Stopped) => {
                self.interrupted = true;
            }
            Err(e @ PassError::TooManyDeletes { .. }) => {
                // Nothing was done: what the batch was for stays to be done by a pass.
                error!(self.log, "{}", e; "action" => "refused");
                self.refused = Some(e.to_string());
            }
            Err(e) => self.pause_for(&e),
        }
    }

    /// Say which files never settle (once each).
    fn report_pending(&mut self) {
        let limit = self.config.interval * 2;
        for p in self.pending.unsettled(Instant::now(), limit) {
            if self.unsettled_reported.insert(p.to_path_buf()) {
                warn!(self.log, "file never settles: it changed during every copy for {:?}", limit;
                    "action" => "unsettled", "path" => %p.display());
            }
        }
    }

    /// Check SRC and REPLICA, pausing or resuming as they come and go.
    fn check_roots(&mut self) {
        match self.paused {
            None => {
                if let Err(e) = self.engine.check_roots() {
                    self.pause_for(&e);
                }
            }
            Some(Paused::Source) => {
                if self.engine.adopt_source().is_ok() {
                    info!(self.log, "source is back; watching again"; "action" => "resume",
                        "source" => %self.config.source.display());
                    self.resume();
                }
            }
            Some(Paused::Replica) => {
                if self.engine.check_roots().is_ok() {
                    info!(self.log, "replica root is back; mirroring again"; "action" => "resume",
                        "replica" => %self.config.replica.display());
                    self.resume();
                }
            }
        }
    }

    fn pause_for(&mut self, e: &PassError) {
        let (kind, why) = match e {
            PassError::Source(p) => (Paused::Source, p.to_string()),
            PassError::ReplicaMoved(m) => (Paused::Replica, m.to_string()),
            PassError::Replica(io) => (Paused::Replica, format!("replica unavailable: {io}")),
            other => {
                error!(self.log, "{}", other);
                return;
            }
        };
        self.pause_why = Some(why.clone());
        if self.paused.is_none() {
            match kind {
                Paused::Source => {
                    error!(self.log, "source unavailable ({}); replica left as it is, waiting for the source to return", why;
                    "action" => "pause", "source" => %self.config.source.display())
                }
                Paused::Replica => error!(self.log, "{}", why;
                    "action" => "pause", "replica" => %self.config.replica.display()),
            }
        }
        self.paused = Some(kind);
        // Its watches are on what went away; whatever was queued is covered by the pass that
        // follows the return.
        self.watch = None;
        self.queue = Queue::default();
        self.first_event = None;
    }

    fn resume(&mut self) {
        self.paused = None;
        self.pause_why = None;
        self.start_watch();
        // What happened while paused is known only to this pass.
        self.needs_full = Some("the pass after SRC or REPLICA came back did not finish");
        self.request_pass(Trigger::Reconcile);
    }

    /// What the process is doing now.
    fn current_state(&self) -> State {
        match self.paused {
            Some(Paused::Source) => State::PausedSourceGone,
            Some(Paused::Replica) => State::PausedReplicaGone,
            None if !self.watching => State::Starting,
            None if self.pass_running => State::Reconciling,
            None => State::Watching,
        }
    }

    /// Keep the status record current (written only when it changes, or as a heartbeat).
    fn publish(&mut self) {
        let state = self.current_state();
        self.publish_as(state, self.pause_why.clone());
    }

    fn publish_as(&mut self, state: State, detail: Option<String>) {
        if state != self.state.0 {
            self.state = (state, SystemTime::now());
        }
        let failing = self
            .pending
            .failing(status::FAILING_LISTED)
            .map(|(p, why)| status::Failing {
                path: p.display().to_string(),
                error: why.to_owned(),
            })
            .collect();
        let record = Status {
            pid: std::process::id(),
            start_ticks: self.start_ticks,
            source: self.config.source.clone(),
            replica: self.config.replica.clone(),
            state,
            detail,
            since: status::timestamp(self.state.1),
            updated: String::new(),
            last_pass: self.last_pass.clone(),
            last_change: self.last_change.clone(),
            failing_count: self.pending.failed(),
            failing,
            pending: status::PendingWork {
                queued: !self.queue.is_empty() || !self.during_pass.is_empty(),
                deferred: self.pending.deferred(),
                full_pass_needed: self.needs_full.map(str::to_owned),
            },
        };
        let line = record.one_line();
        if let Some(e) = self.status.publish(record) {
            warn!(self.log, "cannot write the status record; it may be out of date: {}", e;
                "error" => %e);
        }
        let e = if state == State::Stopped {
            self.systemd.stopping(&line)
        } else {
            self.systemd.tick(self.watching, &line)
        };
        if let Some(e) = e {
            warn!(self.log, "cannot notify systemd: {}", e; "error" => %e);
        }
    }

    /// How the run ends: partial while anything is known not mirrored.
    fn finish(&mut self) -> Outcome {
        let outcome = self.outcome();
        let why = match outcome {
            Outcome::Success => "the run ended with the replica complete".to_owned(),
            _ => "the run ended with the replica not known complete".to_owned(),
        };
        self.publish_as(State::Stopped, Some(why));
        outcome
    }

    fn outcome(&mut self) -> Outcome {
        self.engine.stop.store(true, Ordering::Relaxed);
        let mut why = Vec::new();
        match self.paused {
            Some(Paused::Source) => why.push("the source is unavailable".to_owned()),
            Some(Paused::Replica) => why.push("the replica root moved".to_owned()),
            None => {}
        }
        if let Some(r) = &self.refused {
            why.push(r.clone());
        }
        if let Some(w) = self.needs_full {
            why.push(w.to_owned());
        }
        if !self.queue.is_empty() || !self.during_pass.is_empty() {
            why.push("changes seen by the watcher were not mirrored yet".to_owned());
        }
        if self.interrupted {
            why.push("a batch was interrupted".to_owned());
        }
        if !self.pending.is_clean() {
            why.push(format!(
                "{} entries failed and {} files are still being written (e.g. {})",
                self.pending.failed(),
                self.pending.deferred(),
                self.pending.examples(3).join("; ")
            ));
        }
        if why.is_empty() {
            return Outcome::Success;
        }
        warn!(self.log, "the replica is not known to be complete: {}", why.join("; ");
            "action" => "incomplete", "failed" => self.pending.failed(),
            "deferred" => self.pending.deferred());
        Outcome::Partial
    }
}
