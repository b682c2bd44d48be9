//! Listing directory pairs, and reading them ahead of the walker on a small pool of threads.
//!
//! A pass that copies nothing spends nearly all its time in `getdents`, `fstatat` and attribute
//! reads, one directory pair after another: a single core's work, bound by the kernel. The walk
//! takes the next few queued subdirectories off its stack in order and hands each to a reader,
//! which opens both sides through the parent's held handles and lists them; the walker then
//! plans and applies each pair in that same order as its listings arrive. Every core lists, and
//! the walker only decides.
//!
//! Each reader lists a pair the way the walker would: what the replica holds is read before
//! the source is listed (see [`list_pair`]), so a listing read ahead is only a listing taken a
//! moment earlier, never a different kind of one. Nothing the walker does in between writes
//! into a directory that is waiting: a directory's own actions are applied only when its turn
//! comes, and links wait for the end of the walk.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::exec::DirState;
use crate::handle::{open_child_dir, open_dir_beneath};
use crate::plan::PlanOptions;
use crate::scan::{Listing, read_names, scan_dir, stat_names};
use crate::xattr;

/// A failed open or listing: what was being done, and why it failed.
pub(crate) type Fault = (&'static str, io::Error);

/// A replica directory with this many names or more has its entries stat'ed on a thread of
/// its own while the source is listed (one big directory is no less work than many small).
const SPLIT_NAMES: usize = 2048;

/// Queued subdirectories being read ahead, per reader thread: enough that a reader always has
/// the next one while the walker plans, few enough that their handles (two each) and listings
/// stay a small, fixed cost.
pub(crate) const AHEAD_PER_READER: usize = 4;

/// The listings of a directory pair (the replica's empty where it has none).
///
/// What the replica holds is read before the source is listed, everywhere: a batch that mirrors
/// a change in between (on another thread, beside a full pass) then only makes the source look
/// newer than the replica listing, which leads to redundant copies, never to removing what the
/// source now has. Only the replica's names must come first: their stats and attributes may be
/// read while the source is listed.
pub(crate) fn list_pair(
    src: &OwnedFd,
    dst: Option<&OwnedFd>,
    plan: PlanOptions,
) -> Result<(Listing, Listing), Fault> {
    let names = match dst {
        Some(d) => Some(read_names(d).map_err(|e| ("scan replica", e))?),
        None => None,
    };
    let source = || {
        let mut l = scan_dir(src).map_err(|e| ("scan", e))?;
        read_source_xattrs(src, &mut l, plan);
        Ok::<_, Fault>(l)
    };
    let replica = |d: &OwnedFd, names: Vec<OsString>| {
        let mut listing = stat_names(d, names);
        if plan.xattrs.any() {
            // An entry whose attributes cannot be read keeps `None`: they are not compared.
            let _ = xattr::read_listing(d, &mut listing.entries, plan.xattrs);
        }
        listing
    };
    match (dst, names) {
        (Some(d), Some(names)) if names.len() >= SPLIT_NAMES => {
            let names = Mutex::new(Some(names));
            let take = || {
                names
                    .lock()
                    .ok()
                    .and_then(|mut n| n.take())
                    .unwrap_or_default()
            };
            std::thread::scope(|s| {
                // Where no thread can be started (a thread limit), the replica half is read here.
                let half = std::thread::Builder::new()
                    .name("replwatch-reader".into())
                    .spawn_scoped(s, || replica(d, take()));
                let src_list = source();
                let dst_list = match half {
                    Ok(h) => h.join().map_err(|_| {
                        (
                            "scan replica",
                            io::Error::other("the replica listing thread panicked"),
                        )
                    })?,
                    Err(_) => replica(d, take()),
                };
                Ok((src_list?, dst_list))
            })
        }
        (Some(d), Some(names)) => {
            let dst_list = replica(d, names);
            Ok((source()?, dst_list))
        }
        _ => Ok((source()?, Listing::default())),
    }
}

/// Read the attributes of a source listing's entries not read yet, where the plan compares
/// them or an ACL among them limits the mode the replica gets (see `plan::source_mode`). An
/// entry whose attributes cannot be read becomes a scan error (its replica is left alone); one
/// gone since it was listed is left out, as if the listing had come a moment later.
pub(crate) fn read_source_xattrs(dir: &OwnedFd, src: &mut Listing, plan: PlanOptions) {
    if !plan.xattrs.any() && !plan.caps.perms {
        return;
    }
    for (name, err) in xattr::read_listing(dir, &mut src.entries, plan.xattrs) {
        src.entries.retain(|e| e.name != name);
        if err.kind() != io::ErrorKind::NotFound {
            src.errors.push((name, err));
        }
    }
}

/// A queued subdirectory to open (and list, if `scan`).
pub(crate) struct Request {
    /// The parent's handles, if the walk still holds them (see `walk::Task`).
    pub(crate) parent: Option<Arc<DirState>>,
    pub(crate) rel: PathBuf,
    pub(crate) name: OsString,
    /// Device and inode of the source directory, and of the replica's, as listed.
    pub(crate) ids: ((u64, u64), Option<(u64, u64)>),
    /// Created by this pass.
    pub(crate) fresh: bool,
    pub(crate) scan: bool,
}

/// A subdirectory opened on both sides, with its listings (`None`: not scanned).
pub(crate) struct Opened {
    pub(crate) src: OwnedFd,
    pub(crate) dst: Option<OwnedFd>,
    pub(crate) lists: Option<(Listing, Listing)>,
}

/// Where the replica side of a request is, when it cannot be opened where the source's is.
pub(crate) enum ReplicaSide {
    /// Opened (or reopened and checked) like the source's.
    Open(OwnedFd),
    /// Not there: the caller decides what that means (`NotFound` from the open).
    Missing(io::Error),
    /// The walk has no replica root (a dry run without a replica).
    NoRoot,
}

/// Open a request's two directories: through the parent's handles while the walk holds them,
/// else from the roots by path, checked to be the directories the parent's listing showed.
pub(crate) fn open_request(
    roots: (&OwnedFd, Option<&OwnedFd>),
    req: &Request,
) -> Result<(OwnedFd, ReplicaSide), Fault> {
    let (src_root, dst_root) = roots;
    let src = match &req.parent {
        Some(p) => open_child_dir(&p.src, &req.name),
        None => open_checked(src_root, &req.rel, Some(req.ids.0)),
    }
    .map_err(|e| ("open source dir", e))?;
    let dst_parent = match &req.parent {
        Some(p) => p.dst.as_ref(),
        None => dst_root,
    };
    let dst = match dst_parent {
        Some(parent) => match match &req.parent {
            Some(_) => open_child_dir(parent, &req.name),
            None => open_checked(parent, &req.rel, req.ids.1),
        } {
            Ok(d) => ReplicaSide::Open(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => ReplicaSide::Missing(e),
            Err(e) => return Err(("open replica dir", e)),
        },
        None => ReplicaSide::NoRoot,
    };
    Ok((src, dst))
}

/// Open the directory at `rel` beneath `root`, and check it is the one a listing showed
/// (`id`: device and inode), when one did.
pub(crate) fn open_checked(
    root: &OwnedFd,
    rel: &Path,
    id: Option<(u64, u64)>,
) -> io::Result<OwnedFd> {
    let fd = open_dir_beneath(root, rel)?;
    if let Some(id) = id {
        let st = rustix::fs::fstat(&fd)?;
        if (st.st_dev, st.st_ino) != id {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "replaced by another directory during the pass",
            ));
        }
    }
    Ok(fd)
}

