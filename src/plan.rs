//! Deciding what to do, without doing it.
//!
//! `plan_dir` is a pure function from the listings of one source directory and its replica
//! counterpart to a list of actions: no disk, no clock. That is what makes it cheap to test
//! exhaustively (see the proptest below) and what makes `--dry-run` nothing more than
//! "print the plan". Planning one directory at a time keeps memory bounded by the largest
//! directory, not by the tree.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;

use crate::entry::{Entry, Kind, LinkTo, Time};
use crate::fscaps::Caps;
use crate::tempname::is_temp_name;
use crate::xattr::{ACL_ACCESS, Namespaces, XattrFix, acl_group_perms};

/// What to compare beyond the always-compared tree, types, link targets, modes and mtimes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Compare file contents (blake3) instead of trusting size + mtime (`rsync -c`).
    pub checksum: bool,
    /// Mirror owner and group (only possible as root, and where the replica keeps them).
    pub owner: bool,
    /// What the replica's filesystem can hold: nothing it cannot is compared or attempted.
    pub caps: Caps,
    /// Mirror hard links as hard links (`rsync -H`).
    pub hard_links: bool,
    /// The extended attributes and ACLs mirrored (`rsync -AX`).
    pub xattrs: Namespaces,
    /// A file that grew may have only its new bytes copied, in place (see `append`): not
    /// with `--versions`, which keeps the old file.
    pub appends: bool,
}

/// Why an entry is copied or replaced: logged with every action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not in the replica.
    New,
    /// Size or mtime differ (or contents, with `--checksum`).
    Changed,
    /// The replica holds another kind of entry under this name.
    TypeChange,
    /// In the replica but not in the source.
    Extra,
    /// A temp file left by an interrupted run.
    StaleTemp,
    /// Only metadata differs, but the replica file has other names (hard links from outside
    /// the mirror, a `cp -al` snapshot): it is replaced, never changed in place.
    SharedInode,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Changed => "changed",
            Reason::TypeChange => "type-change",
            Reason::Extra => "extra",
            Reason::StaleTemp => "stale-temp",
            Reason::SharedInode => "shared-inode",
        }
    }
}

/// Metadata to set on an entry whose contents are already right.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetaFix {
    pub mode: Option<u32>,
    pub mtime: Option<Time>,
    pub owner: Option<(u32, u32)>,
    /// Extended attributes and ACLs, set after the owner (a chown drops file capabilities).
    pub xattrs: Option<XattrFix>,
}

impl MetaFix {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.mtime.is_none() && self.owner.is_none() && self.xattrs.is_none()
    }
}

/// One step of a directory's plan. Names are single path components of that directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove the replica entry (a whole subtree for a dir), never following links.
    Remove {
        name: OsString,
        kind: Kind,
        reason: Reason,
    },
    /// Create the directory (its contents and metadata follow when it is descended).
    MakeDir { name: OsString, reason: Reason },
    /// Copy the source file over the replica name, atomically.
    CopyFile { name: OsString, reason: Reason },
    /// Same size, `--checksum`: hash both and copy only if they differ (fix metadata anyway).
    CheckContent { name: OsString },
    /// The source grew: if the replica file is its prefix, copy only the rest into it (then
    /// its metadata); if not, copy it whole, as `CopyFile` with `Reason::Changed`.
    AppendFile { name: OsString },
    /// Create or retarget a symlink, atomically.
    Symlink {
        name: OsString,
        target: OsString,
        reason: Reason,
    },
    /// Contents match; only metadata differs.
    SetMeta { name: OsString, fix: MetaFix },
    /// Make the name another name of the replica file that mirrors `leader` (a SRC-relative
    /// path), replacing what is there atomically: the source file is a hard link of it.
    /// Carried out once the walk's copies are done, only if the replica's `leader` then holds
    /// a file of `size` and `mtime`.
    Link {
        name: OsString,
        leader: std::path::PathBuf,
        size: u64,
        mtime: Time,
        reason: Reason,
    },
    /// A fifo, socket or device in the source: not mirrored.
    SkipSpecial { name: OsString },
    /// A source entry the replica's filesystem cannot hold: not mirrored, reported, and (a
    /// directory) not descended into.
    Unsupported { name: OsString, why: Unsupported },
}

/// Why the replica's filesystem cannot hold a source entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// A symlink, on a filesystem without them.
    Symlink,
    /// The name breaks the filesystem's rules.
    Name(&'static str),
    /// The name differs only in case from this one, which the replica holds instead.
    CaseOf(OsString),
    /// The name is REPLICA's versions folder (`.replwatch-versions`, at the root only).
    Reserved,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Symlink => f.write_str("the replica filesystem has no symlinks"),
            Unsupported::Name(why) => f.write_str(why),
            Unsupported::CaseOf(other) => write!(
                f,
                "differs only in case from {}, which the case-insensitive replica holds instead",
                std::path::Path::new(other).display()
            ),
            Unsupported::Reserved => f.write_str(
                "reserved name: REPLICA keeps its versions folder (--versions) under this name",
            ),
        }
    }
}

