//! Tree shapes that must not hit a cliff (issue 13): descriptors bounded whatever the depth.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::support::live::*;
use crate::support::*;

/// A chain of `depth` directories, each also holding a sibling directory with a file (so the
/// walk has somewhere else to go at every level) and a file of its own.
fn deep_tree(root: &Path, depth: usize) -> PathBuf {
    let mut at = root.to_path_buf();
    for i in 0..depth {
        fs::create_dir(at.join("s")).unwrap();
        write(at.join("s/f"), format!("sibling {i}"));
        write(at.join("f"), format!("level {i}"));
        at.push("d");
        fs::create_dir(&at).unwrap();
    }
    at
}

/// Run with at most `n` open descriptors.
fn limit_fds(cmd: &mut std::process::Command, n: u64) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A binary tree `depth` levels deep, a file in every directory.
fn wide_tree(at: &Path, depth: usize) {
    write(at.join("f"), "f");
    if depth > 0 {
        for side in ["l", "r"] {
            fs::create_dir(at.join(side)).unwrap();
            wide_tree(&at.join(side), depth - 1);
        }
    }
}

/// Many paths at once (a read-ahead walk must not keep handles for each of them): 8,191
/// directories 12 levels deep, mirrored and then checked under 128 descriptors.
#[test]
fn a_wide_deep_tree_mirrors_under_a_small_descriptor_limit() {
    let env = Env::new();
    wide_tree(&env.src, 12);
    for limit in [256, 128] {
        let mut once = env.cmd(&["--once", "--progress", "never", "-q"]);
        limit_fds(&mut once, limit);
        let out = once.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{limit}: {}", describe(&out));
        assert_mirrored(&env.src, &env.rep);
    }
}

#[test]
fn a_thousand_levels_with_siblings_mirror_and_remove_under_256_descriptors() {
    let env = Env::new();
    fs::create_dir(env.src.join("top")).unwrap();
    deep_tree(&env.src.join("top"), 1000);

    let mut once = env.cmd(&["--once", "--progress", "never", "-q"]);
    limit_fds(&mut once, 256);
    let out = once.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);

    // Removing it all again is a walk of the same depth, in the replica.
    fs::remove_dir_all(env.src.join("top")).unwrap();
    write(env.src.join("keep"), "k");
    let mut once = env.cmd(&["--once", "--progress", "never", "-q"]);
    limit_fds(&mut once, 256);
    let out = once.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
}

/// `levels` directories with 200-byte names, each holding a file: a path of `levels` * 201
/// bytes, made and read through handles (a path this long cannot be used whole).
fn long_chain(root: &Path, levels: usize) {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    let name = "n".repeat(200);
    let mut cur =
        rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for i in 0..levels {
        let f = openat(
            &cur,
            "f",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, format!("level {i}").as_bytes()).unwrap();
        mkdirat(&cur, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        cur = subdir(&cur, &name).unwrap();
    }
}

/// Open directory `name` in `dir` (a path of `long_chain` is too long to be used whole).
fn subdir(dir: &rustix::fd::OwnedFd, name: &str) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, openat};
    openat(dir, name, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
}

/// Does the chain under `root` hold what `long_chain` made, at every level?
fn chain_levels(root: &Path) -> usize {
    use rustix::fs::{Mode, OFlags, openat};
    let name = "n".repeat(200);
    let mut cur = chain_dir(root, 0);
    let mut level = 0;
    loop {
        let Ok(f) = openat(&cur, "f", OFlags::RDONLY, Mode::empty()) else {
            return level;
        };
        let mut buf = [0u8; 64];
        let n = rustix::io::read(&f, &mut buf).unwrap();
        assert_eq!(&buf[..n], format!("level {level}").as_bytes());
        level += 1;
        match subdir(&cur, &name) {
            Ok(next) => cur = next,
            Err(_) => return level,
        }
    }
}

