//! `latch secret`: write-only secrets (DESIGN §10). A value is never accepted as a plain
//! argument: it comes from a file, stdin (`-`) or a no-echo prompt.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::core::name::SecretName;

/// Which scope a secret command acts on.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArg {
    /// The team scope (owners and admins).
    #[arg(long)]
    pub team: bool,
    /// Your personal scope.
    #[arg(long)]
    pub personal: bool,
}

/// `latch secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret. Without --value-file the value is read from a no-echo prompt.
    Create {
        #[command(flatten)]
        scope: ScopeArg,
        /// The secret's name: the environment variable it is injected as.
        name: SecretName,
        /// Read the value from this file, or from stdin with `-`.
        #[arg(long, value_name = "PATH|-")]
        value_file: Option<PathBuf>,
        /// What the secret is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Update a secret's value and/or description.
    Update {
        #[command(flatten)]
        scope: ScopeArg,
        /// The secret's name.
        name: SecretName,
        /// Prompt (no echo) for a new value.
        #[arg(long, conflicts_with = "value_file")]
        value: bool,
        /// Read the new value from this file, or from stdin with `-`.
        #[arg(long, value_name = "PATH|-")]
        value_file: Option<PathBuf>,
        /// A new description.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Delete a secret (asks for confirmation on a terminal).
    Delete {
        #[command(flatten)]
        scope: ScopeArg,
        /// The secret's name.
        name: SecretName,
        /// Do not ask; required when there is no terminal.
        #[arg(long)]
        force: bool,
    },
    /// List secret metadata: NAME  SCOPE  LAST UPDATED (never values).
    List {
        /// Include every member's personal secret names (owners and admins).
        #[arg(long)]
        all: bool,
    },
}

impl SecretCommand {
    /// The command's name, for messages.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "secret create",
            Self::Update { .. } => "secret update",
            Self::Delete { .. } => "secret delete",
            Self::List { .. } => "secret list",
        }
    }
}
