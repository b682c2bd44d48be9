//! replwatch: keep a replica folder an exact one-way mirror of a source folder.
//!
//! Data flows one way: `scan` reads a directory, `plan` decides (purely), `apply` writes, and
//! `pass` drives them over a tree or a single path; `run` loops passes and watcher events.

pub mod apply;
pub mod cli;
pub mod config;
pub mod copy;
pub mod docs;
pub mod duration;
pub mod entry;
pub mod exclude;
pub mod exit;
pub mod handle;
pub mod live;
pub mod log;
pub mod pass;
pub mod pending;
pub mod plan;
pub mod progress;
pub mod queue;
pub mod report;
pub mod roots;
pub mod run;
pub mod scan;
pub mod sink;
pub mod tempname;
pub mod watch;
