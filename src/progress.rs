//! A progress display on stderr for the running pass.
//!
//! A thread polls [`Engine::current`](crate::pass::Engine) (the running pass's counters) and
//! shows entries checked, entries written (created or updated), bytes copied and the copy
//! rate. At the start of the run a second thread counts the entries and bytes in SRC (with
//! the excludes applied); once it is done, the first pass gets a bar with a percentage and an
//! ETA (at the pass's average pace over entries). Later passes (live mode's reconciliations
//! and event batches) show counts only.
//!
//! On a terminal it is an indicatif bar, cleared when the pass ends; after the first pass it
//! is drawn only once a pass has run for a moment, so quick event batches do not flash.
//! Console log records (stdout) are written with the bar cleared (see [`suspend`]), so they
//! never share a line. When stderr is not a terminal (`--progress always` into a pipe or a
//! file) it prints a plain line every few seconds and one when a pass ends (the first, or any
//! that took a moment).
//!
//! Stopping it (dropping the [`Progress`]) clears the bar and joins the thread: `run` does so
//! before returning, so the bar is gone before `main` flushes the log.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use crate::exclude::Excludes;
use crate::report::Counters;

/// How often `current` is looked at: short, so even a brief pass is seen.
const POLL: Duration = Duration::from_millis(10);
/// How often the display is updated.
const DRAW: Duration = Duration::from_millis(100);
/// A later pass (an event batch, a reconciliation) shorter than this shows no bar on a
/// terminal and prints no line off one; the run's first pass is always shown.
const SHOW_AFTER: Duration = Duration::from_millis(250);
/// How often a plain (not a terminal) progress line is printed while a pass runs.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The bar on screen, if any: console log records are written around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Run `f` (which writes to the terminal) with the progress bar, if one is drawn, cleared
/// meanwhile and redrawn after.
///
/// The lock is held throughout, so the bar cannot be cleared away (and forgotten) half-way
/// through a write: that left a log record on the bar's line.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let active = ACTIVE.lock();
    match active.as_ref().ok().and_then(|b| b.as_ref()) {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// What SRC holds, counted at the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Entries below SRC (not SRC itself), as a full pass counts them in `scanned`.
    pub entries: u64,
    /// Bytes in regular files.
    pub bytes: u64,
}

/// Count what a full pass will scan: every entry below `root` that the excludes keep,
/// without following symlinks. `None` if cancelled.
pub fn count(root: &std::path::Path, excludes: &Excludes, cancel: &AtomicBool) -> Option<Totals> {
    struct Count<'a> {
        t: Totals,
        excludes: &'a Excludes,
        cancel: &'a AtomicBool,
    }
    impl crate::subtree::Visitor for Count<'_> {
        fn wants(&mut self, e: &crate::entry::Entry, rel: &std::path::Path) -> bool {
            !self
                .excludes
                .excludes(rel, e.kind == crate::entry::Kind::Dir)
        }
        fn enter(
            &mut self,
            _d: std::os::fd::BorrowedFd<'_>,
            _r: &std::path::Path,
        ) -> std::io::Result<()> {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            Ok(())
        }
        fn unreadable(
            &mut self,
            _rel: &std::path::Path,
            _e: std::io::Error,
        ) -> std::io::Result<()> {
            // Counted as an entry of its parent; the pass reports it.
            Ok(())
        }
        fn leave(
            &mut self,
            _p: std::os::fd::BorrowedFd<'_>,
            e: &crate::entry::Entry,
            _rel: &std::path::Path,
        ) -> std::io::Result<()> {
            self.t.entries += 1;
            if e.kind == crate::entry::Kind::File {
                self.t.bytes += e.size;
            }
            Ok(())
        }
    }
    let root = crate::handle::open_root(root).ok()?;
    let mut c = Count {
        t: Totals::default(),
        excludes,
        cancel,
    };
    match crate::subtree::walk(
        std::os::fd::AsFd::as_fd(&root),
        std::path::Path::new(""),
        &mut c,
    ) {
        Ok(()) => Some(c.t),
        Err(_) if cancel.load(Ordering::Relaxed) => None,
        Err(_) => Some(c.t),
    }
}

/// What the display needs from the configuration.
pub struct Options {
    pub source: PathBuf,
    pub excludes: Excludes,
}

