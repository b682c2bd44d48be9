//! Shared by the `bench` and `latency` examples: seeded trees, locating and snapshotting the
//! release binary, measuring child processes, machine facts and small statistics; the tree
//! comparison is the tests' own (`tests/integration/support/tree.rs`).
//!
//! Each example uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filetime::FileTime;

// ---------------------------------------------------------------------------------------------
// Scratch space and errors

/// The scratch dir to remove if the run dies (exit skips the TempDir's destructor).
pub static SCRATCH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// A fresh scratch dir under `base` (created if needed), removed on exit unless `keep`.
pub fn scratch_dir(base: &Path, prefix: &str, keep: bool) -> (tempfile::TempDir, PathBuf) {
    fs::create_dir_all(base).unwrap_or_else(|e| die(&format!("{}: {e}", base.display())));
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap_or_else(|e| die(&format!("scratch dir in {}: {e}", base.display())));
    let path = dir.path().to_path_buf();
    if !keep {
        let _ = SCRATCH.set(path.clone());
    }
    (dir, path)
}

pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    if let Some(dir) = SCRATCH.get() {
        let _ = fs::remove_dir_all(dir);
    }
    std::process::exit(2);
}

/// A duration as replwatch reads one: `90s`, `500ms`, `1h30m`, or a bare number of minutes
/// (`0.5` is 30 s). Zero is refused, as replwatch refuses it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let d = match t.parse::<f64>() {
        Ok(minutes) if minutes.is_finite() && minutes >= 0.0 => {
            Duration::try_from_secs_f64(minutes * 60.0).map_err(|e| e.to_string())?
        }
        Ok(_) => return Err(format!("'{text}' is not a positive number of minutes")),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| format!("'{text}': {e}; e.g. 50ms, 2s, or minutes: 0.5"))?,
    };
    if d.is_zero() {
        return Err(format!("'{text}' is zero; it must be positive"));
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Seeded trees

/// splitmix64: tiny, fast, and the same stream on every machine.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

/// Mix two numbers into an independent seed.
pub fn sub_seed(seed: u64, n: u64) -> u64 {
    Rng::new(seed ^ n.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

/// The shape of a generated tree. Small files are spread round-robin over `dirs`
/// directories, which are `top` folders at the root with the rest nested one level below
/// them; big files sit at the root.
#[derive(Clone, Debug)]
pub struct TreeSpec {
    pub files: usize,
    pub dirs: usize,
    pub min_size: usize,
    pub max_size: usize,
    pub big_files: usize,
    pub big_size: usize,
    pub seed: u64,
}

/// A fixed epoch for generated mtimes (2020-09-13), so trees are reproducible to the ns.
pub const BASE_TIME: i64 = 1_600_000_000;

impl TreeSpec {
    /// The directories, relative to the root, parents before children.
    pub fn dir_paths(&self) -> Vec<PathBuf> {
        let d = self.dirs.max(1);
        let top = ((d as f64).sqrt().round() as usize).clamp(1, d);
        let mut out: Vec<PathBuf> = (0..top)
            .map(|t| PathBuf::from(format!("d{t:04}")))
            .collect();
        for j in 0..d - top {
            out.push(PathBuf::from(format!("d{:04}/s{:04}", j % top, j / top)));
        }
        out
    }

    pub fn file_path(&self, dirs: &[PathBuf], i: usize) -> PathBuf {
        dirs[i % dirs.len()].join(format!("f{i:07}.dat"))
    }

    pub fn big_path(&self, i: usize) -> PathBuf {
        PathBuf::from(format!("big{i}.bin"))
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} files of {}-{} KiB in {} dirs",
            thousands(self.files as u64),
            self.min_size / 1024,
            self.max_size / 1024,
            thousands(self.dirs as u64)
        );
        if self.big_files > 0 {
            s += &format!(" + {} x {} MiB", self.big_files, self.big_size >> 20);
        }
        s
    }

    pub fn total_bytes_estimate(&self) -> u64 {
        (self.files as u64) * ((self.min_size + self.max_size) as u64 / 2)
            + (self.big_files * self.big_size) as u64
    }
}

fn set_mtime(path: &Path, sec: i64, nsec: u32) -> io::Result<()> {
    filetime::set_symlink_file_times(
        path,
        FileTime::from_unix_time(sec, nsec),
        FileTime::from_unix_time(sec, nsec),
    )
}

/// Write `data` to a new file and give it a seeded mtime.
fn write_file(path: &Path, data: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    drop(f);
    set_mtime(
        path,
        BASE_TIME + rng.below(10_000_000) as i64,
        rng.below(1_000_000_000) as u32,
    )
}

/// Generate the tree described by `spec` under `root` (which must not exist yet), using
/// every CPU. The same spec gives the same names, sizes, bytes and mtimes on every run.
pub fn generate(root: &Path, spec: &TreeSpec) -> io::Result<()> {
    fs::create_dir_all(root)?;
    let dirs = spec.dir_paths();
    for d in &dirs {
        fs::create_dir(root.join(d))?;
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| -> io::Result<()> {
        let mut handles = Vec::new();
        for t in 0..threads {
            let dirs = &dirs;
            handles.push(s.spawn(move || -> io::Result<()> {
                let mut buf = vec![0u8; spec.max_size];
                // File i lives in dir i % dirs; thread t makes the dirs d with d % threads == t.
                for d in (t..dirs.len()).step_by(threads) {
                    let mut rng = Rng::new(sub_seed(spec.seed, d as u64));
                    for i in (d..spec.files).step_by(dirs.len()) {
                        let n = rng.range(spec.min_size as u64, spec.max_size as u64) as usize;
                        rng.fill(&mut buf[..n]);
                        write_file(&root.join(spec.file_path(dirs, i)), &buf[..n], &mut rng)?;
                    }
                }
                for b in (t..spec.big_files).step_by(threads) {
                    let mut rng = Rng::new(sub_seed(spec.seed, 1_000_000_000 + b as u64));
                    let mut f = File::create(root.join(spec.big_path(b)))?;
                    let mut chunk = vec![0u8; 1 << 20];
                    let mut left = spec.big_size;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        rng.fill(&mut chunk[..n]);
                        f.write_all(&chunk[..n])?;
                        left -= n;
                    }
                    drop(f);
                    write_file_times(&root.join(spec.big_path(b)), &mut rng)?;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join().expect("generator thread panicked")?;
        }
        Ok(())
    })?;
    // Directory mtimes last (writing into a directory changes its mtime), children first.
    let mut rng = Rng::new(sub_seed(spec.seed, 2_000_000_000));
    for d in dirs.iter().rev() {
        set_mtime(&root.join(d), BASE_TIME + rng.below(10_000_000) as i64, 0)?;
    }
    Ok(())
}

fn write_file_times(path: &Path, rng: &mut Rng) -> io::Result<()> {
    set_mtime(
        path,
        BASE_TIME + rng.below(10_000_000) as i64,
        rng.below(1_000_000_000) as u32,
    )
}

/// What [`churn`] did.
#[derive(Debug, Default)]
pub struct ChurnStats {
    pub rewritten: usize,
    pub deleted: usize,
    pub created: usize,
    pub appended_bytes: u64,
}

/// Apply the W3 churn to a tree made by [`generate`]: `pct` % of the small files rewritten
/// (new bytes, new size, new mtime), `pct` % deleted, `pct` % new files, and `append` bytes
/// appended to the first big file. Seeded: the same churn on every copy.
pub fn churn(root: &Path, spec: &TreeSpec, pct: f64, append: usize) -> io::Result<ChurnStats> {
    let dirs = spec.dir_paths();
    let n = ((spec.files as f64) * pct / 100.0).round() as usize;
    let mut rng = Rng::new(sub_seed(spec.seed, 3_000_000_000));
    // A seeded partial shuffle picks 2n distinct files: the first n rewritten, the next n deleted.
    let mut idx: Vec<usize> = (0..spec.files).collect();
    let pick = (2 * n).min(idx.len());
    for k in 0..pick {
        let j = k + rng.below((idx.len() - k) as u64) as usize;
        idx.swap(k, j);
    }
    let mut st = ChurnStats::default();
    let new_time = BASE_TIME + 20_000_000;
    let mut buf = vec![0u8; spec.max_size];
    let mut touched = std::collections::BTreeSet::new();
    for (k, &i) in idx[..pick].iter().enumerate() {
        let path = root.join(spec.file_path(&dirs, i));
        touched.insert(path.parent().map(Path::to_path_buf).unwrap_or_default());
        if k < n {
            let len = rng.range(spec.min_size as u64, spec.max_size as u64) as usize;
            rng.fill(&mut buf[..len]);
            fs::write(&path, &buf[..len])?;
            set_mtime(&path, new_time + k as i64, rng.below(1_000_000_000) as u32)?;
            st.rewritten += 1;
        } else {
            fs::remove_file(&path)?;
            st.deleted += 1;
        }
    }
    for k in 0..n {
        let dir = &dirs[rng.below(dirs.len() as u64) as usize];
        touched.insert(root.join(dir));
        let path = root.join(dir).join(format!("new{k:07}.dat"));
        let len = rng.range(spec.min_size as u64, spec.max_size as u64) as usize;
        rng.fill(&mut buf[..len]);
        fs::write(&path, &buf[..len])?;
        set_mtime(&path, new_time + k as i64, rng.below(1_000_000_000) as u32)?;
        st.created += 1;
    }
    if spec.big_files > 0 && append > 0 {
        let path = root.join(spec.big_path(0));
        let mut f = fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(&rng.bytes(append))?;
        drop(f);
        set_mtime(&path, new_time, 0)?;
        st.appended_bytes = append as u64;
    }
    // Directories that gained or lost entries get seeded mtimes too: the churned tree is as
    // reproducible as the original (and no tool gets a same-second mtime to trip over).
    for (k, d) in touched.iter().enumerate() {
        set_mtime(d, new_time + k as i64, rng.below(1_000_000_000) as u32)?;
    }
    Ok(st)
}

// ---------------------------------------------------------------------------------------------
// Tree comparison: the tests' own

#[path = "../../tests/integration/support/tree.rs"]
mod tree;

pub use tree::try_tree_diff;

/// The first line (which names the entry and what differs) of the first few differences.
pub fn first_differences(diffs: &[String]) -> String {
    let first: Vec<&str> = diffs
        .iter()
        .take(5)
        .map(|d| d.lines().next().unwrap_or_default())
        .collect();
    first.join("; ")
}

// ---------------------------------------------------------------------------------------------
// The binary under test

/// Build (unless `no_build`) and locate `target/release/replwatch` beside this example's own
/// executable (`target/release/examples/NAME`), then copy it to `snapshot_dir` so a rebuild
/// by someone else during the run cannot swap the binary under the measurements.
pub fn replwatch_binary(explicit: Option<PathBuf>, no_build: bool, snapshot_dir: &Path) -> PathBuf {
    let bin = match explicit {
        Some(p) => p,
        None => {
            let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .unwrap_or_else(|| die("cannot locate the target directory"))
                .to_path_buf();
            let bin = profile_dir.join("replwatch");
            if !no_build {
                let profile = profile_dir
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or("");
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
                let mut cmd = Command::new(cargo);
                cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
                    "build",
                    "--quiet",
                    "--bin",
                    "replwatch",
                ]);
                if profile == "release" {
                    cmd.arg("--release");
                } else {
                    eprintln!(
                        "warning: this example is not a release build ({profile}); measure with --release"
                    );
                }
                eprintln!(
                    "building the replwatch binary (cargo build --release --bin replwatch) ..."
                );
                match cmd.status() {
                    Ok(s) if s.success() => {}
                    _ if bin.exists() => eprintln!(
                        "warning: cargo build failed; measuring the existing {}",
                        bin.display()
                    ),
                    _ => die("cargo build --release failed and there is no binary to measure"),
                }
            }
            if !bin.exists() {
                die(&format!(
                    "{} is missing: run `cargo build --release` first",
                    bin.display()
                ));
            }
            bin
        }
    };
    let snap = snapshot_dir.join("replwatch");
    fs::copy(&bin, &snap).unwrap_or_else(|e| die(&format!("copy {}: {e}", bin.display())));
    // Keep the build time visible on the snapshot (binary_identity reports it).
    if let Ok(m) = fs::metadata(&bin) {
        let _ = filetime::set_file_mtime(&snap, FileTime::from_last_modification_time(&m));
    }
    snap
}

/// `replwatch --version` and the git state of the checkout it was built from.
pub fn binary_identity(bin: &Path) -> String {
    let version = Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let git = Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    let built = fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| {
            let out = Command::new("date")
                .arg("-u")
                .arg("-d")
                .arg(format!("@{}", d.as_secs()))
                .arg("+%Y-%m-%d %H:%M UTC")
                .output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    format!("{version}, checkout at git {git}, binary built {built}")
}

// ---------------------------------------------------------------------------------------------
// Machine and filesystem

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn mem_total_gib() -> f64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

/// The filesystem type of `path`, as `stat -f -c %T` names it (tmpfs, ext2/ext3, xfs, ...),
/// plus the device from /proc/self/mounts when it can be found.
pub fn fs_type(path: &Path) -> String {
    let t = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    // /proc/self/mounts has the precise type (ext4 where stat says ext2/ext3).
    let canon = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && canon.starts_with(f[1])).then(|| (f[1].len(), f[0], f[2]))
        })
        .max_by_key(|m| m.0);
    match best {
        Some((_, dev, ty)) if ty != t => format!("{ty} ({dev}; stat -f says {t})"),
        Some((_, dev, ty)) => format!("{ty} ({dev})"),
        None => t,
    }
}