/// The reader pool of one walk that writes: it opens and lists requests in the order given.
/// Only for a walk that writes: a dry run's replica directories may still be where a counted
/// rename would have moved them from, which only the walker knows (`Walk::unmoved`).
pub(crate) struct Readers {
    tx: SyncSender<(Request, SyncSender<Result<Opened, Fault>>)>,
}

/// A request handed to the readers: its outcome arrives here.
pub(crate) type Ahead = Receiver<Result<Opened, Fault>>;

impl Readers {
    /// Start `n` readers in `scope`; they end when the pool is dropped.
    pub(crate) fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        n: usize,
        roots: (&'scope OwnedFd, Option<&'scope OwnedFd>),
        plan: PlanOptions,
    ) -> Readers {
        let (tx, rx) =
            sync_channel::<(Request, SyncSender<Result<Opened, Fault>>)>(n * AHEAD_PER_READER);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..n {
            let rx = Arc::clone(&rx);
            let reader = std::thread::Builder::new()
                .name("replwatch-reader".into())
                .spawn_scoped(scope, move || {
                    loop {
                        let next = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok((req, reply)) = next else { return };
                        // A bug in one directory's reading is that directory's fault, never the
                        // walk's end: the walker reports it and leaves the directory alone.
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                read(roots, &req, plan)
                            }))
                            .unwrap_or_else(|_| {
                                Err(("scan", io::Error::other("the reader thread panicked")))
                            });
                        // A walk that stopped dropped the receiver: nothing to tell.
                        let _ = reply.send(outcome);
                    }
                });
            // Without it, requests wait for the readers that did start, or the walker reads
            // them itself once none is left (`submit`).
            drop(reader);
        }
        Readers { tx }
    }

    /// Hand `req` to a reader; back if they are all gone (the walker then reads it itself).
    pub(crate) fn submit(&self, req: Request) -> Result<Ahead, Request> {
        let (reply, ahead) = sync_channel(1);
        match self.tx.send((req, reply)) {
            Ok(()) => Ok(ahead),
            Err(back) => Err(back.0.0),
        }
    }
}

/// What a reader does with a request.
fn read(
    roots: (&OwnedFd, Option<&OwnedFd>),
    req: &Request,
    plan: PlanOptions,
) -> Result<Opened, Fault> {
    let (src, dst) = open_request(roots, req)?;
    let dst = match dst {
        ReplicaSide::Open(d) => Some(d),
        // Made by this pass and gone since: nothing to read (as the walker would).
        ReplicaSide::Missing(_) if req.fresh => None,
        ReplicaSide::Missing(e) => return Err(("open replica dir", e)),
        ReplicaSide::NoRoot => None,
    };
    let lists = if req.scan {
        Some(list_pair(&src, dst.as_ref(), plan)?)
    } else {
        None
    };
    Ok(Opened { src, dst, lists })
}
