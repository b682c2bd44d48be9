//! What live mode knows is not mirrored yet: entries that failed, and files deferred because
//! they were being written, with their retry schedule.
//!
//! A full pass re-decides every entry, so its report replaces what was known. A batch
//! re-decides the entries of the directories it compared, so only those are cleared before its
//! own failures and deferrals are added. This is what the exit status is made of: a run that
//! ends while anything here is still known not mirrored is partial, whatever the last batch did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::report::PassReport;

/// The first retry of a deferred copy; each further one waits twice as long...
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// ...up to this.
const MAX_RETRY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Retry {
    /// Deferred without interruption since.
    since: Instant,
    attempts: u32,
    /// Next try; `None` while one is queued.
    due: Option<Instant>,
    /// A snapshot copy was tried already: from then on only the back-off applies.
    snapshot_tried: bool,
}

#[derive(Debug, Default)]
pub struct Pending {
    failed: BTreeMap<PathBuf, String>,
    retry: BTreeMap<PathBuf, Retry>,
    /// Directories whose contents could not be read (unreadable, or gone while being
    /// opened), walked again on a back-off: a directory made readable later produces no
    /// event inside it, and comparing its parent does not look into it.
    unread: BTreeMap<PathBuf, Retry>,
    /// How long a file waits for its writes to pause before it is copied as a snapshot.
    patience: Duration,
    /// The longest wait before an unreadable directory is looked at again.
    unread_cap: Duration,
}

/// A retry that is due: the file, and whether it may be copied as a snapshot while its
/// writer keeps it open (it has waited a whole interval for its writes to pause).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub path: PathBuf,
    pub snapshot: bool,
    /// A directory whose contents could not be read: walk it whole (and watch it again).
    pub walk: bool,
}

fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (FIRST_RETRY * (1u32 << shift)).min(MAX_RETRY)
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new(""))
}

impl Pending {
    /// A file deferred for `patience` is next tried as a snapshot.
    ///
    /// An unreadable directory is looked at again on the same back-off, up to `unread_cap`
    /// (the interval: an unreadable `lost+found` is no reason to work every ten seconds).
    pub fn new(patience: Duration, unread_cap: Duration) -> Pending {
        Pending {
            patience,
            unread_cap,
            ..Default::default()
        }
    }

