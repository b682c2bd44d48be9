//! The validated configuration: canonical roots and parsed durations.
//!
//! Everything a user can get wrong on the command line is caught here, before anything is
//! written, with one line that names the problem.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::cli::{Cli, LogFormat, Progress};
use crate::duration;
use crate::exclude::Excludes;
use crate::versions::Retention;

#[derive(Clone, Debug)]
pub struct Config {
    pub source: PathBuf,
    pub replica: PathBuf,
    pub log_dir: PathBuf,
    pub once: bool,
    pub interval: Duration,
    /// `None`: run until stopped.
    pub duration: Option<Duration>,
    pub debounce: Duration,
    /// A burst is mirrored once SRC was quiet this long (or `debounce` after it began).
    pub settle: Duration,
    pub checksum: bool,
    pub fsync: bool,
    pub hard_links: bool,
    pub xattrs: bool,
    pub acls: bool,
    pub allow_empty_source: bool,
    pub workers: usize,
    /// -1 quiet, 0 normal, 1 debug, 2 trace.
    pub verbosity: i8,
    pub dry_run: bool,
    /// Gitignore-style patterns, from --exclude and --exclude-from, in order.
    pub excludes: Excludes,
    pub max_delete: Option<u64>,
    /// `Some(interval)`: poll instead of inotify.
    pub poll: Option<Duration>,
    pub log_format: LogFormat,
    /// Rotate the logfile past this many bytes; 0: never.
    pub log_max_size: u64,
    /// Rotated logfiles kept.
    pub log_keep: u32,
    pub console_json: bool,
    pub progress: bool,
    /// `--versions`: keep what passes delete or overwrite, with this retention.
    pub versions: Option<Retention>,
}

/// A bad command line: one message, exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        let opt = |name: &str, v: &str| {
            duration::parse(v).map_err(|e| ConfigError(format!("--{name}: {e}")))
        };
        let interval = opt("interval", &cli.interval)?;
        let debounce = opt("debounce", &cli.debounce)?;
        let settle = opt("settle", &cli.settle)?;
        let duration = duration::parse_or_forever(&cli.duration)
            .map_err(|e| ConfigError(format!("--duration: {e}")))?;

        let versions = if cli.versions {
            Some(Retention {
                keep: cli.keep_versions,
                max_age: duration::parse_or_forever(&cli.versions_max_age)
                    .map_err(|e| ConfigError(format!("--versions-max-age: {e}")))?,
            })
        } else {
            None
        };
        let log_max_size = crate::size::parse(&cli.log_max_size)
            .map_err(|e| ConfigError(format!("--log-max-size: {e}")))?;
        let poll = match &cli.poll {
            Some(p) => Some(opt("poll", p)?),
            None => None,
        };
        let excludes = Excludes::new(&read_excludes(cli)?)
            .map_err(|e| ConfigError(format!("--exclude: {e}")))?;
        let (Some(cli_source), Some(cli_replica), Some(cli_log_dir)) =
            (&cli.source, &cli.replica, &cli.log_dir)
        else {
            return bad("--source, --replica and --log-dir are required");
        };
        let source = resolve(cli_source)
            .map_err(|e| ConfigError(format!("source folder {}: {e}", cli_source.display())))?;
        match std::fs::metadata(&source) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return bad(format!(
                    "source folder does not exist: {}",
                    cli_source.display()
                ));
            }
            Err(e) => return bad(format!("source folder {}: {e}", cli_source.display())),
            Ok(m) if !m.is_dir() => {
                return bad(format!(
                    "source is not a directory: {}",
                    cli_source.display()
                ));
            }
            Ok(_) => {}
        }
        if let Err(e) = std::fs::read_dir(&source) {
            return bad(format!(
                "cannot read source folder {}: {e}",
                cli_source.display()
            ));
        }

        let replica = resolve(cli_replica)
            .map_err(|e| ConfigError(format!("replica folder {}: {e}", cli_replica.display())))?;
        if let Ok(m) = std::fs::metadata(&replica)
            && !m.is_dir()
        {
            return bad(format!(
                "replica exists and is not a directory: {}",
                cli_replica.display()
            ));
        }
        if replica == source {
            return bad(format!(
                "replica and source are the same folder: {}",
                source.display()
            ));
        }
        if replica.starts_with(&source) {
            return bad(format!(
                "replica {} is inside source {}: it would mirror itself",
                replica.display(),
                source.display()
            ));
        }
        if source.starts_with(&replica) {
            return bad(format!(
                "source {} is inside replica {}: mirroring would delete it",
                source.display(),
                replica.display()
            ));
        }

        let log_dir = resolve(cli_log_dir)
            .map_err(|e| ConfigError(format!("log folder {}: {e}", cli_log_dir.display())))?;
        if log_dir.starts_with(&source) {
            return bad(format!(
                "log folder {} is inside source {}: the log would be mirrored and feed the watcher",
                log_dir.display(),
                source.display()
            ));
        }
        if log_dir.starts_with(&replica) {
            return bad(format!(
                "log folder {} is inside replica {}: mirroring would delete it",
                log_dir.display(),
                replica.display()
            ));
        }

        let workers = match cli.workers {
            Some(0) => return bad("--workers must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        Ok(Config {
            source,
            replica,
            log_dir,
            once: cli.once,
            interval,
            duration,
            debounce,
            settle,
            checksum: cli.checksum,
            fsync: cli.fsync,
            hard_links: !cli.no_hard_links,
            xattrs: !cli.no_xattrs,
            acls: !cli.no_acls,
            allow_empty_source: cli.allow_empty_source,
            workers,
            verbosity: if cli.quiet {
                -1
            } else {
                cli.verbose.min(2) as i8
            },
            dry_run: cli.dry_run,
            excludes,
            max_delete: cli.max_delete,
            poll,
            log_format: cli.log_format,
            log_max_size,
            log_keep: cli.log_keep,
            console_json: cli.console_json,
            progress: match cli.progress {
                Progress::Always => true,
                Progress::Never => false,
                Progress::Auto => {
                    !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())
                }
            },
            versions,
        })
    }
}

/// Patterns from `--exclude` and the lines of each `--exclude-from` file.
fn read_excludes(cli: &Cli) -> Result<Vec<String>, ConfigError> {
    let mut out = cli.exclude.clone();
    for f in &cli.exclude_from {
        let text = std::fs::read_to_string(f)
            .map_err(|e| ConfigError(format!("--exclude-from {}: {e}", f.display())))?;
        out.extend(
            text.lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(out)
}

/// An absolute, canonical form of `path`, which need not exist yet: the longest existing
/// ancestor is canonicalised (resolving symlinks) and the rest appended.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut missing = Vec::new();
    let mut cur = abs.as_path();
    loop {
        match cur.canonicalize() {
            Ok(base) => {
                let mut out = base;
                for c in missing.iter().rev() {
                    out.push(c);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match cur.components().next_back() {
                    Some(Component::Normal(name)) => missing.push(name.to_owned()),
                    Some(Component::CurDir) => {}
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "cannot resolve '..' below a folder that does not exist",
                        ));
                    }
                }
                cur = cur.parent().ok_or(e)?;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_handles_missing_tails() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        assert_eq!(resolve(&t.path().join("a/b")).unwrap(), base.join("a/b"));
        assert_eq!(resolve(&t.path().join("./a")).unwrap(), base.join("a"));
        assert!(resolve(&t.path().join("x/../y")).is_err());
    }

    #[test]
    fn resolve_follows_symlinked_ancestors() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        assert_eq!(
            resolve(&base.join("link/new")).unwrap(),
            base.join("real/new")
        );
    }
}
