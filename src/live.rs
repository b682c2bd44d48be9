//! Live mode: the run loop that keeps REPLICA mirrored until the duration ends or a stop is
//! requested.
//!
//! One thread waits on one channel for watcher batches and stop requests, with a timeout set
//! by the next reconciliation or the end of the run. Watching starts *before* the initial
//! pass, so a change made during that pass arrives as an event instead of falling in the gap.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify_debouncer_full::DebounceEventResult;
use slog::{Logger, debug, error, info, warn};

use crate::config::Config;
use crate::exit::Outcome;
use crate::handle::open_root;
use crate::pass::{Engine, PassError};
use crate::queue::{Queue, Work};
use crate::report::Trigger;
use crate::run::pass_outcome;
use crate::watch::{self, WATCH_LIMIT_HINT, Watch};

/// What wakes the run loop.
pub enum Msg {
    Events(DebounceEventResult),
    Stop,
}

/// How often to look for a source that went away.
const SOURCE_RETRY: Duration = Duration::from_secs(1);

struct Live<'a> {
    config: &'a Config,
    engine: &'a Engine,
    log: &'a Logger,
    tx: Sender<Msg>,
    watch: Option<Watch>,
    /// SRC is gone: nothing is mirrored until it is back.
    paused: bool,
    limit_reported: bool,
    /// The last full pass was refused because SRC was empty: the next event retries it
    /// (SRC being filled again is exactly what would make it go through).
    retry_full: bool,
    /// When the latest sync ended and how much it opened (see `watch::is_own_echo`).
    last_sync: Option<(Instant, u64)>,
    /// The current watcher's inotify queue size.
    queue_limit: u64,
    /// How the latest pass or batch ended.
    last: Outcome,
}

/// Run live mode. `tx`/`rx` is the loop's channel; the signal handler sends `Msg::Stop` on it.
pub fn run(
    config: &Config,
    engine: &Engine,
    log: &Logger,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
) -> Outcome {
    let started = Instant::now();
    let end = config.duration.map(|d| started + d);
    let mut live = Live {
        config,
        engine,
        log,
        tx,
        watch: None,
        paused: false,
        limit_reported: false,
        retry_full: false,
        last_sync: None,
        queue_limit: watch::queue_limit(),
        last: Outcome::Success,
    };
    live.start_watch();
    live.full_pass(Trigger::Initial);
    info!(log, "watching"; "source" => %config.source.display(),
        "debounce_ms" => config.debounce.as_millis() as u64,
        "interval_s" => config.interval.as_secs_f64());
    let mut next_full = Instant::now() + config.interval;
    let mut queue = Queue::default();
    loop {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            info!(log, "duration reached, stopping"; "action" => "stop", "reason" => "duration");
            return live.last;
        }
        let mut wake = next_full;
        if let Some(e) = end {
            wake = wake.min(e);
        }
        if live.paused {
            wake = wake.min(now + SOURCE_RETRY);
        }
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Msg::Stop) => return live.stopped(),
            Ok(Msg::Events(batch)) => {
                live.absorb(batch, &mut queue);
                // Take whatever else is already waiting, so one burst is one batch.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Stop => return live.stopped(),
                        Msg::Events(b) => live.absorb(b, &mut queue),
                    }
                }
                if live.retry_full && !queue.is_empty() {
                    queue.full_pass("retrying the full pass refused while the source was empty");
                }
                if !live.paused && !queue.is_empty() {
                    live.sync(queue.take());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if live.paused {
                    live.try_resume();
                }
                if Instant::now() >= next_full {
                    if !live.paused {
                        live.full_pass(Trigger::Reconcile);
                    }
                    next_full = Instant::now() + config.interval;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return live.last,
        }
    }
}

