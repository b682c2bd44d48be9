//! Copying one file so that nobody ever sees half of it.
//!
//! The data goes to a temp file beside the target (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600),
//! then owner, mode and mtime are set on the open handle and the temp is renamed over the
//! target. The source is stat-ed before and after: if it changed while being copied the copy
//! is thrown away and taken again, a bounded number of times. The replica is stamped with the
//! *pre-copy* mtime, so a change that slipped past the check is seen by the next quick check.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{
    AtFlags, Mode, OFlags, Stat, copy_file_range, fchmod, fchown, fstat, fsync, futimens, openat,
    renameat, statat, unlinkat,
};
use rustix::io::Errno;

use crate::tempname::temp_name;
use crate::xattr;

/// How many times a file that keeps changing under us is copied before we give up for now.
pub const MAX_ATTEMPTS: u32 = 3;
const CHUNK: usize = 16 << 20;
/// How recent a change must be to suspect a write still in progress.
pub const IN_FLIGHT_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);
/// Wait before retrying a file that changed under us (times the attempt number).
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Clone, Copy, Debug, Default)]
pub struct CopyOptions {
    pub owner: bool,
    pub fsync: bool,
    /// The permission bits to set (none where the replica keeps none; without setuid, setgid
    /// and sticky where it refuses them: the bytes matter more than the bits).
    pub mode_mask: u32,
    /// Set the access time with the mtime (where an mtime set alone does not stick).
    pub set_atime: bool,
    /// Extended attributes and ACLs to mirror, set after the owner.
    pub xattrs: crate::xattr::Namespaces,
    /// The temp file a copy creates starts with no attribute in `xattrs` (none can be
    /// inherited where it is made): they are set without reading it first. Only for copies
    /// into a new temp file, never for a file changed in place (`append`).
    pub bare_temp: bool,
}

/// Why a copy did not land, beyond plain I/O errors.
#[derive(Debug)]
pub enum CopyError {
    /// The source is gone (or is no longer a regular file).
    Vanished,
    /// The source changed during every attempt; the replica was left as it was.
    Unstable,
    /// A write to the source was in flight at every attempt (it changed moments ago and its
    /// writer still has it open); the replica was left as it was.
    Busy,
    /// A stop was requested; the temp file was removed.
    Stopped,
    Io(io::Error),
}

impl From<Errno> for CopyError {
    fn from(e: Errno) -> Self {
        CopyError::Io(e.into())
    }
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> Self {
        CopyError::Io(e)
    }
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Vanished => f.write_str("vanished during the pass"),
            CopyError::Unstable => write!(
                f,
                "source kept changing while being copied ({MAX_ATTEMPTS} attempts); left for the next pass"
            ),
            CopyError::Busy => f.write_str(
                "source is being written (changed moments ago, still open for writing); left for the next pass",
            ),
            CopyError::Stopped => f.write_str("stopped"),
            CopyError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CopyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CopyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A temp file that removes itself unless it was renamed into place.
struct Temp<'a> {
    dir: BorrowedFd<'a>,
    name: crate::tempname::TempName,
    armed: bool,
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = unlinkat(self.dir, &*self.name, AtFlags::empty());
        }
    }
}

