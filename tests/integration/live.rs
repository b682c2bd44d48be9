//! Live mode end to end: the binary runs with a short debounce, a change is made in SRC, and
//! the test waits until REPLICA mirrors it again (every property `tree_diff` compares).
//!
//! Nothing asserted depends on a sleep: each test polls for convergence (or for a log record)
//! with a generous deadline. All tests here are serialised by one lock: the overflow test
//! changes a machine-wide sysctl that every watcher started meanwhile would inherit, and
//! running the watchers one at a time also keeps the timings honest on a small machine.
use crate::support::live::*;
use crate::support::*;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::process::Signal;

static SERIAL: Mutex<()> = Mutex::new(());

/// Taken first thing by every test: one live test at a time (`versions` takes it too).
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start live mode and check the initial pass mirrored what SRC held.
fn start(env: &Env) -> Live {
    let live = Live::start(env);
    converge(env);
    live
}

fn ino(p: impl AsRef<Path>) -> u64 {
    p.as_ref().symlink_metadata().unwrap().ino()
}

fn append(path: impl AsRef<Path>, data: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(data).unwrap();
}

// ---- files ----

#[test]
fn create_file() {
    let _g = serial();
    let env = Env::new();
    let _live = start(&env);
    write(env.src.join("new.txt"), bytes(5000, 1));
    write(env.src.join("empty"), b"");
    converge(&env);
}

#[test]
fn modify_file() {
    let _g = serial();
    let env = env_with(&[("f", b"old contents")]);
    let _live = start(&env);
    write(env.src.join("f"), bytes(70_000, 2));
    converge(&env);
    // Same length again, new bytes: the mtime moves, so it is copied.
    write(env.src.join("f"), bytes(70_000, 3));
    converge(&env);
}

#[test]
fn append_to_file() {
    let _g = serial();
    let env = env_with(&[("log.txt", b"line 1\n")]);
    let _live = start(&env);
    append(env.src.join("log.txt"), b"line 2\n");
    converge(&env);
    append(env.src.join("log.txt"), &bytes(100_000, 4));
    converge(&env);
}

#[test]
fn truncate_file() {
    let _g = serial();
    let big = bytes(200_000, 5);
    let env = env_with(&[("t", &big), ("z", &big)]);
    let _live = start(&env);
    OpenOptions::new()
        .write(true)
        .open(env.src.join("t"))
        .unwrap()
        .set_len(1234)
        .unwrap();
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(env.src.join("z"))
        .unwrap();
    converge(&env);
    assert_eq!(fs::metadata(env.rep.join("t")).unwrap().len(), 1234);
    assert_eq!(fs::metadata(env.rep.join("z")).unwrap().len(), 0);
}

#[test]
fn delete_file() {
    let _g = serial();
    let env = env_with(&[("gone", b"x"), ("d/gone too", b"y"), ("kept", b"z")]);
    let _live = start(&env);
    fs::remove_file(env.src.join("gone")).unwrap();
    fs::remove_file(env.src.join("d/gone too")).unwrap();
    converge(&env);
    assert!(!env.rep.join("gone").exists());
    assert!(env.rep.join("kept").exists());
}

