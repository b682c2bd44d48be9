//! The integration tests: one binary, one module per topic (as ripgrep and fd do), so
//! `tests/support` is compiled once. Each module drives the `replwatch` binary as a user
//! would.
//!
//! Tests that need root are marked `#[cfg_attr(not(replwatch_root), ignore = ...)]`:
//! `src/build.rs` sets `replwatch_root` when the tests are built by root, so a normal user's
//! `cargo test` lists them as ignored instead of counting them as passed.

mod support;

mod bad_input;
mod cli_docs;
mod console;
mod crash;
mod faults;
mod features;
mod live;
mod live_trust;
mod log_rotation;
mod log_safety;
mod logs_json;
mod mirror;
mod plan_model;
mod preserve;
mod progress;
mod recipes;
mod replica_fs;
mod scale;
mod smoke;
mod status;
mod systemd;
mod versions;
