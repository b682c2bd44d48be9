//! Hard links, extended attributes and POSIX ACLs (issue 12, items 1 and 2).
//!
//! Hard links: names that share an inode in SRC share one in REPLICA (`rsync -H`), in full
//! passes and in live mode, and a replica inode that also has a name outside REPLICA is never
//! changed in place. Attributes: `user.*`, the two ACLs, and as root `trusted.*` and
//! `security.capability` are mirrored, byte for byte, and a change of attributes alone (the
//! mtime kept) is mirrored by the next pass or by the watcher.
//!
//! Attributes and ACLs are read and written here through the `l*xattr` calls (an ACL is its
//! binary `system.posix_acl_*` value, a capability its `vfs_cap_data`), so the tests need no
//! `attr`, `acl` or `libcap` tools. A filesystem below the temp folder that holds no
//! attributes makes the attribute tests print `skipped: <why>` and pass.
use crate::support::live::*;
use crate::support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// Taken first thing by every live test: the one lock all live tests share (some change
/// machine-wide inotify limits while they hold it).
fn serial() -> MutexGuard<'static, ()> {
    crate::live::serial()
}

// ---- attributes ----

/// `lsetxattr`: set `name` on `path` itself (a symlink is not followed).
fn set_xattr(path: impl AsRef<Path>, name: &str, value: &[u8]) {
    let path = path.as_ref();
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

fn remove_xattr(path: impl AsRef<Path>, name: &str) {
    let path = path.as_ref();
    rustix::fs::lremovexattr(path, name)
        .unwrap_or_else(|e| panic!("removexattr {name} on {}: {e}", path.display()));
}

/// `lgetxattr`: the value of `name`, `None` when the entry has no such attribute.
fn get_xattr(path: impl AsRef<Path>, name: &str) -> Option<Vec<u8>> {
    let path = path.as_ref();
    let mut buf = vec![0u8; 64 << 10];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(Errno::NODATA) => None,
        Err(e) => panic!("getxattr {name} on {}: {e}", path.display()),
    }
}

/// Is `name` one of the attributes replwatch mirrors (as root: all of them)?
fn mirrored_name(name: &[u8]) -> bool {
    name.starts_with(b"user.")
        || name.starts_with(b"trusted.")
        || name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

/// The mirrored attributes of `path` itself, by name.
fn xattrs(path: impl AsRef<Path>) -> BTreeMap<String, Vec<u8>> {
    let path = path.as_ref();
    let mut list = vec![0u8; 64 << 10];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(Errno::OPNOTSUPP) => 0,
        Err(e) => panic!("listxattr {}: {e}", path.display()),
    };
    list[..n]
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty() && mirrored_name(a))
        .filter_map(|a| {
            let name = OsStr::from_bytes(a).to_str().unwrap().to_owned();
            get_xattr(path, &name).map(|v| (name, v))
        })
        .collect()
}

/// The mirrored attributes of every entry below `root` (the root included), by relative path.
fn tree_xattrs(root: &Path) -> BTreeMap<PathBuf, BTreeMap<String, Vec<u8>>> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                xattrs(e.path()),
            )
        })
        .collect()
}

/// REPLICA mirrors SRC (`tree_diff`), and every entry has the same mirrored attributes.
#[track_caller]
fn assert_attrs_mirrored(env: &Env) {
    assert_mirrored(&env.src, &env.rep);
    let (a, b) = (tree_xattrs(&env.src), tree_xattrs(&env.rep));
    for (p, x) in &a {
        assert_eq!(Some(x), b.get(p), "attributes of {} differ", p.display());
    }
    assert_eq!(a.len(), b.len());
}

/// Can the temp folder's filesystem hold `user.*` attributes and POSIX ACLs? Prints
/// `skipped: <why>` when not.
fn attrs_supported(env: &Env) -> bool {
    let probe = env.root().join("xattr-probe");
    write(&probe, "p");
    let user = rustix::fs::lsetxattr(&probe, "user.probe", b"1", XattrFlags::empty());
    let acl = rustix::fs::lsetxattr(
        &probe,
        ACL_ACCESS,
        &acl(&[(USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 4, ANY)]),
        XattrFlags::empty(),
    );
    fs::remove_file(&probe).unwrap();
    match (user, acl) {
        (Ok(()), Ok(())) => true,
        (u, a) => {
            eprintln!("skipped: no user.* attributes ({u:?}) or ACLs ({a:?}) in the temp folder");
            false
        }
    }
}

const ACL_ACCESS: &str = "system.posix_acl_access";
const ACL_DEFAULT: &str = "system.posix_acl_default";
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
/// The id of an entry that names nobody (owner, owning group, mask, other).
const ANY: u32 = u32::MAX;

