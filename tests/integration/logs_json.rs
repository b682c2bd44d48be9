//! `--log-format json` and `--console-json`: every line a JSON object with `ts`, `level`,
//! `msg` and the record's key-values, checked by parsing each line with serde_json.
use crate::support::*;

use std::fs;

use serde_json::{Map, Value};

type Record = Map<String, Value>;

/// Parse every line of `text` as one JSON object; panic naming the first line that is not.
fn records(what: &str, text: &str) -> Vec<Record> {
    assert!(!text.is_empty(), "{what} is empty");
    assert!(text.ends_with('\n'), "{what} does not end with a newline");
    text.lines()
        .enumerate()
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => m,
            other => panic!(
                "{what} line {}: not a JSON object ({other:?}):\n{line}",
                i + 1
            ),
        })
        .collect()
}

/// Every record has `ts` (RFC 3339), `level` and `msg`, in that order, first.
fn check_common(what: &str, recs: &[Record]) {
    for r in recs {
        let keys: Vec<&str> = r.keys().take(3).map(String::as_str).collect();
        assert_eq!(keys, ["ts", "level", "msg"], "{what}: {r:?}");
        let ts = r["ts"].as_str().expect("ts is a string");
        humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{what}: ts {ts:?}: {e}"));
        let level = r["level"].as_str().expect("level is a string");
        assert!(
            ["critical", "error", "warning", "info", "debug", "trace"].contains(&level),
            "{what}: level {level:?}"
        );
        assert!(r["msg"].is_string(), "{what}: {r:?}");
    }
}

fn with<'a>(recs: &'a [Record], key: &str, val: &str) -> Vec<&'a Record> {
    recs.iter()
        .filter(|r| r.get(key).and_then(Value::as_str) == Some(val))
        .collect()
}

fn str_of<'a>(r: &'a Record, key: &str) -> &'a str {
    r.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {r:?}"))
}

fn u64_of(r: &Record, key: &str) -> u64 {
    r.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number {key:?} in {r:?}"))
}

/// SRC with files (one with a newline and quotes in its name), a directory, a symlink and a
/// fifo; REPLICA with one stale file to remove.
fn tree(env: &Env) {
    write(env.src.join("a.txt"), "alpha");
    write(env.src.join("sub/b.bin"), bytes(10_000, 7));
    write(env.src.join("odd \"name\"\nline.txt"), "x");
    symlink("a.txt", env.src.join("link"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        env.src.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    write(env.rep.join("stale.txt"), "old");
}

#[test]
fn json_logfile_is_one_object_per_line_with_every_action() {
    let env = Env::new();
    tree(&env);
    let out = env
        .cmd(&["--once", "--log-format", "json"])
        .output()
        .unwrap();
    // The fifo is skipped with a warning, not an error: exit 0.
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let log = env.log_text();
    let recs = records("replwatch.log", &log);
    check_common("replwatch.log", &recs);

    let starting = with(&recs, "msg", "starting");
    assert_eq!(starting.len(), 1, "{log}");
    assert_eq!(str_of(starting[0], "mode"), "once");
    assert_eq!(str_of(starting[0], "source"), env.src.to_str().unwrap());

    let copies = with(&recs, "action", "copy");
    assert_eq!(copies.len(), 3, "{log}");
    for c in &copies {
        assert_eq!(str_of(c, "level"), "info");
        assert_eq!(str_of(c, "trigger"), "initial");
        assert_eq!(str_of(c, "kind"), "file");
        assert_eq!(str_of(c, "reason"), "new");
        assert_eq!(c["drift"], Value::Bool(false));
        // The record's own keys keep the order they were written in.
        let keys: Vec<&str> = c.keys().skip(3).map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "action", "path", "kind", "reason", "bytes", "trigger", "drift"
            ]
        );
    }
    let bytes_of = |path: &str| {
        let r = copies
            .iter()
            .find(|r| str_of(r, "path") == path)
            .unwrap_or_else(|| panic!("no copy of {path:?} in {log}"));
        u64_of(r, "bytes")
    };
    assert_eq!(bytes_of("a.txt"), 5);
    assert_eq!(bytes_of("sub/b.bin"), 10_000);
    // Escaped, not split over two lines.
    assert_eq!(bytes_of("odd \"name\"\nline.txt"), 1);

    let removes = with(&recs, "action", "remove");
    assert_eq!(removes.len(), 1, "{log}");
    assert_eq!(str_of(removes[0], "path"), "stale.txt");

    let skips = with(&recs, "action", "skip");
    assert_eq!(skips.len(), 1, "{log}");
    assert_eq!(str_of(skips[0], "path"), "pipe");
    assert_eq!(str_of(skips[0], "level"), "warning");
    assert!(str_of(skips[0], "reason").contains("fifo"));

    assert_eq!(with(&recs, "action", "symlink").len(), 1, "{log}");
    assert_eq!(with(&recs, "action", "mkdir").len(), 1, "{log}");

    let summaries = with(&recs, "action", "summary");
    assert_eq!(summaries.len(), 1, "{log}");
    let s = summaries[0];
    assert_eq!(str_of(s, "msg"), "pass done");
    assert_eq!(str_of(s, "trigger"), "initial");
    // a.txt, odd, link, pipe, sub, sub/b.bin
    assert_eq!(u64_of(s, "scanned"), 6);
    assert_eq!(u64_of(s, "created"), 5);
    assert_eq!(u64_of(s, "removed"), 1);
    assert_eq!(u64_of(s, "skipped"), 1);
    assert_eq!(u64_of(s, "errors"), 0);
    assert_eq!(u64_of(s, "bytes"), 10_006);
    assert!(s.contains_key("elapsed_ms"));

    // The console stays text unless --console-json.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pass done"), "{stdout}");
    assert!(
        stdout.lines().all(|l| !l.starts_with('{')),
        "console should be text:\n{stdout}"
    );
}

