//! The service recipes in examples/: systemd units, a crontab line and a Windows
//! Task Scheduler command. Each is parsed with the quoting rules of what runs it (systemd's
//! ExecStart= splitting, POSIX sh, the Windows C runtime) to check that every path with
//! spaces stays one argument and that the arguments are a valid replwatch command line; then
//! the systemd and cron commands are really run (with the folders moved to temp dirs whose
//! names have spaces) and must mirror.
use crate::support::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use replwatch::cli::Cli;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
const BIN: &str = "/usr/local/bin/replwatch";

fn example(name: &str) -> String {
    fs::read_to_string(Path::new(EXAMPLES).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The replwatch command line `args` (without the program) as clap sees it.
fn cli(args: &[String]) -> Cli {
    let argv = std::iter::once("replwatch".to_owned()).chain(args.iter().cloned());
    Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?} is not a valid command line: {e}"))
}

// ---------------------------------------------------------------- systemd units

/// A unit file: sections in order, each with its `Key=Value` lines in order.
struct Unit {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        let mut pending = String::new();
        for raw in text.lines() {
            let line = if pending.is_empty() {
                raw.trim().to_owned()
            } else {
                format!("{pending} {}", raw.trim())
            };
            pending.clear();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            // A trailing backslash continues the line.
            if let Some(head) = line.strip_suffix('\\') {
                pending = head.to_owned();
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.push((name.to_owned(), Vec::new()));
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not Key=Value: {line:?}"));
            let sec = sections.last_mut().expect("a key before any [Section]");
            sec.1.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        assert!(pending.is_empty(), "file ends in a continuation");
        Unit { sections }
    }

    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, kv)| kv.iter())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `key` in `section`.
    #[track_caller]
    fn get(&self, section: &str, key: &str) -> &str {
        match self.all(section, key).as_slice() {
            [v] => v,
            other => panic!("[{section}] {key}= should be set once, is {other:?}"),
        }
    }
}

/// Split a value the way systemd splits ExecStart=, ReadWritePaths=, RequiresMountsFor=:
/// words separated by whitespace, "double" or 'single' quoted, C-style backslash escapes,
/// `%%` for a literal `%` (other `%` specifiers are not used in the recipes).
fn systemd_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return words;
        }
        let mut w = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => match chars.next().expect("dangling backslash") {
                    'n' => w.push('\n'),
                    't' => w.push('\t'),
                    e => w.push(e),
                },
                ('%', _) => {
                    assert_eq!(chars.next(), Some('%'), "unexpected specifier in {s:?}");
                    w.push('%');
                }
                (q @ ('"' | '\''), None) => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => w.push(c),
            }
        }
        assert!(quote.is_none(), "unterminated quote in {s:?}");
        words.push(w);
    }
}

/// ExecStart= as argv, with systemd's `-@:+!` prefixes removed.
fn exec_start(unit: &Unit) -> Vec<String> {
    let mut argv = systemd_words(unit.get("Service", "ExecStart"));
    argv[0] = argv[0]
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .to_owned();
    argv
}

/// The value following `flag` in `argv`.
#[track_caller]
fn after<'a>(argv: &'a [String], flag: &str) -> &'a str {
    let i = argv
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing from {argv:?}"));
    argv.get(i + 1)
        .unwrap_or_else(|| panic!("{flag} has no value in {argv:?}"))
}

const SRC: &str = "/srv/data/Shared Documents";
const REP: &str = "/srv/backup/Shared Documents";
const LOGS: &str = "/var/log/replwatch";

/// What both services share: the command's folders, restart and stop behaviour, hardening.
fn check_service(name: &str, unit: &Unit) -> Vec<String> {
    let argv = exec_start(unit);
    assert_eq!(argv[0], BIN, "{name}: ExecStart= runs {}", argv[0]);
    let args = &argv[1..];
    assert_eq!(after(args, "-s"), SRC, "{name}");
    assert_eq!(after(args, "-r"), REP, "{name}");
    assert_eq!(after(args, "-l"), LOGS, "{name}");
    let c = cli(args);
    assert_eq!(c.source.as_deref(), Some(Path::new(SRC)));
    assert_eq!(c.replica.as_deref(), Some(Path::new(REP)));
    assert_eq!(c.log_dir.as_deref(), Some(Path::new(LOGS)));

    assert_eq!(unit.get("Service", "KillSignal"), "SIGTERM", "{name}");
    assert_eq!(unit.get("Service", "ProtectSystem"), "strict", "{name}");
    assert_eq!(unit.get("Service", "NoNewPrivileges"), "yes", "{name}");
    // Strict makes everything read-only: REPLICA and LOGDIR must be the writable ones.
    let rw: Vec<String> = unit
        .all("Service", "ReadWritePaths")
        .iter()
        .flat_map(|v| systemd_words(v))
        .collect();
    assert!(rw.contains(&REP.to_owned()), "{name}: {rw:?}");
    assert!(rw.contains(&LOGS.to_owned()), "{name}: {rw:?}");
    assert!(
        !rw.iter().any(|p| p.starts_with("/srv/data")),
        "{name}: SRC writable"
    );
    let mounts = systemd_words(unit.get("Unit", "RequiresMountsFor"));
    assert_eq!(mounts, [SRC, REP], "{name}");
    argv
}

