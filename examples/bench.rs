//! One-shot throughput of `replwatch --once` against rsync, `cp -a` and a `find` floor.
//!
//! ```sh
//! cargo run --release --example bench -- [--dir PATH] [--rounds N] [--scale] [--quick]
//!     [--only W1,W2,W3] [--bin PATH] [--no-build] [--keep]
//! ```
//!
//! Seeded trees are generated under a scratch dir (tmpfs at /dev/shm by default; `--dir` to
//! measure a disk). Every workload runs one untimed warm-up of each tool (the page cache is
//! warm for all), then N interleaved rounds (A B C A B C ...); the table shows medians.
//! The report on stdout is markdown, ready for the README; progress goes to stderr.

mod common;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::builder::RangedU64ValueParser;
use clap::{Parser, ValueEnum};
use common::*;

/// One-shot throughput of `replwatch --once` against rsync, `cp -a` and a `find` floor.
///
/// Seeded trees are generated under a scratch dir (tmpfs at /dev/shm by default; --dir to
/// measure a disk). Every workload runs one untimed warm-up of each tool (the page cache is
/// warm for all), then N interleaved rounds (A B C A B C ...); the table shows medians. The
/// report on stdout is markdown, ready for the README; progress goes to stderr.
#[derive(Parser)]
#[command(
    name = "bench",
    override_usage = "cargo run --release --example bench -- [OPTIONS]"
)]
struct Opts {
    /// Scratch base [default: /dev/shm when it exists (tmpfs), else the temp dir]
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,

    /// Timed rounds per tool after one warm-up
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    rounds: usize,

    /// Small trees (2,000 files, 1 x 8 MiB): a sanity check
    #[arg(long)]
    quick: bool,

    /// Also W4: 1,000,000 files of 1-4 KiB in 100,000 dirs (W1, W2, live start-up); needs
    /// ~11 GB of tmpfs (or --dir on a disk)
    #[arg(long)]
    scale: bool,

    /// Run only these workloads (comma-separated)
    #[arg(long, value_name = "LIST", value_delimiter = ',', ignore_case = true)]
    only: Vec<Wl>,

    /// Measure this replwatch binary instead of building target/release/replwatch
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,

    /// Do not run `cargo build --release --bin replwatch` first
    #[arg(long)]
    no_build: bool,

    /// Keep the scratch dir with the W1 source (src), replwatch's replica of it (synced) and
    /// the W3 churned source (w3-src)
    #[arg(long)]
    keep: bool,
}

/// The workloads `--only` can pick.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Wl {
    /// Initial copy into an empty replica
    #[value(name = "W1")]
    W1,
    /// No change: the pair already in sync
    #[value(name = "W2")]
    W2,
    /// Churn: 1 % rewritten, 1 % deleted, 1 % new, one big file appended
    #[value(name = "W3")]
    W3,
    /// At scale: a million files (what --scale adds)
    #[value(name = "W4")]
    W4,
    /// Fidelity: the W1 tree with hard links, xattrs and ACLs, against `rsync -aHAX`
    #[value(name = "W5")]
    W5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Replwatch,
    Rsync,
    Cp,
    Floor,
    /// replwatch without hard links, xattrs and ACLs (W5).
    ReplwatchBare,
    /// `rsync -aHAX` (W5).
    RsyncHax,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Replwatch => "replwatch",
            Tool::Rsync => "rsync",
            Tool::Cp => "cp -a",
            Tool::Floor => "find floor",
            Tool::ReplwatchBare => "replwatch bare",
            Tool::RsyncHax => "rsync -HAX",
        }
    }

    fn shown(self) -> &'static str {
        match self {
            Tool::Replwatch => "`replwatch -s SRC -r DST -l LOGS --once -q`",
            Tool::Rsync => "`rsync -a --delete SRC/ DST/`",
            Tool::Cp => "`cp -a SRC DST`",
            Tool::Floor => "`find SRC DST -printf '%s %T@\\n' >/dev/null`",
            Tool::ReplwatchBare => {
                "`replwatch ... --once -q --no-hard-links --no-xattrs --no-acls`"
            }
            Tool::RsyncHax => "`rsync -aHAX --delete SRC/ DST/`",
        }
    }
}

