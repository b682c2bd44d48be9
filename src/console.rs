//! The console for people: one short line per change, a summary for each pass, errors in
//! full. The logfile keeps every structured record; `--console-json` bypasses this.
//!
//! ```text
//! 09:14:03 + docs/report.pdf (1.2 MiB)
//! 09:14:03 * notes.txt (2.1 KiB)
//! 09:14:03 ~ photos/
//! 09:14:03 - old.txt
//! 09:14:03 > a.txt -> b.txt
//! 09:14:05 initial pass done in 1.9 s: 5000 checked, 5000 created, 12.3 MiB copied, 4980 more lines in the logfile (-v shows each)
//! 09:14:07 ERROR copy failed: secret.txt: Permission denied (os error 13)
//! ```
//!
//! `+` created, `*` updated (contents), `~` metadata only, `-` removed, `>` renamed; a
//! directory ends in `/`. A pass shows its first [`SHOWN_PER_PASS`] changes and then only
//! counts them, so an initial pass of 5,000 files is a screenful, not 5,000 lines; `-v` shows
//! every one. The initial pass (and `--once`) always ends with its summary; event batches,
//! and reconciliations that changed nothing, print one only when they met an error or hid
//! changes.
//! Everything shown goes through `escape::line`, so one record is one line.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use slog::{Drain, Key, Level, Never, OwnedKVList, Record};

use crate::escape;

/// Changes shown per pass or batch before the rest are only counted (without `-v`).
pub const SHOWN_PER_PASS: u64 = 20;

/// The drain for the text console.
pub struct People<W> {
    out: Mutex<W>,
    /// `-v`: every change, every summary.
    every: bool,
    /// ANSI colour for the level word.
    colour: bool,
    /// Per trigger (`initial`, `event`, ...): changes shown and hidden since its last summary.
    seen: Mutex<HashMap<String, (u64, u64)>>,
}

