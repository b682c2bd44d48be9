//! `--versions`: what a pass deletes or overwrites is kept in REPLICA/.replwatch-versions/,
//! named `STEM~YYYYMMDD-HHMMSS.EXT`, with retention by count and age; the folder is never
//! mirrored into or deleted by the mirror; the dry run says which actions would keep one.
use crate::support::live::*;
use crate::support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const VERSIONS: &str = ".replwatch-versions";

/// `--once --versions` plus `extra`.
fn once_v(env: &Env, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--once", "--versions"];
    args.extend_from_slice(extra);
    env.cmd(&args).output().unwrap()
}

#[track_caller]
fn once_v_ok(env: &Env, extra: &[&str]) -> std::process::Output {
    let out = once_v(env, extra);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored_besides_versions(env);
    out
}

/// How REPLICA differs from SRC, its root included, once the versions folder is set aside
/// (a tree changing while it is listed is a difference, not a panic).
fn diff_besides_versions(env: &Env) -> Vec<String> {
    let (Ok(src), Ok(rep)) = (
        try_listing(&env.src, true, true),
        try_listing(&env.rep, true, true),
    ) else {
        return vec!["(the tree changed while it was compared)".into()];
    };
    let rep: BTreeMap<PathBuf, Node> = rep
        .into_iter()
        .filter(|(p, _)| !p.starts_with(VERSIONS))
        .collect();
    src.keys()
        .chain(rep.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| src.get(*p) != rep.get(*p))
        .map(|p| {
            format!(
                "{}: src {:?}, rep {:?}",
                p.display(),
                src.get(p),
                rep.get(p)
            )
        })
        .collect()
}

#[track_caller]
fn assert_mirrored_besides_versions(env: &Env) {
    let differ = diff_besides_versions(env);
    assert!(differ.is_empty(), "replica differs:\n{}", differ.join("\n"));
}

/// Paths below the versions folder, relative to it.
fn versions(env: &Env) -> Vec<PathBuf> {
    let root = env.rep.join(VERSIONS);
    if !root.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(&root)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(&root).unwrap().to_path_buf())
        .collect()
}

/// The versions of `name` in the versions folder's `dir` (`name`'s stem, a `~`, a time).
fn versions_of(env: &Env, dir: &str, stem: &str, ext: &str) -> Vec<PathBuf> {
    let d = env.rep.join(VERSIONS).join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&d)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.retain(|p| {
        let n = p.file_name().unwrap().to_str().unwrap();
        n.starts_with(&format!("{stem}~")) && n.ends_with(ext) && is_stamped(n, stem, ext)
    });
    out.sort();
    out
}

/// `STEM~YYYYMMDD-HHMMSS[-N]EXT`.
fn is_stamped(name: &str, stem: &str, ext: &str) -> bool {
    let mid = &name[stem.len() + 1..name.len() - ext.len()];
    let (stamp, n) = mid.split_at(mid.len().min(15));
    stamp.len() == 15
        && stamp.as_bytes()[8] == b'-'
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
        && (n.is_empty() || n[1..].bytes().all(|b| b.is_ascii_digit()) && n.starts_with('-'))
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap()
}