impl Action {
    pub fn name(&self) -> &OsString {
        match self {
            Action::Remove { name, .. }
            | Action::MakeDir { name, .. }
            | Action::CopyFile { name, .. }
            | Action::CheckContent { name }
            | Action::AppendFile { name }
            | Action::Symlink { name, .. }
            | Action::SetMeta { name, .. }
            | Action::Link { name, .. }
            | Action::SkipSpecial { name }
            | Action::Unsupported { name, .. } => name,
        }
    }
}

/// Does carrying out `action` destroy what the replica holds under its name (a removal, or a
/// rename over it)? With `--versions` that old entry is kept in the versions folder instead:
/// apply does it and the dry run says so, from this one answer. Our own stale temp files are
/// not worth keeping; a type change's new entry replaces nothing (its removal came first).
pub fn keeps_version(action: &Action) -> bool {
    match action {
        Action::Remove { reason, .. } => *reason != Reason::StaleTemp,
        Action::CopyFile { reason, .. } | Action::Symlink { reason, .. } => {
            matches!(reason, Reason::Changed | Reason::SharedInode)
        }
        // A link renamed over another file (a separate copy, or an older inode of the set).
        Action::Link { reason, .. } => *reason == Reason::Changed,
        _ => false,
    }
}

/// Take REPLICA's reserved root name (the versions folder) out of the root's listings: the
/// replica's entry is no part of the mirror (never extra, never removed), and a source entry
/// of that name (compared as the replica's filesystem folds names) cannot be mirrored, so it
/// is reported. Call for the root directory only, before [`plan_dir`].
pub fn reserve_root(
    source: &mut Vec<Entry>,
    replica: &mut Vec<Entry>,
    opts: PlanOptions,
) -> Vec<Action> {
    let reserved = OsStr::new(crate::versions::DIR_NAME);
    let is_reserved = |name: &OsStr| {
        name == reserved
            || (opts.caps.case_insensitive && opts.caps.fold(name) == opts.caps.fold(reserved))
    };
    replica.retain(|e| e.name != reserved);
    let mut out = Vec::new();
    source.retain(|e| {
        if is_reserved(&e.name) {
            out.push(Action::Unsupported {
                name: e.name.clone(),
                why: Unsupported::Reserved,
            });
            false
        } else {
            true
        }
    });
    out
}

/// The actions that make `replica` match `source` for one directory.
///
/// Both listings must be sorted by name. Names in `keep` are source entries that could not be
/// read: their replica counterparts are left exactly as they are (never delete on the strength
/// of a failed scan). Directories present on both sides get no action here: the caller
/// descends into every source directory and fixes its metadata afterwards with [`dir_meta`],
/// because writing into a directory changes its mtime.
///
/// Source entries the replica's filesystem cannot hold (`opts.caps`) are reported as
/// `Unsupported` and otherwise treated as absent. On a case-insensitive replica, names are
/// matched as the filesystem folds them: of source names that fold alike, the first in byte
/// order is mirrored and the others are reported, so directories are never merged and nothing
/// flip-flops from pass to pass.
pub fn plan_dir(
    source: &[Entry],
    replica: &[Entry],
    keep: &[OsString],
    opts: PlanOptions,
) -> Vec<Action> {
    debug_assert!(source.is_sorted_by(|a, b| a.name < b.name));
    debug_assert!(replica.is_sorted_by(|a, b| a.name < b.name));
    let caps = opts.caps;
    let mut actions = Vec::new();
    let mut kept: Vec<&Entry> = Vec::with_capacity(source.len());
    for s in source {
        let why = if s.kind == Kind::Symlink && !caps.symlinks {
            Some(Unsupported::Symlink)
        } else {
            caps.refuses_name(&s.name).map(Unsupported::Name)
        };
        match why {
            Some(why) => actions.push(Action::Unsupported {
                name: s.name.clone(),
                why,
            }),
            None => kept.push(s),
        }
    }
    if !caps.case_insensitive {
        let src: Vec<(&OsStr, &Entry)> = kept.iter().map(|e| (e.name.as_os_str(), *e)).collect();
        let rep: Vec<(&OsStr, &Entry)> = replica.iter().map(|e| (e.name.as_os_str(), e)).collect();
        merge(&src, &rep, keep, opts, &mut actions);
        return actions;
    }
    let mut first: HashMap<Vec<u8>, &OsString> = HashMap::new();
    let mut src: Vec<(Vec<u8>, &Entry)> = Vec::with_capacity(kept.len());
    for e in kept {
        match first.entry(caps.fold(&e.name)) {
            std::collections::hash_map::Entry::Occupied(o) => actions.push(Action::Unsupported {
                name: e.name.clone(),
                why: Unsupported::CaseOf((*o.get()).clone()),
            }),
            std::collections::hash_map::Entry::Vacant(v) => {
                src.push((v.key().clone(), e));
                v.insert(&e.name);
            }
        }
    }
    src.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rep: Vec<(Vec<u8>, &Entry)> = replica.iter().map(|e| (caps.fold(&e.name), e)).collect();
    rep.sort_by(|a, b| a.0.cmp(&b.0));
    merge(&src, &rep, keep, opts, &mut actions);
    actions
}

