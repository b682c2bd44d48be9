//! The only code that writes to the replica.
//!
//! Every action, from a full pass or a watcher event, ends here, and every write goes through
//! a directory handle with symlinks refused on the last component, so nothing outside the
//! replica can be reached. With `--versions`, what an action would destroy is kept in the
//! versions folder instead; `versions` does that, and its retention, on apply's behalf.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rustix::fs::{
    AtFlags, Mode, chmodat, chownat, fchmod, fchown, fstat, futimens, mkdirat, renameat, symlinkat,
    unlinkat, utimensat,
};
use rustix::io::Errno;

use crate::copy::{self, CopyError, CopyOptions, gid, uid};
use crate::entry::{Entry, Kind};
use crate::fscaps::times;
use crate::handle::open_child_dir;
use crate::plan::{Action, MetaFix, PlanOptions, Reason, after_checksum, keeps_version};
use crate::report::{Counters, Reporter, Tally};
use crate::scan::{entry_from_stat, stat_entry};
use crate::tempname::temp_name;
use crate::versions::{Keep, Keeper};
use crate::xattr;

/// A source directory and its replica counterpart, open, with the replica-relative path used
/// in logs.
#[derive(Clone, Copy)]
pub struct DirPair<'a> {
    pub src: BorrowedFd<'a>,
    pub dst: BorrowedFd<'a>,
    pub rel: &'a Path,
    /// See `sink::Target::inherits_acl`.
    pub inherits_acl: Option<&'a std::sync::OnceLock<bool>>,
}

/// Applies actions, logging and counting each.
pub struct Applier<'a> {
    pub reporter: &'a Reporter,
    pub counters: &'a Counters,
    pub plan: PlanOptions,
    pub copy: CopyOptions,
    pub stop: &'a AtomicBool,
    /// Files that may be copied as a snapshot while still open for writing.
    pub snapshot: Option<&'a BTreeSet<PathBuf>>,
    /// A copy that saw its source being written is deferred (live mode tries it again once
    /// the writes pause) instead of being a fault.
    pub defer: bool,
    /// `--versions`: what a removal or an overwrite would destroy is kept here instead.
    pub versions: Option<&'a Keeper>,
}

/// Did an action leave the replica as planned?
pub type Done = bool;

