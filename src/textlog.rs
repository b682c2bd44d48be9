//! The text logfile's lines, each formatted once into a reused buffer and written whole.
//!
//! A copy pass logs one record per file, so the logging thread's cost per record is a share
//! of every copy. This writes the line slog-term's `FullFormat` wrote (`Dec 02 12:27:00.522
//! INFO copy, action: copy, path: a/b, ...`: local time to the millisecond, the short level,
//! the message, then each key-value in the order the code wrote it), with the message and
//! every text value escaped (`escape::line`), but without an owned copy of each value, a
//! local-time lookup per record, or a copy of the line on its way to the file: one pass over
//! the record into one buffer, then one `write`.

use std::fmt::Write as _;
use std::io;
use std::sync::Mutex;

use slog::{Drain, KV, Key, OwnedKVList, Record};

use crate::escape;
use crate::rotate::Rotating;

/// The text logfile drain.
pub(crate) struct TextFile {
    state: Mutex<State>,
}

struct State {
    out: Rotating,
    /// The line being built.
    line: String,
    /// Each key-value formatted, in the order slog hands them (last written first), and
    /// where each starts.
    pairs: String,
    starts: Vec<usize>,
    /// A value's text before escaping.
    value: String,
    /// The second the cached time prefix is for, and the prefix (`Dec 02 12:27:00`).
    second: i64,
    prefix: String,
}

impl TextFile {
    pub(crate) fn new(out: Rotating) -> TextFile {
        TextFile {
            state: Mutex::new(State {
                out,
                line: String::with_capacity(256),
                pairs: String::with_capacity(256),
                starts: Vec::with_capacity(16),
                value: String::with_capacity(128),
                second: i64::MIN,
                prefix: String::new(),
            }),
        }
    }
}

impl Drain for TextFile {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *state;
        s.line.clear();
        s.timestamp();
        s.line.push(' ');
        s.line.push_str(record.level().as_short_str());
        s.line.push(' ');
        s.value.clear();
        let _ = write!(s.value, "{}", record.msg());
        s.line.push_str(&escape::line(&s.value));
        let mut comma = !s.value.is_empty();
        for kv in [&record.kv() as &dyn KV, values as &dyn KV] {
            s.pairs.clear();
            s.starts.clear();
            let mut ser = Pairs {
                pairs: &mut s.pairs,
                starts: &mut s.starts,
                value: &mut s.value,
            };
            let _ = kv.serialize(record, &mut ser);
            // slog hands a record's pairs last written first: put them back in order.
            let mut end = s.pairs.len();
            for &start in s.starts.iter().rev() {
                if comma {
                    s.line.push_str(", ");
                }
                comma = true;
                s.line.push_str(&s.pairs[start..end]);
                end = start;
            }
        }
        s.line.push('\n');
        s.out.line(s.line.as_bytes())
    }
}

impl State {
    /// `Dec 02 12:27:00.522`, in local time (the time zone is looked up once a second).
    fn timestamp(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let sec = now.as_secs() as i64;
        if sec != self.second {
            self.second = sec;
            self.prefix = local_prefix(sec);
        }
        self.line.push_str(&self.prefix);
        let _ = write!(self.line, ".{:03}", now.subsec_millis());
    }
}

/// `Dec 02 12:27:00` for `sec` seconds since the epoch, in local time.
fn local_prefix(sec: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = sec as libc::time_t;
    // SAFETY: `tm` is plain data, filled in by `localtime_r` from `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return "??? ?? ??:??:??".to_owned();
    }
    format!(
        "{} {:02} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Formats each pair as `key: value` into one buffer, text values escaped.
struct Pairs<'a> {
    pairs: &'a mut String,
    starts: &'a mut Vec<usize>,
    value: &'a mut String,
}