#[test]
fn live_service_unit() {
    let unit = Unit::parse(&example("replwatch.service"));
    let argv = check_service("replwatch.service", &unit);
    let c = cli(&argv[1..]);
    assert!(!c.once, "the live unit must not use --once");
    assert_eq!(c.duration, "forever");
    assert_eq!(unit.get("Service", "Restart"), "on-failure");
    assert_eq!(unit.get("Service", "RestartPreventExitStatus"), "2");
    assert_eq!(unit.get("Service", "Type"), "notify");
    assert_eq!(unit.get("Service", "NotifyAccess"), "main");
    assert!(!unit.get("Service", "WatchdogSec").is_empty());
    assert_eq!(unit.get("Install", "WantedBy"), "multi-user.target");
}

#[test]
fn oneshot_service_and_hourly_timer() {
    let unit = Unit::parse(&example("replwatch-once.service"));
    let argv = check_service("replwatch-once.service", &unit);
    assert!(cli(&argv[1..]).once, "the timer's unit must use --once");
    assert_eq!(unit.get("Service", "Type"), "oneshot");
    // Started by the timer only.
    assert!(unit.all("Install", "WantedBy").is_empty());

    let timer = Unit::parse(&example("replwatch-once.timer"));
    assert_eq!(timer.get("Timer", "OnCalendar"), "hourly");
    assert_eq!(timer.get("Timer", "Persistent"), "true");
    assert_eq!(timer.get("Timer", "Unit"), "replwatch-once.service");
    assert_eq!(timer.get("Install", "WantedBy"), "timers.target");
}

#[test]
fn systemd_word_splitting() {
    assert_eq!(
        systemd_words(r#"/bin/x -s "/a b" 'c d' e\ f "g\"h" 100%%"#),
        ["/bin/x", "-s", "/a b", "c d", "e f", "g\"h", "100%"]
    );
}

/// A temp root whose paths all contain spaces, with the recipe's folders moved into it.
struct Moved {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    rep: PathBuf,
    logs: PathBuf,
}

impl Moved {
    fn new() -> Moved {
        let tmp = tempfile::Builder::new()
            .prefix("replwatch recipes ")
            .tempdir()
            .unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let src = root.join("data dir/Shared Documents");
        write(src.join("report 2024.txt"), "numbers");
        write(src.join("sub folder/notes.md"), "# notes");
        symlink("report 2024.txt", src.join("latest"));
        Moved {
            rep: root.join("backup dir/Shared Documents"),
            logs: root.join("log dir"),
            src,
            root,
            _tmp: tmp,
        }
    }

    /// The unit text with the binary and the three folders moved here.
    fn unit(&self, text: &str) -> String {
        text.replace(BIN, env!("CARGO_BIN_EXE_replwatch"))
            .replace(SRC, self.src.to_str().unwrap())
            .replace(REP, self.rep.to_str().unwrap())
            .replace(LOGS, self.logs.to_str().unwrap())
    }
}

fn systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    if !systemd_analyze() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let m = Moved::new();
    fs::create_dir_all(&m.rep).unwrap();
    fs::create_dir_all(&m.logs).unwrap();
    let dir = m.root.join("units");
    fs::create_dir(&dir).unwrap();
    let names = [
        "replwatch.service",
        "replwatch-once.service",
        "replwatch-once.timer",
    ];
    for n in names {
        fs::write(dir.join(n), m.unit(&example(n))).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(names.iter().map(|n| dir.join(n)))
        .output()
        .unwrap();
    // verify exits 0 even for unknown keys or bad values; those are printed on stderr.
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let about_ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()))
        .collect();
    assert!(about_ours.is_empty(), "systemd-analyze verify:\n{err}");
    assert!(err.trim().is_empty(), "systemd-analyze verify:\n{err}");

    let out = Command::new("systemd-analyze")
        .args(["calendar", "hourly"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn oneshot_unit_command_mirrors_when_run_as_systemd_would() {
    let m = Moved::new();
    let unit = Unit::parse(&m.unit(&example("replwatch-once.service")));
    // systemd execs argv directly: no shell.
    let argv = exec_start(&unit);
    assert_eq!(after(&argv, "-s"), m.src.to_str().unwrap());
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&m.src, &m.rep);
    assert!(m.logs.join("replwatch.log").is_file());
    // -q: a clean pass says nothing (nothing for the journal).
    assert!(out.stdout.is_empty(), "{}", describe(&out));
}

#[test]
fn live_unit_command_stops_cleanly_on_its_kill_signal() {
    let m = Moved::new();
    let unit = Unit::parse(&m.unit(&example("replwatch.service")));
    let argv = exec_start(&unit);
    let signal = match unit.get("Service", "KillSignal") {
        "SIGTERM" => rustix::process::Signal::TERM,
        other => panic!("unexpected KillSignal {other}"),
    };
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || m.rep.exists()));
    wait_mirrored(&m.src, &m.rep, Duration::from_secs(20));
    write(m.src.join("added while live.txt"), "new");
    wait_mirrored(&m.src, &m.rep, Duration::from_secs(20));

    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, signal).unwrap();
    let stop = unit.get("Service", "TimeoutStopSec");
    let limit = humantime::parse_duration(stop).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("did not stop within TimeoutStopSec={stop}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Exit 0: Restart=on-failure does not restart a clean stop.
    assert_eq!(status.code(), Some(0));
    assert_mirrored(&m.src, &m.rep);
    assert!(temp_files(&m.rep).is_empty());
}