/// The default scratch base: tmpfs when the machine has one at /dev/shm.
pub fn default_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

pub fn is_tmpfs(path: &Path) -> bool {
    fs_type(path).starts_with("tmpfs")
}

/// Flush dirty pages so that one run's writeback does not land in the next run's time.
pub fn sync_all() {
    let _ = Command::new("sync").status();
}

/// Remove a directory tree if it exists.
pub fn remove_tree(path: &Path) {
    match fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => die(&format!("remove {}: {e}", path.display())),
    }
}

/// `cp -a from to` (to must not exist): a faithful, untimed copy.
pub fn cp_a(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        die(&format!("cp -a {} {} failed", from.display(), to.display()));
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring a child

/// One finished child: wall time from spawn to reap, its CPU time and peak RSS (from wait4,
/// which covers the child and the descendants it reaped: rsync's helpers are included).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    pub maxrss_kib: u64,
    /// CPU time the rest of the machine used meanwhile (all busy CPU time from /proc/stat
    /// minus the command's own): other processes competing with the measurement.
    pub foreign: Duration,
}

impl Sample {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    /// The other processes' share of the machine during this run, 0..1.
    pub fn foreign_share(&self) -> f64 {
        let avail = self.wall.as_secs_f64() * nproc() as f64;
        if avail > 0.0 {
            (self.foreign.as_secs_f64() / avail).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Busy and total CPU time of the whole machine so far, from the `cpu` line of /proc/stat.
pub fn machine_cpu() -> (Duration, Duration) {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let d = |t: u64| Duration::from_secs_f64(t as f64 / hz);
    (d(total.saturating_sub(idle)), d(total))
}

/// Wait (up to `max`) until the rest of the machine is quiet: less than 10 % of its CPUs busy
/// over 200 ms. Returns the share that was busy at the last look.
pub fn settle(max: Duration) -> f64 {
    let t0 = Instant::now();
    loop {
        let (b0, a0) = machine_cpu();
        std::thread::sleep(Duration::from_millis(200));
        let (b1, a1) = machine_cpu();
        let share = (b1 - b0).as_secs_f64() / (a1 - a0).as_secs_f64().max(1e-9);
        if share < 0.10 || t0.elapsed() >= max {
            return share;
        }
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

/// Reap `child` with wait4: its resource usage, and an error naming a non-zero exit.
pub fn wait_child(child: Child, started: Instant) -> (Sample, Option<String>) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain syscall on our own child's pid, with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return (Sample::default(), Some(format!("wait4: {e}")));
        }
    }
    let wall = started.elapsed();
    // The Child was reaped here; forget it so nothing waits on a recycled pid.
    std::mem::forget(child);
    let sample = Sample {
        wall,
        user: tv(ru.ru_utime),
        sys: tv(ru.ru_stime),
        maxrss_kib: ru.ru_maxrss as u64,
        foreign: Duration::ZERO,
    };
    let err = if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        None
    } else if libc::WIFEXITED(status) {
        Some(format!("exit code {}", libc::WEXITSTATUS(status)))
    } else {
        Some(format!("killed by signal {}", libc::WTERMSIG(status)))
    };
    (sample, err)
}

/// The hidden first argument that turns an example into [`measure`]'s helper.
const HELPER: &str = "--measure-helper";

/// Call first thing in `main`: when this process is [`measure`]'s helper, run the command,
/// write its usage to the file named after the flag, and exit.
///
/// Why a helper: a child's `ru_maxrss` starts from the peak RSS of the process image it
/// replaced at exec, which for a plain spawn is this (large, tree-hashing) process. Spawned
/// from a fresh, small helper instead, it starts from the helper's ~2 MiB, so the figure is the
/// tool's own peak.
pub fn run_helper_if_asked() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.len() < 4 || args[1] != HELPER {
        return;
    }
    let started = Instant::now();
    let line = match Command::new(&args[3]).args(&args[4..]).spawn() {
        Ok(child) => {
            let (s, err) = wait_child(child, started);
            match err {
                None => format!(
                    "ok {} {} {} {}",
                    s.wall.as_nanos(),
                    s.user.as_nanos(),
                    s.sys.as_nanos(),
                    s.maxrss_kib
                ),
                Some(e) => format!("err {e}"),
            }
        }
        Err(e) => format!("err spawn: {e}"),
    };
    let code = i32::from(fs::write(&args[2], line).is_err());
    std::process::exit(code);
}

