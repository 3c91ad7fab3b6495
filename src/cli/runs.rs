//! `latch runs` and `latch audit`: the run records and the audit log (never values).

use clap::{Args, Subcommand};

/// `latch runs ...`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs (builders see their own).
    List {
        /// At most this many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one run: who, trigger, delivered and missing names, exit status, masked counts.
    Show {
        /// The run id.
        id: String,
    },
}

impl RunsCommand {
    /// The command's name, for messages.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::List { .. } => "runs list",
            Self::Show { .. } => "runs show",
        }
    }
}

/// `latch audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}