fn mode(p: impl AsRef<Path>) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn deleted_files_and_directories_are_kept_in_the_versions_folder() {
    let env = Env::new();
    write(env.src.join("a.txt"), "a, first");
    write(env.src.join(".bashrc"), "dotfile");
    write(env.src.join("sub/x.txt"), "x in sub");
    write(env.src.join("d/e/f"), "deep");
    write(env.src.join("d/g.bin"), bytes(3000, 1));
    once_v_ok(&env, &[]);
    assert!(versions(&env).is_empty(), "{:?}", versions(&env));

    fs::remove_file(env.src.join("a.txt")).unwrap();
    fs::remove_file(env.src.join(".bashrc")).unwrap();
    fs::remove_file(env.src.join("sub/x.txt")).unwrap();
    fs::remove_dir_all(env.src.join("d")).unwrap();
    once_v_ok(&env, &[]);

    let a = versions_of(&env, "", "a", ".txt");
    assert_eq!(a.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(&a[0]), "a, first");
    let dot = versions_of(&env, "", ".bashrc", "");
    assert_eq!(dot.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(&dot[0]), "dotfile");
    let x = versions_of(&env, "sub", "x", ".txt");
    assert_eq!(x.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(&x[0]), "x in sub");
    // A directory goes whole, in one rename.
    let d = versions_of(&env, "", "d", "");
    assert_eq!(d.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(d[0].join("e/f")), "deep");
    assert_eq!(fs::read(d[0].join("g.bin")).unwrap(), bytes(3000, 1));

    // Old versions are not readable to more people than the files were.
    assert_eq!(mode(env.rep.join(VERSIONS)), 0o700);
    assert_eq!(mode(env.rep.join(VERSIONS).join("sub")), 0o700);

    // The logfile keeps every structured record (the console shows people a short line).
    let stdout = env.log_text();
    for to in [&a[0], &d[0], &x[0]] {
        let to = to.strip_prefix(&env.rep).unwrap().display().to_string();
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("action: version") && l.contains(&format!("to: {to}"))),
            "no version record for {to}:\n{stdout}"
        );
    }
    assert!(stdout.contains("versions: 4"), "{stdout}");

    // A later pass leaves the versions alone (`--backup` is the same flag, rsync's word).
    let before = fingerprint(&env.rep.join(VERSIONS));
    let out = env.cmd(&["--once", "--backup"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored_besides_versions(&env);
    assert_eq!(fingerprint(&env.rep.join(VERSIONS)), before);
}

#[test]
fn overwritten_files_and_retargeted_symlinks_keep_the_old_one() {
    let env = Env::new();
    write(env.src.join("doc.txt"), "old bytes");
    write(env.src.join("sub/data.bin"), bytes(10_000, 2));
    symlink("doc.txt", env.src.join("link"));
    once_v_ok(&env, &[]);
    let doc_inode = inodes(&env.rep)[Path::new("doc.txt")];

    write(env.src.join("doc.txt"), "new bytes, longer");
    write(env.src.join("sub/data.bin"), bytes(10_000, 3));
    fs::remove_file(env.src.join("link")).unwrap();
    symlink("sub/data.bin", env.src.join("link"));
    once_v_ok(&env, &[]);

    let doc = versions_of(&env, "", "doc", ".txt");
    assert_eq!(doc.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(&doc[0]), "old bytes");
    // It is the old inode itself (linked, then the new copy renamed over the name).
    assert_eq!(
        inodes(&env.rep.join(VERSIONS))[doc[0].strip_prefix(env.rep.join(VERSIONS)).unwrap()],
        doc_inode
    );
    let data = versions_of(&env, "sub", "data", ".bin");
    assert_eq!(data.len(), 1, "{:?}", versions(&env));
    assert_eq!(fs::read(&data[0]).unwrap(), bytes(10_000, 2));
    let link = versions_of(&env, "", "link", "");
    assert_eq!(link.len(), 1, "{:?}", versions(&env));
    assert_eq!(fs::read_link(&link[0]).unwrap(), Path::new("doc.txt"));

    // A metadata-only change keeps no version.
    chmod(env.src.join("doc.txt"), 0o600);
    once_v_ok(&env, &[]);
    assert_eq!(versions_of(&env, "", "doc", ".txt").len(), 1);
}

#[test]
fn a_type_change_and_a_shared_inode_keep_what_they_replace() {
    let env = Env::new();
    write(env.src.join("x"), "x was a file");
    write(env.src.join("y/inside"), "y was a dir");
    write(env.src.join("shared.txt"), "shared");
    once_v_ok(&env, &[]);
    // A `cp -al` snapshot of REPLICA beside it: the replica file has another name.
    let snap = env.root().join("snapshot");
    mkdir(&snap);
    fs::hard_link(env.rep.join("shared.txt"), snap.join("shared.txt")).unwrap();

    fs::remove_file(env.src.join("x")).unwrap();
    write(env.src.join("x/now"), "x is a dir");
    fs::remove_dir_all(env.src.join("y")).unwrap();
    symlink("x", env.src.join("y"));
    chmod(env.src.join("shared.txt"), 0o600);
    once_v_ok(&env, &[]);

    let x = versions_of(&env, "", "x", "");
    assert_eq!(x.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(&x[0]), "x was a file");
    let y = versions_of(&env, "", "y", "");
    assert_eq!(y.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(y[0].join("inside")), "y was a dir");
    // Replaced, not changed in place: the snapshot keeps its mode, the old inode is kept.
    assert_eq!(versions_of(&env, "", "shared", ".txt").len(), 1);
    assert_eq!(mode(snap.join("shared.txt")), 0o644);
}

#[test]
fn retention_keeps_the_newest_n_per_name() {
    let env = Env::new();
    write(env.src.join("f.txt"), "v0");
    write(env.src.join("other.txt"), "other v0");
    once_v_ok(&env, &["--keep-versions", "2"]);
    for i in 1..=4 {
        // A different length each time: copied whatever the mtime granularity.
        write(env.src.join("f.txt"), format!("v{i}{}", "!".repeat(i)));
        once_v_ok(&env, &["--keep-versions", "2"]);
    }
    write(env.src.join("other.txt"), "other v1");
    once_v_ok(&env, &["--keep-versions", "2"]);
    let kept: BTreeSet<String> = versions_of(&env, "", "f", ".txt")
        .iter()
        .map(read)
        .collect();
    // v0..v3 were overwritten; the two newest of them are left.
    assert_eq!(
        kept,
        BTreeSet::from(["v2!!".to_owned(), "v3!!!".to_owned()]),
        "{:?}",
        versions(&env)
    );
    // Retention is per name: other.txt's one version is not counted against f.txt's.
    assert_eq!(versions_of(&env, "", "other", ".txt").len(), 1);
    assert!(
        env.log_text()
            .lines()
            .filter(|l| l.contains("action: prune"))
            .count()
            >= 2,
        "{}",
        env.log_text()
    );
}

#[test]
fn retention_by_age_reads_the_time_in_the_name_and_sweeps_the_folder() {
    let env = Env::new();
    write(env.src.join("f.txt"), "current");
    write(env.src.join("dir/g.txt"), "g");
    once_v_ok(&env, &[]);
    let v = env.rep.join(VERSIONS);
    let hour_ago = replwatch::versions::stamp(SystemTime::now() - Duration::from_secs(3600));
    // Versions from long ago (by their names), beside a recent one and a file of the user's.
    write(v.join("f~20200101-000000.txt"), "ancient f");
    write(v.join(format!("f~{hour_ago}.txt")), "recent f");
    write(v.join("old/deep/h~20200101-000000.md"), "ancient h");
    mkdir(v.join("gone~20200101-000000/inside"));
    write(v.join("dir/g~20200101-000000.txt"), "ancient g");
    write(v.join("README by me"), "not a version");

    // `forever`: nothing is pruned by age.
    once_v_ok(&env, &["--versions-max-age", "forever"]);
    assert!(v.join("f~20200101-000000.txt").exists());
    assert!(v.join("old/deep/h~20200101-000000.md").exists());

    // The default (30 days): a version kept for f.txt prunes its old one as it goes, and
    // the pass sweeps the rest of the folder, removing what that leaves empty.
    write(env.src.join("f.txt"), "current, changed");
    once_v_ok(&env, &[]);
    let left: BTreeSet<PathBuf> = versions(&env).into_iter().collect();
    assert!(
        !left.contains(Path::new("f~20200101-000000.txt")),
        "{left:?}"
    );
    assert!(
        left.contains(Path::new(&format!("f~{hour_ago}.txt"))),
        "{left:?}"
    );
    assert_eq!(versions_of(&env, "", "f", ".txt").len(), 2, "{left:?}");
    assert!(!left.contains(Path::new("old")), "{left:?}");
    assert!(
        !left.contains(Path::new("gone~20200101-000000")),
        "{left:?}"
    );
    assert!(
        !left.contains(Path::new("dir/g~20200101-000000.txt")),
        "{left:?}"
    );
    assert!(left.contains(Path::new("README by me")), "{left:?}");
    assert!(
        env.log_text().contains("action: prune"),
        "{}",
        env.log_text()
    );
}

#[test]
fn dry_run_lists_the_versions_it_would_keep_and_changes_nothing() {
    let env = Env::new();
    write(env.src.join("changed.txt"), "old");
    write(env.src.join("gone.txt"), "gone");
    write(env.src.join("d/e/f"), "deep");
    symlink("changed.txt", env.src.join("link"));
    once_v_ok(&env, &[]);
    fs::remove_dir(env.rep.join(VERSIONS)).unwrap();
    write(env.src.join("changed.txt"), "new, longer");
    write(env.src.join("added.txt"), "added");
    fs::remove_file(env.src.join("gone.txt")).unwrap();
    fs::remove_dir_all(env.src.join("d")).unwrap();
    fs::remove_file(env.src.join("link")).unwrap();
    symlink("added.txt", env.src.join("link"));
    let before = (fingerprint(&env.rep), inodes(&env.rep));

    let out = once_v(&env, &["-n"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(before, (fingerprint(&env.rep), inodes(&env.rep)));
    assert!(
        !env.rep.join(VERSIONS).exists(),
        "dry run made the versions folder"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "> file    changed.txt (changed, version kept)",
        "- file    gone.txt (extra, version kept)",
        "- dir     d (extra, 3 entries, version kept)",
        "+ symlink link (changed -> added.txt, version kept)",
        "+ file    added.txt (new)\n",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }

    // Without --versions the same plan keeps nothing, and says so by saying nothing.
    let out = env.cmd(&["--once", "-n"]).output().unwrap();
    let plain = String::from_utf8_lossy(&out.stdout);
    assert!(
        plain.contains("> file    changed.txt (changed)\n"),
        "{plain}"
    );
    assert!(!plain.contains("version kept"), "{plain}");

    // The real pass then keeps exactly those.
    once_v_ok(&env, &[]);
    assert_eq!(versions_of(&env, "", "changed", ".txt").len(), 1);
    assert_eq!(versions_of(&env, "", "gone", ".txt").len(), 1);
    assert_eq!(versions_of(&env, "", "d", "").len(), 1);
    assert_eq!(versions_of(&env, "", "link", "").len(), 1);
    assert_eq!(versions_of(&env, "", "added", ".txt").len(), 0);
}

#[test]
fn the_mirror_never_deletes_the_versions_folder() {
    let env = Env::new();
    write(env.src.join("a.txt"), "a");
    once_v_ok(&env, &[]);
    write(env.rep.join(VERSIONS).join("a~20261202-101500.txt"), "kept");
    write(
        env.rep.join(VERSIONS).join("sub/b~20261202-101500"),
        "kept too",
    );
    let before = fingerprint(&env.rep.join(VERSIONS));

    // Without --versions (a previous run used it), with a delete guard that counts it as
    // nothing, and with a source that is otherwise empty.
    let out = env
        .cmd(&[
            "--once",
            "--max-delete",
            "0",
            "--versions-max-age",
            "forever",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--versions-max-age needs --versions"
    );
    let out = env.cmd(&["--once", "--max-delete", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored_besides_versions(&env);
    assert_eq!(fingerprint(&env.rep.join(VERSIONS)), before);

    fs::remove_file(env.src.join("a.txt")).unwrap();
    write(env.src.join("b.txt"), "b");
    let out = env.cmd(&["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored_besides_versions(&env);
    assert_eq!(fingerprint(&env.rep.join(VERSIONS)), before);
    let dry = env.cmd(&["--once", "-n"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&dry.stdout).contains(VERSIONS),
        "{}",
        describe(&dry)
    );

    // An empty SRC against a REPLICA holding only the versions folder is no emptying.
    fs::remove_file(env.src.join("b.txt")).unwrap();
    fs::remove_file(env.rep.join("b.txt")).unwrap();
    let out = env.cmd(&["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(fingerprint(&env.rep.join(VERSIONS)), before);
}

#[test]
fn a_source_entry_with_the_reserved_name_is_reported_not_mirrored() {
    let env = Env::new();
    write(env.src.join("ok.txt"), "ok");
    write(env.src.join(VERSIONS).join("theirs.txt"), "from SRC");
    // Only the root's name is reserved.
    write(
        env.src.join("sub").join(VERSIONS).join("deeper.txt"),
        "mirrored",
    );
    for extra in [&[][..], &["--versions"][..]] {
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        let out = env.cmd(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("not mirrored: {VERSIONS}: reserved name")),
            "{stdout}"
        );
        assert_eq!(read(env.rep.join("ok.txt")), "ok");
        assert_eq!(
            read(env.rep.join("sub").join(VERSIONS).join("deeper.txt")),
            "mirrored"
        );
        assert!(!env.rep.join(VERSIONS).join("theirs.txt").exists());
    }
}

#[test]
fn a_version_that_cannot_be_kept_leaves_the_entry_in_place_and_exits_3() {
    let env = Env::new();
    write(env.src.join("sub/x.txt"), "x, keep me");
    write(env.src.join("sub/y.txt"), "y, old");
    write(env.src.join("sub/dir/z"), "z");
    write(env.src.join("top.txt"), "top");
    once_v_ok(&env, &[]);
    // A plain file squats where the versions of sub/ should go.
    write(env.rep.join(VERSIONS).join("sub"), "squatter");

    fs::remove_file(env.src.join("sub/x.txt")).unwrap();
    write(env.src.join("sub/y.txt"), "y, new and longer");
    fs::remove_dir_all(env.src.join("sub/dir")).unwrap();
    fs::remove_file(env.src.join("top.txt")).unwrap();
    let out = once_v(&env, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(read(env.rep.join("sub/x.txt")), "x, keep me");
    assert_eq!(read(env.rep.join("sub/y.txt")), "y, old");
    assert_eq!(read(env.rep.join("sub/dir/z")), "z");
    assert_eq!(read(env.rep.join(VERSIONS).join("sub")), "squatter");
    assert!(
        temp_files(&env.rep).is_empty(),
        "{:?}",
        temp_files(&env.rep)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for path in ["sub/x.txt", "sub/y.txt", "sub/dir"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("failed: {path}: cannot keep a version"))),
            "no fault for {path}:\n{stdout}"
        );
    }
    // Elsewhere the pass went on.
    assert!(!env.rep.join("top.txt").exists());
    assert_eq!(versions_of(&env, "", "top", ".txt").len(), 1);
}

/// Without root, moving a read-only directory (a 0555 module cache) to another parent is
/// refused until it is writable: it is made so, as removing it would have, and kept whole.
#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn a_read_only_tree_removed_without_root_is_kept_whole() {
    let Some(setpriv) = find_setpriv() else {
        return eprintln!("skipped: setpriv not found");
    };
    let env = Env::new();
    write(env.src.join("cache/mod/a.go"), "package a");
    write(env.src.join("keep.txt"), "k");
    open_to_nobody(&env);
    chmod(env.src.join("cache/mod"), 0o555);
    chmod(env.src.join("cache"), 0o555);
    let out = as_nobody(&env, &setpriv, &["--once", "--versions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(mode(env.rep.join("cache")), 0o555);

    chmod(env.src.join("cache"), 0o755);
    chmod(env.src.join("cache/mod"), 0o755);
    fs::remove_dir_all(env.src.join("cache")).unwrap();
    let out = as_nobody(&env, &setpriv, &["--once", "--versions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!env.rep.join("cache").exists());
    let kept = versions_of(&env, "", "cache", "");
    assert_eq!(kept.len(), 1, "{:?}", versions(&env));
    assert_eq!(read(kept[0].join("mod/a.go")), "package a");
}

#[test]
fn live_mode_keeps_versions_of_an_rm_rf_and_an_overwrite() {
    let _g = crate::live::serial();
    let env = env_with(&[
        ("doc.txt", b"old doc"),
        ("tree/a/b.txt", b"b"),
        ("tree/c.txt", b"c"),
    ]);
    let _live = Live::with_extra(&env, "10m", "5m", &["--versions"]);
    wait_until(CONVERGE, || env.rep.join("tree/a/b.txt").exists());

    fs::remove_dir_all(env.src.join("tree")).unwrap();
    write(env.src.join("doc.txt"), "new doc, longer");
    let done = wait_until(CONVERGE, || {
        !env.rep.join("tree").exists()
            && fs::read_to_string(env.rep.join("doc.txt")).ok().as_deref()
                == Some("new doc, longer")
            && versions_of(&env, "", "tree", "").len() == 1
            && versions_of(&env, "", "doc", ".txt").len() == 1
    });
    assert!(done, "not versioned: {:?}", versions(&env));
    let tree = &versions_of(&env, "", "tree", "")[0];
    assert_eq!(read(tree.join("a/b.txt")), "b");
    assert_eq!(read(tree.join("c.txt")), "c");
    assert_eq!(read(&versions_of(&env, "", "doc", ".txt")[0]), "old doc");
    assert!(
        wait_until(CONVERGE, || diff_besides_versions(&env).is_empty()),
        "{:?}",
        diff_besides_versions(&env)
    );
}

/// A rename in SRC over an existing name is mirrored as a rename in REPLICA: what it replaces
/// there is kept first.
#[test]
fn live_mode_keeps_what_a_rename_replaces() {
    let _g = crate::live::serial();
    let env = env_with(&[("draft.txt", b"the draft"), ("final.txt", b"the old final")]);
    let live = Live::with_extra(&env, "10m", "5m", &["--versions"]);
    wait_until(CONVERGE, || diff_besides_versions(&env).is_empty());
    let draft_inode = inodes(&env.rep)[Path::new("draft.txt")];

    fs::rename(env.src.join("draft.txt"), env.src.join("final.txt")).unwrap();
    let done = wait_until(CONVERGE, || {
        diff_besides_versions(&env).is_empty() && versions_of(&env, "", "final", ".txt").len() == 1
    });
    assert!(
        done,
        "{:?} {:?}",
        diff_besides_versions(&env),
        versions(&env)
    );
    assert_eq!(
        read(&versions_of(&env, "", "final", ".txt")[0]),
        "the old final"
    );
    // Mirrored as a rename, not a copy.
    assert_eq!(inodes(&env.rep)[Path::new("final.txt")], draft_inode);
    live.wait_log(&["action: rename", "path: final.txt"], LOG_WAIT);
}