// ---------------------------------------------------------------- cron

/// A piece of a POSIX shell command line.
#[derive(Debug, PartialEq)]
enum Tok {
    /// A word after quote removal; `$NAME` expansions are left in place.
    Word { text: String, unquoted_dollar: bool },
    /// `&&`, `||`, `;`, `|`, `&`.
    Op(String),
}

/// Split a command line into words and control operators by the POSIX shell rules:
/// 'single quotes' keep everything, "double quotes" keep all but `\` before `$ ` " \ `,
/// a backslash outside quotes keeps the next character, unquoted blanks separate words.
fn sh_words(s: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    let mut word: Option<(String, bool)> = None;
    let flush = |word: &mut Option<(String, bool)>, toks: &mut Vec<Tok>| {
        if let Some((text, unquoted_dollar)) = word.take() {
            toks.push(Tok::Word {
                text,
                unquoted_dollar,
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => flush(&mut word, &mut toks),
            '#' if word.is_none() => break,
            ';' | '&' | '|' => {
                flush(&mut word, &mut toks);
                let mut op = c.to_string();
                if (c == '&' || c == '|') && chars.peek() == Some(&c) {
                    op.push(chars.next().unwrap());
                }
                toks.push(Tok::Op(op));
            }
            '<' | '>' | '(' | ')' | '`' => panic!("unexpected {c:?} in {s:?}"),
            '\'' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next().expect("unterminated '") {
                        '\'' => break,
                        c => w.0.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next().expect("unterminated \"") {
                        '"' => break,
                        '\\' => match chars.next().expect("dangling \\") {
                            e @ ('$' | '`' | '"' | '\\') => w.0.push(e),
                            e => {
                                w.0.push('\\');
                                w.0.push(e);
                            }
                        },
                        '`' => panic!("command substitution in {s:?}"),
                        c => w.0.push(c),
                    }
                }
            }
            '\\' => {
                let e = chars.next().expect("dangling \\");
                word.get_or_insert_default().0.push(e);
            }
            '$' => {
                let w = word.get_or_insert_default();
                w.0.push('$');
                w.1 = true;
            }
            c => word.get_or_insert_default().0.push(c),
        }
    }
    flush(&mut word, &mut toks);
    toks
}

/// The simple commands of a list (`a && b; c`), as words.
fn simple_commands(toks: &[Tok]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for t in toks {
        match t {
            Tok::Op(_) => out.push(Vec::new()),
            Tok::Word { text, .. } => out.last_mut().unwrap().push(text.clone()),
        }
    }
    out
}

/// The schedule and command of the one job in a crontab.
fn cron_job(text: &str) -> (Vec<String>, String) {
    let mut jobs = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // NAME=value lines set the environment.
        if t.split_whitespace()
            .next()
            .is_some_and(|w| w.contains('=') && !w.starts_with('@') && !w.starts_with('*'))
        {
            continue;
        }
        let n = if t.starts_with('@') { 1 } else { 5 };
        let mut rest = t;
        let mut sched = Vec::new();
        for _ in 0..n {
            let (f, r) = rest
                .split_once(char::is_whitespace)
                .expect("schedule fields");
            sched.push(f.to_owned());
            rest = r.trim_start();
        }
        jobs.push((sched, rest.to_owned()));
    }
    assert_eq!(jobs.len(), 1, "one job expected: {jobs:?}");
    jobs.pop().unwrap()
}

