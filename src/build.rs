//! Build script: tells the integration tests whether they are built by root.
//!
//! Tests that need root (a tmpfs mount, an inotify sysctl, running the binary as another
//! user) are marked `#[cfg_attr(not(replwatch_root), ignore = "needs root")]`, so a normal
//! user's `cargo test` shows them as ignored rather than counting a test that returned early
//! as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(replwatch_root)");
    println!("cargo::rerun-if-changed=src/build.rs");
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        });
    if uid.as_deref() == Some("0") {
        println!("cargo::rustc-cfg=replwatch_root");
    }
}
