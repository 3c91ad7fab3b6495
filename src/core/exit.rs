//! The exit-code contract (DESIGN §6): what `latch` returns, as documented constants.
//!
//! `latch run` returns its child's status: the child's own code, or 128+N when the child died of
//! signal N. When latch itself fails it returns one of the codes below, chosen from the BSD
//! `sysexits.h` values where one fits so that shells and CI systems can tell them apart from a
//! child's failure. Every error type of the crate maps to a [`Failure`] through one exhaustive
//! `match`, and a [`Failure`] to its code through [`Failure::code`].

/// Success.
pub const OK: u8 = 0;
/// The platform refused the request: not permitted, not found, or a conflict.
pub const REJECTED: u8 = 1;
/// Bad command line (usage).
pub const USAGE: u8 = 2;
/// A `required` secret is missing; the command was not started (`EX_DATAERR`).
pub const REQUIRED_MISSING: u8 = 65;
/// The platform is unreachable, after bounded retries (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// An internal error (`EX_SOFTWARE`).
pub const INTERNAL: u8 = 70;
/// The platform refused the API key: invalid, expired or revoked (`EX_NOPERM`).
pub const AUTH_REFUSED: u8 = 77;
/// Configuration error: missing or malformed settings, files or variables (`EX_CONFIG`).
pub const CONFIG: u8 = 78;
/// `--timeout` expired and the command was stopped (as `timeout(1)`).
pub const TIMEOUT: u8 = 124;
/// The command was found but cannot be executed (as a shell).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found (as a shell).
pub const NOT_FOUND: u8 = 127;
/// Added to a signal number when the child died of that signal.
pub const SIGNAL_BASE: u8 = 128;

/// The ways latch itself can fail, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The platform refused the request (permission, not found, conflict).
    Rejected,
    /// Bad command line.
    Usage,
    /// A required secret is missing.
    RequiredMissing,
    /// The platform cannot be reached.
    Unavailable,
    /// A bug, an unexpected state, a malformed answer, or a failed system call.
    Internal,
    /// The API key was refused.
    AuthRefused,
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
    pub const ALL: [Self; 10] = [
        Self::Rejected,
        Self::Usage,
        Self::RequiredMissing,
        Self::Unavailable,
        Self::Internal,
        Self::AuthRefused,
        Self::Config,
        Self::Timeout,
        Self::NotExecutable,
        Self::NotFound,
    ];

    /// The process exit code for this failure.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Rejected => REJECTED,
            Self::Usage => USAGE,
            Self::RequiredMissing => REQUIRED_MISSING,
            Self::Unavailable => UNAVAILABLE,
            Self::Internal => INTERNAL,
            Self::AuthRefused => AUTH_REFUSED,
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
            Self::Rejected => {
                "the platform refused the request: not permitted, not found, or a conflict"
            }
            Self::Usage => "usage error: bad flags or arguments",
            Self::RequiredMissing => {
                "a `--require`d secret is missing; the command was not started"
            }
            Self::Unavailable => "the platform is unreachable (after bounded retries)",
            Self::Internal => {
                "internal error: a malformed answer from the platform, a failed system call"
            }
            Self::AuthRefused => "the API key was refused: invalid, expired or revoked",
            Self::Config => {
                "configuration error: a setting, file or variable is missing or malformed"
            }
            Self::Timeout => "`--timeout` expired; the command was stopped",
            Self::NotExecutable => "the command exists but cannot be executed",
            Self::NotFound => "the command was not found on PATH",
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
            (Failure::Rejected, 1),
            (Failure::Usage, 2),
            (Failure::RequiredMissing, 65),
            (Failure::Unavailable, 69),
            (Failure::Internal, 70),
            (Failure::AuthRefused, 77),
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
    }
}