/// The running display; dropping it stops the thread and clears the bar.
pub struct Progress<'scope> {
    stop: Arc<AtomicBool>,
    /// Stops the count of SRC: set when the display stops or the first pass ends.
    cancel_count: Arc<AtomicBool>,
    thread: Option<ScopedJoinHandle<'scope, ()>>,
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cancel_count.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the display thread in `scope`, watching `current`.
pub fn start<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    current: &'env Mutex<Option<Arc<Counters>>>,
    opts: Options,
) -> Progress<'scope> {
    let stop = Arc::new(AtomicBool::new(false));
    let cancel_count = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(OnceLock::new());
    {
        // Not joined: a walk stuck on a dead network mount must not hold up the exit. It
        // only reads, and stops at the next entry once cancelled.
        let (cancel, totals) = (Arc::clone(&cancel_count), Arc::clone(&totals));
        let _ = std::thread::Builder::new()
            .name("replwatch-count".into())
            .spawn(move || {
                if let Some(t) = count(&opts.source, &opts.excludes, &cancel) {
                    let _ = totals.set(t);
                }
            });
    }
    let (flag, cancel) = (Arc::clone(&stop), Arc::clone(&cancel_count));
    let thread = std::thread::Builder::new()
        .name("replwatch-progress".into())
        .spawn_scoped(scope, move || display(current, &flag, &totals, &cancel))
        .ok();
    Progress {
        stop,
        cancel_count,
        thread,
    }
}

fn display(
    current: &Mutex<Option<Arc<Counters>>>,
    stop: &AtomicBool,
    totals: &OnceLock<Totals>,
    cancel_count: &AtomicBool,
) {
    // The totals are only for the first pass: once it ends, counting is wasted work.
    let end = |s: Shown<'_>| {
        s.finish();
        cancel_count.store(true, Ordering::Relaxed);
    };
    let terminal = std::io::stderr().is_terminal();
    let mut shown: Option<Shown> = None;
    let mut first = true;
    let mut last_draw: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let cur = current.lock().ok().and_then(|c| c.clone());
        match cur {
            Some(c) if shown.as_ref().is_some_and(|s| Arc::ptr_eq(&s.counters, &c)) => {}
            Some(c) => {
                if let Some(s) = shown.take() {
                    end(s);
                }
                // Totals describe the whole tree: they fit the run's first (full) pass only.
                shown = Some(Shown::new(c, first.then_some(totals), terminal));
                first = false;
                last_draw = None;
            }
            None => {
                if let Some(s) = shown.take() {
                    end(s);
                }
            }
        }
        if let Some(s) = &mut shown
            && last_draw.is_none_or(|t| t.elapsed() >= DRAW)
        {
            s.draw();
            last_draw = Some(Instant::now());
        }
        std::thread::sleep(POLL);
    }
    if let Some(s) = shown.take() {
        end(s);
    }
}

/// The display of one pass.
struct Shown<'a> {
    counters: Arc<Counters>,
    totals: Option<&'a OnceLock<Totals>>,
    started: Instant,
    terminal: bool,
    bar: Option<ProgressBar>,
    /// Whether the bar has its length (the totals arrived).
    sized: bool,
    last_plain: Instant,
}

/// A snapshot of a pass, ready to show.
struct Status {
    entries: u64,
    /// Entries created or updated.
    written: u64,
    bytes: u64,
    elapsed: Duration,
    totals: Option<Totals>,
}

impl Status {
    /// Bytes per second over the pass so far.
    fn rate(&self) -> u64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.bytes as f64 / secs) as u64
        } else {
            0
        }
    }

    /// "12 written, 3.4 MiB copied (1.2 MiB/s)": entries created or updated (files, directories,
    /// links) and file bytes, with the tree's size once known.
    fn message(&self) -> String {
        let mut m = format!(
            "{} written, {} copied ({}/s)",
            HumanCount(self.written),
            HumanBytes(self.bytes),
            HumanBytes(self.rate())
        );
        if let Some(t) = self.totals {
            m.push_str(&format!(", SRC holds {}", HumanBytes(t.bytes)));
        }
        m
    }

    /// One line for a log file or a pipe.
    fn plain(&self, done: bool) -> String {
        let mut line = String::from("replwatch: progress: ");
        match self.totals {
            Some(t) if t.entries > 0 => {
                let pct = (self.entries.min(t.entries) * 100) / t.entries;
                line.push_str(&format!(
                    "{}/{} entries checked ({pct}%), ",
                    HumanCount(self.entries),
                    HumanCount(t.entries)
                ));
            }
            _ => line.push_str(&format!("{} entries checked, ", HumanCount(self.entries))),
        }
        line.push_str(&self.message());
        if done {
            line.push_str(&format!(
                ", pass ended after {}",
                HumanDuration(self.elapsed)
            ));
        } else if let Some(eta) = self.eta() {
            line.push_str(&format!(", ETA {}", short(eta)));
        }
        line
    }

    /// Time left at the pass's average pace over entries, once the totals are known.
    fn eta(&self) -> Option<Duration> {
        let t = self.totals?;
        if self.entries == 0 || self.entries >= t.entries {
            return None;
        }
        let left = (t.entries - self.entries) as f64 / self.entries as f64;
        Some(self.elapsed.mul_f64(left))
    }
}

impl<'a> Shown<'a> {
    fn new(counters: Arc<Counters>, totals: Option<&'a OnceLock<Totals>>, terminal: bool) -> Self {
        Shown {
            counters,
            totals,
            started: Instant::now(),
            terminal,
            bar: None,
            sized: false,
            last_plain: Instant::now(),
        }
    }