/// The binary value of a POSIX ACL: version 2, then (tag, perm, id) entries in tag order.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// A `security.capability` value (VFS_CAP_REVISION_2, effective) granting `cap` permitted.
fn capability(cap: u32) -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    let permitted = 1u64 << cap;
    for word in [permitted as u32, 0, (permitted >> 32) as u32, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

const CAP_NET_RAW: u32 = 13;

// ---- hard links ----

fn ino(p: impl AsRef<Path>) -> u64 {
    p.as_ref().symlink_metadata().unwrap().ino()
}

fn nlink(p: impl AsRef<Path>) -> u64 {
    p.as_ref().symlink_metadata().unwrap().nlink()
}

fn link(root: &Path, from: &str, to: &str) {
    fs::hard_link(root.join(from), root.join(to)).unwrap();
}

/// The regular files below `root`, by relative path, with their inode numbers.
fn file_inodes(root: &Path) -> BTreeMap<PathBuf, u64> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                e.path().symlink_metadata().unwrap().ino(),
            )
        })
        .collect()
}

/// The link sets of a tree: the names of each inode, as sets of relative paths.
fn link_sets(root: &Path) -> BTreeSet<BTreeSet<PathBuf>> {
    let mut by_ino: BTreeMap<u64, BTreeSet<PathBuf>> = BTreeMap::new();
    for (p, i) in file_inodes(root) {
        by_ino.entry(i).or_default().insert(p);
    }
    by_ino.into_values().collect()
}

/// Names that share an inode in SRC share one in REPLICA, and only those; each replica file
/// has as many names as its source file (no name outside REPLICA).
#[track_caller]
fn assert_links_mirrored(env: &Env) {
    assert_eq!(
        link_sets(&env.src),
        link_sets(&env.rep),
        "the replica's link sets differ from the source's"
    );
    for p in file_inodes(&env.src).keys() {
        assert_eq!(
            nlink(env.src.join(p)),
            nlink(env.rep.join(p)),
            "link count of {}",
            p.display()
        );
    }
}

/// The log of the latest run only (the logfile is appended to by every run).
fn last_run(env: &Env) -> String {
    let log = env.log_text();
    let start = log.rfind(" starting, ").expect("no run in the log");
    let start = log[..start].rfind('\n').map_or(0, |i| i + 1);
    log[start..].to_owned()
}

/// The latest run changed nothing: no action but its summary, and a summary of zeros.
#[track_caller]
fn assert_last_run_quiet(env: &Env) {
    let log = last_run(env);
    let acted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("action: ") && !l.contains("action: summary"))
        .collect();
    assert!(
        acted.is_empty(),
        "a pass that should do nothing did:\n{log}"
    );
    assert!(
        log.contains("created: 0, updated: 0, meta: 0, removed: 0, renamed: 0"),
        "{log}"
    );
}

/// The lines of the latest run with `action: <action>` and `path: <path>`.
fn actions(env: &Env, action: &str, path: &str) -> usize {
    last_run(env)
        .lines()
        .filter(|l| l.contains(&format!("action: {action},")))
        .filter(|l| l.contains(&format!("path: {path},")))
        .count()
}

#[test]
fn a_link_set_across_directories_is_one_replica_inode() {
    let env = Env::new();
    write(env.src.join("d1/a"), bytes(1 << 20, 1));
    link(&env.src, "d1/a", "d1/b");
    mkdir(env.src.join("d2"));
    link(&env.src, "d1/a", "d2/c");
    write(env.src.join("d2/alone"), "alone");

    env.once_ok();
    let names = ["d1/a", "d1/b", "d2/c"].map(|p| env.rep.join(p));
    for p in &names {
        assert_eq!(ino(p), ino(&names[0]), "{} is another inode", p.display());
        assert_eq!(nlink(p), 3, "{}", p.display());
        assert_eq!(fs::read(p).unwrap(), bytes(1 << 20, 1));
    }
    assert_eq!(nlink(env.rep.join("d2/alone")), 1);
    assert_links_mirrored(&env);
    // The data is stored once: 1 MiB, not 3.
    let mut seen = BTreeSet::new();
    let allocated: u64 = walkdir::WalkDir::new(&env.rep)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap())
        .filter(|m| seen.insert(m.ino()))
        .map(|m| m.blocks() * 512)
        .sum();
    assert!(allocated < 2 << 20, "REPLICA allocates {allocated} bytes");
    // One copy (of whichever name the walk met first), two links.
    let count = |action| {
        ["d1/a", "d1/b", "d2/c"]
            .iter()
            .map(|p| actions(&env, action, p))
            .sum::<usize>()
    };
    assert_eq!((count("copy"), count("link")), (1, 2), "{}", last_run(&env));
    assert!(temp_files(&env.rep).is_empty());

    // A second pass finds nothing to do.
    let before = inodes(&env.rep);
    env.once_ok();
    assert_last_run_quiet(&env);
    assert_eq!(before, inodes(&env.rep));
}