/// Is `field` valid for a cron field ranging over lo..=hi (`*`, lists, ranges, steps)?
fn cron_field_ok(field: &str, lo: u32, hi: u32) -> bool {
    let num = |s: &str| s.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n));
    field.split(',').all(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let range_ok = range == "*"
            || num(range)
            || range.split_once('-').is_some_and(|(a, b)| num(a) && num(b));
        range_ok && step.is_none_or(|s| s.parse::<u32>().is_ok_and(|n| n > 0))
    })
}

const CRON_SRC: &str = "$HOME/My Documents";
const CRON_REP: &str = "/mnt/backup/My Documents";
const CRON_LOGS: &str = "$HOME/.local/state/replwatch";
const CRON_LOCK: &str = "$HOME/.local/state/replwatch/cron.lock";

#[test]
fn cron_line_is_valid_and_keeps_paths_with_spaces_whole() {
    let (sched, cmd) = cron_job(&example("replwatch.cron"));
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    assert_eq!(sched.len(), 5, "{sched:?}");
    for (f, (lo, hi)) in sched.iter().zip(ranges) {
        assert!(
            cron_field_ok(f, lo, hi),
            "bad cron field {f:?} in {sched:?}"
        );
    }
    // cron turns an unescaped % into a newline.
    assert!(!cmd.replace("\\%", "").contains('%'), "bare % in {cmd:?}");

    let toks = sh_words(&cmd);
    for t in &toks {
        if let Tok::Word {
            text,
            unquoted_dollar: true,
        } = t
        {
            panic!("unquoted expansion {text:?} would be split at spaces: {cmd:?}");
        }
    }
    let cmds = simple_commands(&toks);
    let job = cmds
        .iter()
        .find(|c| c.iter().any(|w| w == BIN))
        .unwrap_or_else(|| panic!("no {BIN} in {cmd:?}"));
    // flock -n -E 0 LOCK replwatch ...: skip (exit 0) while the previous pass runs.
    assert_eq!(job[0], "flock", "{job:?}");
    let at = job.iter().position(|w| w == BIN).unwrap();
    let flock_opts = &job[1..at];
    assert!(flock_opts.contains(&"-n".to_owned()), "{job:?}");
    assert_eq!(flock_opts.last().unwrap(), CRON_LOCK);
    let args = &job[at + 1..];
    assert_eq!(after(args, "-s"), CRON_SRC);
    assert_eq!(after(args, "-r"), CRON_REP);
    assert_eq!(after(args, "-l"), CRON_LOGS);
    let c = cli(args);
    assert!(c.once, "cron runs single passes: {args:?}");
    assert!(c.quiet, "cron mails any output: {args:?}");
}

