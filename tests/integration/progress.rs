//! The progress display: plain lines on stderr with `--progress always` when stderr is not a
//! terminal, nothing by default off a terminal, with `-q` or in a dry run, and on a real
//! terminal (a pty from `script`) a bar that never shares a line with a log record.
use crate::support::*;

use std::path::Path;
use std::process::Command;

/// Enough entries that a pass lasts well beyond the display's 10 ms poll.
fn many_files(src: &Path, dirs: usize, per_dir: usize) {
    for d in 0..dirs {
        for f in 0..per_dir {
            write(
                src.join(format!("d{d:02}/f{f:04}.txt")),
                format!("{d} {f}\n"),
            );
        }
    }
    write(src.join("big.bin"), bytes(4 << 20, 3));
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn progress_always_prints_plain_lines_to_a_pipe() {
    let env = Env::new();
    many_files(&env.src, 20, 100);
    let out = env
        .cmd(&["--once", "--progress", "always"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&env.src, &env.rep);

    let err = stderr_of(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        !lines.is_empty(),
        "no progress on stderr:\n{}",
        describe(&out)
    );
    for l in &lines {
        assert!(l.starts_with("replwatch: progress: "), "{err}");
        assert!(l.contains("entries checked"), "{err}");
        assert!(!l.contains('\x1b'), "escape codes off a terminal: {err:?}");
    }
    let last = lines.last().unwrap();
    assert!(last.contains("pass ended after"), "{err}");
    assert!(last.contains("written"), "{err}");
    // The log (stdout) is untouched by the display.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("replwatch: progress"), "{stdout}");
    assert!(stdout.contains("pass done"), "{stdout}");
}

#[test]
fn no_progress_off_a_terminal_by_default_with_quiet_or_in_a_dry_run() {
    let env = Env::new();
    many_files(&env.src, 5, 50);
    let cases: &[&[&str]] = &[
        &["--once"],
        &["--once", "-q"],
        &["--once", "--progress", "never"],
        &["--once", "--progress", "always", "--dry-run"],
        &["--once", "--progress", "auto"],
    ];
    for extra in cases {
        let out = env.cmd(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {}", describe(&out));
        assert_eq!(stderr_of(&out), "", "{extra:?}: stderr should be empty");
    }
    assert_mirrored(&env.src, &env.rep);
}

#[test]
fn progress_in_live_mode_reports_the_initial_pass() {
    let env = Env::new();
    many_files(&env.src, 10, 100);
    // Stopped by SIGTERM once watching, not by a short --duration: under load the initial
    // pass could outlast it, and the run would rightly end "partial".
    let cmd = env.cmd(&["--progress", "always", "--duration", "5m", "-q"]);
    let mut live = crate::support::live::Live::spawn(&env, cmd);
    live.wait_watching();
    live.signal(rustix::process::Signal::TERM);
    let status = live.wait_exit(crate::support::live::LOG_WAIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", live.output());
    assert_mirrored(&env.src, &env.rep);
    let err = std::fs::read_to_string(&live.stderr).unwrap();
    assert!(err.contains("pass ended after"), "{}", live.output());
}

/// `script` gives the command a pseudo-terminal for stdin, stdout and stderr.
fn script() -> Option<&'static str> {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some("script")
}

/// Single-quote `s` for `sh -c`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run replwatch in a pty; returns everything the terminal received.
fn in_pty(env: &Env, extra: &str) -> String {
    let cmd = format!(
        "stty cols 200; {} -s {} -r {} -l {} --once {extra}",
        sh_quote(env!("CARGO_BIN_EXE_replwatch")),
        sh_quote(env.src.to_str().unwrap()),
        sh_quote(env.rep.to_str().unwrap()),
        sh_quote(env.logs.to_str().unwrap()),
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a terminal would show on each line: the text after the last line clear (or carriage
/// return), without escape sequences.
fn visible_lines(raw: &str) -> Vec<String> {
    raw.split('\n')
        .map(|line| {
            let after_clear = line.rsplit("\x1b[2K").next().unwrap_or("");
            let seg = after_clear
                .split('\r')
                .rfind(|s| !s.is_empty())
                .unwrap_or("");
            strip_ansi(seg)
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
                Some('(') => {
                    chars.next();
                }
                _ => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn on_a_terminal_the_bar_is_drawn_and_never_shares_a_line_with_a_log_record() {
    if script().is_none() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    }
    let env = Env::new();
    many_files(&env.src, 30, 100);
    // Default (auto): stderr is a terminal and not -q, so the bar is on; with -v the console
    // shows every copy meanwhile.
    let raw = in_pty(&env, "-v");
    assert_mirrored(&env.src, &env.rep);
    assert!(
        raw.contains("entries checked") || raw.contains(" entries · "),
        "no bar drawn:\n{}",
        &raw[raw.len().saturating_sub(2000)..]
    );
    let lines = visible_lines(&raw);
    // A console line starts with the time: `HH:MM:SS `.
    let is_log = |l: &str| {
        let b = l.as_bytes();
        b.len() > 9 && b[2] == b':' && b[5] == b':' && b[8] == b' ' && b[0].is_ascii_digit()
    };
    let logs: Vec<&String> = lines.iter().filter(|l| is_log(l)).collect();
    assert!(logs.len() > 3000, "{} log lines", logs.len());
    for l in &logs {
        assert!(
            !l.contains("entries"),
            "a log line shares the terminal line with the bar: {l:?}"
        );
    }
    // Cleared when the pass ended: the last thing on screen is a log line, not the bar.
    let last = lines.iter().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(!last.contains("entries"), "bar left on screen: {last:?}");

    // -q turns the bar off by default, even on a terminal.
    let env = Env::new();
    many_files(&env.src, 5, 20);
    let raw = in_pty(&env, "-q");
    assert!(!raw.contains("entries"), "{raw:?}");
}
