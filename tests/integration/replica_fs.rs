//! Replicas on filesystems that hold less than SRC (issue 11): real exFAT (exfat-fuse) and
//! NTFS (ntfs-3g) images, and ext4, xfs and btrfs images for comparison, each made in a temp
//! folder, loop-mounted and always unmounted again (also when a test fails).
//!
//! On each, a SRC tree with plain files, setuid/setgid files, symlinks, case collisions
//! (`a.txt` + `A.TXT`, `Docs/` + `docs/`), a long multibyte name, names Windows forbids and
//! nested folders is mirrored with `--once`: every entry the filesystem can hold arrives with
//! its bytes, every other one is named once in a `not mirrored` line (and the exit status is
//! 3), and a second and third pass rewrite nothing (inode and mtime of every replica entry
//! unchanged). A live run on exFAT does no recopy at its reconciliations.
//!
//! Mounting needs root, so every test here does; a test whose tools are missing, or whose
//! image cannot be mounted, says why and returns (`.ci/run` installs the tools). The tests
//! are serialised by one lock: loop devices and FUSE daemons are machine-wide.

use crate::support::live::*;
use crate::support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static MOUNTING: Mutex<()> = Mutex::new(());

/// Taken first thing by every test here: one image mounted at a time.
fn mounting() -> MutexGuard<'static, ()> {
    MOUNTING.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- images ----

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fs {
    Exfat,
    Ntfs,
    Ext4,
    Xfs,
    Btrfs,
}

impl Fs {
    /// The tools making and mounting an image need.
    fn tools(self) -> &'static [&'static str] {
        match self {
            Fs::Exfat => &["mkfs.exfat", "losetup", "mount.exfat-fuse", "umount"],
            Fs::Ntfs => &["mkfs.ntfs", "ntfs-3g", "umount"],
            Fs::Ext4 => &["mkfs.ext4", "mount", "umount"],
            Fs::Xfs => &["mkfs.xfs", "mount", "umount"],
            Fs::Btrfs => &["mkfs.btrfs", "mount", "umount"],
        }
    }

    /// Image size: small, but what mkfs accepts (xfs wants 300 MB) and room for a 64 MiB
    /// file on btrfs (metadata is duplicated). Images are sparse.
    fn size(self) -> &'static str {
        match self {
            Fs::Exfat | Fs::Ntfs | Fs::Ext4 => "64M",
            Fs::Xfs => "320M",
            Fs::Btrfs => "256M",
        }
    }
}