#[test]
fn file_written_in_many_small_appends() {
    let _g = serial();
    let env = env_with(&[("growing", b"")]);
    let _live = start(&env);
    let mut f = OpenOptions::new()
        .append(true)
        .open(env.src.join("growing"))
        .unwrap();
    let started = Instant::now();
    for i in 0..50u64 {
        f.write_all(&bytes(997, i)).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(f);
    assert!(started.elapsed() >= Duration::from_secs(1));
    converge(&env);
    assert_eq!(
        fs::metadata(env.rep.join("growing")).unwrap().len(),
        50 * 997
    );
}

// ---- renames ----

#[test]
fn rename_file_keeps_the_replica_inode() {
    let _g = serial();
    let env = env_with(&[("a.txt", &bytes(50_000, 6)), ("d/other", b"o")]);
    let live = start(&env);
    let before = inodes(&env.rep);
    fs::rename(env.src.join("a.txt"), env.src.join("d/b.txt")).unwrap();
    converge(&env);
    assert_eq!(
        ino(env.rep.join("d/b.txt")),
        before[Path::new("a.txt")],
        "the renamed file was copied again, not renamed",
    );
    live.wait_log(
        &["action: rename", "path: d/b.txt", "from: a.txt"],
        LOG_WAIT,
    );
}

#[test]
fn rename_dir_keeps_the_replica_inodes() {
    let _g = serial();
    let env = env_with(&[
        ("dir/x", b"x"),
        ("dir/sub/y", &bytes(30_000, 7)),
        ("dir/sub/deeper/z", b"z"),
    ]);
    let live = start(&env);
    let before = inodes(&env.rep);
    fs::rename(env.src.join("dir"), env.src.join("moved")).unwrap();
    converge(&env);
    let after = inodes(&env.rep);
    for (old, new) in [
        ("dir", "moved"),
        ("dir/x", "moved/x"),
        ("dir/sub/y", "moved/sub/y"),
        ("dir/sub/deeper/z", "moved/sub/deeper/z"),
    ] {
        assert_eq!(
            after[Path::new(new)],
            before[Path::new(old)],
            "{new} is not the replica's {old} renamed",
        );
    }
    live.wait_log(&["action: rename", "path: moved,", "from: dir,"], LOG_WAIT);
}

/// An editor's save: write a temp beside the file, rename it over the file.
#[test]
fn save_by_rename_over_the_file() {
    let _g = serial();
    let env = env_with(&[("doc.txt", b"v0"), ("other", b"o")]);
    let _live = start(&env);
    for v in 1..=5u64 {
        write(env.src.join(".doc.txt.swp"), bytes(100 + v as usize, v));
        fs::rename(env.src.join(".doc.txt.swp"), env.src.join("doc.txt")).unwrap();
    }
    converge(&env);
}

/// Renames whose replays in order pass through names that no longer exist in SRC.
#[test]
fn swapped_names_and_rename_chains() {
    let _g = serial();
    let env = env_with(&[
        ("a", &bytes(1000, 13)),
        ("b", &bytes(2000, 14)),
        ("da/x", b"x"),
        ("db/y", b"y"),
        ("d/f", b"f"),
        ("d/s/g", b"g"),
    ]);
    let _live = start(&env);
    let mv = |from: &str, to: &str| fs::rename(env.src.join(from), env.src.join(to)).unwrap();
    mv("a", "tmp");
    mv("b", "a");
    mv("tmp", "b");
    mv("da", "tmpd");
    mv("db", "da");
    mv("tmpd", "db");
    mv("d", "e");
    mv("e", "f");
    write(env.src.join("d/new at the old name"), b"new");
    write(env.src.join("f/s/h"), b"h");
    converge(&env);
}

// ---- directories ----

#[test]
fn mkdir_p_with_files_written_at_once() {
    let _g = serial();
    let env = Env::new();
    let _live = start(&env);
    let deep = env.src.join("a/b/c/d");
    fs::create_dir_all(&deep).unwrap();
    for i in 0..20 {
        fs::write(deep.join(format!("f{i}")), bytes(100 + i, i as u64)).unwrap();
    }
    fs::write(env.src.join("a/b/mid"), b"mid").unwrap();
    converge(&env);
}

#[test]
fn rm_rf_subtree() {
    let _g = serial();
    let env = Env::new();
    for i in 0..10 {
        write(env.src.join(format!("t/a{i}/b/f{i}")), bytes(10, i));
        write(env.src.join(format!("t/g{i}")), b"g");
    }
    write(env.src.join("keep/f"), b"k");
    let _live = start(&env);
    fs::remove_dir_all(env.src.join("t")).unwrap();
    converge(&env);
    assert!(!env.rep.join("t").exists());
}

#[test]
fn chmod_file_and_dir() {
    let _g = serial();
    let env = env_with(&[("d/f", b"data"), ("g", b"g")]);
    let _live = start(&env);
    chmod(env.src.join("d/f"), 0o600);
    chmod(env.src.join("g"), 0o751);
    chmod(env.src.join("d"), 0o700);
    converge(&env);
}

#[test]
fn touch_m_to_an_old_time() {
    let _g = serial();
    let env = env_with(&[("f", b"same bytes"), ("d/g", b"g")]);
    let _live = start(&env);
    set_mtime(env.src.join("f"), 946_684_800, 123_456_789);
    set_mtime(env.src.join("d"), 1_000_000_000, 0);
    converge(&env);
}

#[test]
fn symlink_create_and_retarget() {
    let _g = serial();
    let env = env_with(&[("t1", b"1"), ("t2", b"2")]);
    let _live = start(&env);
    symlink("t1", env.src.join("link"));
    symlink("/nonexistent/dangling", env.src.join("d/dangling"));
    converge(&env);
    fs::remove_file(env.src.join("link")).unwrap();
    symlink("t2", env.src.join("link"));
    converge(&env);
    assert_eq!(
        fs::read_link(env.rep.join("link")).unwrap(),
        Path::new("t2")
    );
}

#[test]
fn file_replaced_by_dir_and_back() {
    let _g = serial();
    let env = env_with(&[("x", b"a file")]);
    let _live = start(&env);
    fs::remove_file(env.src.join("x")).unwrap();
    write(env.src.join("x/inside"), b"now a dir");
    converge(&env);
    assert!(env.rep.join("x").is_dir());
    fs::remove_dir_all(env.src.join("x")).unwrap();
    write(env.src.join("x"), b"a file again");
    converge(&env);
    assert!(env.rep.join("x").is_file());
}

#[test]
fn tree_moved_in_and_subtree_moved_out() {
    let _g = serial();
    let env = env_with(&[("stay/f", b"s"), ("leaving/a/b", b"b"), ("leaving/c", b"c")]);
    let outside = env.root().join("outside");
    for i in 0..5 {
        write(outside.join(format!("tree/d{i}/f")), bytes(1000, i));
    }
    symlink("d0/f", outside.join("tree/link"));
    let _live = start(&env);

    fs::rename(outside.join("tree"), env.src.join("tree")).unwrap();
    converge(&env);
    assert!(env.rep.join("tree/d4/f").is_file());

    fs::rename(env.src.join("leaving"), env.root().join("gone")).unwrap();
    converge(&env);
    assert!(!env.rep.join("leaving").exists());
}

/// A directory moved in, then filled at once: files made before the watch on the new
/// directory exists have no events of their own.
#[test]
fn dir_moved_in_then_filled_at_once() {
    let _g = serial();
    let env = Env::new();
    let _live = start(&env);
    mkdir(env.root().join("o/p"));
    fs::rename(env.root().join("o"), env.src.join("o")).unwrap();
    write(env.src.join("o/p/q/r"), b"r");
    write(env.src.join("o/f"), b"f");
    converge(&env);
    for i in 0..10 {
        write(env.src.join(format!("o/p/q/n{i}")), b"n");
    }
    converge(&env);
}

#[test]
fn file_and_dir_replaced_by_symlinks() {
    let _g = serial();
    let env = env_with(&[("f", b"f"), ("d/x", b"x"), ("t", b"t")]);
    let _live = start(&env);
    fs::remove_file(env.src.join("f")).unwrap();
    symlink("t", env.src.join("f"));
    fs::remove_dir_all(env.src.join("d")).unwrap();
    symlink("t", env.src.join("d"));
    converge(&env);
    assert!(env.rep.join("d").symlink_metadata().unwrap().is_symlink());
}

// ---- volume ----

#[test]
fn burst_of_1000_creates() {
    let _g = serial();
    let env = Env::new();
    let _live = start(&env);
    for d in 0..4 {
        let dir = env.src.join(format!("burst{d}"));
        fs::create_dir(&dir).unwrap();
        for i in 0..250 {
            fs::write(dir.join(format!("f{i:03}")), format!("{d}/{i}")).unwrap();
        }
    }
    converge(&env);
}

/// The inotify queue overflows (its limit is read when the watcher is created): the watcher
/// asks for a rescan and a full pass repairs everything.
#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn inotify_overflow_triggers_a_full_pass() {
    let _g = serial();
    if !is_root() {
        eprintln!("skipped: changing fs.inotify.max_queued_events needs root");
        return;
    }
    let limit = match Sysctl::set(QUEUED_EVENTS, "64") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: cannot set {QUEUED_EVENTS}: {e}");
            return;
        }
    };
    let env = Env::new();
    let dirs: Vec<PathBuf> = (0..4).map(|d| env.src.join(format!("o{d}"))).collect();
    for d in &dirs {
        mkdir(d);
    }
    let live = start(&env);
    // Nothing reads the inotify queue while the process is stopped: with room for 64 events,
    // 2,000 creates (each a create, a modify and a close) overflow it for sure.
    live.signal(Signal::STOP);
    let made = (|| {
        for (d, dir) in dirs.iter().enumerate() {
            for i in 0..500 {
                fs::write(dir.join(format!("f{i:03}")), [d as u8, i as u8])?;
            }
        }
        // New directories whose creation events are lost in the overflow: nothing tells the
        // watcher to watch them.
        for d in 0..4 {
            fs::create_dir(env.src.join(format!("n{d}")))?;
            fs::write(env.src.join(format!("n{d}/first")), "1")?;
        }
        std::io::Result::Ok(())
    })();
    // Put the limit back before the watcher reads its overflowed queue: the rescan restarts
    // the watcher, whose new inotify instance then gets the normal queue. (The old one keeps
    // 64: reading SRC, which notify reports as IN_OPEN events, would overflow it again.)
    drop(limit);
    live.signal(Signal::CONT);
    made.unwrap();
    live.wait_log(&["full pass", "rescan requested"], LOG_WAIT);
    live.wait_log(&["pass done", "trigger: rescan"], LOG_WAIT);
    converge(&env);
    // The directories made during the overflow are watched now: a change in them is
    // mirrored by an event, not by a later rescan (the interval pass is 10 minutes away).
    // Only the replica is looked at until then: reading SRC would overflow the queue again.
    for d in 0..4 {
        fs::write(env.src.join(format!("n{d}/later")), "2").unwrap();
    }
    for d in 0..4 {
        let path = format!("path: n{d}/later, kind: file, reason: new, bytes: 1, trigger: event");
        live.wait_log(&[path.as_str()], LOG_WAIT);
    }
    converge(&env);
}