#[test]
fn link_sets_that_change_between_passes_are_followed() {
    let env = Env::new();
    write(env.src.join("d1/a"), "one");
    link(&env.src, "d1/a", "d1/b");
    mkdir(env.src.join("d2"));
    link(&env.src, "d1/a", "d2/c");
    env.once_ok();
    assert_links_mirrored(&env);

    // A fourth name, in a new directory.
    mkdir(env.src.join("d3"));
    link(&env.src, "d2/c", "d3/d");
    env.once_ok();
    assert_links_mirrored(&env);
    assert_eq!(nlink(env.rep.join("d3/d")), 4);

    // The name that led the set is removed.
    fs::remove_file(env.src.join("d1/a")).unwrap();
    env.once_ok();
    assert_links_mirrored(&env);
    assert!(!env.rep.join("d1/a").exists());
    assert_eq!(nlink(env.rep.join("d1/b")), 3);

    // One name becomes an independent copy (same bytes, same mtime, its own inode).
    let mtime = env.src.join("d1/b").metadata().unwrap().mtime();
    fs::remove_file(env.src.join("d1/b")).unwrap();
    write(env.src.join("d1/b"), "one");
    set_mtime(env.src.join("d1/b"), mtime, 0);
    set_mtime(env.src.join("d2/c"), mtime, 0);
    env.once_ok();
    assert_links_mirrored(&env);
    assert_eq!(nlink(env.rep.join("d1/b")), 1);
    assert_ne!(ino(env.rep.join("d1/b")), ino(env.rep.join("d2/c")));
    assert_eq!(ino(env.rep.join("d2/c")), ino(env.rep.join("d3/d")));

    // New bytes written through one name of the set reach every replica name.
    write(env.src.join("d3/d"), "two, longer");
    env.once_ok();
    assert_links_mirrored(&env);
    assert_eq!(fs::read(env.rep.join("d2/c")).unwrap(), b"two, longer");
    assert_eq!(fs::read(env.rep.join("d1/b")).unwrap(), b"one");

    // Two independent files become one set: the replica links them too.
    fs::remove_file(env.src.join("d1/b")).unwrap();
    link(&env.src, "d2/c", "d1/b");
    env.once_ok();
    assert_links_mirrored(&env);
    assert_eq!(nlink(env.rep.join("d1/b")), 3);

    env.once_ok();
    assert_last_run_quiet(&env);
    assert!(temp_files(&env.rep).is_empty());
}

