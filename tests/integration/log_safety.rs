//! The logfile cannot be turned against the host (issue 14): a symlink planted as the
//! logfile is refused, a LOGDIR others can write to is refused, and a file name holding a
//! newline cannot start a log line of its own.
use crate::support::*;

use std::fs;

#[test]
fn a_symlinked_logfile_is_refused_and_its_target_left_alone() {
    let env = Env::new();
    write(env.src.join("a.txt"), "alpha");
    mkdir(&env.logs);
    let victim = env.root().join("victim");
    write(&victim, "untouched\n");
    symlink(&victim, env.logs.join("replwatch.log"));

    let out = env.once();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replwatch.log: is a symlink"), "{stderr}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched\n");
    assert!(!env.rep.exists(), "nothing is mirrored without a log");
}

#[test]
fn a_log_folder_everyone_can_write_to_is_refused() {
    let env = Env::new();
    write(env.src.join("a.txt"), "alpha");
    mkdir(&env.logs);
    chmod(&env.logs, 0o777);

    let out = env.once();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("writable by every user"), "{stderr}");
    assert!(!env.logs.join("replwatch.log").exists());

    chmod(&env.logs, 0o1777);
    env.once_ok();
}

#[test]
fn a_newline_in_a_file_name_cannot_forge_a_log_line() {
    let env = Env::new();
    write(env.src.join("evil\nroot::0:0:injected:x:x"), "x");
    write(env.src.join("bell\x07\x1b[2J"), "y");

    let out = env.once_ok();
    let log = env.log_text();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for (what, text) in [("logfile", &log), ("console", &stdout)] {
        assert!(
            text.lines().all(|l| !l.starts_with("root::")),
            "{what} has a forged line:\n{text}"
        );
        assert!(
            !text.contains('\x1b') && !text.contains('\x07'),
            "{what}:\n{text}"
        );
        assert!(
            text.contains("evil\\nroot::0:0:injected:x:x"),
            "{what}:\n{text}"
        );
    }
}
