//! Extended attributes and POSIX ACLs (`rsync -AX`), read and written through handles.
//!
//! POSIX ACLs are the `system.posix_acl_access` and `system.posix_acl_default` attributes;
//! copying their raw values is what `cp -a` does. File capabilities are
//! `security.capability`, which the kernel drops on a chown: they are set after the owner.
//!
//! Which attributes are mirrored ([`Namespaces`]): `user.*`, the two ACLs, and as root
//! `trusted.*` and `security.capability`. Other `security.*` attributes (SELinux, Smack, IMA
//! labels) belong to the policy of the machine that holds the file, not to the file, and are
//! left to it, as Syncthing does; other `system.*` attributes are filesystem-specific views.
//!
//! A file's attributes are read by name under a held directory handle, through
//! `/proc/self/fd/N/NAME` with the `l*` calls, so the last component is never followed and
//! no path is resolved twice from the root.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// A file's mirrored attributes, sorted by name.
pub type Xattrs = Vec<(OsString, Vec<u8>)>;

pub const ACL_ACCESS: &str = "system.posix_acl_access";
pub const ACL_DEFAULT: &str = "system.posix_acl_default";

/// Which attributes a run mirrors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// `user.*`.
    pub user: bool,
    /// `system.posix_acl_access` and `system.posix_acl_default`.
    pub acl: bool,
    /// `trusted.*` and `security.capability` (root only).
    pub privileged: bool,
}

impl Namespaces {
    pub fn any(self) -> bool {
        self.user || self.acl || self.privileged
    }

    /// Is the attribute `name` mirrored?
    pub fn mirrors(self, name: &[u8]) -> bool {
        (self.user && name.starts_with(b"user."))
            || (self.acl && (name == ACL_ACCESS.as_bytes() || name == ACL_DEFAULT.as_bytes()))
            || (self.privileged
                && (name.starts_with(b"trusted.") || name == b"security.capability"))
    }
}

/// What a read keeps: the mirrored attributes, and the access ACL even where ACLs are not
/// mirrored (its mask must not become group permissions: see `plan::source_mode`).
fn kept(name: &[u8], ns: Namespaces) -> bool {
    ns.mirrors(name) || name == ACL_ACCESS.as_bytes()
}

/// `/proc/self/fd/N/NAME`: `name` in the directory behind `dir`, for the path-only calls.
fn at_path(dir: BorrowedFd<'_>, name: &OsStr) -> OsString {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.as_bytes());
    OsString::from_vec(p)
}

/// Where an attribute is read or written: an open file, or a name in a directory (symlinks
/// are never followed).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a OsStr),
}

impl Target<'_> {
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Target::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            Target::At(dir, name) => match at_syscalls::list(dir, name, buf) {
                Err(e @ (Errno::NOSYS | Errno::PERM)) => {
                    let r = rustix::fs::llistxattr(at_path(dir, name), buf);
                    at_syscalls::fell_back(e, r.is_ok());
                    r
                }
                other => other,
            },
        }
    }

    fn get(self, attr: &OsStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Target::Fd(fd) => rustix::fs::fgetxattr(fd, attr, buf),
            Target::At(dir, name) => match at_syscalls::get(dir, name, attr, buf) {
                Err(e @ (Errno::NOSYS | Errno::PERM)) => {
                    let r = rustix::fs::lgetxattr(at_path(dir, name), attr, buf);
                    at_syscalls::fell_back(e, r.is_ok());
                    r
                }
                other => other,
            },
        }
    }

    fn set(self, attr: &OsStr, value: &[u8]) -> rustix::io::Result<()> {
        match self {
            Target::Fd(fd) => rustix::fs::fsetxattr(fd, attr, value, XattrFlags::empty()),
            Target::At(dir, name) => {
                rustix::fs::lsetxattr(at_path(dir, name), attr, value, XattrFlags::empty())
            }
        }
    }

    fn remove(self, attr: &OsStr) -> rustix::io::Result<()> {
        match self {
            Target::Fd(fd) => rustix::fs::fremovexattr(fd, attr),
            Target::At(dir, name) => rustix::fs::lremovexattr(at_path(dir, name), attr),
        }
    }
}

/// `listxattrat` and `getxattrat` (Linux 6.13): the attributes of a name in a directory,
/// without resolving a path through `/proc` for every entry (a third of a no-change pass's
/// time). Older kernels say `ENOSYS`, once: the `/proc` path is used from then on. A seccomp
/// filter that refuses unknown calls says `EPERM`: when the `/proc` path then works, it is
/// used from then on too.
mod at_syscalls {
    use std::ffi::{CString, OsStr};
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::io::Errno;

    const SYS_GETXATTRAT: libc::c_long = 464;
    const SYS_LISTXATTRAT: libc::c_long = 465;

    static MISSING: AtomicBool = AtomicBool::new(false);

