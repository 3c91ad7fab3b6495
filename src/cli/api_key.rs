//! `latch api-key`: personal and team API keys (DESIGN §4, §10). A raw key is printed once.

use clap::{Args, Subcommand};
use reqwest::Method;

use super::{Error, Global, context, messages};
use crate::api::{CreateKey, CreatedKey, KeyInfo};
use crate::core::apikey::{ApiKey, KeyId, KeyKind};
use crate::core::duration::Expiry;
use crate::core::name::Label;
use crate::core::perm::Capability;
use crate::core::time::relative;

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

/// What the new key may do (DESIGN §3). Without either: a personal key manages, a team key
/// runs.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct CapabilityArg {
    /// Everything the role allows (for a team key: owners and admins; never with --identity).
    #[arg(long, conflicts_with = "identity")]
    pub manage: bool,
    /// Only start runs, finish and read its own runs, whoami: what an agent needs.
    #[arg(long)]
    pub run_only: bool,
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
        /// Expiry: 1d, 30d, 90d, never, or a duration such as 90s, 15m, 12h, 2w, 1y.
        #[arg(long, default_value = "90d", value_name = "DUR|never")]
        expires: Expiry,
        /// Bind a team key to an agent identity: its runs execute as that identity (such a key
        /// is always run-only).
        #[arg(long, conflicts_with = "personal", value_name = "IDENTITY")]
        identity: Option<Label>,
        #[command(flatten)]
        capability: CapabilityArg,
    },
    /// List keys: name, preview, kind, capability, user, identity, creator, times, status.
    List,
    /// Revoke a key; it is refused at once.
    Revoke {
        /// The key id (8 characters, as `latch api-key list` shows), or the whole key.
        #[arg(value_name = "ID|KEY")]
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `latch api-key` command.
///
/// # Errors
/// [`Error`] from the client or a refused confirmation.
pub(crate) async fn run(command: ApiKeyCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    match command {
        ApiKeyCommand::Create {
            name,
            kind,
            expires,
            identity,
            capability,
        } => {
            let capability = if capability.manage {
                Some(Capability::Manage)
            } else if capability.run_only {
                Some(Capability::Run)
            } else {
                None
            };
            let body = CreateKey {
                name,
                kind: if kind.team {
                    KeyKind::Team
                } else {
                    KeyKind::Personal
                },
                expires: Some(expires.to_string()),
                identity,
                capability,
            };
            let created: CreatedKey = client
                .call(Method::POST, "v1/api-keys", Some(&body))
                .await?;
            if global.json {
                context::print_json(&created)?;
            } else {
                let expiry = created.info.expires_at.map_or_else(
                    || "never expires".to_owned(),
                    |at| format!("expires {}", relative(at, context::now())),
                );
                messages::note(&format!(
                    "created {} {} key `{}` (id {}, {expiry}); it is shown once — store it now:",
                    created.info.kind, created.info.capability, created.info.name, created.info.id
                ));
                context::outln!("{}", created.key)?;
            }
        }
        ApiKeyCommand::List => {
            let keys: Vec<KeyInfo> = client
                .call::<_, ()>(Method::GET, "v1/api-keys", None)
                .await?;
            if global.json {
                context::print_json(&keys)?;
            } else {
                context::out(&key_table(&keys, context::now()))?;
            }
        }
        ApiKeyCommand::Revoke { id, yes } => {
            let id = key_id(&id)?;
            context::confirm(
                &format!("revoke key {id}? Anything using it stops working at once."),
                yes,
                "--yes",
            )?;
            client
                .call_empty::<()>(Method::DELETE, &format!("v1/api-keys/{id}"), None)
                .await?;
            if !global.json {
                context::outln!("revoked key {id}")?;
            }
        }
    }
    Ok(0)
}

/// The key id of `text`: an id as listed, or a whole key (checked offline, never quoted back).
fn key_id(text: &str) -> Result<KeyId, Error> {
    let text = text.trim();
    if text.starts_with(KeyKind::Personal.prefix()) || text.starts_with(KeyKind::Team.prefix()) {
        return ApiKey::parse(text)
            .map(|key| key.id())
            .map_err(|e| Error::Usage(e.to_string()));
    }
    KeyId::try_from(text.to_owned()).map_err(|_| {
        Error::Usage(
            "that is neither a key id (8 letters and digits, as `latch api-key list` shows) nor a whole key (latch_p_… or latch_t_…)".into(),
        )
    })
}

fn key_table(keys: &[KeyInfo], now: i64) -> String {
    let when =
        |at: Option<i64>, none: &str| at.map_or_else(|| none.to_owned(), |t| relative(t, now));
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let status = if k.revoked_at.is_some() {
                "revoked"
            } else if k.expires_at.is_some_and(|at| at <= now) {
                "expired"
            } else {
                "active"
            };
            vec![
                k.id.clone(),
                k.name.clone(),
                k.preview.clone(),
                k.kind.to_string(),
                k.capability.to_string(),
                k.user.clone().unwrap_or_else(|| "-".to_owned()),
                k.identity.clone().unwrap_or_else(|| "-".to_owned()),
                k.created_by.clone(),
                relative(k.created_at, now),
                when(k.last_used_at, "never"),
                when(k.expires_at, "never"),
                status.to_owned(),
            ]
        })
        .collect();
    context::table(
        &[
            "ID",
            "NAME",
            "PREVIEW",
            "KIND",
            "CAPABILITY",
            "USER",
            "IDENTITY",
            "CREATED BY",
            "CREATED",
            "LAST USED",
            "EXPIRES",
            "STATUS",
        ],
        &rows,
    )
}
