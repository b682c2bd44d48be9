//! Fault injection for the one-shot mirror (`--once`): entries the runner may not read, a
//! replica that runs out of space, a source file rewritten while it is copied, and an empty
//! source. Each fault must cost only the entries it touches (exit 3, each in the log), never
//! leave a torn file or a temp file, and never delete what a failed read could not see.
//!
//! Permission faults need root (to build a tree that an unprivileged runner partly cannot
//! read) and `setpriv`; the ENOSPC tests need root to mount a small tmpfs. Without them those
//! tests say why and pass.
use crate::support::*;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

// ---- running as an unprivileged user ----

/// Root and `setpriv`, or the reason the test cannot run.
fn unprivileged_runner() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("needs root to build a tree another user cannot fully read".into());
    }
    find_setpriv().ok_or_else(|| "setpriv not found".to_string())
}

fn chown_tree(root: &Path, id: u32) {
    for e in walkdir::WalkDir::new(root) {
        std::os::unix::fs::lchown(e.unwrap().path(), Some(id), Some(id)).unwrap();
    }
}

/// `replwatch -s SRC -r REP -l LOGS --once` as NOBODY, without supplementary groups.
fn once_as_nobody(env: &Env, setpriv: &Path) -> Output {
    as_nobody(env, setpriv, &["--once"]).output().unwrap()
}

/// The log lines that mention `path` (as logged, relative to the roots).
fn log_lines_about<'a>(log: &'a str, path: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(&format!("path: {path},")) || l.contains(&format!(": {path}:")))
        .collect()
}

#[track_caller]
fn assert_logged_permission_denied(log: &str, path: &str) {
    let lines = log_lines_about(log, path);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Permission denied") && l.contains("errno: 13")),
        "no permission-denied record for {path}; lines about it: {lines:#?}\n--- log\n{log}"
    );
}