    fn status(&self) -> Status {
        let c = &self.counters;
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Status {
            entries: g(&c.scanned),
            written: g(&c.created) + g(&c.updated),
            bytes: g(&c.bytes),
            elapsed: self.started.elapsed(),
            totals: self.totals.and_then(|t| t.get().copied()),
        }
    }

    fn draw(&mut self) {
        let s = self.status();
        if !self.terminal {
            if self.last_plain.elapsed() >= PLAIN_EVERY {
                plain_line(&s.plain(false));
                self.last_plain = Instant::now();
            }
            return;
        }
        if self.bar.is_none() {
            // Only the first pass has totals.
            if s.elapsed < SHOW_AFTER && self.totals.is_none() {
                return;
            }
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10))
                .with_style(counting_style())
                .with_elapsed(s.elapsed);
            if let Ok(mut a) = ACTIVE.lock() {
                *a = Some(bar.clone());
            }
            self.bar = Some(bar);
        }
        let Some(bar) = &self.bar else { return };
        if s.totals.is_some() && !self.sized {
            bar.set_style(sized_style());
            self.sized = true;
        }
        bar.update(|st| {
            if let Some(t) = s.totals {
                // max: entries created in SRC since it was counted.
                st.set_len(t.entries.max(s.entries));
            }
            st.set_pos(s.entries);
        });
        // indicatif's own {eta} guesses from recent steps, which jump when a directory is
        // listed; the pass's average pace is steadier.
        bar.set_message(match s.eta() {
            Some(eta) => format!("ETA {} · {}", short(eta), s.message()),
            None => s.message(),
        });
    }

    /// The pass ended: clear the bar, or print a last plain line (for the first pass and any
    /// pass long enough to matter; not for every quick event batch of live mode).
    fn finish(self) {
        if let Some(bar) = &self.bar {
            // Clear it while no record is being written, then forget it.
            let mut active = ACTIVE.lock();
            bar.finish_and_clear();
            if let Ok(a) = active.as_mut() {
                **a = None;
            }
        } else if !self.terminal {
            let s = self.status();
            if self.totals.is_some() || s.elapsed >= SHOW_AFTER {
                plain_line(&s.plain(true));
            }
        }
    }
}

/// "42s", "3m05s", "2h07m": short enough for a bar.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn plain_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

// The message comes last and is cut to the terminal's width, so the bar stays one line.
fn counting_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {elapsed_precise} {human_pos} entries checked · {wide_msg}",
    )
    .expect("a valid progress template")
}

fn sized_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {elapsed_precise} [{bar:20.cyan/blue}] {percent:>3}% {human_pos}/{human_len} entries · {wide_msg}",
    )
    .expect("a valid progress template")
    .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_matches_what_a_pass_scans() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("build/x")).unwrap();
        std::fs::write(root.join("a/b/f"), b"12345").unwrap();
        std::fs::write(root.join("g.tmp"), b"123").unwrap();
        std::fs::write(root.join("h"), b"12").unwrap();
        std::fs::write(root.join("build/x/y"), b"1234567").unwrap();
        std::os::unix::fs::symlink("h", root.join("link")).unwrap();
        let none = AtomicBool::new(false);
        let all = count(root, &Excludes::none(), &none).unwrap();
        // a, a/b, a/b/f, build, build/x, build/x/y, g.tmp, h, link
        assert_eq!(
            all,
            Totals {
                entries: 9,
                bytes: 17
            }
        );
        let ex = Excludes::new(&["*.tmp".into(), "build/".into()]).unwrap();
        assert_eq!(
            count(root, &ex, &none).unwrap(),
            Totals {
                entries: 5,
                bytes: 7
            }
        );
        assert_eq!(count(root, &ex, &AtomicBool::new(true)), None);
    }

    #[test]
    fn short_durations() {
        let d = Duration::from_secs;
        assert_eq!(short(d(0)), "0s");
        assert_eq!(short(d(59)), "59s");
        assert_eq!(short(d(185)), "3m05s");
        assert_eq!(short(d(7620)), "2h07m");
    }

    #[test]
    fn plain_lines_say_what_is_known() {
        let mut s = Status {
            entries: 50,
            written: 3,
            bytes: 3 << 20,
            elapsed: Duration::from_secs(2),
            totals: None,
        };
        let line = s.plain(false);
        assert!(
            line.contains("50 entries checked, 3 written, 3.00 MiB copied"),
            "{line}"
        );
        assert!(!line.contains("ETA"), "{line}");
        s.totals = Some(Totals {
            entries: 200,
            bytes: 10 << 20,
        });
        let line = s.plain(false);
        assert!(line.contains("50/200 entries checked (25%)"), "{line}");
        assert!(line.contains("ETA 6s"), "{line}");
        assert!(s.plain(true).contains("pass ended after 2 seconds"));
    }
}
