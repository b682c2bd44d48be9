//! Structured logging: a console (stdout) and an append-only logfile, behind one async drain.
//! The logfile is written a whole line at a time (so a crash leaves at most a torn last
//! line) and rotated by size (`rotate`).
//!
//! The logfile is text (slog-term, every key-value) or JSON lines (slog-json, with
//! `--log-format json`); the console is short lines for people (`console`) or JSON lines
//! (`--console-json`). A JSON record is one object on one line with `ts`
//! (RFC 3339, UTC), `level`, `msg` and every key-value of the record (`action`, `path`,
//! `bytes`, `trigger`, `reason`, ...).
//!
//! The async drain blocks rather than drop records when full (a mirror's log is its audit
//! trail), and its guard flushes on drop: `main` drops it last, after every worker stopped.
//! While a progress bar is drawn on stderr, console records are written with the bar
//! cleared, so the two never share a terminal line.
//!
//! The logfile is opened through `logfile::LogDir` (no symlink followed, LOGDIR checked), and
//! every text record (file and console) has its message and values escaped by `escape::line`,
//! so a file name holding a newline cannot start a line of its own.

use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use slog::{
    Drain, FnValue, KV, Key, Level, LevelFilter, Logger, Never, OwnedKVList, PushFnValue, Record, o,
};

use crate::cli::LogFormat;
use crate::console::People;
use crate::logfile::LogDir;
use crate::rotate::Rotating;

/// The logfile's name inside LOGDIR.
pub const LOG_FILE: &str = "replwatch.log";

/// Flushes and stops the logging thread when dropped.
pub struct LogGuard {
    _guard: slog_async::AsyncGuard,
}

/// Where log records go and how they look.
pub struct LogSettings<'a> {
    pub dir: &'a Path,
    /// -1 quiet, 0 normal, 1 debug, 2 trace (console; the file takes info, or debug with -v).
    pub verbosity: i8,
    /// The logfile's format.
    pub format: LogFormat,
    /// Rotate the logfile past this many bytes (0: never), keeping `keep` old ones.
    pub max_size: u64,
    pub keep: u32,
    /// JSON lines on the console instead of text.
    pub console_json: bool,
}

type BoxDrain = Box<dyn Drain<Ok = (), Err = Never> + Send>;

/// Create LOGDIR if needed, open the logfile for appending and build the root logger.
/// Returns LOGDIR, held open, for the other files replwatch keeps there.
pub fn init(s: &LogSettings<'_>) -> io::Result<(Logger, LogGuard, Arc<LogDir>)> {
    let dir = Arc::new(LogDir::open(s.dir)?);
    let file = Rotating::open(Arc::clone(&dir), LOG_FILE, s.max_size, s.keep)?;

    let console_level = match s.verbosity {
        i8::MIN..=-1 => Level::Warning,
        0 => Level::Info,
        1 => Level::Debug,
        _ => Level::Trace,
    };
    let file_level = if s.verbosity >= 1 {
        Level::Debug
    } else {
        Level::Info
    };

    // A console that goes away (`replwatch ... | head`, a closed terminal) must not stop the
    // mirror: its errors are dropped and the logfile keeps every record.
    let terminal = io::stdout().is_terminal();
    let console: BoxDrain = if s.console_json {
        Box::new(InOrder(json(Stdout::default())).ignore_res())
    } else {
        let colour = terminal && std::env::var_os("NO_COLOR").is_none();
        Box::new(People::new(Stdout::default(), s.verbosity >= 1, colour))
    };
    let console: BoxDrain = if terminal {
        Box::new(BesideProgress(console))
    } else {
        console
    };
    let console = LevelFilter::new(console, console_level).fuse();

    let file: BoxDrain = match s.format {
        LogFormat::Json => Box::new(WarnOnce::new(InOrder(json(file)))),
        LogFormat::Text => Box::new(WarnOnce::new(crate::textlog::TextFile::new(file))),
    };
    let file = LevelFilter::new(file, file_level).fuse();

    let drain = slog::Duplicate::new(console, file).fuse();
    let (drain, guard) = slog_async::Async::new(drain)
        .chan_size(8192)
        .thread_name("replwatch-log".into())
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .build_with_guard();
    let log = Logger::root(drain.fuse(), o!());
    Ok((log, LogGuard { _guard: guard }, dir))
}

/// Stdout for the console: once the reader has gone (EPIPE) it
/// takes every write and discards it, so no formatter ever sees an error (slog-term panics
/// when a write fails in the middle of a record). Other errors drop that write only.
#[derive(Default)]
struct Stdout {
    gone: bool,
}

impl io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        match io::stdout().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.gone = e.kind() == io::ErrorKind::BrokenPipe;
                Ok(buf.len())
            }
            ok => ok,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.gone
            && let Err(e) = io::stdout().flush()
        {
            self.gone = e.kind() == io::ErrorKind::BrokenPipe;
        }
        Ok(())
    }
}