// ---- reconciliation ----

#[test]
fn drift_in_the_replica_is_repaired_by_the_interval_pass() {
    let _g = serial();
    let env = env_with(&[
        ("deleted", &bytes(4000, 8)),
        ("edited", &bytes(4000, 9)),
        ("d/fine", b"f"),
    ]);
    let live = Live::with(&env, "2s", "5m");
    converge(&env);
    fs::remove_file(env.rep.join("deleted")).unwrap();
    let edited = env.rep.join("edited");
    fs::write(&edited, bytes(4000, 10)).unwrap();
    set_mtime(&edited, 1_234_567_890, 0);
    assert!(!tree_diff(&env.src, &env.rep).is_empty());
    converge_within(&env, Duration::from_secs(10));
    // The repairs are logged as drift found by the periodic pass.
    live.wait_log(&["path: deleted", "trigger: reconcile"], LOG_WAIT);
    live.wait_log(&["path: edited", "trigger: reconcile"], LOG_WAIT);
}

// ---- how a run ends ----

#[test]
fn duration_ends_the_run() {
    let _g = serial();
    let env = env_with(&[("f", b"f")]);
    let mut live = Live::with(&env, "10m", "3s");
    converge(&env);
    write(env.src.join("g"), b"g");
    converge(&env);
    let status = live.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "did not exit 0 by itself",
    );
    assert!(
        live.log_text().contains("duration reached"),
        "no \"duration reached\" record"
    );
}

