//! Names of the temporary files that make every write atomic.
//!
//! A copy is written to `.NAME.replwatch-XXXXXX.tmp` beside its target and renamed over it,
//! so a reader of the replica never sees half a file. The name must be recognisable, so that a
//! pass after a crash can remove what a killed run left behind, and must stay within the
//! 255-byte name limit even when NAME is already near it.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const MARK: &[u8] = b".replwatch-";
const SUFFIX: &[u8] = b".tmp";
const RANDOM_LEN: usize = 6;
/// Longest part of the original name kept in a temp name, in bytes. Short, so the temp name
/// fits every filesystem's limit (255 bytes on ext4, 255 UTF-16 units on exFAT and NTFS)
/// whatever the target's length, and cut on a character boundary (a UTF-8 sequence cut in
/// two is an invalid name, EILSEQ, on exFAT and NTFS).
const MAX_KEPT: usize = 48;

/// The first `max` bytes of `name` or fewer, never ending inside a UTF-8 sequence.
fn cut(name: &[u8], max: usize) -> &[u8] {
    let mut end = name.len().min(max);
    // A continuation byte (0b10xx_xxxx) at `end` means a character straddles the cut.
    while end > 0 && end < name.len() && name[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &name[..end]
}

/// The temp names this process is writing right now. A pass and a batch run side by side in
/// live mode: one's temp file in flight is not the other's stale leftover.
static IN_FLIGHT: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// A temp name in use by this process: registered while it lives, so no comparison takes it
/// for a crashed run's leftover.
#[derive(Debug, PartialEq, Eq)]
pub struct TempName(OsString);

impl std::ops::Deref for TempName {
    type Target = OsStr;
    fn deref(&self) -> &OsStr {
        &self.0
    }
}

impl AsRef<OsStr> for TempName {
    fn as_ref(&self) -> &OsStr {
        &self.0
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        in_flight_set().remove(&self.0);
    }
}

/// The set, even after a thread panicked holding it (it stays consistent: one insert or one
/// remove at a time).
fn in_flight_set() -> std::sync::MutexGuard<'static, BTreeSet<OsString>> {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Is `name` a temp file this process is writing right now?
pub fn in_flight(name: &OsStr) -> bool {
    in_flight_set().contains(name)
}

/// A fresh temp name for `target`, registered as in flight until dropped.
pub fn temp_name(target: &OsStr) -> TempName {
    let name = fresh_name(target);
    in_flight_set().insert(name.clone());
    TempName(name)
}

fn fresh_name(target: &OsStr) -> OsString {
    let kept = cut(target.as_bytes(), MAX_KEPT);
    let mut out = Vec::with_capacity(kept.len() + 24);
    out.push(b'.');
    out.extend_from_slice(kept);
    out.extend_from_slice(MARK);
    out.extend_from_slice(random_tag().as_bytes());
    out.extend_from_slice(SUFFIX);
    OsString::from_vec(out)
}

/// True for a name this tool made with [`temp_name`].
pub fn is_temp_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    if b.len() < 1 + MARK.len() + RANDOM_LEN + SUFFIX.len() || b[0] != b'.' || !b.ends_with(SUFFIX)
    {
        return false;
    }
    let tag_end = b.len() - SUFFIX.len();
    let tag = &b[tag_end - RANDOM_LEN..tag_end];
    let mark = &b[tag_end - RANDOM_LEN - MARK.len()..tag_end - RANDOM_LEN];
    mark == MARK && tag.iter().all(u8::is_ascii_alphanumeric)
}

/// The process id, asked of the kernel once (each `process::id()` is a system call).
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn random_tag() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(pid()) << 32)
        ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut x = seed | 1;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..RANDOM_LEN)
        .map(|_| {
            // xorshift: enough to avoid collisions between concurrent writers.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        let t = temp_name(OsStr::new("report.pdf"));
        assert!(t.to_string_lossy().starts_with(".report.pdf.replwatch-"));
        assert!(is_temp_name(&t));
    }

    #[test]
    fn ordinary_names_are_not_temp_names() {
        for n in [
            "a.tmp",
            ".a.tmp",
            ".x.replwatch-.tmp",
            "x.replwatch-abcdef.tmp",
            ".x.replwatch-ab_def.tmp",
        ] {
            assert!(!is_temp_name(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn long_names_stay_within_limit() {
        let long = OsString::from("é".repeat(127)); // 254 bytes
        let t = temp_name(&long);
        assert!(t.len() <= 255);
        assert!(is_temp_name(&t));
    }

    #[test]
    fn multibyte_names_are_cut_on_a_character_boundary() {
        for name in [
            "é".repeat(127),
            "日本語".repeat(28),
            format!("a{}", "é".repeat(120)),
        ] {
            let t = temp_name(OsStr::new(&name));
            let text = std::str::from_utf8(t.as_bytes()).expect("valid UTF-8 temp name");
            assert!(
                text.encode_utf16().count() <= 255 && t.len() <= 255,
                "{text}"
            );
            assert!(is_temp_name(&t));
        }
    }

    #[test]
    fn a_name_is_in_flight_while_it_lives() {
        let t = temp_name(OsStr::new("x"));
        let name = t.to_os_string();
        assert!(in_flight(&name));
        drop(t);
        assert!(!in_flight(&name));
    }

    #[test]
    fn consecutive_names_differ() {
        let a = temp_name(OsStr::new("f"));
        let b = temp_name(OsStr::new("f"));
        assert_ne!(a, b);
    }
}
