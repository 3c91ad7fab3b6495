//! `latch env`: environments, named lists of secret names (never values).

use clap::Subcommand;

use crate::core::name::{Label, SecretName};

/// `latch env ...`
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create or replace an environment.
    Set {
        /// The environment's name.
        name: Label,
        /// Its secret names, comma-separated; the default allowlist of runs that use it.
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        secrets: Vec<SecretName>,
        /// What it is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Show one environment.
    Show {
        /// The environment's name.
        name: Label,
    },
    /// List environments.
    List,
    /// Delete an environment.
    Delete {
        /// The environment's name.
        name: Label,
        /// Do not ask; required when there is no terminal.
        #[arg(long)]
        force: bool,
    },
}

impl EnvCommand {
    /// The command's name, for messages.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::Set { .. } => "env set",
            Self::Show { .. } => "env show",
            Self::List => "env list",
            Self::Delete { .. } => "env delete",
        }
    }
}
