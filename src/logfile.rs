//! LOGDIR and the files replwatch writes in it, opened so they cannot be turned against the
//! host.
//!
//! replwatch often runs as root, and LOGDIR is a folder other people may reach. So:
//!
//! - LOGDIR is opened once, as a handle, and every file in it is opened relative to that
//!   handle, with `O_NOFOLLOW` (a symlink planted as `replwatch.log` is refused, never
//!   followed to `/etc/passwd`) and `O_CLOEXEC` (the descriptor does not leak into a child process);
//! - a logfile that is not a regular file (a fifo, a device), has other hard links, or belongs
//!   to neither us nor LOGDIR's owner is refused;
//! - a LOGDIR that other users can write to is refused outright, before anything is written:
//!   world-writable without the sticky bit, or group-writable by a group we are not in. Such
//!   users could swap the logfile between runs, or plant files for rotation to rename; a
//!   warning would be read after the fact, if ever, so the run stops with exit 2 and says
//!   what to change. A sticky world-writable folder (like /tmp) is accepted: nobody else can
//!   rename or remove our files there, and a logfile they created first is refused.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, Stat};

/// LOGDIR, held open.
#[derive(Debug)]
pub struct LogDir {
    fd: OwnedFd,
    path: PathBuf,
    owner: u32,
}

/// An error naming the file it is about.
fn named(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

impl LogDir {
    /// Create LOGDIR if needed, open it and check that no other user can write to it.
    pub fn open(path: &Path) -> io::Result<LogDir> {
        std::fs::create_dir_all(path).map_err(|e| named(path, e))?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| named(path, io::Error::from(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| named(path, io::Error::from(e)))?;
        if let Some(why) = writable_by_others(&st) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "log folder {} is {why} (mode {:04o}): they could replace the logfile; \
                     remove their write access (chmod go-w) or choose another --log-dir",
                    path.display(),
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(LogDir {
            fd,
            path: path.to_path_buf(),
            owner: st.st_uid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open (creating it, mode 0640) `name` in LOGDIR for appending, refusing a symlink, a
    /// file that is not regular, one with other hard links, or one someone else owns.
    pub fn open_append(&self, name: &str) -> io::Result<File> {
        let path = self.path.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            // NONBLOCK: opening a fifo must not wait for a reader before it is refused.
            OFlags::WRONLY
                | OFlags::APPEND
                | OFlags::CREATE
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | OFlags::NOCTTY
                | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o640),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => named(&path, "is a symlink; refusing to follow it"),
            // A fifo without a reader, or a socket.
            rustix::io::Errno::NXIO => {
                named(&path, "is not a regular file; refusing to write to it")
            }
            e => named(&path, io::Error::from(e)),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| named(&path, io::Error::from(e)))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(named(
                &path,
                "is not a regular file; refusing to write to it",
            ));
        }
        if st.st_nlink > 1 {
            return Err(named(
                &path,
                "has other hard links; refusing to write to it",
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me && st.st_uid != self.owner {
            return Err(named(
                &path,
                format!(
                    "belongs to uid {}, neither us nor the log folder's owner; refusing to write to it",
                    st.st_uid
                ),
            ));
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::APPEND)
            .map_err(|e| named(&path, io::Error::from(e)))?;
        Ok(File::from(fd))
    }
}

/// Why other users can write to a folder with this `stat`, if they can.
fn writable_by_others(st: &Stat) -> Option<String> {
    let mode = st.st_mode;
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Some("writable by every user".to_owned());
    }
    if mode & 0o020 != 0 && !in_our_groups(st.st_gid) {
        return Some(format!(
            "writable by group {}, which we are not in",
            st.st_gid
        ));
    }
    None
}

fn in_our_groups(gid: u32) -> bool {
    rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups().is_ok_and(|g| g.iter().any(|g| g.as_raw() == gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_world_writable_folder_is_refused_unless_sticky() {
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o777);
        let e = LogDir::open(t.path()).unwrap_err();
        assert!(e.to_string().contains("writable by every user"), "{e}");
        chmod(t.path(), 0o1777);
        LogDir::open(t.path()).unwrap();
    }

    #[test]
    fn a_symlink_or_fifo_is_refused_and_a_file_is_appended() {
        let t = tempfile::tempdir().unwrap();
        chmod(t.path(), 0o755);
        let dir = LogDir::open(t.path()).unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("link")).unwrap();
        let e = dir.open_append("link").unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        rustix::fs::mkfifoat(&dir.fd, "fifo", Mode::from_raw_mode(0o600)).unwrap();
        let e = dir.open_append("fifo").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::hard_link(&victim, t.path().join("hard")).unwrap();
        let e = dir.open_append("hard").unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        use std::io::Write;
        dir.open_append("log").unwrap().write_all(b"a\n").unwrap();
        dir.open_append("log").unwrap().write_all(b"b\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("log")).unwrap(),
            "a\nb\n"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
