//! Directory handles that never leave the tree they were opened in.
//!
//! Every operation on the replica is made relative to a directory file descriptor, with
//! `O_NOFOLLOW` on the last component, so a symlink planted in the replica (or swapped in
//! while a pass runs) can never redirect a write or a delete outside it: the path-check-then-
//! act race that cost rsync a run of CVEs. Paths below a root are resolved with `openat2`
//! and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (Linux 5.6+), or component by component with
//! `O_NOFOLLOW` where `openat2` is missing.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags, openat, openat2};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Open the directory `name` inside `parent`, refusing symlinks.
pub fn open_child_dir(parent: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// Open an absolute directory path (a root given by the user). Symlinks in it are followed:
/// the user chose that path and it was canonicalised up front.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Open the directory at relative path `rel` below `root` without following any symlink.
/// An empty `rel` reopens the root itself.
pub fn open_dir_beneath(root: impl AsFd, rel: &Path) -> io::Result<OwnedFd> {
    let root = root.as_fd();
    if rel.as_os_str().is_empty() {
        return Ok(openat(root, ".", DIR_FLAGS, Mode::empty())?);
    }
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    if rel.as_os_str().len() >= CHUNK {
        return open_in_chunks(root, rel);
    }
    match openat2(root, rel, DIR_FLAGS, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOSYS) => walk_components(root, rel),
        Err(e) => Err(e.into()),
    }
}

/// Paths up to this long are opened in one call; longer ones (a tree deeper than PATH_MAX,
/// 4096 bytes, allows) a piece at a time, each piece beneath the directory the last one
/// opened.
const CHUNK: usize = 3072;

fn open_in_chunks(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let mut cur: Option<OwnedFd> = None;
    let mut piece = std::path::PathBuf::new();
    let mut comps = rel.components().peekable();
    while let Some(c) = comps.next() {
        piece.push(c);
        let full = comps
            .peek()
            .is_none_or(|n| piece.as_os_str().len() + n.as_os_str().len() + 1 >= CHUNK);
        if full {
            let at = cur.as_ref().map_or(root, |c| c.as_fd());
            cur = Some(open_dir_beneath(at, &piece)?);
            piece.clear();
        }
    }
    match cur {
        Some(fd) => Ok(fd),
        None => open_dir_beneath(root, Path::new("")),
    }
}

fn walk_components(root: impl AsFd, rel: &Path) -> io::Result<OwnedFd> {
    let mut cur: OwnedFd = openat(root, ".", DIR_FLAGS, Mode::empty())?;
    for c in rel.components() {
        match c {
            Component::Normal(name) => cur = open_child_dir(&cur, name)?,
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "path leaves the tree",
                ));
            }
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_longer_than_path_max_open_piece_by_piece() {
        let t = tempfile::tempdir().unwrap();
        let root = open_root(t.path()).unwrap();
        let name = "n".repeat(200);
        let mut rel = std::path::PathBuf::new();
        let mut cur = root.try_clone().unwrap();
        for _ in 0..30 {
            rustix::fs::mkdirat(&cur, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            cur = open_child_dir(&cur, OsStr::new(&name)).unwrap();
            rel.push(&name);
        }
        assert!(rel.as_os_str().len() > 4096);
        let opened = open_dir_beneath(&root, &rel).unwrap();
        let (a, b) = (
            rustix::fs::fstat(&opened).unwrap(),
            rustix::fs::fstat(&cur).unwrap(),
        );
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
    }

    #[test]
    fn refuses_symlinked_components() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        let root = open_root(t.path()).unwrap();
        assert!(open_dir_beneath(&root, Path::new("real")).is_ok());
        assert!(open_dir_beneath(&root, Path::new("link")).is_err());
        assert!(walk_components(&root, Path::new("link")).is_err());
        assert!(open_dir_beneath(&root, Path::new("../x")).is_err());
        assert!(open_child_dir(&root, OsStr::new("link")).is_err());
    }
}
