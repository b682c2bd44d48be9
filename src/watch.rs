//! Turning raw notify events into places to look.
//!
//! Events are hints, never facts: each one says which directories may now differ between SRC
//! and REPLICA, and the sync compares those directories' listings as they are when it looks.
//! So the unit re-checked is the *parent directory* of every path an event names, not the path:
//! whatever a burst did inside that directory (a rename then a removal, a file created and
//! deleted again, an exchange) is found by comparing the two listings, and the directory's own
//! mtime comes along with it.
//!
//! The events are taken raw from notify, in kernel order, with no debouncer in between:
//! notify-debouncer-full summarises a window lossily (a rename followed by a removal of its
//! target loses the rename's source; a path created and removed inside the window vanishes with
//! no event for its parent; a removed directory swallows its children's events). Our queue only
//! ever grows a set of places to look, so nothing is merged away; the debounce is the live
//! loop's (see `live`).
//!
//! The watcher asks the kernel for changes only (create, delete, move, write, attribute,
//! close-after-write): no open or access events, so reading SRC, ours or anyone's, costs
//! nothing and cannot overflow the queue. What the watcher cannot vouch for (a queue overflow,
//! an error, an event kind this code does not know) becomes a full pass.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventKind, EventKindMask, RecursiveMode, Watcher};

use crate::exclude::Excludes;

/// Why a full pass follows an inotify queue overflow.
pub const LOST_EVENTS: &str = "the watcher lost events (inotify queue overflow, rescan requested)";

/// The kernel-level event mask: every kind of change, no opens and no read-only closes.
pub fn event_mask() -> EventKindMask {
    EventKindMask::CORE | EventKindMask::ACCESS_CLOSE
}

/// What one event asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Compare this SRC-relative directory's listing with its replica's (shallow).
    Dir(PathBuf),
    /// This SRC-relative entry may be a directory that appeared whole (created, moved in):
    /// walk all of it, since files made in it before its watch existed have no events.
    Tree(PathBuf),
    /// Renamed inside SRC (a matched pair). An optimisation only: the directories of both
    /// ends are always compared too.
    Rename(PathBuf, PathBuf),
    /// Moved away from here, to where the watcher may not have seen (a directory not yet
    /// watched, or outside SRC): if a new tree holds it, it is a rename.
    MovedOut(PathBuf),
    /// The watcher cannot say what changed.
    Full(&'static str),
    /// SRC itself may be gone, moved, replaced or unmounted: check it before anything else.
    CheckSource,
}

fn parent(rel: &Path) -> PathBuf {
    rel.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The hints in one raw event, with paths made relative to `root`. Paths outside the root
/// are dropped (nothing outside SRC is mirrored).
pub fn interpret(event: &Event, root: &Path) -> Vec<Hint> {
    if event.need_rescan() {
        return vec![Hint::Full(LOST_EVENTS)];
    }
    let rel = |p: &PathBuf| p.strip_prefix(root).ok().map(Path::to_path_buf);
    let rels: Vec<PathBuf> = event.paths.iter().filter_map(rel).collect();
    let dirs = || rels.iter().map(|r| Hint::Dir(parent(r)));
    let mut out: Vec<Hint> = Vec::new();
    // The root itself being removed, moved or unmounted is never mirrored: it is checked.
    let names_root = rels.iter().any(|r| r.as_os_str().is_empty());
    match &event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => out.extend(dirs()),
        EventKind::Access(_) => {}
        EventKind::Create(CreateKind::File) => out.extend(dirs()),
        EventKind::Create(_) => {
            out.extend(dirs());
            out.extend(rels.iter().map(|r| Hint::Tree(r.clone())));
        }
        EventKind::Remove(kind) => {
            if names_root || (*kind == RemoveKind::Other && event.info() == Some("unmount")) {
                out.push(Hint::CheckSource);
            }
            out.extend(dirs());
            if event.info() == Some("unmount") {
                // A filesystem mounted below SRC went away: look at what is there now.
                out.extend(rels.iter().map(|r| Hint::Tree(r.clone())));
            }
        }
        EventKind::Modify(ModifyKind::Name(mode)) => {
            if names_root {
                out.push(Hint::CheckSource);
            }
            match (mode, event.paths.as_slice()) {
                (RenameMode::Both, [from, to]) => {
                    out.extend(dirs());
                    if let (Some(f), Some(t)) = (rel(from), rel(to)) {
                        out.push(Hint::Rename(f, t));
                    }
                }
                (RenameMode::From, _) => {
                    out.extend(dirs());
                    out.extend(rels.iter().map(|r| Hint::MovedOut(r.clone())));
                }
                _ => {
                    out.extend(dirs());
                    out.extend(rels.iter().map(|r| Hint::Tree(r.clone())));
                }
            }
        }
        EventKind::Modify(_) => out.extend(dirs()),
        EventKind::Any | EventKind::Other => {
            out.push(Hint::Full("an event the watcher could not classify"))
        }
    }
    // An event about the root's own metadata: the root is its own "parent directory".
    out.retain(|h| !matches!(h, Hint::Tree(p) | Hint::MovedOut(p) if p.as_os_str().is_empty()));
    out
}

