//! Structured logging: a human console and an append-only logfile, behind one async drain.
//!
//! The async drain blocks rather than drop records when full (a mirror's log is its audit
//! trail), and its guard flushes on drop: `main` drops it last, after every worker stopped.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use slog::{Drain, Level, LevelFilter, Logger, o};

/// The logfile's name inside LOGDIR.
pub const LOG_FILE: &str = "replwatch.log";

/// Flushes and stops the logging thread when dropped.
pub struct LogGuard {
    _guard: slog_async::AsyncGuard,
}

/// Where log records go.
pub struct LogSettings<'a> {
    pub dir: &'a Path,
    /// -1 quiet, 0 normal, 1 debug, 2 trace (console; the file takes info, or debug with -v).
    pub verbosity: i8,
}

/// Create LOGDIR if needed, open the logfile for appending and build the root logger.
pub fn init(s: &LogSettings<'_>) -> io::Result<(Logger, LogGuard, PathBuf)> {
    std::fs::create_dir_all(s.dir)?;
    let path = s.dir.join(LOG_FILE);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;

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

    let decorator = if std::env::var_os("NO_COLOR").is_some() {
        slog_term::TermDecorator::new()
            .stdout()
            .force_plain()
            .build()
    } else {
        slog_term::TermDecorator::new().stdout().build()
    };
    let console = slog_term::FullFormat::new(decorator)
        .use_original_order()
        .build()
        .fuse();
    let console = LevelFilter::new(console, console_level).fuse();

    let file = slog_term::FullFormat::new(slog_term::PlainSyncDecorator::new(file))
        .use_original_order()
        .build()
        .fuse();
    let file = LevelFilter::new(file, file_level).fuse();

    let drain = slog::Duplicate::new(console, file).fuse();
    let (drain, guard) = slog_async::Async::new(drain)
        .chan_size(8192)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .build_with_guard();
    let log = Logger::root(drain.fuse(), o!());
    Ok((log, LogGuard { _guard: guard }, path))
}