impl Pairs<'_> {
    fn plain(&mut self, key: Key, val: impl std::fmt::Display) -> slog::Result {
        self.starts.push(self.pairs.len());
        let _ = write!(self.pairs, "{key}: {val}");
        Ok(())
    }

    fn text(&mut self, key: Key, val: &dyn std::fmt::Display) -> slog::Result {
        self.value.clear();
        let _ = write!(self.value, "{val}");
        self.starts.push(self.pairs.len());
        let _ = write!(self.pairs, "{key}: {}", escape::line(self.value));
        Ok(())
    }
}

impl slog::Serializer for Pairs<'_> {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.text(key, val)
    }
    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        self.text(key, &val)
    }
    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.plain(key, "None")
    }
    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.plain(key, "()")
    }
    fn emit_bool(&mut self, key: Key, val: bool) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_char(&mut self, key: Key, val: char) -> slog::Result {
        self.text(key, &val)
    }
    fn emit_usize(&mut self, key: Key, val: usize) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_isize(&mut self, key: Key, val: isize) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_u8(&mut self, key: Key, val: u8) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_i8(&mut self, key: Key, val: i8) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_u16(&mut self, key: Key, val: u16) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_i16(&mut self, key: Key, val: i16) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_u32(&mut self, key: Key, val: u32) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_i32(&mut self, key: Key, val: i32) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_i64(&mut self, key: Key, val: i64) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_f32(&mut self, key: Key, val: f32) -> slog::Result {
        self.plain(key, val)
    }
    fn emit_f64(&mut self, key: Key, val: f64) -> slog::Result {
        self.plain(key, val)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line slog-term's `FullFormat` (original order) wrote, from the same record.
    fn slog_term_line(record: &Record<'_>) -> String {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl io::Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let d = slog_term::FullFormat::new(slog_term::PlainSyncDecorator::new(Shared(buf.clone())))
            .use_original_order()
            .build();
        d.log(record, &OwnedKVList::from(slog::o!())).unwrap();
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_what_slog_term_wrote_apart_from_escaping() {
        let dir = tempfile::tempdir().unwrap();
        let logdir = std::sync::Arc::new(crate::logfile::LogDir::open(dir.path()).unwrap());
        let out = Rotating::open(logdir, "t.log", 0, 1).unwrap();
        let drain = TextFile::new(out);
        let path = std::path::Path::new("a/b c.txt");
        let stat = slog::record_static!(slog::Level::Info, "");
        let rec = |drain: &mut dyn FnMut(&Record<'_>)| {
            drain(&Record::new(
                &stat,
                &format_args!("copy"),
                slog::b!("action" => "copy", "path" => %path.display(), "bytes" => 1800u64,
                    "drift" => false, "ratio" => 0.5f64),
            ))
        };
        let mut theirs = String::new();
        rec(&mut |r| theirs = slog_term_line(r));
        rec(&mut |r| drain.log(r, &OwnedKVList::from(slog::o!())).unwrap());
        let ours = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        // The timestamps may differ by a millisecond: compare what follows them.
        let tail = |l: &str| l.splitn(4, ' ').nth(3).unwrap().to_owned();
        assert_eq!(tail(&ours), tail(&theirs));
        assert_eq!(
            tail(&ours),
            "INFO copy, action: copy, path: a/b c.txt, bytes: 1800, drift: false, ratio: 0.5\n"
        );
        assert_eq!(
            ours.len() - tail(&ours).len(),
            theirs.len() - tail(&theirs).len()
        );
    }

    #[test]
    fn a_name_with_a_newline_stays_on_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let logdir = std::sync::Arc::new(crate::logfile::LogDir::open(dir.path()).unwrap());
        let drain = TextFile::new(Rotating::open(logdir, "t.log", 0, 1).unwrap());
        let stat = slog::record_static!(slog::Level::Error, "");
        drain
            .log(
                &Record::new(
                    &stat,
                    &format_args!("copy failed: evil\nroot::0:0"),
                    slog::b!("path" => "evil\nroot::0:0"),
                ),
                &OwnedKVList::from(slog::o!()),
            )
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.ends_with(" ERRO copy failed: evil\\nroot::0:0, path: evil\\nroot::0:0\n"),
            "{text:?}"
        );
    }
}
