//! SRC and REPLICA as the run first found them, and the checks that they still are.
//!
//! A path is trusted once, at start: SRC's identity (device, inode, mount) is recorded, and
//! REPLICA is opened once, without following a symlink, and held. Before every pass and batch
//! SRC is reopened by path (a stale handle on a deleted or unmounted root would list as empty)
//! and must still be that directory, on that mount, and not suddenly empty; REPLICA's path
//! must still lead to the directory held, or nothing is written at all. A mirror that believed
//! an empty mountpoint, or followed a swapped-in symlink, would delete or write the wrong files.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, fstat, statx};

use crate::scan::any_entry;
use crate::tempname::is_temp_name;

/// Which directory a root is, and whether it is the top of a mounted filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    /// The mount id (Linux 5.8+), else the device.
    pub mount: u64,
    /// A filesystem is mounted right here (a USB disk, a share, a tmpfs).
    pub mountpoint: bool,
}

fn mount_of(dir: BorrowedFd<'_>, path: &str, dev: u64) -> u64 {
    let flags = if path.is_empty() {
        AtFlags::EMPTY_PATH
    } else {
        AtFlags::empty()
    };
    match statx(dir, path, flags, StatxFlags::MNT_ID) {
        Ok(s) if s.stx_mask & StatxFlags::MNT_ID.bits() != 0 => s.stx_mnt_id,
        _ => dev,
    }
}

/// A mount as /proc/self/mountinfo describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The filesystem type (`ext4`, `tmpfs`, `fuseblk`, ...).
    pub fs: String,
    /// What is mounted (a device, an image, a share).
    pub source: String,
}

/// The mount with id `id` (from statx), if the kernel says.
pub fn mount_by_id(id: u64) -> Option<Mount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
    info.lines().find_map(|l| {
        let (head, tail) = l.split_once(" - ")?;
        let mut h = head.split(' ');
        if h.next()?.parse::<u64>().ok()? != id {
            return None;
        }
        let point = unescape(h.nth(3)?);
        let mut t = tail.split(' ');
        Some(Mount {
            point: PathBuf::from(std::ffi::OsString::from_vec(point)),
            fs: t.next()?.to_owned(),
            source: String::from_utf8_lossy(&unescape(t.next().unwrap_or(""))).into_owned(),
        })
    })
}