/// Run a command to completion through the helper (see [`run_helper_if_asked`]): stdout
/// discarded, stderr kept in `stderr_file`. Wall time is from the helper's spawn to its reap
/// of the command.
pub fn measure(cmd: &Command, stderr_file: &Path) -> Result<Sample, String> {
    // /proc/self/exe still works when a rebuild has replaced the file on disk meanwhile.
    let exe = Path::new("/proc/self/exe");
    let usage = stderr_file.with_extension("usage");
    let err = File::create(stderr_file).map_err(|e| e.to_string())?;
    let (busy0, _) = machine_cpu();
    let status = Command::new(exe)
        .arg(HELPER)
        .arg(&usage)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .map_err(|e| format!("spawn helper: {e}"))?;
    let (busy1, _) = machine_cpu();
    let line = fs::read_to_string(&usage).unwrap_or_default();
    let f: Vec<&str> = line.split_whitespace().collect();
    if status.success() && f.len() == 5 && f[0] == "ok" {
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        let mut sample = Sample {
            wall: Duration::from_nanos(n(1)),
            user: Duration::from_nanos(n(2)),
            sys: Duration::from_nanos(n(3)),
            maxrss_kib: n(4),
            foreign: Duration::ZERO,
        };
        sample.foreign = (busy1 - busy0).saturating_sub(sample.cpu());
        return Ok(sample);
    }
    let tail = fs::read_to_string(stderr_file).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    Err(format!("{cmd:?}: {line}; stderr: {}", tail.join(" | ")))
}

