//! Turning debounced notify events into work for the sync queue.
//!
//! Events are hints, not facts: each names paths whose current state the queue will look at
//! (an editor's save-by-rename, a burst of writes and a delete all end the same way). What
//! the watcher cannot vouch for (a rescan flag after an inotify queue overflow, an error, an
//! event kind this code does not know) becomes a full pass.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, Debouncer, FileIdMap, RecommendedCache, new_debouncer_opt,
};

use crate::exclude::Excludes;
use crate::queue::Queue;

/// Why a full pass follows an inotify queue overflow.
pub const LOST_EVENTS: &str = "the watcher lost events (rescan requested)";

/// The inotify queue size a watcher created now gets (`fs.inotify.max_queued_events`).
pub fn queue_limit() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384)
}

/// Did our own sync overflow the queue? notify watches opens (IN_OPEN), so a pass that
/// opens about as many directories and files as the queue holds fills it by itself. A
/// rescan that arrives right after such a pass is its echo: running another full pass for
/// it would loop forever on a large tree. `work` is the entries the sync scanned plus the
/// files it copied; `since` is how long ago it ended.
pub fn is_own_echo(work: u64, since: Duration, limit: u64, debounce: Duration) -> bool {
    work >= limit && since < debounce * 2 + Duration::from_secs(1)
}

/// What one event asks of the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Look at this SRC-relative path again (`deep`: and everything below it).
    Path(PathBuf, bool),
    /// Renamed inside SRC.
    Rename(PathBuf, PathBuf),
    /// The watcher cannot say what changed.
    Full(&'static str),
    /// SRC itself was deleted or moved away.
    RootGone,
}

/// The hints in one event, with paths made relative to `root`. Paths outside the root are
/// dropped (nothing outside SRC is mirrored).
pub fn interpret(event: &Event, root: &Path) -> Vec<Hint> {
    if event.need_rescan() {
        return vec![Hint::Full(LOST_EVENTS)];
    }
    let rel = |p: &PathBuf| p.strip_prefix(root).ok().map(Path::to_path_buf);
    let is_root = |p: &PathBuf| p == root;
    let each = |deep: bool| -> Vec<Hint> {
        event
            .paths
            .iter()
            .filter_map(rel)
            .map(|r| Hint::Path(r, deep))
            .collect()
    };
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => each(false),
        EventKind::Access(_) => Vec::new(),
        EventKind::Create(CreateKind::File) => each(false),
        EventKind::Create(_) => each(true),
        EventKind::Remove(_) if event.paths.iter().any(is_root) => vec![Hint::RootGone],
        EventKind::Remove(_) => each(false),
        EventKind::Modify(ModifyKind::Name(mode)) => {
            if event.paths.iter().any(is_root) {
                return vec![Hint::RootGone];
            }
            match (mode, event.paths.as_slice()) {
                (RenameMode::Both, [from, to]) => match (rel(from), rel(to)) {
                    (Some(f), Some(t)) => vec![Hint::Rename(f, t)],
                    (Some(f), None) => vec![Hint::Path(f, false)],
                    (None, Some(t)) => vec![Hint::Path(t, true)],
                    (None, None) => Vec::new(),
                },
                // Moved out of SRC: the path is gone, which a shallow sync turns into a delete.
                (RenameMode::From, _) => each(false),
                // Moved in (or unpaired): walk it, it may be a whole tree.
                _ => each(true),
            }
        }
        EventKind::Modify(_) => each(false),
        EventKind::Any | EventKind::Other => {
            vec![Hint::Full("an event the watcher could not classify")]
        }
    }
}

/// Put hints into the queue. Returns true if SRC's root went away.
pub fn enqueue(hints: Vec<Hint>, queue: &mut Queue) -> bool {
    let mut root_gone = false;
    for h in hints {
        match h {
            Hint::Path(p, deep) => queue.path(p, deep),
            Hint::Rename(f, t) => queue.rename(f, t),
            Hint::Full(why) => queue.full_pass(why),
            Hint::RootGone => root_gone = true,
        }
    }
    root_gone
}

/// Drop what concerns excluded paths, before it reaches the queue. A rename across the
/// boundary becomes what it is for the mirror: leaving the excluded area is a creation,
/// entering it a removal.
pub fn drop_excluded(hints: Vec<Hint>, ex: &Excludes) -> Vec<Hint> {
    if ex.is_empty() {
        return hints;
    }
    let out = |p: &Path| ex.excludes(p, false);
    hints
        .into_iter()
        .filter_map(|h| match h {
            Hint::Path(p, _) if out(&p) => None,
            Hint::Rename(f, t) => match (out(&f), out(&t)) {
                (true, true) => None,
                (true, false) => Some(Hint::Path(t, true)),
                (false, true) => Some(Hint::Path(f, false)),
                (false, false) => Some(Hint::Rename(f, t)),
            },
            other => Some(other),
        })
        .collect()
}

/// A running watcher on SRC; dropping it stops it.
pub enum Watch {
    Inotify(Debouncer<notify::RecommendedWatcher, RecommendedCache>),
    /// For network and FUSE filesystems, which deliver no events.
    Poll(Debouncer<notify::PollWatcher, FileIdMap>),
}

/// How to watch.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Inotify,
    /// Rescan every interval. notify's PollWatcher compares mtimes (whole seconds on some
    /// filesystems); the periodic full pass catches anything it misses.
    Poll(Duration),
}

