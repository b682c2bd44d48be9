//! Versions (`--versions`): what a pass would delete or overwrite in REPLICA is moved into
//! `REPLICA/.replwatch-versions/` instead, under its own relative directory, named
//! `STEM~YYYYMMDD-HHMMSS.EXT` in local time (Syncthing's `.stversions` layout and names, so a
//! person finds "the copy from before ten o'clock" by eye).
//!
//! The folder lives inside REPLICA so that keeping a version is a rename on the same
//! filesystem: cheap even for an `rm -rf` of a large tree (one rename for the whole
//! directory). An overwritten file is hard-linked into the folder before the new copy is
//! renamed over its name, so readers never see the name missing; where the filesystem has no
//! hard links the old file is renamed away right before the new one lands.
//!
//! Like every other write, all of it goes through directory handles: the folder and its
//! subdirectories are opened with `O_NOFOLLOW|O_DIRECTORY`, created with `mkdirat` (0700: old
//! versions must not become readable to more people than the files were), and entries are
//! moved with `renameat2(RENAME_NOREPLACE)` / `linkat`, never by path.
//!
//! Retention runs as it goes: after a version of NAME is kept, older versions of NAME in the
//! same folder beyond `--keep-versions` or older than `--versions-max-age` (by the time in
//! their names) are removed; each full pass also sweeps the whole folder for age.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{
    AtFlags, Mode, RenameFlags, Timespec, Timestamps, fstat, futimens, linkat, mkdirat, renameat,
    renameat_with, statat, unlinkat,
};
use rustix::io::Errno;

use crate::entry::Kind;
use crate::handle::open_child_dir;
use crate::scan::scan_dir;

/// The folder at REPLICA's root that holds the versions. The name is reserved there whether
/// or not `--versions` is on: the mirror never lists, deletes or mirrors into it.
pub const DIR_NAME: &str = ".replwatch-versions";

/// Is `name` (an entry of REPLICA's root, or of SRC's root) the reserved versions folder?
pub fn is_reserved(name: &OsStr) -> bool {
    name == DIR_NAME
}

/// How many versions to keep, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Versions kept per name (in one folder), newest first; 0: no limit by count.
    pub keep: usize,
    /// Versions older than this (by the time in their names) are removed; `None`: never.
    pub max_age: Option<Duration>,
}

/// A version that was kept: where it went, relative to REPLICA, and what retention removed
/// to make room (or because it was too old).
#[derive(Debug, Default)]
pub struct Kept {
    pub to: PathBuf,
    pub pruned: Vec<PathBuf>,
    /// Versions retention wanted gone but could not remove: housekeeping, not a mirror fault.
    pub prune_errors: Vec<(PathBuf, io::Error)>,
}

/// What keeping the old entry came to.
#[derive(Debug)]
pub enum Keep {
    /// It is in the versions folder now.
    Kept(Kept),
    /// There was nothing under that name any more: nothing to keep.
    Gone,
}

/// Keeps versions inside one REPLICA root. Shared by the copy workers, the batch thread and
/// the full-pass thread of a live run.
pub struct Keeper {
    root: OwnedFd,
    pub retention: Retention,
    /// Keeping takes it shared, the full-pass sweep exclusively: the sweep removes empty
    /// folders, and must not remove one that a version is about to be moved into.
    sweep: RwLock<()>,
    /// The versions in each folder of the versions tree (by the folder's device and inode),
    /// listed the first time a version goes there and kept up to date after: removing
    /// 10,000 files from one folder must not list a folder of up to 10,000 versions 10,000
    /// times. The sweep clears it. Only this process writes the folder; a version removed by
    /// hand meanwhile is at worst "pruned" again (ENOENT is fine), one added by hand is not
    /// counted until the next sweep, and a name taken is never overwritten (RENAME_NOREPLACE).
    index: Mutex<HashMap<(u64, u64), Folder>>,
}

/// What a version is a version of: the (stem, extension) of the name.
type Key = (Vec<u8>, Vec<u8>);
/// A version's time (seconds) and number within that second.
type When = (i64, u32);
/// Versions in one folder, by what they are versions of.
type Folder = HashMap<Key, Vec<(When, OsString)>>;