impl Applier<'_> {
    pub fn apply(&self, dir: DirPair<'_>, action: &Action) -> Done {
        let path = dir.rel.join(action.name());
        let result = match action {
            Action::Remove { name, kind, reason } => {
                let keep = self.keeps(action);
                self.remove(dir, name, *kind, *reason, &path, keep)
            }
            Action::MakeDir { name, reason } => mkdirat(dir.dst, name, Mode::from_raw_mode(0o700))
                .or_else(|e| exists_as_dir(dir.dst, name, e))
                .map(|()| {
                    let (tally, why) = tally_for(*reason);
                    self.report(tally, "mkdir", &path, Kind::Dir, why, 0);
                })
                .map_err(io::Error::from),
            Action::CopyFile { name, reason } => {
                return self.copy(dir, name, *reason, &path, self.keeps(action));
            }
            Action::CheckContent { name } => return self.check_content(dir, name, &path),
            Action::AppendFile { name } => return self.append(dir, name, &path),
            Action::Symlink {
                name,
                target,
                reason,
            } => self.symlink(dir, name, target, *reason, &path, self.keeps(action)),
            Action::SetMeta { name, fix } => {
                set_meta(dir.dst, name, fix, self.copy.set_atime).map(|()| {
                    self.report(Tally::Meta, "meta", &path, Kind::File, "metadata", 0);
                })
            }
            // The walk carries links out once its copies are done, through `link`.
            Action::Link { .. } => Err(io::Error::other("a link needs its leader's directory")),
            Action::Unsupported { why, .. } => {
                self.reporter
                    .unsupported(self.counters, &path, &why.to_string());
                Ok(())
            }
            Action::SkipSpecial { .. } => {
                self.reporter.skipped(
                    self.counters,
                    &path,
                    "special file (fifo, socket or device)",
                );
                Ok(())
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                self.reporter.fault(self.counters, verb(action), &path, &e);
                false
            }
        }
    }

    fn report(
        &self,
        tally: Tally,
        act: &'static str,
        p: &Path,
        k: Kind,
        why: &'static str,
        b: u64,
    ) {
        self.reporter
            .action(self.counters, tally, act, p, k.as_str(), why, b);
    }

    /// Is a version of what `action` destroys to be kept? The plan says whether it destroys
    /// anything (the dry run asks the same question); `--versions` says whether to keep it.
    fn keeps(&self, action: &Action) -> bool {
        self.versions.is_some() && keeps_version(action)
    }

    /// Report a version kept (and what retention removed meanwhile).
    fn kept(&self, path: &Path, kind: Kind, keep: Keep) {
        if let Keep::Kept(k) = keep {
            self.reporter
                .version(self.counters, path, &k.to, kind.as_str());
            self.reporter.retention(self.counters, &k);
        }
    }

    /// Keep the entry under `name` (about to be replaced by a rename over it) as a version.
    /// An error leaves it in place, and the caller does not replace it.
    fn keep_old(&self, dir: DirPair<'_>, name: &OsStr, path: &Path, kind: Kind) -> io::Result<()> {
        let Some(keeper) = self.versions else {
            return Ok(());
        };
        let keep = keeper
            .keep_before_replace(dir.dst, name, dir.rel)
            .map_err(not_kept)?;
        self.kept(path, kind, keep);
        Ok(())
    }

    fn remove(
        &self,
        dir: DirPair<'_>,
        name: &OsStr,
        kind: Kind,
        reason: Reason,
        path: &Path,
        keep: bool,
    ) -> io::Result<()> {
        if let Some(keeper) = self.versions.filter(|_| keep) {
            // One rename, whatever it is: a whole tree costs what a file does.
            let kept = keeper
                .keep_by_rename(dir.dst, name, dir.rel)
                .map_err(not_kept)?;
            self.kept(path, kind, kept);
            self.report(Tally::Removed, "remove", path, kind, reason.as_str(), 0);
            return Ok(());
        }
        let removed = if kind == Kind::Dir {
            remove_tree(dir.dst, name)?
        } else {
            match unlinkat(dir.dst, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => 1,
                // Became a directory since it was scanned: remove it as one.
                Err(Errno::ISDIR) => remove_tree(dir.dst, name)?,
                Err(e) => return Err(e.into()),
            }
        };
        self.report(Tally::Removed, "remove", path, kind, reason.as_str(), 0);
        if removed > 1 {
            slog::debug!(self.reporter.log, "removed subtree"; "path" => %path.display(), "entries" => removed);
        }
        Ok(())
    }

    fn copy(
        &self,
        dir: DirPair<'_>,
        name: &OsStr,
        reason: Reason,
        path: &Path,
        keep: bool,
    ) -> Done {
        let snapshot = self.snapshot.is_some_and(|s| s.contains(path));
        let keep_old = || self.keep_old(dir, name, path, Kind::File);
        let before_replace: Option<&dyn Fn() -> io::Result<()>> = keep.then_some(&keep_old);
        let mut opts = self.copy;
        // A new file's only attributes in the mirrored namespaces are an ACL inherited from its
        // directory's default ACL: without one (or without ACLs mirrored) there is nothing to
        // read back from the temp file.
        opts.bare_temp = !opts.xattrs.acl
            || dir
                .inherits_acl
                .is_some_and(|c| !*c.get_or_init(|| xattr::has_default_acl(dir.dst)));
        match copy::copy_file(
            dir.src,
            dir.dst,
            name,
            opts,
            snapshot,
            self.stop,
            before_replace,
        ) {
            Ok(bytes) => {
                let (tally, why) = tally_for(reason);
                self.report(tally, "copy", path, Kind::File, why, bytes);
                true
            }
            Err(e) => self.copy_failed(path, e),
        }
    }

    /// A source that grew: only its new bytes, if the replica holds the rest (see `append`),
    /// else a whole copy.
    fn append(&self, dir: DirPair<'_>, name: &OsStr, path: &Path) -> Done {
        let snapshot = self.snapshot.is_some_and(|s| s.contains(path));
        let opts = self.copy;
        match crate::append::append_file(dir.src, dir.dst, name, opts, snapshot, self.stop) {
            Ok(Some(bytes)) => {
                self.report(
                    Tally::Updated,
                    "append",
                    path,
                    Kind::File,
                    "appended",
                    bytes,
                );
                true
            }
            Ok(None) => self.copy(dir, name, Reason::Changed, path, false),
            Err(e) => self.copy_failed(path, e),
        }
    }

    /// Report a copy that did not land.
    fn copy_failed(&self, path: &Path, e: CopyError) -> Done {
        match e {
            e @ (CopyError::Busy | CopyError::Unstable) if self.defer => {
                self.reporter.deferred(self.counters, path, &e.to_string());
                false
            }
            CopyError::Io(e) => {
                self.reporter.fault(self.counters, "copy", path, &e);
                false
            }
            CopyError::Stopped => {
                self.counters
                    .cut
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                false
            }
            e => {
                self.reporter
                    .fault_msg(self.counters, "copy", path, &e.to_string());
                false
            }
        }
    }

    /// `--checksum` on a same-size file: hash both, and carry out what the plan decides from
    /// that (a copy, a metadata fix, or nothing).
    fn check_content(&self, dir: DirPair<'_>, name: &OsStr, path: &Path) -> Done {
        let decided = (|| -> io::Result<Option<Action>> {
            let src = copy::open_source(dir.src, name).map_err(|e| match e {
                CopyError::Io(e) => e,
                other => io::Error::new(io::ErrorKind::NotFound, other.to_string()),
            })?;
            let src_entry = entry_from_stat(name.to_owned(), &fstat(&src)?);
            let rep = copy::open_replica_file(dir.dst, name)?;
            let rep_entry = entry_from_stat(name.to_owned(), &fstat(&rep)?);
            let same = copy::hash_fd(src)? == copy::hash_fd(rep)?;
            Ok(after_checksum(&src_entry, &rep_entry, same, self.plan))
        })();
        match decided {
            Ok(Some(action)) => self.apply(dir, &action),
            Ok(None) => true,
            Err(e) => {
                self.reporter.fault(self.counters, "checksum", path, &e);
                false
            }
        }
    }

    fn symlink(
        &self,
        dir: DirPair<'_>,
        name: &OsStr,
        target: &OsStr,
        reason: Reason,
        path: &Path,
        keep: bool,
    ) -> io::Result<()> {
        let src = stat_entry(dir.src, name)?
            .filter(|e| e.kind == Kind::Symlink && e.target.as_deref() == Some(target))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "source symlink changed or vanished",
                )
            })?;
        let tmp = temp_name(name);
        symlinkat(target, dir.dst, &*tmp)?;
        let finish = || -> io::Result<()> {
            if self.plan.owner {
                chownat(
                    dir.dst,
                    &*tmp,
                    Some(uid(src.uid)),
                    Some(gid(src.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            let ns = self.copy.xattrs;
            if ns.any() {
                let want = xattr::read(xattr::Target::At(dir.src, name), ns)?;
                let at = xattr::Target::At(dir.dst, &tmp);
                xattr::apply(at, &xattr::diff(&want, &xattr::read(at, ns)?, ns))?;
            }
            let t = times(src.mtime.sec, src.mtime.nsec as i64, self.copy.set_atime);
            utimensat(dir.dst, &*tmp, &t, AtFlags::SYMLINK_NOFOLLOW)?;
            if keep {
                self.keep_old(dir, name, path, Kind::Symlink)?;
            }
            renameat(dir.dst, &*tmp, dir.dst, name)?;
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = unlinkat(dir.dst, &*tmp, AtFlags::empty());
            return Err(e);
        }
        let (tally, why) = tally_for(reason);
        self.report(tally, "symlink", path, Kind::Symlink, why, 0);
        Ok(())
    }

    /// Give `name` in `dir` the replica inode of the link set's leader (`leader`: its replica
    /// directory and name), as the plan decided: linked to a temp name and renamed over
    /// `name`, so readers see the old entry or the new one. Only if the leader holds a
    /// regular file of the size and mtime the plan saw: a leader whose copy failed or that
    /// changed since is not linked to (the next look at this directory decides again).
    pub fn link(
        &self,
        dir: DirPair<'_>,
        leader: (BorrowedFd<'_>, &OsStr),
        action: &Action,
    ) -> Done {
        let Action::Link {
            name,
            leader: leader_rel,
            size,
            mtime,
            reason,
        } = action
        else {
            return false;
        };
        let path = dir.rel.join(name);
        let result = (|| -> io::Result<bool> {
            let held = stat_entry(leader.0, leader.1)?.filter(|e| {
                e.kind == Kind::File
                    && e.size == *size
                    && crate::plan::same_time(e.mtime, *mtime, self.plan)
            });
            let Some(held) = held else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the replica of {} (its hard link) is not up to date",
                        leader_rel.display()
                    ),
                ));
            };
            if stat_entry(dir.dst, name)?.is_some_and(|e| (e.dev, e.ino) == (held.dev, held.ino)) {
                return Ok(false);
            }
            let tmp = temp_name(name);
            rustix::fs::linkat(leader.0, leader.1, dir.dst, &*tmp, AtFlags::empty())?;
            if self.keeps(action)
                && let Err(e) = self.keep_old(dir, name, &path, Kind::File)
            {
                let _ = unlinkat(dir.dst, &*tmp, AtFlags::empty());
                return Err(e);
            }
            if let Err(e) = renameat(dir.dst, &*tmp, dir.dst, name) {
                let _ = unlinkat(dir.dst, &*tmp, AtFlags::empty());
                return Err(e.into());
            }
            Ok(true)
        })();
        match result {
            Ok(true) => {
                let (tally, why) = tally_for(*reason);
                self.reporter
                    .action(self.counters, tally, "link", &path, "file", why, 0);
                slog::debug!(self.reporter.log, "hard link"; "path" => %path.display(), "to" => %leader_rel.display());
                true
            }
            Ok(false) => true,
            Err(e) => {
                self.reporter.fault(self.counters, "link", &path, &e);
                false
            }
        }
    }

    /// Before a pass or batch writes anything: make sure the versions folder is there. Made
    /// now rather than at the first version: creating it mid-pass would move REPLICA's mtime
    /// after the pass had set it (its times are put back, but a copy worker may be setting
    /// them at that moment). A folder that cannot be made is said by each version that
    /// cannot be kept.
    pub fn open_versions(&self) {
        if let Some(keeper) = self.versions
            && let Err(e) = keeper.open_root()
        {
            slog::debug!(self.reporter.log, "cannot open the versions folder: {}", e;
                "action" => "versions", "error" => %e);
        }
    }

    /// After a full pass: remove versions past `--versions-max-age` anywhere in the folder.
    pub fn sweep_versions(&self) {
        if let Some(keeper) = self.versions {
            self.reporter.retention(self.counters, &keeper.sweep());
        }
    }

    /// Make sure we can write in a replica directory before changing entries in it: a
    /// read-only source directory (a 0555 module cache, say) is mirrored read-only, and
    /// without root that would lock us out of it. `finish_dir` restores the mode.
    pub fn prepare_dir(&self, dir: DirPair<'_>) {
        let result = fstat(dir.dst).and_then(|st| {
            let mode = st.st_mode & 0o7777;
            if mode & 0o300 == 0o300 {
                Ok(())
            } else {
                fchmod(dir.dst, Mode::from_raw_mode(mode | 0o700))
            }
        });
        if let Err(e) = result {
            self.reporter
                .fault(self.counters, "open for writing", dir.rel, &e.into());
        }
    }

    /// Set the metadata fix the plan decided for a replica directory once everything in it
    /// is done. `quiet` when this pass itself created or wrote into the directory: restamping
    /// its mtime is then bookkeeping, not news.
    pub fn finish_dir(&self, dir: DirPair<'_>, fix: io::Result<MetaFix>, quiet: bool) {
        let result = fix.and_then(|fix| {
            if let Some((u, g)) = fix.owner {
                fchown(dir.dst, Some(uid(u)), Some(gid(g)))?;
            }
            if let Some(x) = &fix.xattrs {
                // Before the mode, while the directory is writable (see `set_meta`).
                let own = fstat(dir.dst)?.st_mode & 0o7777;
                if own & 0o200 == 0 {
                    fchmod(dir.dst, Mode::from_raw_mode(own | 0o200))?;
                }
                let done = xattr::apply(xattr::Target::Fd(dir.dst), x);
                if own & 0o200 == 0 && fix.mode.is_none() {
                    fchmod(dir.dst, Mode::from_raw_mode(own))?;
                }
                done?;
            }
            if let Some(mode) = fix.mode {
                fchmod(dir.dst, Mode::from_raw_mode(mode))?;
            }
            if let Some(t) = fix.mtime {
                futimens(dir.dst, &times(t.sec, t.nsec as i64, self.copy.set_atime))?;
            }
            Ok(fix)
        });
        match result {
            Ok(fix) if !fix.is_empty() && !quiet => {
                self.report(Tally::Meta, "meta", dir.rel, Kind::Dir, "metadata", 0)
            }
            Ok(_) => {}
            Err(e) => self.reporter.fault(self.counters, "meta", dir.rel, &e),
        }
    }

    /// Move a replica entry to a new name (a rename seen in the source), through handles.
    /// A failure is not a fault: the caller falls back to copy + delete. When the rename
    /// `replaces` what the replica holds under the new name, `--versions` keeps that first
    /// (a version that cannot be kept makes it fall back too: the comparison that follows
    /// then keeps it, or reports why not).
    pub fn rename(
        &self,
        from: (BorrowedFd<'_>, &OsStr),
        to: (BorrowedFd<'_>, &OsStr),
        (from_path, to_path): (&Path, &Path),
        kind: Kind,
        replaces: Option<Kind>,
    ) -> Done {
        if let (Some(there), Some(keeper)) = (replaces, self.versions) {
            let to_dir = to_path.parent().unwrap_or(Path::new(""));
            match keeper.keep_before_replace(to.0, to.1, to_dir) {
                Ok(keep) => self.kept(to_path, there, keep),
                Err(e) => {
                    slog::debug!(self.reporter.log, "rename fell back to copy: version not kept"; "path" => %to_path.display(), "error" => %e);
                    return false;
                }
            }
        }
        match renameat(from.0, from.1, to.0, to.1) {
            Ok(()) => {
                self.reporter
                    .renamed(self.counters, from_path, to_path, kind.as_str());
                true
            }
            Err(e) => {
                slog::debug!(self.reporter.log, "rename fell back to copy"; "path" => %to_path.display(), "error" => %e);
                false
            }
        }
    }
}

fn tally_for(reason: Reason) -> (Tally, &'static str) {
    match reason {
        Reason::New => (Tally::Created, "new"),
        other => (Tally::Updated, other.as_str()),
    }
}

fn verb(action: &Action) -> &'static str {
    match action {
        Action::Remove { .. } => "remove",
        Action::MakeDir { .. } => "mkdir",
        Action::CopyFile { .. } | Action::CheckContent { .. } | Action::AppendFile { .. } => "copy",
        Action::Symlink { .. } => "symlink",
        Action::SetMeta { .. } => "meta",
        Action::Link { .. } => "link",
        Action::SkipSpecial { .. } | Action::Unsupported { .. } => "skip",
    }
}