/// Drop what concerns excluded paths. A directory to compare is kept unless it is itself
/// excluded (its excluded entries are left out of the comparison by the walk); a rename across
/// the boundary is what it is for the mirror: leaving the excluded area is a creation,
/// entering it a removal, both found by comparing the directories.
pub fn drop_excluded(hints: Vec<Hint>, ex: &Excludes) -> Vec<Hint> {
    if ex.is_empty() {
        return hints;
    }
    let out = |p: &Path| !p.as_os_str().is_empty() && ex.excludes(p, true);
    let out_any = |p: &Path| ex.excludes(p, false) || out(p);
    hints
        .into_iter()
        .filter_map(|h| match h {
            Hint::Dir(p) if out(&p) => None,
            Hint::Tree(p) | Hint::MovedOut(p) if out_any(&p) => None,
            Hint::Rename(f, t) if out_any(&f) || out_any(&t) => None,
            other => Some(other),
        })
        .collect()
}

/// A running watcher on SRC (inotify, or the poller for network and FUSE filesystems, which
/// deliver no events); dropping it stops it.
pub struct Watch {
    watcher: Box<dyn Watcher + Send>,
}

impl Watch {
    /// Watch `dir` (absolute, inside SRC) again, recursively: after an exchange of two names
    /// the watcher's map of which directory is where is stale.
    pub fn rewatch(&mut self, dir: &Path) -> notify::Result<()> {
        self.watcher.watch(dir, RecursiveMode::Recursive)
    }
}

/// How to watch.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Inotify,
    /// Rescan every interval. notify's PollWatcher compares mtimes (whole seconds on some
    /// filesystems); the periodic full pass catches anything it misses.
    Poll(Duration),
}

/// A watcher that runs, and what it could not watch.
pub struct Started {
    pub watch: Watch,
    /// Watching stopped part-way (the watch limit): directories not reached are unwatched.
    pub partial: Option<notify::Error>,
}

/// Start watching `root` recursively, never following symlinks (a link to a folder outside
/// SRC must neither be watched nor spend a watch). Each raw event or error is sent to `tx`
/// wrapped by `wrap`. A watcher that hit the watch limit part-way is kept: the directories it
/// did watch still report, and the caller says what is not covered.
pub fn start<M: Send + 'static>(
    root: &Path,
    backend: Backend,
    tx: Sender<M>,
    wrap: fn(notify::Result<Event>) -> M,
) -> notify::Result<Started> {
    let config = notify::Config::default()
        .with_follow_symlinks(false)
        .with_event_kinds(event_mask());
    let handler = move |r: notify::Result<Event>| {
        let _ = tx.send(wrap(r));
    };
    let mut watcher: Box<dyn Watcher + Send> = match backend {
        Backend::Inotify => Box::new(notify::RecommendedWatcher::new(handler, config)?),
        Backend::Poll(every) => Box::new(notify::PollWatcher::new(
            handler,
            config.with_poll_interval(every),
        )?),
    };
    let result = watcher.watch(root, RecursiveMode::Recursive);
    let watch = Watch { watcher };
    match result {
        Ok(()) => Ok(Started {
            watch,
            partial: None,
        }),
        Err(e) if is_watch_limit(&e) => Ok(Started {
            watch,
            partial: Some(e),
        }),
        Err(e) => Err(e),
    }
}

