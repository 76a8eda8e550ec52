//! Command-line flags, parsed by hand: there are three, and a test server
//! should not pull in an argument parser just for them.

use std::fmt;

pub const USAGE: &str = "usage: berth-testserver [--ignore-eof] [--stderr-on-start N] [--modern]";

/// How the process behaves around the MCP session.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Keep running after stdin closes, so berth's kill path gets exercised.
    pub ignore_eof: bool,
    /// Lines to write to stderr before serving, to test how startup noise is logged.
    pub stderr_on_start: u64,
    /// Also speak 2026-07-28 (answer `server/discover`); legacy-only otherwise.
    pub modern: bool,
    /// `--help` was given.
    pub help: bool,
}

/// A command line that could not be understood.
#[derive(Debug, PartialEq, Eq)]
pub enum FlagError {
    Unknown(String),
    MissingValue(&'static str),
    BadValue { flag: &'static str, value: String },
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(arg) => write!(f, "unknown argument {arg:?}"),
            Self::MissingValue(flag) => write!(f, "{flag} needs a value"),
            Self::BadValue { flag, value } => write!(f, "{flag}: {value:?} is not a non-negative integer"),
        }
    }
}

impl std::error::Error for FlagError {}

impl Flags {
    /// Parses the arguments after the program name. Both `--flag N` and
    /// `--flag=N` are accepted.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, FlagError> {
        const STDERR_ON_START: &str = "--stderr-on-start";
        let mut flags = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline_value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            match name {
                "--ignore-eof" if inline_value.is_none() => flags.ignore_eof = true,
                "--modern" if inline_value.is_none() => flags.modern = true,
                "-h" | "--help" if inline_value.is_none() => flags.help = true,
                STDERR_ON_START => {
                    let value = inline_value.or_else(|| args.next()).ok_or(FlagError::MissingValue(STDERR_ON_START))?;
                    flags.stderr_on_start =
                        value.parse().map_err(|_| FlagError::BadValue { flag: STDERR_ON_START, value })?;
                }
                _ => return Err(FlagError::Unknown(arg)),
            }
        }
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, FlagError> {
        Flags::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn no_flags_is_a_plain_legacy_server() {
        assert_eq!(parse(&[]), Ok(Flags::default()));
    }

    #[test]
    fn every_flag_in_both_spellings() {
        let want = Flags { ignore_eof: true, stderr_on_start: 7, modern: true, help: false };
        assert_eq!(parse(&["--ignore-eof", "--stderr-on-start", "7", "--modern"]), Ok(want));
        assert_eq!(parse(&["--stderr-on-start=7"]).map(|f| f.stderr_on_start), Ok(7));
    }

    #[test]
    fn mistakes_are_reported_not_ignored() {
        assert_eq!(parse(&["--stderr-on-start"]), Err(FlagError::MissingValue("--stderr-on-start")));
        assert!(matches!(parse(&["--stderr-on-start", "-1"]), Err(FlagError::BadValue { .. })));
        assert_eq!(parse(&["--ignore-eof=yes"]), Err(FlagError::Unknown("--ignore-eof=yes".into())));
        assert_eq!(parse(&["--frobnicate"]), Err(FlagError::Unknown("--frobnicate".into())));
    }
}
