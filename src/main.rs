//! The entry point: parse, validate, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use replwatch::cli::Cli;
use replwatch::config::Config;
use replwatch::escape;
use replwatch::exit::Outcome;
use replwatch::log::{LogSettings, init};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        replwatch::docs::completions(shell, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Some(replwatch::cli::Command::Status(args)) = &cli.command {
        return replwatch::status_cmd::run(args).into();
    }
    if cli.man {
        return match replwatch::docs::man(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("replwatch: error: {e}");
                Outcome::Fatal.into()
            }
        };
    }
    let config = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("replwatch: error: {}", escape::line(&e.to_string()));
            return Outcome::BadInput.into();
        }
    };
    let settings = LogSettings {
        dir: &config.log_dir,
        verbosity: config.verbosity,
        format: config.log_format,
        max_size: config.log_max_size,
        keep: config.log_keep,
        console_json: config.console_json,
    };
    let (log, guard, log_dir) = match init(&settings) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("cannot write the log in {}: {e}", config.log_dir.display());
            eprintln!("replwatch: error: {}", escape::line(&msg));
            return Outcome::BadInput.into();
        }
    };
    let outcome = replwatch::run::run(&config, &log, log_dir);
    drop(log);
    drop(guard); // flushes the log: last, after every worker has stopped
    outcome.into()
}