#[test]
fn json_logfile_appends_across_runs() {
    let env = Env::new();
    tree(&env);
    env.cmd(&["--once", "--log-format", "json"])
        .output()
        .unwrap();
    fs::write(env.src.join("a.txt"), "alpha, longer").unwrap();
    let out = env
        .cmd(&["--once", "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);

    let recs = records("replwatch.log", &env.log_text());
    check_common("replwatch.log", &recs);
    assert_eq!(with(&recs, "msg", "starting").len(), 2);
    assert_eq!(with(&recs, "action", "summary").len(), 2);
    let second: Vec<_> = with(&recs, "action", "copy")
        .into_iter()
        .filter(|r| str_of(r, "reason") != "new")
        .collect();
    assert_eq!(second.len(), 1, "{:?}", second);
    assert_eq!(str_of(second[0], "path"), "a.txt");
    assert_eq!(u64_of(second[0], "bytes"), 13);
}

#[test]
fn console_json_makes_every_stdout_line_json() {
    let env = Env::new();
    tree(&env);
    let out = env.cmd(&["--once", "--console-json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);

    let stdout = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    let recs = records("stdout", &stdout);
    check_common("stdout", &recs);
    assert_eq!(with(&recs, "action", "copy").len(), 3, "{stdout}");
    assert_eq!(with(&recs, "action", "remove").len(), 1, "{stdout}");
    assert_eq!(with(&recs, "action", "skip").len(), 1, "{stdout}");
    assert_eq!(with(&recs, "action", "summary").len(), 1, "{stdout}");
    for c in with(&recs, "action", "copy") {
        str_of(c, "path");
        u64_of(c, "bytes");
        assert_eq!(str_of(c, "trigger"), "initial");
    }

    // The logfile keeps its own (default: text) format.
    let log = env.log_text();
    assert!(log.contains("pass done"), "{log}");
    assert!(log.lines().all(|l| !l.starts_with('{')), "{log}");
}

#[test]
fn both_json_with_quiet_and_verbose() {
    let env = Env::new();
    tree(&env);
    // -q: only warnings on the console, still JSON; the file keeps info and up.
    let out = env
        .cmd(&["--once", "--console-json", "--log-format", "json", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let recs = records("stdout", &stdout);
    check_common("stdout", &recs);
    assert!(
        recs.iter().all(|r| str_of(r, "level") == "warning"),
        "{stdout}"
    );
    assert_eq!(with(&recs, "action", "skip").len(), 1);
    let file = records("replwatch.log", &env.log_text());
    assert_eq!(with(&file, "action", "summary").len(), 1);

    // -v: debug records are JSON too, in both.
    let out = env
        .cmd(&["--once", "--console-json", "--log-format", "json", "-v"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let recs = records("stdout", &String::from_utf8_lossy(&out.stdout));
    check_common("stdout", &recs);
    let file = records("replwatch.log", &env.log_text());
    check_common("replwatch.log", &file);
}

#[test]
fn json_error_records_carry_the_errno() {
    if is_root() {
        eprintln!("skipped: root reads a mode-000 file");
        return;
    }
    let env = Env::new();
    write(env.src.join("ok.txt"), "fine");
    write(env.src.join("secret.txt"), "no");
    chmod(env.src.join("secret.txt"), 0o000);
    let out = env
        .cmd(&["--once", "--log-format", "json"])
        .output()
        .unwrap();
    chmod(env.src.join("secret.txt"), 0o644);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let recs = records("replwatch.log", &env.log_text());
    check_common("replwatch.log", &recs);
    let errors = with(&recs, "level", "error");
    let e = errors
        .iter()
        .find(|r| r.get("path").and_then(Value::as_str) == Some("secret.txt"))
        .unwrap_or_else(|| panic!("no error record for secret.txt: {errors:?}"));
    assert_eq!(u64_of(e, "errno"), libc::EACCES as u64);
    assert!(str_of(e, "error").contains("denied"), "{e:?}");
}

#[test]
fn console_reader_going_away_does_not_stop_the_pass() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // `replwatch ... | head -1`: stdout closes after one line, long before the pass has
    // logged its ~2000 records (more than a pipe holds).
    for extra in [&[][..], &["--console-json"][..]] {
        let env = Env::new();
        for i in 0..2000 {
            write(
                env.src.join(format!("d{}/file {i}.txt", i % 20)),
                format!("{i}"),
            );
        }
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        let mut child = env
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("starting"), "{first}");
        // The reader is dropped here: further console writes fail with EPIPE.
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {}", describe(&out));
        assert!(out.stderr.is_empty(), "{extra:?}: {}", describe(&out));
        assert_mirrored(&env.src, &env.rep);
        assert!(env.log_text().contains("pass done"), "{extra:?}");
    }
}