    #[repr(C)]
    struct XattrArgs {
        value: u64,
        size: u32,
        flags: u32,
    }

    fn done(rc: libc::c_long) -> rustix::io::Result<usize> {
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e =
            Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        if e == Errno::NOSYS {
            MISSING.store(true, Ordering::Relaxed);
        }
        Err(e)
    }

    /// The `/proc` path answered after this call failed with `e`: if the call is missing
    /// (`ENOSYS`) or refused as a whole (`EPERM` where the path worked), stop trying it.
    pub(super) fn fell_back(e: Errno, path_worked: bool) {
        if e == Errno::NOSYS || path_worked {
            MISSING.store(true, Ordering::Relaxed);
        }
    }

    fn c(s: &OsStr) -> rustix::io::Result<CString> {
        CString::new(s.as_bytes()).map_err(|_| Errno::INVAL)
    }

    pub(super) fn list(
        dir: BorrowedFd<'_>,
        name: &OsStr,
        buf: &mut [u8],
    ) -> rustix::io::Result<usize> {
        if MISSING.load(Ordering::Relaxed) {
            return Err(Errno::NOSYS);
        }
        let name = c(name)?;
        // SAFETY: a valid fd, a NUL-terminated name and a buffer of the given length.
        done(unsafe {
            libc::syscall(
                SYS_LISTXATTRAT,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                buf.as_mut_ptr(),
                buf.len(),
            )
        })
    }

    pub(super) fn get(
        dir: BorrowedFd<'_>,
        name: &OsStr,
        attr: &OsStr,
        buf: &mut [u8],
    ) -> rustix::io::Result<usize> {
        if MISSING.load(Ordering::Relaxed) {
            return Err(Errno::NOSYS);
        }
        let (name, attr) = (c(name)?, c(attr)?);
        let mut args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size: buf.len().min(u32::MAX as usize) as u32,
            flags: 0,
        };
        // SAFETY: valid fd and NUL-terminated strings; `args` points at a buffer of `size`
        // bytes and is passed with its own size.
        done(unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                attr.as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        })
    }
}

