//! `latch member`: team members and roles (DESIGN §3).

use clap::{Subcommand, ValueEnum};
use reqwest::Method;

use super::{Error, Global, context, messages};
use crate::api::{AddMember, AddedMember, MemberInfo, RemovedMember, SetRole};
use crate::core::duration::Expiry;
use crate::core::name::Label;
use crate::core::perm::Role;
use crate::core::time::relative;

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
        /// When their first key expires: they should make a key of their own with it.
        #[arg(long, default_value = "7d", value_name = "DUR|never")]
        expires: Expiry,
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
    /// Remove a member for good: their personal keys are revoked and their personal secrets
    /// deleted; adding the name again makes a new member who inherits nothing.
    Remove {
        /// The member's user name.
        name: Label,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Owner => Self::Owner,
            RoleArg::Admin => Self::Admin,
            RoleArg::Builder => Self::Builder,
        }
    }
}

/// Runs a `latch member` command.
///
/// # Errors
/// [`Error`] from the client or a refused confirmation.
pub(crate) async fn run(command: MemberCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    match command {
        MemberCommand::Add {
            name,
            role,
            expires,
        } => {
            let body = AddMember {
                name,
                role: role.into(),
                expires: Some(expires.to_string()),
            };
            let added: AddedMember = client.call(Method::POST, "v1/members", Some(&body)).await?;
            if global.json {
                context::print_json(&added)?;
            } else {
                let expiry = added.key.info.expires_at.map_or_else(
                    || "never expires".to_owned(),
                    |at| format!("expires {}", relative(at, context::now())),
                );
                messages::note(&format!(
                    "added {} as {}; their first personal API key ({expiry}) is shown once — hand it over securely:",
                    added.member.name, added.member.role
                ));
                context::outln!("{}", added.key.key)?;
                messages::hint(
                    "they should create a key of their own with it (`latch api-key create --personal --name laptop`) and revoke it",
                );
            }
        }
        MemberCommand::List => {
            let members: Vec<MemberInfo> = client
                .call::<_, ()>(Method::GET, "v1/members", None)
                .await?;
            if global.json {
                context::print_json(&members)?;
            } else {
                let now = context::now();
                let rows: Vec<Vec<String>> = members
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.role.to_string(),
                            relative(m.created_at, now),
                        ]
                    })
                    .collect();
                context::out(&context::table(&["NAME", "ROLE", "JOINED"], &rows))?;
            }
        }
        MemberCommand::SetRole { name, role } => {
            let body = SetRole { role: role.into() };
            let info: MemberInfo = client
                .call(Method::PATCH, &format!("v1/members/{name}"), Some(&body))
                .await?;
            if global.json {
                context::print_json(&info)?;
            } else {
                context::outln!("{} is now {}", info.name, info.role)?;
            }
        }
        MemberCommand::Remove { name, yes } => {
            context::confirm(
                &format!(
                    "remove {name}? Their personal keys are revoked and their personal secrets \
                     deleted, for good."
                ),
                yes,
                "--yes",
            )?;
            let removed: RemovedMember = client
                .call::<_, ()>(Method::DELETE, &format!("v1/members/{name}"), None)
                .await?;
            if global.json {
                context::print_json(&removed)?;
            } else {
                context::out(&removal(&removed))?;
            }
        }
    }
    Ok(0)
}

/// What a removal did, in words.
fn removal(removed: &RemovedMember) -> String {
    let keys = &removed.revoked_keys;
    let secrets = &removed.deleted_secrets;
    format!(
        "removed {}\nrevoked {}{}\ndeleted {}{}\n",
        removed.name,
        context::count(keys.len(), "personal key", "personal keys"),
        context::listed(keys.iter().map(|k| format!("{} ({})", k.name, k.id))),
        context::count(secrets.len(), "personal secret", "personal secrets"),
        context::listed(secrets.iter().cloned())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KeyRefInfo;

    #[test]
    fn a_removal_says_what_was_revoked_and_deleted_with_counted_words() {
        let removed = RemovedMember {
            name: "bob".into(),
            revoked_keys: vec![KeyRefInfo {
                id: "AbCd1234".into(),
                name: "laptop".into(),
            }],
            deleted_secrets: vec!["GH_TOKEN".into(), "NPM_TOKEN".into()],
        };
        assert_eq!(
            removal(&removed),
            "removed bob\nrevoked 1 personal key: laptop (AbCd1234)\n\
             deleted 2 personal secrets: GH_TOKEN, NPM_TOKEN\n"
        );
        let nothing = RemovedMember {
            name: "eve".into(),
            revoked_keys: vec![],
            deleted_secrets: vec![],
        };
        assert_eq!(
            removal(&nothing),
            "removed eve\nrevoked 0 personal keys\ndeleted 0 personal secrets\n"
        );
    }
}
