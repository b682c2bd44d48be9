//! The one walker below the pass: a whole subtree at once, depth first, through directory
//! handles, never following a symlink. Removing a replica directory, counting what a removal
//! would take for the dry run, counting SRC for the progress bar: each is a visitor over this
//! walk. (The pass's own walk, in `walk`, is different: it compares two trees and plans.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::fstat;

use crate::entry::{Entry, Kind};
use crate::handle::{open_child_dir, open_dir_beneath};
use crate::scan::scan_dir;

/// What a walk does at each entry.
pub trait Visitor {
    /// Should the walk look at `entry` (at `rel`) at all? Not: neither descended into nor left.
    fn wants(&mut self, _entry: &Entry, _rel: &Path) -> bool {
        true
    }

    /// About to read the directory `dir` (at `rel`, the walk's root included).
    fn enter(&mut self, _dir: BorrowedFd<'_>, _rel: &Path) -> io::Result<()> {
        Ok(())
    }

    /// A directory at `rel` could not be opened or read: `Err` ends the walk (the default),
    /// `Ok` goes on without its contents.
    fn unreadable(&mut self, _rel: &Path, err: io::Error) -> io::Result<()> {
        Err(err)
    }

    /// `entry`, in the directory `parent`, once everything below it is done.
    fn leave(&mut self, parent: BorrowedFd<'_>, entry: &Entry, rel: &Path) -> io::Result<()>;
}

/// Levels whose handles are held while their children are walked; deeper down, a level
/// gives up its handle while a child is walked and opens itself again afterwards, so a walk
/// holds at most this many descriptors whatever the depth (a 1,000-level tree mirrors under
/// `ulimit -n 256`).
const HELD: usize = 32;

/// Walk everything below the directory `dir` (whose path is `rel`), depth first, children
/// before their directory. An entry that vanishes meanwhile is skipped; a directory that
/// turned into something else is left as what it is now.
pub fn walk(dir: BorrowedFd<'_>, rel: &Path, v: &mut dyn Visitor) -> io::Result<()> {
    held(dir, rel, v, 0)
}

fn held(dir: BorrowedFd<'_>, rel: &Path, v: &mut dyn Visitor, depth: usize) -> io::Result<()> {
    v.enter(dir, rel)?;
    let list = match scan_dir(dir) {
        Ok(list) => list,
        Err(err) => return v.unreadable(rel, err),
    };
    for e in list.entries {
        let child = rel.join(&e.name);
        if !v.wants(&e, &child) {
            continue;
        }
        if e.kind == Kind::Dir {
            match open_child(dir, &e.name, &child, v)? {
                Child::Dir(fd) if depth + 1 < HELD => held(fd.as_fd(), &child, v, depth + 1)?,
                Child::Dir(fd) => deep(dir, PathBuf::from(&e.name), fd, &child, v)?,
                Child::Gone => continue,
                Child::Other => {}
            }
        }
        v.leave(dir, &e, &child)?;
    }
    Ok(())
}

/// A level below [`HELD`]: `dir` is this directory, at `below` beneath `anchor` (the deepest
/// level that holds its handle). Its own handle is closed while a subdirectory is walked, and
/// reopened from `anchor` afterwards, checked to be the same directory (device and inode).
fn deep(
    anchor: BorrowedFd<'_>,
    below: PathBuf,
    dir: OwnedFd,
    rel: &Path,
    v: &mut dyn Visitor,
) -> io::Result<()> {
    v.enter(dir.as_fd(), rel)?;
    let list = match scan_dir(&dir) {
        Ok(list) => list,
        Err(err) => return v.unreadable(rel, err),
    };
    let st = fstat(&dir)?;
    let id = (st.st_dev, st.st_ino);
    let mut dir = Some(dir);
    for e in list.entries {
        let child = rel.join(&e.name);
        if !v.wants(&e, &child) {
            continue;
        }
        if e.kind == Kind::Dir {
            let here = reopen(&mut dir, anchor, &below, id)?;
            match open_child(here, &e.name, &child, v)? {
                Child::Dir(fd) => {
                    dir = None;
                    deep(anchor, below.join(&e.name), fd, &child, v)?;
                }
                Child::Gone => continue,
                Child::Other => {}
            }
        }
        let here = reopen(&mut dir, anchor, &below, id)?;
        v.leave(here, &e, &child)?;
    }
    Ok(())
}

/// The handle of a deep level, opened again if it was given up.
fn reopen<'a>(
    dir: &'a mut Option<OwnedFd>,
    anchor: BorrowedFd<'_>,
    below: &Path,
    id: (u64, u64),
) -> io::Result<BorrowedFd<'a>> {
    if dir.is_none() {
        let fd = open_dir_beneath(anchor, below)?;
        let st = fstat(&fd)?;
        if (st.st_dev, st.st_ino) != id {
            return Err(io::Error::other(format!(
                "{} was replaced during the walk",
                below.display()
            )));
        }
        *dir = Some(fd);
    }
    Ok(dir.as_ref().map(|d| d.as_fd()).expect("just opened"))
}

/// What a listed subdirectory turned out to be when opened.
enum Child {
    Dir(OwnedFd),
    /// Gone: skipped.
    Gone,
    /// No longer a directory, or unreadable and the visitor goes on: left as it is.
    Other,
}

fn open_child(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    child: &Path,
    v: &mut dyn Visitor,
) -> io::Result<Child> {
    match open_child_dir(dir, name) {
        Ok(fd) => Ok(Child::Dir(fd)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Child::Gone),
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
            Ok(Child::Other)
        }
        Err(err) => v.unreadable(child, err).map(|()| Child::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names(Vec<String>);

    impl Visitor for Names {
        fn wants(&mut self, entry: &Entry, _rel: &Path) -> bool {
            entry.name != "skip"
        }
        fn leave(&mut self, _p: BorrowedFd<'_>, _e: &Entry, rel: &Path) -> io::Result<()> {
            self.0.push(rel.display().to_string());
            Ok(())
        }
    }

    #[test]
    fn children_come_before_their_directory_and_links_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::create_dir_all(t.path().join("skip/x")).unwrap();
        std::fs::write(t.path().join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(t.path().join("a"), t.path().join("link")).unwrap();
        let root = crate::handle::open_root(t.path()).unwrap();
        let mut names = Names(Vec::new());
        walk(root.as_fd(), Path::new(""), &mut names).unwrap();
        assert_eq!(names.0, ["a/b/f", "a/b", "a", "link"]);
    }
}