/// What a version name is a version of, as (stem, extension), and its time and number.
fn parse_version(v: &OsStr) -> Option<(Key, When)> {
    let b = v.as_bytes();
    let tilde = b.iter().rposition(|&c| c == b'~')?;
    let rest = &b[tilde + 1..];
    let ext_at = rest.iter().position(|&c| c == b'.').unwrap_or(rest.len());
    if rest[ext_at..].iter().skip(1).any(|&c| c == b'.') {
        return None;
    }
    let when = parse_stamp_and_n(&rest[..ext_at])?;
    Some(((b[..tilde].to_vec(), rest[ext_at..].to_vec()), when))
}

fn folder_of(names: Vec<OsString>) -> Folder {
    let mut folder = Folder::new();
    for n in names {
        if let Some((key, when)) = parse_version(&n) {
            folder.entry(key).or_default().push((when, n));
        }
    }
    folder
}

/// Hard links are not possible here (exFAT, some FUSE filesystems, a file we may not link).
fn no_links(e: Errno) -> bool {
    matches!(
        e,
        Errno::PERM | Errno::OPNOTSUPP | Errno::MLINK | Errno::NOSYS
    )
}

impl Keeper {
    /// `root` is REPLICA's held handle (duplicated: the keeper holds its own).
    pub fn new(root: BorrowedFd<'_>, retention: Retention) -> io::Result<Keeper> {
        Ok(Keeper {
            root: root.try_clone_to_owned()?,
            retention,
            sweep: RwLock::new(()),
            index: Mutex::new(HashMap::new()),
        })
    }

    /// Open the versions folder, creating it (0700) if missing. REPLICA's own times are put
    /// back after creating it: the folder is no part of the mirror, and making it must not
    /// look like a change of the replica root.
    pub fn open_root(&self) -> io::Result<OwnedFd> {
        let name = OsStr::new(DIR_NAME);
        match open_child_dir(&self.root, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other.map_err(|e| not_a_dir(e, Path::new(DIR_NAME))),
        }
        let before = fstat(&self.root)?;
        match mkdirat(&self.root, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = futimens(
            &self.root,
            &Timestamps {
                last_access: Timespec {
                    tv_sec: before.st_atime,
                    tv_nsec: before.st_atime_nsec as _,
                },
                last_modification: Timespec {
                    tv_sec: before.st_mtime,
                    tv_nsec: before.st_mtime_nsec as _,
                },
            },
        );
        open_child_dir(&self.root, name).map_err(|e| not_a_dir(e, Path::new(DIR_NAME)))
    }

    /// The folder inside the versions folder that mirrors REPLICA's `rel`, created as needed.
    /// Anything there that is not a directory is an error: the version cannot be kept.
    fn dir_for(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut dir = self.open_root()?;
        let mut at = PathBuf::from(DIR_NAME);
        for c in rel.components() {
            let Component::Normal(name) = c else { continue };
            at.push(name);
            let next = match open_child_dir(&dir, name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_child_dir(&dir, name)
                }
                other => other,
            };
            dir = next.map_err(|e| not_a_dir(e, &at))?;
        }
        Ok(dir)
    }

