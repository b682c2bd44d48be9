//! A second thread for the replica half of each listing.
//!
//! A pass spends most of a no-change walk in `fstatat` and attribute reads, one directory pair
//! at a time. The replica's names are read first, on the walker (what exists in the replica is
//! fixed before the source is listed: see `walk::Walk::compare`), then this thread stats them
//! and reads their attributes while the walker lists the source: both cores work on a pass
//! that copies nothing.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::scan::{Listing, stat_names};
use crate::xattr::{self, Namespaces};

/// Below this many names the hand-off costs more than it saves.
const MIN_NAMES: usize = 32;

type Request = (OwnedFd, Vec<OsString>, Namespaces);

pub(crate) struct Lister {
    tx: SyncSender<Request>,
    rx: Receiver<Listing>,
}

/// The replica half of a listing: being read by the lister, or read here.
pub(crate) enum Half {
    Away,
    Here(Listing),
}

impl Lister {
    pub(crate) fn new() -> io::Result<Lister> {
        let (tx, requests) = sync_channel::<Request>(1);
        let (done, rx) = sync_channel::<Listing>(1);
        std::thread::Builder::new()
            .name("replwatch-lister".into())
            .spawn(move || {
                for (dir, names, ns) in requests {
                    let listing = read(&dir, names, ns);
                    if done.send(listing).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Lister { tx, rx })
    }

    /// Stat `names` in `dir` (and read their attributes when `ns` asks for any), on the
    /// lister if there are enough of them and it is there, else here.
    pub(crate) fn start(&self, dir: &OwnedFd, names: Vec<OsString>, ns: Namespaces) -> Half {
        if names.len() >= MIN_NAMES
            && let Ok(dup) = dir.try_clone()
        {
            match self.tx.send((dup, names, ns)) {
                Ok(()) => return Half::Away,
                Err(back) => return Half::Here(read(dir, back.0.1, ns)),
            }
        }
        Half::Here(read(dir, names, ns))
    }

    /// The listing `start` began; `None` if the lister is gone (it panicked): the
    /// directory is then a fault, never read as empty.
    pub(crate) fn finish(&self, half: Half) -> Option<Listing> {
        match half {
            Half::Here(l) => Some(l),
            Half::Away => self.rx.recv().ok(),
        }
    }
}

fn read(dir: &OwnedFd, names: Vec<OsString>, ns: Namespaces) -> Listing {
    let mut listing = stat_names(dir, names);
    if ns.any() {
        // An entry whose attributes cannot be read keeps `None`: they are not compared.
        let _ = xattr::read_listing(dir, &mut listing.entries, ns);
    }
    listing
}
