//! The exit-code contract (DESIGN §6): what `latch` returns, as documented constants.
//!
//! `latch run` returns its child's status: the child's own code, or 128+N when the child died of
//! signal N. When latch itself fails it returns one of the codes below, chosen from the BSD
//! `sysexits.h` values where one fits so that shells and CI systems can tell them apart from a
//! child's failure. Every error type of the crate maps to a [`Failure`] through one exhaustive
//! `match`, and a [`Failure`] to its code through [`Failure::code`].

/// Success.
pub const OK: u8 = 0;
/// Bad command line (usage), or a cancelled prompt.
pub const USAGE: u8 = 2;
/// `--fail-on-leak`: the command exited 0 but something was masked.
pub const LEAK: u8 = 3;
/// A `required` secret is missing, or the platform refused the input (400, 422): `EX_DATAERR`.
pub const DATA_ERROR: u8 = 65;
/// The named object does not exist (404): `EX_NOINPUT`.
pub const MISSING: u8 = 66;
/// The platform is unreachable, or answers 429/5xx after the retries: `EX_UNAVAILABLE`.
pub const UNAVAILABLE: u8 = 69;
/// An internal error: `EX_SOFTWARE`.
pub const INTERNAL: u8 = 70;
/// A conflict: the object exists already or changed meanwhile (409, 412): `EX_CANTCREAT`.
pub const CONFLICT: u8 = 73;
/// Authentication refused, or the platform refused the request (403): `EX_NOPERM`.
pub const REFUSED: u8 = 77;
/// Configuration: a setting, file or variable is missing or malformed, an unknown environment
/// or identity, TLS trust, a refused name: `EX_CONFIG`.
pub const CONFIG: u8 = 78;
/// `--timeout` expired and the command was stopped (as `timeout(1)`).
pub const TIMEOUT: u8 = 124;
/// The command was found but cannot be executed (as a shell).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found (as a shell).
pub const NOT_FOUND: u8 = 127;
/// Added to a signal number when the child died of that signal.
pub const SIGNAL_BASE: u8 = 128;

/// The ways latch itself can fail, each with its own exit code. latch never exits 1 for a
/// failure of its own, so CI can tell latch from the command it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Bad command line.
    Usage,
    /// `--fail-on-leak` and a region was masked.
    Leak,
    /// A required secret is missing, or the input was refused.
    DataError,
    /// The named object does not exist.
    Missing,
    /// The platform cannot be reached, or is overloaded.
    Unavailable,
    /// A bug, an unexpected state, a malformed answer, or a failed system call.
    Internal,
    /// The object exists already or changed meanwhile.
    Conflict,
    /// The key was refused, or the request was not permitted.
    Refused,
    /// Bad configuration.
    Config,
    /// The run timed out.
    Timeout,
    /// The command cannot be executed.
    NotExecutable,
    /// The command does not exist.
    NotFound,
}

impl Failure {
    /// Every failure, for tables and tests.
    pub const ALL: [Self; 12] = [
        Self::Usage,
        Self::Leak,
        Self::DataError,
        Self::Missing,
        Self::Unavailable,
        Self::Internal,
        Self::Conflict,
        Self::Refused,
        Self::Config,
        Self::Timeout,
        Self::NotExecutable,
        Self::NotFound,
    ];

    /// The process exit code for this failure.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Usage => USAGE,
            Self::Leak => LEAK,
            Self::DataError => DATA_ERROR,
            Self::Missing => MISSING,
            Self::Unavailable => UNAVAILABLE,
            Self::Internal => INTERNAL,
            Self::Conflict => CONFLICT,
            Self::Refused => REFUSED,
            Self::Config => CONFIG,
            Self::Timeout => TIMEOUT,
            Self::NotExecutable => NOT_EXECUTABLE,
            Self::NotFound => NOT_FOUND,
        }
    }

    /// One line for the README's table: what the code means.
    #[must_use]
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Usage => "usage: unknown option, bad value, missing argument, cancelled prompt",
            Self::Leak => "`--fail-on-leak` and a region was masked",
            Self::DataError => {
                "a `required` secret is missing; the platform refused the input (400/422)"
            }
            Self::Missing => {
                "the named object does not exist (404), except an unknown environment in `latch run`"
            }
            Self::Unavailable => {
                "the platform is unreachable, or still answers 429/5xx after the retries"
            }
            Self::Internal => "internal error",
            Self::Conflict => "conflict: the object already exists or changed meanwhile (409, 412)",
            Self::Refused => {
                "authentication refused (invalid, mistyped, expired or revoked key) or the request refused (403, 400 `trigger_requires_user`)"
            }
            Self::Config => {
                "configuration: unknown environment or identity, bad URL, TLS trust, unreadable key file, refused name"
            }
            Self::Timeout => "`--timeout` expired; the command was stopped",
            Self::NotExecutable => "the command exists but cannot be executed",
            Self::NotFound => "the command was not found (or its `#!` interpreter is missing)",
        }
    }

    /// Its stable name, for `--json` errors: `usage`, `data_error`, `not_found`, …
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Leak => "leak",
            Self::DataError => "data_error",
            Self::Missing => "missing",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Conflict => "conflict",
            Self::Refused => "refused",
            Self::Config => "config",
            Self::Timeout => "timeout",
            Self::NotExecutable => "not_executable",
            Self::NotFound => "not_found",
        }
    }

    /// The failure a platform answer means once the client gave up retrying (DESIGN §6).
    #[must_use]
    pub fn of_answer(status: u16, code: &str) -> Self {
        match (status, code) {
            (_, "required_missing") => Self::DataError,
            (_, "unknown_environment" | "unknown_identity") => Self::Config,
            (_, "trigger_requires_user") | (401 | 403, _) => Self::Refused,
            (404, _) => Self::Missing,
            (409 | 412, _) => Self::Conflict,
            (429 | 500..=599, _) => Self::Unavailable,
            (400..=499, _) => Self::DataError,
            _ => Self::Internal,
        }
    }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It called `exit(code)`.
    Exited(i32),
    /// It was killed by signal `N`.
    Signaled(i32),
}

