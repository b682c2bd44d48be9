//! What the replica's filesystem can hold, found by trying it once at start.
//!
//! A USB disk formatted exFAT or NTFS keeps no permission bits (or only pretends to), no
//! symlinks (exFAT), times to 100 ns (NTFS) or a second (exFAT through FUSE), folds case, and
//! refuses names Windows forbids. Guessing from the filesystem's name would be wrong for
//! half the FUSE drivers and mount options out there, so replwatch asks the filesystem itself:
//! in a temp directory inside REPLICA it creates, chmods, stamps and names a few files, reads
//! back what stuck, and removes it all. Plan then neither compares what cannot be kept (so a
//! second pass rewrites nothing) nor tries what cannot be done (so the bytes still arrive).
//!
//! This is the one write to REPLICA that does not go through `apply`: a temp directory of our
//! own, made and removed before any pass, every name in it a temp name (so a leftover of a kill
//! is removed by the next pass like any other), REPLICA's own times put back, and skipped in
//! a dry run.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{
    AtFlags, Mode, OFlags, Timespec, Timestamps, UTIME_OMIT, fchmod, fchown, fstat, futimens,
    mkdirat, openat, statat, symlinkat, unlinkat,
};
use rustix::io::Errno;

use crate::tempname::temp_name;

/// How the filesystem limits a name's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameLimit {
    /// 255 bytes (ext4, xfs, btrfs, tmpfs).
    Bytes,
    /// 255 UTF-16 code units (exFAT, NTFS): a multibyte name may take up to 765 bytes.
    Utf16,
}

/// What the replica's filesystem holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Names differing only in case are one name.
    pub case_insensitive: bool,
    pub symlinks: bool,
    /// Permission bits are kept as set.
    pub perms: bool,
    /// setuid, setgid and sticky bits are accepted and kept.
    pub special_bits: bool,
    /// Owner and group are kept (only ever probed, and mirrored, as root).
    pub owner: bool,
    /// The finest difference between two mtimes the filesystem keeps, in nanoseconds.
    pub mtime_ns: u64,
    /// A time set with the access time left alone does not stick (exfat-fuse makes it now):
    /// both times must be set together.
    pub set_atime: bool,
    pub name_limit: NameLimit,
    /// `"*:<>?\|` and control characters are refused (exFAT, NTFS with Windows rules).
    pub windows_names: bool,
    /// A name must be valid UTF-8 (exFAT, NTFS: EILSEQ otherwise).
    pub utf8_names: bool,
    /// A file can have several names (no: exFAT).
    pub hard_links: bool,
    /// `user.*` extended attributes are kept.
    pub xattr_user: bool,
    /// POSIX ACLs are kept.
    pub acl: bool,
    /// `trusted.*` and `security.*` attributes are kept (only ever probed, and mirrored, as
    /// root).
    pub xattr_trusted: bool,
}

impl Default for Caps {
    /// A POSIX filesystem that keeps everything (ext4, xfs, btrfs, tmpfs).
    fn default() -> Caps {
        Caps {
            case_insensitive: false,
            symlinks: true,
            perms: true,
            special_bits: true,
            owner: true,
            mtime_ns: 1,
            set_atime: false,
            name_limit: NameLimit::Bytes,
            windows_names: false,
            utf8_names: false,
            hard_links: true,
            xattr_user: true,
            acl: true,
            xattr_trusted: true,
        }
    }
}

/// Characters a Windows filesystem refuses in a name.
const WINDOWS_FORBIDDEN: &[u8] = b"\"*:<>?\\|";

