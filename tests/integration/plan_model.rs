//! `plan_dir` alone decides what replwatch writes and deletes, and its unit tests only check
//! hand-picked cases. This test checks the property the tool exists for, on random listings
//! with frequent name clashes: carrying out the plan on an in-memory model of the replica
//! makes it equal to the source (specials left out), planning again finds nothing to change
//! (`--checksum` re-checks by design), and entries the caller asked to keep (unreadable in the
//! source) are never touched.

use std::collections::BTreeMap;
use std::ffi::OsString;

use proptest::prelude::*;
use replwatch::entry::{Entry, Kind, Time};
use replwatch::plan::{Action, MetaFix, PlanOptions, dir_meta, plan_dir};

const NAMES: &[&str] = &[".a.replwatch-abc123.tmp", "a", "b", "c", "d", "e", "f"];
const TARGETS: &[&str] = &["t", "u", "../x/y"];
/// Owner of whatever the mirror creates when it does not copy owners.
const RUNNER: (u32, u32) = (4242, 4242);
/// The mtime a freshly made directory has before `dir_meta` fixes it.
const NOW: Time = Time { sec: 99, nsec: 7 };

type Model = BTreeMap<OsString, Entry>;

fn entry() -> impl Strategy<Value = Entry> {
    let kind = prop_oneof![
        4 => Just(Kind::File), 3 => Just(Kind::Dir), 2 => Just(Kind::Symlink), 1 => Just(Kind::Special)
    ];
    let mode = prop::sample::select(vec![0o644u32, 0o600, 0o755]);
    let target = prop::sample::select(TARGETS);
    let mtime = (0i64..3, 0u32..2).prop_map(|(sec, nsec)| Time { sec, nsec });
    let ids = (0u32..2, 0u32..2);
    (kind, 0u64..3, mtime, mode, ids, target).prop_map(|(kind, size, mtime, mode, ids, target)| {
        let mut e = Entry::new("", kind);
        (e.mtime, e.mode, (e.uid, e.gid)) = (mtime, mode, ids);
        e.target = (kind == Kind::Symlink).then(|| OsString::from(target));
        // lstat gives a symlink the length of its target as its size.
        e.size = e.target.as_ref().map_or(size, |t| t.len() as u64);
        e
    })
}

/// A replica entry is either random or, often, a copy of the source entry with one field off.
fn build_replica(source: &[Entry], raw: BTreeMap<&str, (bool, u8, Entry)>) -> Vec<Entry> {
    let mut out = Vec::new();
    for (name, (copy, tweak, mut e)) in raw {
        if let Some(s) = source.iter().find(|s| s.name == name).filter(|_| copy) {
            e = s.clone();
            match (tweak, e.kind) {
                (1, _) => e.mtime.nsec += 1,
                (2, Kind::File | Kind::Dir) => e.size += 1,
                (3, _) => e.mode ^= 0o022,
                (4, _) => e.uid += 1,
                (5, Kind::Symlink) => (e.target, e.size) = (Some("v".into()), 1),
                _ => {}
            }
        }
        e.name = name.into();
        out.push(e);
    }
    out
}

fn fix_meta(e: &mut Entry, fix: &MetaFix) {
    e.mode = fix.mode.unwrap_or(e.mode);
    e.mtime = fix.mtime.unwrap_or(e.mtime);
    (e.uid, e.gid) = fix.owner.unwrap_or((e.uid, e.gid));
}

/// What the mirror creates from a source file or symlink.
fn created(s: &Entry, opts: PlanOptions) -> Entry {
    let mut e = s.clone();
    if !opts.owner {
        (e.uid, e.gid) = RUNNER;
    }
    if e.kind == Kind::Symlink {
        e.mode = 0o777; // Linux symlinks have no mode of their own.
    }
    e
}

