//! The one description of a directory entry that every stage shares.
//!
//! `scan` fills it from the disk, `plan` compares two of them without touching the disk, and
//! `apply` reads it to know what to create. Keeping it plain data is what lets `plan` be pure.

use std::ffi::OsString;

/// What an entry is. Anything that is not a file, directory or symlink (fifo, socket, device)
/// is `Special`: mirrored by nobody, skipped with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Special,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Special => "special",
        }
    }
}

/// A point in time as the filesystem keeps it: seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// One directory entry as seen by an `lstat` (symlinks are never followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: Kind,
    /// Bytes, for files; the link length for symlinks; meaningless for dirs.
    pub size: u64,
    pub mtime: Time,
    /// Permission bits only (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The link's target, for symlinks.
    pub target: Option<OsString>,
    /// Names this inode has (hard links), in and out of the tree.
    pub nlink: u64,
    /// The inode's identity: a hard-link set is the names sharing one.
    pub dev: u64,
    pub ino: u64,
    /// Extended attributes and ACLs, where the run reads them (see `xattr`).
    pub xattrs: Option<crate::xattr::Xattrs>,
    /// For a source file with other names in the tree: the name that stands for its link set
    /// (see `links`). The walk fills it in; `plan` decides from it.
    pub link: Option<Box<LinkTo>>,
}

/// Where a source file's link set is mirrored: the SRC-relative path of the set's first
/// name, and what the replica holds there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkTo {
    pub leader: std::path::PathBuf,
    /// The replica inode under the leader's name, if it already holds this file's size and
    /// mtime.
    pub leader_ino: Option<u64>,
    /// The leader is planned in this same walk (its metadata is fixed there).
    pub leader_in_walk: bool,
}

impl Entry {
    /// An entry with everything but its name and kind zeroed: convenient in tests.
    pub fn new(name: impl Into<OsString>, kind: Kind) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size: 0,
            mtime: Time::default(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            target: None,
            nlink: 1,
            dev: 0,
            ino: 0,
            xattrs: None,
            link: None,
        }
    }
}