    /// Move the entry `name` of the replica directory `dir` (at `rel`) into the versions
    /// folder: a rename, so a directory goes whole, at the cost of one system call.
    pub fn keep_by_rename(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> io::Result<Keep> {
        self.keep(dir, name, rel, |vdir, vname| {
            match move_new(dir, name, vdir, vname) {
                // Moving a directory to another parent rewrites its `..`: without root that
                // needs write permission on it, which a read-only tree (a 0555 module cache)
                // lacks. Removing it would have made it writable too (`apply::remove_tree`).
                Err(Errno::ACCESS) if make_writable(dir, name) => move_new(dir, name, vdir, vname),
                other => other,
            }
        })
    }

    /// Keep the old inode under `name` (about to be replaced by a rename over it): a hard
    /// link into the versions folder, so the name never goes missing; where the filesystem
    /// has no hard links, the old entry is renamed away instead (the caller renames the new
    /// one into place right after).
    pub fn keep_before_replace(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> io::Result<Keep> {
        let mut linkless = false;
        let linked = self.keep(dir, name, rel, |vdir, vname| {
            match linkat(dir, name, vdir, vname, AtFlags::empty()) {
                Err(e) if no_links(e) => {
                    linkless = true;
                    // Nothing was made: stop trying names, fall back below.
                    Err(Errno::CANCELED)
                }
                other => other,
            }
        });
        if linkless {
            return self.keep_by_rename(dir, name, rel);
        }
        linked
    }

    /// Find a free version name for `name` in its versions folder, `put` the entry there,
    /// then apply retention to that name's versions.
    fn keep(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        mut put: impl FnMut(BorrowedFd<'_>, &OsStr) -> Result<(), Errno>,
    ) -> io::Result<Keep> {
        let _shared = self.sweep.read().unwrap_or_else(|e| e.into_inner());
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(Keep::Gone),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let vdir = self.dir_for(rel)?;
        let now = SystemTime::now();
        let stamp = stamp(now);
        let st = fstat(&vdir)?;
        let key = key_of(name);
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let folder = match index.entry((st.st_dev as u64, st.st_ino as u64)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(folder_of(list_names(vdir.as_fd()).unwrap_or_default()))
            }
        };
        let older = folder.entry(key).or_default();
        // A version must sort after the ones already made in the same second, even where
        // retention freed a lower number: numbers go on from the highest there.
        let same_second = parse_stamp(stamp.as_bytes());
        let first = older
            .iter()
            .filter(|((t, _), _)| Some(*t) == same_second)
            .map(|((_, n), _)| n + 1)
            .max()
            .unwrap_or(0);
        for n in first..first + 1000 {
            let vname = version_name(name, &stamp, n);
            match put(vdir.as_fd(), &vname) {
                Ok(()) => {
                    let at = Path::new(DIR_NAME).join(rel);
                    let mut kept = Kept {
                        to: at.join(&vname),
                        ..Kept::default()
                    };
                    let doomed = self.prune(older, now);
                    older.push(((same_second.unwrap_or(0), n), vname));
                    // The removals themselves (a whole directory, maybe) without the lock.
                    drop(index);
                    for name in doomed {
                        let path = at.join(&name);
                        match remove_any(vdir.as_fd(), &name) {
                            Ok(()) => kept.pruned.push(path),
                            Err(err) => kept.prune_errors.push((path, err)),
                        }
                    }
                    return Ok(Keep::Kept(kept));
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT)
                    if matches!(
                        statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
                        Err(Errno::NOENT)
                    ) =>
                {
                    return Ok(Keep::Gone);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "1000 versions in the same second",
        ))
    }

    /// Of the `older` versions of a name (the one just kept is not among them and counts
    /// as the newest), take out and return those beyond the newest `keep` and those older
    /// than `max_age`, for the caller to remove.
    fn prune(&self, older: &mut Vec<(When, OsString)>, now: SystemTime) -> Vec<OsString> {
        let Retention { keep, max_age } = self.retention;
        // Newest first.
        older.sort_by_key(|v| std::cmp::Reverse(v.0));
        let now_secs = secs(now);
        let mut doomed = Vec::new();
        let mut i = 0;
        older.retain(|((when, _), name)| {
            let too_many = keep > 0 && i + 1 >= keep;
            let too_old = max_age.is_some_and(|age| expired(*when, now_secs, age));
            i += 1;
            if too_many || too_old {
                doomed.push(name.clone());
            }
            !(too_many || too_old)
        });
        doomed
    }

    /// Remove every version older than `--versions-max-age` anywhere in the folder, and the
    /// folders that leaves empty. Once per full pass.
    pub fn sweep(&self) -> Kept {
        let mut out = Kept::default();
        let Some(max_age) = self.retention.max_age else {
            return out;
        };
        let _alone = self.sweep.write().unwrap_or_else(|e| e.into_inner());
        self.index.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let vroot = match open_child_dir(&self.root, OsStr::new(DIR_NAME)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
            Err(e) => {
                out.prune_errors.push((PathBuf::from(DIR_NAME), e));
                return out;
            }
        };
        let now = secs(SystemTime::now());
        sweep_dir(vroot.as_fd(), Path::new(DIR_NAME), now, max_age, &mut out);
        out
    }
}

/// Sweep one folder of the versions tree; returns whether it is empty afterwards. A version
/// (a name with a time in it) is a leaf: removed whole when expired, else left as it is and
/// never looked into (a kept directory holds the user's own names).
fn sweep_dir(dir: BorrowedFd<'_>, at: &Path, now: i64, max_age: Duration, out: &mut Kept) -> bool {
    let list = match scan_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            out.prune_errors.push((at.to_path_buf(), e));
            return false;
        }
    };
    let mut left = list.entries.len() + list.errors.len();
    for e in &list.entries {
        let path = at.join(&e.name);
        if let Some(when) = any_version_time(&e.name) {
            if expired(when, now, max_age) {
                match remove_any(dir, &e.name) {
                    Ok(()) => {
                        out.pruned.push(path);
                        left -= 1;
                    }
                    Err(err) => out.prune_errors.push((path, err)),
                }
            }
        } else if e.kind == Kind::Dir {
            let Ok(sub) = open_child_dir(dir, &e.name) else {
                continue;
            };
            if sweep_dir(sub.as_fd(), &path, now, max_age, out) {
                match unlinkat(dir, &e.name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => left -= 1,
                    // Something was put there meanwhile: it stays.
                    Err(Errno::NOTEMPTY | Errno::EXIST) => {}
                    Err(err) => out.prune_errors.push((path, err.into())),
                }
            }
        }
    }
    left == 0
}

/// Rename, never over an existing entry.
fn move_new(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    vdir: BorrowedFd<'_>,
    vname: &OsStr,
) -> Result<(), Errno> {
    match renameat_with(dir, name, vdir, vname, RenameFlags::NOREPLACE) {
        // A filesystem without RENAME_NOREPLACE: look first (nothing else writes here).
        Err(Errno::INVAL | Errno::NOSYS) => match statat(vdir, vname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Err(Errno::EXIST),
            Err(Errno::NOENT) => renameat(dir, name, vdir, vname),
            Err(e) => Err(e),
        },
        other => other,
    }
}

/// Give a directory of ours that lacks it owner write permission; `true` if it changed.
fn make_writable(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    let Ok(fd) = open_child_dir(dir, name) else {
        return false;
    };
    match fstat(&fd) {
        Ok(st) if st.st_mode & 0o700 != 0o700 => {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777)).is_ok()
        }
        _ => false,
    }
}