/// VmRSS / VmHWM of a live process, in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time (utime + stime, in clock ticks converted to a Duration) of a live process, from
/// /proc/PID/stat.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the fields start at #3 (state); utime is #14 and stime #15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz))
}

/// Nanosecond CPU time of every thread of a live process (sum of /proc/PID/task/*/schedstat).
pub fn proc_sched_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let t = t.ok()?;
        if let Ok(s) = fs::read_to_string(t.path().join("schedstat")) {
            total += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// Number of inotify watches a process holds (lines `inotify wd:` in its fdinfo).
pub fn inotify_watches(pid: u32) -> usize {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .map(|s| s.lines().filter(|l| l.starts_with("inotify wd:")).count())
        .sum()
}

/// Wait until `log` contains `needle` (reading only what was appended), or time out.
pub fn wait_for_log(
    log: &Path,
    needle: &str,
    timeout: Duration,
    child: &mut Child,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    let mut offset = 0u64;
    loop {
        if let Ok(mut f) = File::open(log) {
            use std::io::{Seek, SeekFrom};
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let mut more = String::new();
                if f.read_to_string(&mut more).is_ok() {
                    offset += more.len() as u64;
                    seen.push_str(&more);
                    if seen.contains(needle) {
                        return Some(Instant::now());
                    }
                    // Keep only the tail, enough to catch a needle split across reads.
                    if seen.len() > 4096 {
                        let cut = seen.len() - 1024;
                        let cut = (cut..seen.len())
                            .find(|&i| seen.is_char_boundary(i))
                            .unwrap_or(0);
                        seen.drain(..cut);
                    }
                }
            }
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Ask a process to stop (SIGTERM) and reap it, killing it after `grace`.
pub fn stop_child(mut child: Child, grace: Duration) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile (p in 0..=100) of unsorted data.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if p >= 100.0 {
        return s[s.len() - 1];
    }
    if (p - 50.0).abs() < f64::EPSILON && s.len().is_multiple_of(2) {
        return (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank - 1]
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds with a sensible number of digits.
pub fn secs(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.1} s")
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.0} ms", s * 1000.0)
    }
}

pub fn ms(d: f64) -> String {
    format!("{:.0} ms", d * 1000.0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Print the machine line every table starts with.
pub fn machine_line(scratch: &Path) -> String {
    format!(
        "{}, {} CPUs (nproc), {:.0} GiB RAM, Linux {}, scratch fs: {}",
        cpu_model(),
        nproc(),
        mem_total_gib(),
        kernel(),
        fs_type(scratch)
    )
}

/// The 1/5/15-minute load averages: other work on the machine skews every figure.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
