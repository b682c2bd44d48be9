//! replwatch: keep a replica folder an exact one-way mirror of a source folder.
//!
//! Data flows one way:
//!
//! ```text
//! cli -> config ----------------------------------------------> run -> exit code
//!                                                                |
//!   --once: pass::Engine::full_pass        live: watch -> queue -> pass::Engine::sync_batch
//!                 |                                 (+ full passes on a thread of their own)
//!   roots (SRC identity, held REPLICA) checked before anything is done
//!                 |
//!   walk: scan both sides of a directory -> plan (pure: every decision) -> sink
//!                 |                                               |
//!   exec: copy workers, directory metadata last          apply (the only writer) | dry run
//!                                                          (versions: what apply would
//!                                                           destroy, kept; --versions)
//!                 |
//!   report: counters, faults, what is left not mirrored -> pending (live) -> exit
//!                                                                |
//!   live loop -> status (LOGDIR/replwatch.status.json) + systemd (READY, STATUS, WATCHDOG)
//!   log: console (people or JSON) + logfile (logfile: no symlinks; rotate: bounded size)
//! ```
//!
//! `main` parses, validates and maps the outcome to an exit code; nothing else lives there.
//! Modules the binary and the tests use are public; the walk's internals are not.

mod append;
mod apply;
pub mod cli;
pub mod config;
mod console;
mod copy;
pub mod docs;
mod duration;
pub mod entry;
pub mod escape;
mod exclude;
mod exec;
pub mod exit;
mod fscaps;
mod handle;
mod links;
mod live;
pub mod log;
pub mod logfile;
mod pass;
mod pending;
pub mod plan;
mod progress;
mod queue;
mod readers;
mod report;
mod roots;
mod rotate;
pub mod run;
mod scan;
mod sink;
mod size;
pub mod status;
pub mod status_cmd;
mod subtree;
mod systemd;
pub mod tempname;
mod textlog;
pub mod versions;
mod walk;
mod watch;
pub mod xattr;
