//! Hard-link sets: the names of each source inode that has several (`rsync -H`).
//!
//! The first name of a set that a walk meets is its *leader*: it is mirrored like any file,
//! and every other name of the set is planned as a link to the leader's replica file. Only
//! files with more than one name are remembered, so the cost follows the links, not the tree.
//!
//! The register outlives a walk, because live mode compares single directories:
//! - a link made in one directory to a file in another (`ln d1/a d2/b`) makes an event in
//!   `d2` only; the batch that compares `d2` learns from the register that `d1/a` leads;
//! - new bytes written through one name make an event for that name only; the batch that
//!   copies it learns from the register where the set's other names are, and compares those
//!   directories too, so they are linked to the fresh copy;
//! - a file with several names that the register has never seen (it had one name until now)
//!   has its other names somewhere in the tree: only a full pass can find them, and the batch
//!   asks for one (unless the batch itself met all of them).
//!
//! What the register says is a hint, checked against SRC before it is used (the walk does
//! that: see `walk::Walk::link_sets`). A full pass, which meets every name, makes the first
//! name it meets the leader and forgets the names and sets it did not meet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source inode: device and inode number.
pub(crate) type Inode = (u64, u64);

#[derive(Clone)]
struct Set {
    leader: PathBuf,
    /// The walk that last met the leader's name.
    led: u64,
    /// Every name met, with the walk that last met it.
    names: Vec<(PathBuf, u64)>,
}

/// What the register says about one name of a set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A set the register did not know: this name leads it.
    New,
    /// This name leads its set.
    Leader,
    /// Another name leads it; `now` when this walk met that name (and planned it).
    Other { rel: PathBuf, now: bool },
}

#[derive(Default)]
pub(crate) struct LinkSets {
    sets: Mutex<HashMap<Inode, Set>>,
    walks: AtomicU64,
}

impl LinkSets {
    /// A copy, for a walk whose findings must not count: the `--max-delete` look-ahead
    /// plans exactly what the real walk then plans, so it must find the register as that walk
    /// will.
    pub(crate) fn snapshot(&self) -> LinkSets {
        LinkSets {
            sets: Mutex::new(self.sets.lock().map(|s| s.clone()).unwrap_or_default()),
            walks: AtomicU64::new(self.walks.load(Ordering::Relaxed)),
        }
    }

    /// A number for a new walk.
    pub(crate) fn start_walk(&self) -> u64 {
        self.walks.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Record that walk `walk` met `inode` under the name `rel`, and say who leads its set. A
    /// `full` walk meets every name, so the first it meets leads.
    pub(crate) fn find(&self, inode: Inode, rel: &Path, walk: u64, full: bool) -> Found {
        let Ok(mut sets) = self.sets.lock() else {
            return Found::Leader;
        };
        let Some(set) = sets.get_mut(&inode) else {
            sets.insert(
                inode,
                Set {
                    leader: rel.to_path_buf(),
                    led: walk,
                    names: vec![(rel.to_path_buf(), walk)],
                },
            );
            return Found::New;
        };
        match set.names.iter_mut().find(|(n, _)| n == rel) {
            Some(n) => n.1 = walk,
            None => set.names.push((rel.to_path_buf(), walk)),
        }
        if set.leader == rel || (full && set.led != walk) {
            set.leader = rel.to_path_buf();
            set.led = walk;
            return Found::Leader;
        }
        Found::Other {
            rel: set.leader.clone(),
            now: set.led == walk,
        }
    }

    /// The names of `inode`'s set other than `rel`, leader first.
    pub(crate) fn others(&self, inode: Inode, rel: &Path) -> Vec<PathBuf> {
        let Ok(sets) = self.sets.lock() else {
            return Vec::new();
        };
        let Some(set) = sets.get(&inode) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = Vec::with_capacity(set.names.len());
        for n in std::iter::once(&set.leader).chain(set.names.iter().map(|(n, _)| n)) {
            if n != rel && !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }

    /// How many names of `inode`'s set walk `walk` met.
    pub(crate) fn met(&self, inode: Inode, walk: u64) -> usize {
        self.sets.lock().map_or(0, |sets| {
            sets.get(&inode)
                .map_or(0, |s| s.names.iter().filter(|(_, w)| *w == walk).count())
        })
    }

    /// Make `rel` the leader of `inode`'s set (the one remembered is gone or stale).
    pub(crate) fn lead(&self, inode: Inode, rel: &Path, walk: u64) {
        if let Ok(mut sets) = self.sets.lock()
            && let Some(set) = sets.get_mut(&inode)
        {
            set.leader = rel.to_path_buf();
            set.led = walk;
        }
    }

    /// After a full walk `walk` that went everywhere: forget the names and sets it did not
    /// meet.
    pub(crate) fn forget_unmet(&self, walk: u64) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.retain(|_, s| {
                s.names.retain(|(_, w)| *w >= walk);
                s.led >= walk && !s.names.is_empty()
            });
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sets.lock().map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_name_met_leads_and_a_later_walk_is_told_every_name() {
        let sets = LinkSets::default();
        let w1 = sets.start_walk();
        let (a, b, c) = (Path::new("d1/a"), Path::new("d2/b"), Path::new("d3/c"));
        assert_eq!(sets.find((1, 7), a, w1, true), Found::New);
        assert_eq!(
            sets.find((1, 7), b, w1, true),
            Found::Other {
                rel: a.into(),
                now: true
            }
        );
        assert_eq!(sets.met((1, 7), w1), 2);
        // A batch (not full) is told about the leader, to be checked, and the other names.
        let w2 = sets.start_walk();
        assert_eq!(
            sets.find((1, 7), c, w2, false),
            Found::Other {
                rel: a.into(),
                now: false
            }
        );
        assert_eq!(
            sets.others((1, 7), c),
            vec![a.to_path_buf(), b.to_path_buf()]
        );
        assert_eq!(
            sets.others((1, 7), a),
            vec![b.to_path_buf(), c.to_path_buf()]
        );
        // A full pass that meets b first makes b the leader.
        let w3 = sets.start_walk();
        assert_eq!(sets.find((1, 7), b, w3, true), Found::Leader);
        assert_eq!(sets.find((2, 9), a, w3, true), Found::New);
        let w4 = sets.start_walk();
        assert_eq!(sets.find((2, 9), a, w4, true), Found::Leader);
        sets.forget_unmet(w4);
        assert_eq!(sets.len(), 1);
        assert!(sets.others((2, 9), a).is_empty());
    }
}
