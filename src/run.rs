//! The top of the library: turn a validated configuration into a finished run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use slog::{Logger, error, info, warn};

use crate::config::Config;
use crate::exit::Outcome;
use crate::live::Msg;
use crate::logfile::LogDir;
use crate::pass::{Engine, PassError};
use crate::report::Trigger;

/// Run replwatch as configured and say how it ended. Live mode keeps its status record in
/// `log_dir`.
///
/// Ctrl-C, SIGTERM and SIGHUP set the stop flag (a copy in flight is abandoned and its temp
/// file removed) and wake the live loop. `--once` interrupted that way exits "partial": the
/// pass did not finish. Live mode, stopped by a signal or at the end of `--duration`, exits 0
/// when the replica is known complete and "partial" while any entry is known not mirrored.
pub fn run(config: &Config, log: &Logger, log_dir: Arc<LogDir>) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let engine = match Engine::new(config, log, Arc::clone(&stop)) {
        Ok(e) => e,
        Err(e) => {
            error!(log, "{}", e);
            return e.outcome();
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let signal_tx = Mutex::new(tx.clone());
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || {
        flag.store(true, Ordering::Relaxed);
        if let Ok(tx) = signal_tx.lock() {
            let _ = tx.send(Msg::Stop);
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
            return once(&engine, log);
        }
        crate::live::run(config, &engine, log, log_dir, tx, rx)
    })
}

/// `--once`: one full pass.
fn once(engine: &Engine, log: &Logger) -> Outcome {
    match engine.full_pass(Trigger::Initial) {
        Ok(r) if r.summary.errors == 0 => Outcome::Success,
        Ok(r) => {
            warn!(log, "pass finished with {} errors", r.summary.errors; "errors" => r.summary.errors);
            Outcome::Partial
        }
        Err(PassError::Stopped) => {
            warn!(log, "stopped before the pass finished");
            Outcome::Partial
        }
        Err(e) => {
            error!(log, "{}", e);
            e.outcome()
        }
    }
}