#[track_caller]
fn assert_same_bytes(a: impl AsRef<Path>, b: impl AsRef<Path>) {
    let (a, b) = (a.as_ref(), b.as_ref());
    let (x, y) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

#[track_caller]
fn assert_no_temp_files(root: &Path) {
    assert_eq!(temp_files(root), Vec::<PathBuf>::new(), "temp files left");
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn unreadable_source_file_is_reported_and_the_rest_is_copied() {
    let setpriv = match unprivileged_runner() {
        Ok(p) => p,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let env = Env::new();
    write(env.src.join("a.txt"), "alpha");
    write(env.src.join("d/c.txt"), bytes(70_000, 1));
    write(env.src.join("d/secret.bin"), "new secret");
    write(env.src.join("old-secret.bin"), "new version, unreadable");
    write(env.src.join("z.txt"), "zulu");
    open_to_nobody(&env);
    // A replica copy of an unreadable file must survive as it was.
    write(env.rep.join("old-secret.bin"), "old version");
    chown_tree(&env.rep, NOBODY);
    chmod(env.src.join("d/secret.bin"), 0o000);
    chmod(env.src.join("old-secret.bin"), 0o000);
    let src_before = fingerprint(&env.src);

    let out = once_as_nobody(&env, &setpriv);

    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    for readable in ["a.txt", "d/c.txt", "z.txt"] {
        assert_same_bytes(env.src.join(readable), env.rep.join(readable));
    }
    assert!(!env.rep.join("d/secret.bin").exists());
    assert_eq!(
        fs::read(env.rep.join("old-secret.bin")).unwrap(),
        b"old version"
    );
    let log = env.log_text();
    assert_logged_permission_denied(&log, "d/secret.bin");
    assert_logged_permission_denied(&log, "old-secret.bin");
    assert_no_temp_files(&env.rep);
    assert_eq!(src_before, fingerprint(&env.src), "SRC was changed");
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn unreadable_source_dir_deletes_nothing_below_its_replica_counterpart() {
    let setpriv = match unprivileged_runner() {
        Ok(p) => p,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let env = Env::new();
    write(env.src.join("ok.txt"), "fine");
    // Not searchable nor readable by NOBODY: cannot be opened at all.
    write(env.src.join("locked/a.txt"), "a, new");
    write(env.src.join("locked/sub/b.txt"), "b, new");
    // Readable but not searchable: the names can be listed, never stat-ed.
    write(env.src.join("listonly/c.txt"), "c, new");
    open_to_nobody(&env);
    // The replica holds an older mirror of both, with entries the source no longer has:
    // a readable source would have them removed.
    for d in ["locked", "listonly"] {
        write(env.rep.join(d).join("a.txt"), "a, old");
        write(env.rep.join(d).join("c.txt"), "c, old");
        write(env.rep.join(d).join("extra.txt"), "only in the replica");
        write(env.rep.join(d).join("sub/b.txt"), "b, old");
        write(
            env.rep.join(d).join("gone/deep/x.txt"),
            "only in the replica",
        );
    }
    chown_tree(&env.rep, NOBODY);
    chmod(env.src.join("locked"), 0o700);
    chmod(env.src.join("listonly"), 0o744);
    let locked_before = fingerprint(&env.rep.join("locked"));
    let listonly_before = fingerprint(&env.rep.join("listonly"));
    let src_before = fingerprint(&env.src);

    let out = once_as_nobody(&env, &setpriv);

    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(
        locked_before,
        fingerprint(&env.rep.join("locked")),
        "replica below an unreadable source dir was changed"
    );
    assert_eq!(
        listonly_before,
        fingerprint(&env.rep.join("listonly")),
        "replica below an unsearchable source dir was changed"
    );
    assert_same_bytes(env.src.join("ok.txt"), env.rep.join("ok.txt"));
    let log = env.log_text();
    assert_logged_permission_denied(&log, "locked");
    assert_logged_permission_denied(&log, "listonly");
    assert_no_temp_files(&env.rep);
    assert_eq!(src_before, fingerprint(&env.src), "SRC was changed");
}

// ---- a full replica: ENOSPC ----

/// Mounting tests run one at a time.
static MOUNTS: Mutex<()> = Mutex::new(());

/// A tmpfs mounted for the life of the value, unmounted on drop (also when a test panics).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("needs root to mount a tmpfs".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", describe(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

const SMALL: [&str; 4] = ["a.txt", "m.txt", "sub/n.txt", "z.txt"];
const BIG: &str = "big.bin";
const OLD_BIG: &[u8] = &[b'o'; 100];

/// SRC with a few small files and one 3 MiB file; REPLICA a fresh 1 MiB tmpfs.
fn full_disk_env() -> Result<(Env, Tmpfs), String> {
    let env = Env::new();
    for (i, name) in SMALL.iter().enumerate() {
        write(env.src.join(name), bytes(3000 + i, i as u64));
    }
    write(env.src.join(BIG), bytes(3 << 20, 99));
    mkdir(&env.rep);
    let fs = Tmpfs::mount(&env.rep, "1m")?;
    Ok((env, fs))
}

/// Every file under a real name in REPLICA is a whole copy of its source (or, for the big
/// file, possibly the old content seeded before).
#[track_caller]
fn assert_only_whole_files(env: &Env, old_big: Option<&[u8]>) {
    for e in walkdir::WalkDir::new(&env.rep).min_depth(1) {
        let e = e.unwrap();
        if !e.file_type().is_file() || replwatch::tempname::is_temp_name(e.file_name()) {
            continue;
        }
        let rel = e.path().strip_prefix(&env.rep).unwrap();
        let got = fs::read(e.path()).unwrap();
        let whole = fs::read(env.src.join(rel)).is_ok_and(|s| s == got);
        let old = rel == Path::new(BIG) && old_big == Some(&got[..]);
        assert!(
            whole || old,
            "torn or foreign file in replica: {} ({} bytes)",
            rel.display(),
            got.len()
        );
    }
}

#[track_caller]
fn assert_enospc_logged(env: &Env) {
    let log = env.log_text();
    let lines = log_lines_about(&log, BIG);
    assert!(
        lines.iter().any(|l| l.contains("errno: 28")),
        "no ENOSPC record for {BIG}: {lines:#?}\n--- log\n{log}"
    );
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn full_replica_copies_what_fits_and_leaves_no_temp_files() {
    let _serial = MOUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let (env, replica_fs) = match full_disk_env() {
        Ok(x) => x,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let src_before = fingerprint(&env.src);

    // One worker: the small files are copied one after another with the big one, never
    // while its temp file holds the whole disk (with several workers a small file may
    // legitimately hit ENOSPC too; the next test covers that).
    let out = env.cmd(&["--once", "--workers", "1"]).output().unwrap();

    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    for name in SMALL {
        assert_same_bytes(env.src.join(name), env.rep.join(name));
    }
    assert!(!env.rep.join(BIG).exists(), "a partial {BIG} was left");
    assert_no_temp_files(&env.rep);
    assert_enospc_logged(&env);
    assert_eq!(src_before, fingerprint(&env.src), "SRC was changed");

    // Once there is room, the next pass completes the mirror.
    replica_fs.resize("16m");
    env.once_ok();
    assert_no_temp_files(&env.rep);
}

#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn full_replica_keeps_the_old_version_of_a_file_it_cannot_replace() {
    let _serial = MOUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let (env, replica_fs) = match full_disk_env() {
        Ok(x) => x,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    write(env.rep.join(BIG), OLD_BIG);
    set_mtime(env.rep.join(BIG), 1_000_000_000, 0);
    let src_before = fingerprint(&env.src);

    // All workers at once: which small copies also run out of space depends on timing, but
    // nothing may be torn and the old big file must survive whole.
    let out = env.once();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(fs::read(env.rep.join(BIG)).unwrap(), OLD_BIG);
    assert_only_whole_files(&env, Some(OLD_BIG));
    assert_no_temp_files(&env.rep);

    // One worker: everything but the big file lands.
    let out = env.cmd(&["--once", "--workers", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(fs::read(env.rep.join(BIG)).unwrap(), OLD_BIG);
    for name in SMALL {
        assert_same_bytes(env.src.join(name), env.rep.join(name));
    }
    assert_no_temp_files(&env.rep);
    assert_enospc_logged(&env);
    assert_eq!(src_before, fingerprint(&env.src), "SRC was changed");

    replica_fs.resize("16m");
    env.once_ok();
    assert_no_temp_files(&env.rep);
}

// ---- a source file rewritten while it is copied ----

#[test]
fn file_rewritten_during_copy_is_mirrored_whole_or_left_for_later() {
    const SIZE: usize = 32 << 20;
    const RUNS: usize = 5;
    let env = Env::new();
    let a = bytes(SIZE, 7);
    let b: Vec<u8> = a.iter().map(|x| !x).collect();
    let (ha, hb) = (blake3::hash(&a), blake3::hash(&b));
    write(env.src.join("quiet.txt"), "not changing");
    let hot = env.src.join("hot.bin");
    write(&hot, &a);

    // The writer overwrites the whole file in place, A and B in turn, each version in ONE
    // pwrite: the file is a mix of both only while a write is in flight, which is "changing
    // while being copied". Any mixed replica therefore comes from a copy that overlapped a
    // write, whatever the timing.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, writes) = (Arc::clone(&stop), Arc::clone(&writes));
        let file = fs::OpenOptions::new().write(true).open(&hot).unwrap();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let data = if n % 2 == 1 { &b } else { &a };
                let written = file.write_at(data, 0).unwrap();
                assert_eq!(
                    written, SIZE,
                    "short pwrite: the test needs each version written in one call"
                );
                writes.store(n, Ordering::Relaxed);
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || writes
        .load(Ordering::Relaxed)
        > 0));

    let stopper = StopOnDrop(&stop);
    let mut outcomes = Vec::new();
    for run in 0..RUNS {
        let log_before = env.log_text().len();
        let out = env.once();
        let code = out.status.code();
        let log = env.log_text();
        let this_run = &log[log_before..];
        assert!(
            matches!(code, Some(0) | Some(3)),
            "run {run}: {}",
            describe(&out)
        );
        if code == Some(3) {
            assert!(
                log_lines_about(this_run, "hot.bin")
                    .iter()
                    .any(|l| l.contains("kept changing") || l.contains("being written")),
                "run {run}: exit 3 without a 'kept changing' or 'being written' record for \
                 hot.bin\n{this_run}"
            );
        }
        let rep_hot = env.rep.join("hot.bin");
        if rep_hot.exists() {
            let h = blake3::hash(&fs::read(&rep_hot).unwrap());
            assert!(
                h == ha || h == hb,
                "run {run} (exit {code:?}): replica hot.bin is a mix of two versions\n{this_run}"
            );
        }
        assert_same_bytes(env.src.join("quiet.txt"), env.rep.join("quiet.txt"));
        assert_no_temp_files(&env.rep);
        outcomes.push(code);
    }
    drop(stopper);
    writer.join().expect("writer thread failed");
    eprintln!(
        "exits while the file was rewritten: {outcomes:?}; {} writes",
        writes.load(Ordering::Relaxed)
    );

    // Quiet again: one pass mirrors it exactly.
    env.once_ok();
    assert_no_temp_files(&env.rep);
}

/// Stops the writer thread however the test ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The deterministic form of the race above: a write is held in flight (its buffer's second
/// half is a userfaultfd page the kernel must wait for) after the kernel has already bumped
/// the file's mtime and written the first half. A pass taken then sees a stable stat and a
/// half-new, half-old file.
#[test]
#[cfg_attr(not(replwatch_root), ignore = "needs root")]
fn file_with_a_write_in_flight_is_not_mirrored_torn() {
    const SIZE: usize = 8 << 20;
    const HALF: usize = SIZE / 2;
    if !is_root() || !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return eprintln!("skipped: needs root (kernel-mode userfaultfd) on x86_64 or aarch64");
    }
    let env = Env::new();
    let old = bytes(SIZE, 11);
    let new = bytes(SIZE, 12);
    let hot = env.src.join("hot.bin");
    write(&hot, &old);
    set_mtime(&hot, 1_500_000_000, 0);
    env.once_ok();

    let file = fs::OpenOptions::new().write(true).open(&hot).unwrap();
    let stalled = match uffd::StalledWrite::start(file, &new[..HALF], SIZE) {
        Ok(s) => s,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    if !stalled.wait_stalled(Duration::from_secs(10)) {
        return eprintln!("skipped: the write never stalled on the userfaultfd page");
    }
    // Now: SRC hot.bin is new[..HALF] ++ old[HALF..], its mtime already that of the write.
    let mut problems = Vec::new();
    let mid = env.once();
    let rep = fs::read(env.rep.join("hot.bin")).unwrap();
    if rep != old && rep != new {
        problems.push(format!(
            "pass during the write: exit {:?} and replica hot.bin is torn ({})",
            mid.status.code(),
            layout(&rep, &old, &new)
        ));
    }
    let mtime_during = fs::metadata(&hot).unwrap().modified().unwrap();
    assert_eq!(
        stalled.finish(&new[HALF..]),
        SIZE as isize,
        "stalled pwrite"
    );
    assert_eq!(fs::read(&hot).unwrap(), new, "the write did not complete");
    let mtime_after = fs::metadata(&hot).unwrap().modified().unwrap();

    // The source is quiet and whole now: the next pass must make the replica equal to it.
    let after = env.once();
    let diff = tree_diff(&env.src, &env.rep);
    if after.status.code() != Some(0) || !diff.is_empty() {
        problems.push(format!(
            "pass after the write: exit {:?}, replica {} (source mtime {} by the write's end), \
             differences:\n{}",
            after.status.code(),
            layout(&fs::read(env.rep.join("hot.bin")).unwrap(), &old, &new),
            if mtime_during == mtime_after {
                "unchanged"
            } else {
                "changed"
            },
            diff.join("\n")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Which 1 MiB blocks of `got` come from `old`, from `new`, or neither: "OOOONNNN".
fn layout(got: &[u8], old: &[u8], new: &[u8]) -> String {
    const BLOCK: usize = 1 << 20;
    let blocks: String = got
        .chunks(BLOCK)
        .enumerate()
        .map(|(i, c)| {
            let at = i * BLOCK..i * BLOCK + c.len();
            if old.get(at.clone()) == Some(c) {
                'O'
            } else if new.get(at) == Some(c) {
                'N'
            } else {
                '?'
            }
        })
        .collect();
    format!("{} bytes, 1 MiB blocks old/new: {blocks}", got.len())
}

/// Just enough userfaultfd to hold a `pwrite` in the kernel halfway: the write's source buffer
/// is an anonymous mapping whose second half is registered "missing", so the kernel, having
/// updated the file's times and copied the first half, waits for the test to supply the rest.
mod uffd {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::thread::JoinHandle;
    use std::time::Duration;

    #[repr(C)]
    struct Api {
        api: u64,
        features: u64,
        ioctls: u64,
    }
    #[repr(C)]
    struct Range {
        start: u64,
        len: u64,
    }
    #[repr(C)]
    struct Register {
        range: Range,
        mode: u64,
        ioctls: u64,
    }
    #[repr(C)]
    struct Copy {
        dst: u64,
        src: u64,
        len: u64,
        mode: u64,
        copy: i64,
    }

    /// `_IOWR(0xAA, nr, size)` in the generic encoding (x86_64, aarch64).
    const fn iowr(nr: u64, size: usize) -> u64 {
        (3 << 30) | ((size as u64) << 16) | (0xAA << 8) | nr
    }
    const UFFD_API: u64 = 0xAA;
    const UFFDIO_API: u64 = iowr(0x3F, size_of::<Api>());
    const UFFDIO_REGISTER: u64 = iowr(0x00, size_of::<Register>());
    const UFFDIO_COPY: u64 = iowr(0x03, size_of::<Copy>());
    const MODE_MISSING: u64 = 1;
    const EVENT_PAGEFAULT: u8 = 0x12;

    /// A `pwrite(file, buf, len, 0)` running in a thread, stalled after `head`.
    pub struct StalledWrite {
        uffd: Option<OwnedFd>,
        base: usize,
        len: usize,
        split: usize,
        writer: Option<JoinHandle<isize>>,
    }

    fn os_err(what: &str) -> String {
        format!("{what}: {}", io::Error::last_os_error())
    }

    impl StalledWrite {
        /// Start writing `head` followed by `len - head.len()` bytes supplied by `finish`.
        /// `head.len()` must be a multiple of the page size.
        pub fn start(file: std::fs::File, head: &[u8], len: usize) -> Result<Self, String> {
            // SAFETY: plain system calls on memory this function maps and owns.
            unsafe {
                let fd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK);
                if fd < 0 {
                    return Err(os_err("userfaultfd"));
                }
                let uffd = OwnedFd::from_raw_fd(fd as i32);
                let mut api = Api {
                    api: UFFD_API,
                    features: 0,
                    ioctls: 0,
                };
                if libc::ioctl(uffd.as_raw_fd(), UFFDIO_API as _, &mut api) < 0 {
                    return Err(os_err("UFFDIO_API"));
                }
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if base == libc::MAP_FAILED {
                    return Err(os_err("mmap"));
                }
                let mut me = StalledWrite {
                    uffd: Some(uffd),
                    base: base as usize,
                    len,
                    split: head.len(),
                    writer: None,
                };
                std::ptr::copy_nonoverlapping(head.as_ptr(), base as *mut u8, head.len());
                let mut reg = Register {
                    range: Range {
                        start: (me.base + me.split) as u64,
                        len: (len - me.split) as u64,
                    },
                    mode: MODE_MISSING,
                    ioctls: 0,
                };
                let fd = me.uffd.as_ref().unwrap().as_raw_fd();
                if libc::ioctl(fd, UFFDIO_REGISTER as _, &mut reg) < 0 {
                    return Err(os_err("UFFDIO_REGISTER"));
                }
                let addr = me.base;
                me.writer = Some(std::thread::spawn(move || {
                    libc::pwrite(file.as_raw_fd(), addr as *const libc::c_void, len, 0)
                }));
                Ok(me)
            }
        }

        /// Wait until the write is held on the missing page.
        pub fn wait_stalled(&self, timeout: Duration) -> bool {
            let fd = self.uffd.as_ref().unwrap().as_raw_fd();
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let mut msg = [0u8; 32];
            // SAFETY: poll and read into a local buffer of the size given.
            unsafe {
                libc::poll(&mut pfd, 1, timeout.as_millis() as i32) == 1
                    && libc::read(fd, msg.as_mut_ptr().cast(), msg.len()) == msg.len() as isize
                    && msg[0] == EVENT_PAGEFAULT
            }
        }

        /// Supply the rest of the buffer, let the write complete, and return what it returned.
        pub fn finish(mut self, tail: &[u8]) -> isize {
            assert_eq!(tail.len(), self.len - self.split);
            let mut copy = Copy {
                dst: (self.base + self.split) as u64,
                src: tail.as_ptr() as u64,
                len: tail.len() as u64,
                mode: 0,
                copy: 0,
            };
            let fd = self.uffd.as_ref().unwrap().as_raw_fd();
            // SAFETY: copies from `tail` into the registered range of our own mapping.
            let r = unsafe { libc::ioctl(fd, UFFDIO_COPY as _, &mut copy) };
            assert!(r == 0, "{}", os_err("UFFDIO_COPY"));
            self.writer.take().unwrap().join().unwrap()
        }
    }

    impl Drop for StalledWrite {
        fn drop(&mut self) {
            // Closing the userfaultfd lets a still-stalled write go on (with zero pages).
            drop(self.uffd.take());
            if let Some(w) = self.writer.take() {
                let _ = w.join();
            }
            // SAFETY: our own mapping, no longer used by the joined writer.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
        }
    }
}

// ---- an empty source ----

#[test]
fn empty_source_never_empties_the_replica_unless_allowed() {
    let env = Env::new();
    write(env.src.join("a.txt"), "a");
    write(env.src.join("d/b.txt"), "b");
    env.once_ok();
    fs::remove_file(env.src.join("a.txt")).unwrap();
    fs::remove_dir_all(env.src.join("d")).unwrap();
    let rep_before = fingerprint(&env.rep);

    let out = env.once();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(rep_before, fingerprint(&env.rep), "replica was touched");
    let log = env.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("source is empty") && l.contains("--allow-empty-source")),
        "no record of the refusal:\n{log}"
    );

    let out = env
        .cmd(&["--once", "--allow-empty-source"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);
    assert_eq!(fs::read_dir(&env.rep).unwrap().count(), 0);
}

#[test]
fn empty_source_with_only_a_stale_temp_in_the_replica_is_not_refused() {
    let env = Env::new();
    let stale = env
        .rep
        .join(&*replwatch::tempname::temp_name("a.txt".as_ref()));
    write(&stale, "half a file from a killed run");
    let out = env.once();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!stale.exists(), "stale temp file kept");
    assert_mirrored(&env.src, &env.rep);
}

/// A logfile that cannot be written (here: RLIMIT_FSIZE lets no file grow past 256 bytes, as
/// a full disk would; the logfile is no longer opened through a symlink to /dev/full, which
/// is refused) is reported once on stderr and the mirror goes on.
#[test]
fn unwritable_logfile_does_not_stop_the_mirror() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    write(env.src.join("a/b.txt"), "data");
    for format in ["text", "json"] {
        let _ = fs::remove_dir_all(&env.logs);
        let mut cmd = env.cmd(&["--once", "--log-format", format]);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 256,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("cannot write the logfile").count(),
            1,
            "{stderr}"
        );
        assert_mirrored(&env.src, &env.rep);
    }
}