impl Caps {
    /// Can the filesystem hold an entry named `name`? If not, why not, in words.
    pub fn refuses_name(&self, name: &OsStr) -> Option<&'static str> {
        let b = name.as_bytes();
        let text = std::str::from_utf8(b);
        if self.utf8_names && text.is_err() {
            return Some("the replica filesystem takes only UTF-8 names");
        }
        if self.windows_names
            && b.iter()
                .any(|c| *c < 0x20 || *c == 0x7f || WINDOWS_FORBIDDEN.contains(c))
        {
            return Some("the replica filesystem refuses the characters \"*:<>?\\| in names");
        }
        let too_long = match (self.name_limit, text) {
            (NameLimit::Utf16, Ok(t)) => t.encode_utf16().count() > 255,
            _ => b.len() > 255,
        };
        too_long.then_some("the name is too long for the replica filesystem")
    }

    /// The form of `name` that the filesystem treats as the same name.
    ///
    /// exFAT and NTFS fold with an upcase table, one character to one character: `ß` stays
    /// `ß` (it is not `SS`), so only uppercase forms of a single character are used.
    pub fn fold(&self, name: &OsStr) -> Vec<u8> {
        match (self.case_insensitive, name.to_str()) {
            (true, Some(t)) => t
                .chars()
                .map(|c| {
                    let mut up = c.to_uppercase();
                    match (up.next(), up.next()) {
                        (Some(u), None) => u,
                        _ => c,
                    }
                })
                .collect::<String>()
                .into_bytes(),
            _ => name.as_bytes().to_vec(),
        }
    }

    /// What is not mirrored on this filesystem, in words; empty when everything is.
    pub fn losses(&self, root: bool) -> Vec<String> {
        let mut out = Vec::new();
        if !self.symlinks {
            out.push("no symlinks".to_owned());
        }
        if !self.perms {
            out.push("no permission bits".to_owned());
        } else if !self.special_bits {
            out.push("no setuid/setgid/sticky bits".to_owned());
        }
        if root && !self.owner {
            out.push("no owners".to_owned());
        }
        if self.mtime_ns > 1 {
            out.push(format!("times to {}", describe_ns(self.mtime_ns)));
        }
        if self.case_insensitive {
            out.push("names that differ only in case are one name".to_owned());
        }
        if self.windows_names {
            out.push("no names with \"*:<>?\\| or control characters".to_owned());
        }
        if self.utf8_names {
            out.push("UTF-8 names only".to_owned());
        }
        if !self.hard_links {
            out.push("no hard links (each name is a separate copy)".to_owned());
        }
        if !self.acl {
            out.push("no ACLs".to_owned());
        }
        if !self.xattr_user {
            out.push("no user extended attributes".to_owned());
        }
        if root && !self.xattr_trusted {
            out.push("no trusted or security extended attributes".to_owned());
        }
        out
    }
}

fn describe_ns(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000_000 && n % 1_000_000_000 == 0 => format!("{} s", n / 1_000_000_000),
        n if n >= 1_000_000 => format!("{} ms", n / 1_000_000),
        n if n >= 1_000 => format!("{} µs", n / 1_000),
        n => format!("{n} ns"),
    }
}

/// The filesystem type of the mount holding `dir` as the kernel names it (`ext4`, `fuseblk`,
/// ...), with the mount's source, for the one line that says what REPLICA is on.
pub fn fs_type(dir: BorrowedFd<'_>) -> String {
    crate::roots::identify(dir)
        .ok()
        .and_then(|id| crate::roots::mount_by_id(id.mount))
        .map_or_else(
            || "an unknown filesystem".to_owned(),
            |m| format!("{} ({})", m.fs, m.source),
        )
}

/// Both times set to `sec.nsec`, or only the mtime.
pub fn times(sec: i64, nsec: i64, with_atime: bool) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    Timestamps {
        last_access: if with_atime {
            t
        } else {
            Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            }
        },
        last_modification: t,
    }
}

/// The granularities filesystems keep mtimes at, finest first.
const GRANULARITIES: [u64; 6] = [1, 100, 1_000_000, 10_000_000, 1_000_000_000, 2_000_000_000];

fn ns(sec: i64, nsec: i64) -> i128 {
    i128::from(sec) * 1_000_000_000 + i128::from(nsec)
}

/// Find out what the filesystem of the directory `root` holds, by trying it in a temp
/// directory that is removed again (a crash leaves a temp name, which the next pass removes).
///
/// REPLICA's own times are put back afterwards: the probe must not be a change of its own.
pub fn probe(root: BorrowedFd<'_>, as_root: bool) -> io::Result<Caps> {
    let before = fstat(root)?;
    let result = probe_root(root, as_root);
    let _ = futimens(
        root,
        &Timestamps {
            last_access: Timespec {
                tv_sec: before.st_atime,
                tv_nsec: before.st_atime_nsec as _,
            },
            last_modification: Timespec {
                tv_sec: before.st_mtime,
                tv_nsec: before.st_mtime_nsec as _,
            },
        },
    );
    result
}