/// Start watching `root` recursively (never following symlinks: a link to a folder outside
/// SRC must neither be watched nor spend a watch). Batches arrive every `debounce`.
pub fn start<F>(
    root: &Path,
    debounce: Duration,
    backend: Backend,
    handler: F,
) -> notify::Result<Watch>
where
    F: FnMut(DebounceEventResult) + Send + 'static,
{
    let config = notify::Config::default().with_follow_symlinks(false);
    Ok(match backend {
        Backend::Inotify => {
            let mut d = new_debouncer_opt::<_, notify::RecommendedWatcher, _>(
                debounce,
                None,
                handler,
                RecommendedCache::new(),
                config,
            )?;
            d.watch(root, RecursiveMode::Recursive)?;
            Watch::Inotify(d)
        }
        Backend::Poll(every) => {
            // The file-id cache pairs a poll's remove + create into a rename.
            let mut d = new_debouncer_opt::<_, notify::PollWatcher, _>(
                debounce,
                None,
                handler,
                FileIdMap::new(),
                config.with_poll_interval(every),
            )?;
            d.watch(root, RecursiveMode::Recursive)?;
            Watch::Poll(d)
        }
    })
}

/// Start a watcher that forwards each batch into a channel.
pub fn start_to<M: Send + 'static>(
    root: &Path,
    debounce: Duration,
    backend: Backend,
    tx: Sender<M>,
    wrap: fn(DebounceEventResult) -> M,
) -> notify::Result<Watch> {
    start(root, debounce, backend, move |r| {
        let _ = tx.send(wrap(r));
    })
}

/// True for the error notify gives when the inotify watch limit is reached.
pub fn is_watch_limit(e: &notify::Error) -> bool {
    matches!(e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
}

/// What to tell the user when the watch limit is hit.
pub const WATCH_LIMIT_HINT: &str = "the inotify watch limit (one per directory) is reached: \
changes in some directories will only be mirrored by the periodic full pass. Raise it with \
`sysctl fs.inotify.max_user_watches=524288` (persist in /etc/sysctl.d/), or use --poll";

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, Flag, MetadataKind, RemoveKind};

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

    fn p(s: &str, deep: bool) -> Hint {
        Hint::Path(s.into(), deep)
    }

    #[test]
    fn writes_and_removes_are_shallow() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert_eq!(hints(data, &["/src/a/f"]), vec![p("a/f", false)]);
        let meta = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions));
        assert_eq!(hints(meta, &["/src/d"]), vec![p("d", false)]);
        let rm = EventKind::Remove(RemoveKind::Folder);
        assert_eq!(hints(rm, &["/src/d"]), vec![p("d", false)]);
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(hints(close, &["/src/f"]), vec![p("f", false)]);
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(hints(open, &["/src/f"]).is_empty());
    }

    #[test]
    fn new_folders_and_moves_in_are_deep() {
        let mk = EventKind::Create(CreateKind::Folder);
        assert_eq!(hints(mk, &["/src/new"]), vec![p("new", true)]);
        let mkf = EventKind::Create(CreateKind::File);
        assert_eq!(hints(mkf, &["/src/f"]), vec![p("f", false)]);
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(hints(to, &["/src/in"]), vec![p("in", true)]);
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(hints(from, &["/src/out"]), vec![p("out", false)]);
    }

    #[test]
    fn paired_renames_stay_renames() {
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            hints(both, &["/src/a", "/src/d/b"]),
            vec![Hint::Rename("a".into(), "d/b".into())]
        );
        assert_eq!(
            hints(both, &["/src/a", "/elsewhere/b"]),
            vec![p("a", false)]
        );
    }

    #[test]
    fn rescans_and_unknown_events_need_a_full_pass() {
        let e = ev(EventKind::Other, &[]).set_flag(Flag::Rescan);
        assert!(matches!(
            interpret(&e, Path::new("/src"))[..],
            [Hint::Full(_)]
        ));
        assert!(matches!(
            hints(EventKind::Any, &["/src/x"])[..],
            [Hint::Full(_)]
        ));
    }

    #[test]
    fn the_root_going_away_is_reported_not_mirrored() {
        let rm = EventKind::Remove(RemoveKind::Folder);
        assert_eq!(hints(rm, &["/src"]), vec![Hint::RootGone]);
        let mv = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(hints(mv, &["/src"]), vec![Hint::RootGone]);
    }

    #[test]
    fn excluded_paths_never_reach_the_queue() {
        let ex = Excludes::new(&["*.log".to_string(), "build/".to_string()]).unwrap();
        let hints = vec![
            p("a.log", false),
            p("build/x.o", false),
            p("keep.txt", false),
            Hint::Rename("x.log".into(), "x.txt".into()),
            Hint::Rename("y.txt".into(), "y.log".into()),
            Hint::Rename("a.log".into(), "b.log".into()),
        ];
        assert_eq!(
            drop_excluded(hints, &ex),
            vec![p("keep.txt", false), p("x.txt", true), p("y.txt", false)]
        );
    }

    #[test]
    fn only_a_big_recent_sync_explains_an_overflow() {
        let d = Duration::from_millis(200);
        let just = Duration::from_millis(100);
        assert!(is_own_echo(20_000, just, 16384, d));
        assert!(
            !is_own_echo(100, just, 16384, d),
            "too little work to overflow"
        );
        assert!(
            !is_own_echo(20_000, Duration::from_secs(5), 16384, d),
            "too long ago"
        );
        assert!(is_own_echo(64, just, 64, d));
        assert!(!is_own_echo(40, just, 64, d));
    }

    #[test]
    fn enqueue_collects_into_the_queue() {
        let mut q = Queue::default();
        let gone = enqueue(vec![p("a", true), p("a/b", false), Hint::RootGone], &mut q);
        assert!(gone);
        assert!(!q.is_empty());
    }
}
