//! The generated documentation: `--help` / `-h`, `--version`, `--completions SHELL` and
//! `--man` name every flag, show the defaults and exit codes, and stay in step with each
//! other and with the clap definitions they come from.
use crate::support::*;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use clap::CommandFactory;
use replwatch::cli::Cli;

/// Run replwatch with `args`; it must exit 0 with empty stderr. Returns stdout.
fn ok(args: &[&str]) -> String {
    let out = replwatch().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    assert!(out.stderr.is_empty(), "{args:?}: {}", describe(&out));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Every long flag, from the clap definition.
fn long_flags() -> BTreeSet<String> {
    let cmd = Cli::command();
    let mut flags: BTreeSet<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    // Built in by clap.
    flags.insert("help".into());
    flags.insert("version".into());
    flags
}

/// The long flags listed in the Options section of `--help`: lines starting (after two or
/// six spaces) with `-x, --name` or `--name`.
fn flags_in_help(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        if !(indent == 2 || indent == 6) || !t.starts_with('-') {
            continue;
        }
        // Stop at the description (on the same line in `-h`).
        let names = t
            .split_whitespace()
            .take_while(|w| w.starts_with('-') || w.starts_with('<') || w.starts_with('['));
        for word in names {
            if let Some(name) = word.strip_prefix("--") {
                let name = name.trim_end_matches(',').trim_end_matches("...");
                out.insert(name.to_owned());
            }
        }
    }
    out
}

/// The block of `help` describing `--flag`: its line and the lines up to the next flag.
fn section<'a>(help: &'a str, flag: &str) -> String {
    let lines: Vec<&'a str> = help.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with('-')
                && t.split_whitespace()
                    .any(|w| w.trim_end_matches(',') == flag)
        })
        .unwrap_or_else(|| panic!("{flag} not in help:\n{help}"));
    let mut out = String::from(lines[start]);
    for l in &lines[start + 1..] {
        let t = l.trim_start();
        let indent = l.len() - t.len();
        if (indent == 2 || indent == 6) && t.starts_with('-') || (indent == 0 && !t.is_empty()) {
            break;
        }
        out.push('\n');
        out.push_str(l);
    }
    out
}

/// Whitespace (including line wrapping) collapsed to single spaces.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

const EXIT_CODES: [&str; 4] = [
    "0 success: the replica mirrors the source",
    "1 fatal error: the source vanished before a --once pass, or the replica could not be used",
    "2 bad input: invalid flags or folders; nothing was written",
    "3 partial: some entries could not be mirrored (each is in the log), a guard refused the \
     pass (empty source, --max-delete), or --once was interrupted",
];

const PRESERVED: [&str; 4] = [
    "What is preserved: the tree, entry types, file bytes, symlinks (as links, never followed), \
     permission bits, modification times of files, directories and symlinks (to the \
     nanosecond), empty directories, hard links within SRC, POSIX ACLs (access and default), \
     extended attributes (user.*; as root also trusted.* and file capabilities), holes in \
     sparse files, and owner and group when run as root.",
    "Not preserved: access times, SELinux and other security labels (the replica's policy \
     assigns them).",
    "Fifos, sockets and devices are skipped with a warning.",
    "--no-hard-links",
];

#[test]
fn long_help_lists_every_flag_with_defaults_exit_codes_and_what_is_preserved() {
    let help = ok(&["--help"]);
    assert_eq!(flags_in_help(&help), long_flags(), "{help}");

    for (flag, default) in [
        ("--interval", "[default: 1m]"),
        ("--duration", "[default: 1d]"),
        ("--debounce", "[default: 200ms]"),
        ("--log-format", "[default: text]"),
        ("--progress", "[default: auto]"),
        ("--workers", "[default: the number of CPUs]"),
    ] {
        let s = section(&help, flag);
        assert!(flat(&s).contains(default), "{flag} lacks {default}:\n{s}");
    }
    assert!(flat(&section(&help, "--duration")).contains("forever"));

    let text = flat(&help);
    for code in EXIT_CODES {
        assert!(
            text.contains(code),
            "--help lacks exit code {code:?}:\n{help}"
        );
    }
    for sentence in PRESERVED {
        assert!(
            text.contains(sentence),
            "--help lacks {sentence:?}:\n{help}"
        );
    }
    assert!(text.contains("Examples:"), "{help}");
    // The aliases of the Python tool are documented.
    for alias in ["--fld_src", "--fld_sync", "--fld_log"] {
        assert!(text.contains(alias), "--help lacks {alias}");
    }
}

#[test]
fn short_help_is_a_summary_that_still_has_defaults_and_exit_codes() {
    let help = ok(&["-h"]);
    assert_eq!(flags_in_help(&help), long_flags(), "{help}");
    let text = flat(&help);
    for default in ["[default: 1m]", "[default: 1d]", "[default: 200ms]"] {
        assert!(text.contains(default), "-h lacks {default}:\n{help}");
    }
    for code in EXIT_CODES {
        assert!(text.contains(code), "-h lacks exit code {code:?}:\n{help}");
    }
    // clap: -h shows `about` and `help`, --help the long forms; the paragraph is in --help.
    assert!(!text.contains("What is preserved"), "{help}");
    assert!(text.contains("see more with '--help'"), "{help}");
}

