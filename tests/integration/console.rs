//! The console for people (issue 14): one short line per change (time, symbol, path, size),
//! a pass's first changes then a summary that counts the rest, `-v` for every change, errors
//! in full; the logfile keeps every record.
use crate::support::*;

use std::fs;

/// `HH:MM:SS ` then the rest of the line.
fn body(line: &str) -> &str {
    let (time, rest) = line.split_at(9);
    let b = time.as_bytes();
    assert!(
        b[2] == b':' && b[5] == b':' && b[8] == b' ' && time[..2].parse::<u8>().is_ok(),
        "no time at the start of {line:?}"
    );
    rest
}

fn stdout_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| body(l).to_owned())
        .collect()
}

#[test]
fn a_change_is_one_short_line_with_symbol_path_and_size() {
    let env = Env::new();
    write(env.src.join("docs/report.txt"), bytes(2150, 1));
    write(env.src.join("old.txt"), "old");
    env.once_ok();
    write(env.src.join("old.txt"), "changed!");
    fs::rename(env.src.join("docs"), env.src.join("papers")).unwrap();
    write(env.rep.join("extra.txt"), "stale");

    let out = env.once();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines = stdout_lines(&out);
    for want in [
        "+ papers/",
        "+ papers/report.txt (2.1 KiB)",
        "* old.txt (8 B)",
        "- extra.txt",
        "- docs/",
    ] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
    let summary = lines
        .iter()
        .find(|l| l.starts_with("initial pass done in "))
        .unwrap_or_else(|| panic!("no summary in {lines:#?}"));
    assert!(
        summary.contains("3 removed") || summary.contains("2 removed"),
        "{summary}"
    );
    assert!(summary.ends_with("0 errors"), "{summary}");
    // A pass that changed nothing still says how it ended, in one line.
    let out = env.once();
    let lines = stdout_lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("initial pass done in ") && l.ends_with("0 errors")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("+ ")), "{lines:#?}");
    // The logfile keeps the structured records.
    assert!(
        env.log_text()
            .contains("action: copy, path: papers/report.txt"),
        "{}",
        env.log_text()
    );
}

#[test]
fn a_big_pass_is_a_screenful_and_minus_v_shows_every_change() {
    let env = Env::new();
    for i in 0..200 {
        write(env.src.join(format!("d/f{i:03}")), "x");
    }
    let out = env.once();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines = stdout_lines(&out);
    assert!(lines.len() < 30, "{lines:#?}");
    let shown = lines.iter().filter(|l| l.starts_with("+ ")).count();
    let summary = lines.iter().find(|l| l.contains("pass done")).unwrap();
    assert!(
        summary.contains(&format!("{} more changes in the logfile", 201 - shown)),
        "{summary}"
    );
    assert_eq!(env.log_text().matches("action: copy").count(), 200);

    let env = Env::new();
    for i in 0..200 {
        write(env.src.join(format!("d/f{i:03}")), "x");
    }
    let out = env.cmd(&["--once", "-v"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.iter().filter(|l| l.starts_with("+ ")).count(), 201);
}

#[test]
fn errors_are_shown_in_full() {
    let env = Env::new();
    write(env.src.join("ok.txt"), "fine");
    write(env.src.join("secret.txt"), "hidden");
    let mut cmd = unprivileged(&env, &["--once"]);
    chmod(env.src.join("secret.txt"), 0o000);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let lines = stdout_lines(&out);
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR ")
            && l.contains("secret.txt")
            && l.contains("Permission denied (os error 13)")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l == "+ ok.txt (4 B)"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("pass done") && l.contains("1 error")),
        "{lines:#?}"
    );
}