/// Merge two listings sorted by key (the name, or the name as the replica's filesystem folds
/// it): what only the source has is created, what only the replica has is removed, what both
/// have is compared.
fn merge<K: Ord>(
    source: &[(K, &Entry)],
    replica: &[(K, &Entry)],
    keep: &[OsString],
    opts: PlanOptions,
    actions: &mut Vec<Action>,
) {
    let (mut i, mut j) = (0, 0);
    loop {
        let order = match (source.get(i), replica.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(r)) => s.0.cmp(&r.0),
        };
        match order {
            Ordering::Less => {
                plan_entry(source[i].1, None, opts, actions);
                i += 1;
            }
            Ordering::Greater => {
                let r = replica[j].1;
                if !keep.contains(&r.name) {
                    let reason = if is_temp_name(&r.name) {
                        Reason::StaleTemp
                    } else {
                        Reason::Extra
                    };
                    actions.push(Action::Remove {
                        name: r.name.clone(),
                        kind: r.kind,
                        reason,
                    });
                }
                j += 1;
            }
            Ordering::Equal => {
                plan_entry(source[i].1, Some(replica[j].1), opts, actions);
                i += 1;
                j += 1;
            }
        }
    }
}

/// The actions for one name, given the source entry and what the replica holds there.
pub fn plan_entry(src: &Entry, rep: Option<&Entry>, opts: PlanOptions, out: &mut Vec<Action>) {
    let name = || src.name.clone();
    if src.kind == Kind::Special {
        // Not mirrored; whatever the replica holds under this name would be "extra".
        if let Some(r) = rep {
            out.push(Action::Remove {
                name: name(),
                kind: r.kind,
                reason: Reason::Extra,
            });
        }
        out.push(Action::SkipSpecial { name: name() });
        return;
    }
    if let Some(link) = &src.link {
        plan_link(src, link, rep, opts, out);
        return;
    }
    let reason = match rep {
        None => Reason::New,
        Some(r) if r.kind != src.kind => {
            out.push(Action::Remove {
                name: name(),
                kind: r.kind,
                reason: Reason::TypeChange,
            });
            Reason::TypeChange
        }
        Some(r) => {
            plan_same_kind(src, r, opts, out);
            return;
        }
    };
    out.push(match src.kind {
        Kind::Dir => Action::MakeDir {
            name: name(),
            reason,
        },
        Kind::File => Action::CopyFile {
            name: name(),
            reason,
        },
        Kind::Symlink => Action::Symlink {
            name: name(),
            target: src.target.clone().unwrap_or_default(),
            reason,
        },
        Kind::Special => unreachable!("handled above"),
    });
}

/// A source file whose link set is mirrored under another name (`link.leader`): if the
/// replica already holds that inode here, this name is planned like any file (a copy it would
/// need becomes a link to the leader's fresh copy, and its metadata is left to the leader
/// when the leader is planned in the same walk); otherwise it becomes a link to the leader.
fn plan_link(
    src: &Entry,
    link: &LinkTo,
    rep: Option<&Entry>,
    opts: PlanOptions,
    out: &mut Vec<Action>,
) {
    let to_leader = |reason| Action::Link {
        name: src.name.clone(),
        leader: link.leader.clone(),
        size: src.size,
        mtime: src.mtime,
        reason,
    };
    match rep {
        Some(r) if r.kind == Kind::File && link.leader_ino == Some(r.ino) => {
            let mut own = Vec::new();
            plan_same_kind(src, r, opts, &mut own);
            if own
                .iter()
                .any(|a| matches!(a, Action::CopyFile { .. } | Action::AppendFile { .. }))
            {
                out.push(to_leader(Reason::Changed));
            } else if !link.leader_in_walk {
                out.extend(own);
            }
        }
        Some(r) if r.kind == Kind::Dir => {
            out.push(Action::Remove {
                name: src.name.clone(),
                kind: r.kind,
                reason: Reason::TypeChange,
            });
            out.push(to_leader(Reason::TypeChange));
        }
        Some(r) if r.kind == Kind::File => out.push(to_leader(Reason::Changed)),
        Some(_) => out.push(to_leader(Reason::TypeChange)),
        None => out.push(to_leader(Reason::New)),
    }
}

/// May the replica inode have names outside the mirror? Any inode with more than one name
/// may: the source's own count includes names outside SRC, so it cannot say which of the
/// replica's names are ours. Such an inode is never changed in place: it is replaced, and
/// the other names of its link set are linked to the new copy (see `plan_link`).
fn shared_beyond_mirror(_src: &Entry, rep: &Entry, _opts: PlanOptions) -> bool {
    rep.nlink > 1
}

fn plan_same_kind(src: &Entry, rep: &Entry, opts: PlanOptions, out: &mut Vec<Action>) {
    match src.kind {
        Kind::Dir | Kind::Special => {}
        Kind::File => {
            if src.size != rep.size || (!opts.checksum && !same_time(src.mtime, rep.mtime, opts)) {
                let grew = opts.appends
                    && !opts.checksum
                    && src.size > rep.size
                    && rep.size >= crate::append::APPEND_MIN
                    && !shared_beyond_mirror(src, rep, opts);
                out.push(if grew {
                    Action::AppendFile {
                        name: src.name.clone(),
                    }
                } else {
                    Action::CopyFile {
                        name: src.name.clone(),
                        reason: Reason::Changed,
                    }
                });
            } else if opts.checksum {
                out.push(Action::CheckContent {
                    name: src.name.clone(),
                });
            } else if shared_beyond_mirror(src, rep, opts)
                && !meta_fix(src, rep, opts, true).is_empty()
            {
                out.push(Action::CopyFile {
                    name: src.name.clone(),
                    reason: Reason::SharedInode,
                });
            } else {
                push_meta(src, rep, opts, true, out);
            }
        }
        Kind::Symlink => {
            if src.target != rep.target {
                out.push(Action::Symlink {
                    name: src.name.clone(),
                    target: src.target.clone().unwrap_or_default(),
                    reason: Reason::Changed,
                });
            } else {
                // Linux has no permission bits on symlinks: compare mtime and owner only.
                push_meta(src, rep, opts, false, out);
            }
        }
    }
}