#[test]
fn paths_longer_than_path_max_are_mirrored_and_removed() {
    let env = Env::new();
    // 60 levels: 12,000 bytes of path, three times PATH_MAX, and deeper than the levels a
    // walk keeps handles for.
    long_chain(&env.src, 60);
    let out = env.cmd(&["--once", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(chain_levels(&env.rep), 60);
    // A second pass finds nothing to do.
    let out = env.cmd(&["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let log = env.log_text();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("pass done"))
        .unwrap_or("");
    assert!(last.contains("created: 0, updated: 0, meta: 0"), "{log}");
    // Removed whole again (a walk of the same depth in the replica).
    fs::remove_dir_all(env.src.join("n".repeat(200))).unwrap();
    let out = env.cmd(&["--once", "-q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(chain_levels(&env.rep), 1);
    assert!(!env.rep.join("n".repeat(200)).exists());
}

const MAX_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// As an unprivileged user whose watch limit is smaller than the tree: every directory that
/// fits is watched, the run says how many are not, changes in those are mirrored by the
/// interval pass, and once watches are allowed again the next pass watches everything.
#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn the_watch_limit_degrades_and_recovers() {
    let _g = crate::live::serial();
    let Some(setpriv) = find_setpriv() else {
        panic!("setpriv (util-linux) is needed to run replwatch as nobody");
    };
    let env = Env::new();
    for i in 0..60 {
        mkdir(env.src.join(format!("d{i:02}")));
    }
    open_to_nobody(&env);
    // Owned by the user it runs as, so the mirror can match owners too.
    for e in walkdir::WalkDir::new(&env.src) {
        std::os::unix::fs::lchown(e.unwrap().path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let limit = Sysctl::set(MAX_WATCHES, "30").expect("set the watch limit");
    let mut live = Live::spawn(
        &env,
        as_nobody(
            &env,
            &setpriv,
            &["--debounce", "50ms", "-i", "3s", "-d", "5m", "-v"],
        ),
    );
    live.wait_watching();
    live.wait_log(
        &["watch limit stopped the watcher", "30 of 61 directories"],
        LOG_WAIT,
    );
    live.wait_log(&["not watched", "path: d"], LOG_WAIT);
    // A change in an unwatched directory still arrives, by the interval pass.
    let unwatched = env.src.join("d59/late");
    write(&unwatched, "by the pass");
    std::os::unix::fs::lchown(&unwatched, Some(NOBODY), Some(NOBODY)).unwrap();
    wait_mirrored(&env.src, &env.rep, CONVERGE);
    // Watches allowed again: the next interval's pass watches every directory.
    drop(limit);
    live.wait_log(&["no longer stops the watcher"], LOG_WAIT);
    write(env.src.join("d58/now"), "by an event");
    std::os::unix::fs::lchown(env.src.join("d58/now"), Some(NOBODY), Some(NOBODY)).unwrap();
    wait_mirrored(&env.src, &env.rep, CONVERGE);
    assert!(
        live.log_text().contains("watch limit stopped the watcher"),
        "{}",
        live.output()
    );
}

/// A file that only grew at its end (a log) has only its new bytes copied, into the replica
/// file itself (same inode), after its old bytes were checked to be the source's prefix; a
/// file that grew but changed before its old end is copied whole.
#[test]
fn appended_files_copy_only_the_tail() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let mut log = bytes(1 << 20, 3);
    write(env.src.join("app.log"), &log);
    write(env.src.join("db"), bytes(1 << 20, 4));
    env.once_ok();
    let ino = fs::metadata(env.rep.join("app.log")).unwrap().ino();

    let tail = b"one more line\n";
    fs::OpenOptions::new()
        .append(true)
        .open(env.src.join("app.log"))
        .unwrap()
        .write_all(tail)
        .unwrap();
    log.extend_from_slice(tail);
    // `db` grows too, but one byte before its old end changes as well: not an append.
    let mut db = bytes(1 << 20, 4);
    db[(1 << 20) - 1] ^= 0xff;
    db.extend_from_slice(b"grown");
    write(env.src.join("db"), &db);

    env.once_ok();
    assert_eq!(fs::read(env.rep.join("app.log")).unwrap(), log);
    assert_eq!(fs::read(env.rep.join("db")).unwrap(), db);
    assert_eq!(fs::metadata(env.rep.join("app.log")).unwrap().ino(), ino);
    let text = env.log_text();
    let append = text
        .lines()
        .find(|l| l.contains("action: append") && l.contains("path: app.log"))
        .unwrap_or_else(|| panic!("no append record:\n{text}"));
    assert!(
        append.contains(&format!("bytes: {},", tail.len())),
        "{append}"
    );
    assert!(
        text.lines().any(|l| l.contains("action: copy")
            && l.contains("path: db")
            && l.contains("bytes: 1048581")),
        "{text}"
    );
}

/// Live: a log appended to line by line costs its lines, not its length, at each change.
#[test]
fn a_growing_log_costs_its_new_bytes_in_live_mode() {
    use std::io::Write;
    let _g = crate::live::serial();
    let env = Env::new();
    write(env.src.join("app.log"), bytes(1 << 20, 9));
    let live = Live::start(&env);
    converge(&env);
    for i in 0..20 {
        fs::OpenOptions::new()
            .append(true)
            .open(env.src.join("app.log"))
            .unwrap()
            .write_all(format!("line {i}\n").as_bytes())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    converge(&env);
    live.wait_log(&["action: append", "path: app.log"], LOG_WAIT);
    let copied: u64 = live
        .log_after_watching()
        .iter()
        .filter(|l| {
            l.contains("path: app.log")
                && (l.contains("action: append") || l.contains("action: copy"))
        })
        .filter_map(|l| {
            l.split("bytes: ")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        copied <= 20 * 8,
        "{copied} bytes copied for 20 short lines:\n{}",
        live.output()
    );
}

/// Open the directory `levels` deep in a `long_chain` (through handles: its path is too long
/// to be used whole).
fn chain_dir(root: &Path, levels: usize) -> rustix::fd::OwnedFd {
    use rustix::fs::{Mode, OFlags};
    let name = "n".repeat(200);
    let mut cur =
        rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for _ in 0..levels {
        cur = subdir(&cur, &name).unwrap();
    }
    cur
}

/// Live: inotify cannot watch a directory whose path is longer than PATH_MAX. Each such
/// directory is reported (a count, and each at debug level), and a change in the deepest one
/// is mirrored by the interval pass.
#[test]
fn directories_too_deep_to_watch_are_each_reported() {
    use rustix::fs::{Mode, OFlags, openat};
    let _g = crate::live::serial();
    let env = Env::new();
    // 30 levels of 201 bytes: about the first 20 can be watched, the rest cannot.
    long_chain(&env.src, 30);
    let root_len = env.src.as_os_str().len();
    let deep = (0..=30).filter(|l| root_len + l * 201 >= 4096).count();
    assert!(deep > 0 && deep < 31, "{root_len}");
    let live = Live::with_extra(&env, "3s", "5m", &["-v"]);
    live.wait_log(
        &[
            "too deep",
            &format!("{} of 31 directories are watched", 31 - deep),
        ],
        LOG_WAIT,
    );
    let listed = live
        .log_text()
        .lines()
        .filter(|l| l.contains("not watched") && l.contains("path: n"))
        .count();
    assert_eq!(listed, deep, "{}", live.output());
    // A file made at the deepest level arrives, by the interval pass.
    let f = openat(
        chain_dir(&env.src, 30),
        "late",
        OFlags::CREATE | OFlags::WRONLY,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&f, b"by the pass").unwrap();
    drop(f);
    let arrived = wait_until(CONVERGE, || {
        openat(
            chain_dir(&env.rep, 30),
            "late",
            OFlags::RDONLY,
            Mode::empty(),
        )
        .is_ok()
    });
    assert!(arrived, "{}", live.output());
}