fn stops_on(sig: Signal) {
    let _g = serial();
    let env = env_with(&[("f", b"f")]);
    let mut live = start(&env);
    write(env.src.join("small"), b"s");
    converge(&env);
    // A big file, so the signal may land while it is being copied; nothing below depends on
    // where it lands.
    write(env.src.join("big"), bytes(16 << 20, 11));
    wait_until(Duration::from_secs(3), || !temp_files(&env.rep).is_empty());
    live.signal(sig);
    let status = live.wait_exit(Duration::from_secs(5));
    // The exit status says whether the replica is known complete: 0 if `big` was mirrored
    // before the signal, 3 (with the reason logged) if its copy was cut short.
    let code = status.and_then(|s| s.code());
    let mirrored = fs::read(env.rep.join("big")).is_ok_and(|b| b == bytes(16 << 20, 11));
    let log = live.log_text();
    match code {
        Some(0) => assert!(mirrored, "exit 0 with big not mirrored:\n{log}"),
        // Exit 3 says the replica is not *known* complete: its copy was cut short, or events
        // came in that the stop left unlooked-at (the close of `big` arriving after the batch
        // that copied it had begun: then `big` may well be there).
        Some(3) => assert!(
            log.contains("action: incomplete")
                && (!mirrored || log.contains("changes seen by the watcher were not mirrored yet")),
            "exit 3 without a reason, or with big mirrored and nothing left to look at:\n{log}"
        ),
        other => panic!("did not exit 0 or 3 within 5 s: {other:?}\n{log}"),
    }
    assert_eq!(temp_files(&env.rep), Vec::<PathBuf>::new());
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    assert!(
        tail.iter()
            .any(|l| l.contains("stop requested") || l.contains("action: incomplete")),
        "the log does not end with the stop",
    );
}

