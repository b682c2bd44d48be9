//! `replwatch status -l LOGDIR`: read the live process's status record and say, for a person
//! or (`--json`) a script, whether the replica is in sync.
//!
//! Exit 0: a live replwatch is behind the record and the replica is in sync (watching or
//! reconciling, no entry failing, no full pass owed). Exit 3: it is running but the replica
//! is not known in sync (entries failing, SRC or REPLICA gone, the first pass still running).
//! Exit 1: no live replwatch is behind the record: none was found, or the process that wrote
//! it has stopped or died. A process is the one that wrote the record only if its pid is
//! alive *and* started at the recorded time (`/proc/PID/stat`), so a reused pid is not taken
//! for it.

use std::io::{self, Write};
use std::time::SystemTime;

use crate::cli::StatusArgs;
use crate::escape::line;
use crate::exit::Outcome;
use crate::status::{self, State, Status};

/// What the record says about the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    InSync,
    NotInSync,
    NotRunning,
}

impl Verdict {
    pub fn outcome(self) -> Outcome {
        match self {
            Verdict::InSync => Outcome::Success,
            Verdict::NotInSync => Outcome::Partial,
            Verdict::NotRunning => Outcome::Fatal,
        }
    }
}

/// Is the process that wrote `s` still running?
pub fn running(s: &Status) -> bool {
    s.state != State::Stopped && status::start_ticks(s.pid) == Some(s.start_ticks)
}

pub fn verdict(s: &Status) -> Verdict {
    if !running(s) {
        Verdict::NotRunning
    } else if matches!(s.state, State::Watching | State::Reconciling)
        && s.failing_count == 0
        && s.pending.full_pass_needed.is_none()
    {
        Verdict::InSync
    } else {
        Verdict::NotInSync
    }
}

/// Run the command, printing to stdout.
pub fn run(args: &StatusArgs) -> Outcome {
    let mut out = io::stdout().lock();
    let v = match status::read(&args.log_dir) {
        Ok(s) => {
            let v = verdict(&s);
            let _ = if args.json {
                json(&s, v, &mut out)
            } else {
                human(&s, v, &mut out)
            };
            v
        }
        Err(e) => {
            let msg = if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "no replwatch status record in {}: no live replwatch has used it as its --log-dir",
                    args.log_dir.display()
                )
            } else {
                e.to_string()
            };
            let _ = if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"running": false, "in_sync": false, "error": msg})
                )
            } else {
                writeln!(out, "replwatch is not running: {}", line(&msg))
            };
            Verdict::NotRunning
        }
    };
    let _ = out.flush();
    v.outcome()
}

fn json(s: &Status, v: Verdict, out: &mut dyn Write) -> io::Result<()> {
    let mut value = serde_json::to_value(s).map_err(io::Error::other)?;
    if let Some(m) = value.as_object_mut() {
        m.insert("running".into(), (v != Verdict::NotRunning).into());
        m.insert("in_sync".into(), (v == Verdict::InSync).into());
    }
    writeln!(out, "{value}")
}

/// `2026-12-02T09:14:05Z (3m 2s ago)`
fn when(ts: &str) -> String {
    match humantime::parse_rfc3339(ts) {
        Ok(t) => {
            let ago = SystemTime::now()
                .duration_since(t)
                .map(|d| std::time::Duration::from_secs(d.as_secs()))
                .unwrap_or_default();
            format!("{ts} ({} ago)", humantime::format_duration(ago))
        }
        Err(_) => ts.to_owned(),
    }
}

fn human(s: &Status, v: Verdict, out: &mut dyn Write) -> io::Result<()> {
    match v {
        Verdict::NotRunning if s.state == State::Stopped => writeln!(
            out,
            "replwatch is not running: pid {} stopped {}{}",
            s.pid,
            when(&s.since),
            s.detail
                .as_deref()
                .map(|d| format!(": {}", line(d)))
                .unwrap_or_default()
        )?,
        Verdict::NotRunning => writeln!(
            out,
            "replwatch is not running: this record is stale, left by pid {}, which is no longer \
             running (it said \"{}\", last updated {})",
            s.pid,
            s.state.as_str(),
            when(&s.updated)
        )?,
        _ => writeln!(
            out,
            "replwatch (pid {}) is {} since {}{}",
            s.pid,
            s.state.as_str(),
            when(&s.since),
            s.detail
                .as_deref()
                .map(|d| format!(": {}", line(d)))
                .unwrap_or_default()
        )?,
    }
    writeln!(
        out,
        "  source       {}",
        line(&s.source.display().to_string())
    )?;
    writeln!(
        out,
        "  replica      {}",
        line(&s.replica.display().to_string())
    )?;
    match &s.last_pass {
        Some(p) => writeln!(
            out,
            "  last pass    {} finished {}: {} checked, {} created, {} updated, {} removed, \
             {} renamed, {} metadata, {} copied, {} errors, {} ms",
            p.trigger,
            when(&p.finished),
            p.scanned,
            p.created,
            p.updated,
            p.removed,
            p.renamed,
            p.meta,
            crate::console::human_bytes(p.bytes),
            p.errors,
            p.elapsed_ms
        )?,
        None => writeln!(out, "  last pass    none finished yet")?,
    }
    match &s.last_change {
        Some(c) => writeln!(
            out,
            "  last change  {} {} at {}, {} ms after its event",
            c.action,
            line(&c.path),
            when(&c.at),
            c.lag_ms
        )?,
        None => writeln!(out, "  last change  none since start")?,
    }
    if s.failing_count == 0 {
        writeln!(out, "  failing      none")?;
    } else {
        writeln!(out, "  failing      {} entries", s.failing_count)?;
        for f in &s.failing {
            writeln!(out, "    {}: {}", line(&f.path), line(&f.error))?;
        }
        if s.failing_count > s.failing.len() {
            writeln!(
                out,
                "    ... and {} more (see the log)",
                s.failing_count - s.failing.len()
            )?;
        }
    }
    let mut pending = Vec::new();
    if s.pending.queued {
        pending.push("changes waiting for the debounce".to_owned());
    }
    if s.pending.deferred > 0 {
        pending.push(format!("{} files being written", s.pending.deferred));
    }
    if let Some(why) = &s.pending.full_pass_needed {
        pending.push(format!("a full pass ({why})"));
    }
    if pending.is_empty() {
        pending.push("nothing".to_owned());
    }
    writeln!(out, "  pending      {}", pending.join("; "))?;
    writeln!(out, "  updated      {}", when(&s.updated))?;
    let word = match v {
        Verdict::InSync => "in sync",
        Verdict::NotInSync => "NOT in sync",
        Verdict::NotRunning => "unknown: no live replwatch",
    };
    writeln!(out, "replica: {word}")
}