fn probe_root(root: BorrowedFd<'_>, as_root: bool) -> io::Result<Caps> {
    let dir_name = temp_name(OsStr::new("probe"));
    mkdirat(root, &*dir_name, Mode::from_raw_mode(0o700))?;
    let result = (|| {
        let dir = openat(
            root,
            &*dir_name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let caps = probe_in(dir.as_fd(), as_root);
        clear(dir.as_fd());
        caps
    })();
    let _ = unlinkat(root, &*dir_name, AtFlags::REMOVEDIR);
    result
}

/// Remove what the probe made (plain files and links only).
fn clear(dir: BorrowedFd<'_>) {
    if let Ok(list) = crate::scan::scan_dir(dir) {
        for e in list.entries {
            let _ = unlinkat(dir, &e.name, AtFlags::empty());
        }
    }
}

/// `.STEM.replwatch-probe0.tmp`: a name `tempname::is_temp_name` recognises.
fn tmp(stem: &[u8]) -> std::ffi::OsString {
    let mut name = b".".to_vec();
    name.extend_from_slice(stem);
    name.extend_from_slice(b".replwatch-probe0.tmp");
    std::os::unix::ffi::OsStringExt::from_vec(name)
}

fn create(dir: BorrowedFd<'_>, name: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
}

fn probe_in(dir: BorrowedFd<'_>, as_root: bool) -> io::Result<Caps> {
    let mut caps = Caps::default();
    // Every name made here is a temp name, so whatever a kill leaves is removed by the next
    // pass like any other leftover.
    let f = create(dir, tmp(b"probe-a"))?;
    caps.case_insensitive = statat(
        dir,
        tmp(b"probe-a").to_ascii_uppercase(),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .is_ok();
    caps.symlinks = symlinkat("x", dir, tmp(b"probe-l")).is_ok();

    caps.perms =
        fchmod(&f, Mode::from_raw_mode(0o640)).is_ok() && fstat(&f)?.st_mode & 0o7777 == 0o640;
    caps.special_bits = caps.perms
        && fchmod(&f, Mode::from_raw_mode(0o2750)).is_ok()
        && fstat(&f)?.st_mode & 0o7777 == 0o2750;
    let _ = fchmod(&f, Mode::from_raw_mode(0o600));
    caps.owner = as_root && {
        let st = fstat(&f)?;
        let other = if st.st_uid == 1 { 2 } else { 1 };
        fchown(
            &f,
            Some(crate::copy::uid(other)),
            Some(crate::copy::gid(other)),
        )
        .is_ok()
            && fstat(&f)?.st_uid == other
    };

    // A time with every digit significant, set with both times, then with the mtime alone.
    let (sec, nsec) = (1_600_000_000i64, 123_456_789i64);
    futimens(&f, &times(sec, nsec, true))?;
    let st = fstat(&f)?;
    let diff = (ns(st.st_mtime, st.st_mtime_nsec as i64) - ns(sec, nsec)).unsigned_abs();
    caps.mtime_ns = GRANULARITIES
        .into_iter()
        .find(|g| diff < u128::from(*g))
        .unwrap_or(2_000_000_000);
    let (sec2, nsec2) = (1_500_000_000i64, 0i64);
    futimens(&f, &times(sec2, nsec2, false))?;
    let st = fstat(&f)?;
    let diff2 = (ns(st.st_mtime, st.st_mtime_nsec as i64) - ns(sec2, nsec2)).unsigned_abs();
    caps.set_atime = diff2 >= u128::from(caps.mtime_ns);
    drop(f);

    // 180 two-byte characters: 382 bytes in all, 202 UTF-16 units.
    caps.name_limit = match create(dir, tmp("é".repeat(180).as_bytes())) {
        Ok(_) => NameLimit::Utf16,
        Err(_) => NameLimit::Bytes,
    };
    caps.windows_names = matches!(
        create(dir, tmp(b"probe:w")),
        Err(Errno::INVAL | Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::ILSEQ)
    );
    caps.utf8_names = matches!(
        create(dir, tmp(b"probe-\xff")),
        Err(Errno::ILSEQ | Errno::INVAL | Errno::NOENT | Errno::PERM)
    );
    caps.hard_links =
        rustix::fs::linkat(dir, tmp(b"probe-a"), dir, tmp(b"probe-h"), AtFlags::empty()).is_ok();
    let f = create(dir, tmp(b"probe-x"))?;
    let set = |name: &str, value: &[u8]| {
        rustix::fs::fsetxattr(&f, name, value, rustix::fs::XattrFlags::empty()).is_ok()
            && rustix::fs::fgetxattr(&f, name, &mut [0u8; 64][..]).is_ok()
    };
    caps.xattr_user = set("user.replwatch-probe", b"1");
    caps.acl = set(crate::xattr::ACL_ACCESS, &probe_acl());
    caps.xattr_trusted = as_root && set("trusted.replwatch-probe", b"1");
    Ok(caps)
}

/// An access ACL that only an ACL-keeping filesystem stores as one (a named user beside
/// the mode's three classes): user::rw-, user:0:r--, group::r--, mask::r--, other::---.
fn probe_acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 0),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posix_filesystem_keeps_everything() {
        let t = tempfile::tempdir().unwrap();
        let root = crate::handle::open_root(t.path()).unwrap();
        let before = std::fs::metadata(t.path()).unwrap().modified().unwrap();
        let caps = probe(root.as_fd(), rustix::process::geteuid().is_root()).unwrap();
        assert!(!caps.case_insensitive && caps.symlinks && caps.perms);
        assert!(caps.mtime_ns <= 100, "{caps:?}");
        assert!(!caps.set_atime && !caps.windows_names && !caps.utf8_names);
        assert_eq!(caps.name_limit, NameLimit::Bytes);
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            0,
            "probe left files"
        );
        let after = std::fs::metadata(t.path()).unwrap().modified().unwrap();
        assert_eq!(before, after, "the probe changed the replica root's mtime");
    }

    #[test]
    fn probe_names_are_temp_names() {
        for stem in [
            &b"probe-a"[..],
            b"probe:w",
            b"probe-\xff",
            "é".repeat(180).as_bytes(),
        ] {
            assert!(crate::tempname::is_temp_name(&tmp(stem)));
        }
        assert!(tmp("é".repeat(180).as_bytes()).len() > 255);
    }

    #[test]
    fn names_are_checked_against_the_rules() {
        let posix = Caps::default();
        assert!(posix.refuses_name(OsStr::new("a:b")).is_none());
        assert!(posix.refuses_name(OsStr::from_bytes(b"\xff")).is_none());
        assert!(posix.refuses_name(OsStr::new(&"é".repeat(128))).is_some());
        let exfat = Caps {
            windows_names: true,
            utf8_names: true,
            name_limit: NameLimit::Utf16,
            case_insensitive: true,
            ..Caps::default()
        };
        assert!(exfat.refuses_name(OsStr::new("a:b")).is_some());
        assert!(exfat.refuses_name(OsStr::new("tab\there")).is_some());
        assert!(exfat.refuses_name(OsStr::from_bytes(b"\xff")).is_some());
        assert!(exfat.refuses_name(OsStr::new(&"é".repeat(200))).is_none());
        assert!(exfat.refuses_name(OsStr::new(&"é".repeat(256))).is_some());
        assert_eq!(
            exfat.fold(OsStr::new("Docs")),
            exfat.fold(OsStr::new("DOCS"))
        );
        assert_ne!(
            posix.fold(OsStr::new("Docs")),
            posix.fold(OsStr::new("DOCS"))
        );
    }

    #[test]
    fn losses_are_said_in_words() {
        let exfat = Caps {
            symlinks: false,
            perms: false,
            special_bits: false,
            mtime_ns: 1_000_000_000,
            ..Caps::default()
        };
        let words = exfat.losses(false).join(", ");
        assert_eq!(words, "no symlinks, no permission bits, times to 1 s");
        assert!(Caps::default().losses(true).is_empty());
    }
}
