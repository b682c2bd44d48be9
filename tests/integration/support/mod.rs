//! Shared test helpers: a temp tree with SRC / REPLICA / LOGDIR, builders for entries, the
//! binary under test, and (in `tree`, shared with the benchmarks) a tree-equality check that
//! compares everything replwatch promises to preserve.
#![allow(dead_code)]

pub mod live;
pub mod tree;

pub use tree::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A unique temp folder holding `src/`, `rep/` (not created) and `logs/`.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub rep: PathBuf,
    pub logs: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        Env::new_in(&std::env::temp_dir())
    }

    /// `new`, in `dir` (a tmpfs such as /dev/shm keeps trees of 100,000 files quick).
    pub fn new_in(dir: &Path) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("replwatch-test-")
            .tempdir_in(dir)
            .unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let src = root.join("src");
        fs::create_dir(&src).unwrap();
        Env {
            src,
            rep: root.join("rep"),
            logs: root.join("logs"),
            tmp,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.src.parent().unwrap().to_path_buf()
    }

    /// `replwatch -s SRC -r REP -l LOGS` plus `extra`, not yet run.
    pub fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = replwatch();
        c.arg("-s")
            .arg(&self.src)
            .arg("-r")
            .arg(&self.rep)
            .arg("-l")
            .arg(&self.logs);
        c.args(extra);
        c
    }

    /// One `--once` pass; returns the process output.
    pub fn once(&self) -> Output {
        self.cmd(&["--once"]).output().unwrap()
    }

    /// One `--once` pass that must succeed (exit 0) and leave REPLICA equal to SRC.
    pub fn once_ok(&self) -> Output {
        let out = self.once();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_mirrored(&self.src, &self.rep);
        out
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.logs.join("replwatch.log")).unwrap_or_default()
    }
}

/// The binary under test, copied where another user can run it: the build directory may be
/// private (a checkout in /root is mode 0700), and tests that run the binary as uid 65534
/// must not depend on where the checkout lives.
pub fn binary_for_others(env: &Env) -> PathBuf {
    let bin = env.root().join("bin");
    if !bin.exists() {
        fs::create_dir(&bin).unwrap();
        fs::copy(env!("CARGO_BIN_EXE_replwatch"), bin.join("replwatch")).unwrap();
        chmod(bin.join("replwatch"), 0o755);
        chmod(&bin, 0o755);
        chmod(env.root(), 0o755);
    }
    bin.join("replwatch")
}

/// The unprivileged user the permission tests run replwatch as.
pub const NOBODY: u32 = 65534;

/// `setpriv`, which runs a command as another user without supplementary groups.
pub fn find_setpriv() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/bin".into(), "/bin".into()])
        .map(|d| d.join("setpriv"))
        .find(|p| p.is_file())
}

/// Make the temp tree usable by NOBODY: the root traversable, SRC readable, REPLICA and
/// LOGDIR created and owned by NOBODY. Call before making anything in SRC unreadable.
pub fn open_to_nobody(env: &Env) {
    chmod(env.root(), 0o755);
    for e in walkdir::WalkDir::new(&env.src) {
        let e = e.unwrap();
        chmod(e.path(), if e.file_type().is_dir() { 0o755 } else { 0o644 });
    }
    for d in [&env.rep, &env.logs] {
        mkdir(d);
        for e in walkdir::WalkDir::new(d) {
            std::os::unix::fs::lchown(e.unwrap().path(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
}

/// `replwatch -s SRC -r REP -l LOGS` plus `extra`, run as NOBODY through `setpriv` (a copy
/// of the binary NOBODY can reach), not yet run.
pub fn as_nobody(env: &Env, setpriv: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(setpriv);
    c.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(binary_for_others(env))
        .arg("-s")
        .arg(&env.src)
        .arg("-r")
        .arg(&env.rep)
        .arg("-l")
        .arg(&env.logs)
        .args(extra)
        .env("NO_COLOR", "1");
    c
}

/// `replwatch -s SRC -r REP -l LOGS` plus `extra` as a user for whom `chmod 000` means
/// something: NOBODY (through `setpriv`, after `open_to_nobody`) when the tests run as root,
/// the current user otherwise. Call before making anything in SRC unreadable.
pub fn unprivileged(env: &Env, extra: &[&str]) -> Command {
    if is_root() {
        let setpriv = find_setpriv().expect("setpriv (util-linux) is needed to run as nobody");
        open_to_nobody(env);
        as_nobody(env, &setpriv, extra)
    } else {
        env.cmd(extra)
    }
}

pub fn replwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_replwatch"));
    c.env("NO_COLOR", "1");
    c
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---- builders ----

pub fn write(path: impl AsRef<Path>, data: impl AsRef<[u8]>) {
    let p = path.as_ref();
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, data).unwrap();
}

pub fn mkdir(path: impl AsRef<Path>) {
    fs::create_dir_all(path).unwrap();
}

pub fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    let link = link.as_ref();
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    std::os::unix::fs::symlink(target, link).unwrap();
}

pub fn chmod(path: impl AsRef<Path>, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Set mtime (not following symlinks) to `secs` + `nanos`.
pub fn set_mtime(path: impl AsRef<Path>, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---- inspection ----

/// Poll `cond` every 20 ms until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll until REPLICA mirrors SRC; on timeout, fail with the remaining differences.
#[track_caller]
pub fn wait_mirrored(src: &Path, rep: &Path, deadline: Duration) {
    if !wait_until(deadline, || tree_diff(src, rep).is_empty()) {
        panic!(
            "replica did not converge in {deadline:?}:\n{}",
            tree_diff(src, rep).join("\n")
        );
    }
}

/// Inode of every entry below `root`, to prove a pass changed nothing (or renamed, not copied).
pub fn inodes(root: &Path) -> BTreeMap<PathBuf, u64> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                e.path().symlink_metadata().unwrap().ino(),
            )
        })
        .collect()
}

/// Names of leftover temp files anywhere below `root`.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| replwatch::tempname::is_temp_name(e.file_name()))
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// A hash of everything below `root` (paths, types, contents, modes): proves a folder was
/// not touched.
pub fn fingerprint(root: &Path) -> String {
    format!("{:?}", listing(root, true))
}
