//! One-shot mirror (`--once`) edge cases, end to end through the binary.
//!
//! Each test builds a SRC (and often a pre-seeded REPLICA), runs one or more passes and
//! checks the replica with `assert_mirrored` plus whatever the case is really about (inodes
//! kept, outside folders untouched, log summary counts, ...).
use crate::support::*;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

// ---- local helpers ----

/// `--once` plus `extra`; must exit 0.
fn pass(env: &Env, extra: &[&str]) -> Output {
    let mut args = vec!["--once"];
    args.extend_from_slice(extra);
    let out = env.cmd(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    out
}

/// The last `pass done` line of the logfile.
fn last_summary(env: &Env) -> String {
    let log = env.log_text();
    log.lines()
        .rev()
        .find(|l| l.contains("pass done"))
        .unwrap_or_else(|| panic!("no `pass done` line in the log:\n{log}"))
        .to_owned()
}

/// A counter of a `pass done` line, e.g. `count(&line, "created")`.
fn count(summary: &str, key: &str) -> u64 {
    let pat = format!(", {key}: ");
    let start = summary
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
        + pat.len();
    summary[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("bad {key} in {summary}"))
}

fn ino(p: impl AsRef<Path>) -> u64 {
    p.as_ref().symlink_metadata().unwrap().ino()
}

fn mode(p: impl AsRef<Path>) -> u32 {
    p.as_ref().symlink_metadata().unwrap().mode() & 0o7777
}

fn mtime(p: impl AsRef<Path>) -> (i64, i64) {
    let m = p.as_ref().symlink_metadata().unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn mkfifo(path: impl AsRef<Path>) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path.as_ref(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// Everything about every entry below `root` (specials included) that reading must not
/// change: inode, type and mode, link count, size, mtime and ctime to the nanosecond.
/// ctime moves on any write, chmod, chown, utime, link or rename, so this catches them all.
fn stat_snapshot(root: &Path) -> BTreeMap<PathBuf, [i64; 8]> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                [
                    m.ino() as i64,
                    m.mode() as i64,
                    m.nlink() as i64,
                    m.size() as i64,
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                ],
            )
        })
        .collect()
}

/// 360 files (0 bytes to ~12 KB) in 76 directories, three levels deep.
fn build_many(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in 0..36 {
        let dir = src
            .join(format!("top{}", d % 4))
            .join(format!("mid{}", d % 9))
            .join(format!("leaf{d}"));
        mkdir(&dir);
        for f in 0..10 {
            let i = d * 10 + f;
            let p = dir.join(format!("file{i:03}.bin"));
            write(&p, bytes((i * 37) % 12_000, i as u64));
            set_mtime(
                &p,
                1_500_000_000 + i as i64,
                (i * 7919) as u32 % 1_000_000_000,
            );
            files.push(p);
        }
    }
    files
}

// ---- names ----

#[test]
fn unusual_names_are_mirrored_exactly() {
    let env = Env::new();
    let long_ascii = "a".repeat(255);
    let long_utf8 = format!("{}x", "é".repeat(127)); // 255 bytes
    assert_eq!(long_utf8.len(), 255);
    let names: Vec<OsString> = [
        "héllo wörld.txt",
        "日本語ファイル",
        "emoji 🦀.rs",
        "  leading and trailing spaces  ",
        "tab\there",
        "new\nline",
        "-rf",
        "--help",
        "-",
        ".hidden",
        "..dots..",
        "back\\slash",
        &long_ascii,
        &long_utf8,
    ]
    .iter()
    .map(OsString::from)
    .chain([os(b"bad\xff").to_owned(), os(b"caf\xe9 latin1").to_owned()])
    .collect();
    for (i, n) in names.iter().enumerate() {
        write(env.src.join(n), bytes(100 + i, i as u64));
    }
    // The same names as directories (with a file inside) and as symlink targets.
    for (i, n) in names.iter().enumerate() {
        let d = env.src.join("dirs").join(n);
        write(d.join(n), bytes(10 + i, 1000 + i as u64));
        symlink(n, env.src.join("links").join(n));
    }
    symlink(os(b"target\xfe"), env.src.join("non_utf8_target"));

    env.once_ok();
    for n in &names {
        assert!(
            env.rep.join(n).symlink_metadata().unwrap().is_file(),
            "{n:?}"
        );
        assert!(env.rep.join("dirs").join(n).join(n).is_file(), "{n:?}");
        assert_eq!(
            fs::read_link(env.rep.join("links").join(n)).unwrap(),
            Path::new(n)
        );
    }
    assert!(
        temp_files(&env.rep).is_empty(),
        "{:?}",
        temp_files(&env.rep)
    );

    // Updating files with near-limit names: the temp name must still fit in 255 bytes.
    for n in [&long_ascii, &long_utf8] {
        write(env.src.join(n), "changed, different size");
    }
    write(env.src.join(os(b"bad\xff")), "changed too");
    env.once_ok();
    assert_eq!(
        fs::read(env.rep.join(&long_ascii)).unwrap(),
        b"changed, different size"
    );
    assert!(temp_files(&env.rep).is_empty());
}