/// Remove a version, whatever it is (a directory whole), never following a symlink.
fn remove_any(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        // Linux says EISDIR; POSIX allows EPERM for a directory.
        Err(Errno::ISDIR | Errno::PERM) => crate::apply::remove_tree(dir, name).map(|_| ()),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory, without a stat each.
fn list_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(out)
}

/// Say which part of the versions path is in the way, rather than a bare ENOTDIR.
fn not_a_dir(e: io::Error, at: &Path) -> io::Error {
    if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) {
        io::Error::new(
            e.kind(),
            format!("{} is not a directory ({e})", at.display()),
        )
    } else {
        e
    }
}

fn secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn expired(when: i64, now: i64, max_age: Duration) -> bool {
    now.saturating_sub(when) > max_age.as_secs().min(i64::MAX as u64) as i64
}

// ---- names ----

/// Longest name a version may have, in bytes (ext4, xfs, btrfs; exFAT and NTFS count UTF-16
/// units, which a UTF-8 name never has more of than bytes).
const NAME_MAX: usize = 255;
/// `~YYYYMMDD-HHMMSS` plus room for a `-999` collision suffix.
const SUFFIX_ROOM: usize = 1 + 15 + 4;
/// An "extension" longer than this is taken as part of the stem (it is no extension).
const EXT_MAX: usize = 32;

/// `name` as stem and extension: `report.pdf` is `report` + `.pdf`, `archive.tar.gz` is
/// `archive.tar` + `.gz`, and `.bashrc` or `Makefile` have no extension. The stem is cut (on
/// a character boundary) so that a version name always fits [`NAME_MAX`].
fn split_name(name: &[u8]) -> (&[u8], &[u8]) {
    let (stem, ext) = match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 && name.len() - i <= EXT_MAX => name.split_at(i),
        _ => (name, &name[name.len()..]),
    };
    let room = NAME_MAX - SUFFIX_ROOM - ext.len();
    if stem.len() <= room {
        return (stem, ext);
    }
    let mut end = room;
    while end > 0 && stem[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    (&stem[..end], ext)
}

/// `STEM~STAMP.EXT`, or `STEM~STAMP-N.EXT` for the Nth collision within one second.
pub fn version_name(name: &OsStr, stamp: &str, n: u32) -> OsString {
    let (stem, ext) = split_name(name.as_bytes());
    let mut out = Vec::with_capacity(stem.len() + SUFFIX_ROOM + ext.len());
    out.extend_from_slice(stem);
    out.push(b'~');
    out.extend_from_slice(stamp.as_bytes());
    if n > 0 {
        out.extend_from_slice(format!("-{n}").as_bytes());
    }
    out.extend_from_slice(ext);
    OsString::from_vec(out)
}