/// A version that could not be kept: the entry stays as it is, and this says why.
fn not_kept(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot keep a version, left in place: {e}"),
    )
}

fn exists_as_dir(dir: BorrowedFd<'_>, name: &OsStr, err: Errno) -> Result<(), Errno> {
    if err == Errno::EXIST && open_child_dir(dir, name).is_ok() {
        Ok(())
    } else {
        Err(err)
    }
}

/// Set metadata on a replica entry without following it if it is a symlink.
pub fn set_meta(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    fix: &MetaFix,
    set_atime: bool,
) -> io::Result<()> {
    if let Some((u, g)) = fix.owner {
        chownat(
            dir,
            name,
            Some(uid(u)),
            Some(gid(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if let Some(x) = &fix.xattrs {
        // Before the mode (see `copy::finish_meta`); a replica entry that is read-only now is
        // made writable for it, and gets its planned mode (or its own again) right after.
        let at = xattr::Target::At(dir, name);
        if let Err(e) = xattr::apply(at, x) {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            let own = st.st_mode & 0o7777;
            if e.kind() != io::ErrorKind::PermissionDenied || own & 0o200 != 0 {
                return Err(e);
            }
            chmod_nofollow(dir, name, own | 0o200)?;
            let done = xattr::apply(at, x);
            if fix.mode.is_none() {
                chmod_nofollow(dir, name, own)?;
            }
            done?;
        }
    }
    if let Some(mode) = fix.mode {
        chmod_nofollow(dir, name, mode)?;
    }
    if let Some(t) = fix.mtime {
        utimensat(
            dir,
            name,
            &times(t.sec, t.nsec as i64, set_atime),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// `fchmodat2(AT_SYMLINK_NOFOLLOW)` where the kernel has it (6.6+), else chmod through a
/// handle opened with `O_NOFOLLOW`.
fn chmod_nofollow(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    match chmodat(
        dir,
        name,
        Mode::from_raw_mode(mode),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL) => {
            let fd = copy::open_replica_file(dir, name)?;
            Ok(fchmod(fd, Mode::from_raw_mode(mode))?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Remove a replica directory and everything under it, never following a symlink. Returns
/// the number of entries removed.
pub fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<u64> {
    let fd = match open_child_dir(parent, name) {
        Ok(fd) => fd,
        // Not a directory (any more): a plain unlink does it.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            unlinkat(parent, name, AtFlags::empty())?;
            return Ok(1);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removal = Removal(0);
    crate::subtree::walk(fd.as_fd(), Path::new(""), &mut removal)?;
    match unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(removal.0 + 1),
        Err(e) => Err(e.into()),
    }
}

/// Removes each entry once what is below it is gone, counting them.
struct Removal(u64);

impl crate::subtree::Visitor for Removal {
    fn enter(&mut self, dir: BorrowedFd<'_>, _rel: &Path) -> io::Result<()> {
        let st = fstat(dir)?;
        if st.st_mode & 0o700 != 0o700 {
            // Our own replica dir made read-only from the source: we still must empty it.
            fchmod(dir, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777))?;
        }
        Ok(())
    }

    fn leave(&mut self, parent: BorrowedFd<'_>, e: &Entry, _rel: &Path) -> io::Result<()> {
        let flags = if e.kind == Kind::Dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match unlinkat(parent, &e.name, flags) {
            Ok(()) => self.0 += 1,
            Err(Errno::NOENT) => {}
            // Listed as a directory, no longer one.
            Err(Errno::NOTDIR) => {
                unlinkat(parent, &e.name, AtFlags::empty())?;
                self.0 += 1;
            }
            // Became a directory since it was listed.
            Err(Errno::ISDIR) => self.0 += remove_tree(parent, &e.name)?,
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }
}