/// `name` on PATH or in the sbin folders (mkfs and mount tools live there).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Run tool `name` with `args`; its output, or why it failed.
fn run(name: &str, args: &[&OsStr]) -> Result<String, String> {
    let exe = tool(name).ok_or_else(|| format!("{name} not found"))?;
    let out = Command::new(&exe)
        .args(args)
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{name} {:?}: {}\n{}{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A filesystem image made and mounted in a temp folder; unmounted, and its loop device
/// detached, on drop (also when the test panics).
struct Image {
    fs: Fs,
    /// The mount point.
    mnt: PathBuf,
    loopdev: Option<String>,
    mounted: bool,
    /// Last, so it is removed after the image is unmounted.
    dir: tempfile::TempDir,
}

impl Image {
    /// Make and mount an image of `fs`, or say why not (a tool missing, mounting refused)
    /// and return None: the calling test then skips.
    fn mount_or_skip(fs: Fs) -> Option<Image> {
        if let Some(missing) = fs.tools().iter().find(|t| tool(t).is_none()) {
            eprintln!("skipped: {missing} not found (needed to mount {fs:?}; .ci/run installs it)");
            return None;
        }
        match Image::mount(fs) {
            Ok(img) => Some(img),
            Err(why) => {
                eprintln!("skipped: cannot mount a {fs:?} image: {why}");
                None
            }
        }
    }

    fn mount(fs: Fs) -> Result<Image, String> {
        let dir = tempfile::Builder::new()
            .prefix("replwatch-fs-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path().canonicalize().map_err(|e| e.to_string())?;
        let img = root.join("fs.img");
        let mnt = root.join("mnt");
        fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let mut image = Image {
            fs,
            mnt: mnt.clone(),
            loopdev: None,
            mounted: false,
            dir,
        };
        let f = fs::File::create(&img).map_err(|e| e.to_string())?;
        let size: u64 = fs.size().trim_end_matches('M').parse().unwrap();
        f.set_len(size << 20).map_err(|e| e.to_string())?;
        drop(f);
        let (i, m) = (img.as_os_str(), mnt.as_os_str());
        match fs {
            Fs::Exfat => {
                run("mkfs.exfat", &[i])?;
                // exfat-fuse needs a block device.
                let dev = run("losetup", &[os("-f"), os("--show"), i])?;
                image.loopdev = Some(dev.clone());
                run("mount.exfat-fuse", &[os(&dev), m])?;
            }
            Fs::Ntfs => {
                run("mkfs.ntfs", &[os("-F"), os("-q"), i])?;
                run("ntfs-3g", &[i, m])?;
            }
            Fs::Ext4 | Fs::Xfs | Fs::Btrfs => {
                let (mkfs, force) = match fs {
                    Fs::Ext4 => ("mkfs.ext4", "-F"),
                    Fs::Xfs => ("mkfs.xfs", "-f"),
                    _ => ("mkfs.btrfs", "-f"),
                };
                run(mkfs, &[os("-q"), os(force), i])?;
                run("mount", &[os("-o"), os("loop"), i, m])?;
            }
        }
        image.mounted = true;
        Ok(image)
    }

    /// An environment whose REPLICA is a folder (not yet made) on the image; SRC and the
    /// logs stay on the normal temp filesystem.
    fn env(&self) -> Env {
        Env {
            rep: self.mnt.join("rep"),
            ..Env::new()
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if self.mounted {
            let m = self.mnt.as_os_str();
            // A FUSE daemon or a process that just exited may hold it busy for a moment.
            let done = wait_until(Duration::from_secs(10), || run("umount", &[m]).is_ok());
            if !done {
                let lazy = run("umount", &[os("-l"), m]);
                eprintln!(
                    "{:?} image at {}: lazy unmount: {lazy:?}",
                    self.fs,
                    m.display()
                );
            }
        }
        if let Some(dev) = &self.loopdev {
            let _ = wait_until(Duration::from_secs(5), || {
                run("losetup", &[os("-d"), dev.as_ref()]).is_ok()
            });
        }
    }
}

// ---- the tree ----

/// A 244-byte name in two-byte characters (120 UTF-16 units): too long for a temp name made
/// by prefixing it, fine for every filesystem here.
fn long_name() -> String {
    "é".repeat(120) + ".txt"
}

/// The tree of the issue, in `src`: everything legal on a POSIX filesystem.
fn build_tree(src: &Path) {
    write(src.join("plain.txt"), b"plain");
    write(src.join("data.bin"), bytes(300_000, 1));
    write(src.join("empty"), b"");
    write(src.join("suid"), bytes(1000, 2));
    chmod(src.join("suid"), 0o4755);
    write(src.join("sgid"), bytes(1001, 3));
    chmod(src.join("sgid"), 0o2750);
    write(src.join("owned"), b"someone else's");
    std::os::unix::fs::lchown(src.join("owned"), Some(1234), Some(5678)).unwrap();
    symlink("plain.txt", src.join("link"));
    symlink("../../plain.txt", src.join("n/m/uplink"));
    // Case collisions: in byte order `A.TXT` < `a.txt`, `Docs` < `docs`, `README` < `Readme`.
    write(src.join("a.txt"), b"lower-case a");
    write(src.join("A.TXT"), b"UPPER-CASE A");
    write(src.join("Docs/one.txt"), b"Docs: one");
    write(src.join("Docs/same.txt"), b"Docs: same");
    write(src.join("docs/two.txt"), b"docs: two");
    write(src.join("docs/same.txt"), b"docs: same, other bytes");
    write(src.join("n/README"), b"upper readme");
    write(src.join("n/Readme"), b"mixed readme");
    write(src.join(long_name()), bytes(5000, 4));
    // Names Windows forbids.
    write(src.join("a:b"), b"colon");
    write(src.join("q?"), b"question");
    write(src.join("n/m/deep.txt"), bytes(70_000, 5));
    mkdir(src.join("n/empty-dir"));
    // Times that only a nanosecond filesystem keeps exactly, long ago (a time that did not
    // stick would read as "now").
    set_mtime(src.join("plain.txt"), 1_700_000_000, 123_456_789);
    set_mtime(src.join("n/m/deep.txt"), 1_600_000_000, 999_999_999);
    set_mtime(src.join("suid"), 1_650_000_000, 500_000_001);
}

/// The first line saying what REPLICA's filesystem does not hold, if any.
fn probe_line(log: &str) -> Option<&str> {
    log.lines().find(|l| l.contains("REPLICA is on "))
}

/// The entries of the tree the filesystem described by `probe` cannot hold, with (a part
/// of) the reason logged for each.
fn expected_losses(probe: Option<&str>) -> BTreeMap<PathBuf, &'static str> {
    let probe = probe.unwrap_or("");
    let mut lost = BTreeMap::new();
    if probe.contains("no symlinks") {
        for p in ["link", "n/m/uplink"] {
            lost.insert(p.into(), "the replica filesystem has no symlinks");
        }
    }
    if probe.contains("names that differ only in case are one name") {
        lost.insert("a.txt".into(), "differs only in case from A.TXT,");
        lost.insert("docs".into(), "differs only in case from Docs,");
        lost.insert("n/Readme".into(), "differs only in case from README,");
    }
    if probe.contains("no names with") {
        for p in ["a:b", "q?"] {
            lost.insert(p.into(), "the replica filesystem refuses the characters");
        }
    }
    lost
}

/// Every entry below `root`, by relative path.
fn entries(root: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

/// Inode and mtime of every entry below `root`, `root` included.
fn stats(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            (rel, (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

/// The replica holds exactly SRC's entries minus `lost` (and what is below a lost folder),
/// under their own names: files with their bytes and mtimes (to within 2 s, the coarsest
/// granularity there is), symlinks with their targets. Returns what is wrong.
fn arrived(env: &Env, lost: &BTreeMap<PathBuf, &str>) -> Vec<String> {
    let mut wrong = Vec::new();
    let expected: BTreeSet<PathBuf> = entries(&env.src)
        .into_iter()
        .filter(|p| !lost.keys().any(|l| p.starts_with(l)))
        .collect();
    let got = entries(&env.rep);
    for p in expected.difference(&got) {
        wrong.push(format!("missing in replica: {}", p.display()));
    }
    for p in got.difference(&expected) {
        wrong.push(format!("in replica, not expected: {}", p.display()));
    }
    for p in expected.intersection(&got) {
        let (s, r) = (env.src.join(p), env.rep.join(p));
        let (sm, rm) = (s.symlink_metadata().unwrap(), r.symlink_metadata().unwrap());
        if sm.file_type() != rm.file_type() {
            wrong.push(format!("type differs: {}", p.display()));
        } else if sm.is_file() {
            if fs::read(&s).unwrap() != fs::read(&r).unwrap() {
                wrong.push(format!("bytes differ: {}", p.display()));
            }
            let ns = |m: &fs::Metadata| {
                i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
            };
            let off = (ns(&sm) - ns(&rm)).abs();
            if off >= 2_000_000_000 {
                wrong.push(format!("mtime off by {off} ns: {}", p.display()));
            }
        } else if sm.is_symlink() && fs::read_link(&s).unwrap() != fs::read_link(&r).unwrap() {
            wrong.push(format!("symlink target differs: {}", p.display()));
        }
    }
    wrong
}

/// The `not mirrored` records of `log` (not the closing summary of a partial live run,
/// which quotes a few of them).
fn not_mirrored(log: &str) -> impl Iterator<Item = &str> {
    log.lines()
        .filter(|l| l.contains("not mirrored: ") && l.contains("action: skip"))
}

/// Each of `lost` is named in exactly one `not mirrored` record of `log` (with its reason),
/// and nothing else is. Returns what is wrong.
fn reported(log: &str, lost: &BTreeMap<PathBuf, &str>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (p, why) in lost {
        let head = format!("not mirrored: {}: ", p.display());
        let n = not_mirrored(log)
            .filter(|l| l.contains(&head) && l.contains(why))
            .count();
        if n != 1 {
            wrong.push(format!("{n} lines with `{head}...{why}`, not 1"));
        }
    }
    let total = not_mirrored(log).count();
    if total != lost.len() {
        wrong.push(format!(
            "{total} `not mirrored` lines for {} losses",
            lost.len()
        ));
    }
    wrong
}

/// Lines of `log` that record a write to REPLICA.
fn writes(log: &str) -> Vec<&str> {
    const WRITES: [&str; 6] = ["copy", "mkdir", "meta", "remove", "symlink", "rename"];
    log.lines()
        .filter(|l| WRITES.iter().any(|w| l.contains(&format!("action: {w},"))))
        .collect()
}

/// One `--once` pass; its output, and what it added to the log.
fn once(env: &Env) -> (Output, String) {
    let before = env.log_text().len();
    let out = env.once();
    let log = env.log_text()[before..].to_owned();
    (out, log)
}

#[track_caller]
fn check(problems: Vec<String>, what: &str, log: &str) {
    assert!(
        problems.is_empty(),
        "{what}:\n{}\n--- log\n{log}",
        problems.join("\n")
    );
}

/// Exit status of a run that left `lost` not mirrored.
fn partial_code(lost: &BTreeMap<PathBuf, &str>) -> Option<i32> {
    Some(if lost.is_empty() { 0 } else { 3 })
}

// ---- exFAT and NTFS ----

/// The issue's tree onto a Windows-formatted image: what the filesystem accepts arrives,
/// each loss is reported once, and passes two and three change nothing.
fn windows_drive(fs: Fs) {
    let _g = mounting();
    let Some(img) = Image::mount_or_skip(fs) else {
        return;
    };
    let env = img.env();
    build_tree(&env.src);

    let (out, log) = once(&env);
    let probe = probe_line(&log);
    let words = probe.unwrap_or_else(|| panic!("no `REPLICA is on` line:\n{log}"));
    assert!(words.contains("no permission bits"), "{words}");
    if fs == Fs::Exfat {
        for w in [
            "no symlinks",
            "times to 1 s",
            "names that differ only in case are one name",
            "no names with",
        ] {
            assert!(words.contains(w), "exFAT probe without `{w}`: {words}");
        }
    }
    assert_eq!(log.matches("REPLICA is on ").count(), 1, "{log}");
    let lost = expected_losses(probe);
    assert_eq!(
        out.status.code(),
        partial_code(&lost),
        "{}\n--- log\n{log}",
        describe(&out)
    );
    check(reported(&log, &lost), "losses not reported once each", &log);
    check(
        arrived(&env, &lost),
        "pass 1 did not mirror what fits",
        &log,
    );
    if lost.contains_key(Path::new("docs")) {
        // Directories are never merged: the replica's `Docs` is SRC's `Docs`.
        let names: BTreeSet<PathBuf> = entries(&env.rep.join("Docs"));
        assert_eq!(
            names,
            ["one.txt", "same.txt"].map(PathBuf::from).into(),
            "{log}"
        );
        assert_eq!(
            fs::read(env.rep.join("Docs/same.txt")).unwrap(),
            b"Docs: same"
        );
    }
    let after_first = stats(&env.rep);

    for n in 2..=3 {
        // A rewrite now would show in the mtimes even at a 1 s granularity.
        std::thread::sleep(Duration::from_millis(1100));
        let (out, log) = once(&env);
        assert_eq!(
            out.status.code(),
            partial_code(&lost),
            "pass {n}: {}\n--- log\n{log}",
            describe(&out)
        );
        let w = writes(&log);
        assert!(
            w.is_empty(),
            "pass {n} wrote to the replica:\n{}",
            w.join("\n")
        );
        check(
            reported(&log, &lost),
            &format!("pass {n}: losses not reported once each"),
            &log,
        );
        check(
            arrived(&env, &lost),
            &format!("pass {n}: replica changed"),
            &log,
        );
        assert_eq!(
            stats(&env.rep),
            after_first,
            "pass {n} changed inode or mtime:\n{log}"
        );
    }
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn exfat_keeps_the_bytes_reports_losses_and_rewrites_nothing() {
    windows_drive(Fs::Exfat);
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn ntfs_keeps_the_bytes_reports_losses_and_rewrites_nothing() {
    windows_drive(Fs::Ntfs);
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn exfat_live_reconciliations_recopy_nothing_and_report_once() {
    let _g = mounting();
    let Some(img) = Image::mount_or_skip(Fs::Exfat) else {
        return;
    };
    let env = img.env();
    build_tree(&env.src);
    let mut live = Live::with(&env, "2s", "9s");
    let after_initial = stats(&env.rep);
    let status = live
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("live run did not end after -d 9s"));
    let log = live.log_text();

    let lost = expected_losses(probe_line(&log));
    assert!(!lost.is_empty(), "exFAT holds everything?\n{log}");
    assert_eq!(log.matches("REPLICA is on ").count(), 1, "{log}");
    let reconciles = log
        .lines()
        .filter(|l| l.contains("pass done") && l.contains("trigger: reconcile"))
        .count();
    assert!(
        reconciles >= 2,
        "{reconciles} reconciliations in 9 s at -i 2s:\n{log}"
    );
    let recopies: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("action: copy,") && l.contains("trigger: reconcile"))
        .collect();
    assert!(
        recopies.is_empty(),
        "reconciliations recopied:\n{}",
        recopies.join("\n")
    );
    let later = after_watching(&log).join("\n");
    let w = writes(&later);
    assert!(
        w.is_empty(),
        "wrote to the replica after the initial pass:\n{}",
        w.join("\n")
    );
    check(
        reported(&log, &lost),
        "live: losses not reported exactly once",
        &log,
    );
    check(
        arrived(&env, &lost),
        "live run did not mirror what fits",
        &log,
    );
    assert_eq!(
        stats(&env.rep),
        after_initial,
        "reconciliations changed inode or mtime:\n{log}"
    );
    assert_eq!(
        status.code(),
        Some(3),
        "a partial replica:\n{}",
        live.output()
    );
}

// ---- POSIX filesystems ----

/// The same tree onto an image of `fs`: nothing is lost (every property `tree_diff`
/// compares, owners too), nothing is reported, and a second pass rewrites nothing.
fn posix_fs(fs: Fs) {
    let _g = mounting();
    let Some(img) = Image::mount_or_skip(fs) else {
        return;
    };
    let env = img.env();
    build_tree(&env.src);

    let (out, log) = once(&env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n--- log\n{log}",
        describe(&out)
    );
    assert!(probe_line(&log).is_none(), "{fs:?} reported losses:\n{log}");
    assert!(!log.contains("not mirrored"), "{log}");
    assert_mirrored(&env.src, &env.rep);
    let after_first = stats(&env.rep);

    std::thread::sleep(Duration::from_millis(50));
    let (out, log) = once(&env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n--- log\n{log}",
        describe(&out)
    );
    let w = writes(&log);
    assert!(
        w.is_empty(),
        "pass 2 wrote to the replica:\n{}",
        w.join("\n")
    );
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(
        stats(&env.rep),
        after_first,
        "pass 2 changed inode or mtime:\n{log}"
    );

    if matches!(fs, Fs::Xfs | Fs::Btrfs) {
        reflinks(&img);
    }
}

/// A 64 MiB file copied within the image shares its extents with the source (filefrag
/// shows every extent of the copy `shared`).
fn reflinks(img: &Image) {
    if tool("filefrag").is_none() {
        eprintln!("reflink check skipped: filefrag not found");
        return;
    }
    let src = img.mnt.join("big-src");
    let rep = img.mnt.join("big-rep");
    let logs = img.dir.path().join("big-logs");
    write(src.join("big"), bytes(64 << 20, 7));
    fs::File::open(src.join("big")).unwrap().sync_all().unwrap();
    let out = replwatch()
        .arg("-s")
        .arg(&src)
        .arg("-r")
        .arg(&rep)
        .arg("-l")
        .arg(&logs)
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        fs::read(rep.join("big")).unwrap(),
        fs::read(src.join("big")).unwrap()
    );
    let frag = run(
        "filefrag",
        &[os("-s"), os("-v"), rep.join("big").as_os_str()],
    )
    .unwrap();
    // Extent lines look like `   0:        0..   16383:    24..   16407:  16384:   last,shared,eof`.
    let extents: Vec<&str> = frag
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.split(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    assert!(!extents.is_empty(), "no extents listed:\n{frag}");
    assert!(
        extents.iter().all(|l| l.contains("shared")),
        "{:?}: the copy does not share its extents (no reflink):\n{frag}",
        img.fs
    );
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn ext4_loses_nothing_and_rewrites_nothing() {
    posix_fs(Fs::Ext4);
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn xfs_loses_nothing_rewrites_nothing_and_reflinks() {
    posix_fs(Fs::Xfs);
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn btrfs_loses_nothing_rewrites_nothing_and_reflinks() {
    posix_fs(Fs::Btrfs);
}

/// `--versions` on a filesystem without hard links: an overwritten file's old copy cannot be
/// linked into the versions folder, so it is renamed there right before the new copy lands;
/// a removal is a rename as anywhere.
#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn exfat_versions_fall_back_to_a_rename_without_hard_links() {
    let _g = mounting();
    let Some(img) = Image::mount_or_skip(Fs::Exfat) else {
        return;
    };
    let env = img.env();
    write(env.src.join("doc.txt"), "old doc");
    write(env.src.join("dir/gone.txt"), "gone");
    let out = env.cmd(&["--once", "--versions"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("REPLICA is on fuseblk"),
        "{}",
        describe(&out)
    );
    write(env.src.join("doc.txt"), "new doc, longer");
    fs::remove_dir_all(env.src.join("dir")).unwrap();
    let out = env.cmd(&["--once", "--versions"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    assert_eq!(
        fs::read_to_string(env.rep.join("doc.txt")).unwrap(),
        "new doc, longer"
    );
    assert!(!env.rep.join("dir").exists());
    let versions: Vec<PathBuf> = fs::read_dir(env.rep.join(".replwatch-versions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let named = |prefix: &str| {
        versions
            .iter()
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
            .collect::<Vec<_>>()
    };
    let doc = named("doc~");
    assert_eq!(doc.len(), 1, "{versions:?}");
    assert_eq!(fs::read_to_string(doc[0]).unwrap(), "old doc");
    let dir = named("dir~");
    assert_eq!(dir.len(), 1, "{versions:?}");
    assert_eq!(fs::read_to_string(dir[0].join("gone.txt")).unwrap(), "gone");
}