// ---- metadata ----

#[test]
fn nested_empty_dirs_are_mirrored_with_their_mtimes() {
    let env = Env::new();
    mkdir(env.src.join("e1/e2/e3"));
    mkdir(env.src.join("e4"));
    mkdir(env.src.join("full/empty_inside"));
    write(env.src.join("full/file"), "x");
    // Deepest first: setting a child's times does not touch its parent's mtime.
    set_mtime(env.src.join("e1/e2/e3"), 1_111_111_111, 111);
    set_mtime(env.src.join("e1/e2"), 1_222_222_222, 222);
    set_mtime(env.src.join("e1"), 1_333_333_333, 333);
    set_mtime(env.src.join("e4"), 1_444_444_444, 444);
    set_mtime(env.src.join("full/empty_inside"), 1_555_555_555, 555);
    set_mtime(env.src.join("full"), 1_666_666_666, 666);
    set_mtime(&env.src, 1_777_777_777, 777);

    env.once_ok();
    for d in ["e1/e2/e3", "e1/e2", "e1", "e4", "full/empty_inside", "full"] {
        let r = env.rep.join(d);
        assert!(r.symlink_metadata().unwrap().is_dir(), "{d}");
        assert_eq!(mtime(&r), mtime(env.src.join(d)), "{d}");
    }
    assert_eq!(fs::read_dir(env.rep.join("e1/e2/e3")).unwrap().count(), 0);
    assert_eq!(mtime(&env.rep), (1_777_777_777, 777));
}

