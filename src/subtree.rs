//! The one walker below the pass: a whole subtree at once, depth first, through directory
//! handles, never following a symlink. Removing a replica directory, counting what a removal
//! would take for the dry run, counting SRC for the progress bar: each is a visitor over this
//! walk. (The pass's own walk, in `walk`, is different: it compares two trees and plans.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::entry::{Entry, Kind};
use crate::handle::open_child_dir;
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

/// Walk everything below the directory `dir` (whose path is `rel`), depth first, children
/// before their directory. An entry that vanishes meanwhile is skipped; a directory that
/// turned into something else is left as what it is now.
pub fn walk(dir: BorrowedFd<'_>, rel: &Path, v: &mut dyn Visitor) -> io::Result<()> {
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
            match open_child_dir(dir, &e.name) {
                Ok(fd) => walk(fd.as_fd(), &child, v)?,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) if matches!(err.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {}
                Err(err) => v.unreadable(&child, err)?,
            }
        }
        v.leave(dir, &e, &child)?;
    }
    Ok(())
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
