//! The incremental sync queue: the places watcher events said to look, gathered into one
//! batch.
//!
//! It only ever grows a set of directories to compare (and entries to walk whole), so nothing
//! an event pointed at is lost by merging. Raw events arrive in kernel order, which lets a
//! rename carry what was queued under its old name to its new name: a change made inside a
//! directory before it was renamed is looked for where it is now. Anything that asks for a full
//! pass makes the rest moot. Pure data: tested without a disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::watch::Hint;

/// What one batch brings up to date. Every directory in `dirs` is compared with its replica
/// (both listings, so whatever happened in it is found); `renames` are tried first, as an
/// optimisation, in the order they happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// (from, to), SRC-relative, in the order they happened.
    pub renames: Vec<(PathBuf, PathBuf)>,
    /// SRC-relative directories to compare, parents before children.
    pub dirs: BTreeSet<PathBuf>,
    /// Entries walked whole when their directory is compared (created or moved-in
    /// directories: files made in them before their watch existed have no events).
    pub deep: BTreeSet<PathBuf>,
    /// Files that may be copied as a snapshot while their writer keeps them open (they have
    /// waited a whole interval for their writes to pause).
    pub snapshot: BTreeSet<PathBuf>,
    /// Names swapped by a `RENAME_EXCHANGE`: the watcher's idea of which directory is where
    /// must be renewed for them.
    pub exchanged: BTreeSet<PathBuf>,
    /// Entries moved away with no arrival seen (the half of a rename into a directory made
    /// so recently it was not watched yet): tried as renames into the batch's new trees.
    pub moved_out: BTreeSet<PathBuf>,
}

impl Batch {
    /// Is `dir` walked as part of a deep entry whose parent directory this batch compares
    /// anyway? Then comparing it again on its own is redundant.
    pub fn covered(&self, dir: &Path) -> bool {
        dir.ancestors()
            .any(|a| self.deep.contains(a) && a.parent().is_some_and(|p| self.dirs.contains(p)))
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    batch: Batch,
    /// Why a full pass is needed, if it is.
    full: Option<String>,
    /// SRC itself must be checked before anything is mirrored.
    check_source: bool,
    /// The last rename as the kernel reported it (before composing it with earlier ones): a
    /// rename that swaps it back is the second half of an exchange.
    last_rename: Option<(PathBuf, PathBuf)>,
}

/// What the queue holds when it is taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    Full(String),
    Batch(Batch),
}

