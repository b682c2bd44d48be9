//! Hard-link sets: which name stands for each source inode that has several (`rsync -H`).
//!
//! The first name of a set that a walk meets is its *leader*: it is mirrored like any file,
//! and every other name of the set is planned as a link to the leader's replica file. Only
//! files with more than one name are remembered, so the cost follows the links, not the tree.
//!
//! The register outlives a walk, because live mode compares single directories: a link made
//! in one directory (`ln d1/a d2/b`) is only mirrored as a link if the batch that compares
//! `d2` still knows that `d1/a` leads the set. A leader remembered from an earlier walk is a
//! hint, checked against SRC before it is used (the walk does that: see
//! `walk::Walk::link_sets`); a full pass, which meets every name, simply makes the first name
//! it meets the leader and forgets the sets it did not meet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source inode: device and inode number.
pub(crate) type Inode = (u64, u64);

struct Leader {
    rel: PathBuf,
    /// The walk that last met the leader's name.
    seen: u64,
}

/// What the register says about one name of a set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// This name leads its set.
    Leader,
    /// Another name leads it; `now` when this walk met that name (and planned it).
    Other { rel: PathBuf, now: bool },
}

#[derive(Default)]
pub(crate) struct LinkSets {
    sets: Mutex<HashMap<Inode, Leader>>,
    walks: AtomicU64,
}

impl LinkSets {
    /// A number for a new walk.
    pub(crate) fn start_walk(&self) -> u64 {
        self.walks.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The leader of `inode`'s set for the name `rel`, met by walk `walk`. A `full` walk
    /// meets every name, so the first it meets leads.
    pub(crate) fn find(&self, inode: Inode, rel: &Path, walk: u64, full: bool) -> Found {
        let Ok(mut sets) = self.sets.lock() else {
            return Found::Leader;
        };
        match sets.get_mut(&inode) {
            Some(l) if l.rel == rel => {
                l.seen = walk;
                Found::Leader
            }
            Some(l) if l.seen == walk => Found::Other {
                rel: l.rel.clone(),
                now: true,
            },
            Some(l) if !full => Found::Other {
                rel: l.rel.clone(),
                now: false,
            },
            _ => {
                sets.insert(
                    inode,
                    Leader {
                        rel: rel.to_path_buf(),
                        seen: walk,
                    },
                );
                Found::Leader
            }
        }
    }

    /// Make `rel` the leader of `inode`'s set (the one remembered is gone or stale).
    pub(crate) fn lead(&self, inode: Inode, rel: &Path, walk: u64) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.insert(
                inode,
                Leader {
                    rel: rel.to_path_buf(),
                    seen: walk,
                },
            );
        }
    }

    /// After a full walk `walk` that went everywhere: forget the sets it did not meet.
    pub(crate) fn forget_unmet(&self, walk: u64) {
        if let Ok(mut sets) = self.sets.lock() {
            sets.retain(|_, l| l.seen >= walk);
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
    fn the_first_name_met_leads_and_a_later_walk_checks_it() {
        let sets = LinkSets::default();
        let w1 = sets.start_walk();
        let (a, b) = (Path::new("d1/a"), Path::new("d2/b"));
        assert_eq!(sets.find((1, 7), a, w1, true), Found::Leader);
        assert_eq!(
            sets.find((1, 7), b, w1, true),
            Found::Other {
                rel: a.into(),
                now: true
            }
        );
        // A batch (not full) is told about the leader, to be checked.
        let w2 = sets.start_walk();
        assert_eq!(
            sets.find((1, 7), b, w2, false),
            Found::Other {
                rel: a.into(),
                now: false
            }
        );
        // A full pass that meets b first makes b the leader.
        let w3 = sets.start_walk();
        assert_eq!(sets.find((1, 7), b, w3, true), Found::Leader);
        assert_eq!(sets.find((2, 9), a, w3, true), Found::Leader);
        let w4 = sets.start_walk();
        assert_eq!(sets.find((2, 9), a, w4, true), Found::Leader);
        sets.forget_unmet(w4);
        assert_eq!(sets.len(), 1);
    }
}