/// True for the error notify gives when the inotify watch limit is reached.
pub fn is_watch_limit(e: &notify::Error) -> bool {
    matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
}

/// True for the errors notify gives when a directory it was about to watch is gone or is no
/// longer a directory (ENOENT, ENOTDIR): a race with the change that moved it.
pub fn is_vanished(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => {
            io.kind() == std::io::ErrorKind::NotFound || io.raw_os_error() == Some(libc::ENOTDIR)
        }
        _ => false,
    }
}

/// True for the error inotify gives for a directory whose path is longer than PATH_MAX.
pub fn is_too_long(e: &notify::Error) -> bool {
    matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENAMETOOLONG))
}

/// What to tell the user when the watch limit is hit.
pub const WATCH_LIMIT_HINT: &str = "raise the limit with \
`sysctl fs.inotify.max_user_watches=524288` (persist in /etc/sysctl.d/), or use --poll";

/// The inode numbers of the directories this process's inotify watches are on, read from
/// `/proc/self/fdinfo` (the kernel's own list: notify keeps its own to itself). `None` where
/// that cannot be read. Inode numbers alone: the device there is the superblock's, which on
/// btrfs is not what `stat` says for a subvolume (a rare collision only miscounts).
pub fn watched_inodes() -> Option<std::collections::HashSet<u64>> {
    let mut out = std::collections::HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let is_inotify =
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:inotify");
        if !is_inotify {
            continue;
        }
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(fd.file_name()));
        for line in info.ok()?.lines().filter(|l| l.starts_with("inotify wd:")) {
            let field = |key: &str| {
                let v = line.split_whitespace().find_map(|w| w.strip_prefix(key))?;
                u64::from_str_radix(v, 16).ok()
            };
            if let Some(ino) = field("ino:") {
                out.insert(ino);
            }
        }
    }
    Some(out)
}

/// How far the watch reaches: the directories under `root` (itself included) and those of
/// them that have no watch.
pub struct Coverage {
    pub dirs: u64,
    pub unwatched: Vec<PathBuf>,
}

