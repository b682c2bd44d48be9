//! The controls around the sync: dry run, excludes, the delete guard and poll mode.
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn seeded(env: &Env) {
    write(env.src.join("keep.txt"), "same");
    write(env.src.join("changed.txt"), "new contents");
    write(env.src.join("new/deep/file.bin"), bytes(5000, 1));
    symlink("keep.txt", env.src.join("link"));
    env.once_ok();
    write(env.src.join("changed.txt"), "newer contents!");
    write(env.src.join("added.txt"), "added");
    std::fs::remove_dir_all(env.src.join("new")).unwrap();
    write(env.rep.join("extra/inside.txt"), "extra");
    chmod(env.src.join("keep.txt"), 0o600);
}

#[test]
fn dry_run_lists_every_action_and_changes_nothing() {
    let env = Env::new();
    seeded(&env);
    let before = (fingerprint(&env.rep), inodes(&env.rep));
    let out = env.cmd(&["--once", "-n"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        before,
        (fingerprint(&env.rep), inodes(&env.rep)),
        "dry run changed REPLICA"
    );
    assert!(temp_files(&env.rep).is_empty());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "> file    changed.txt (changed)",
        "+ file    added.txt (new)",
        "- dir     new (extra, 3 entries)",
        "- dir     extra (extra, 2 entries)",
        "~ meta    keep.txt (mode 0600)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // The real pass then does exactly that.
    env.once_ok();
}

#[test]
fn dry_run_without_a_replica_creates_nothing() {
    let env = Env::new();
    write(env.src.join("a/b.txt"), "x");
    let out = env.cmd(&["--once", "--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!env.rep.exists(), "dry run created the replica");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("+ dir     a (new)"), "{stdout}");
    assert!(stdout.contains("+ file    a/b.txt (new)"), "{stdout}");
}

#[test]
fn excluded_paths_are_neither_copied_nor_deleted() {
    let env = Env::new();
    write(env.src.join("a.txt"), "a");
    write(env.src.join("debug.log"), "log");
    write(env.src.join("sub/trace.log"), "log");
    write(env.src.join("build/out.o"), "obj");
    write(env.src.join("sub/build/out.o"), "obj");
    write(env.src.join("top/x"), "x");
    write(env.src.join("sub/top/x"), "x");
    // Excluded paths already in the replica stay as they are.
    write(env.rep.join("build/old.o"), "old");
    write(env.rep.join("keep.log"), "replica-only");
    let src_before = fingerprint(&env.src);
    let out = env
        .cmd(&[
            "--once",
            "--exclude",
            "*.log",
            "--exclude",
            "build/",
            "--exclude",
            "/top",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(src_before, fingerprint(&env.src));
    assert!(env.rep.join("a.txt").exists());
    assert!(
        env.rep.join("sub/top/x").exists(),
        "unanchored copy of an anchored pattern"
    );
    for gone in [
        "debug.log",
        "sub/trace.log",
        "build/out.o",
        "sub/build",
        "top",
    ] {
        assert!(!env.rep.join(gone).exists(), "{gone} was copied");
    }
    assert_eq!(std::fs::read(env.rep.join("build/old.o")).unwrap(), b"old");
    assert_eq!(
        std::fs::read(env.rep.join("keep.log")).unwrap(),
        b"replica-only"
    );
}

#[test]
fn exclude_from_reads_patterns_and_comments() {
    let env = Env::new();
    write(env.src.join("a.txt"), "a");
    write(env.src.join("b.tmp"), "b");
    let list = env.root().join("excludes");
    write(&list, "# temp files\n*.tmp\n\n");
    let out = env
        .cmd(&["--once", "--exclude-from", list.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(env.rep.join("a.txt").exists() && !env.rep.join("b.tmp").exists());
}

#[test]
fn max_delete_refuses_the_whole_pass() {
    let env = Env::new();
    for i in 0..5 {
        write(env.src.join(format!("f{i}")), "x");
    }
    env.once_ok();
    for i in 0..3 {
        std::fs::remove_file(env.src.join(format!("f{i}"))).unwrap();
    }
    write(env.src.join("new"), "n");
    let before = (fingerprint(&env.rep), inodes(&env.rep));
    let out = env.cmd(&["--once", "--max-delete", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(
        before,
        (fingerprint(&env.rep), inodes(&env.rep)),
        "something changed"
    );
    assert!(
        env.log_text().contains("would remove 3 entries"),
        "{}",
        env.log_text()
    );
    let out = env.cmd(&["--once", "--max-delete", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
}

#[test]
fn max_delete_counts_entries_inside_removed_directories() {
    let env = Env::new();
    write(env.src.join("keep"), "k");
    for i in 0..4 {
        write(env.src.join(format!("d/f{i}")), "x");
    }
    env.once_ok();
    std::fs::remove_dir_all(env.src.join("d")).unwrap();
    let out = env.cmd(&["--once", "--max-delete", "4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(env.rep.join("d/f3").exists());
}

/// A live replwatch, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn live(env: &Env, extra: &[&str]) -> Running {
    let mut cmd: Command = env.cmd(&["-i", "10m", "-d", "2m", "--debounce", "50ms"]);
    cmd.args(extra).stdout(Stdio::null()).stderr(Stdio::null());
    let child = Running(cmd.spawn().unwrap());
    assert!(
        wait_until(Duration::from_secs(20), || env
            .log_text()
            .contains("watching")),
        "never started watching:\n{}",
        env.log_text()
    );
    child
}

#[test]
fn poll_mode_mirrors_changes_without_inotify() {
    let env = Env::new();
    write(env.src.join("a"), "a");
    let _run = live(&env, &["--poll", "200ms"]);
    wait_mirrored(&env.src, &env.rep, Duration::from_secs(15));
    write(env.src.join("d/new.txt"), "new");
    std::fs::remove_file(env.src.join("a")).unwrap();
    wait_mirrored(&env.src, &env.rep, Duration::from_secs(15));
    // The periodic pass is 10 minutes away: only the poll watcher can have done this.
    assert!(
        env.log_text().contains("trigger: event"),
        "{}",
        env.log_text()
    );
}

#[test]
fn live_events_under_excluded_paths_are_dropped() {
    let env = Env::new();
    write(env.src.join("a"), "a");
    let _run = live(&env, &["--exclude", "cache/", "--exclude", "*.swp"]);
    write(env.src.join("cache/big"), "c");
    write(env.src.join(".a.swp"), "s");
    write(env.src.join("b"), "b");
    assert!(wait_until(Duration::from_secs(15), || env
        .rep
        .join("b")
        .exists()));
    // Give the excluded changes the same chance to (wrongly) arrive: one more marker file.
    write(env.src.join("c"), "c");
    assert!(wait_until(Duration::from_secs(15), || env
        .rep
        .join("c")
        .exists()));
    assert!(!env.rep.join("cache").exists());
    assert!(!env.rep.join(".a.swp").exists());
    assert!(!env.log_text().contains("cache"), "{}", env.log_text());
}

#[test]
fn dry_run_in_live_mode_reports_events_and_writes_nothing() {
    let env = Env::new();
    write(env.src.join("a"), "a");
    env.once_ok();
    let before = (fingerprint(&env.rep), inodes(&env.rep));
    let out_path = env.root().join("stdout.txt");
    let mut cmd = env.cmd(&["-n", "-i", "10m", "-d", "2m", "--debounce", "50ms"]);
    cmd.stdout(std::fs::File::create(&out_path).unwrap());
    let _run = Running(cmd.spawn().unwrap());
    assert!(wait_until(Duration::from_secs(20), || env
        .log_text()
        .contains("watching")));
    write(env.src.join("b"), "b");
    let read = || std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(15), || read()
            .contains("+ file    b (new)")),
        "{}",
        read()
    );
    assert_eq!(before, (fingerprint(&env.rep), inodes(&env.rep)));
}
