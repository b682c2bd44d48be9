//! Copying only what was appended (`rsync --append-verify`).
//!
//! A log that grows by a line is otherwise copied whole at every change: 8 MiB written to the
//! replica for a few bytes. When the plan sees a replica file that is shorter than its source
//! (and big enough for it to matter), the replica's bytes are first checked to be the source's
//! prefix (both hashed), and then only the rest is copied, into the replica file itself.
//!
//! In place, not through a temp file: copying the unchanged prefix again is what this saves.
//! A reader of the replica sees the old file, then the old file with a longer tail: always a
//! prefix of the new file, never a mix of old and new bytes at one offset (what a reader of
//! the source sees while it is appended to). A kill in the middle leaves such a prefix, with
//! the old mtime, so the next look appends the rest. The plan never chooses this for a replica
//! file with names outside the mirror, nor with `--versions` (the old file is not kept).

use std::ffi::OsStr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicBool;

use rustix::fs::{Mode, OFlags, fstat, fsync, openat};
use rustix::io::Errno;

use crate::copy::{
    CopyError, CopyOptions, MAX_ATTEMPTS, copy_range, finish_meta, gave_up, hash_prefix,
    open_attempt, stat_after, unchanged,
};

/// Smaller replica files are copied whole: hashing both prefixes would cost about as much.
pub const APPEND_MIN: u64 = 64 << 10;

/// Append to the replica's `name` what its source has beyond it. `Ok(Some(bytes))` when done,
/// `Ok(None)` when the replica is not a prefix of the source (the caller copies it whole).
pub fn append_file(
    src_dir: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    name: &OsStr,
    opts: CopyOptions,
    snapshot: bool,
    stop: &AtomicBool,
) -> Result<Option<u64>, CopyError> {
    let mut busy = 0;
    for attempt in 0..MAX_ATTEMPTS {
        let Some((src, before)) = open_attempt(src_dir, name, attempt, snapshot)? else {
            busy += 1;
            continue;
        };
        let rep = match open_replica_rw(dst_dir, name) {
            Ok(fd) => fd,
            // Read-only to us, immutable or append-only: a whole copy replaces it.
            Err(Errno::ACCESS | Errno::PERM) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let have = fstat(&rep)?;
        let (old, new) = (have.st_size as u64, before.st_size as u64);
        // Only a file that is ours alone is written in place (the plan checked it; a name
        // could have been added since).
        if crate::scan::kind_of(&have) != crate::entry::Kind::File
            || old >= new
            || have.st_nlink > 1
        {
            return Ok(None);
        }
        if hash_prefix(&src, old)? != hash_prefix(&rep, old)? {
            return Ok(None);
        }
        let tail = copy_range(&src, &rep, old, new, stop);
        let after = stat_after(src_dir, name);
        let done =
            matches!((&tail, &after), (Ok(c), Ok(a)) if unchanged(&before, a) && old + c == new);
        if !done {
            // Not a clean append (stopped, failed, or the source changed meanwhile, perhaps
            // truncated): the replica goes back to the prefix it held, so it never shows
            // bytes the source did not have. The next attempt looks again.
            let _ = rustix::fs::ftruncate(&rep, old);
            tail?;
            after?;
            continue;
        }
        finish_meta(&src, &rep, &before, opts)?;
        if opts.fsync {
            fsync(&rep)?;
        }
        return Ok(Some(new - old));
    }
    Err(gave_up(busy))
}

fn open_replica_rw(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    let flags =
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    openat(dir, name, flags, Mode::empty())
}
