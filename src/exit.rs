//! Exit codes, decided in one place and documented in `--help` and the README.

use std::process::ExitCode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 0: the replica mirrors the source (live mode: nothing known not mirrored at the end).
    Success,
    /// 1: a fatal error stopped the run (source vanished at start, replica unusable).
    Fatal,
    /// 2: bad command-line input; nothing was written.
    BadInput,
    /// 3: the run finished but some entries could not be mirrored (see the log).
    Partial,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Fatal => 1,
            Outcome::BadInput => 2,
            Outcome::Partial => 3,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(o.code())
    }
}

/// The exit-code text, as a literal so `--help` (built with `concat!`) and `-h` share it.
macro_rules! exit_codes_text {
    () => {
        "Exit codes:
  0  success: the replica mirrors the source (live mode: nothing is known not mirrored when
     --duration ends or Ctrl-C/SIGTERM stops it)
  1  fatal error: the source vanished before a --once pass, or the replica could not be used
  2  bad input: invalid flags or folders; nothing was written
  3  partial: some entries could not be mirrored (each is in the log), a guard refused the
     pass (empty source, --max-delete), or --once was interrupted; live mode: entries still
     failing, or SRC/REPLICA unavailable, when the run ends
`replwatch status`: 0 running and in sync, 3 running but not in sync (entries failing,
  SRC/REPLICA gone, first pass running), 1 no live replwatch behind the record"
    };
}
pub(crate) use exit_codes_text;

/// The text shown in `--help` and `-h`.
pub const HELP: &str = exit_codes_text!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Outcome::Success,
            Outcome::Fatal,
            Outcome::BadInput,
            Outcome::Partial,
        ];
        let mut codes: Vec<u8> = all.iter().map(|o| o.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), 4);
    }
}