/// Carry out `actions` on a model of the replica, as the driver would, checking each one
/// makes sense where it lands; then fix every directory's metadata as the driver does.
fn apply(source: &[Entry], mut model: Model, actions: &[Action], opts: PlanOptions) -> Model {
    for a in actions {
        let name = a.name();
        let src = source.iter().find(|s| &s.name == name);
        let src_kind = src.map(|s| s.kind);
        let rep_kind = model.get(name).map(|r| r.kind);
        match a {
            Action::Remove { kind, .. } => {
                assert_eq!(model.remove(name).map(|r| r.kind), Some(*kind), "{a:?}");
            }
            Action::MakeDir { .. } => {
                assert_eq!((src_kind, rep_kind), (Some(Kind::Dir), None), "{a:?}");
                let mut d = Entry::new(name.clone(), Kind::Dir);
                (d.mode, d.mtime, (d.uid, d.gid)) = (0o755, NOW, RUNNER);
                model.insert(name.clone(), d);
            }
            Action::CopyFile { .. } | Action::AppendFile { .. } | Action::Symlink { .. } => {
                let s = src.unwrap_or_else(|| panic!("{a:?} without a source"));
                let (want, target) = match a {
                    Action::Symlink { target, .. } => (Kind::Symlink, Some(target)),
                    _ => (Kind::File, None),
                };
                assert!(s.kind == want && s.target.as_ref() == target, "{a:?}");
                // An atomic rename can replace an entry of the same kind only.
                assert!(
                    rep_kind.is_none_or(|k| k == want),
                    "{a:?} over {rep_kind:?}"
                );
                model.insert(name.clone(), created(s, opts));
            }
            Action::CheckContent { .. } => {
                assert!(opts.checksum, "{a:?}");
                let s = src.expect("source");
                assert_eq!((s.kind, rep_kind), (Kind::File, Some(Kind::File)), "{a:?}");
                let r = model.get_mut(name).expect("replica");
                let owner = (r.uid, r.gid);
                *r = s.clone();
                if !opts.owner {
                    (r.uid, r.gid) = owner;
                }
            }
            Action::SetMeta { fix, .. } => {
                let sane = !fix.is_empty() && src_kind.is_some() && src_kind == rep_kind;
                let link_mode = src_kind == Some(Kind::Symlink) && fix.mode.is_some();
                assert!(
                    sane && !link_mode && (opts.owner || fix.owner.is_none()),
                    "{a:?}"
                );
                fix_meta(model.get_mut(name).expect("replica"), fix);
            }
            Action::SkipSpecial { .. } => {
                assert_eq!((src_kind, rep_kind), (Some(Kind::Special), None), "{a:?}");
            }
            Action::Unsupported { .. } => panic!("a POSIX replica holds everything: {a:?}"),
            // Only planned for entries the walk gave a link set: this model gives none.
            Action::Link { .. } => panic!("no entry of this model is in a link set: {a:?}"),
        }
    }
    for s in source.iter().filter(|s| s.kind == Kind::Dir) {
        if let Some(r) = model.get_mut(&s.name).filter(|r| r.kind == Kind::Dir) {
            let fix = dir_meta(s, r, opts);
            fix_meta(r, &fix);
        }
    }
    model
}

/// What must match between source and replica: size is meaningless for dirs, mode for
/// symlinks, and owners only matter with `--owner`. Those are zeroed.
fn view(e: &Entry, opts: PlanOptions) -> Entry {
    let mut v = e.clone();
    v.size *= u64::from(v.kind != Kind::Dir);
    v.mode *= u32::from(v.kind != Kind::Symlink);
    (v.uid, v.gid) = if opts.owner { (v.uid, v.gid) } else { (0, 0) };
    v
}

