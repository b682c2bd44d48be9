//! The command line as typed: raw clap values, validated later by `config`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

const ABOUT: &str =
    "Keep a replica folder an exact one-way mirror of a source folder, in near real time.";

const LONG_ABOUT: &str = "\
Keep a replica folder an exact one-way mirror of a source folder, in near real time.

replwatch watches SOURCE and mirrors every change into REPLICA within a fraction of a second, \
and runs a full reconciliation every --interval to repair anything the watcher missed. With \
--once it makes one full pass and exits (for cron, systemd timers or Task Scheduler).

What is preserved: the tree, entry types, file bytes, symlinks (as links, never followed), \
permission bits, modification times of files, directories and symlinks (to the nanosecond), \
empty directories, hard links within SRC, POSIX ACLs (access and default), extended attributes \
(user.*; as root also trusted.* and file capabilities), holes in sparse files, and owner and \
group when run as root. Extra entries in REPLICA are removed. Not preserved: access times, \
SELinux and other security labels (the replica's policy assigns them). \
Fifos, sockets and devices are skipped with a warning. Files are written to a temp file beside \
the target and renamed into place, so a reader never sees half a file.";

#[derive(Debug, Parser)]
#[command(
    name = "replwatch",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = crate::exit::HELP,
    after_long_help = concat!(
        "Examples:\n",
        "  replwatch -s ~/work -r /mnt/backup/work -l ~/.local/state/replwatch\n",
        "  replwatch -s ./src -r ./mirror -l ./logs --once\n",
        "  replwatch --fld_src ./a --fld_sync ./b --fld_log ./logs -i 5 -d 60   (minutes)\n",
        "  replwatch status -l ~/.local/state/replwatch   (what the running replwatch is doing)\n\n",
        crate::exit::exit_codes_text!()
    )
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Folder to mirror (read only, never changed). Alias: --fld_src.
    #[arg(short = 's', long = "source", alias = "fld_src", value_name = "SRC",
          required_unless_present_any = ["completions", "man"])]
    pub source: Option<PathBuf>,

    /// Folder kept identical to SRC (created if missing). Alias: --fld_sync.
    #[arg(
        short = 'r',
        long = "replica",
        alias = "fld_sync",
        value_name = "REPLICA",
        required_unless_present_any = ["completions", "man"]
    )]
    pub replica: Option<PathBuf>,

    /// Folder for replwatch.log (created if missing; not inside SRC or REPLICA). Alias: --fld_log.
    #[arg(
        short = 'l',
        long = "log-dir",
        alias = "fld_log",
        value_name = "LOGDIR",
        required_unless_present_any = ["completions", "man"]
    )]
    pub log_dir: Option<PathBuf>,

    /// Make one full pass and exit [default: off: live mode].
    #[arg(long)]
    pub once: bool,

    /// Time between full reconciliations in live mode, e.g. 30s, 5m; a bare number is minutes.
    #[arg(
        short = 'i',
        long,
        default_value = "1m",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub interval: String,

    /// How long live mode runs before exiting, e.g. 8h, 90 (minutes), or `forever`.
    #[arg(
        short = 'd',
        long,
        default_value = "1d",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub duration: String,

    /// How long after the first change of a burst it is mirrored, with everything else the
    /// burst changed meanwhile (live mode), e.g. 50ms.
    #[arg(
        long,
        default_value = "200ms",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub debounce: String,

    /// A burst is mirrored once SRC has been quiet this long, or --debounce after its first
    /// change, whichever comes first (live mode): an isolated change is mirrored within
    /// milliseconds, a long burst every --debounce. `--settle` as long as --debounce waits
    /// the whole --debounce every time.
    #[arg(
        long,
        default_value = "10ms",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub settle: String,

    /// Compare file contents (blake3) instead of size and mtime, like `rsync -c` [default: off].
    #[arg(long)]
    pub checksum: bool,

    /// fsync each copied file before renaming it into place (durable across power loss,
    /// slower) [default: off].
    #[arg(long)]
    pub fsync: bool,

    /// Copy each name of a hard-linked file separately instead of linking them in REPLICA as
    /// in SRC (`rsync -a` without -H) [default: off: hard links are kept].
    #[arg(long)]
    pub no_hard_links: bool,

    /// Leave extended attributes (user.*, and as root trusted.* and file capabilities) out
    /// [default: off: they are mirrored, like `rsync -X`].
    #[arg(long)]
    pub no_xattrs: bool,

    /// Leave POSIX ACLs out; the group permission bits then show what the owning group really
    /// had, never the ACL mask [default: off: ACLs are mirrored, like `rsync -A`].
    #[arg(long)]
    pub no_acls: bool,

    /// Allow a pass to empty a non-empty REPLICA because SRC is empty [default: off: an
    /// unmounted disk looks like an empty folder].
    #[arg(long)]
    pub allow_empty_source: bool,

    /// Parallel copy workers, e.g. `--workers 4` [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Print what a pass would do, one line per action, and change nothing, e.g.
    /// `--once -n` [default: off].
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Leave paths matching PATTERN alone on both sides (gitignore syntax; repeatable),
    /// e.g. `*.tmp`, `build/`, `/top-only`, `**/cache/**` [default: none].
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// Read exclude patterns from FILE, one per line (gitignore syntax, `#` comments), e.g.
    /// `--exclude-from ~/.replwatch-ignore` [default: none].
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,

    /// Refuse a pass that would remove more than N entries from REPLICA (removes nothing),
    /// e.g. `--max-delete 100` [default: no limit].
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,

    /// Keep what a pass would delete or overwrite in REPLICA/.replwatch-versions/ instead
    /// (moved there, named NAME~YYYYMMDD-HHMMSS.EXT in local time; live mode and --dry-run
    /// too). Alias: --backup (rsync's word; Syncthing calls it file versioning) [default: off].
    #[arg(long, alias = "backup")]
    pub versions: bool,

    /// With --versions: versions kept per file name, newest first; 0 keeps any number (only
    /// --versions-max-age prunes), e.g. `--keep-versions 10`.
    #[arg(long, value_name = "N", default_value_t = 5, requires = "versions")]
    pub keep_versions: usize,

    /// With --versions: remove versions older than this (by the time in their names), e.g.
    /// 7d, 12h, or `forever`; a bare number is minutes.
    #[arg(
        long,
        value_name = "TIME",
        default_value = "30d",
        requires = "versions",
        allow_hyphen_values = true
    )]
    pub versions_max_age: String,

    /// Poll SRC every INTERVAL instead of using inotify (network and FUSE filesystems), e.g.
    /// `--poll 5s`; `--poll` alone polls every 2s [default: off].
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s")]
    pub poll: Option<String>,

    /// Format of the logfile, e.g. `--log-format json` for one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Start a new logfile when replwatch.log would grow past SIZE (it becomes
    /// replwatch.log.1, ...), e.g. `--log-max-size 50MiB`; 0 never rotates (for logrotate's
    /// copytruncate).
    #[arg(long, value_name = "SIZE", default_value = "10MiB")]
    pub log_max_size: String,

    /// How many rotated logfiles (replwatch.log.1 ... .N) to keep; the oldest is removed,
    /// e.g. `--log-keep 10`.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub log_keep: u32,

    /// Write the console as JSON lines instead of text [default: off].
    #[arg(long)]
    pub console_json: bool,

    /// Progress bar on stderr: `auto` shows it when stderr is a terminal and -q is not
    /// given, e.g. `--progress never` under a supervisor.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,

    /// Print a shell completion script and exit, e.g. `--completions bash`.
    #[arg(long, value_enum, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit, e.g. `--man | man -l -`.
    #[arg(long, exclusive = true)]
    pub man: bool,

    /// More detail on the console: -v every change of a big pass (not only its first 20)
    /// and debug records, -vv trace [default: info, a summary per pass].
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors on the console (the logfile keeps everything).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Commands besides mirroring.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what the live replwatch writing to LOGDIR is doing: state, last pass, last
    /// change, failing entries, pending work. Exit 0: running and in sync; 3: running, not
    /// in sync (entries failing, SRC or REPLICA gone, first pass running); 1: no live
    /// replwatch behind the record.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The --log-dir of the replwatch to ask about. Alias: --fld_log.
    #[arg(
        short = 'l',
        long = "log-dir",
        alias = "fld_log",
        value_name = "LOGDIR"
    )]
    pub log_dir: PathBuf,

    /// Print the record as JSON (with `running` and `in_sync` added), for scripts.
    #[arg(long)]
    pub json: bool,
}