/// Walk SRC's directories (handles, no symlinks followed) and find those without a watch.
pub fn coverage(root: &Path) -> std::io::Result<Coverage> {
    struct Dirs<'a> {
        watched: &'a std::collections::HashSet<u64>,
        cov: Coverage,
    }
    impl crate::subtree::Visitor for Dirs<'_> {
        fn wants(&mut self, e: &crate::entry::Entry, _rel: &Path) -> bool {
            e.kind == crate::entry::Kind::Dir
        }
        fn unreadable(&mut self, _rel: &Path, _err: std::io::Error) -> std::io::Result<()> {
            Ok(())
        }
        fn leave(
            &mut self,
            _parent: std::os::fd::BorrowedFd<'_>,
            e: &crate::entry::Entry,
            rel: &Path,
        ) -> std::io::Result<()> {
            self.cov.dirs += 1;
            if !self.watched.contains(&e.ino) {
                self.cov.unwatched.push(rel.to_path_buf());
            }
            Ok(())
        }
    }
    let watched = watched_inodes().ok_or_else(|| std::io::Error::other("no /proc/self/fdinfo"))?;
    let dir = crate::handle::open_root(root)?;
    let st = rustix::fs::fstat(&dir)?;
    let mut v = Dirs {
        watched: &watched,
        cov: Coverage {
            dirs: 1,
            unwatched: Vec::new(),
        },
    };
    if !watched.contains(&st.st_ino) {
        v.cov.unwatched.push(PathBuf::new());
    }
    crate::subtree::walk(std::os::fd::AsFd::as_fd(&dir), Path::new(""), &mut v)?;
    Ok(v.cov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, Flag, MetadataKind};

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    fn hints(kind: EventKind, paths: &[&str]) -> Vec<Hint> {
        interpret(&ev(kind, paths), Path::new("/src"))
    }

    fn dir(s: &str) -> Hint {
        Hint::Dir(s.into())
    }

    #[test]
    fn every_change_marks_its_parent_directory() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert_eq!(hints(data, &["/src/a/f"]), vec![dir("a")]);
        let meta = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions));
        assert_eq!(hints(meta, &["/src/d"]), vec![dir("")]);
        let rm = EventKind::Remove(RemoveKind::Folder);
        assert_eq!(hints(rm, &["/src/d/e"]), vec![dir("d")]);
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(hints(close, &["/src/f"]), vec![dir("")]);
        let mkf = EventKind::Create(CreateKind::File);
        assert_eq!(hints(mkf, &["/src/x/f"]), vec![dir("x")]);
    }

    #[test]
    fn opens_and_reads_are_nothing() {
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(hints(open, &["/src/f"]).is_empty());
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert!(hints(read, &["/src/f"]).is_empty());
        let m = event_mask();
        assert!(!m.intersects(EventKindMask::ACCESS_OPEN));
        assert!(!m.intersects(EventKindMask::ACCESS_CLOSE_NOWRITE));
        assert!(m.intersects(EventKindMask::ACCESS_CLOSE));
    }

    #[test]
    fn new_folders_and_moves_in_are_walked() {
        let mk = EventKind::Create(CreateKind::Folder);
        assert_eq!(
            hints(mk, &["/src/a/new"]),
            vec![dir("a"), Hint::Tree("a/new".into())]
        );
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(
            hints(to, &["/src/in"]),
            vec![dir(""), Hint::Tree("in".into())]
        );
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(
            hints(from, &["/src/d/out"]),
            vec![dir("d"), Hint::MovedOut("d/out".into())]
        );
    }

    #[test]
    fn paired_renames_mark_both_directories() {
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            hints(both, &["/src/a", "/src/d/b"]),
            vec![dir(""), dir("d"), Hint::Rename("a".into(), "d/b".into())]
        );
        assert_eq!(hints(both, &["/src/a", "/elsewhere/b"]), vec![dir("")]);
    }

    #[test]
    fn rescans_and_unknown_events_need_a_full_pass() {
        let e = ev(EventKind::Other, &[]).set_flag(Flag::Rescan);
        assert_eq!(
            interpret(&e, Path::new("/src")),
            vec![Hint::Full(LOST_EVENTS)]
        );
        assert!(matches!(
            hints(EventKind::Any, &["/src/x"])[..],
            [Hint::Full(_)]
        ));
    }

    #[test]
    fn the_root_going_away_is_checked_not_mirrored() {
        let rm = EventKind::Remove(RemoveKind::Folder);
        assert_eq!(hints(rm, &["/src"]), vec![Hint::CheckSource, dir("")]);
        let mv = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(hints(mv, &["/src"]), vec![Hint::CheckSource, dir("")]);
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert!(!hints(from, &["/src"]).contains(&Hint::MovedOut("".into())));
        let unmount = ev(EventKind::Remove(RemoveKind::Other), &["/src"]).set_info("unmount");
        assert_eq!(
            interpret(&unmount, Path::new("/src")),
            vec![Hint::CheckSource, dir("")]
        );
        let below = ev(EventKind::Remove(RemoveKind::Other), &["/src/m"]).set_info("unmount");
        assert_eq!(
            interpret(&below, Path::new("/src")),
            vec![Hint::CheckSource, dir(""), Hint::Tree("m".into())]
        );
    }

    #[test]
    fn excluded_paths_never_reach_the_queue() {
        let ex = Excludes::new(&["*.log".to_string(), "build/".to_string()]).unwrap();
        let hints = vec![
            dir("build"),
            dir("src"),
            Hint::Tree("a.log".into()),
            Hint::Tree("build".into()),
            Hint::Tree("keep".into()),
            Hint::Rename("x.log".into(), "x.txt".into()),
            Hint::Rename("y.txt".into(), "z.txt".into()),
        ];
        assert_eq!(
            drop_excluded(hints, &ex),
            vec![
                dir("src"),
                Hint::Tree("keep".into()),
                Hint::Rename("y.txt".into(), "z.txt".into())
            ]
        );
    }
}
