//! `latch identity`: agent identities and the team secrets reserved for them.

use clap::Subcommand;

use crate::core::name::{Label, SecretName};

/// `latch identity ...`
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create or replace an identity; its team secrets become reserved for it.
    Set {
        /// The identity's name.
        name: Label,
        /// Team secret names attached to it, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        secrets: Vec<SecretName>,
        /// What it is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Show one identity.
    Show {
        /// The identity's name.
        name: Label,
    },
    /// List identities.
    List,
    /// Delete an identity.
    Delete {
        /// The identity's name.
        name: Label,
        /// Do not ask; required when there is no terminal.
        #[arg(long)]
        force: bool,
    },
}

impl IdentityCommand {
    /// The command's name, for messages.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::Set { .. } => "identity set",
            Self::Show { .. } => "identity show",
            Self::List => "identity list",
            Self::Delete { .. } => "identity delete",
        }
    }
}
