//! The top of the library: turn a validated configuration into a finished run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use slog::{Logger, error, info, warn};

use crate::config::Config;
use crate::copy::CopyOptions;
use crate::exit::Outcome;
use crate::pass::{Engine, PassError, SyncOptions};
use crate::plan::PlanOptions;
use crate::report::{Summary, Trigger};

/// Build the engine for a configuration.
pub fn engine(config: &Config, log: &Logger, stop: Arc<AtomicBool>) -> Engine {
    let owner = rustix::process::geteuid().is_root();
    Engine {
        source: config.source.clone(),
        replica: config.replica.clone(),
        opts: SyncOptions {
            plan: PlanOptions {
                checksum: config.checksum,
                owner,
            },
            copy: CopyOptions {
                owner,
                fsync: config.fsync,
            },
            workers: config.workers,
            allow_empty_source: config.allow_empty_source,
            excludes: config.excludes.clone(),
            dry_run: config.dry_run,
            max_delete: config.max_delete,
        },
        log: log.clone(),
        stop,
        out: std::sync::Mutex::new(Box::new(std::io::stdout())),
        current: std::sync::Mutex::new(None),
    }
}

/// Run replwatch as configured and say how it ended.
///
/// Ctrl-C, SIGTERM and SIGHUP set the stop flag (a copy in flight is abandoned and its temp
/// file removed) and wake the live loop. `--once` interrupted that way exits "partial": the
/// pass did not finish. Live mode exits 0: stopping is what it was asked to do.
pub fn run(config: &Config, log: &Logger) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let engine = engine(config, log, Arc::clone(&stop));
    let (tx, rx) = std::sync::mpsc::channel();
    let signal_tx = Mutex::new(tx.clone());
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || {
        flag.store(true, Ordering::Relaxed);
        if let Ok(tx) = signal_tx.lock() {
            let _ = tx.send(crate::live::Msg::Stop);
        }
    }) {
        warn!(log, "cannot handle Ctrl-C/SIGTERM: {}", e);
    }
    info!(log, "starting";
        "source" => %config.source.display(), "replica" => %config.replica.display(),
        "mode" => if config.once { "once" } else { "live" });
    std::thread::scope(|s| {
        // Dropped (bar cleared, thread joined) before `run` returns, so before the log flush.
        let _progress = (config.progress && !config.dry_run).then(|| {
            crate::progress::start(
                s,
                &engine.current,
                crate::progress::Options {
                    source: config.source.clone(),
                    excludes: config.excludes.clone(),
                },
            )
        });
        if config.once {
            return match engine.full_pass(Trigger::Initial) {
                Err(PassError::Stopped) => {
                    warn!(log, "stopped before the pass finished");
                    Outcome::Partial
                }
                result => pass_outcome(log, result),
            };
        }
        crate::live::run(config, &engine, log, tx, rx)
    })
}

/// What a pass's result means for the exit status.
pub fn pass_outcome(log: &Logger, result: Result<Summary, PassError>) -> Outcome {
    match result {
        Ok(s) if s.errors == 0 => Outcome::Success,
        Ok(s) => {
            warn!(log, "pass finished with {} errors", s.errors; "errors" => s.errors);
            Outcome::Partial
        }
        Err(PassError::Stopped) => Outcome::Success,
        Err(e @ (PassError::EmptySource | PassError::TooManyDeletes { .. })) => {
            error!(log, "{}", e);
            Outcome::Partial
        }
        Err(e) => {
            error!(log, "{}", e);
            Outcome::Fatal
        }
    }
}