#[test]
fn sh_word_splitting() {
    let w = |s: &str, d: bool| Tok::Word {
        text: s.into(),
        unquoted_dollar: d,
    };
    assert_eq!(
        sh_words(r#"a "b c" 'd e'\ f g\ h "$X/y z" $Y && k;l"#),
        [
            w("a", false),
            w("b c", false),
            w("d e f", false),
            w("g h", false),
            w("$X/y z", false),
            w("$Y", true),
            Tok::Op("&&".into()),
            w("k", false),
            Tok::Op(";".into()),
            w("l", false),
        ]
    );
    assert!(cron_field_ok("*/15", 0, 59));
    assert!(cron_field_ok("1-5,7", 0, 7));
    assert!(!cron_field_ok("60", 0, 59));
}

/// The cron command with the binary and backup folder moved; HOME is set when running it.
fn cron_command(m: &Moved) -> String {
    let (_, cmd) = cron_job(&example("replwatch.cron"));
    cmd.replace(BIN, env!("CARGO_BIN_EXE_replwatch"))
        .replace(CRON_REP, m.rep.to_str().unwrap())
}

/// Run `cmd` as cron does: `/bin/sh -c`, a minimal environment.
fn run_as_cron(cmd: &str, home: &Path) -> std::process::Output {
    Command::new("/bin/sh")
        .args(["-c", cmd])
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .output()
        .unwrap()
}

fn has_flock() -> bool {
    Command::new("flock")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn cron_command_run_by_sh_passes_each_path_as_one_argument() {
    if !has_flock() {
        eprintln!("skipped: flock (util-linux) is not installed");
        return;
    }
    let m = Moved::new();
    let home = m.root.join("home dir");
    // Let the real shell split it: print each argument replwatch would get on its own line.
    let cmd = cron_command(&m).replace(env!("CARGO_BIN_EXE_replwatch"), r"printf '[%s]\n'");
    let out = run_as_cron(&cmd, &home);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches('[').trim_end_matches(']').to_owned())
        .collect();
    let h = home.to_str().unwrap();
    let rep = m.rep.to_str().unwrap();
    let want = [
        "-s".to_owned(),
        format!("{h}/My Documents"),
        "-r".to_owned(),
        rep.to_owned(),
        "-l".to_owned(),
        format!("{h}/.local/state/replwatch"),
        "--once".to_owned(),
        "-q".to_owned(),
    ];
    assert_eq!(got, want);
}

#[test]
fn cron_command_mirrors_and_skips_while_a_pass_holds_the_lock() {
    if !has_flock() {
        eprintln!("skipped: flock (util-linux) is not installed");
        return;
    }
    let m = Moved::new();
    let home = m.root.join("home dir");
    let src = home.join("My Documents");
    write(src.join("tax return 2024.pdf"), bytes(50_000, 1));
    write(src.join("photos/summer trip/beach.jpg"), bytes(20_000, 2));
    let cmd = cron_command(&m);

    let out = run_as_cron(&cmd, &home);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // -q: nothing printed, so cron sends no mail.
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        describe(&out)
    );
    assert_mirrored(&src, &m.rep);
    let logs = home.join(".local/state/replwatch");
    assert!(logs.join("replwatch.log").is_file());

    // A pass still running (holding the lock): the next one is skipped, quietly.
    write(src.join("new while locked.txt"), "late");
    let lock = fs::File::open(logs.join("cron.lock")).unwrap();
    rustix::fs::flock(lock.as_fd(), rustix::fs::FlockOperation::LockExclusive).unwrap();
    let out = run_as_cron(&cmd, &home);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        !m.rep.join("new while locked.txt").exists(),
        "ran despite the lock"
    );
    drop(lock);

    let out = run_as_cron(&cmd, &home);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_mirrored(&src, &m.rep);
}

// ---------------------------------------------------------------- Task Scheduler

/// Split a Windows command line by the Microsoft C runtime rules (what schtasks.exe and a
/// Rust program's `std::env::args` on Windows use). The first word is the program: it ends
/// at the next blank, or at the closing quote, with no backslash escapes. Later words:
/// 2n backslashes + `"` give n backslashes and toggle quoting; 2n+1 backslashes + `"` give n
/// backslashes and a literal `"`; other backslashes are literal; `""` inside quotes is a
/// literal `"`.
fn windows_argv(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut argv = Vec::new();
    // The program name.
    let mut prog = String::new();
    let mut quoted = false;
    while i < chars.len() {
        match chars[i] {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => break,
            c => prog.push(c),
        }
        i += 1;
    }
    argv.push(prog);
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t') {
            i += 1;
        }
        if i >= chars.len() {
            return argv;
        }
        let mut arg = String::new();
        let mut quoted = false;
        while i < chars.len() {
            match chars[i] {
                '\\' => {
                    let start = i;
                    while i < chars.len() && chars[i] == '\\' {
                        i += 1;
                    }
                    let n = i - start;
                    if i < chars.len() && chars[i] == '"' {
                        arg.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            arg.push('"');
                            i += 1;
                        }
                    } else {
                        arg.extend(std::iter::repeat_n('\\', n));
                    }
                    continue;
                }
                '"' if quoted && chars.get(i + 1) == Some(&'"') => {
                    arg.push('"');
                    i += 1;
                }
                '"' => quoted = !quoted,
                ' ' | '\t' if !quoted => break,
                c => arg.push(c),
            }
            i += 1;
        }
        argv.push(arg);
    }
}