#[test]
fn long_help_exit_codes_match_the_ones_in_code_and_readme() {
    // `-h` prints `exit::HELP`; `--help` has its own copy after the examples.
    let help = ok(&["--help"]);
    let at = help.find("Exit codes:").expect("exit codes in --help");
    assert_eq!(help[at..].trim_end(), replwatch::exit::HELP.trim_end());
    let short = ok(&["-h"]);
    assert!(short.contains(replwatch::exit::HELP), "{short}");

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for (code, word) in [
        (0, "success"),
        (1, "fatal"),
        (2, "bad input"),
        (3, "partial"),
    ] {
        assert!(
            readme.contains(&format!("| {code} | {word}")),
            "README's exit code table lacks {code} {word}"
        );
    }
}

#[test]
fn version_prints_the_cargo_version() {
    let want = format!("replwatch {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(ok(&["--version"]), want);
    assert_eq!(ok(&["-V"]), want);
}

/// How a long flag appears in each shell's completion script.
fn in_script(shell: &str, script: &str, flag: &str) -> bool {
    match shell {
        // `complete -c replwatch -s s -l source ...`
        "fish" => {
            script.contains(&format!("-l {flag} ")) || script.ends_with(&format!("-l {flag}"))
        }
        // zsh: '--source=[...]' or '--once[...]'; bash, elvish, powershell: --source
        _ => script.match_indices(&format!("--{flag}")).any(|(i, m)| {
            let next = script[i + m.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }),
    }
}

#[test]
fn completions_for_every_shell_name_every_long_flag() {
    let flags = long_flags();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = ok(&["--completions", shell]);
        assert!(script.len() > 500, "{shell}: suspiciously short:\n{script}");
        assert!(script.contains("replwatch"), "{shell}");
        let missing: Vec<&String> = flags
            .iter()
            .filter(|f| !in_script(shell, &script, f))
            .collect();
        assert!(missing.is_empty(), "{shell} completion lacks {missing:?}");
        // Value lists are offered (clap_complete's PowerShell and Elvish scripts complete
        // flags only).
        if shell != "powershell" && shell != "elvish" {
            for value in ["json", "always", "powershell"] {
                assert!(script.contains(value), "{shell} lacks the value {value}");
            }
        }
    }
}

#[test]
fn bash_completion_loads_and_registers() {
    let script = ok(&["--completions", "bash"]);
    let mut bash = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            "source /dev/stdin && complete -p replwatch",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = bash.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let reg = String::from_utf8_lossy(&out.stdout);
    assert!(reg.contains("-F _replwatch replwatch"), "{reg}");
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn completions_need_no_folders_and_reject_unknown_shells() {
    // --completions and --man are exclusive: they work without -s/-r/-l ...
    ok(&["--completions", "zsh"]);
    // ... and refuse to be combined with a run.
    let out = replwatch()
        .args(["--completions", "bash", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = replwatch()
        .args(["--completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn man_page_is_roff_and_names_every_flag() {
    let man = ok(&["--man"]);
    assert!(
        man.starts_with(".TH") || man.starts_with(".ie"),
        "not roff: {}",
        &man[..man.len().min(200)]
    );
    let th = man
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect(".TH line");
    assert!(th.starts_with(".TH replwatch 1"), "{th}");
    assert!(
        th.contains(&format!("replwatch {}", env!("CARGO_PKG_VERSION"))),
        "{th}"
    );
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
        assert!(man.contains(section), "man lacks {section}");
    }
    // roff escapes '-' as '\-'.
    let plain = man.replace("\\-", "-");
    for flag in long_flags() {
        assert!(
            plain.contains(&format!("--{flag}")),
            "man page lacks --{flag}"
        );
    }
    let text = flat(&plain);
    for code in EXIT_CODES {
        assert!(text.contains(code), "man lacks exit code {code:?}");
    }
    assert!(
        text.contains("What is preserved"),
        "man lacks the preserved paragraph"
    );
    for default in ["[default: 1m]", "[default: 1d]", "[default: 200ms]"] {
        assert!(text.contains(default), "man lacks {default}");
    }
}

#[test]
fn man_page_renders_without_groff_warnings() {
    let groff = Command::new("groff").arg("--version").output();
    if !groff.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: groff is not installed");
        return;
    }
    let man = ok(&["--man"]);
    let mut g = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    g.stdin.take().unwrap().write_all(man.as_bytes()).unwrap();
    let out = g.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(out.stderr.is_empty(), "groff warnings:\n{}", describe(&out));
    let rendered = String::from_utf8_lossy(&out.stdout);
    // Headings may be emboldened by overstriking ("NNAAMMEE"): look at plain text.
    assert!(rendered.contains("General Commands Manual"), "{rendered}");
    assert!(rendered.contains("one-way mirror"), "{rendered}");
}
