//! `--log-max-size` and `--log-keep` (issue 14): a burst of changes with a tiny bound leaves
//! exactly the configured number of old logfiles, each within the bound and made of whole
//! records, and the newest records in `replwatch.log`.
use crate::support::live::*;
use crate::support::*;

use std::fs;

const MAX: usize = 2048;

/// The log files in LOGDIR, by name.
fn log_files(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(&env.logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The files LOGDIR holds with `--log-keep keep` once it has rotated that often.
fn expected(keep: u32) -> Vec<String> {
    let mut v = vec!["replwatch.log".to_owned()];
    v.extend((1..=keep).map(|i| format!("replwatch.log.{i}")));
    v
}

fn check_files(env: &Env, format: &str) {
    assert_eq!(log_files(env), expected(3));
    check_records(env, format);
}

/// Every log file in LOGDIR is within the bound and made of whole records.
fn check_records(env: &Env, format: &str) {
    for name in log_files(env)
        .into_iter()
        .filter(|n| n.starts_with("replwatch.log"))
    {
        let text = fs::read_to_string(env.logs.join(&name)).unwrap();
        assert!(text.len() <= MAX, "{name} has {} bytes", text.len());
        assert!(text.ends_with('\n'), "{name} ends inside a record");
        for line in text.lines() {
            let whole = if format == "json" {
                line.starts_with("{\"ts\":") && line.ends_with('}')
            } else {
                line.contains(" INFO ") || line.contains(" WARN ") || line.contains(" DEBG ")
            };
            assert!(whole, "{name}: not a whole record: {line:?}");
        }
    }
}

#[test]
fn a_burst_of_changes_keeps_the_configured_number_of_bounded_logfiles() {
    for format in ["text", "json"] {
        let env = Env::new();
        for i in 0..300 {
            write(env.src.join(format!("d{}/f{i:03}.txt", i % 7)), "x");
        }
        let flags = ["--once", "--log-max-size", "2KiB", "--log-keep", "3"];
        let out = env
            .cmd(&flags)
            .args(["--log-format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert_mirrored(&env.src, &env.rep);
        check_files(&env, format);
        assert!(env.log_text().contains("pass done"), "{}", env.log_text());

        // A second run continues the bound across restarts: still exactly four files.
        for i in 0..300 {
            write(env.src.join(format!("d{}/f{i:03}.txt", i % 7)), "changed");
        }
        let out = env
            .cmd(&flags)
            .args(["--log-format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        check_files(&env, format);
    }
}

#[test]
fn a_zero_max_size_never_rotates() {
    let env = Env::new();
    for i in 0..100 {
        write(env.src.join(format!("f{i:03}.txt")), "x");
    }
    let out = env
        .cmd(&["--once", "--log-max-size", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(log_files(&env), ["replwatch.log"]);
    assert!(env.log_text().len() > MAX);
}

#[test]
fn a_live_burst_rotates_while_watching() {
    let env = Env::new();
    let mut live = Live::with_extra(
        &env,
        "10m",
        "5m",
        &["--log-max-size", "2KiB", "--log-keep", "2"],
    );
    for i in 0..200 {
        write(env.src.join(format!("burst/f{i:03}.txt")), "x");
    }
    converge(&env);
    assert!(
        wait_until(LOG_WAIT, || log_files(&env)
            .iter()
            .any(|n| n == "replwatch.log.2")),
        "{:?}",
        log_files(&env)
    );
    live.signal(rustix::process::Signal::TERM);
    assert_eq!(live.wait_exit(LOG_WAIT).unwrap().code(), Some(0));
    let logs: Vec<String> = log_files(&env)
        .into_iter()
        .filter(|n| n.starts_with("replwatch.log"))
        .collect();
    assert_eq!(logs, expected(2));
    check_records(&env, "text");
}