struct Ctx {
    bin: PathBuf,
    scratch: PathBuf,
    logs: PathBuf,
    rounds: usize,
    /// Leave the trees in place for inspection or profiling.
    keep: bool,
    /// Not tmpfs: `sync` before each timed run so earlier writeback is not billed to it, and
    /// no tree is deleted until the end (ext4 skips inodes deleted in the last 30 s when it
    /// allocates one, so mass creation right after a mass delete crawls, for every tool).
    flush: bool,
    /// Destinations handed out so far, and the latest (removed before the next on tmpfs).
    runs: Cell<usize>,
    last: RefCell<Option<PathBuf>>,
}

impl Ctx {
    /// A new destination path for one run. On tmpfs the previous one is removed first (at
    /// --scale a tree is gigabytes of RAM); on a disk it is left until the end.
    fn fresh_dst(&self, name: &str) -> PathBuf {
        let n = self.runs.get();
        self.runs.set(n + 1);
        self.drop_last();
        let p = self.scratch.join(format!("{name}-{n}"));
        *self.last.borrow_mut() = Some(p.clone());
        p
    }

    /// Remove the latest destination now, unless on a disk (see `flush`).
    fn drop_last(&self) {
        if let Some(p) = self.last.borrow_mut().take()
            && !self.flush
        {
            remove_tree(&p);
        }
    }

    fn command(&self, tool: Tool, src: &Path, dst: &Path) -> Command {
        match tool {
            Tool::Replwatch => {
                let mut c = Command::new(&self.bin);
                c.arg("-s")
                    .arg(src)
                    .arg("-r")
                    .arg(dst)
                    .arg("-l")
                    .arg(&self.logs);
                c.args(["--once", "-q"]);
                c
            }
            Tool::Rsync => {
                let mut c = Command::new("rsync");
                c.args(["-a", "--delete"]).arg(slash(src)).arg(slash(dst));
                c
            }
            Tool::Cp => {
                let mut c = Command::new("cp");
                c.arg("-a").arg(src).arg(dst);
                c
            }
            Tool::Floor => {
                let mut c = Command::new("find");
                c.arg(src).arg(dst).args(["-printf", "%s %T@\\n"]);
                c
            }
            Tool::ReplwatchBare => {
                let mut c = self.command(Tool::Replwatch, src, dst);
                c.args(["--no-hard-links", "--no-xattrs", "--no-acls"]);
                c
            }
            Tool::RsyncHax => {
                let mut c = Command::new("rsync");
                c.args(["-aHAX", "--delete"])
                    .arg(slash(src))
                    .arg(slash(dst));
                c
            }
        }
    }

    fn stderr_file(&self) -> PathBuf {
        self.scratch.join("stderr.txt")
    }

    fn run(&self, tool: Tool, src: &Path, dst: &Path) -> Sample {
        if self.flush {
            sync_all();
        }
        settle(Duration::from_secs(10));
        measure(&self.command(tool, src, dst), &self.stderr_file())
            .unwrap_or_else(|e| die(&format!("{} failed: {e}", tool.name())))
    }
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

/// One tool's timed samples in one workload.
struct Row {
    tool: Tool,
    samples: Vec<Sample>,
}

impl Row {
    fn median_wall(&self) -> f64 {
        median(&self.walls())
    }

    fn walls(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.wall.as_secs_f64()).collect()
    }

    fn median_cpu(&self) -> f64 {
        median(
            &self
                .samples
                .iter()
                .map(|s| s.cpu().as_secs_f64())
                .collect::<Vec<_>>(),
        )
    }

    fn peak_rss(&self) -> u64 {
        self.samples.iter().map(|s| s.maxrss_kib).max().unwrap_or(0)
    }
}

struct Workload {
    id: &'static str,
    title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Workload {
    fn row(&self, t: Tool) -> Option<&Row> {
        self.rows.iter().find(|r| r.tool == t)
    }

    fn ratio(&self, a: Tool, b: Tool) -> Option<f64> {
        Some(self.row(a)?.median_wall() / self.row(b)?.median_wall())
    }

    fn cpu_ratio(&self, a: Tool, b: Tool) -> Option<f64> {
        Some(self.row(a)?.median_cpu() / self.row(b)?.median_cpu())
    }

    /// The share of the machine other processes used during the timed runs: median, max.
    fn foreign(&self) -> (f64, f64) {
        let v: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| r.samples.iter().map(Sample::foreign_share))
            .collect();
        (median(&v), v.iter().copied().fold(0.0, f64::max))
    }
}