fn create_temp<'a>(dir: BorrowedFd<'a>, target: &OsStr) -> io::Result<(Temp<'a>, OwnedFd)> {
    loop {
        let name = temp_name(target);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match openat(dir, &*name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => {
                return Ok((
                    Temp {
                        dir,
                        name,
                        armed: true,
                    },
                    fd,
                ));
            }
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Open a source entry for reading, refusing symlinks and never blocking on a fifo.
pub fn open_source(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, CopyError> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) | Err(Errno::LOOP) => Err(CopyError::Vanished),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn unchanged(before: &Stat, after: &Stat) -> bool {
    before.st_ino == after.st_ino
        && before.st_dev == after.st_dev
        && before.st_size == after.st_size
        && before.st_mtime == after.st_mtime
        && before.st_mtime_nsec == after.st_mtime_nsec
        && before.st_ctime == after.st_ctime
        && before.st_ctime_nsec == after.st_ctime_nsec
}

/// Copy `name` from `src_dir` over `name` in `dst_dir`. Returns the bytes copied.
///
/// `snapshot` accepts a copy of a file whose writer still has it open, as long as it did not
/// change from before to after the copy: for a file under constant writes, which would
/// otherwise never be mirrored (live mode asks for it once such a file has waited an
/// interval).
///
/// `before_replace` runs once the copy is known good, right before the temp is renamed over
/// the target (`--versions` keeps the old file there); if it fails, the temp is removed and
/// the target left as it was.
pub fn copy_file(
    src_dir: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &OsStr,
    opts: CopyOptions,
    snapshot: bool,
    stop: &AtomicBool,
    before_replace: Option<&dyn Fn() -> io::Result<()>>,
) -> Result<u64, CopyError> {
    let mut busy = 0;
    for attempt in 0..MAX_ATTEMPTS {
        let Some((src, before)) = open_attempt(src_dir, name, attempt, snapshot)? else {
            busy += 1;
            continue;
        };
        let (mut temp, out) = create_temp(dst_dir, name)?;
        let copied = copy_data(&src, &out, &before, stop)?;
        let after = stat_after(src_dir, name)?;
        if !unchanged(&before, &after) || copied != before.st_size as u64 {
            continue; // the temp removes itself
        }
        finish_meta(&src, &out, &before, opts)?;
        if opts.fsync {
            fsync(&out)?;
        }
        drop(out);
        if let Some(keep) = before_replace {
            keep()?;
        }
        renameat(dst_dir, &*temp.name, dst_dir, name)?;
        temp.armed = false;
        return Ok(copied);
    }
    Err(gave_up(busy))
}

/// The source opened for one attempt of a copy, after the pause the attempt number asks for;
/// `None` when a write to it is in flight (see `write_in_flight`) and this is no snapshot.
pub(crate) fn open_attempt(
    src_dir: BorrowedFd<'_>,
    name: &OsStr,
    attempt: u32,
    snapshot: bool,
) -> Result<Option<(OwnedFd, Stat)>, CopyError> {
    if attempt > 0 {
        std::thread::sleep(RETRY_PAUSE * attempt);
    }
    let src = open_source(src_dir, name)?;
    let before = fstat(&src)?;
    if crate::scan::kind_of(&before) != crate::entry::Kind::File {
        return Err(CopyError::Vanished);
    }
    if !snapshot && write_in_flight(&src, &before) {
        return Ok(None);
    }
    Ok(Some((src, before)))
}

/// The source's stat after a copy, to compare with the one before it.
pub(crate) fn stat_after(src_dir: BorrowedFd<'_>, name: &OsStr) -> Result<Stat, CopyError> {
    match statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(st),
        Err(Errno::NOENT) => Err(CopyError::Vanished),
        Err(e) => Err(e.into()),
    }
}

/// Why every attempt failed: a write in flight at each (`busy` of them), or a source that
/// kept changing.
pub(crate) fn gave_up(busy: u32) -> CopyError {
    if busy == MAX_ATTEMPTS {
        CopyError::Busy
    } else {
        CopyError::Unstable
    }
}

/// Give `out` the metadata of `src` (stat-ed as `before`): owner, then extended attributes
/// and ACLs (after the owner: a chown drops file capabilities; before the mode: without root,
/// `user.*` attributes can only be set on a file we may write), then mode, then times.
///
/// The attributes are read here, after the copy and its after-copy stat: an attribute change
/// moves ctime, which that check compares, so these belong to the bytes just copied.
pub(crate) fn finish_meta(
    src: &OwnedFd,
    out: &OwnedFd,
    before: &Stat,
    opts: CopyOptions,
) -> io::Result<()> {
    let attrs = if opts.xattrs.any() || opts.mode_mask != 0 {
        xattr::read(xattr::Target::Fd(src.as_fd()), opts.xattrs)?
    } else {
        Vec::new()
    };
    if opts.owner {
        fchown(out, Some(uid(before.st_uid)), Some(gid(before.st_gid)))?;
    }
    if opts.xattrs.any() {
        let have = if opts.bare_temp {
            xattr::Xattrs::default()
        } else {
            xattr::read(xattr::Target::Fd(out.as_fd()), opts.xattrs)?
        };
        xattr::apply(
            xattr::Target::Fd(out.as_fd()),
            &xattr::diff(&attrs, &have, opts.xattrs),
        )?;
    }
    if opts.mode_mask != 0 {
        let mode = crate::plan::source_mode(before.st_mode & 0o7777, &attrs, opts.xattrs);
        fchmod(out, Mode::from_raw_mode((mode & opts.mode_mask) as _))?;
    }
    futimens(
        out,
        &crate::fscaps::times(before.st_mtime, before.st_mtime_nsec as i64, opts.set_atime),
    )?;
    Ok(())
}

/// A write that started before our first stat has already moved mtime and ctime, so a
/// copy made entirely during it would pass the before/after comparison and be torn. Such a
/// write is recent (ctime within [`IN_FLIGHT_WINDOW`]) and its writer still has the file
/// open: a read lease, which the kernel refuses while anyone holds the file open for
/// writing, tells. The lease is only probed (taken and dropped at once), so no writer is
/// ever delayed. Where leases are not allowed (not our file, or NFS) only stat is trusted.
fn write_in_flight(src: &OwnedFd, before: &Stat) -> bool {
    let changed = std::time::UNIX_EPOCH
        + std::time::Duration::new(before.st_ctime.max(0) as u64, before.st_ctime_nsec as u32);
    let recent = std::time::SystemTime::now()
        .duration_since(changed)
        .map_or(true, |age| age < IN_FLIGHT_WINDOW);
    if !recent {
        return false;
    }
    ignore_lease_breaks();
    let fd = std::os::fd::AsRawFd::as_raw_fd(src);
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        if libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) == 0 {
            libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK);
            false
        } else {
            matches!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::EAGAIN) | Some(libc::EBUSY)
            )
        }
    }
}