/// The launcher's exit code for a child that ended as `exit`: the code itself (as the kernel
/// keeps it, the low 8 bits), or 128+N for signal N.
#[must_use]
pub fn child_code(exit: ChildExit) -> u8 {
    match exit {
        // The kernel only keeps the low byte of an exit status; truncating is the contract.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        ChildExit::Exited(code) => (code & 0xff) as u8,
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        ChildExit::Signaled(signal) => SIGNAL_BASE.wrapping_add((signal & 0x7f) as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn child_codes_pass_through() {
        for code in 0..=255 {
            assert_eq!(i32::from(child_code(ChildExit::Exited(code))), code);
        }
        assert_eq!(
            child_code(ChildExit::Exited(256)),
            0,
            "only the low byte survives"
        );
        assert_eq!(child_code(ChildExit::Exited(-1)), 255);
    }

    #[test]
    fn signal_deaths_are_128_plus_n() {
        let table = [
            (1, 129),
            (2, 130),
            (3, 131),
            (9, 137),
            (15, 143),
            (31, 159),
            (64, 192),
        ];
        for (signal, want) in table {
            assert_eq!(
                child_code(ChildExit::Signaled(signal)),
                want,
                "signal {signal}"
            );
        }
    }

    #[test]
    fn launcher_codes_are_the_documented_ones() {
        let table = [
            (Failure::Usage, 2),
            (Failure::Leak, 3),
            (Failure::DataError, 65),
            (Failure::Missing, 66),
            (Failure::Unavailable, 69),
            (Failure::Internal, 70),
            (Failure::Conflict, 73),
            (Failure::Refused, 77),
            (Failure::Config, 78),
            (Failure::Timeout, 124),
            (Failure::NotExecutable, 126),
            (Failure::NotFound, 127),
        ];
        assert_eq!(table.len(), Failure::ALL.len());
        for (failure, code) in table {
            assert_eq!(failure.code(), code, "{failure:?}");
            assert!(!failure.meaning().is_empty());
        }
        let distinct: HashSet<u8> = Failure::ALL.iter().map(|f| f.code()).collect();
        assert_eq!(distinct.len(), Failure::ALL.len(), "codes are distinct");
        assert!(!distinct.contains(&OK));
        assert!(!distinct.contains(&1), "1 is the command's, never latch's");
        let names: HashSet<&str> = Failure::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Failure::ALL.len(), "names are distinct");
        assert_eq!(Failure::NotFound.name(), "not_found");
    }

    #[test]
    fn platform_answers_map_to_the_table() {
        let table = [
            (400, "invalid_name", Failure::DataError),
            (422, "required_missing", Failure::DataError),
            (400, "trigger_requires_user", Failure::Refused),
            (401, "unauthorized", Failure::Refused),
            (403, "key_cannot_manage", Failure::Refused),
            (404, "unknown_environment", Failure::Config),
            (404, "unknown_identity", Failure::Config),
            (404, "unknown_secret", Failure::Missing),
            (409, "name_conflict", Failure::Conflict),
            (412, "precondition_failed", Failure::Conflict),
            (429, "rate_limited", Failure::Unavailable),
            (503, "database_unavailable", Failure::Unavailable),
            (500, "internal", Failure::Unavailable),
            (302, "", Failure::Internal),
        ];
        for (status, code, want) in table {
            assert_eq!(Failure::of_answer(status, code), want, "{status} {code}");
        }
    }
}