fn push_meta(src: &Entry, rep: &Entry, opts: PlanOptions, with_mode: bool, out: &mut Vec<Action>) {
    let fix = meta_fix(src, rep, opts, with_mode);
    if !fix.is_empty() {
        out.push(Action::SetMeta {
            name: src.name.clone(),
            fix,
        });
    }
}

/// The metadata of `rep` that differs from `src`.
///
/// A chown clears the setuid and setgid bits of a file (root included), so an owner change
/// on a file that carries them sets the mode again afterwards.
///
/// Only what the replica's filesystem keeps is compared: permission bits where it keeps them
/// (without setuid/setgid/sticky where it refuses those), mtimes within its granularity.
pub fn meta_fix(src: &Entry, rep: &Entry, opts: PlanOptions, with_mode: bool) -> MetaFix {
    let owner =
        (opts.owner && (src.uid, src.gid) != (rep.uid, rep.gid)).then_some((src.uid, src.gid));
    let chown_clears_mode = owner.is_some() && src.kind == Kind::File && src.mode & 0o6000 != 0;
    let kept = mode_kept(opts);
    let with_mode = with_mode && opts.caps.perms;
    let mode = source_mode(
        src.mode,
        src.xattrs.as_deref().unwrap_or_default(),
        opts.xattrs,
    );
    let xattrs = match (&src.xattrs, &rep.xattrs) {
        (Some(s), Some(r)) if opts.xattrs.any() => {
            Some(crate::xattr::diff(s, r, opts.xattrs)).filter(|f| !f.is_empty())
        }
        _ => None,
    };
    // A chown drops file capabilities: set them again after it.
    let xattrs = match (owner, &src.xattrs) {
        (Some(_), Some(attrs)) if opts.xattrs.privileged => {
            match attrs.iter().find(|(n, _)| n == "security.capability") {
                Some(cap) => {
                    let mut fix = xattrs.unwrap_or_default();
                    if !fix.set.contains(cap) {
                        fix.set.push(cap.clone());
                    }
                    Some(fix)
                }
                None => xattrs,
            }
        }
        _ => xattrs,
    };
    MetaFix {
        mode: (with_mode && (mode & kept != rep.mode & kept || chown_clears_mode))
            .then_some(mode & kept),
        mtime: (!same_time(src.mtime, rep.mtime, opts)).then_some(src.mtime),
        owner,
        xattrs,
    }
}

/// The permission bits a source entry is mirrored with. Where its access ACL is not mirrored
/// (turned off, or a replica that cannot hold one), the group bits, which show the ACL's
/// mask, would hand the owning group what only named users and groups were given: they
/// become what the owning group really has. Skipping an ACL never widens access.
pub fn source_mode(mode: u32, xattrs: &[(OsString, Vec<u8>)], ns: Namespaces) -> u32 {
    if ns.acl {
        return mode;
    }
    let acl = xattrs.iter().find(|(n, _)| n == ACL_ACCESS);
    match acl.and_then(|(_, v)| acl_group_perms(v)) {
        Some(group) => (mode & !0o070) | (group << 3),
        None => mode,
    }
}

/// The permission bits the replica keeps.
pub fn mode_kept(opts: PlanOptions) -> u32 {
    if opts.caps.special_bits {
        0o7777
    } else {
        0o777
    }
}

/// Are two mtimes the same, as far as the replica's filesystem can tell? Within its
/// granularity (1 ns on ext4, 100 ns on NTFS, a second on exFAT through FUSE), like rsync's
/// `--modify-window` and robocopy's `/FFT`.
pub fn same_time(a: Time, b: Time, opts: PlanOptions) -> bool {
    if opts.caps.mtime_ns <= 1 {
        return a == b;
    }
    let ns = |t: Time| i128::from(t.sec) * 1_000_000_000 + i128::from(t.nsec);
    (ns(a) - ns(b)).unsigned_abs() < u128::from(opts.caps.mtime_ns)
}

/// Metadata to set on a replica directory once everything inside it is done.
pub fn dir_meta(src: &Entry, rep: &Entry, opts: PlanOptions) -> MetaFix {
    meta_fix(src, rep, opts, true)
}