/// A lease broken in the instant we hold it would raise SIGIO, whose default is to kill.
fn ignore_lease_breaks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting a signal disposition to "ignore" has no handler to be unsafe.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        }
    });
}

/// Kernel-side copy (`copy_file_range`: reflinks where the filesystem can, no userspace
/// buffer), falling back to a read/write loop where the kernel refuses. Holes are kept: only
/// the data segments (`SEEK_DATA`/`SEEK_HOLE`) are copied and the length is set at the end, so
/// a mostly empty file costs time for its data, not its length (`rsync -S`). A file whose
/// allocated blocks cover its length has no hole to find, and is copied without looking
/// (`cp --sparse=auto` asks the same): two system calls fewer per small file.
///
/// Copying stops at the length stat-ed before: a file that grew meanwhile is caught by the
/// after-copy check anyway. A file that shrank returns less than that length.
fn copy_data(
    src: &OwnedFd,
    out: &OwnedFd,
    before: &Stat,
    stop: &AtomicBool,
) -> Result<u64, CopyError> {
    let size = before.st_size as u64;
    if (before.st_blocks as u64).saturating_mul(512) >= size {
        return copy_range(src, out, 0, size, stop);
    }
    let mut at = 0u64;
    while at < size {
        let Some((start, end)) = data_segment(src, at, size) else {
            // A hole up to the end: the length, without writing it.
            rustix::fs::ftruncate(out, size)?;
            break;
        };
        let copied = copy_range(src, out, start, end, stop)?;
        if copied < end - start {
            return Ok(start + copied);
        }
        at = end;
    }
    Ok(size)
}

/// The next stretch of data at or after `at`, up to `size`; `None` if only a hole is left.
/// Where the filesystem cannot tell, everything is data.
fn data_segment(src: &OwnedFd, at: u64, size: u64) -> Option<(u64, u64)> {
    use rustix::fs::{SeekFrom, seek};
    match seek(src, SeekFrom::Data(at)) {
        Ok(d) if d >= size => None,
        Ok(d) => {
            let hole = seek(src, SeekFrom::Hole(d)).map_or(size, |h| h.min(size));
            Some((d, hole.max(d + 1).min(size)))
        }
        Err(Errno::NXIO) => None,
        Err(_) => Some((at, size)),
    }
}

/// Copy bytes `start..end` of `src` to the same offsets of `out`; returns how many (fewer
/// if the source shrank).
pub(crate) fn copy_range(
    src: &OwnedFd,
    out: &OwnedFd,
    start: u64,
    end: u64,
    stop: &AtomicBool,
) -> Result<u64, CopyError> {
    let (mut off_in, mut off_out) = (start, start);
    while off_out < end {
        if stop.load(Ordering::Relaxed) {
            return Err(CopyError::Stopped);
        }
        let want = ((end - off_out) as usize).min(CHUNK);
        match copy_file_range(src, Some(&mut off_in), out, Some(&mut off_out), want) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM)
                if off_out == start =>
            {
                return copy_loop(src, out, start, end, stop);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(off_out - start)
}

fn copy_loop(
    src: &OwnedFd,
    out: &OwnedFd,
    start: u64,
    end: u64,
    stop: &AtomicBool,
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; (1 << 20).min((end - start) as usize)];
    let mut off = start;
    while off < end {
        if stop.load(Ordering::Relaxed) {
            return Err(CopyError::Stopped);
        }
        let want = buf.len().min((end - off) as usize);
        let n = rustix::io::pread(src, &mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        let mut written = 0;
        while written < n {
            written += rustix::io::pwrite(out, &buf[written..n], off + written as u64)?;
        }
        off += n as u64;
    }
    Ok(off - start)
}

/// The blake3 hash of an open file, streamed (a file truncated under an mmap could SIGBUS).
pub fn hash_fd(fd: OwnedFd) -> io::Result<blake3::Hash> {
    hash_prefix(&fd, u64::MAX)
}

/// The blake3 hash of a file's first `len` bytes (fewer if it is shorter).
pub(crate) fn hash_prefix(fd: &OwnedFd, len: u64) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut off = 0u64;
    while off < len {
        let want = buf.len().min((len - off).min(usize::MAX as u64) as usize);
        let n = rustix::io::pread(fd, &mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        off += n as u64;
    }
    Ok(hasher.finalize())
}

pub fn uid(raw: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(raw)
}

pub fn gid(raw: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(raw)
}

/// Open a file in the replica for reading, refusing symlinks.
pub fn open_replica_file(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(openat(dir, name, flags, Mode::empty())?)
}