    /// Nothing is known not mirrored.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.retry.is_empty() && self.unread.is_empty()
    }

    pub fn failed(&self) -> usize {
        self.failed.len()
    }

    pub fn deferred(&self) -> usize {
        self.retry.len()
    }

    /// A full pass finished: it decided every entry.
    pub fn after_full_pass(&mut self, report: &PassReport, now: Instant) {
        self.failed = report.failed.iter().cloned().collect();
        self.retry
            .retain(|p, _| report.deferred.iter().any(|d| d == p));
        self.defer(&report.deferred, now);
        self.unread.retain(|p, _| report.unread.contains(p));
        self.unreadable(&report.unread, now);
    }

    fn unreadable(&mut self, dirs: &[PathBuf], now: Instant) {
        for d in dirs {
            let r = self.unread.entry(d.clone()).or_insert(Retry {
                since: now,
                attempts: 0,
                due: None,
                snapshot_tried: false,
            });
            r.attempts += 1;
            let wait = backoff(r.attempts)
                .max((FIRST_RETRY * (1u32 << r.attempts.min(16))).min(self.unread_cap));
            r.due = Some(now + wait);
        }
    }

    /// A batch finished: it decided the entries of the directories it compared (and those
    /// directories themselves). `exists` says whether a path is still in SRC or REPLICA: a
    /// failure recorded for a path that is in neither is moot. Returns the directories that
    /// could not be read before and were read now: the watcher could not watch them either.
    pub fn after_batch(
        &mut self,
        report: &PassReport,
        now: Instant,
        exists: impl Fn(&Path) -> bool,
    ) -> Vec<PathBuf> {
        let compared = &report.compared;
        let unread = &self.unread;
        // A failure to read a directory's contents is decided only by comparing that
        // directory; any other failure, by comparing the directory that lists it.
        let decided = |p: &Path| {
            compared.iter().any(|c| {
                c == p
                    || (c == parent(p)
                        && !unread.contains_key(p)
                        && !report.unread.contains(&p.to_path_buf()))
            })
        };
        self.failed.retain(|p, _| !decided(p) && exists(p));
        self.failed.extend(report.failed.iter().cloned());
        self.retry
            .retain(|p, _| !decided(p) || report.deferred.contains(p));
        // A retry this batch was meant to make but did not decide (its directory was not
        // compared: renamed away, refused, stopped) is scheduled again, not forgotten.
        for r in self.retry.values_mut() {
            if r.due.is_none() {
                r.due = Some(now + backoff(r.attempts.max(1)));
            }
        }
        self.defer(&report.deferred, now);
        let mut readable = Vec::new();
        self.unread.retain(|p, _| {
            let read = compared.contains(p) && !report.unread.contains(p);
            if read {
                readable.push(p.clone());
            }
            !compared.contains(p) && exists(p)
        });
        for r in self.unread.values_mut() {
            if r.due.is_none() {
                r.due = Some(now + backoff(r.attempts.max(1)));
            }
        }
        self.unreadable(&report.unread, now);
        readable
    }

    fn defer(&mut self, paths: &[PathBuf], now: Instant) {
        for p in paths {
            let r = self.retry.entry(p.clone()).or_insert(Retry {
                since: now,
                attempts: 0,
                due: None,
                snapshot_tried: false,
            });
            r.attempts += 1;
            let next = now + backoff(r.attempts);
            // The first snapshot is tried as soon as patience runs out; after that, only the
            // back-off paces the copies of a file that never settles.
            r.due = Some(if r.snapshot_tried {
                next
            } else {
                next.min(r.since + self.patience).max(now)
            });
        }
    }

    /// When the next retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.retry
            .values()
            .chain(self.unread.values())
            .filter_map(|r| r.due)
            .min()
    }

    /// Take the retries due by `now` (each is queued once until the batch that tries it
    /// reports back). A file deferred for `patience` or more may be copied as a snapshot.
    pub fn take_due(&mut self, now: Instant) -> Vec<Due> {
        let patience = self.patience;
        let mut out = Vec::new();
        for (p, r) in &mut self.retry {
            if r.due.is_some_and(|d| d <= now) {
                r.due = None;
                let snapshot = now.duration_since(r.since) >= patience;
                r.snapshot_tried |= snapshot;
                out.push(Due {
                    path: p.clone(),
                    snapshot,
                    walk: false,
                });
            }
        }
        for (p, r) in &mut self.unread {
            if r.due.is_some_and(|d| d <= now) {
                r.due = None;
                out.push(Due {
                    path: p.clone(),
                    snapshot: false,
                    walk: true,
                });
            }
        }
        out
    }

    /// Files deferred for longer than `limit`: they never settle.
    pub fn unsettled(&self, now: Instant, limit: Duration) -> Vec<&Path> {
        self.retry
            .iter()
            .filter(|(_, r)| now.duration_since(r.since) >= limit)
            .map(|(p, _)| p.as_path())
            .collect()
    }

    /// The first `n` entries that failed, with why (for the status record).
    pub fn failing(&self, n: usize) -> impl Iterator<Item = (&Path, &str)> {
        self.failed
            .iter()
            .take(n)
            .map(|(p, why)| (p.as_path(), why.as_str()))
    }

    /// A few of the entries known not mirrored, for the closing message.
    pub fn examples(&self, n: usize) -> Vec<String> {
        let failed = self
            .failed
            .iter()
            .map(|(p, why)| format!("{}: {why}", p.display()));
        let deferred = self
            .retry
            .keys()
            .map(|p| format!("{}: still being written", p.display()));
        failed.chain(deferred).take(n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failed: &[&str], deferred: &[&str], compared: &[&str]) -> PassReport {
        PassReport {
            failed: failed.iter().map(|p| (p.into(), "e".into())).collect(),
            deferred: deferred.iter().map(PathBuf::from).collect(),
            compared: compared.iter().map(PathBuf::from).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_failure_stays_until_its_directory_is_compared_again() {
        let now = Instant::now();
        let mut p = Pending::default();
        p.after_full_pass(&report(&["d/bad", "top"], &[], &[]), now);
        assert_eq!(p.failed(), 2);
        // A batch elsewhere, that failed nothing, does not clear them.
        p.after_batch(&report(&[], &[], &["x"]), now, |_| true);
        assert_eq!(p.failed(), 2);
        // Comparing d again without a failure clears d/bad only.
        p.after_batch(&report(&[], &[], &["d"]), now, |_| true);
        assert_eq!(p.failed(), 1);
        // A failure on a path that no longer exists anywhere is moot.
        p.after_batch(&report(&[], &[], &["x"]), now, |_| false);
        assert!(p.is_clean());
    }

    #[test]
    fn a_full_pass_replaces_what_was_known() {
        let now = Instant::now();
        let mut p = Pending::default();
        p.after_batch(&report(&["a"], &["b"], &[""]), now, |_| true);
        assert!(!p.is_clean());
        p.after_full_pass(&report(&[], &[], &[]), now);
        assert!(p.is_clean());
    }

    #[test]
    fn deferred_files_back_off_then_may_be_snapshots() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(60), Duration::from_secs(60));
        p.after_batch(&report(&[], &["log"], &[""]), t0, |_| true);
        assert_eq!(p.next_due(), Some(t0 + FIRST_RETRY));
        assert!(p.take_due(t0).is_empty());
        let t1 = t0 + FIRST_RETRY;
        let due = p.take_due(t1);
        assert_eq!(
            due,
            vec![Due {
                path: "log".into(),
                snapshot: false,
                walk: false,
            }]
        );
        assert_eq!(p.next_due(), None, "queued once until it reports back");
        p.after_batch(&report(&[], &["log"], &[""]), t1, |_| true);
        assert_eq!(p.next_due(), Some(t1 + FIRST_RETRY * 2));
        let late = t0 + Duration::from_secs(61);
        assert!(p.take_due(late)[0].snapshot);
        assert_eq!(p.unsettled(late, Duration::from_secs(60)).len(), 1);
        // It landed: the batch compared its directory and did not defer it.
        p.after_batch(&report(&[], &[], &[""]), late, |_| true);
        assert!(p.is_clean());
    }

    #[test]
    fn a_snapshot_is_tried_as_soon_as_patience_runs_out() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(2), Duration::from_secs(60));
        p.after_batch(&report(&[], &["db"], &[""]), t0, |_| true);
        let mut first_snapshot = None;
        let mut now = t0;
        while now < t0 + Duration::from_secs(3) && first_snapshot.is_none() {
            for due in p.take_due(now) {
                if due.snapshot {
                    first_snapshot = Some(now);
                }
                p.after_batch(&report(&[], &["db"], &[""]), now, |_| true);
            }
            now += Duration::from_millis(10);
        }
        let at = first_snapshot.expect("a snapshot was tried");
        assert!(at <= t0 + Duration::from_millis(2050), "{:?}", at - t0);
    }

    #[test]
    fn snapshots_of_a_file_that_never_settles_back_off() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(2), Duration::from_secs(60));
        let mut now = t0;
        let mut tries = 0;
        while now < t0 + Duration::from_secs(30) {
            if !p.take_due(now).is_empty() {
                tries += 1;
                p.after_batch(&report(&[], &["db"], &[""]), now, |_| true);
            } else if tries == 0 {
                p.after_batch(&report(&[], &["db"], &[""]), now, |_| true);
                tries = 1;
            }
            now += Duration::from_millis(50);
        }
        assert!(tries < 15, "{tries} tries in 30 s: no back-off");
    }

    #[test]
    fn a_retry_its_batch_did_not_decide_is_scheduled_again() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(60), Duration::from_secs(60));
        p.after_batch(&report(&[], &["d/log"], &["d"]), t0, |_| true);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(p.take_due(t1).len(), 1);
        // The batch that was to try it compared something else.
        p.after_batch(&report(&[], &[], &["x"]), t1, |_| true);
        assert!(p.next_due().is_some());
    }

    #[test]
    fn an_unreadable_directory_is_decided_only_by_comparing_it() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_secs(60), Duration::from_secs(60));
        let mut r = report(&["locked"], &[], &[""]);
        r.unread = vec!["locked".into()];
        p.after_batch(&r, t0, |_| true);
        assert_eq!(p.failed(), 1);
        // Its parent compared again (a chmod): still not decided, and a walk is scheduled.
        p.after_batch(&report(&[], &[], &[""]), t0, |_| true);
        assert_eq!(p.failed(), 1);
        let due = p.take_due(t0 + Duration::from_secs(1));
        assert!(due.iter().any(|d| d.walk && d.path == Path::new("locked")));
        // The walk compared it, without failing: done.
        p.after_batch(&report(&[], &[], &["", "locked"]), t0, |_| true);
        assert!(p.is_clean());
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(1), FIRST_RETRY);
        assert_eq!(backoff(3), FIRST_RETRY * 4);
        assert_eq!(backoff(40), MAX_RETRY);
    }
}