#[test]
fn dry_run_lists_links_and_makes_none() {
    let env = Env::new();
    write(env.src.join("d1/a"), "shared");
    mkdir(env.src.join("d2"));
    link(&env.src, "d1/a", "d2/b");
    let out = env.cmd(&["--once", "-n"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!env.rep.exists(), "dry run created the replica");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("+ file    d1/a (new)"), "{stdout}");
    assert!(
        stdout.contains("+ link    d2/b (new, hard link of d1/a)"),
        "{stdout}"
    );

    // With a replica: the names were copied separately; the dry run would link them.
    let out = env.cmd(&["--once", "--no-hard-links"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let before = (fingerprint(&env.rep), inodes(&env.rep));
    let out = env.cmd(&["--once", "-n"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(before, (fingerprint(&env.rep), inodes(&env.rep)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("link    d2/b"), "{stdout}");
    env.once_ok();
    assert_links_mirrored(&env);
}

/// A source file with a second name outside SRC, or in an excluded directory: REPLICA holds
/// one name of it, and the link count that differs from the source's is no reason to copy
/// it again on every pass.
#[test]
fn names_outside_the_mirror_leave_one_stable_replica_file() {
    let env = Env::new();
    write(env.src.join("a"), "linked from outside");
    fs::hard_link(env.src.join("a"), env.root().join("outside")).unwrap();
    write(env.src.join("skip/b"), "linked from an excluded folder");
    mkdir(env.src.join("d"));
    link(&env.src, "skip/b", "d/b");
    let run = || {
        let out = env.cmd(&["--once", "--exclude", "/skip"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    };
    run();
    assert_eq!(fs::read(env.rep.join("a")).unwrap(), b"linked from outside");
    assert_eq!(
        fs::read(env.rep.join("d/b")).unwrap(),
        b"linked from an excluded folder"
    );
    assert!(!env.rep.join("skip").exists());
    assert_eq!(nlink(env.rep.join("a")), 1);
    assert_eq!(nlink(env.rep.join("d/b")), 1);
    run();
    assert_last_run_quiet(&env);
}

#[test]
fn no_hard_links_copies_each_name() {
    let env = Env::new();
    write(env.src.join("d1/a"), bytes(10_000, 3));
    link(&env.src, "d1/a", "d1/b");
    mkdir(env.src.join("d2"));
    link(&env.src, "d1/a", "d2/c");
    let out = env.cmd(&["--once", "--no-hard-links"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    let names = ["d1/a", "d1/b", "d2/c"].map(|p| env.rep.join(p));
    for p in &names {
        assert_eq!(fs::read(p).unwrap(), bytes(10_000, 3));
        assert_eq!(nlink(p), 1, "{}", p.display());
    }
    let inos: BTreeSet<u64> = names.iter().map(ino).collect();
    assert_eq!(inos.len(), 3, "names share an inode");
    assert!(
        !last_run(&env).contains("action: link"),
        "{}",
        last_run(&env)
    );

    let out = env.cmd(&["--once", "--no-hard-links"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_last_run_quiet(&env);
}

/// Do `a` and `b` (replica-relative) name one inode?
fn shared(env: &Env, a: &str, b: &str) -> bool {
    let (a, b) = (env.rep.join(a), env.rep.join(b));
    a.symlink_metadata()
        .and_then(|m| Ok(m.ino() == b.symlink_metadata()?.ino()))
        .unwrap_or(false)
}

/// `ln d1/a d2/b` in live mode, where `d1/a` had a single name until then and `d2` exists:
/// the replica gets a link, not a second copy, without waiting for a full pass.
#[test]
fn live_link_into_another_directory_is_a_link() {
    let _serial = serial();
    let env = Env::new();
    write(env.src.join("d1/a"), "first");
    mkdir(env.src.join("d2"));
    let live = Live::with(&env, "1h", "5m");
    converge(&env);

    link(&env.src, "d1/a", "d2/b");
    assert!(
        wait_until(CONVERGE, || shared(&env, "d1/a", "d2/b")),
        "d2/b is not a link to d1/a in REPLICA:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);
}

/// `ln d1/a d1/b` in live mode: both names are in the batch's one directory.
#[test]
fn live_link_in_the_same_directory_is_a_link() {
    let _serial = serial();
    let env = Env::new();
    write(env.src.join("d1/a"), "first");
    let live = Live::with(&env, "1h", "5m");
    converge(&env);

    link(&env.src, "d1/a", "d1/b");
    assert!(
        wait_until(CONVERGE, || shared(&env, "d1/a", "d1/b")),
        "d1/b is not a link to d1/a in REPLICA:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);
}

/// Live mode: the name that led a set in the initial pass is removed, then the set gets a
/// new name in another directory: the new name is linked to a remaining one.
#[test]
fn live_link_after_the_leading_name_is_removed() {
    let _serial = serial();
    let env = Env::new();
    write(env.src.join("d1/a"), "first");
    link(&env.src, "d1/a", "d1/x");
    mkdir(env.src.join("d2"));
    let live = Live::with(&env, "1h", "5m");
    converge(&env);
    assert_links_mirrored(&env);

    fs::remove_file(env.src.join("d1/a")).unwrap();
    converge(&env);
    link(&env.src, "d1/x", "d2/y");
    assert!(
        wait_until(CONVERGE, || shared(&env, "d1/x", "d2/y")),
        "d2/y is not a link to d1/x in REPLICA:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);
}

/// Live mode: a link set that grows into another directory, a new directory whose file is
/// linked from elsewhere, and a name removed (only that name goes).
#[test]
fn live_links_across_directories_are_mirrored_as_links() {
    let _serial = serial();
    let env = Env::new();
    write(env.src.join("d1/a"), "first");
    link(&env.src, "d1/a", "d1/x");
    mkdir(env.src.join("d2"));
    let live = Live::with(&env, "1h", "5m");
    converge(&env);
    assert_links_mirrored(&env);

    // `ln d1/a d2/b`, into a directory that already exists.
    link(&env.src, "d1/a", "d2/b");
    assert!(
        wait_until(CONVERGE, || shared(&env, "d1/a", "d2/b")),
        "d2/b is not a link to d1/a in REPLICA:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);

    // A new directory with a file, and a link to it from another directory. The directory
    // is made beside SRC and moved in, so the file has both names whichever batch sees it
    // first (a file with one name, linked later from another directory: see
    // `live_link_into_another_directory_is_a_link`).
    let stage = env.root().join("d3");
    write(stage.join("f"), "third");
    fs::hard_link(stage.join("f"), env.src.join("d1/g")).unwrap();
    fs::rename(&stage, env.src.join("d3")).unwrap();
    assert!(
        wait_until(CONVERGE, || shared(&env, "d3/f", "d1/g")),
        "d1/g is not a link to d3/f in REPLICA:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);

    // Removing a name removes only that name.
    fs::remove_file(env.src.join("d1/a")).unwrap();
    assert!(
        wait_until(CONVERGE, || !env.rep.join("d1/a").exists()),
        "d1/a is still in REPLICA"
    );
    fs::remove_file(env.src.join("d3/f")).unwrap();
    converge(&env);
    assert_eq!(fs::read(env.rep.join("d2/b")).unwrap(), b"first");
    assert_eq!(fs::read(env.rep.join("d1/g")).unwrap(), b"third");
    assert_eq!(nlink(env.rep.join("d1/g")), 1);
    assert_links_mirrored(&env);
}

/// Live mode: new bytes written through one name of a link set (the inode kept) reach every
/// replica name, though only one directory had an event.
#[test]
fn live_new_bytes_through_one_name_reach_every_name() {
    let _serial = serial();
    let env = Env::new();
    write(env.src.join("d1/a"), "old");
    mkdir(env.src.join("d2"));
    link(&env.src, "d1/a", "d2/b");
    let live = Live::with(&env, "1h", "5m");
    converge(&env);
    assert_links_mirrored(&env);

    fs::write(env.src.join("d1/a"), "new bytes").unwrap();
    assert_eq!(fs::read(env.src.join("d2/b")).unwrap(), b"new bytes");
    assert!(
        wait_until(CONVERGE, || {
            fs::read(env.rep.join("d2/b")).is_ok_and(|b| b == b"new bytes")
                && shared(&env, "d1/a", "d2/b")
        }),
        "d2/b in REPLICA kept the old bytes or lost its link:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);

    // The same through the other name, in the other directory.
    fs::write(env.src.join("d2/b"), "newer bytes").unwrap();
    assert!(
        wait_until(CONVERGE, || {
            fs::read(env.rep.join("d1/a")).is_ok_and(|b| b == b"newer bytes")
                && shared(&env, "d1/a", "d2/b")
        }),
        "d1/a in REPLICA kept the old bytes or lost its link:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_links_mirrored(&env);
}

/// A replica inode that also has a name outside REPLICA (a `cp -al` snapshot), where SRC
/// itself links two names: the replica inode has three names to the source's two. A change
/// of mode or of attributes alone replaces the replica's pair, still linked, and leaves the
/// outside name's inode as it was.
#[test]
fn a_replica_link_set_with_an_outside_name_is_replaced_not_changed() {
    let env = Env::new();
    write(env.src.join("a"), "data");
    chmod(env.src.join("a"), 0o644);
    mkdir(env.src.join("d"));
    link(&env.src, "a", "d/b");
    env.once_ok();
    assert_links_mirrored(&env);
    let snapshot = env.root().join("snapshot-a");
    fs::hard_link(env.rep.join("a"), &snapshot).unwrap();
    assert_eq!(nlink(&snapshot), 3);
    let before = snapshot.metadata().unwrap();

    chmod(env.src.join("a"), 0o600);
    env.once_ok();
    assert!(
        last_run(&env).contains("reason: shared-inode"),
        "{}",
        last_run(&env)
    );
    let after = snapshot.metadata().unwrap();
    assert_eq!(
        after.permissions().mode() & 0o7777,
        0o644,
        "snapshot chmodded"
    );
    assert_eq!(after.mtime(), before.mtime());
    assert_eq!(after.ino(), before.ino());
    assert_eq!(
        after.nlink(),
        1,
        "the snapshot still shares the replica's inode"
    );
    assert_ne!(ino(env.rep.join("a")), before.ino());
    assert_links_mirrored(&env);
    assert_eq!(fs::read(&snapshot).unwrap(), b"data");

    // The same with an attribute-only change.
    if !attrs_supported(&env) {
        return;
    }
    let snap_b = env.root().join("snapshot-b");
    fs::hard_link(env.rep.join("d/b"), &snap_b).unwrap();
    let before_b = snap_b.metadata().unwrap();
    let mtime = env.src.join("a").metadata().unwrap();
    set_xattr(env.src.join("a"), "user.note", b"new");
    filetime::set_file_mtime(
        env.src.join("a"),
        filetime::FileTime::from_last_modification_time(&mtime),
    )
    .unwrap();
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(get_xattr(&snap_b, "user.note"), None, "snapshot changed");
    assert_eq!(snap_b.metadata().unwrap().ino(), before_b.ino());
    assert_eq!(snap_b.metadata().unwrap().nlink(), 1);
    assert_links_mirrored(&env);
}

// ---- extended attributes ----

#[test]
fn user_attributes_are_mirrored_and_attribute_only_changes_follow() {
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    write(env.src.join("dir/f"), "f");
    write(env.src.join("g"), "g");
    set_xattr(env.src.join("dir/f"), "user.a", b"1");
    set_xattr(env.src.join("dir/f"), "user.b", b"");
    set_xattr(env.src.join("dir/f"), "user.big", &bytes(3000, 9));
    set_xattr(env.src.join("dir"), "user.d", b"dir value");
    set_xattr(env.src.join("dir"), "user.gone", b"x");
    set_mtime(env.src.join("dir/f"), 1_600_000_000, 5);
    set_mtime(env.src.join("dir"), 1_600_000_000, 7);
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(
        get_xattr(env.rep.join("dir/f"), "user.a"),
        Some(b"1".to_vec())
    );

    // Change one value, remove one, add one: mtimes unchanged.
    set_xattr(env.src.join("dir/f"), "user.a", b"2");
    remove_xattr(env.src.join("dir"), "user.gone");
    set_xattr(env.src.join("g"), "user.new", b"added");
    set_mtime(env.src.join("dir/f"), 1_600_000_000, 5);
    set_mtime(env.src.join("dir"), 1_600_000_000, 7);
    let before = inodes(&env.rep);
    env.once_ok();
    assert_attrs_mirrored(&env);
    for p in ["dir/f", "g"] {
        assert_eq!(actions(&env, "meta", p), 1, "{p}:\n{}", last_run(&env));
    }
    // Changed in place: nothing was copied.
    assert_eq!(before, inodes(&env.rep));

    // A directory's own attribute change, alone in its pass, is a `meta` record.
    set_xattr(env.src.join("dir"), "user.d", b"dir value, changed");
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(actions(&env, "meta", "dir"), 1, "{}", last_run(&env));
    env.once_ok();
    assert_last_run_quiet(&env);
}

#[test]
fn no_xattrs_leaves_user_attributes_out() {
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    write(env.src.join("f"), "f");
    set_xattr(env.src.join("f"), "user.a", b"1");
    set_xattr(env.src.join("f"), ACL_ACCESS, &named_acl(7));
    let out = env.cmd(&["--once", "--no-xattrs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(get_xattr(env.rep.join("f"), "user.a"), None);
    // ACLs are not extended attributes for the user: they are still mirrored.
    assert_eq!(
        get_xattr(env.rep.join("f"), ACL_ACCESS),
        get_xattr(env.src.join("f"), ACL_ACCESS)
    );
    let out = env.cmd(&["--once", "--no-xattrs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_last_run_quiet(&env);
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn privileged_attributes_and_capabilities_are_mirrored() {
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    write(env.src.join("f"), "f");
    write(env.src.join("ping"), bytes(5000, 2));
    symlink("f", env.src.join("link"));
    set_xattr(env.src.join("f"), "trusted.t", b"file");
    set_xattr(env.src.join("f"), "user.u", b"user");
    set_xattr(env.src.join("link"), "trusted.l", b"symlink");
    // An unprivileged owner, then the capability (a chown drops it).
    std::os::unix::fs::lchown(env.src.join("ping"), Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(env.src.join("ping"), 0o755);
    set_xattr(
        env.src.join("ping"),
        "security.capability",
        &capability(CAP_NET_RAW),
    );
    assert!(get_xattr(env.src.join("ping"), "security.capability").is_some());
    for p in ["f", "ping", "link"] {
        set_mtime(env.src.join(p), 1_600_000_000, 0);
    }
    env.once_ok();
    assert_attrs_mirrored(&env);
    let ping = env.rep.join("ping").metadata().unwrap();
    assert_eq!((ping.uid(), ping.gid()), (NOBODY, NOBODY));
    assert_eq!(
        get_xattr(env.rep.join("ping"), "security.capability"),
        Some(capability(CAP_NET_RAW)),
        "the capability is lost"
    );
    assert_eq!(
        get_xattr(env.rep.join("link"), "trusted.l"),
        Some(b"symlink".to_vec())
    );
    // The symlink's attribute is its own, not its target's.
    assert_eq!(get_xattr(env.rep.join("f"), "trusted.l"), None);

    // Attribute-only changes: a value changed, one removed, one added.
    set_xattr(env.src.join("f"), "trusted.t", b"file, changed");
    remove_xattr(env.src.join("f"), "user.u");
    set_xattr(env.src.join("link"), "trusted.added", b"+");
    for p in ["f", "link"] {
        set_mtime(env.src.join(p), 1_600_000_000, 0);
    }
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(get_xattr(env.rep.join("f"), "user.u"), None);
    assert_eq!(
        get_xattr(env.rep.join("ping"), "security.capability"),
        Some(capability(CAP_NET_RAW))
    );
    env.once_ok();
    assert_last_run_quiet(&env);
}

// ---- ACLs ----

/// user::rw-, user:NOBODY:`named`, group::r--, mask::rwx, other::---.
fn named_acl(named: u16) -> Vec<u8> {
    acl(&[
        (USER_OBJ, 6, ANY),
        (USER, named, NOBODY),
        (GROUP_OBJ, 4, ANY),
        (MASK, 7, ANY),
        (OTHER, 0, ANY),
    ])
}

#[test]
fn acls_are_mirrored_exactly_and_acl_only_changes_follow() {
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    write(env.src.join("f"), "f");
    // Made before the default ACL below, so it inherits none in SRC (REPLICA must not
    // let it inherit the replica directory's either).
    write(env.src.join("dir/inside"), "i");
    set_xattr(env.src.join("f"), ACL_ACCESS, &named_acl(7));
    assert_eq!(
        env.src.join("f").metadata().unwrap().mode() & 0o777,
        0o670,
        "the group bits show the mask"
    );
    set_xattr(
        env.src.join("dir"),
        ACL_DEFAULT,
        &acl(&[
            (USER_OBJ, 7, ANY),
            (USER, 5, NOBODY),
            (GROUP_OBJ, 5, ANY),
            (MASK, 5, ANY),
            (OTHER, 0, ANY),
        ]),
    );
    // A file made after it inherits it.
    write(env.src.join("dir/later"), "l");
    assert!(get_xattr(env.src.join("dir/later"), ACL_ACCESS).is_some());
    assert!(get_xattr(env.src.join("dir/inside"), ACL_ACCESS).is_none());
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(get_xattr(env.rep.join("f"), ACL_ACCESS), Some(named_acl(7)));
    assert_eq!(get_xattr(env.rep.join("dir/inside"), ACL_ACCESS), None);

    // The named user's entry changes, the mask and mode stay, the mtime stays.
    let mtime = env.src.join("f").metadata().unwrap();
    set_xattr(env.src.join("f"), ACL_ACCESS, &named_acl(5));
    filetime::set_file_mtime(
        env.src.join("f"),
        filetime::FileTime::from_last_modification_time(&mtime),
    )
    .unwrap();
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(get_xattr(env.rep.join("f"), ACL_ACCESS), Some(named_acl(5)));
    assert_eq!(actions(&env, "meta", "f"), 1, "{}", last_run(&env));

    // A file made in the directory without the ACL it would inherit: the replica file,
    // made in a replica directory that has the default ACL, must not keep an inherited one.
    write(env.src.join("dir/new"), "n");
    remove_xattr(env.src.join("dir/new"), ACL_ACCESS);
    chmod(env.src.join("dir/new"), 0o640);
    assert!(get_xattr(env.rep.join("dir"), ACL_DEFAULT).is_some());
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(get_xattr(env.rep.join("dir/new"), ACL_ACCESS), None);

    // The default ACL goes: the replica directory's goes too.
    remove_xattr(env.src.join("dir"), ACL_DEFAULT);
    env.once_ok();
    assert_attrs_mirrored(&env);
    assert_eq!(get_xattr(env.rep.join("dir"), ACL_DEFAULT), None);
    env.once_ok();
    assert_last_run_quiet(&env);
}

#[test]
fn no_acls_gives_the_group_its_real_permissions_not_the_mask() {
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    write(env.src.join("f"), "f");
    set_xattr(env.src.join("f"), ACL_ACCESS, &named_acl(7));
    set_xattr(env.src.join("f"), "user.kept", b"yes");
    mkdir(env.src.join("dir"));
    set_xattr(
        env.src.join("dir"),
        ACL_DEFAULT,
        &acl(&[(USER_OBJ, 7, ANY), (GROUP_OBJ, 5, ANY), (OTHER, 5, ANY)]),
    );
    assert_eq!(env.src.join("f").metadata().unwrap().mode() & 0o7777, 0o670);
    // A directory's access ACL: group::r-x, mask::rwx shows as 0775.
    mkdir(env.src.join("shared"));
    set_xattr(
        env.src.join("shared"),
        ACL_ACCESS,
        &acl(&[
            (USER_OBJ, 7, ANY),
            (USER, 7, NOBODY),
            (GROUP_OBJ, 5, ANY),
            (MASK, 7, ANY),
            (OTHER, 5, ANY),
        ]),
    );
    assert_eq!(
        env.src.join("shared").metadata().unwrap().mode() & 0o7777,
        0o775
    );

    let out = env.cmd(&["--once", "--no-acls"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let rep = env.rep.join("f");
    assert_eq!(get_xattr(&rep, ACL_ACCESS), None, "an ACL was mirrored");
    assert_eq!(get_xattr(env.rep.join("dir"), ACL_DEFAULT), None);
    assert_eq!(
        rep.metadata().unwrap().mode() & 0o7777,
        0o640,
        "the group bits must be group::r-- (not mask::rwx)"
    );
    assert_eq!(fs::read(&rep).unwrap(), b"f");
    assert_eq!(get_xattr(env.rep.join("shared"), ACL_ACCESS), None);
    assert_eq!(
        env.rep.join("shared").metadata().unwrap().mode() & 0o7777,
        0o755,
        "the directory's group bits must be group::r-x (not mask::rwx)"
    );
    // Attributes are still mirrored.
    assert_eq!(get_xattr(&rep, "user.kept"), Some(b"yes".to_vec()));

    // Stable: the narrower mode is not a difference to repair.
    let out = env.cmd(&["--once", "--no-acls"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_last_run_quiet(&env);

    // Turned back on, the ACL arrives and the mode matches the source's.
    env.once_ok();
    assert_attrs_mirrored(&env);
}

// ---- live attribute changes ----

#[test]
fn live_attribute_only_changes_are_mirrored_without_a_full_pass() {
    let _serial = serial();
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    write(env.src.join("d/f"), "f");
    set_xattr(env.src.join("d/f"), "user.a", b"1");
    set_mtime(env.src.join("d/f"), 1_600_000_000, 0);
    let live = Live::with(&env, "1h", "5m");
    converge(&env);
    assert_attrs_mirrored(&env);

    set_xattr(env.src.join("d/f"), "user.a", b"2");
    set_xattr(env.src.join("d/f"), "user.new", b"n");
    set_mtime(env.src.join("d/f"), 1_600_000_000, 0);
    assert!(
        wait_until(CONVERGE, || {
            get_xattr(env.rep.join("d/f"), "user.a") == Some(b"2".to_vec())
                && get_xattr(env.rep.join("d/f"), "user.new") == Some(b"n".to_vec())
        }),
        "the attribute change did not reach REPLICA:\n{}",
        live.log_text()
    );

    // An ACL set on a directory, and an attribute removed.
    let dir_acl = acl(&[
        (USER_OBJ, 7, ANY),
        (USER, 5, NOBODY),
        (GROUP_OBJ, 5, ANY),
        (MASK, 7, ANY),
        (OTHER, 5, ANY),
    ]);
    set_xattr(env.src.join("d"), ACL_ACCESS, &dir_acl);
    remove_xattr(env.src.join("d/f"), "user.new");
    set_mtime(env.src.join("d/f"), 1_600_000_000, 0);
    assert!(
        wait_until(CONVERGE, || {
            get_xattr(env.rep.join("d"), ACL_ACCESS) == Some(dir_acl.clone())
                && get_xattr(env.rep.join("d/f"), "user.new").is_none()
        }),
        "the ACL or the removal did not reach REPLICA:\n{}",
        live.log_text()
    );
    converge(&env);
    assert_attrs_mirrored(&env);
    assert!(
        !live.log_text().contains("action: full-pass"),
        "a full pass did the work:\n{}",
        live.log_text()
    );
}

/// Without root, `user.*` attributes can only be set on a file one may write: a read-only
/// file (and directory) keeps its attributes because they are set before its mode.
#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn read_only_entries_keep_their_user_attributes_without_root() {
    let env = Env::new();
    if !attrs_supported(&env) {
        return;
    }
    let Some(setpriv) = find_setpriv() else {
        panic!("setpriv (util-linux) is needed to run replwatch as nobody");
    };
    write(env.src.join("ro/f"), "read only");
    set_xattr(env.src.join("ro/f"), "user.origin", b"file");
    set_xattr(env.src.join("ro"), "user.origin", b"dir");
    open_to_nobody(&env);
    for p in [env.src.join("ro/f"), env.src.join("ro"), env.src.clone()] {
        std::os::unix::fs::lchown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    chmod(env.src.join("ro/f"), 0o444);
    chmod(env.src.join("ro"), 0o555);
    let out = as_nobody(&env, &setpriv, &["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        get_xattr(env.rep.join("ro/f"), "user.origin").as_deref(),
        Some(&b"file"[..])
    );
    assert_eq!(
        get_xattr(env.rep.join("ro"), "user.origin").as_deref(),
        Some(&b"dir"[..])
    );
    assert_eq!(
        fs::metadata(env.rep.join("ro/f")).unwrap().mode() & 0o7777,
        0o444
    );
    // An attribute-only change on the read-only entries follows too.
    chmod(env.src.join("ro"), 0o755);
    set_xattr(env.src.join("ro/f"), "user.origin", b"changed");
    chmod(env.src.join("ro"), 0o555);
    let out = as_nobody(&env, &setpriv, &["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        get_xattr(env.rep.join("ro/f"), "user.origin").as_deref(),
        Some(&b"changed"[..])
    );
    let out = as_nobody(&env, &setpriv, &["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}