fn parent(rel: &Path) -> PathBuf {
    rel.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `p` with its prefix `from` replaced by `to`, if `p` is `from` or below it.
pub fn moved(p: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    p.strip_prefix(from).ok().map(|rest| {
        if rest.as_os_str().is_empty() {
            to.to_path_buf()
        } else {
            to.join(rest)
        }
    })
}

fn rewrite(set: &mut BTreeSet<PathBuf>, from: &Path, to: &Path) {
    let under: Vec<PathBuf> = set
        .range(from.to_path_buf()..)
        .take_while(|p| p.starts_with(from))
        .cloned()
        .collect();
    for p in under {
        set.remove(&p);
        if let Some(n) = moved(&p, from, to) {
            set.insert(n);
        }
    }
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        self.full.is_none() && !self.check_source && self.batch == Batch::default()
    }

    /// Add what one event asks for.
    pub fn add(&mut self, hint: Hint) {
        match hint {
            Hint::Dir(d) => self.dir(d),
            Hint::Tree(p) => self.tree(p),
            Hint::Rename(f, t) => self.rename(f, t),
            Hint::MovedOut(p) => {
                if self.full.is_none() {
                    self.batch.dirs.insert(parent(&p));
                    self.batch.moved_out.insert(p);
                }
            }
            Hint::Full(why) => self.full_pass(why),
            Hint::CheckSource => self.check_source = true,
        }
    }

    /// Compare this directory's listing with its replica.
    pub fn dir(&mut self, rel: PathBuf) {
        if self.full.is_none() {
            self.batch.dirs.insert(rel);
        }
    }

    /// Walk this entry whole (its parent directory is compared too).
    pub fn tree(&mut self, rel: PathBuf) {
        if self.full.is_none() {
            self.batch.dirs.insert(parent(&rel));
            self.batch.deep.insert(rel);
        }
    }

    /// A file that has waited long enough may be copied as a snapshot.
    pub fn snapshot(&mut self, rel: PathBuf) {
        if self.full.is_none() {
            self.batch.dirs.insert(parent(&rel));
            self.batch.snapshot.insert(rel);
        }
    }

    /// A rename inside SRC. Its target is always walked whole (stats only, when the replica
    /// entry could be renamed too): notify re-adds the watches of a moved directory only after
    /// the move, and a change made inside it in between has no event.
    fn rename(&mut self, from: PathBuf, to: PathBuf) {
        if self.full.is_some() {
            return;
        }
        let raw = (from.clone(), to.clone());
        if self.last_rename.replace(raw) == Some((to.clone(), from.clone())) {
            // b -> a right after a -> b: a RENAME_EXCHANGE (two pairs, one after the other),
            // or a swap back. Nothing queued under either name can be told apart now: walk
            // both whole, and have the watcher learn again which directory is where.
            self.last_rename = None;
            self.batch.moved_out.remove(&from);
            self.batch.moved_out.remove(&to);
            self.tree(from.clone());
            self.tree(to.clone());
            self.batch.exchanged.insert(from);
            self.batch.exchanged.insert(to);
            return;
        }
        // The move's arrival was seen: it is no unpaired departure.
        self.batch.moved_out.remove(&from);
        // What was queued under the old name happened to what is now under the new one.
        rewrite(&mut self.batch.dirs, &from, &to);
        rewrite(&mut self.batch.deep, &from, &to);
        rewrite(&mut self.batch.snapshot, &from, &to);
        rewrite(&mut self.batch.exchanged, &from, &to);
        rewrite(&mut self.batch.moved_out, &from, &to);
        self.batch.dirs.insert(parent(&from));
        self.tree(to.clone());
        match self.batch.renames.last_mut() {
            // a -> b then b -> c is a -> c.
            Some((_, last_to)) if *last_to == from => *last_to = to,
            _ => self.batch.renames.push((from, to)),
        }
    }

    pub fn full_pass(&mut self, why: &str) {
        if self.full.is_none() {
            self.full = Some(why.to_owned());
        }
        self.batch = Batch::default();
        self.last_rename = None;
    }

    /// Was SRC itself named by an event (removed, moved, unmounted)? Clears the flag.
    pub fn take_check_source(&mut self) -> bool {
        std::mem::take(&mut self.check_source)
    }

    /// Take everything queued: either a reason for a full pass, or a batch.
    pub fn take(&mut self) -> Work {
        let q = std::mem::take(self);
        match q.full {
            Some(why) => Work::Full(why),
            None => Work::Batch(q.batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(q: &mut Queue) -> Batch {
        match q.take() {
            Work::Batch(b) => b,
            Work::Full(w) => panic!("unexpected full pass: {w}"),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<PathBuf> {
        items.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn directories_merge() {
        let mut q = Queue::default();
        q.add(Hint::Dir("a".into()));
        q.add(Hint::Dir("a".into()));
        q.add(Hint::Tree("a/new".into()));
        let b = batch(&mut q);
        assert_eq!(b.dirs, set(&["a"]));
        assert_eq!(b.deep, set(&["a/new"]));
        assert!(q.is_empty());
    }

    #[test]
    fn a_rename_is_tried_and_its_target_walked_whole() {
        let mut q = Queue::default();
        q.add(Hint::Dir("".into()));
        q.add(Hint::Tree("b".into()));
        q.add(Hint::Rename("a".into(), "b".into()));
        let b = batch(&mut q);
        assert_eq!(b.deep, set(&["b"]));
        assert_eq!(b.renames, vec![("a".into(), "b".into())]);
        assert_eq!(b.dirs, set(&[""]));
    }

    #[test]
    fn what_was_queued_under_a_renamed_dir_follows_it() {
        let mut q = Queue::default();
        q.add(Hint::Dir("d/sub".into()));
        q.add(Hint::Tree("d/new".into()));
        q.add(Hint::Dir("dd".into()));
        q.add(Hint::Rename("d".into(), "e".into()));
        let b = batch(&mut q);
        assert_eq!(b.dirs, set(&["", "dd", "e", "e/sub"]));
        assert_eq!(b.deep, set(&["e", "e/new"]));
    }

    #[test]
    fn rename_chains_compose() {
        let mut q = Queue::default();
        q.add(Hint::Rename("a".into(), "b".into()));
        q.add(Hint::Rename("b".into(), "c".into()));
        q.add(Hint::Rename("x".into(), "y".into()));
        assert_eq!(
            batch(&mut q).renames,
            vec![("a".into(), "c".into()), ("x".into(), "y".into())]
        );
    }

    #[test]
    fn an_exchange_walks_both_names_whole() {
        let mut q = Queue::default();
        q.add(Hint::Dir("a/x".into()));
        q.add(Hint::Rename("a".into(), "b".into()));
        q.add(Hint::Dir("".into()));
        q.add(Hint::Rename("b".into(), "a".into()));
        let b = batch(&mut q);
        assert_eq!(b.deep, set(&["a", "b"]));
        assert_eq!(b.exchanged, set(&["a", "b"]));
        assert!(b.dirs.contains(Path::new("")));
    }

    #[test]
    fn an_exchange_right_after_a_rename_is_still_an_exchange() {
        // mv build staging; renameat2(staging, live, RENAME_EXCHANGE)
        let mut q = Queue::default();
        q.add(Hint::Rename("build".into(), "staging".into()));
        q.add(Hint::Rename("staging".into(), "live".into()));
        q.add(Hint::Rename("live".into(), "staging".into()));
        let b = batch(&mut q);
        assert!(b.deep.contains(Path::new("live")) && b.deep.contains(Path::new("staging")));
        assert_eq!(b.exchanged, set(&["live", "staging"]));
    }

    #[test]
    fn a_departure_is_unpaired_until_its_arrival_is_seen() {
        let mut q = Queue::default();
        q.add(Hint::MovedOut("a".into()));
        q.add(Hint::MovedOut("big".into()));
        q.add(Hint::Rename("a".into(), "b".into()));
        assert_eq!(batch(&mut q).moved_out, set(&["big"]));
    }

    #[test]
    fn full_pass_swallows_everything() {
        let mut q = Queue::default();
        q.add(Hint::Dir("a".into()));
        q.add(Hint::Rename("x".into(), "y".into()));
        q.full_pass("overflow");
        q.add(Hint::Tree("b".into()));
        assert_eq!(q.take(), Work::Full("overflow".into()));
        assert!(q.is_empty());
    }

    #[test]
    fn the_source_check_is_taken_once() {
        let mut q = Queue::default();
        q.add(Hint::CheckSource);
        assert!(!q.is_empty());
        assert!(q.take_check_source());
        assert!(!q.take_check_source());
        assert!(q.is_empty());
    }

    #[test]
    fn dirs_inside_a_tree_walked_from_its_parent_are_covered() {
        let mut q = Queue::default();
        q.add(Hint::Tree("a/new".into()));
        q.add(Hint::Dir("a/new/x".into()));
        q.add(Hint::Dir("b".into()));
        let b = batch(&mut q);
        assert!(b.covered(Path::new("a/new/x")));
        assert!(b.covered(Path::new("a/new")));
        assert!(!b.covered(Path::new("a")));
        assert!(!b.covered(Path::new("b")));
    }
}
