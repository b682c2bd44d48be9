//! Reading one directory into entries, through its handle.
//!
//! One `fstatat` per entry (never following links) plus a `readlinkat` for symlinks: the
//! fewest system calls that tell `plan` everything it compares.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Dir, FileType, Stat, readlinkat, statat};

use crate::entry::{Entry, Kind, Time};

/// A directory's entries, sorted by name, and the names that could not be read.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// Entries listed by the directory but whose metadata could not be read. Their replica
    /// counterparts must not be touched.
    pub errors: Vec<(OsString, io::Error)>,
}

/// List the directory behind `dir`. Entries that vanish between listing and stat are left
/// out, as if the listing had come a moment later.
pub fn scan_dir(dir: impl AsFd) -> io::Result<Listing> {
    let names = read_names(dir.as_fd())?;
    Ok(stat_names(dir, names))
}

/// The names in a directory (no stat): the part of a listing that says what exists.
pub fn read_names(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for item in Dir::read_from(dir.as_fd())? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Stat `names` in `dir` into a listing sorted by name.
pub fn stat_names(dir: impl AsFd, names: Vec<OsString>) -> Listing {
    let dir = dir.as_fd();
    let mut listing = Listing::default();
    listing.entries.reserve(names.len());
    for name in names {
        match stat_entry(dir, &name) {
            Ok(Some(e)) => listing.entries.push(e),
            Ok(None) => {}
            Err(err) => listing.errors.push((name, err)),
        }
    }
    listing.entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    listing
}

/// Does the directory hold any entry that `keep` accepts? Reads names only (no stat), and
/// stops at the first.
pub fn any_entry(dir: impl AsFd, keep: impl Fn(&OsStr) -> bool) -> io::Result<bool> {
    for item in Dir::read_from(dir.as_fd())? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." && keep(OsStr::from_bytes(name)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stat one name in `dir` without following it; `None` if it does not exist.
pub fn stat_entry(dir: impl AsFd, name: &OsStr) -> io::Result<Option<Entry>> {
    let dir = dir.as_fd();
    let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut entry = entry_from_stat(name.to_owned(), &st);
    if entry.kind == Kind::Symlink {
        match readlinkat(dir, name, Vec::new()) {
            Ok(t) => entry.target = Some(OsStr::from_bytes(t.as_bytes()).to_owned()),
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(entry))
}

pub fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Special,
    }
}

pub fn mtime_of(st: &Stat) -> Time {
    Time {
        sec: st.st_mtime,
        nsec: st.st_mtime_nsec as u32,
    }
}

pub fn entry_from_stat(name: OsString, st: &Stat) -> Entry {
    Entry {
        name,
        kind: kind_of(st),
        size: st.st_size as u64,
        mtime: mtime_of(st),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        target: None,
        nlink: st.st_nlink,
        dev: st.st_dev,
        ino: st.st_ino,
        xattrs: None,
        link: None,
    }
}
