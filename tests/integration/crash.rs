//! Crash safety of the one-shot mirror: a `--once` pass killed with SIGKILL at any moment
//! leaves every file under its real name in REPLICA either complete-and-new or
//! complete-and-old (never torn), at most some temp files beside them, and the next pass
//! removes those temp files and converges.
//!
//! The kill moments are chosen with a sleep, but nothing asserted depends on where the kill
//! lands: the invariant must hold at every instant of a pass.
use crate::support::*;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const FILES: usize = 8;
const SIZE: usize = 24 << 20;
/// When to kill a running pass: fixed moments, and fractions of how long an uninterrupted pass
/// takes on this machine (a pass over 192 MiB can take well under 50 ms), so that kills land
/// early, midway and late in the copying wherever the test runs.
const KILL_AFTER_MS: [u64; 3] = [2, 5, 20];
const KILL_AT_FRACTION: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// Relative paths of the big files, spread over nested directories so that kills also land
/// between directory creation and the copies into it.
fn names() -> Vec<PathBuf> {
    (0..FILES)
        .map(|i| match i % 3 {
            0 => PathBuf::from(format!("f{i}.bin")),
            1 => PathBuf::from(format!("a/f{i}.bin")),
            _ => PathBuf::from(format!("a/b/f{i}.bin")),
        })
        .collect()
}

/// One version of every file: its bytes by relative path.
type Version = BTreeMap<PathBuf, Vec<u8>>;

fn version(seed: u64) -> Version {
    names()
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, bytes(SIZE, seed * 1000 + i as u64)))
        .collect()
}

fn put(root: &Path, v: &Version, mtime: i64) {
    for (p, data) in v {
        write(root.join(p), data);
        set_mtime(root.join(p), mtime, 0);
    }
}

fn once_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["--once", "-q"];
    args.extend_from_slice(extra);
    args
}

/// How long an uninterrupted pass takes; it must succeed.
fn timed_pass(env: &Env, extra: &[&'static str]) -> Duration {
    let started = Instant::now();
    let out = env.cmd(&once_args(extra)).output().unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    took
}

/// The kill moments for a pass that takes `full` when left alone.
fn kill_moments(full: Duration) -> Vec<Duration> {
    let mut at: Vec<Duration> = KILL_AFTER_MS
        .iter()
        .map(|&ms| Duration::from_millis(ms))
        .chain(KILL_AT_FRACTION.iter().map(|&f| full.mul_f64(f)))
        .collect();
    at.sort();
    at
}

/// Start a `--once` pass, let it run for `after`, SIGKILL it, reap it. Returns whether the
/// kill found it still running.
fn kill_after(env: &Env, extra: &[&'static str], after: Duration) -> bool {
    let mut child = env
        .cmd(&once_args(extra))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    // SIGKILL (`Child::kill`); a pass that finished meanwhile is fine too.
    let _ = child.kill();
    child.wait().unwrap();
    running
}

/// Every regular file under a real (non-temp) name in `rep` must be byte-equal to one of
/// the allowed versions of that path. Returns how many temp files were lying around.
#[track_caller]
fn assert_no_torn_files(rep: &Path, allowed: &[&Version], when: &str) -> usize {
    let mut temps = 0;
    if !rep.exists() {
        return 0;
    }
    for e in walkdir::WalkDir::new(rep).min_depth(1) {
        let e = e.unwrap();
        if replwatch::tempname::is_temp_name(e.file_name()) {
            temps += 1;
            continue;
        }
        let rel = e.path().strip_prefix(rep).unwrap().to_path_buf();
        let ft = e.file_type();
        if ft.is_dir() {
            assert!(
                allowed
                    .iter()
                    .any(|v| v.keys().any(|p| p.starts_with(&rel))),
                "{when}: unexpected directory in replica: {}",
                rel.display()
            );
            continue;
        }
        assert!(ft.is_file(), "{when}: unexpected entry: {}", rel.display());
        let got = fs::read(e.path()).unwrap();
        let candidates: Vec<&Vec<u8>> = allowed.iter().filter_map(|v| v.get(&rel)).collect();
        assert!(
            !candidates.is_empty(),
            "{when}: unexpected file in replica: {}",
            rel.display()
        );
        assert!(
            candidates.iter().any(|c| **c == got),
            "{when}: torn file {} ({} bytes) matches no complete version",
            rel.display(),
            got.len()
        );
    }
    temps
}

#[test]
fn killed_pass_leaves_no_torn_files_and_next_pass_converges() {
    let env = Env::new();
    let new = version(1);
    put(&env.src, &new, 1_600_000_000);
    let (mut kills, mut hit, mut leftovers) = (0, 0, 0);
    for extra in [&[][..], &["--fsync"][..]] {
        if env.rep.exists() {
            fs::remove_dir_all(&env.rep).unwrap();
        }
        let full = timed_pass(&env, extra);
        for at in kill_moments(full) {
            fs::remove_dir_all(&env.rep).unwrap();
            // A fresh replica, killed once...
            let when = format!("{extra:?}, first kill at {at:?} (full pass {full:?})");
            hit += usize::from(kill_after(&env, extra, at));
            leftovers += assert_no_torn_files(&env.rep, &[&new], &when);
            // ...and the pass that resumes from that state (stale temps and all), killed too.
            let when = format!("{extra:?}, second kill at {at:?} (full pass {full:?})");
            hit += usize::from(kill_after(&env, extra, at));
            leftovers += assert_no_torn_files(&env.rep, &[&new], &when);
            kills += 2;
            // A normal pass converges and removes whatever the killed ones left.
            env.once_ok();
            assert_eq!(temp_files(&env.rep), Vec::<PathBuf>::new(), "{when}");
        }
    }
    eprintln!("{hit} of {kills} kills hit a running pass; {leftovers} temp files seen after them");
}

#[test]
fn killed_update_keeps_old_or_new_version_never_a_mix() {
    let env = Env::new();
    let old = version(2);
    let new = version(3);
    put(&env.src, &old, 1_500_000_000);
    env.once_ok();
    // Time a full replacement of every file, then put the old version back.
    put(&env.src, &new, 1_500_000_001);
    let full = timed_pass(&env, &[]);
    put(&env.src, &old, 1_500_000_002);
    env.once_ok();
    let (mut kills, mut hit) = (0, 0);
    // Same sizes both ways, so a partly overwritten file could not hide behind its length.
    for (i, at) in kill_moments(full).into_iter().enumerate() {
        // Alternate the source between the two versions so that every round has every file
        // to replace; at any moment each replica file must be one of the two, whole.
        let (from, to) = if i % 2 == 0 {
            (&old, &new)
        } else {
            (&new, &old)
        };
        put(&env.src, to, 1_500_000_003 + i as i64);
        hit += usize::from(kill_after(&env, &[], at));
        kills += 1;
        assert_no_torn_files(
            &env.rep,
            &[from, to],
            &format!("round {i}, kill at {at:?} (full pass {full:?})"),
        );
    }
    env.once_ok();
    assert_eq!(temp_files(&env.rep), Vec::<PathBuf>::new());
    eprintln!("{hit} of {kills} kills hit a running pass");
}
