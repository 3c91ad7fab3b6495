//! The launch profile: `latch -vv run` logs how long each phase of a launch took (argument
//! parsing, hardening, signals, the resolve request, the plan with its masking automaton, the
//! start of the command, its run, the drain of its output, the end report). BENCHMARKS.md's
//! launch profile is read from these lines. Nothing is measured unless debug logging is on.

use std::sync::OnceLock;
use std::time::Instant;

/// When `main` started, set once by [`mark_main`].
static MAIN: OnceLock<Instant> = OnceLock::new();

/// Records the moment `main` starts, so the first phase includes argument parsing.
pub fn mark_main() {
    let _ = MAIN.set(Instant::now());
}

/// The clock of one launch's phases.
pub(super) struct Phases {
    last: Option<Instant>,
}

impl Phases {
    /// Starts timing at `main`'s start when known, else now; off unless debug logging is on.
    pub(super) fn start() -> Self {
        let last = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| MAIN.get().copied().unwrap_or_else(Instant::now));
        Self { last }
    }

    /// Starts timing now (the parts of one phase); off unless debug logging is on.
    pub(super) fn now() -> Self {
        Self {
            last: tracing::enabled!(tracing::Level::DEBUG).then(Instant::now),
        }
    }

    /// Logs the time since the previous mark as the phase `name`.
    pub(super) fn mark(&mut self, name: &str) {
        if let Some(last) = self.last {
            let now = Instant::now();
            tracing::debug!(
                "launch phase {name}: {:.2} ms",
                (now - last).as_secs_f64() * 1000.0
            );
            self.last = Some(now);
        }
    }
}
