//! A logfile bounded by size: when the next record would take `replwatch.log` past
//! `--log-max-size`, it becomes `replwatch.log.1` (`.1` becomes `.2`, ... up to
//! `--log-keep`, the oldest dropped) and a new `replwatch.log` is started.
//!
//! Built in rather than left to logrotate: a service must not fill its disk whatever the
//! host has set up (Task Scheduler and many containers have no logrotate), and SIGHUP, the
//! usual "reopen" signal, already means "stop" to replwatch. logrotate's `copytruncate`
//! still works with `--log-max-size 0` (no rotation), since the file is opened `O_APPEND`.
//!
//! Rotation happens between records, never inside one: a file exceeds the bound only when a
//! single record is larger than the bound. Files are renamed and reopened through the LOGDIR
//! handle (`logfile::LogDir`), so the same no-symlink rules hold for each new file.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use crate::logfile::LogDir;

/// The logfile, rotated by size.
pub struct Rotating {
    dir: Arc<LogDir>,
    name: &'static str,
    file: File,
    /// Bytes in `file`.
    size: u64,
    /// 0: never rotate.
    max: u64,
    keep: u32,
    /// The start of a record not yet ended by its newline.
    partial: Vec<u8>,
}

impl Rotating {
    /// Open `name` in `dir` for appending (its current size counts towards the bound).
    pub fn open(dir: Arc<LogDir>, name: &'static str, max: u64, keep: u32) -> io::Result<Self> {
        let file = dir.open_append(name)?;
        let size = file.metadata()?.len();
        Ok(Rotating {
            dir,
            name,
            file,
            size,
            max,
            keep,
            partial: Vec::new(),
        })
    }

    /// Write one whole line, rotating first if it would take the file past the bound.
    pub(crate) fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.max > 0 && self.size > 0 && self.size + line.len() as u64 > self.max {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let dir = self.dir.fd();
        let numbered = |i: u32| format!("{}.{i}", self.name);
        let ignore_missing = |r: rustix::io::Result<()>| match r {
            Err(rustix::io::Errno::NOENT) => Ok(()),
            r => r.map_err(io::Error::from),
        };
        for i in (1..self.keep).rev() {
            ignore_missing(rustix::fs::renameat(dir, numbered(i), dir, numbered(i + 1)))?;
        }
        if self.keep > 0 {
            ignore_missing(rustix::fs::renameat(dir, self.name, dir, numbered(1)))?;
        } else {
            ignore_missing(rustix::fs::unlinkat(
                dir,
                self.name,
                rustix::fs::AtFlags::empty(),
            ))?;
        }
        self.file = self.dir.open_append(self.name)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for Rotating {
    /// Takes all of `buf`; each line it completes is written whole.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let done: Vec<u8> = self.partial.drain(..=end).collect();
            for line in done.split_inclusive(|&b| b == b'\n') {
                self.line(line)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Rotating {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            let _ = self.line(&rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn rotates_between_lines_and_keeps_the_configured_number() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = Arc::new(LogDir::open(t.path()).unwrap());
        let mut r = Rotating::open(dir, "x.log", 100, 2).unwrap();
        for i in 0..50 {
            // Written in two pieces: rotation waits for the newline.
            write!(r, "record {i:03} ").unwrap();
            writeln!(r, "{}", "-".repeat(20)).unwrap();
        }
        drop(r);
        let mut names: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["x.log", "x.log.1", "x.log.2"]);
        for n in &names {
            let text = std::fs::read_to_string(t.path().join(n)).unwrap();
            assert!(text.len() <= 100, "{n}: {}", text.len());
            assert!(
                text.lines()
                    .all(|l| l.starts_with("record ") && l.len() == 31),
                "{text}"
            );
        }
        let newest = std::fs::read_to_string(t.path().join("x.log")).unwrap();
        assert!(
            newest.ends_with("record 049 --------------------\n"),
            "{newest}"
        );
    }

    #[test]
    fn keeping_none_starts_the_file_over() {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = Arc::new(LogDir::open(t.path()).unwrap());
        let mut r = Rotating::open(dir, "x.log", 50, 0).unwrap();
        for i in 0..10 {
            writeln!(r, "line {i} {}", "-".repeat(20)).unwrap();
        }
        drop(r);
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let text = std::fs::read_to_string(t.path().join("x.log")).unwrap();
        assert!(text.len() <= 50, "{text}");
        assert!(text.ends_with("line 9 --------------------\n"), "{text}");
    }
}
