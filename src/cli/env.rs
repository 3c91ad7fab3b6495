//! `latch env`: environments, named lists of secret names (never values).

use clap::Subcommand;

use super::lists::{self, Kind, Op};
use super::{Error, Global};

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

/// Runs a `latch env` command.
///
/// # Errors
/// [`Error`] from the client or a refused confirmation.
pub(crate) async fn run(command: EnvCommand, global: &Global) -> Result<u8, Error> {
    let op = match command {
        EnvCommand::Set {
            name,
            secrets,
            description,
        } => Op::Set {
            name,
            secrets,
            description,
        },
        EnvCommand::Show { name } => Op::Show { name },
        EnvCommand::List => Op::List,
        EnvCommand::Delete { name, force } => Op::Delete { name, force },
    };
    lists::run(Kind::Environment, op, global).await
}