/// Fill `buf` by `call`, growing it when the kernel says it is too small.
fn read_into(
    buf: &mut Vec<u8>,
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<usize> {
    loop {
        match call(buf) {
            Err(Errno::RANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            other => return other,
        }
    }
}

/// The attributes of `at` that a run keeps (see [`kept`]). A filesystem without attributes
/// has none; an attribute that vanishes between list and read is left out.
pub fn read(at: Target<'_>, ns: Namespaces) -> io::Result<Xattrs> {
    let mut list = vec![0u8; 256];
    let n = match read_into(&mut list, |b| at.list(b)) {
        Ok(n) => n,
        Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut value = vec![0u8; 256];
    for attr in list[..n].split(|b| *b == 0).filter(|a| !a.is_empty()) {
        if !kept(attr, ns) {
            continue;
        }
        let attr = OsStr::from_bytes(attr);
        match read_into(&mut value, |b| at.get(attr, b)) {
            Ok(len) => out.push((attr.to_owned(), value[..len].to_vec())),
            Err(Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

/// The changes that make one attribute set another, for the mirrored namespaces only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XattrFix {
    pub set: Xattrs,
    pub remove: Vec<OsString>,
}

impl XattrFix {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// What to set and remove on `have` so that its mirrored attributes are `want`'s.
pub fn diff(
    want: &[(OsString, Vec<u8>)],
    have: &[(OsString, Vec<u8>)],
    ns: Namespaces,
) -> XattrFix {
    let mirrored = |(n, _): &&(OsString, Vec<u8>)| ns.mirrors(n.as_bytes());
    let want: Vec<_> = want.iter().filter(mirrored).collect();
    let have: Vec<_> = have.iter().filter(mirrored).collect();
    XattrFix {
        set: want
            .iter()
            .filter(|w| !have.contains(w))
            .map(|w| (*w).clone())
            .collect(),
        remove: have
            .iter()
            .filter(|(n, _)| !want.iter().any(|(m, _)| m == n))
            .map(|(n, _)| n.clone())
            .collect(),
    }
}

/// Carry out a fix. Removals first (an inherited default ACL gives way to the source's).
pub fn apply(at: Target<'_>, fix: &XattrFix) -> io::Result<()> {
    for name in &fix.remove {
        match at.remove(name) {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) => return Err(attr_error(e, name)),
        }
    }
    for (name, value) in &fix.set {
        at.set(name, value).map_err(|e| attr_error(e, name))?;
    }
    Ok(())
}

fn attr_error(e: Errno, name: &OsStr) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(
        e.kind(),
        format!("extended attribute {}: {e}", name.to_string_lossy()),
    )
}

/// The permissions the owning group really has under an access ACL (its own entry, limited
/// by the mask), where the mode's group bits show the mask. `None` for a minimal ACL (no
/// mask: the group bits are the group's) or a value that is not an ACL.
pub fn acl_group_perms(acl: &[u8]) -> Option<u32> {
    // Version 2 header, then entries of (tag u16, perm u16, id u32), little-endian.
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    let (head, body) = acl.split_at_checked(4)?;
    if u32::from_le_bytes(head.try_into().ok()?) != 2 || body.len() % 8 != 0 {
        return None;
    }
    let (mut group, mut mask) = (None, None);
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u32::from(u16::from_le_bytes([e[2], e[3]]) & 0o7);
        match tag {
            GROUP_OBJ => group = Some(perm),
            MASK => mask = Some(perm),
            _ => {}
        }
    }
    Some(group? & mask?)
}

/// Does the directory have a default ACL, which files created in it inherit? Where it cannot be
/// told, yes (the caller then reads what a new file got).
pub fn has_default_acl(dir: impl AsFd) -> bool {
    match rustix::fs::fgetxattr(dir, "system.posix_acl_default", &mut [0u8; 0][..]) {
        // (The length rustix hands back is capped at the empty buffer's: whatever it says, the
        // attribute is there.)
        Ok(_) => true,
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => false,
        Err(_) => true,
    }
}

/// Read the attributes of the entries of a listing made under `dir` that have none read yet.
pub fn read_listing(
    dir: impl AsFd,
    entries: &mut [crate::entry::Entry],
    ns: Namespaces,
) -> Vec<(OsString, io::Error)> {
    let dir = dir.as_fd();
    let mut errors = Vec::new();
    for e in entries.iter_mut().filter(|e| e.xattrs.is_none()) {
        match read(Target::At(dir, &e.name), ns) {
            Ok(x) => e.xattrs = Some(x),
            // Gone since it was listed (NotFound) included: the caller decides what that means.
            Err(err) => errors.push((e.name.clone(), err)),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn the_at_calls_and_the_proc_path_read_the_same() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "x").unwrap();
        let dir = crate::handle::open_root(t.path()).unwrap();
        let name = OsStr::new("f");
        if rustix::fs::lsetxattr(t.path().join("f"), "user.k", b"v", XattrFlags::empty()).is_err() {
            return; // no user attributes here: nothing to compare
        }
        let mut a = vec![0u8; 64];
        let mut b = [0u8; 64];
        let via_proc = rustix::fs::llistxattr(at_path(dir.as_fd(), name), &mut b[..]).unwrap();
        assert_eq!(&b[..via_proc], b"user.k\0");
        match at_syscalls::list(dir.as_fd(), name, &mut a) {
            Ok(n) => assert_eq!(&a[..n], &b[..via_proc]),
            Err(e) => assert_eq!(e, Errno::NOSYS, "listxattrat"),
        }
        let got = rustix::fs::lgetxattr(at_path(dir.as_fd(), name), "user.k", &mut b[..]).unwrap();
        assert_eq!(&b[..got], b"v");
        match at_syscalls::get(dir.as_fd(), name, OsStr::new("user.k"), &mut a) {
            Ok(n) => assert_eq!(&a[..n], b"v"),
            Err(e) => assert_eq!(e, Errno::NOSYS, "getxattrat"),
        }
    }

    #[test]
    fn the_group_gets_its_own_entry_within_the_mask() {
        let u = u32::MAX;
        // user::rw-, user:1000:rwx, group::r--, mask::rwx, other::---
        let a = acl(&[
            (1, 6, u),
            (2, 7, 1000),
            (4, 4, u),
            (0x10, 7, u),
            (0x20, 0, u),
        ]);
        assert_eq!(acl_group_perms(&a), Some(4));
        // group::rwx limited by mask::r-x
        let b = acl(&[(1, 6, u), (4, 7, u), (0x10, 5, u), (0x20, 0, u)]);
        assert_eq!(acl_group_perms(&b), Some(5));
        // A minimal ACL has no mask; garbage is no ACL.
        assert_eq!(
            acl_group_perms(&acl(&[(1, 6, u), (4, 4, u), (0x20, 0, u)])),
            None
        );
        assert_eq!(acl_group_perms(b"junk"), None);
    }

    #[test]
    fn a_fix_sets_what_differs_and_removes_what_the_source_lacks() {
        let ns = Namespaces {
            user: true,
            acl: false,
            privileged: false,
        };
        let x = |n: &str, v: &str| (OsString::from(n), v.as_bytes().to_vec());
        let want = vec![x("user.a", "1"), x("user.b", "2"), x(ACL_ACCESS, "acl")];
        let have = vec![x("trusted.t", "kept"), x("user.b", "old"), x("user.c", "3")];
        let fix = diff(&want, &have, ns);
        assert_eq!(fix.set, vec![x("user.a", "1"), x("user.b", "2")]);
        assert_eq!(fix.remove, vec![OsString::from("user.c")]);
        assert!(diff(&want, &want, ns).is_empty());
    }
}