#[test]
fn sigint_stops_cleanly() {
    stops_on(Signal::INT);
}

#[test]
fn sigterm_stops_cleanly() {
    stops_on(Signal::TERM);
}

// ---- the source going away ----

#[test]
fn source_removed_leaves_the_replica_alone_until_it_returns() {
    let _g = serial();
    let env = env_with(&[("a", b"a"), ("d/b", &bytes(5000, 12)), ("d/e/c", b"c")]);
    let live = start(&env);
    let kept = fingerprint(&env.rep);
    fs::remove_dir_all(&env.src).unwrap();
    live.wait_log(&["source unavailable"], Duration::from_secs(10));
    let touched = wait_until(Duration::from_millis(300), || fingerprint(&env.rep) != kept);
    assert!(!touched, "the replica was touched");

    // Back, with different contents, in one step (an empty SRC is refused on purpose).
    let staging = env.root().join("new-src");
    write(staging.join("back"), b"back");
    fs::rename(&staging, &env.src).unwrap();
    converge_within(&env, Duration::from_secs(20));
}

#[test]
fn source_moved_away_and_back() {
    let _g = serial();
    let env = env_with(&[("a", b"a"), ("d/b", b"b")]);
    let live = start(&env);
    let kept = fingerprint(&env.rep);
    let away = env.root().join("away");
    fs::rename(&env.src, &away).unwrap();
    live.wait_log(&["source unavailable"], Duration::from_secs(10));
    // Changes in the moved folder are not SRC's: nothing of them reaches REPLICA.
    write(away.join("more"), b"m");
    fs::remove_file(away.join("a")).unwrap();
    let touched = wait_until(Duration::from_millis(500), || fingerprint(&env.rep) != kept);
    assert!(!touched, "the replica was touched");
    fs::rename(&away, &env.src).unwrap();
    converge_within(&env, Duration::from_secs(20));
}

/// `rm -rf SRC; mkdir SRC; cp ... SRC`: the pass on resume finds SRC empty and refuses to
/// empty REPLICA (on purpose), but nothing retries it once SRC has entries again: each
/// event syncs only its own path, and REPLICA keeps the old tree until the next interval.
#[test]
fn source_recreated_empty_then_filled() {
    let _g = serial();
    let env = env_with(&[("a", b"a"), ("d/b", b"b")]);
    let live = start(&env);
    fs::remove_dir_all(&env.src).unwrap();
    live.wait_log(&["source unavailable"], Duration::from_secs(10));
    // Recreated but empty: that is not a source coming back (an empty mountpoint looks the
    // same), so the replica stays as it was...
    mkdir(&env.src);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !live.log_text().contains("source is back"),
        "{}",
        live.output()
    );
    assert_eq!(fs::read(env.rep.join("d/b")).unwrap(), b"b");
    // ...until it holds something again; then it is mirrored as it is (a build tool that
    // deletes and remakes its output folder keeps being mirrored).
    write(env.src.join("back"), b"back");
    live.wait_log(&["source is back"], Duration::from_secs(10));
    converge_within(&env, Duration::from_secs(20));
}