impl<W: Write> People<W> {
    pub fn new(out: W, every: bool, colour: bool) -> Self {
        People {
            out: Mutex::new(out),
            every,
            colour,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The line for a record, if it is shown.
    fn render(&self, level: Level, msg: &str, kv: &[(Key, String)]) -> Option<String> {
        let get = |k: &str| {
            kv.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        let trigger = get("trigger").unwrap_or("").to_owned();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match get("action") {
            Some("summary") => {
                let (_, hidden) = seen.remove(&trigger).unwrap_or_default();
                let n = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let changed = [
                    "created", "updated", "meta", "removed", "renamed", "skipped",
                ]
                .iter()
                .map(|k| n(k))
                .sum::<u64>();
                // The initial pass (and --once) always says how it ended; a batch's changes
                // are on screen already; a reconciliation that found nothing is not news.
                if !self.every
                    && hidden == 0
                    && n("errors") == 0
                    && trigger != "initial"
                    && (changed == 0 || trigger == "event")
                {
                    return None;
                }
                Some(summary(&trigger, &n, hidden))
            }
            Some(action) if get("kind").is_some() && get("bytes").is_some() => {
                let counts = seen.entry(trigger).or_default();
                if !self.every && counts.0 >= SHOWN_PER_PASS && level <= Level::Info {
                    counts.1 += 1;
                    return None;
                }
                counts.0 += 1;
                Some(change(action, &get))
            }
            Some("version") if level <= Level::Info => Some(format!(
                "v {} (kept as {})",
                escape::line(get("path").unwrap_or(".")),
                escape::line(get("to").unwrap_or("?"))
            )),
            _ => Some(self.generic(level, msg, kv)),
        }
    }

    /// Any other record: its message, then the values it does not already hold.
    fn generic(&self, level: Level, msg: &str, kv: &[(Key, String)]) -> String {
        let tag = match (level, self.colour) {
            (Level::Critical | Level::Error, true) => "\x1b[1;31mERROR\x1b[0m ",
            (Level::Critical | Level::Error, false) => "ERROR ",
            (Level::Warning, true) => "\x1b[1;33mWARN\x1b[0m ",
            (Level::Warning, false) => "WARN ",
            (Level::Info, _) => "",
            (Level::Debug, _) => "DEBUG ",
            (Level::Trace, _) => "TRACE ",
        };
        let extra: Vec<String> = kv
            .iter()
            .filter(|(k, v)| {
                !matches!(*k, "action" | "trigger" | "drift" | "errno")
                    && !v.is_empty()
                    && !msg.contains(v.as_str())
            })
            .map(|(k, v)| format!("{k}: {}", escape::line(v)))
            .collect();
        let mut line = format!("{tag}{}", escape::line(msg));
        if !extra.is_empty() {
            line.push_str(&format!(" ({})", extra.join(", ")));
        }
        line
    }
}

/// `+ path (size)`, `> from -> to`, ...
fn change<'a>(action: &str, get: &dyn Fn(&str) -> Option<&'a str>) -> String {
    let sym = match (action, get("reason")) {
        ("remove", _) => '-',
        ("rename", _) => '>',
        ("meta", _) => '~',
        (_, Some("new")) => '+',
        _ => '*',
    };
    let kind = get("kind").unwrap_or("");
    let slash = if kind == "dir" { "/" } else { "" };
    let path = escape::line(get("path").unwrap_or("."));
    let mut line = match (action, get("from")) {
        ("rename", Some(from)) => format!("{sym} {}{slash} -> {path}{slash}", escape::line(from)),
        _ => format!("{sym} {path}{slash}"),
    };
    if kind == "symlink" {
        line.push_str(" (symlink)");
    }
    if action == "link" {
        line.push_str(" (hard link)");
    }
    if let Some(b) = get("bytes").and_then(|b| b.parse::<u64>().ok())
        && b > 0
    {
        line.push_str(&format!(" ({})", human_bytes(b)));
    }
    if get("drift") == Some("true") {
        line.push_str(" [drift: missed by the watcher, repaired by reconciliation]");
    }
    line
}

/// `initial pass done in 1.9 s: 5000 checked, 5000 created, 12.3 MiB copied, ...`
fn summary(trigger: &str, n: &dyn Fn(&str) -> u64, hidden: u64) -> String {
    let what = match trigger {
        "event" => "batch",
        "initial" => "initial pass",
        "reconcile" => "reconciliation",
        "rescan" => "full pass",
        _ => "pass",
    };
    let ms = n("elapsed_ms");
    let took = if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    };
    let mut parts = vec![format!("{} checked", n("scanned"))];
    for (key, word) in [
        ("created", "created"),
        ("updated", "updated"),
        ("meta", "metadata fixed"),
        ("removed", "removed"),
        ("renamed", "renamed"),
        ("skipped", "skipped"),
    ] {
        if n(key) > 0 {
            parts.push(format!("{} {word}", n(key)));
        }
    }
    if n("bytes") > 0 {
        parts.push(format!("{} copied", human_bytes(n("bytes"))));
    }
    parts.push(format!(
        "{} error{}",
        n("errors"),
        if n("errors") == 1 { "" } else { "s" }
    ));
    if hidden > 0 {
        parts.push(format!(
            "{hidden} more change{} in the logfile (-v shows each)",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    format!("{what} done in {took}: {}", parts.join(", "))
}

/// `512 B`, `2.1 KiB`, `1.2 MiB`, `3.0 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The local time of day, `HH:MM:SS`.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return "--:--:--".to_owned();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

impl<W> People<W> {
    /// Is this a change past the pass's first [`SHOWN_PER_PASS`], only counted? Told from
    /// the few keys that decide it, without formatting the record: a copy pass's records
    /// are nearly all such, and the logfile has formatted each already.
    fn hidden(&self, record: &Record<'_>) -> bool {
        if self.every || record.level() > Level::Info {
            return false;
        }
        let mut g = Glance::default();
        let _ = slog::KV::serialize(&record.kv(), record, &mut g);
        match g.action.as_deref() {
            Some(a) if a != "summary" && g.kind && g.bytes => {}
            _ => return false,
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let counts = seen.entry(g.trigger).or_default();
        if counts.0 >= SHOWN_PER_PASS {
            counts.1 += 1;
            return true;
        }
        false
    }
}

/// What decides whether a record is a change (see `People::hidden`).
#[derive(Default)]
struct Glance {
    action: Option<String>,
    trigger: String,
    kind: bool,
    bytes: bool,
}

impl slog::Serializer for Glance {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        match key {
            "action" => self.action = Some(val.to_string()),
            "trigger" => self.trigger = val.to_string(),
            "kind" => self.kind = true,
            "bytes" => self.bytes = true,
            _ => {}
        }
        Ok(())
    }
}

/// A record's key-values as text, in the order written.
struct Strings(Vec<(Key, String)>);

impl slog::Serializer for Strings {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push((key, val.to_string()));
        Ok(())
    }
}

impl<W: Write> Drain for People<W> {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), Never> {
        if self.hidden(record) {
            return Ok(());
        }
        let mut kv = Strings(Vec::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        kv.0.reverse();
        if let Some(line) = self.render(record.level(), &record.msg().to_string(), &kv.0) {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{} {line}", clock());
            let _ = out.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&'static str, &str)]) -> Vec<(Key, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn copy(path: &str, reason: &str, bytes: &str) -> Vec<(Key, String)> {
        kv(&[
            ("action", "copy"),
            ("path", path),
            ("kind", "file"),
            ("reason", reason),
            ("bytes", bytes),
            ("trigger", "initial"),
            ("drift", "false"),
        ])
    }

    #[test]
    fn a_change_is_one_short_line() {
        let p = People::new(Vec::new(), false, false);
        let r = |kv: &[(Key, String)]| p.render(Level::Info, "copy", kv).unwrap();
        assert_eq!(r(&copy("a/b.txt", "new", "2150")), "+ a/b.txt (2.1 KiB)");
        assert_eq!(r(&copy("evil\nroot::", "changed", "0")), "* evil\\nroot::");
        let rename = kv(&[
            ("action", "rename"),
            ("path", "d2"),
            ("from", "d1"),
            ("kind", "dir"),
            ("reason", "renamed"),
            ("bytes", "0"),
            ("trigger", "event"),
        ]);
        assert_eq!(r(&rename), "> d1/ -> d2/");
    }

    /// Through the drain, as records arrive: the changes past the first 20 are counted
    /// without being formatted, and the summary says how many.
    #[test]
    fn records_past_the_first_changes_are_counted_by_the_drain() {
        let p = People::new(Vec::new(), false, false);
        let stat = slog::record_static!(Level::Info, "");
        let none = OwnedKVList::from(slog::o!());
        for i in 0..100u64 {
            let path = format!("f{i}");
            p.log(
                &Record::new(
                    &stat,
                    &format_args!("copy"),
                    slog::b!("action" => "copy", "path" => %path, "kind" => "file",
                        "reason" => "new", "bytes" => i, "trigger" => "initial",
                        "drift" => false),
                ),
                &none,
            )
            .unwrap();
        }
        p.log(
            &Record::new(
                &stat,
                &format_args!("pass done"),
                slog::b!("action" => "summary", "trigger" => "initial", "scanned" => 100u64,
                    "created" => 100u64, "errors" => 0u64, "elapsed_ms" => 5u64),
            ),
            &none,
        )
        .unwrap();
        let out = String::from_utf8(p.out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), SHOWN_PER_PASS as usize + 1, "{out}");
        assert!(lines[0].ends_with(" + f0"), "{out}");
        assert!(
            lines[20].ends_with("80 more changes in the logfile (-v shows each)"),
            "{out}"
        );
    }

    #[test]
    fn a_big_pass_shows_its_first_changes_then_a_summary_that_counts_the_rest() {
        let p = People::new(Vec::new(), false, false);
        let shown = (0..100)
            .filter(|i| {
                p.render(Level::Info, "copy", &copy(&format!("f{i}"), "new", "1"))
                    .is_some()
            })
            .count();
        assert_eq!(shown as u64, SHOWN_PER_PASS);
        let s = kv(&[
            ("action", "summary"),
            ("trigger", "initial"),
            ("scanned", "101"),
            ("created", "100"),
            ("bytes", "100"),
            ("errors", "0"),
            ("elapsed_ms", "35"),
        ]);
        assert_eq!(
            p.render(Level::Info, "pass done", &s).unwrap(),
            "initial pass done in 35 ms: 101 checked, 100 created, 100 B copied, 0 errors, \
             80 more changes in the logfile (-v shows each)"
        );
        // A reconciliation that found nothing says nothing; the initial pass always does.
        let quiet = kv(&[
            ("action", "summary"),
            ("trigger", "reconcile"),
            ("scanned", "101"),
            ("errors", "0"),
        ]);
        assert_eq!(p.render(Level::Info, "pass done", &quiet), None);
        let nothing = kv(&[
            ("action", "summary"),
            ("trigger", "initial"),
            ("scanned", "101"),
        ]);
        assert!(p.render(Level::Info, "pass done", &nothing).is_some());
        // The count starts again with the next pass; -v shows every change.
        assert!(
            p.render(Level::Info, "copy", &copy("g", "new", "1"))
                .is_some()
        );
        let every = People::new(Vec::new(), true, false);
        for i in 0..100 {
            assert!(
                every
                    .render(Level::Info, "copy", &copy(&format!("f{i}"), "new", "1"))
                    .is_some()
            );
        }
    }

    #[test]
    fn errors_are_shown_in_full_with_what_the_message_lacks() {
        let p = People::new(Vec::new(), false, false);
        let line = p.render(
            Level::Error,
            "copy failed: x: Permission denied (os error 13)",
            &kv(&[
                ("action", "copy"),
                ("path", "x"),
                ("error", "Permission denied (os error 13)"),
                ("errno", "13"),
                ("trigger", "initial"),
            ]),
        );
        assert_eq!(
            line.unwrap(),
            "ERROR copy failed: x: Permission denied (os error 13)"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
