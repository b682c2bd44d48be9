//! Where a walk's decisions go: to `apply` (which writes), or to a dry run (which only
//! tells). The walker and the planner never know which, so `--dry-run` and `--max-delete`'s
//! look-ahead cannot drift from what a real pass does.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::apply::{Applier, DirPair, Done};
use crate::entry::{Entry, Kind};
use crate::handle::open_child_dir;
use crate::plan::{Action, MetaFix, Reason, keeps_version};

/// A directory pair as the walk sees it. `dst` is `None` only in a dry run, for a replica
/// directory that a real pass would have created.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub src: BorrowedFd<'a>,
    pub dst: Option<BorrowedFd<'a>>,
    pub rel: &'a Path,
    /// The replica directory's answer to "does a file made here inherit an ACL?", asked at
    /// most once (`None`: ask at every copy).
    pub inherits_acl: Option<&'a std::sync::OnceLock<bool>>,
}

pub trait Sink: Sync {
    /// Does this sink change the disk? A dry run and the look-ahead do not: the walk then
    /// reads the replica as if their renames had happened.
    fn writes(&self) -> bool {
        true
    }
    /// About to change entries in `dir`.
    fn prepare_dir(&self, dir: Target<'_>);
    /// Carry out (or report) one planned action in `dir`.
    fn apply(&self, dir: Target<'_>, action: &Action) -> Done;
    /// Carry out (or report) the metadata fix the plan decided for `dir` once everything in
    /// it is done (or the error that kept it from being decided). `quiet` when this pass
    /// wrote in the directory: restamping its mtime is then bookkeeping, not news.
    fn finish_dir(&self, dir: Target<'_>, fix: io::Result<MetaFix>, quiet: bool);
    /// Carry out (or report) a planned `Action::Link` in `dir`, once the walk's copies are
    /// done: `leader` is the replica directory and name of the link set's leader (`None` in a
    /// dry run where it does not exist yet).
    fn link(
        &self,
        dir: Target<'_>,
        leader: Option<(BorrowedFd<'_>, &OsStr)>,
        action: &Action,
    ) -> Done;
    /// Rename a replica entry (over an entry of kind `replaces`, if the replica holds one
    /// under the new name); `false` makes the caller fall back to copy + delete.
    fn rename(
        &self,
        from: (BorrowedFd<'_>, &OsStr),
        to: (BorrowedFd<'_>, &OsStr),
        paths: (&Path, &Path),
        kind: Kind,
        replaces: Option<Kind>,
    ) -> Done;
}

impl Sink for Applier<'_> {
    fn prepare_dir(&self, dir: Target<'_>) {
        if let Some(dst) = dir.dst {
            Applier::prepare_dir(
                self,
                DirPair {
                    src: dir.src,
                    dst,
                    rel: dir.rel,
                    inherits_acl: dir.inherits_acl,
                },
            );
        }
    }

    fn apply(&self, dir: Target<'_>, action: &Action) -> Done {
        match dir.dst {
            Some(dst) => Applier::apply(
                self,
                DirPair {
                    src: dir.src,
                    dst,
                    rel: dir.rel,
                    inherits_acl: dir.inherits_acl,
                },
                action,
            ),
            None => false,
        }
    }

    fn finish_dir(&self, dir: Target<'_>, fix: io::Result<MetaFix>, quiet: bool) {
        if let Some(dst) = dir.dst {
            Applier::finish_dir(
                self,
                DirPair {
                    src: dir.src,
                    dst,
                    rel: dir.rel,
                    inherits_acl: dir.inherits_acl,
                },
                fix,
                quiet,
            );
        }
    }

    fn link(
        &self,
        dir: Target<'_>,
        leader: Option<(BorrowedFd<'_>, &OsStr)>,
        action: &Action,
    ) -> Done {
        match (dir.dst, leader) {
            (Some(dst), Some(leader)) => Applier::link(
                self,
                DirPair {
                    src: dir.src,
                    dst,
                    rel: dir.rel,
                    inherits_acl: dir.inherits_acl,
                },
                leader,
                action,
            ),
            _ => false,
        }
    }

    fn rename(
        &self,
        from: (BorrowedFd<'_>, &OsStr),
        to: (BorrowedFd<'_>, &OsStr),
        paths: (&Path, &Path),
        kind: Kind,
        replaces: Option<Kind>,
    ) -> Done {
        Applier::rename(self, from, to, paths, kind, replaces)
    }
}

/// Reports what a pass would do, itemized like `rsync -i`, and changes nothing. With no
/// output it only counts removals (the look-ahead behind `--max-delete`).
pub struct DryRun<'a> {
    pub out: Option<&'a Mutex<Box<dyn Write + Send>>>,
    /// Replica entries that would be removed, counting everything inside removed dirs.
    pub removals: AtomicU64,
    pub actions: AtomicU64,
    /// `--versions`: say which removals and overwrites would keep a version.
    pub versions: bool,
}

impl<'a> DryRun<'a> {
    pub fn new(out: Option<&'a Mutex<Box<dyn Write + Send>>>, versions: bool) -> Self {
        DryRun {
            out,
            removals: AtomicU64::new(0),
            actions: AtomicU64::new(0),
            versions,
        }
    }

    /// The note of a line, with `, version kept` when a real pass would keep one: the same
    /// question apply asks ([`keeps_version`]).
    fn noted(&self, note: String, keeps: bool) -> String {
        if self.versions && keeps {
            format!("{note}, version kept")
        } else {
            note
        }
    }

    fn line(&self, sym: char, kind: &str, path: &Path, note: &str) {
        self.actions.fetch_add(1, Ordering::Relaxed);
        if let Some(out) = self.out
            && let Ok(mut out) = out.lock()
        {
            let shown = if path.as_os_str().is_empty() {
                Path::new(".")
            } else {
                path
            };
            let _ = writeln!(out, "{sym} {kind:<7} {} ({note})", shown.display());
        }
    }
}

/// Entries below (and including) a replica directory, read-only.
fn count_tree(parent: BorrowedFd<'_>, name: &OsStr) -> u64 {
    struct Count(u64);
    impl crate::subtree::Visitor for Count {
        fn leave(&mut self, _p: BorrowedFd<'_>, _e: &Entry, _rel: &Path) -> io::Result<()> {
            self.0 += 1;
            Ok(())
        }
    }
    let Ok(fd) = open_child_dir(parent, name) else {
        return 1;
    };
    let mut count = Count(0);
    let _ = crate::subtree::walk(fd.as_fd(), Path::new(""), &mut count);
    1 + count.0
}

impl Sink for DryRun<'_> {
    fn writes(&self) -> bool {
        false
    }

    fn prepare_dir(&self, _dir: Target<'_>) {}

    fn apply(&self, dir: Target<'_>, action: &Action) -> Done {
        let path = dir.rel.join(action.name());
        let keeps = keeps_version(action);
        match action {
            Action::Remove { name, kind, reason } => {
                let n = match (kind, dir.dst) {
                    (Kind::Dir, Some(dst)) => count_tree(dst, name),
                    _ => 1,
                };
                self.removals.fetch_add(n, Ordering::Relaxed);
                let note = if n > 1 {
                    format!("{}, {} entries", reason.as_str(), n)
                } else {
                    reason.as_str().to_owned()
                };
                self.line('-', kind.as_str(), &path, &self.noted(note, keeps));
            }
            Action::MakeDir { reason, .. } => self.line('+', "dir", &path, reason.as_str()),
            Action::CopyFile { reason, .. } => {
                let sym = if *reason == Reason::New { '+' } else { '>' };
                let note = self.noted(reason.as_str().to_owned(), keeps);
                self.line(sym, "file", &path, &note);
            }
            Action::CheckContent { .. } => self.line('?', "file", &path, "checksum compare"),
            Action::AppendFile { .. } => self.line('>', "file", &path, "appended, if a prefix"),
            Action::Symlink { target, reason, .. } => {
                let note = format!("{} -> {}", reason.as_str(), Path::new(target).display());
                self.line('+', "symlink", &path, &self.noted(note, keeps));
            }
            Action::SetMeta { fix, .. } => self.line('~', "meta", &path, &describe_fix(fix)),
            Action::Link { leader, reason, .. } => {
                let note = format!("{}, hard link of {}", reason.as_str(), leader.display());
                let sym = if *reason == Reason::New { '+' } else { '>' };
                self.line(sym, "link", &path, &self.noted(note, keeps));
            }
            Action::SkipSpecial { .. } => self.line('!', "special", &path, "skipped"),
            Action::Unsupported { why, .. } => self.line('!', "skip", &path, &why.to_string()),
        }
        true
    }

    fn finish_dir(&self, dir: Target<'_>, fix: io::Result<MetaFix>, quiet: bool) {
        if let Ok(fix) = fix
            && !quiet
            && !fix.is_empty()
        {
            self.line('~', "meta", dir.rel, &describe_fix(&fix));
        }
    }

    fn link(
        &self,
        dir: Target<'_>,
        _leader: Option<(BorrowedFd<'_>, &OsStr)>,
        action: &Action,
    ) -> Done {
        self.apply(dir, action)
    }

    fn rename(
        &self,
        _from: (BorrowedFd<'_>, &OsStr),
        _to: (BorrowedFd<'_>, &OsStr),
        (from, to): (&Path, &Path),
        kind: Kind,
        replaces: Option<Kind>,
    ) -> Done {
        // Nothing moves: the walk reads the replica as if it had, so the rename is neither a
        // removal nor a creation here either.
        let note = format!("renamed from {}", from.display());
        self.line(
            '>',
            kind.as_str(),
            to,
            &self.noted(note, replaces.is_some()),
        );
        true
    }
}

fn describe_fix(fix: &MetaFix) -> String {
    let mut parts = Vec::new();
    if let Some(m) = fix.mode {
        parts.push(format!("mode {m:04o}"));
    }
    if fix.mtime.is_some() {
        parts.push("mtime".to_owned());
    }
    if let Some((u, g)) = fix.owner {
        parts.push(format!("owner {u}:{g}"));
    }
    if fix.xattrs.is_some() {
        parts.push("xattrs".to_owned());
    }
    parts.join(", ")
}