/// If `candidate` is a version of `name`: its time (seconds since the epoch, read as local
/// time) and collision number.
pub fn version_of(name: &OsStr, candidate: &OsStr) -> Option<(i64, u32)> {
    let (key, when) = parse_version(candidate)?;
    (key == key_of(name)).then_some(when)
}

/// The time in any version name (`...~YYYYMMDD-HHMMSS[-N][.ext]`), for the sweep.
pub fn any_version_time(name: &OsStr) -> Option<i64> {
    parse_version(name).map(|(_, (t, _))| t)
}

/// What the versions of `name` are filed under.
fn key_of(name: &OsStr) -> Key {
    let (stem, ext) = split_name(name.as_bytes());
    (stem.to_vec(), ext.to_vec())
}

/// `YYYYMMDD-HHMMSS` optionally followed by `-N`.
fn parse_stamp_and_n(b: &[u8]) -> Option<(i64, u32)> {
    if b.len() < 15 {
        return None;
    }
    let (stamp, tail) = b.split_at(15);
    let n = match tail {
        [] => 0,
        [b'-', digits @ ..] if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(digits).ok()?.parse().ok()?
        }
        _ => return None,
    };
    Some((parse_stamp(stamp)?, n))
}

/// `YYYYMMDD-HHMMSS` in local time, as Syncthing names its versions.
pub fn stamp(t: SystemTime) -> String {
    let secs = secs(t) as libc::time_t;
    // SAFETY: localtime_r fills the zeroed struct we own (glibc reads TZ on first use).
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The seconds since the epoch of a `YYYYMMDD-HHMMSS` local time.
fn parse_stamp(b: &[u8]) -> Option<i64> {
    if b.len() != 15 || b[8] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        let s = &b[r];
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // SAFETY: mktime reads and normalises the struct we own.
    let t = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = s;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    (t != -1).then_some(t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vn(name: &str, n: u32) -> String {
        version_name(OsStr::new(name), "20261202-101500", n)
            .into_string()
            .unwrap()
    }

    #[test]
    fn names_follow_syncthing() {
        assert_eq!(vn("name.txt", 0), "name~20261202-101500.txt");
        assert_eq!(vn("name.txt", 2), "name~20261202-101500-2.txt");
        assert_eq!(vn("Makefile", 0), "Makefile~20261202-101500");
        assert_eq!(vn(".bashrc", 0), ".bashrc~20261202-101500");
        assert_eq!(vn(".config.json", 0), ".config~20261202-101500.json");
        assert_eq!(vn("a.tar.gz", 1), "a.tar~20261202-101500-1.gz");
    }

    #[test]
    fn versions_are_recognised_for_their_name_only() {
        let of = |n: &str, c: &str| version_of(OsStr::new(n), OsStr::new(c));
        assert!(of("name.txt", "name~20261202-101500.txt").is_some());
        assert_eq!(of("name.txt", "name~20261202-101500-3.txt").unwrap().1, 3);
        assert!(of("name", "name~20261202-101500.txt").is_none());
        assert!(of("name.txt", "name~20261202-101500.txt.bak").is_none());
        assert!(of("name.txt", "name.txt").is_none());
        assert!(of("name.txt", "name~2026120-101500.txt").is_none());
        assert!(of("a", "a~20261202-101500~20261202-101501").is_none());
    }

    #[test]
    fn stamps_round_trip_in_local_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = stamp(t);
        assert_eq!(parse_stamp(s.as_bytes()), Some(1_800_000_000));
        assert_eq!(
            any_version_time(OsStr::new(&format!("x.y~{s}-2.txt"))),
            Some(1_800_000_000)
        );
        assert_eq!(
            any_version_time(OsStr::new(&format!("dir~{s}"))),
            Some(1_800_000_000)
        );
        assert_eq!(any_version_time(OsStr::new("plain.txt")), None);
    }

    #[test]
    fn long_names_still_fit() {
        let long = format!("{}.txt", "é".repeat(126));
        let v = version_name(OsStr::new(&long), "20261202-101500", 999);
        assert!(v.len() <= NAME_MAX, "{}", v.len());
        assert!(std::str::from_utf8(v.as_bytes()).is_ok());
        assert!(version_of(OsStr::new(&long), &v).is_some());
    }
}
