//! The incremental sync queue: watcher changes coalesced into one batch.
//!
//! Duplicates merge, a path under a directory already queued for a deep sync is dropped, and
//! anything that asks for a full pass makes the rest moot. Pure data: tested without a disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::pass::Batch;

#[derive(Debug, Default)]
pub struct Queue {
    /// path -> deep (the whole subtree)
    paths: BTreeMap<PathBuf, bool>,
    renames: Vec<(PathBuf, PathBuf)>,
    /// Why a full pass is needed, if it is.
    full: Option<String>,
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.renames.is_empty() && self.full.is_none()
    }

    /// Queue a SRC-relative path; `deep` to include its whole subtree.
    pub fn path(&mut self, rel: PathBuf, deep: bool) {
        if self.full.is_some() {
            return;
        }
        if rel.as_os_str().is_empty() && deep {
            self.full_pass("change at the source root");
            return;
        }
        if self.covered(&rel) {
            return;
        }
        if deep {
            let under: Vec<PathBuf> = self
                .paths
                .range(rel.clone()..)
                .take_while(|(p, _)| p.starts_with(&rel))
                .filter(|(p, _)| **p != rel)
                .map(|(p, _)| p.clone())
                .collect();
            for p in under {
                self.paths.remove(&p);
            }
        }
        let e = self.paths.entry(rel).or_insert(false);
        *e |= deep;
    }

    pub fn rename(&mut self, from: PathBuf, to: PathBuf) {
        if self.full.is_none() {
            self.renames.push((from, to));
        }
    }

    pub fn full_pass(&mut self, why: &str) {
        if self.full.is_none() {
            self.full = Some(why.to_owned());
        }
        self.paths.clear();
        self.renames.clear();
    }

    /// Is `rel` inside a directory already queued for a deep sync?
    fn covered(&self, rel: &Path) -> bool {
        rel.ancestors()
            .skip(1)
            .any(|a| self.paths.get(a).copied().unwrap_or(false))
    }

    /// Take everything queued: either a reason for a full pass, or a batch.
    pub fn take(&mut self) -> Work {
        let q = std::mem::take(self);
        match q.full {
            Some(why) => Work::Full(why),
            None => Work::Batch(Batch {
                renames: q.renames,
                paths: q.paths.into_iter().collect(),
            }),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    Full(String),
    Batch(Batch),
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

    #[test]
    fn duplicates_merge_and_deep_wins() {
        let mut q = Queue::default();
        q.path("a/f".into(), false);
        q.path("a/f".into(), false);
        q.path("a/d".into(), false);
        q.path("a/d".into(), true);
        assert_eq!(
            batch(&mut q).paths,
            vec![("a/d".into(), true), ("a/f".into(), false)]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn paths_under_a_deep_dir_collapse() {
        let mut q = Queue::default();
        q.path("a/b/c".into(), false);
        q.path("a-b".into(), false);
        q.path("a/b/d/e".into(), true);
        q.path("a".into(), true);
        q.path("a/x".into(), false);
        assert_eq!(
            batch(&mut q).paths,
            vec![("a".into(), true), ("a-b".into(), false)]
        );
    }

    #[test]
    fn shallow_dirs_keep_their_children() {
        let mut q = Queue::default();
        q.path("a".into(), false);
        q.path("a/f".into(), false);
        assert_eq!(batch(&mut q).paths.len(), 2);
    }

    #[test]
    fn full_pass_swallows_everything() {
        let mut q = Queue::default();
        q.path("a".into(), false);
        q.rename("x".into(), "y".into());
        q.full_pass("overflow");
        q.path("b".into(), true);
        assert_eq!(q.take(), Work::Full("overflow".into()));
        assert!(q.is_empty());
    }

    #[test]
    fn a_deep_root_is_a_full_pass() {
        let mut q = Queue::default();
        q.path(PathBuf::new(), true);
        assert!(matches!(q.take(), Work::Full(_)));
    }

    #[test]
    fn renames_keep_their_order() {
        let mut q = Queue::default();
        q.rename("a".into(), "b".into());
        q.rename("b".into(), "c".into());
        assert_eq!(
            batch(&mut q).renames,
            vec![("a".into(), "b".into()), ("b".into(), "c".into())]
        );
    }
}