impl Live<'_> {
    fn start_watch(&mut self) {
        self.queue_limit = watch::queue_limit();
        let tx = self.tx.clone();
        let backend = match self.config.poll {
            Some(every) => watch::Backend::Poll(every),
            None => watch::Backend::Inotify,
        };
        match watch::start_to(
            &self.config.source,
            self.config.debounce,
            backend,
            tx,
            Msg::Events,
        ) {
            Ok(w) => self.watch = Some(w),
            Err(e) if watch::is_watch_limit(&e) => {
                self.limit_reported = true;
                warn!(self.log, "{}", WATCH_LIMIT_HINT; "error" => %e);
            }
            Err(e) => warn!(self.log, "cannot watch the source; mirroring by periodic passes only";
                "error" => %e),
        }
    }

    fn absorb(&mut self, batch: DebounceEventResult, queue: &mut Queue) {
        match batch {
            Ok(events) => {
                for ev in &events {
                    debug!(self.log, "event"; "kind" => ?ev.kind, "paths" => ?ev.paths);
                    let mut hints = watch::interpret(ev, &self.config.source);
                    if hints.contains(&watch::Hint::Full(watch::LOST_EVENTS))
                        && self.last_sync.is_some_and(|(at, work)| {
                            watch::is_own_echo(
                                work,
                                at.elapsed(),
                                self.queue_limit,
                                self.config.debounce,
                            )
                        })
                    {
                        // The periodic pass, not another one now, covers what was lost.
                        info!(self.log, "inotify queue overflowed during our own pass; the next reconciliation covers it";
                            "action" => "overflow", "queue" => self.queue_limit);
                        hints.clear();
                    }
                    let hints = watch::drop_excluded(hints, &self.config.excludes);
                    if watch::enqueue(hints, queue) {
                        self.pause("the source folder was deleted or moved");
                    }
                }
            }
            Err(errors) => {
                for e in errors {
                    if watch::is_watch_limit(&e) {
                        if !self.limit_reported {
                            self.limit_reported = true;
                            warn!(self.log, "{}", WATCH_LIMIT_HINT; "error" => %e);
                        }
                    } else {
                        warn!(self.log, "watcher error; scheduling a full pass"; "error" => %e);
                        queue.full_pass("watcher error");
                    }
                }
            }
        }
    }

    fn sync(&mut self, work: Work) {
        let result = match work {
            Work::Full(why) => {
                info!(self.log, "full pass: {}", why; "action" => "full-pass", "reason" => %why);
                // Lost events may include the creation of directories, which is how the
                // watcher learns to watch them: watch the whole tree afresh, then reconcile
                // (a change in between is caught by the pass).
                if self.watch.is_some() {
                    self.watch = None;
                    self.start_watch();
                }
                self.engine.full_pass(Trigger::Rescan)
            }
            Work::Batch(batch) => self.engine.sync_batch(&batch, Trigger::Event),
        };
        self.record(result);
    }

    fn full_pass(&mut self, trigger: Trigger) {
        let result = self.engine.full_pass(trigger);
        self.record(result);
    }

    fn record(&mut self, result: Result<crate::report::Summary, PassError>) {
        if let Err(PassError::Source(e)) = &result {
            self.pause(&e.to_string());
            return;
        }
        if matches!(result, Err(PassError::Stopped)) {
            return;
        }
        self.retry_full = matches!(result, Err(PassError::EmptySource));
        if let Ok(s) = &result {
            self.last_sync = Some((Instant::now(), s.scanned + s.created + s.updated));
        }
        self.last = pass_outcome(self.log, result);
    }

    /// SRC went away: keep REPLICA as it is and wait for SRC to come back.
    fn pause(&mut self, why: &str) {
        if !self.paused {
            error!(self.log, "source unavailable ({}); replica left as it is, waiting for the source to return", why;
                "action" => "pause", "source" => %self.config.source.display());
        }
        self.paused = true;
        self.watch = None;
    }

    fn try_resume(&mut self) {
        let back = open_root(&self.config.source).is_ok();
        if back {
            info!(self.log, "source is back; watching again"; "action" => "resume",
                "source" => %self.config.source.display());
            self.paused = false;
            self.start_watch();
            self.full_pass(Trigger::Reconcile);
        }
    }

    fn stopped(&self) -> Outcome {
        self.engine.stop.store(true, Ordering::Relaxed);
        info!(self.log, "stop requested, stopping"; "action" => "stop", "reason" => "signal");
        Outcome::Success
    }
}
