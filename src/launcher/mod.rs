//! The launcher's IO side (DESIGN §6): everything between a resolved run and the child's exit.
//!
//! - [`hygiene`] and [`alloc`]: the process's own memory hygiene, taken first;
//! - [`signals`]: signals blocked before any thread starts, read from a `signalfd`;
//! - [`files`]: `--secret-file` files in a private directory removed at the end;
//! - [`child`]: the one point where a plan becomes a process;
//! - [`pty`]: the pseudo-terminal mode;
//! - [`pump`]: a stream through the scrubber (also used by `latch scrub`);
//! - [`supervise`]: the loop that owns the child's life.
//!
//! The launcher never calls the HTTP client: `cli` resolves the run, hands the launcher a plan,
//! and reports the outcome.

pub mod alloc;
pub mod child;
pub mod files;
pub mod hygiene;
pub mod pty;
pub mod pump;
pub mod signals;
pub mod supervise;
