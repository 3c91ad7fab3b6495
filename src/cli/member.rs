//! `latch member`: team members and roles (DESIGN §3).

use clap::{Subcommand, ValueEnum};

use crate::core::name::Label;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, including managing owners.
    Owner,
    /// Everything but managing owners.
    Admin,
    /// Own personal keys and secrets; starts runs.
    Builder,
}

/// `latch member ...`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member and print their first personal API key once.
    Add {
        /// The member's user name.
        name: Label,
        /// Their role.
        #[arg(long, value_enum, default_value = "builder")]
        role: RoleArg,
    },
    /// List members and roles.
    List,
    /// Change a member's role.
    SetRole {
        /// The member's user name.
        name: Label,
        /// The new role.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Remove a member; their personal keys stop working.
    Remove {
        /// The member's user name.
        name: Label,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

impl MemberCommand {
    /// The command's name, for messages.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "member add",
            Self::List => "member list",
            Self::SetRole { .. } => "member set-role",
            Self::Remove { .. } => "member remove",
        }
    }
}