/// One JSON object per record and per line: `ts`, `level`, `msg`, then the record's own
/// key-values in the order they were written.
fn json<W: io::Write + Send + 'static>(out: W) -> slog_json::Json<W> {
    slog_json::Json::new(out)
        .set_newlines(true)
        .set_flush(true)
        // `o!` serializes its pairs last first: this writes ts, level, msg.
        .add_key_value(o!(
            "msg" => PushFnValue(|r: &Record, ser| ser.emit(r.msg())),
            "level" => FnValue(|r: &Record| level_name(r.level())),
            "ts" => FnValue(|_: &Record| {
                humantime::format_rfc3339_micros(SystemTime::now()).to_string()
            }),
        ))
        .build()
}

/// Lower-case level names, as most log processors expect.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// Hands records on with their key-values in the order the code wrote them (slog serializes
/// a record's pairs last first), so a JSON line reads `action`, `path`, ... like the text.
struct InOrder<D>(D);

impl<D: Drain> Drain for InOrder<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<D::Ok, D::Err> {
        let mut pairs = Pairs(Vec::new());
        let _ = record.kv().serialize(record, &mut pairs);
        pairs.0.reverse();
        let stat = slog::record_static!(record.level(), record.tag());
        self.0
            .log(&Record::new(&stat, record.msg(), slog::b!(pairs)), values)
    }
}

/// A record's key-values, owned, in the order given.
struct Pairs(Vec<(Key, Value)>);

enum Value {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    S(String),
    Unit,
    None,
}

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push((key, Value::S(val.to_string())));
        Ok(())
    }
    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        self.0.push((key, Value::S(val.to_owned())));
        Ok(())
    }
    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        self.0.push((key, Value::U(val)));
        Ok(())
    }
    fn emit_u32(&mut self, key: Key, val: u32) -> slog::Result {
        self.emit_u64(key, val.into())
    }
    fn emit_u16(&mut self, key: Key, val: u16) -> slog::Result {
        self.emit_u64(key, val.into())
    }
    fn emit_u8(&mut self, key: Key, val: u8) -> slog::Result {
        self.emit_u64(key, val.into())
    }
    fn emit_usize(&mut self, key: Key, val: usize) -> slog::Result {
        self.emit_u64(key, val as u64)
    }
    fn emit_i64(&mut self, key: Key, val: i64) -> slog::Result {
        self.0.push((key, Value::I(val)));
        Ok(())
    }
    fn emit_i32(&mut self, key: Key, val: i32) -> slog::Result {
        self.emit_i64(key, val.into())
    }
    fn emit_i16(&mut self, key: Key, val: i16) -> slog::Result {
        self.emit_i64(key, val.into())
    }
    fn emit_i8(&mut self, key: Key, val: i8) -> slog::Result {
        self.emit_i64(key, val.into())
    }
    fn emit_isize(&mut self, key: Key, val: isize) -> slog::Result {
        self.emit_i64(key, val as i64)
    }
    fn emit_f64(&mut self, key: Key, val: f64) -> slog::Result {
        self.0.push((key, Value::F(val)));
        Ok(())
    }
    fn emit_f32(&mut self, key: Key, val: f32) -> slog::Result {
        self.emit_f64(key, val.into())
    }
    fn emit_bool(&mut self, key: Key, val: bool) -> slog::Result {
        self.0.push((key, Value::B(val)));
        Ok(())
    }
    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.0.push((key, Value::Unit));
        Ok(())
    }
    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.0.push((key, Value::None));
        Ok(())
    }
}

impl KV for Pairs {
    fn serialize(&self, _: &Record<'_>, ser: &mut dyn slog::Serializer) -> slog::Result {
        for (key, val) in &self.0 {
            let key = *key;
            match val {
                Value::U(v) => ser.emit_u64(key, *v)?,
                Value::I(v) => ser.emit_i64(key, *v)?,
                Value::F(v) => ser.emit_f64(key, *v)?,
                Value::B(v) => ser.emit_bool(key, *v)?,
                Value::S(v) => ser.emit_str(key, v)?,
                Value::Unit => ser.emit_unit(key)?,
                Value::None => ser.emit_none(key)?,
            }
        }
        Ok(())
    }
}

/// Writes console records with the progress bar (if one is drawn) cleared meanwhile.
struct BesideProgress(BoxDrain);

impl Drain for BesideProgress {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
        crate::progress::suspend(|| self.0.log(record, values))
    }
}

/// A logfile that cannot be written (its disk is full, say) must not stop the mirror: the
/// first failure is said once on stderr, and records that cannot be written are dropped.
struct WarnOnce<D> {
    inner: D,
    warned: std::sync::atomic::AtomicBool,
}

impl<D> WarnOnce<D> {
    fn new(inner: D) -> Self {
        WarnOnce {
            inner,
            warned: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<D: Drain<Err = io::Error>> Drain for WarnOnce<D> {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        if let Err(e) = self.inner.log(record, values)
            && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!("replwatch: warning: cannot write the logfile ({e}); records are being lost");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_are_lower_case_words() {
        for l in [
            Level::Critical,
            Level::Error,
            Level::Warning,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            let n = level_name(l);
            assert_eq!(n, l.as_str().to_ascii_lowercase());
        }
    }
}