/// Round 0 is the warm-up; then `rounds` interleaved timed rounds. `prepare` readies the
/// (untimed) source and destination for one run; `check` looks at the warm-up's result.
fn interleaved(
    ctx: &Ctx,
    tools: &[Tool],
    mut prepare: impl FnMut(Tool) -> (PathBuf, PathBuf),
    mut check: impl FnMut(Tool, &Path, &Path),
) -> Vec<Row> {
    let mut rows: Vec<Row> = tools
        .iter()
        .map(|&tool| Row {
            tool,
            samples: Vec::new(),
        })
        .collect();
    for round in 0..=ctx.rounds {
        for row in rows.iter_mut() {
            let (src, dst) = prepare(row.tool);
            let s = ctx.run(row.tool, &src, &dst);
            let label = if round == 0 {
                "warm-up".to_string()
            } else {
                format!("round {round}")
            };
            eprintln!(
                "    {label:>8} {:<10} {:>10}  cpu {:>9}  rss {:>10}  other load {:>3.0} %",
                row.tool.name(),
                secs(s.wall.as_secs_f64()),
                secs(s.cpu().as_secs_f64()),
                mib(s.maxrss_kib),
                s.foreign_share() * 100.0
            );
            if round == 0 {
                check(row.tool, &src, &dst);
            } else {
                row.samples.push(s);
            }
        }
    }
    rows
}

/// Whether `dst` mirrors `src` (paths, types, sizes, modes, mtimes, bytes), as a note.
fn verify(what: &str, src: &Path, dst: &Path, contents: bool) -> String {
    let note = match try_tree_diff(src, dst, contents) {
        Ok(d) if d.is_empty() => format!("{what}: result verified identical to the source"),
        Ok(d) => format!(
            "{what}: **result differs from the source in {} entries**, e.g. {}",
            d.len(),
            first_differences(&d)
        ),
        Err(e) => format!("{what}: **cannot compare trees: {e}**"),
    };
    eprintln!("    {note}");
    note
}

/// The fields of the last `pass done` record in the log.
fn last_summary(logs: &Path) -> Option<String> {
    let text = std::fs::read_to_string(logs.join("replwatch.log")).ok()?;
    text.lines()
        .rev()
        .find(|l| l.contains("pass done"))
        .map(|l| l[l.find("pass done").unwrap_or(0)..].to_string())
}