/// What a `--checksum` comparison of two same-size files decides once both were hashed: a
/// copy when the contents differ, else only the metadata that differs (if any).
pub fn after_checksum(
    src: &Entry,
    rep: &Entry,
    same_content: bool,
    opts: PlanOptions,
) -> Option<Action> {
    if !same_content {
        return Some(Action::CopyFile {
            name: src.name.clone(),
            reason: Reason::Changed,
        });
    }
    let fix = meta_fix(src, rep, opts, true);
    if !fix.is_empty() && shared_beyond_mirror(src, rep, opts) {
        return Some(Action::CopyFile {
            name: src.name.clone(),
            reason: Reason::SharedInode,
        });
    }
    (!fix.is_empty()).then(|| Action::SetMeta {
        name: src.name.clone(),
        fix,
    })
}

/// Can a rename seen in SRC be mirrored by renaming the replica entry? Only when the entry
/// the replica holds under the old name is what SRC now holds under the new one, so nothing
/// needs copying: same kind, and for a file the same size and mtime, for a symlink the same
/// target. A directory qualifies on its kind alone: the batch walks its contents anyway. And
/// only when the rename can replace what the replica holds under the new name (`there`):
/// nothing, or a file or symlink replaced by a file or symlink; never a directory. Anything
/// else is mirrored as what it is on disk: a copy and a removal.
pub fn rename_matches(old: &Entry, now: &Entry, there: Option<&Entry>, opts: PlanOptions) -> bool {
    let replaceable = match there {
        None => true,
        Some(t) => t.kind != Kind::Dir && old.kind != Kind::Dir,
    };
    replaceable
        && old.kind == now.kind
        && match old.kind {
            Kind::File => old.size == now.size && same_time(old.mtime, now.mtime, opts),
            Kind::Symlink => old.target == now.target,
            Kind::Dir => true,
            Kind::Special => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, kind: Kind) -> Entry {
        let mut en = Entry::new(name, kind);
        if kind == Kind::Symlink {
            en.target = Some("t".into());
        }
        en
    }

    fn plan(src: &[Entry], rep: &[Entry]) -> Vec<Action> {
        plan_dir(src, rep, &[], PlanOptions::default())
    }

    #[test]
    fn identical_listings_need_nothing() {
        let l = vec![e("a", Kind::File), e("b", Kind::Dir), e("c", Kind::Symlink)];
        assert!(plan(&l, &l).is_empty());
    }

    #[test]
    fn new_entries_are_created() {
        let src = vec![e("a", Kind::File), e("b", Kind::Dir), e("c", Kind::Symlink)];
        let acts = plan(&src, &[]);
        assert_eq!(
            acts,
            vec![
                Action::CopyFile {
                    name: "a".into(),
                    reason: Reason::New
                },
                Action::MakeDir {
                    name: "b".into(),
                    reason: Reason::New
                },
                Action::Symlink {
                    name: "c".into(),
                    target: "t".into(),
                    reason: Reason::New
                },
            ]
        );
    }

    #[test]
    fn extra_entries_are_removed_and_stale_temps_named_as_such() {
        let rep = vec![e(".a.replwatch-abc123.tmp", Kind::File), e("x", Kind::Dir)];
        let acts = plan(&[], &rep);
        assert_eq!(
            acts,
            vec![
                Action::Remove {
                    name: ".a.replwatch-abc123.tmp".into(),
                    kind: Kind::File,
                    reason: Reason::StaleTemp
                },
                Action::Remove {
                    name: "x".into(),
                    kind: Kind::Dir,
                    reason: Reason::Extra
                },
            ]
        );
    }

    #[test]
    fn every_type_conflict_removes_then_creates() {
        let kinds = [Kind::File, Kind::Dir, Kind::Symlink];
        for s in kinds {
            for r in kinds {
                if s == r {
                    continue;
                }
                let acts = plan(&[e("n", s)], &[e("n", r)]);
                assert_eq!(acts.len(), 2, "{s:?} over {r:?}");
                assert_eq!(
                    acts[0],
                    Action::Remove {
                        name: "n".into(),
                        kind: r,
                        reason: Reason::TypeChange
                    }
                );
            }
        }
    }

    #[test]
    fn quick_check_uses_size_and_mtime() {
        let src = e("f", Kind::File);
        let mut rep = src.clone();
        rep.mtime.nsec = 1;
        assert!(matches!(
            plan(std::slice::from_ref(&src), &[rep])[0],
            Action::CopyFile {
                reason: Reason::Changed,
                ..
            }
        ));
        let mut rep = src.clone();
        rep.size = 9;
        assert!(matches!(
            plan(std::slice::from_ref(&src), &[rep])[0],
            Action::CopyFile { .. }
        ));
    }

    #[test]
    fn mode_only_change_sets_metadata() {
        let src = e("f", Kind::File);
        let mut rep = src.clone();
        rep.mode = 0o600;
        assert_eq!(
            plan(&[src], &[rep]),
            vec![Action::SetMeta {
                name: "f".into(),
                fix: MetaFix {
                    mode: Some(0o644),
                    ..MetaFix::default()
                }
            }]
        );
    }

    #[test]
    fn owner_compared_only_when_asked() {
        let src = e("f", Kind::File);
        let mut rep = src.clone();
        rep.uid = 1000;
        assert!(plan(std::slice::from_ref(&src), &[rep.clone()]).is_empty());
        let opts = PlanOptions {
            owner: true,
            ..Default::default()
        };
        assert_eq!(plan_dir(&[src], &[rep], &[], opts).len(), 1);
    }

    #[test]
    fn owner_change_on_setuid_file_sets_mode_again() {
        let mut src = e("prog", Kind::File);
        src.mode = 0o4755;
        src.uid = 1234;
        let mut rep = src.clone();
        rep.uid = 0;
        let opts = PlanOptions {
            owner: true,
            ..Default::default()
        };
        assert_eq!(
            plan_dir(std::slice::from_ref(&src), &[rep], &[], opts),
            vec![Action::SetMeta {
                name: "prog".into(),
                fix: MetaFix {
                    mode: Some(0o4755),
                    owner: Some((1234, 0)),
                    ..MetaFix::default()
                }
            }]
        );
    }

    #[test]
    fn checksum_mode_checks_same_size_files_even_with_equal_mtime() {
        let src = e("f", Kind::File);
        let opts = PlanOptions {
            checksum: true,
            ..Default::default()
        };
        assert_eq!(
            plan_dir(
                std::slice::from_ref(&src),
                std::slice::from_ref(&src),
                &[],
                opts
            ),
            vec![Action::CheckContent { name: "f".into() }]
        );
    }

    #[test]
    fn unreadable_source_entries_keep_their_replica() {
        let rep = vec![e("secret", Kind::Dir)];
        assert!(plan_dir(&[], &rep, &["secret".into()], PlanOptions::default()).is_empty());
    }

    #[test]
    fn specials_are_skipped_and_never_left_as_stale_replica_entries() {
        let acts = plan(&[e("fifo", Kind::Special)], &[e("fifo", Kind::File)]);
        assert_eq!(acts.len(), 2);
        assert!(matches!(acts[1], Action::SkipSpecial { .. }));
    }

    #[test]
    fn a_rename_is_mirrored_only_when_nothing_needs_copying() {
        let mut old = Entry::new("a", Kind::File);
        old.size = 3;
        let mut now = old.clone();
        now.name = "b".into();
        assert!(rename_matches(&old, &now, None, PlanOptions::default()));
        now.size = 4;
        assert!(!rename_matches(&old, &now, None, PlanOptions::default()));
        let d = Entry::new("d", Kind::Dir);
        assert!(rename_matches(
            &d,
            &Entry::new("e", Kind::Dir),
            None,
            PlanOptions::default()
        ));
        assert!(!rename_matches(
            &d,
            &Entry::new("e", Kind::File),
            None,
            PlanOptions::default()
        ));
        let mut l = Entry::new("l", Kind::Symlink);
        l.target = Some("x".into());
        let mut m = l.clone();
        assert!(rename_matches(&l, &m, None, PlanOptions::default()));
        m.target = Some("y".into());
        assert!(!rename_matches(&l, &m, None, PlanOptions::default()));
        // Never onto a directory, nor a directory onto anything.
        let dir = Entry::new("x", Kind::Dir);
        let file = Entry::new("x", Kind::File);
        let o = PlanOptions::default();
        assert!(!rename_matches(&old, &old, Some(&dir), o));
        assert!(rename_matches(&old, &old, Some(&file), o));
        assert!(!rename_matches(&d, &d, Some(&dir), o));
    }

    #[test]
    fn a_checksum_decides_copy_or_metadata() {
        let opts = PlanOptions {
            checksum: true,
            ..Default::default()
        };
        let mut src = Entry::new("f", Kind::File);
        let rep = src.clone();
        assert_eq!(after_checksum(&src, &rep, true, opts), None);
        assert!(matches!(
            after_checksum(&src, &rep, false, opts),
            Some(Action::CopyFile { .. })
        ));
        src.mode = 0o600;
        assert!(matches!(
            after_checksum(&src, &rep, true, opts),
            Some(Action::SetMeta { .. })
        ));
    }

    fn exfat() -> PlanOptions {
        PlanOptions {
            caps: Caps {
                case_insensitive: true,
                symlinks: false,
                perms: false,
                special_bits: false,
                owner: false,
                mtime_ns: 1_000_000_000,
                set_atime: true,
                name_limit: crate::fscaps::NameLimit::Utf16,
                windows_names: true,
                utf8_names: true,
                hard_links: false,
                xattr_user: false,
                acl: false,
                xattr_trusted: false,
            },
            ..Default::default()
        }
    }

    fn file(name: &str, size: u64, sec: i64, nsec: u32) -> Entry {
        let mut e = Entry::new(name, Kind::File);
        e.size = size;
        e.mtime = Time { sec, nsec };
        e
    }

    #[test]
    fn times_within_the_replicas_granularity_are_equal() {
        let src = [file("f", 3, 100, 123_456_789)];
        let rep = [file("f", 3, 100, 0)];
        assert!(plan_dir(&src, &rep, &[], exfat()).is_empty());
        assert_eq!(plan_dir(&src, &rep, &[], PlanOptions::default()).len(), 1);
        let later = [file("f", 3, 101, 500_000_000)];
        assert!(matches!(
            plan_dir(&later, &rep, &[], exfat())[..],
            [Action::CopyFile { .. }]
        ));
    }

    #[test]
    fn modes_are_not_compared_where_the_replica_keeps_none() {
        let mut src = file("f", 3, 100, 0);
        src.mode = 0o4755;
        let mut rep = src.clone();
        rep.mode = 0o777;
        assert!(plan_dir(&[src.clone()], &[rep.clone()], &[], exfat()).is_empty());
        assert_eq!(
            plan_dir(&[src], &[rep], &[], PlanOptions::default()).len(),
            1
        );
    }

    #[test]
    fn case_collisions_keep_the_first_name_and_report_the_others() {
        let src = [
            Entry::new("A.TXT", Kind::File),
            Entry::new("Docs", Kind::Dir),
            Entry::new("a.txt", Kind::File),
            Entry::new("docs", Kind::Dir),
        ];
        // The replica holds the names as an earlier pass made them, in another case.
        let rep = [
            Entry::new("DOCS", Kind::Dir),
            Entry::new("a.TXT", Kind::File),
        ];
        let actions = plan_dir(&src, &rep, &[], exfat());
        let unsupported: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Unsupported { name, .. } => name.to_str(),
                _ => None,
            })
            .collect();
        assert_eq!(unsupported, ["a.txt", "docs"]);
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Remove { .. })),
            "a name matched case-insensitively is not extra: {actions:?}"
        );
        // Stable: the same listings plan the same way again.
        assert_eq!(plan_dir(&src, &rep, &[], exfat()), actions);
    }

    #[test]
    fn what_the_replica_cannot_hold_is_reported_and_its_old_copy_removed() {
        let mut link = Entry::new("link", Kind::Symlink);
        link.target = Some("x".into());
        let src = [link, Entry::new("win:name", Kind::File)];
        let rep = [Entry::new("link", Kind::File)];
        let actions = plan_dir(&src, &rep, &[], exfat());
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Unsupported {
                why: Unsupported::Symlink,
                ..
            }
        )));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Unsupported {
                why: Unsupported::Name(_),
                ..
            }
        )));
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Remove { name, .. } if name == "link"))
        );
    }

    #[test]
    fn what_destroys_a_replica_entry_keeps_a_version() {
        let name = || OsString::from("n");
        let keeps = [
            Action::Remove {
                name: name(),
                kind: Kind::Dir,
                reason: Reason::Extra,
            },
            Action::Remove {
                name: name(),
                kind: Kind::File,
                reason: Reason::TypeChange,
            },
            Action::CopyFile {
                name: name(),
                reason: Reason::Changed,
            },
            Action::CopyFile {
                name: name(),
                reason: Reason::SharedInode,
            },
            Action::Symlink {
                name: name(),
                target: "t".into(),
                reason: Reason::Changed,
            },
        ];
        assert!(keeps.iter().all(keeps_version));
        let not = [
            Action::Remove {
                name: name(),
                kind: Kind::File,
                reason: Reason::StaleTemp,
            },
            Action::CopyFile {
                name: name(),
                reason: Reason::New,
            },
            Action::CopyFile {
                name: name(),
                reason: Reason::TypeChange,
            },
            Action::SetMeta {
                name: name(),
                fix: MetaFix::default(),
            },
            Action::MakeDir {
                name: name(),
                reason: Reason::New,
            },
        ];
        assert!(!not.iter().any(keeps_version));
    }

    #[test]
    fn the_reserved_root_name_is_left_out_and_a_source_entry_reported() {
        let mut src = vec![
            Entry::new(".REPLWATCH-VERSIONS", Kind::Dir),
            Entry::new(".replwatch-versions", Kind::Dir),
            Entry::new("a", Kind::File),
        ];
        let mut rep = vec![Entry::new(".replwatch-versions", Kind::Dir)];
        let reported = reserve_root(&mut src, &mut rep, PlanOptions::default());
        assert_eq!(
            reported,
            [Action::Unsupported {
                name: ".replwatch-versions".into(),
                why: Unsupported::Reserved
            }]
        );
        assert!(rep.is_empty());
        assert_eq!(src.len(), 2);
        // Where the replica folds case, the other spelling is the same name.
        let mut src = vec![Entry::new(".REPLWATCH-VERSIONS", Kind::Dir)];
        assert_eq!(reserve_root(&mut src, &mut Vec::new(), exfat()).len(), 1);
        assert!(src.is_empty());
    }

    #[test]
    fn a_replica_file_with_other_names_is_replaced_not_changed_in_place() {
        let mut src = Entry::new("f", Kind::File);
        src.mode = 0o600;
        let mut rep = Entry::new("f", Kind::File);
        rep.nlink = 2;
        assert_eq!(
            plan_dir(&[src.clone()], &[rep.clone()], &[], PlanOptions::default()),
            [Action::CopyFile {
                name: "f".into(),
                reason: Reason::SharedInode
            }]
        );
        // Nothing differs: nothing to do, linked or not.
        rep.mode = 0o600;
        assert!(plan_dir(&[src], &[rep], &[], PlanOptions::default()).is_empty());
    }

    fn follower(leader_ino: Option<u64>, in_walk: bool) -> Entry {
        let mut src = file("b", 4, 100, 0);
        src.nlink = 2;
        src.link = Some(Box::new(LinkTo {
            leader: "d/a".into(),
            leader_ino,
            leader_in_walk: in_walk,
        }));
        src
    }

    fn links() -> PlanOptions {
        PlanOptions {
            hard_links: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_second_name_becomes_a_link_to_its_leader() {
        let src = follower(Some(7), true);
        let link = |reason| Action::Link {
            name: "b".into(),
            leader: "d/a".into(),
            size: 4,
            mtime: Time { sec: 100, nsec: 0 },
            reason,
        };
        // Missing, a separate copy, or another kind: linked.
        assert_eq!(
            plan_dir(std::slice::from_ref(&src), &[], &[], links()),
            [link(Reason::New)]
        );
        let mut copy = file("b", 4, 100, 0);
        copy.ino = 8;
        assert_eq!(
            plan_dir(std::slice::from_ref(&src), &[copy.clone()], &[], links()),
            [link(Reason::Changed)]
        );
        let dir = Entry::new("b", Kind::Dir);
        assert!(matches!(
            &plan_dir(std::slice::from_ref(&src), &[dir], &[], links())[..],
            [Action::Remove { .. }, a] if *a == link(Reason::TypeChange)
        ));
        // Already the leader's inode, nothing differs: nothing to do, in this walk or not.
        let mut same = copy.clone();
        (same.ino, same.nlink) = (7, 2);
        assert!(plan_dir(std::slice::from_ref(&src), &[same.clone()], &[], links()).is_empty());
        assert!(plan_dir(&[follower(Some(7), false)], &[same.clone()], &[], links()).is_empty());
        // Its metadata differs: an inode with two names is never changed in place, so the
        // leader is copied anew and this name linked to the copy.
        same.mode = 0o600;
        assert_eq!(
            plan_dir(std::slice::from_ref(&src), &[same.clone()], &[], links()),
            [link(Reason::Changed)]
        );
        // The leader's inode is stale (the leader is copied anew): linked to the new copy.
        let stale = follower(None, true);
        assert_eq!(
            plan_dir(&[stale], &[same], &[], links()),
            [link(Reason::Changed)]
        );
    }

    #[test]
    fn a_replica_inode_with_other_names_is_never_changed_in_place() {
        // Two names in SRC and two in the replica: one of the replica's could still be outside
        // it (a `--link-dest` backup of the replica), since SRC's count includes names
        // outside SRC. Replaced; the set's other names are then linked to the new copy.
        let mut src = file("a", 4, 100, 0);
        (src.nlink, src.mode) = (2, 0o600);
        let mut rep = file("a", 4, 100, 0);
        rep.nlink = 2;
        for r in [2, 3] {
            rep.nlink = r;
            assert!(matches!(
                &plan_dir(
                    std::slice::from_ref(&src),
                    std::slice::from_ref(&rep),
                    &[],
                    links()
                )[..],
                [Action::CopyFile {
                    reason: Reason::SharedInode,
                    ..
                }]
            ));
        }
        // Nor is one appended to in place.
        let mut grown = file("a", 1 << 20, 200, 0);
        grown.nlink = 2;
        let opts = PlanOptions {
            appends: true,
            ..links()
        };
        rep.size = 1 << 19;
        assert!(matches!(
            &plan_dir(&[grown.clone()], std::slice::from_ref(&rep), &[], opts)[..],
            [Action::CopyFile { .. }]
        ));
        rep.nlink = 1;
        assert!(matches!(
            &plan_dir(&[grown], &[rep], &[], opts)[..],
            [Action::AppendFile { .. }]
        ));
    }

    #[test]
    fn an_acl_left_out_never_widens_the_group_bits() {
        let u = u32::MAX;
        let mut acl = 2u32.to_le_bytes().to_vec();
        // user::rw-, user:1000:rwx, group::r--, mask::rwx, other::---
        for (tag, perm, id) in [
            (1u16, 6u16, u),
            (2, 7, 1000),
            (4, 4, u),
            (0x10, 7, u),
            (0x20, 0, u),
        ] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        let attrs = vec![(OsString::from(ACL_ACCESS), acl)];
        let none = Namespaces::default();
        assert_eq!(source_mode(0o670, &attrs, none), 0o640);
        let with_acls = Namespaces { acl: true, ..none };
        assert_eq!(source_mode(0o670, &attrs, with_acls), 0o670);
        assert_eq!(source_mode(0o670, &[], none), 0o670);
    }

    #[test]
    fn an_attribute_only_change_is_a_metadata_fix() {
        let opts = PlanOptions {
            xattrs: Namespaces {
                user: true,
                ..Namespaces::default()
            },
            ..Default::default()
        };
        let mut src = file("f", 1, 1, 0);
        src.xattrs = Some(vec![("user.a".into(), b"2".to_vec())]);
        let mut rep = src.clone();
        rep.xattrs = Some(vec![
            ("user.a".into(), b"1".to_vec()),
            ("user.b".into(), b"x".to_vec()),
        ]);
        let fix = match &plan_dir(&[src.clone()], &[rep.clone()], &[], opts)[..] {
            [Action::SetMeta { fix, .. }] => fix.clone(),
            other => panic!("{other:?}"),
        };
        let x = fix.xattrs.expect("an attribute fix");
        assert_eq!(x.set, vec![("user.a".into(), b"2".to_vec())]);
        assert_eq!(x.remove, vec![OsString::from("user.b")]);
        // Not compared when not mirrored.
        assert!(plan_dir(&[src], &[rep], &[], PlanOptions::default()).is_empty());
    }
}
