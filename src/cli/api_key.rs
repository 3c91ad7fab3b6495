//! `latch api-key`: personal and team API keys (DESIGN §4, §10). A raw key is printed once.

use clap::{Args, Subcommand};

use crate::core::duration::Expiry;
use crate::core::name::Label;

/// Which kind of key to create.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct KindArg {
    /// A team key: not tied to any user (owners and admins).
    #[arg(long)]
    pub team: bool,
    /// A personal key: acts as you.
    #[arg(long)]
    pub personal: bool,
}

/// `latch api-key ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it once.
    Create {
        /// A name that says where the key is used.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        kind: KindArg,
        /// Expiry: 1d, 30d, 90d, never, or a duration such as 90s, 15m, 12h.
        #[arg(long, default_value = "90d", value_name = "DUR|never")]
        expires: Expiry,
        /// Bind a team key to an agent identity: its runs execute as that identity.
        #[arg(long, conflicts_with = "personal", value_name = "IDENTITY")]
        identity: Option<Label>,
    },
    /// List keys: name, preview, scope, created, last used, expires.
    List,
    /// Revoke a key; it is refused at once.
    Revoke {
        /// The key id (8 characters, as listed).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

impl ApiKeyCommand {
    /// The command's name, for messages.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "api-key create",
            Self::List => "api-key list",
            Self::Revoke { .. } => "api-key revoke",
        }
    }
}