/// The logical lines of a .cmd file: CRs dropped, a `^` at the end of a line (outside cmd's
/// quotes) joins it with the next.
fn cmd_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        cur.push_str(line);
        // cmd's own quote state flips at every ", escaped or not.
        let in_quotes = cur.chars().filter(|&c| c == '"').count() % 2 == 1;
        if !in_quotes && cur.ends_with('^') {
            cur.pop();
            continue;
        }
        out.push(std::mem::take(&mut cur));
    }
    out
}

/// Characters cmd.exe acts on outside its quotes, in `line` (as cmd sees quotes).
fn cmd_specials_outside_quotes(line: &str) -> Vec<char> {
    let mut quoted = false;
    let mut found = Vec::new();
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            '&' | '|' | '<' | '>' | '^' | '(' | ')' if !quoted => found.push(c),
            _ => {}
        }
    }
    found
}

#[test]
fn windows_argv_follows_the_c_runtime_rules() {
    // Examples from Microsoft's "Parsing C command-line arguments".
    let cases: [(&str, &[&str]); 5] = [
        (r#"p "a b c" d e"#, &["a b c", "d", "e"]),
        (r#"p "ab\"c" "\\" d"#, &["ab\"c", "\\", "d"]),
        (r#"p a\\\b d"e f"g h"#, &["a\\\\\\b", "de fg", "h"]),
        (r#"p a\\\"b c d"#, &["a\\\"b", "c", "d"]),
        (r#"p a\\\\"b c" d e"#, &["a\\\\b c", "d", "e"]),
    ];
    for (line, want) in cases {
        assert_eq!(&windows_argv(line)[1..], want, "{line}");
    }
    assert_eq!(
        windows_argv(r#""C:\Program Files\x.exe" -a"#),
        [r"C:\Program Files\x.exe", "-a"]
    );
}

#[test]
fn schtasks_command_quotes_each_path_with_spaces_as_one_argument() {
    let text = example("schtasks.cmd");
    assert!(
        text.contains("\r\n"),
        "a .cmd file should have CRLF line ends"
    );
    let lines = cmd_lines(&text);
    let create: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().to_ascii_lowercase().starts_with("schtasks "))
        .collect();
    assert_eq!(create.len(), 1, "{lines:?}");
    let line = create[0].trim();
    assert!(
        cmd_specials_outside_quotes(line).is_empty(),
        "cmd would act on {:?} in {line}",
        cmd_specials_outside_quotes(line)
    );
    assert!(!line.contains('%'), "cmd would expand % in {line}");

    // What schtasks.exe receives.
    let argv = windows_argv(line);
    let opt = |name: &str| -> &str {
        let i = argv
            .iter()
            .position(|a| a.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{name} missing from {argv:?}"));
        &argv[i + 1]
    };
    assert!(argv.iter().any(|a| a.eq_ignore_ascii_case("/Create")));
    assert_eq!(opt("/TN"), "replwatch mirror");
    assert_eq!(opt("/SC"), "HOURLY");
    let tr = opt("/TR");
    assert!(
        tr.len() <= 261,
        "/TR is {} characters, schtasks takes 261",
        tr.len()
    );

    // What Task Scheduler runs, and what replwatch.exe's argv will be.
    let task = windows_argv(tr);
    assert_eq!(task[0], r"C:\Program Files\replwatch\replwatch.exe");
    let args = &task[1..];
    assert_eq!(
        args,
        [
            "-s",
            r"C:\Users\me\My Documents",
            "-r",
            r"D:\Mirror\My Documents",
            "-l",
            r"C:\ProgramData\replwatch\logs",
            "--once",
        ]
    );
    assert!(cli(args).once);

    // The comment showing the resulting command line says the same.
    assert!(
        text.lines()
            .any(|l| l.trim_end_matches('\r').trim_start_matches(':').trim() == tr),
        "the comment's command line differs from /TR: {tr}"
    );
}

#[test]
fn every_recipe_is_covered() {
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    for e in fs::read_dir(EXAMPLES).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let recipe = [".service", ".timer", ".cron", ".cmd"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if recipe {
            seen.insert(name, true);
        }
    }
    let want = [
        "replwatch-once.service",
        "replwatch-once.timer",
        "replwatch.cron",
        "replwatch.service",
        "schtasks.cmd",
    ];
    assert_eq!(seen.keys().map(String::as_str).collect::<Vec<_>>(), want);
}