fn field(summary: &str, key: &str) -> Option<u64> {
    let pat = format!("{key}: ");
    let at = summary.find(&pat)? + pat.len();
    summary[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn changes(summary: &str) -> u64 {
    ["created", "updated", "meta", "removed", "renamed"]
        .iter()
        .filter_map(|k| field(summary, k))
        .sum()
}

fn main() {
    run_helper_if_asked();
    let Opts {
        dir,
        rounds,
        quick,
        scale,
        only,
        bin: explicit_bin,
        no_build,
        keep,
    } = Opts::parse();
    let base = dir.unwrap_or_else(default_base);
    let wanted = |id: Wl| {
        if only.is_empty() {
            id != Wl::W4 || scale
        } else {
            only.contains(&id)
        }
    };
    for tool in ["rsync", "cp", "find", "sync"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            die(&format!(
                "{tool} is not installed (apt-get install -y rsync)"
            ));
        }
    }

    let (scratch_dir, scratch) = scratch_dir(&base, "replwatch-bench-", keep);
    let bin = replwatch_binary(explicit_bin, no_build, &scratch);
    let logs = scratch.join("logs");
    let flush = !is_tmpfs(&scratch);
    let ctx = Ctx {
        bin,
        scratch: scratch.clone(),
        logs: logs.clone(),
        rounds,
        keep,
        flush,
        runs: Cell::new(0),
        last: RefCell::new(None),
    };

    let spec = if quick {
        TreeSpec {
            files: 2_000,
            dirs: 40,
            min_size: 1024,
            max_size: 8192,
            big_files: 1,
            big_size: 8 << 20,
            seed: 42,
        }
    } else {
        TreeSpec {
            files: 20_000,
            dirs: 400,
            min_size: 1024,
            max_size: 8192,
            big_files: 5,
            big_size: 64 << 20,
            seed: 42,
        }
    };

    let mut header = String::new();
    let _ = writeln!(header, "- machine: {}", machine_line(&scratch));
    let _ = writeln!(header, "- replwatch: {}", binary_identity(&ctx.bin));
    let _ = writeln!(header, "- load average at start: {}", loadavg());
    let _ = writeln!(
        header,
        "- rsync: {}; cp: {}",
        tool_version("rsync"),
        tool_version("cp")
    );
    let _ = writeln!(
        header,
        "- {}; {} timed rounds per tool, interleaved, after one untimed warm-up \
         run of each tool (page cache warm for all){}",
        if wanted(Wl::W1) || wanted(Wl::W2) || wanted(Wl::W3) {
            format!("tree: {} (seed {})", spec.describe(), spec.seed)
        } else {
            "W4 only".to_string()
        },
        rounds,
        if flush {
            "; `sync` before every timed run; no tree is deleted before the end of the \
             benchmark (ext4 skips inodes deleted in the last 30 s when allocating, which makes \
             creating 20,000 files right after deleting 20,000 take ~13 s for every tool)"
        } else {
            ""
        }
    );
    let floor = measure(&Command::new("true"), &ctx.stderr_file())
        .map(|s| mib(s.maxrss_kib))
        .unwrap_or_else(|e| die(&e));
    let _ = writeln!(
        header,
        "- wall time: spawn to reap; CPU: user+sys; peak RSS: wait4 ru_maxrss (for rsync the \
         largest of its processes), measured through a small helper process whose floor is \
         {floor} (what `true` shows)"
    );
    eprintln!("{header}");

    let src = scratch.join("src");
    if wanted(Wl::W1) || wanted(Wl::W2) || wanted(Wl::W3) {
        let t = Instant::now();
        generate(&src, &spec).unwrap_or_else(|e| die(&format!("generate: {e}")));
        eprintln!(
            "generated {} in {}",
            spec.describe(),
            secs(t.elapsed().as_secs_f64())
        );
    }

    if flush {
        // Whatever was deleted on this filesystem just before (an earlier run's trees) would
        // slow down every tool's file creation for the next 30 s: let that window pass.
        eprintln!("waiting 35 s for ext4's recently-deleted-inode window to pass ...");
        std::thread::sleep(Duration::from_secs(35));
    }
    let mut done: Vec<Workload> = Vec::new();
    // The in-sync replica W2 and W3 start from: replwatch's own W1 result.
    let synced = scratch.join("synced");

    if wanted(Wl::W1) {
        done.push(w1(&ctx, &src, &synced, &spec, true));
    }
    if (wanted(Wl::W2) || wanted(Wl::W3)) && !synced.exists() {
        ctx.run(Tool::Replwatch, &src, &synced);
    }
    if wanted(Wl::W2) {
        done.push(w2(&ctx, &src, &synced));
    }
    if wanted(Wl::W3) {
        done.push(w3(&ctx, &src, &synced, &spec));
    }
    if !keep {
        remove_tree(&synced);
        remove_tree(&src);
    }
    if wanted(Wl::W5) {
        let (a, b) = w5(&ctx, &spec);
        done.push(a);
        done.push(b);
    }
    let mut live = None;
    if wanted(Wl::W4) {
        let (w1s, w2s, l) = w4(&ctx);
        done.push(w1s);
        done.push(w2s);
        live = Some(l);
    }

    let header = format!("{header}- load average at the end: {}\n", loadavg());
    println!("{}", report(&header, &done, live.as_deref()));
    if keep {
        let kept = scratch_dir.keep();
        eprintln!("kept {}", kept.display());
    }
}

fn tool_version(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// W1: everything into an empty replica.
fn w1(ctx: &Ctx, src: &Path, synced: &Path, spec: &TreeSpec, contents: bool) -> Workload {
    eprintln!("W1 initial: {} into an empty replica", spec.describe());
    let tools = [Tool::Replwatch, Tool::Rsync, Tool::Cp];
    let mut notes = Vec::new();
    let rows = interleaved(
        ctx,
        &tools,
        |t| {
            let dst = ctx.fresh_dst(&format!("w1-{}", t.name().replace(' ', "-")));
            if t == Tool::Rsync {
                std::fs::create_dir(&dst).unwrap_or_else(|e| die(&e.to_string()));
            }
            (src.to_path_buf(), dst)
        },
        |t, s, d| notes.push(verify(&format!("W1 {}", t.name()), s, d, contents)),
    );
    ctx.drop_last();
    // The in-sync pair for W2 and W3: replwatch's own result (one more, untimed, run).
    remove_tree(synced);
    ctx.run(Tool::Replwatch, src, synced);
    Workload {
        id: "W1",
        title: format!("W1 initial copy: {}, empty replica", spec.describe()),
        rows,
        notes,
    }
}

/// W2: nothing to do.
fn w2(ctx: &Ctx, src: &Path, synced: &Path) -> Workload {
    eprintln!("W2 no-change: the pair is already in sync");
    let mut notes = Vec::new();
    // Does rsync agree that replwatch's replica is in sync? (-i lists what it would change.)
    let out = Command::new("rsync")
        .args(["-a", "--delete", "-i"])
        .arg(slash(src))
        .arg(slash(synced))
        .output()
        .unwrap_or_else(|e| die(&format!("rsync: {e}")));
    let itemized: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    notes.push(if itemized.is_empty() {
        "W2: rsync -i finds nothing to change in replwatch's replica".to_string()
    } else {
        format!(
            "W2: rsync -i itemized {} changes in replwatch's replica, e.g. {:?}",
            itemized.len(),
            &itemized[..itemized.len().min(3)]
        )
    });
    let rows = interleaved(
        ctx,
        &[Tool::Replwatch, Tool::Rsync, Tool::Floor],
        |_| (src.to_path_buf(), synced.to_path_buf()),
        |_, _, _| {},
    );
    if let Some(s) = last_summary(&ctx.logs) {
        notes.push(format!(
            "W2: replwatch's last pass changed {} entries (want 0): {s}",
            changes(&s)
        ));
    }
    Workload {
        id: "W2",
        title: "W2 no change: the same pair, already in sync".to_string(),
        rows,
        notes,
    }
}

/// W3: 1 % rewritten, 1 % deleted, 1 % new, one big file appended.
fn w3(ctx: &Ctx, src: &Path, synced: &Path, spec: &TreeSpec) -> Workload {
    // The churned source is shared read-only by every run; each run gets a fresh copy of the
    // in-sync replica (cp -a, untimed): the same as giving each tool its own synced pair and
    // applying the identical seeded churn to its source.
    let churned = ctx.scratch.join("w3-src");
    remove_tree(&churned);
    cp_a(src, &churned);
    let st = churn(&churned, spec, 1.0, 1 << 20).unwrap_or_else(|e| die(&format!("churn: {e}")));
    let what = format!(
        "{} rewritten, {} deleted, {} new, {} MiB appended to one {} MiB file",
        st.rewritten,
        st.deleted,
        st.created,
        st.appended_bytes >> 20,
        spec.big_size >> 20
    );
    eprintln!("W3 churn: {what}");
    let mut notes = Vec::new();
    let rows = interleaved(
        ctx,
        &[Tool::Replwatch, Tool::Rsync],
        |_| {
            let dst = ctx.fresh_dst("w3-dst");
            cp_a(synced, &dst);
            (churned.clone(), dst)
        },
        |t, s, d| {
            notes.push(verify(&format!("W3 {}", t.name()), s, d, true));
            if t == Tool::Replwatch
                && let Some(s) = last_summary(&ctx.logs)
            {
                notes.push(format!("W3: replwatch's pass: {s}"));
            }
        },
    );
    if !ctx.keep {
        ctx.drop_last();
        if !ctx.flush {
            remove_tree(&churned);
        }
    }
    Workload {
        id: "W3",
        title: format!("W3 churn on the W1 tree: {what}"),
        rows,
        notes,
    }
}

/// W5: what keeping hard links, xattrs and ACLs costs. The W1 tree (its own copy) where
/// every 10th file has a second name in another directory, every 10th a `user.*` attribute
/// and every 20th an access ACL with a named user: replwatch as it runs by default and with
/// all three turned off, against `rsync -aHAX` and `rsync -a`, for an initial copy and a
/// no-change pass.
fn w5(ctx: &Ctx, spec: &TreeSpec) -> (Workload, Workload) {
    let src = ctx.scratch.join("w5-src");
    remove_tree(&src);
    generate(&src, spec).unwrap_or_else(|e| die(&format!("generate: {e}")));
    let decorated = decorate(&src, spec).unwrap_or_else(|e| die(&format!("decorate W5: {e}")));
    eprintln!("W5 fidelity: {decorated}");
    let tools = [
        Tool::Replwatch,
        Tool::ReplwatchBare,
        Tool::RsyncHax,
        Tool::Rsync,
    ];
    let mut notes = vec![format!("W5: {decorated}")];
    let rows = interleaved(
        ctx,
        &tools,
        |t| {
            let dst = ctx.fresh_dst(&format!("w5-{}", t.name().replace(' ', "-")));
            if matches!(t, Tool::Rsync | Tool::RsyncHax) {
                std::fs::create_dir(&dst).unwrap_or_else(|e| die(&e.to_string()));
            }
            (src.clone(), dst)
        },
        |t, _, d| {
            if matches!(t, Tool::Replwatch | Tool::RsyncHax) {
                notes.push(format!("W5 {}: {}", t.name(), fidelity(&src, d)));
            }
        },
    );
    ctx.drop_last();
    let copy = Workload {
        id: "W5/W1",
        title: format!("W5 initial copy with hard links, xattrs and ACLs: {decorated}"),
        rows,
        notes,
    };
    // No change: each tool's own in-sync replica, made untimed by the tool itself.
    let synced: Vec<(Tool, PathBuf)> = tools
        .iter()
        .map(|&t| {
            let d = ctx
                .scratch
                .join(format!("w5-synced-{}", t.name().replace(' ', "-")));
            remove_tree(&d);
            std::fs::create_dir(&d).unwrap_or_else(|e| die(&e.to_string()));
            ctx.run(t, &src, &d);
            (t, d)
        })
        .collect();
    let rows = interleaved(
        ctx,
        &tools,
        |t| {
            let d = synced.iter().find(|(u, _)| *u == t).map(|(_, d)| d.clone());
            (src.clone(), d.unwrap_or_else(|| die("no synced replica")))
        },
        |_, _, _| {},
    );
    for (_, d) in &synced {
        remove_tree(d);
    }
    remove_tree(&src);
    let same = Workload {
        id: "W5/W2",
        title: "W5 no change: each tool's own replica of the W5 tree, in sync".to_string(),
        rows,
        notes: Vec::new(),
    };
    (copy, same)
}

/// Give the tree of `spec` at `root` hard links, `user.*` attributes and ACLs; say how many.
fn decorate(root: &Path, spec: &TreeSpec) -> std::io::Result<String> {
    let dirs = spec.dir_paths();
    let (mut links, mut xattrs, mut acls) = (0, 0, 0);
    for i in 0..spec.files {
        let file = root.join(spec.file_path(&dirs, i));
        if i % 10 == 0 {
            let other = root
                .join(&dirs[(i / 10 + 1) % dirs.len()])
                .join(format!("link-{i}"));
            std::fs::hard_link(&file, other)?;
            links += 1;
        }
        if i % 10 == 5 {
            set_xattr(&file, "user.origin", format!("file {i}").as_bytes())?;
            xattrs += 1;
        }
        if i % 20 == 7 {
            set_xattr(&file, "system.posix_acl_access", &named_user_acl(1000))?;
            acls += 1;
        }
    }
    Ok(format!(
        "{}, plus {links} second names (hard links across directories), {xattrs} files with a \
         user.* attribute and {acls} with an ACL naming a user",
        spec.describe()
    ))
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let n = std::ffi::CString::new(name)?;
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// user::rw-, user:UID:rw-, group::r--, mask::rw-, other::r--
fn named_user_acl(uid: u32) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 6, uid),
        (4, 4, u32::MAX),
        (0x10, 6, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// Does `dst` keep the link structure and attributes of `src`? A one-line note.
fn fidelity(src: &Path, dst: &Path) -> String {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    let mut src_sets: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let mut bad_links = 0;
    let mut bad_attrs = 0;
    let mut files = 0;
    for e in walkdir_files(src) {
        let rel = e.strip_prefix(src).unwrap_or(&e).to_path_buf();
        let Ok(m) = std::fs::symlink_metadata(&e) else {
            continue;
        };
        if m.nlink() > 1 {
            src_sets
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
        }
        files += 1;
        for attr in ["user.origin", "system.posix_acl_access"] {
            if get_xattr(&e, attr) != get_xattr(&dst.join(&rel), attr) {
                bad_attrs += 1;
            }
        }
    }
    for names in src_sets.values() {
        let inos: std::collections::HashSet<u64> = names
            .iter()
            .filter_map(|n| std::fs::symlink_metadata(dst.join(n)).ok().map(|m| m.ino()))
            .collect();
        if inos.len() != 1 {
            bad_links += 1;
        }
    }
    format!(
        "{} of {} link sets kept as one inode, {} of {} files with every attribute kept",
        src_sets.len() - bad_links,
        src_sets.len(),
        files - bad_attrs.min(files),
        files
    )
}

fn walkdir_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// W4: a million files. W1 and W2 against rsync, cp and the floor, and live start-up.
fn w4(ctx: &Ctx) -> (Workload, Workload, String) {
    let spec = TreeSpec {
        // 1-4 KiB: one tmpfs page each, so a tree is ~5 GB of RAM rather than ~7.
        files: 1_000_000,
        dirs: 100_000,
        min_size: 1024,
        max_size: 4096,
        big_files: 0,
        big_size: 0,
        seed: 4242,
    };
    let src = ctx.scratch.join("w4-src");
    let t = Instant::now();
    generate(&src, &spec).unwrap_or_else(|e| die(&format!("generate: {e}")));
    eprintln!(
        "W4: generated {} in {}",
        spec.describe(),
        secs(t.elapsed().as_secs_f64())
    );
    let mut a = w1(ctx, &src, &ctx.scratch.join("w4-synced"), &spec, false);
    a.id = "W4/W1";
    a.title = format!("W4 initial copy at scale: {}", spec.describe());
    let synced = ctx.scratch.join("w4-synced");
    let mut b = w2(ctx, &src, &synced);
    b.id = "W4/W2";
    b.title = format!("W4 no change at scale: {}", spec.describe());
    let live = live_startup(ctx, &src, &synced, &spec);
    remove_tree(&synced);
    remove_tree(&src);
    (a, b, live)
}

/// How long live start-up waits idle before its first reconciliation, and how long of that
/// is measured as idle.
const RECONCILE_AFTER: Duration = Duration::from_secs(60);
const IDLE_WINDOW: Duration = Duration::from_secs(20);

/// Start live mode on the in-sync pair: time to "watching", memory while watching, CPU while
/// idle, and the CPU of one reconciliation (compare with W2's no-change pass).
fn live_startup(ctx: &Ctx, src: &Path, dst: &Path, spec: &TreeSpec) -> String {
    eprintln!("W4 live: start-up on the in-sync pair");
    let logs = ctx.scratch.join("w4-live-logs");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| run | to \"watching\" | inotify watches | VmRSS watching | per watched dir | VmHWM \
         | idle CPU (% of a core) | one reconciliation, CPU |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for run in 0..=ctx.rounds.min(3) {
        remove_tree(&logs);
        if ctx.flush {
            sync_all();
        }
        let started = Instant::now();
        let mut child = Command::new(&ctx.bin)
            .arg("-s")
            .arg(src)
            .arg("-r")
            .arg(dst)
            .arg("-l")
            .arg(&logs)
            .args([
                "-i",
                &format!("{}s", RECONCILE_AFTER.as_secs()),
                "-d",
                "1h",
                "-q",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| die(&format!("spawn: {e}")));
        let Some(at) = wait_for_log(
            &logs.join("replwatch.log"),
            "watching",
            Duration::from_secs(600),
            &mut child,
        ) else {
            stop_child(child, Duration::from_secs(5));
            die("live mode never logged \"watching\"");
        };
        let to_watching = at.duration_since(started).as_secs_f64();
        std::thread::sleep(Duration::from_secs(2));
        let pid = child.id();
        let rss = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
        let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
        let watches = inotify_watches(pid);
        // Idle: nothing changes, no reconciliation yet (the first is RECONCILE_AFTER after
        // the start). Then one reconciliation: the CPU from here to its `pass done` record.
        let idle_from = (Instant::now(), proc_sched_ns(pid).unwrap_or(0));
        std::thread::sleep(IDLE_WINDOW);
        let idle_to = (Instant::now(), proc_sched_ns(pid).unwrap_or(0));
        // Threads that end (each walk's lister) take their schedstat with them; the process's
        // own utime + stime keep it: used for the reconciliation.
        let cpu_before = proc_cpu(pid).unwrap_or_default();
        let idle_share = (idle_to.1 - idle_from.1) as f64
            / idle_to.0.duration_since(idle_from.0).as_nanos() as f64;
        let reconcile = wait_for_log(
            &logs.join("replwatch.log"),
            "trigger: reconcile",
            RECONCILE_AFTER * 3,
            &mut child,
        )
        .map(|at| {
            let spent = proc_cpu(pid).unwrap_or_default().saturating_sub(cpu_before);
            let idle_part = idle_share * at.duration_since(idle_to.0).as_secs_f64();
            (spent.as_secs_f64() - idle_part).max(0.0)
        });
        stop_child(child, Duration::from_secs(30));
        let dirs = (spec.dirs + 1) as f64; // + the root
        let label = if run == 0 {
            "warm-up".into()
        } else {
            run.to_string()
        };
        eprintln!(
            "    {label:>8} watching after {}, {} watches, VmRSS {}, VmHWM {}",
            secs(to_watching),
            thousands(watches as u64),
            mib(rss),
            mib(hwm)
        );
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {:.2} KiB | {} | {:.3} % | {} |",
            secs(to_watching),
            thousands(watches as u64),
            mib(rss),
            rss as f64 / dirs,
            mib(hwm),
            idle_share * 100.0,
            reconcile.map_or("-".to_string(), secs)
        );
    }
    let _ = writeln!(
        out,
        "\n(\"to watching\" is from spawn to the `watching` record: watches added, then a full \
         no-change pass. Kernel inotify memory (~1 KiB per watch) is not in VmRSS.)"
    );
    remove_tree(&logs);
    out
}

fn report(header: &str, done: &[Workload], live: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### replwatch benchmark\n");
    out.push_str(header);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| workload | tool | command | median wall | min - max | median CPU | peak RSS |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|");
    for w in done {
        for r in &w.rows {
            let walls = r.walls();
            let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = walls.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} - {} | {} | {} |",
                w.id,
                r.tool.name(),
                r.tool.shown(),
                secs(r.median_wall()),
                secs(lo),
                secs(hi),
                secs(r.median_cpu()),
                mib(r.peak_rss())
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| ratio of medians | wall | target | met | CPU time (user+sys) |"
    );
    let _ = writeln!(out, "|---|---:|---:|:---:|---:|");
    let targets: &[(&str, Tool, f64)] = &[
        ("W1", Tool::Rsync, 0.5),
        ("W1", Tool::Cp, 1.0),
        ("W2", Tool::Rsync, 0.5),
        ("W2", Tool::Floor, 1.2),
        ("W3", Tool::Rsync, 0.5),
    ];
    for w in done {
        for (a, b) in [
            (Tool::Replwatch, Tool::Rsync),
            (Tool::Replwatch, Tool::Cp),
            (Tool::Replwatch, Tool::Floor),
            (Tool::Replwatch, Tool::RsyncHax),
            (Tool::Replwatch, Tool::ReplwatchBare),
            (Tool::RsyncHax, Tool::Rsync),
        ] {
            let Some(r) = w.ratio(a, b) else {
                continue;
            };
            let base_id = w.id.trim_start_matches("W4/");
            let target = targets
                .iter()
                .find(|(id, t, _)| a == Tool::Replwatch && *id == base_id && *t == b)
                .map(|t| t.2);
            let _ = writeln!(
                out,
                "| {} {} / {} | {:.2}x | {} | {} | {:.2}x |",
                w.id,
                a.name(),
                b.name(),
                r,
                target.map_or("-".into(), |t| format!("<= {t:.1}x")),
                match target {
                    Some(t) if r <= t => "yes",
                    Some(_) => "**no**",
                    None => "-",
                },
                w.cpu_ratio(a, b).unwrap_or(f64::NAN)
            );
        }
    }
    let _ = writeln!(out);
    for w in done {
        let _ = writeln!(out, "- {}: {}", w.id, w.title);
        let (med, max) = w.foreign();
        let _ = writeln!(
            out,
            "  - other processes' share of the machine during the timed runs: median {:.0} %, \
             max {:.0} % (each run waited up to 10 s for it to fall below 10 %)",
            med * 100.0,
            max * 100.0
        );
        for n in &w.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }
    if let Some(l) = live {
        let _ = writeln!(out, "\nW4 live mode start-up on the in-sync pair:\n");
        out.push_str(l);
    }
    out
}