/// The UUID of a block device (`/dev/sdb1`), from `/dev/disk/by-uuid`; `None` for what is no
/// device (tmpfs, a share) or has no UUID.
pub fn device_uuid(source: &str) -> Option<String> {
    let dev = std::fs::canonicalize(source).ok()?;
    std::fs::read_dir("/dev/disk/by-uuid").ok()?.find_map(|e| {
        let e = e.ok()?;
        (std::fs::canonicalize(e.path()).ok()? == dev)
            .then(|| e.file_name().to_string_lossy().into_owned())
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Identify the directory behind `fd`.
pub fn identify(fd: BorrowedFd<'_>) -> io::Result<Identity> {
    let st = fstat(fd)?;
    let parent = rustix::fs::statat(fd, "..", AtFlags::empty())?;
    let dev = st.st_dev;
    let mount = mount_of(fd, "", dev);
    let parent_mount = mount_of(fd, "..", parent.st_dev);
    let is_fs_root = parent.st_dev == dev && parent.st_ino == st.st_ino;
    Ok(Identity {
        dev,
        ino: st.st_ino,
        mount,
        mountpoint: !is_fs_root && (mount != parent_mount || parent.st_dev != dev),
    })
}

/// Open a directory by path, following nothing at its last component.
fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Why SRC cannot be trusted right now. Nothing is mirrored while this holds.
#[derive(Debug)]
pub enum SourceProblem {
    /// Missing or unreadable.
    Gone(io::Error),
    /// It was a mount and is not any more: an empty mountpoint is not an empty source.
    Unmounted,
    /// Another directory stands at the path (deleted and recreated, or moved and replaced).
    Replaced,
    /// It holds nothing while REPLICA holds something.
    Empty,
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceProblem::Gone(e) => write!(f, "source folder is gone or unreadable: {e}"),
            SourceProblem::Unmounted => f.write_str("source filesystem was unmounted"),
            SourceProblem::Replaced => {
                f.write_str("source folder was replaced by another directory")
            }
            SourceProblem::Empty => f.write_str(
                "source is empty but replica is not: refusing to empty the replica \
                 (is the source unmounted? pass --allow-empty-source if this is intended)",
            ),
        }
    }
}

impl std::error::Error for SourceProblem {}

/// SRC's path and the identity it must keep.
#[derive(Debug)]
pub struct SourceRoot {
    path: PathBuf,
    id: Mutex<Identity>,
    /// The mount holding SRC at start, and the UUID of its device if it has one: the same
    /// filesystem mounted there again (the disk plugged back in, the share remounted) is SRC
    /// coming back; another stick auto-mounted at the same place is not.
    mount: Option<(Mount, Option<String>)>,
}

impl SourceRoot {
    /// Record what SRC is now.
    pub fn new(path: &Path) -> io::Result<SourceRoot> {
        let fd = crate::handle::open_root(path)?;
        let id = identify(fd.as_fd())?;
        Ok(SourceRoot {
            path: path.to_path_buf(),
            mount: mount_by_id(id.mount).map(|m| {
                let uuid = device_uuid(&m.source);
                (m, uuid)
            }),
            id: Mutex::new(id),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn id(&self) -> Identity {
        *self.id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open SRC by path, now, and check it is the directory the run started with, on the
    /// same mount, and not empty while `replica` holds something (unless `allow_empty`).
    pub fn open(
        &self,
        replica: Option<BorrowedFd<'_>>,
        allow_empty: bool,
    ) -> Result<OwnedFd, SourceProblem> {
        let fd = crate::handle::open_root(&self.path).map_err(SourceProblem::Gone)?;
        let now = identify(fd.as_fd()).map_err(SourceProblem::Gone)?;
        let was = self.id();
        if was.mountpoint && !now.mountpoint {
            return Err(SourceProblem::Unmounted);
        }
        if (now.dev, now.ino, now.mount) != (was.dev, was.ino, was.mount) {
            return Err(SourceProblem::Replaced);
        }
        check_not_empty(&fd, replica, allow_empty)?;
        Ok(fd)
    }

    /// After a pause: is SRC back? A directory on the filesystem that held SRC at start (the
    /// very directory moved back, or one recreated at the path: a build tool that deletes and
    /// remakes its output folder), or a filesystem mounted again where that one was (the disk
    /// plugged back in, the share remounted: any content). A directory left under an
    /// unmounted mountpoint is on another filesystem, and is never SRC. It must hold something
    /// unless REPLICA is empty too. What stands there becomes the identity checked from now on.
    pub fn adopt(
        &self,
        replica: Option<BorrowedFd<'_>>,
        allow_empty: bool,
    ) -> Result<(), SourceProblem> {
        let fd = crate::handle::open_root(&self.path).map_err(SourceProblem::Gone)?;
        let now = identify(fd.as_fd()).map_err(SourceProblem::Gone)?;
        let was = self.id();
        let same = (now.dev, now.mount) == (was.dev, was.mount);
        let remounted = now.mount != was.mount
            && match (&self.mount, mount_by_id(now.mount)) {
                (Some((then, uuid)), Some(m)) => {
                    m.point == then.point
                        && m.fs == then.fs
                        && m.source == then.source
                        && device_uuid(&m.source) == *uuid
                }
                _ => false,
            };
        if !same && !remounted {
            return Err(if was.mountpoint && !now.mountpoint {
                SourceProblem::Unmounted
            } else {
                SourceProblem::Replaced
            });
        }
        check_not_empty(&fd, replica, allow_empty)?;
        *self.id.lock().unwrap_or_else(|e| e.into_inner()) = now;
        Ok(())
    }
}

fn check_not_empty(
    src: &OwnedFd,
    replica: Option<BorrowedFd<'_>>,
    allow_empty: bool,
) -> Result<(), SourceProblem> {
    // A source entry under the reserved name is not mirrored: it does not make SRC non-empty.
    if allow_empty
        || any_entry(src, |n| !crate::versions::is_reserved(n)).map_err(SourceProblem::Gone)?
    {
        return Ok(());
    }
    match replica {
        // Our temp files and the versions folder are no part of the mirror.
        Some(r)
            if any_entry(r, |n| !is_temp_name(n) && !crate::versions::is_reserved(n))
                .unwrap_or(true) =>
        {
            Err(SourceProblem::Empty)
        }
        _ => Ok(()),
    }
}

/// REPLICA's path and the directory opened there at start.
#[derive(Debug)]
pub struct ReplicaRoot {
    path: PathBuf,
    /// `None` only in a dry run whose replica does not exist yet.
    held: Option<(OwnedFd, Identity)>,
}

/// REPLICA's path no longer leads to the directory this run writes into.
#[derive(Debug)]
pub struct ReplicaMoved {
    pub path: PathBuf,
    pub why: String,
}

impl fmt::Display for ReplicaMoved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replica root {} no longer leads to the folder this run opened ({}): nothing is \
             written until it does; restart replwatch to mirror into the new folder",
            self.path.display(),
            self.why
        )
    }
}

impl std::error::Error for ReplicaMoved {}

impl ReplicaRoot {
    /// Open REPLICA once, without following a symlink at its last component; create it first
    /// if it is missing (unless `create` is false: a dry run writes nothing).
    pub fn open(path: &Path, create: bool) -> io::Result<ReplicaRoot> {
        let fd = match open_nofollow(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => {
                return Ok(ReplicaRoot {
                    path: path.to_path_buf(),
                    held: None,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path)?;
                open_nofollow(path)?
            }
            other => other?,
        };
        let id = identify(fd.as_fd())?;
        Ok(ReplicaRoot {
            path: path.to_path_buf(),
            held: Some((fd, id)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The held directory, if REPLICA's path still leads to it (never the new one if not).
    pub fn check(&self) -> Result<Option<BorrowedFd<'_>>, ReplicaMoved> {
        let Some((fd, id)) = &self.held else {
            return Ok(None);
        };
        let moved = |why: String| ReplicaMoved {
            path: self.path.clone(),
            why,
        };
        let held = fstat(fd).map_err(|e| moved(e.to_string()))?;
        if held.st_nlink == 0 {
            // Deleted: a new directory at the path could even reuse its inode number.
            return Err(moved("it was deleted".into()));
        }
        let now = open_nofollow(&self.path).map_err(|e| moved(e.to_string()))?;
        let st = fstat(&now).map_err(|e| moved(e.to_string()))?;
        if (st.st_dev, st.st_ino) != (id.dev, id.ino) {
            return Err(moved("another directory is there now".into()));
        }
        Ok(Some(fd.as_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_or_emptied_source_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let rep = t.path().join("rep");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        let root = SourceRoot::new(&src).unwrap();
        let replica = ReplicaRoot::open(&rep, true).unwrap();
        std::fs::write(rep.join("f"), "x").unwrap();
        let r = replica.check().unwrap();
        assert!(root.open(r, false).is_ok());
        assert!(!root.id().mountpoint);
        std::fs::remove_file(src.join("f")).unwrap();
        assert!(matches!(root.open(r, false), Err(SourceProblem::Empty)));
        assert!(root.open(r, true).is_ok());
        std::fs::rename(&src, t.path().join("old")).unwrap();
        assert!(matches!(root.open(r, false), Err(SourceProblem::Gone(_))));
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("g"), "y").unwrap();
        assert!(matches!(root.open(r, false), Err(SourceProblem::Replaced)));
        // A directory recreated on the same filesystem is adopted once it holds something.
        root.adopt(r, false).unwrap();
        assert!(root.open(r, false).is_ok());
    }

    #[test]
    fn a_swapped_replica_path_is_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let rep = t.path().join("rep");
        let replica = ReplicaRoot::open(&rep, true).unwrap();
        assert!(replica.check().unwrap().is_some());
        std::fs::rename(&rep, t.path().join("rep.old")).unwrap();
        std::fs::create_dir(t.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.path().join("elsewhere"), &rep).unwrap();
        assert!(replica.check().is_err());
        std::fs::remove_file(&rep).unwrap();
        std::fs::create_dir(&rep).unwrap();
        assert!(replica.check().is_err());
        std::fs::remove_dir(&rep).unwrap();
        std::fs::rename(t.path().join("rep.old"), &rep).unwrap();
        assert!(replica.check().unwrap().is_some());
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/mnt/my\040disk"), b"/mnt/my disk");
        assert_eq!(unescape("plain"), b"plain");
        let root = crate::handle::open_root(Path::new("/proc")).unwrap();
        let id = identify(root.as_fd()).unwrap();
        if id.mount != id.dev {
            assert_eq!(mount_by_id(id.mount).unwrap().point, Path::new("/proc"));
        }
    }

    #[test]
    fn the_root_filesystem_is_no_mountpoint_child() {
        let root = crate::handle::open_root(Path::new("/")).unwrap();
        assert!(!identify(root.as_fd()).unwrap().mountpoint);
    }
}
