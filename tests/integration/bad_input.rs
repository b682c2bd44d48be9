//! Bad command lines: exit 2, one clear line on stderr, and nothing written anywhere.
//!
//! Every case checks the exit code, that stderr is a single `replwatch: error:` line naming
//! the problem (a key phrase and the path or flag), that SRC is unchanged, and that the
//! replica and log folder were not created (or, when they existed, not changed).
use crate::support::*;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An Env with a little content in SRC.
fn seeded() -> Env {
    let env = Env::new();
    write(env.src.join("a/b.txt"), "b");
    write(env.src.join("c"), bytes(1000, 3));
    symlink("a/b.txt", env.src.join("link"));
    env
}

/// What a bad run must leave as it was.
struct Before {
    paths: Vec<(PathBuf, Option<String>)>,
}

impl Before {
    /// Record `paths`: a fingerprint if they exist, else that they do not.
    fn of(paths: &[&Path]) -> Before {
        Before {
            paths: paths
                .iter()
                .map(|p| {
                    let fp = p.symlink_metadata().is_ok().then(|| fingerprint(p));
                    (p.to_path_buf(), fp)
                })
                .collect(),
        }
    }

    #[track_caller]
    fn unchanged(&self) {
        for (p, fp) in &self.paths {
            let now = p.symlink_metadata().is_ok().then(|| fingerprint(p));
            match fp {
                None => assert!(now.is_none(), "{} was created", p.display()),
                Some(_) => assert_eq!(&now, fp, "{} was changed", p.display()),
            }
        }
    }
}

fn run(args: &[&OsStr]) -> Output {
    replwatch().args(args).output().unwrap()
}

fn once(src: &Path, rep: &Path, logs: &Path, extra: &[&str]) -> Output {
    let mut c: Command = replwatch();
    c.arg("-s")
        .arg(src)
        .arg("-r")
        .arg(rep)
        .arg("-l")
        .arg(logs)
        .arg("--once")
        .args(extra);
    c.output().unwrap()
}