fn all_opts() -> impl Iterator<Item = PlanOptions> {
    [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .map(|(checksum, owner)| PlanOptions {
            checksum,
            owner,
            ..Default::default()
        })
}

/// Actions that may legitimately come back when source and replica already agree.
fn steady(a: &Action, opts: PlanOptions) -> bool {
    matches!(a, Action::SkipSpecial { .. })
        || (opts.checksum && matches!(a, Action::CheckContent { .. }))
}

fn check(source: &[Entry], replica: &[Entry], keep: &[OsString], opts: PlanOptions) {
    let actions = plan_dir(source, replica, keep, opts);
    for a in &actions {
        let n = a.name();
        let known = source.iter().chain(replica).any(|e| &e.name == n);
        assert!(
            known && !keep.contains(n),
            "{a:?} names nothing, or a kept name"
        );
    }
    for s in source.iter().filter(|s| s.kind == Kind::Special) {
        let skipped = |a: &Action| matches!(a, Action::SkipSpecial { name } if *name == s.name);
        assert!(
            actions.iter().any(skipped),
            "special {:?} not reported",
            s.name
        );
    }
    let start = replica.iter().map(|e| (e.name.clone(), e.clone()));
    let model = apply(source, start.collect(), &actions, opts);
    for k in keep {
        let before = replica.iter().find(|r| &r.name == k);
        assert_eq!(model.get(k), before, "kept entry changed");
    }
    let views = |m: &Model| -> Vec<Entry> {
        m.values()
            .filter(|e| !keep.contains(&e.name))
            .map(|e| view(e, opts))
            .collect()
    };
    let mirrored = source.iter().filter(|s| s.kind != Kind::Special);
    let want: Vec<Entry> = mirrored.map(|s| view(s, opts)).collect();
    assert_eq!(views(&model), want, "not a mirror after {actions:#?}");

    let result: Vec<Entry> = model.values().cloned().collect();
    let again = plan_dir(source, &result, keep, opts);
    let settled = again.iter().all(|a| steady(a, opts));
    assert!(settled, "not idempotent: {again:#?}");
    assert_eq!(views(&apply(source, model.clone(), &again, opts)), want);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn plan_converges(
        src in prop::collection::btree_map(prop::sample::select(NAMES), entry(), 0..7),
        rep in prop::collection::btree_map(
            prop::sample::select(NAMES), (any::<bool>(), 0u8..6, entry()), 0..7),
        keep_mask in any::<u8>(),
    ) {
        let source: Vec<Entry> = src.into_iter().map(|(n, mut e)| { e.name = n.into(); e }).collect();
        let replica = build_replica(&source, rep);
        let keep: Vec<OsString> = replica.iter()
            .filter(|r| !source.iter().any(|s| s.name == r.name))
            .enumerate()
            .filter(|(i, _)| keep_mask & (1 << i) != 0)
            .map(|(_, r)| r.name.clone())
            .collect();
        for opts in all_opts() {
            check(&source, &replica, &keep, opts);
        }
    }
}

fn e(name: &str, kind: Kind) -> Entry {
    let mut en = Entry::new(name, kind);
    if kind == Kind::Symlink {
        (en.target, en.size) = (Some("t".into()), 1);
    }
    en
}

#[test]
fn symlink_mode_and_dir_size_never_cause_work() {
    let mut link = e("l", Kind::Symlink);
    let mut dir = e("d", Kind::Dir);
    let src = [dir.clone(), link.clone()];
    (link.mode, dir.size) = (0o777, 4096);
    assert!(all_opts().all(|o| plan_dir(&src, &[dir.clone(), link.clone()], &[], o).is_empty()));
}

#[test]
fn checksum_mode_rechecks_equal_files_on_every_pass() {
    // By design (`rsync -c`): not a fixed point in action terms, only in effect.
    let f = [e("f", Kind::File)];
    let opts = PlanOptions {
        checksum: true,
        ..Default::default()
    };
    let acts = plan_dir(&f, &f, &[], opts);
    assert_eq!(acts, [Action::CheckContent { name: "f".into() }]);
}

#[test]
fn kept_entry_of_any_kind_survives_beside_a_type_change() {
    let src = [e("a", Kind::Dir)];
    let rep = [e("a", Kind::Symlink), e("k", Kind::Dir), e("z", Kind::File)];
    all_opts().for_each(|o| check(&src, &rep, &["k".into()], o));
}