#[test]
fn nanosecond_mtimes_on_files_dirs_and_symlinks() {
    let env = Env::new();
    let cases: [(&str, i64, u32); 7] = [
        ("f_one_ns", 1_600_000_000, 1),
        ("f_max_ns", 1_600_000_000, 999_999_999),
        ("f_before_1970", -31_536_000, 500),
        ("f_year_2100", 4_102_444_800, 42),
        ("d/inner", 1_500_000_000, 7),
        ("d", 1_400_000_000, 123_456_789),
        ("link", 1_300_000_000, 987_654_321),
    ];
    write(env.src.join("f_one_ns"), "a");
    write(env.src.join("f_max_ns"), "b");
    write(env.src.join("f_before_1970"), "c");
    write(env.src.join("f_year_2100"), "d");
    write(env.src.join("d/inner"), "e");
    symlink("f_one_ns", env.src.join("link"));
    for (p, s, ns) in cases {
        set_mtime(env.src.join(p), s, ns);
    }
    set_mtime(&env.src, 1_200_000_000, 1);

    env.once_ok();
    for (p, s, ns) in cases {
        assert_eq!(mtime(env.rep.join(p)), (s, ns as i64), "{p}");
    }
    assert!(
        env.rep
            .join("link")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
    assert_eq!(mtime(&env.rep), (1_200_000_000, 1));
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn permission_bits_are_mirrored() {
    let env = Env::new();
    let mut files: Vec<(&str, u32)> = vec![
        ("exec.sh", 0o755),
        ("plain", 0o644),
        ("private", 0o600),
        ("readonly", 0o444),
        ("setuid", 0o4755),
        ("setgid_file", 0o2755),
        ("sg/in_setgid", 0o640),
        ("ro_dir/inside", 0o644),
    ];
    let mut dirs: Vec<(&str, u32)> = vec![
        ("sg", 0o2775),
        ("private_dir", 0o700),
        ("sticky", 0o1777),
        ("ro_dir", 0o555),
    ];
    if is_root() {
        // Only root can read these back out of SRC.
        files.push(("none", 0o000));
        files.push(("none_dir/inside", 0o000));
        dirs.push(("none_dir", 0o000));
    } else {
        eprintln!("note: 0o000 entries left out: reading them needs root");
    }
    for (f, _) in &files {
        write(env.src.join(f), format!("contents of {f}"));
    }
    for (d, _) in &dirs {
        mkdir(env.src.join(d));
    }
    write(env.src.join("private_dir/x"), "x");
    write(env.src.join("sticky/x"), "x");
    // A subdir of a setgid dir inherits setgid; make this one explicitly plain.
    mkdir(env.src.join("sg/plain_sub"));
    chmod(env.src.join("sg/plain_sub"), 0o755);
    for (f, m) in &files {
        chmod(env.src.join(f), *m);
    }
    for (d, m) in &dirs {
        chmod(env.src.join(d), *m);
    }

    env.once_ok();
    for (p, m) in files.iter().chain(&dirs) {
        assert_eq!(
            mode(env.rep.join(p)),
            *m,
            "{p}: {:o}",
            mode(env.rep.join(p))
        );
    }
    assert_eq!(mode(env.rep.join("sg/plain_sub")), 0o755);

    // And nothing to do on a second pass.
    let before = inodes(&env.rep);
    env.once_ok();
    assert_eq!(before, inodes(&env.rep));
    let s = last_summary(&env);
    assert_eq!((count(&s, "updated"), count(&s, "meta")), (0, 0), "{s}");

    // Let the tempdir clean up as any user.
    for (d, _) in &dirs {
        let _ = fs::set_permissions(env.src.join(d), fs::Permissions::from_mode(0o755));
        let _ = fs::set_permissions(env.rep.join(d), fs::Permissions::from_mode(0o755));
    }
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn owner_and_group_are_mirrored_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    write(env.src.join("f"), "owned");
    write(env.src.join("d/g"), "owned too");
    symlink("f", env.src.join("l"));
    std::os::unix::fs::chown(env.src.join("f"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::chown(env.src.join("d"), Some(4321), Some(8765)).unwrap();
    std::os::unix::fs::lchown(env.src.join("l"), Some(1111), Some(2222)).unwrap();

    env.once_ok();
    let owner = |p: &str| {
        let m = env.rep.join(p).symlink_metadata().unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("f"), (1234, 5678));
    assert_eq!(owner("d"), (4321, 8765));
    assert_eq!(owner("d/g"), (0, 0));
    assert_eq!(owner("l"), (1111, 2222));

    // An owner-only change is a metadata fix, not a copy.
    let before = ino(env.rep.join("f"));
    std::os::unix::fs::chown(env.src.join("f"), Some(99), Some(98)).unwrap();
    env.once_ok();
    assert_eq!(owner("f"), (99, 98));
    assert_eq!(
        ino(env.rep.join("f")),
        before,
        "owner change recopied the file"
    );
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn owner_change_keeps_setuid_bit_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    write(env.src.join("prog"), "#!/bin/sh\n");
    chmod(env.src.join("prog"), 0o4755);
    write(env.src.join("sgid"), "#!/bin/sh\n");
    chmod(env.src.join("sgid"), 0o2755);
    env.once_ok();
    assert_eq!(mode(env.rep.join("prog")), 0o4755);

    // chown clears setuid/setgid (also for root), so set the bits again after it: SRC ends
    // with the same mode and mtime as before, only the owner differs from the replica.
    for f in ["prog", "sgid"] {
        std::os::unix::fs::chown(env.src.join(f), Some(1234), Some(5678)).unwrap();
    }
    chmod(env.src.join("prog"), 0o4755);
    chmod(env.src.join("sgid"), 0o2755);
    env.once_ok(); // asserts the replica equals SRC, modes included
    assert_eq!(mode(env.rep.join("prog")), 0o4755);
    assert_eq!(mode(env.rep.join("sgid")), 0o2755);
}

// ---- type conflicts ----

#[test]
fn every_type_conflict_is_resolved() {
    let env = Env::new();
    // SRC side.
    write(env.src.join("file_over_dir"), "file in src");
    write(env.src.join("file_over_link"), "file in src");
    write(env.src.join("dir_over_file/child"), "child");
    write(env.src.join("dir_over_link/child"), "child");
    symlink("file_over_dir", env.src.join("link_over_file"));
    symlink("dir_over_file", env.src.join("link_over_dir"));
    // REPLICA side: the other kind under each name.
    write(
        env.rep.join("file_over_dir/deep/nested/x"),
        "replica dir with contents",
    );
    write(env.rep.join("file_over_dir/y"), "y");
    symlink("somewhere", env.rep.join("file_over_link"));
    write(env.rep.join("dir_over_file"), "replica file");
    symlink("dangling", env.rep.join("dir_over_link"));
    write(env.rep.join("link_over_file"), "replica file");
    write(
        env.rep.join("link_over_dir/a/b"),
        "replica dir with contents",
    );

    env.once_ok();
    let kind = |p: &str| env.rep.join(p).symlink_metadata().unwrap().file_type();
    assert!(kind("file_over_dir").is_file());
    assert!(kind("file_over_link").is_file());
    assert!(kind("dir_over_file").is_dir());
    assert!(kind("dir_over_link").is_dir());
    assert!(kind("link_over_file").is_symlink());
    assert!(kind("link_over_dir").is_symlink());
    let log = env.log_text();
    let type_changes = log
        .lines()
        .filter(|l| l.contains("action: remove") && l.contains("reason: type-change"))
        .count();
    assert_eq!(type_changes, 6, "{log}");
}

// ---- extras, temps, missing roots ----

#[test]
fn extra_entries_in_the_replica_are_removed() {
    let env = Env::new();
    write(env.src.join("keep/a"), "a");
    mkdir(env.src.join("keep/sub"));
    write(env.rep.join("keep/a"), "old");
    write(env.rep.join("extra_file"), "x");
    write(env.rep.join("extra_dir/deep/er/f"), "x");
    mkdir(env.rep.join("extra_dir/empty"));
    write(env.rep.join("keep/extra_in_kept"), "x");
    write(env.rep.join("keep/sub/extra/deeper/g"), "x");
    symlink("keep", env.rep.join("extra_link_to_dir"));
    symlink("nowhere", env.rep.join("keep/extra_dangling"));
    chmod(env.rep.join("extra_dir/deep"), 0o500); // a read-only dir in the way

    env.once_ok();
    for gone in [
        "extra_file",
        "extra_dir",
        "keep/extra_in_kept",
        "keep/sub/extra",
        "extra_link_to_dir",
        "keep/extra_dangling",
    ] {
        assert!(env.rep.join(gone).symlink_metadata().is_err(), "{gone}");
    }
    let s = last_summary(&env);
    assert_eq!(count(&s, "removed"), 6, "{s}");
}

#[test]
fn stale_temp_files_are_removed() {
    let env = Env::new();
    write(env.src.join("x"), "x");
    write(env.src.join("d/y"), "y");
    write(env.rep.join(".x.replwatch-abc123.tmp"), "half a file");
    write(env.rep.join("d/.y.replwatch-zz9zz9.tmp"), "half a file");
    write(env.rep.join("d/.gone.replwatch-000000.tmp"), "half a file");
    assert_eq!(temp_files(&env.rep).len(), 3);

    env.once_ok();
    assert!(
        temp_files(&env.rep).is_empty(),
        "{:?}",
        temp_files(&env.rep)
    );
    let log = env.log_text();
    assert_eq!(log.matches("reason: stale-temp").count(), 3, "{log}");
}

#[test]
fn stale_temp_in_otherwise_empty_replica_is_removed_even_with_empty_source() {
    // The empty-source guard must not count a leftover temp file as replica contents.
    let env = Env::new();
    write(env.rep.join(".f.replwatch-abc123.tmp"), "half a file");
    env.once_ok();
    assert!(temp_files(&env.rep).is_empty());
}

#[test]
fn source_file_with_a_temp_like_name_is_mirrored() {
    // Only replica-only entries are "stale temps"; a SRC file of that name is data.
    let env = Env::new();
    write(env.src.join(".x.replwatch-abc123.tmp"), "real data");
    env.once_ok();
    assert_eq!(
        fs::read(env.rep.join(".x.replwatch-abc123.tmp")).unwrap(),
        b"real data"
    );
    env.once_ok();
}

#[test]
fn missing_replica_root_is_created() {
    let env = Env::new();
    write(env.src.join("a"), "a");
    assert!(!env.rep.exists());
    env.once_ok();
    assert!(env.rep.is_dir());
}

#[test]
fn missing_replica_root_with_missing_parents_is_created() {
    let env = Env::new();
    write(env.src.join("a/b"), "b");
    let rep = env.root().join("x/y/z/rep");
    let out = replwatch()
        .arg("-s")
        .arg(&env.src)
        .arg("-r")
        .arg(&rep)
        .arg("-l")
        .arg(&env.logs)
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &rep);
}

// ---- quick check and metadata-only changes ----

#[test]
fn same_size_same_mtime_change_is_not_recopied_without_checksum() {
    let env = Env::new();
    write(env.src.join("f"), "aaaa");
    write(env.src.join("g"), "unchanged");
    set_mtime(env.src.join("f"), 1_600_000_000, 5);
    env.once_ok();
    let f_ino = ino(env.rep.join("f"));
    let g_ino = ino(env.rep.join("g"));

    // Same size, mtime put back: the quick check (size + mtime) cannot see it.
    write(env.src.join("f"), "bbbb");
    set_mtime(env.src.join("f"), 1_600_000_000, 5);
    pass(&env, &[]);
    assert_eq!(ino(env.rep.join("f")), f_ino, "recopied without --checksum");
    assert_eq!(fs::read(env.rep.join("f")).unwrap(), b"aaaa");
    assert_eq!(count(&last_summary(&env), "updated"), 0);

    // --checksum compares contents and fixes it; the unchanged file is left alone.
    pass(&env, &["--checksum"]);
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(fs::read(env.rep.join("f")).unwrap(), b"bbbb");
    assert_eq!(
        ino(env.rep.join("g")),
        g_ino,
        "--checksum recopied an equal file"
    );
    let s = last_summary(&env);
    assert_eq!(count(&s, "updated"), 1, "{s}");
}

#[test]
fn mode_only_change_fixes_metadata_without_recopy() {
    let env = Env::new();
    write(env.src.join("f"), "data");
    write(env.src.join("d/x"), "x");
    chmod(env.src.join("f"), 0o644);
    env.once_ok();
    let (f_ino, d_ino) = (ino(env.rep.join("f")), ino(env.rep.join("d")));

    chmod(env.src.join("f"), 0o600);
    chmod(env.src.join("d"), 0o750);
    env.once_ok();
    assert_eq!(mode(env.rep.join("f")), 0o600);
    assert_eq!(mode(env.rep.join("d")), 0o750);
    assert_eq!(
        ino(env.rep.join("f")),
        f_ino,
        "mode change recopied the file"
    );
    assert_eq!(ino(env.rep.join("d")), d_ino);
    let s = last_summary(&env);
    assert_eq!((count(&s, "updated"), count(&s, "meta")), (0, 2), "{s}");
}

#[test]
fn mtime_only_change_of_dir_and_symlink_fixes_metadata_without_recopy() {
    let env = Env::new();
    write(env.src.join("d/x"), "x");
    symlink("d", env.src.join("l"));
    env.once_ok();
    let before = inodes(&env.rep);

    set_mtime(env.src.join("d"), 1_000_000_000, 1);
    set_mtime(env.src.join("l"), 1_000_000_001, 2);
    env.once_ok();
    assert_eq!(before, inodes(&env.rep));
    let s = last_summary(&env);
    assert_eq!((count(&s, "updated"), count(&s, "meta")), (0, 2), "{s}");
}

#[test]
fn mtime_only_change_of_file_with_checksum_fixes_metadata_without_recopy() {
    let env = Env::new();
    write(env.src.join("f"), "data");
    env.once_ok();
    let f_ino = ino(env.rep.join("f"));

    set_mtime(env.src.join("f"), 1_000_000_000, 999);
    pass(&env, &["--checksum"]);
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(ino(env.rep.join("f")), f_ino, "equal contents recopied");
    let s = last_summary(&env);
    assert_eq!((count(&s, "updated"), count(&s, "meta")), (0, 1), "{s}");
}

#[test]
fn mtime_only_change_of_file_without_checksum_is_mirrored() {
    // Without --checksum a different mtime is all the quick check has to go on: like rsync,
    // the file may have changed (same size), so it must end up exactly like SRC. The
    // companion case below shows why it cannot be a metadata-only fix.
    let env = Env::new();
    write(env.src.join("f"), "data");
    env.once_ok();
    set_mtime(env.src.join("f"), 1_000_000_000, 999);
    env.once_ok();
    assert_eq!(mtime(env.rep.join("f")), (1_000_000_000, 999));
    assert_eq!(fs::read(env.rep.join("f")).unwrap(), b"data");
}

#[test]
fn same_size_content_change_with_new_mtime_is_recopied_without_checksum() {
    let env = Env::new();
    write(env.src.join("f"), "aaaa");
    set_mtime(env.src.join("f"), 1_600_000_000, 0);
    env.once_ok();
    write(env.src.join("f"), "bbbb");
    set_mtime(env.src.join("f"), 1_600_000_001, 0);
    env.once_ok();
    assert_eq!(fs::read(env.rep.join("f")).unwrap(), b"bbbb");
}

// ---- idempotence ----

#[test]
fn second_pass_changes_nothing() {
    let env = Env::new();
    write(env.src.join("a/b/c.txt"), "hello");
    write(env.src.join("a/empty_file"), "");
    mkdir(env.src.join("empty/dir"));
    symlink("a/b/c.txt", env.src.join("link"));
    symlink("nowhere", env.src.join("a/dangling"));
    chmod(env.src.join("a/b/c.txt"), 0o640);
    set_mtime(env.src.join("a/b"), 1_000_000_000, 123_456_789);
    set_mtime(env.src.join("a"), 1_000_000_001, 5);
    env.once_ok();
    let first = last_summary(&env);
    assert!(count(&first, "created") >= 8, "{first}");

    let before = inodes(&env.rep);
    let fp = fingerprint(&env.rep);
    env.once_ok();
    assert_eq!(before, inodes(&env.rep), "second pass replaced entries");
    assert_eq!(fp, fingerprint(&env.rep));
    let s = last_summary(&env);
    for key in ["created", "updated", "meta", "removed", "renamed", "errors"] {
        assert_eq!(count(&s, key), 0, "{key} in {s}");
    }
    assert_eq!(count(&s, "scanned"), count(&first, "scanned"));
}

// ---- symlink safety ----

#[test]
fn replica_symlink_to_outside_dir_is_not_followed_when_source_has_a_dir() {
    let env = Env::new();
    let outside = env.root().join("outside");
    write(outside.join("a.txt"), "outside a");
    write(outside.join("keep.txt"), "outside only");
    write(outside.join("sub/b"), "outside b");
    let outside2 = env.root().join("outside2");
    write(outside2.join("x/y"), "outside2");
    let fp = fingerprint(&outside);
    let fp2 = fingerprint(&outside2);

    // SRC has real dirs whose names the replica holds as links out of the tree; the same
    // file names, so a write through the link would clobber outside files, and no
    // keep.txt, so a delete through the link would remove one.
    write(env.src.join("d/a.txt"), "source a");
    write(env.src.join("d/sub/b"), "source b");
    write(env.src.join("d/new.txt"), "new");
    write(env.src.join("n/x/y"), "source y");
    symlink(&outside, env.rep.join("d"));
    symlink("../../outside2", env.rep.join("n/x"));

    env.once_ok();
    assert_eq!(fp, fingerprint(&outside), "outside dir was changed");
    assert_eq!(fp2, fingerprint(&outside2), "outside2 was changed");
    assert!(env.rep.join("d").symlink_metadata().unwrap().is_dir());
    assert!(env.rep.join("n/x").symlink_metadata().unwrap().is_dir());
}

#[test]
fn replica_symlink_to_outside_file_is_not_written_through() {
    let env = Env::new();
    let outside = env.root().join("outside_file");
    write(&outside, "outside, do not touch");
    chmod(&outside, 0o600);
    set_mtime(&outside, 1_000_000_000, 0);
    let fp = fingerprint(&outside);

    write(env.src.join("f"), "source data, different size");
    chmod(env.src.join("f"), 0o755);
    symlink(&outside, env.rep.join("f"));

    env.once_ok();
    assert_eq!(fp, fingerprint(&outside), "outside file was changed");
    assert_eq!(fs::read(&outside).unwrap(), b"outside, do not touch");
    assert!(env.rep.join("f").symlink_metadata().unwrap().is_file());
}

#[test]
fn replica_symlink_to_outside_file_with_matching_size_and_mtime_is_replaced() {
    // A link whose target looks like the source file (same size and mtime) is still a link.
    let env = Env::new();
    let outside = env.root().join("outside_file");
    write(&outside, "1234");
    set_mtime(&outside, 1_000_000_000, 0);
    let fp = fingerprint(&outside);
    write(env.src.join("f"), "abcd");
    set_mtime(env.src.join("f"), 1_000_000_000, 0);
    symlink(&outside, env.rep.join("f"));

    env.once_ok();
    assert_eq!(fp, fingerprint(&outside));
    assert_eq!(fs::read(env.rep.join("f")).unwrap(), b"abcd");
}

#[test]
fn extra_replica_symlink_to_outside_dir_is_removed_as_a_link() {
    let env = Env::new();
    let outside = env.root().join("outside");
    write(outside.join("precious"), "keep me");
    write(outside.join("deep/er"), "me too");
    let fp = fingerprint(&outside);
    write(env.src.join("a"), "a");
    symlink(&outside, env.rep.join("escape"));
    symlink(&outside, env.rep.join("sub/escape2"));

    env.once_ok();
    assert!(env.rep.join("escape").symlink_metadata().is_err());
    assert_eq!(fp, fingerprint(&outside), "outside dir was changed");
    assert!(outside.join("precious").is_file());
}

#[test]
fn symlinks_are_copied_as_links_never_followed() {
    let env = Env::new();
    write(env.src.join("dir/inner"), "inner");
    write(env.src.join("file"), "file");
    let outside = env.root().join("outside");
    write(outside.join("big"), bytes(10_000, 1));
    symlink("does/not/exist", env.src.join("dangling"));
    symlink("dir", env.src.join("to_dir"));
    symlink("file", env.src.join("to_file"));
    symlink(&outside, env.src.join("absolute_outside"));
    symlink("/etc/passwd", env.src.join("absolute_file"));
    symlink("../../../..", env.src.join("dir/up_up"));
    symlink("self_loop", env.src.join("self_loop"));

    env.once_ok();
    for (l, t) in [
        ("dangling", PathBuf::from("does/not/exist")),
        ("to_dir", PathBuf::from("dir")),
        ("to_file", PathBuf::from("file")),
        ("absolute_outside", outside.clone()),
        ("absolute_file", PathBuf::from("/etc/passwd")),
        ("dir/up_up", PathBuf::from("../../../..")),
        ("self_loop", PathBuf::from("self_loop")),
    ] {
        let p = env.rep.join(l);
        assert!(p.symlink_metadata().unwrap().is_symlink(), "{l}");
        assert_eq!(fs::read_link(&p).unwrap(), t, "{l}");
    }
    // Nothing was copied from behind a link.
    assert!(temp_files(&env.rep).is_empty());
    assert_eq!(inodes(&env.rep).len(), inodes(&env.src).len());
}

#[test]
fn hard_links_stay_hard_links_unless_turned_off() {
    let env = Env::new();
    write(env.src.join("a"), "shared");
    fs::hard_link(env.src.join("a"), env.src.join("b")).unwrap();
    mkdir(env.src.join("d"));
    fs::hard_link(env.src.join("a"), env.src.join("d/c")).unwrap();
    assert_eq!(ino(env.src.join("a")), ino(env.src.join("b")));

    env.once_ok();
    let (a, b, c) = (env.rep.join("a"), env.rep.join("b"), env.rep.join("d/c"));
    for p in [&a, &b, &c] {
        assert_eq!(fs::read(p).unwrap(), b"shared");
        assert_eq!(p.metadata().unwrap().nlink(), 3, "{}", p.display());
    }
    assert_eq!(ino(&a), ino(&b));
    assert_eq!(ino(&a), ino(&c));

    fs::remove_dir_all(&env.rep).unwrap();
    let out = env.cmd(&["--once", "--no-hard-links"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    for p in [&a, &b, &c] {
        assert_eq!(fs::read(p).unwrap(), b"shared");
        assert_eq!(p.metadata().unwrap().nlink(), 1, "{}", p.display());
    }
    assert_ne!(ino(&a), ino(&b));
    assert_ne!(ino(&a), ino(&c));
    assert_ne!(ino(&b), ino(&c));
}

// ---- special files ----

#[test]
fn fifo_and_socket_are_skipped_with_a_warning() {
    let env = Env::new();
    write(env.src.join("regular"), "r");
    mkfifo(env.src.join("fifo"));
    mkdir(env.src.join("d"));
    mkfifo(env.src.join("d/fifo2"));
    let _sock = std::os::unix::net::UnixListener::bind(env.src.join("sock")).unwrap();
    // The replica holds a file where SRC has a fifo: it is not SRC's, so it goes.
    write(env.rep.join("fifo"), "stale");

    let out = env.once();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    for p in ["fifo", "d/fifo2", "sock"] {
        assert!(
            env.rep.join(p).symlink_metadata().is_err(),
            "{p} in replica"
        );
    }
    assert!(env.rep.join("regular").is_file());
    let log = env.log_text();
    for p in ["fifo", "d/fifo2", "sock"] {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains(&format!("path: {p},"))
                && l.contains("special file")),
            "no warning for {p}:\n{log}"
        );
    }
    assert_eq!(count(&last_summary(&env), "skipped"), 3);
    assert_eq!(count(&last_summary(&env), "errors"), 0);
}

// ---- running unprivileged ----

/// A `--once` command that runs without root's permission bypass: as `nobody` (with the
/// whole test tree handed to it) when the tests run as root, else as the current user.
fn unprivileged_once(env: &Env) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        return env.cmd(&["--once"]);
    }
    let exe = binary_for_others(env);
    for e in walkdir::WalkDir::new(env.root()) {
        std::os::unix::fs::lchown(e.unwrap().path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let mut c = std::process::Command::new(exe);
    c.env("NO_COLOR", "1")
        .arg("-s")
        .arg(&env.src)
        .arg("-r")
        .arg(&env.rep)
        .arg("-l")
        .arg(&env.logs)
        .arg("--once");
    c.uid(NOBODY).gid(NOBODY);
    c
}

#[test]
fn read_only_extra_dir_is_removed_when_unprivileged() {
    let env = Env::new();
    write(env.src.join("a"), "a");
    write(env.rep.join("extra/ro/f"), "x");
    write(env.rep.join("extra/g"), "x");
    chmod(env.rep.join("extra/ro"), 0o555);
    chmod(env.rep.join("extra"), 0o555);
    let out = unprivileged_once(&env).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
}

#[test]
fn file_in_read_only_dir_is_updated_when_unprivileged() {
    let env = Env::new();
    write(env.src.join("ro/f"), "one");
    write(env.src.join("ro/gone"), "x");
    chmod(env.src.join("ro"), 0o555);
    let out = unprivileged_once(&env).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(mode(env.rep.join("ro")), 0o555);

    // A different size: the quick check sees it. And one file fewer.
    chmod(env.src.join("ro"), 0o755);
    write(env.src.join("ro/f"), "two, longer");
    fs::remove_file(env.src.join("ro/gone")).unwrap();
    chmod(env.src.join("ro"), 0o555);
    let out = unprivileged_once(&env).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(fs::read(env.rep.join("ro/f")).unwrap(), b"two, longer");
}

// ---- SRC is read only ----

#[test]
fn source_is_never_modified() {
    let env = Env::new();
    write(env.src.join("a/b/c"), bytes(5000, 1));
    write(env.src.join("a/same_size"), "xxxx");
    write(env.src.join("ro_file"), "ro");
    chmod(env.src.join("ro_file"), 0o444);
    write(env.src.join("ro_dir/f"), "f");
    chmod(env.src.join("ro_dir"), 0o555);
    write(env.src.join("type/file_here"), "f");
    mkdir(env.src.join("type/dir_here"));
    symlink("../a", env.src.join("type/link_here"));
    fs::hard_link(env.src.join("a/b/c"), env.src.join("hard")).unwrap();
    mkfifo(env.src.join("fifo"));
    if is_root() {
        write(env.src.join("owned"), "o");
        std::os::unix::fs::chown(env.src.join("owned"), Some(1234), Some(5678)).unwrap();
    }
    set_mtime(env.src.join("a"), 1_000_000_000, 1);
    // A replica that disagrees about nearly everything.
    write(env.rep.join("a/b/c"), "old");
    write(env.rep.join("a/same_size"), "yyyy");
    write(env.rep.join("extra/deep/x"), "x");
    write(env.rep.join(".a.replwatch-abc123.tmp"), "t");
    mkdir(env.rep.join("type/file_here"));
    write(env.rep.join("type/dir_here"), "file");
    write(env.rep.join("type/link_here"), "file");
    write(env.rep.join("fifo"), "not a fifo");
    write(env.rep.join("ro_dir/f"), "other");
    chmod(env.rep.join("ro_dir"), 0o700);

    let fp = fingerprint(&env.src);
    let stats = stat_snapshot(&env.src);
    pass(&env, &[]);
    assert_mirrored(&env.src, &env.rep);
    write(env.rep.join("a/extra"), "x");
    pass(&env, &["--checksum", "--workers", "3"]);
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(fp, fingerprint(&env.src), "SRC contents changed");
    assert_eq!(
        stats,
        stat_snapshot(&env.src),
        "SRC metadata (ctime) changed"
    );
    chmod(env.src.join("ro_dir"), 0o755);
    chmod(env.rep.join("ro_dir"), 0o755);
}

// ---- scale and parallelism ----

fn many_files(workers: &str) {
    let env = Env::new();
    let files = build_many(&env.src);
    assert_eq!(files.len(), 360);
    pass(&env, &["--workers", workers]);
    assert_mirrored(&env.src, &env.rep);
    assert!(temp_files(&env.rep).is_empty());
    let s = last_summary(&env);
    // 360 files, 4 top dirs, 36 (top, mid) pairs (4 and 9 are coprime), 36 leaves.
    assert_eq!(count(&s, "created"), 360 + 4 + 36 + 36, "{s}");

    // Change a third, delete a few, add a few: the second pass fixes exactly that.
    for (i, p) in files.iter().enumerate() {
        match i % 9 {
            0 => write(p, bytes(333, 9_999 + i as u64)),
            3 => chmod(p, 0o600),
            6 => fs::remove_file(p).unwrap(),
            _ => {}
        }
    }
    write(env.src.join("top0/new_file"), "new");
    pass(&env, &["--workers", workers]);
    assert_mirrored(&env.src, &env.rep);
    assert!(temp_files(&env.rep).is_empty());
    let s = last_summary(&env);
    assert_eq!(
        (
            count(&s, "created"),
            count(&s, "updated"),
            count(&s, "removed")
        ),
        (1, 40, 40),
        "{s}"
    );
}

#[test]
fn many_files_with_one_worker() {
    many_files("1");
}

#[test]
fn many_files_with_four_workers() {
    many_files("4");
}

#[test]
fn file_larger_than_one_copy_chunk() {
    // The kernel copy goes in 16 MiB chunks: cross a chunk boundary.
    let env = Env::new();
    let data = bytes((16 << 20) + 4097, 42);
    write(env.src.join("big"), &data);
    env.once_ok();
    assert_eq!(fs::read(env.rep.join("big")).unwrap(), data);
}

// ---- command line ----

#[test]
fn legacy_flags_work() {
    let env = Env::new();
    write(env.src.join("a/b"), "legacy");
    let out = replwatch()
        .arg("--fld_src")
        .arg(&env.src)
        .arg("--fld_sync")
        .arg(&env.rep)
        .arg("--fld_log")
        .arg(&env.logs)
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    assert!(env.log_text().contains("pass done"));
}

#[test]
fn legacy_flags_with_equals_and_relative_paths_work() {
    let env = Env::new();
    write(env.src.join("x"), "x");
    let out = replwatch()
        .current_dir(env.root())
        .args([
            "--fld_src=src",
            "--fld_sync=rep",
            "--fld_log=logs",
            "--once",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    assert!(env.logs.join("replwatch.log").is_file());
}

// ---- sparse files (issue 12) ----

/// A mostly empty file keeps its holes: the replica allocates its data, not its length, and
/// reads back the same bytes.
#[test]
fn sparse_file_keeps_its_holes() {
    use std::os::unix::fs::FileExt;
    let env = Env::new();
    let path = env.src.join("sparse.img");
    let f = fs::File::create(&path).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(&bytes(4096, 7), 32 << 20).unwrap();
    f.write_all_at(b"end", (64 << 20) - 3).unwrap();
    drop(f);
    let allocated = |p: &Path| std::os::unix::fs::MetadataExt::blocks(&p.metadata().unwrap()) * 512;
    env.once_ok();
    assert!(
        fs::read(&path).unwrap() == fs::read(env.rep.join("sparse.img")).unwrap(),
        "the replica's bytes differ"
    );
    if allocated(&path) < 1 << 20 {
        assert!(
            allocated(&env.rep.join("sparse.img")) < 1 << 20,
            "the replica allocates {} bytes for {} bytes of data",
            allocated(&env.rep.join("sparse.img")),
            allocated(&path)
        );
    } else {
        eprintln!("note: this filesystem does not keep holes; only the bytes were compared");
    }
}

/// A replica file that also has a name outside REPLICA (a `cp -al` snapshot of the replica)
/// is replaced when only its metadata changes: the outside name keeps the old inode, mode and
/// mtime untouched.
#[test]
fn a_replica_inode_linked_from_outside_is_never_changed() {
    let env = Env::new();
    write(env.src.join("f"), b"data");
    chmod(env.src.join("f"), 0o644);
    env.once_ok();
    let snapshot = env.root().join("snapshot-f");
    fs::hard_link(env.rep.join("f"), &snapshot).unwrap();
    let before = snapshot.metadata().unwrap();
    // Only the mode differs: without the rule this was a chmod of the shared inode.
    chmod(env.src.join("f"), 0o600);
    env.once_ok();
    assert!(env.log_text().contains("reason: shared-inode"));
    let after = snapshot.metadata().unwrap();
    assert_eq!(
        (
            after.permissions().mode() & 0o7777,
            after.modified().unwrap()
        ),
        (
            before.permissions().mode() & 0o7777,
            before.modified().unwrap()
        ),
        "the outside name's inode was changed"
    );
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&after),
        std::os::unix::fs::MetadataExt::ino(&env.rep.join("f").metadata().unwrap()),
        "the replica file was not replaced"
    );
}