/// Exit 2, nothing on stdout, exactly one `replwatch: error:` line on stderr containing
/// every phrase. Returns that line.
#[track_caller]
fn assert_bad(out: &Output, phrases: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    assert!(out.stdout.is_empty(), "{}", describe(out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "not one line:\n{err}");
    assert!(
        lines[0].starts_with("replwatch: error: "),
        "unexpected prefix: {err}"
    );
    for p in phrases {
        assert!(lines[0].contains(p), "stderr lacks {p:?}: {err}");
    }
    lines[0].to_owned()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

// ---- folders ----

#[test]
fn missing_source() {
    let env = seeded();
    let src = env.root().join("no_such_src");
    let before = Before::of(&[&src, &env.rep, &env.logs]);
    let out = once(&src, &env.rep, &env.logs, &[]);
    assert_bad(&out, &["source folder does not exist", &s(&src)]);
    before.unchanged();
}

#[test]
fn source_is_a_file() {
    let env = seeded();
    let src = env.src.join("c");
    let before = Before::of(&[&env.src, &env.rep, &env.logs]);
    let out = once(&src, &env.rep, &env.logs, &[]);
    assert_bad(&out, &["source is not a directory", &s(&src)]);
    before.unchanged();
}

#[test]
fn replica_is_the_source() {
    let env = seeded();
    let before = Before::of(&[&env.src, &env.logs]);
    let out = once(&env.src, &env.src, &env.logs, &[]);
    assert_bad(&out, &["same folder", &s(&env.src)]);
    before.unchanged();
}

#[test]
fn replica_is_the_source_spelled_differently() {
    let env = seeded();
    let before = Before::of(&[&env.src, &env.logs]);
    let spelled = env.root().join("src/./a/..");
    let out = replwatch()
        .current_dir(env.root())
        .args(["-s", "src/", "-r"])
        .arg(&spelled)
        .args(["-l", "logs", "--once"])
        .output()
        .unwrap();
    assert_bad(&out, &["same folder", &s(&env.src)]);
    before.unchanged();
}

#[test]
fn replica_inside_source() {
    let env = seeded();
    let rep = env.src.join("a/mirror");
    let before = Before::of(&[&env.src, &env.logs]);
    let out = once(&env.src, &rep, &env.logs, &[]);
    assert_bad(&out, &["is inside source", &s(&rep), &s(&env.src)]);
    before.unchanged();
    assert!(!rep.exists());
}

#[test]
fn source_inside_replica() {
    let env = seeded();
    let outer = env.root().join("outer");
    let src = outer.join("inner_src");
    write(src.join("precious"), "do not delete");
    write(outer.join("other"), "also here");
    let before = Before::of(&[&outer, &env.logs]);
    let out = once(&src, &outer, &env.logs, &[]);
    assert_bad(&out, &["is inside replica", &s(&src), &s(&outer)]);
    before.unchanged();
}

#[test]
fn replica_through_a_symlink_into_source() {
    let env = seeded();
    let alias = env.root().join("alias");
    symlink(&env.src, &alias);
    let before = Before::of(&[&env.src, &env.logs]);

    let out = once(&env.src, &alias.join("mirror"), &env.logs, &[]);
    let line = assert_bad(&out, &["is inside source", &s(&env.src.join("mirror"))]);
    assert!(!line.contains("alias"), "not the canonical path: {line}");
    before.unchanged();

    let out = once(&env.src, &alias, &env.logs, &[]);
    assert_bad(&out, &["same folder", &s(&env.src)]);
    before.unchanged();
}

#[test]
fn replica_through_a_symlinked_missing_path_into_source() {
    // Only the longest existing ancestor can be canonicalised: alias/new/deeper.
    let env = seeded();
    symlink(env.src.join("a"), env.root().join("alias"));
    let before = Before::of(&[&env.src, &env.logs]);
    let out = once(
        &env.src,
        &env.root().join("alias/new/deeper"),
        &env.logs,
        &[],
    );
    assert_bad(
        &out,
        &["is inside source", &s(&env.src.join("a/new/deeper"))],
    );
    before.unchanged();
}

#[test]
fn log_dir_inside_source() {
    let env = seeded();
    let logs = env.src.join("logs");
    let before = Before::of(&[&env.src, &env.rep]);
    let out = once(&env.src, &env.rep, &logs, &[]);
    assert_bad(&out, &["log folder", "inside source", &s(&logs)]);
    before.unchanged();
}

#[test]
fn log_dir_is_the_source() {
    let env = seeded();
    let before = Before::of(&[&env.src, &env.rep]);
    let out = once(&env.src, &env.rep, &env.src, &[]);
    assert_bad(&out, &["log folder", "inside source", &s(&env.src)]);
    before.unchanged();
}

#[test]
fn log_dir_inside_replica() {
    let env = seeded();
    write(env.rep.join("old"), "existing replica content");
    let logs = env.rep.join("logs");
    let before = Before::of(&[&env.src, &env.rep]);
    let out = once(&env.src, &env.rep, &logs, &[]);
    assert_bad(&out, &["log folder", "inside replica", &s(&logs)]);
    before.unchanged();
}

#[test]
fn log_dir_inside_missing_replica() {
    let env = seeded();
    let logs = env.rep.join("sub/logs");
    let before = Before::of(&[&env.src, &env.rep]);
    let out = once(&env.src, &env.rep, &logs, &[]);
    assert_bad(&out, &["log folder", "inside replica", &s(&logs)]);
    before.unchanged();
}

#[test]
fn log_dir_under_a_regular_file() {
    let env = seeded();
    let file = env.root().join("afile");
    write(&file, "a plain file");
    let logs = file.join("logs");
    let before = Before::of(&[&env.src, &env.rep, &file]);
    let out = once(&env.src, &env.rep, &logs, &[]);
    assert_bad(&out, &["log folder", "Not a directory", &s(&logs)]);
    before.unchanged();
}

#[test]
fn log_dir_is_a_regular_file() {
    let env = seeded();
    let file = env.root().join("afile");
    write(&file, "a plain file");
    let before = Before::of(&[&env.src, &env.rep, &file]);
    let out = once(&env.src, &env.rep, &file, &[]);
    assert_bad(&out, &["cannot write the log", &s(&file)]);
    before.unchanged();
}

#[test]
fn replica_is_a_regular_file() {
    let env = seeded();
    let file = env.root().join("afile");
    write(&file, "a plain file");
    let before = Before::of(&[&env.src, &file, &env.logs]);
    let out = once(&env.src, &file, &env.logs, &[]);
    assert_bad(&out, &["replica exists and is not a directory", &s(&file)]);
    before.unchanged();
}

#[test]
fn replica_is_a_symlink_to_a_regular_file() {
    let env = seeded();
    let file = env.root().join("afile");
    write(&file, "a plain file");
    let link = env.root().join("link_to_file");
    symlink(&file, &link);
    let before = Before::of(&[&env.src, &file, &link, &env.logs]);
    let out = once(&env.src, &link, &env.logs, &[]);
    assert_bad(&out, &["replica exists and is not a directory", &s(&link)]);
    before.unchanged();
}

#[test]
fn replica_under_a_regular_file() {
    let env = seeded();
    let file = env.root().join("afile");
    write(&file, "a plain file");
    let rep = file.join("rep");
    let before = Before::of(&[&env.src, &file, &env.logs]);
    let out = once(&env.src, &rep, &env.logs, &[]);
    assert_bad(&out, &["replica folder", "Not a directory", &s(&rep)]);
    before.unchanged();
}

// ---- flags ----

/// `--once` with `extra`, on a seeded env: must be rejected before anything is written.
#[track_caller]
fn assert_flag_rejected(extra: &[&str], phrases: &[&str]) {
    let env = seeded();
    let before = Before::of(&[&env.src, &env.rep, &env.logs]);
    let out = env.cmd(&[&["--once"], extra].concat()).output().unwrap();
    assert_bad(&out, phrases);
    before.unchanged();
}

#[test]
fn interval_that_is_not_a_duration() {
    assert_flag_rejected(&["-i", "abc"], &["--interval", "'abc'", "not a duration"]);
}

#[test]
fn zero_duration() {
    assert_flag_rejected(&["-d", "0"], &["--duration", "'0'", "zero"]);
}

#[test]
fn negative_interval_in_minutes() {
    assert_flag_rejected(&["-i", "-5"], &["--interval", "'-5'", "not a positive"]);
}

#[test]
fn negative_duration_with_unit_attached() {
    assert_flag_rejected(&["-d=-1s"], &["--duration", "'-1s'"]);
}

#[test]
fn negative_duration_with_unit_writes_nothing() {
    // `-d -1s`: whatever the message, it must be exit 2 and write nothing.
    let env = seeded();
    let before = Before::of(&[&env.src, &env.rep, &env.logs]);
    let out = env.cmd(&["--once", "-d", "-1s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    before.unchanged();
}

#[test]
fn negative_duration_with_unit_names_the_flag() {
    assert_flag_rejected(&["-d", "-1s"], &["--duration", "'-1s'"]);
    assert_flag_rejected(&["--debounce", "-5"], &["--debounce", "'-5'"]);
}

#[test]
fn zero_debounce_with_unit() {
    assert_flag_rejected(&["--debounce", "0ms"], &["--debounce", "'0ms'", "zero"]);
}

#[test]
fn empty_interval() {
    assert_flag_rejected(&["-i", ""], &["--interval", "empty"]);
}

#[test]
fn zero_workers() {
    assert_flag_rejected(&["--workers", "0"], &["--workers", "at least 1"]);
}

/// A clap error: exit 2, `error:` first, naming `phrase`, and nothing written.
#[track_caller]
fn assert_clap_rejects(args: &[&OsStr], phrase: &str, env: &Env) {
    let before = Before::of(&[&env.src, &env.rep, &env.logs]);
    let out = run(args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error:"), "{err}");
    assert!(err.contains(phrase), "stderr lacks {phrase:?}: {err}");
    before.unchanged();
}

#[test]
fn missing_required_flag() {
    let env = seeded();
    let (src, logs, rep) = (
        env.src.as_os_str(),
        env.logs.as_os_str(),
        env.rep.as_os_str(),
    );
    let o = OsStr::new;
    assert_clap_rejects(
        &[o("-s"), src, o("-l"), logs, o("--once")],
        "--replica",
        &env,
    );
    assert_clap_rejects(
        &[o("-s"), src, o("-r"), rep, o("--once")],
        "--log-dir",
        &env,
    );
    assert_clap_rejects(
        &[o("-r"), rep, o("-l"), logs, o("--once")],
        "--source",
        &env,
    );
    assert_clap_rejects(&[o("--once")], "required", &env);
}

#[test]
fn unknown_flag_and_bad_number() {
    let env = seeded();
    let base: Vec<&OsStr> = vec![
        OsStr::new("-s"),
        env.src.as_os_str(),
        OsStr::new("-r"),
        env.rep.as_os_str(),
        OsStr::new("-l"),
        env.logs.as_os_str(),
        OsStr::new("--once"),
    ];
    let with = |extra: &[&'static str]| -> Vec<&OsStr> {
        let mut v = base.clone();
        v.extend(extra.iter().map(|e| OsStr::new(*e)));
        v
    };
    assert_clap_rejects(&with(&["--bogus"]), "--bogus", &env);
    assert_clap_rejects(&with(&["--workers", "many"]), "--workers", &env);
    assert_clap_rejects(&with(&["-v", "-q"]), "cannot be used with", &env);
}

// ---- help and version ----

#[test]
fn help_mentions_exit_codes() {
    for flag in ["--help", "-h"] {
        let out = replwatch().arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Exit codes"), "{flag}: {text}");
        for code in ["0  success", "1  fatal", "2  bad input", "3  partial"] {
            assert!(text.contains(code), "{flag} lacks {code:?}: {text}");
        }
        for f in ["--source", "--replica", "--log-dir", "--once"] {
            assert!(text.contains(f), "{flag} lacks {f}");
        }
    }
}

#[test]
fn version_prints_the_version() {
    let out = replwatch().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("replwatch {}", env!("CARGO_PKG_VERSION"))
    );
}
