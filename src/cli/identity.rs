//! `latch identity`: agent identities and the team secrets reserved for them.

use clap::Subcommand;

use super::lists::{self, Kind, Op};
use super::{Error, Global};

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

/// Runs a `latch identity` command.
///
/// # Errors
/// [`Error`] from the client or a refused confirmation.
pub(crate) async fn run(command: IdentityCommand, global: &Global) -> Result<u8, Error> {
    let op = match command {
        IdentityCommand::Set {
            name,
            secrets,
            description,
        } => Op::Set {
            name,
            secrets,
            description,
        },
        IdentityCommand::Show { name } => Op::Show { name },
        IdentityCommand::List => Op::List,
        IdentityCommand::Delete { name, force } => Op::Delete { name, force },
    };
    lists::run(Kind::Identity, op, global).await
}
