//! The permission matrix of DESIGN §3, in one place: what each role may do.
//!
//! The server decides every request through [`check`]; nothing else compares roles. A key's
//! effective role is decided before (a personal key acts with its user's *current* role, a team
//! key with the role its creator had when it was made); this module only answers "may this
//! role do that".

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including managing other owners.
    Owner,
    /// Everything but managing owners.
    Admin,
    /// Own keys and personal secrets; starts runs; reads own runs.
    Builder,
}

impl Role {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Builder => "builder",
        }
    }

    const fn manages_team(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "builder" => Ok(Self::Builder),
            _ => Err(format!(
                "unknown role `{s}`; expected owner, admin or builder"
            )),
        }
    }
}

/// Something a caller wants to do. Variants that involve a member carry what the rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a personal key for oneself.
    CreatePersonalKey,
    /// List or revoke one's own keys.
    ManageOwnKeys,
    /// Create a team key (optionally bound to an identity).
    CreateTeamKey,
    /// List every key of the team, revoke any key.
    ManageAllKeys,
    /// Create, update or delete one's own personal secrets.
    WriteOwnPersonalSecret,
    /// Create, update or delete team secrets.
    WriteTeamSecret,
    /// List secret metadata: team secrets and one's own personal secrets.
    ListSecrets,
    /// List every member's personal secret names too (`--all`).
    ListAllPersonalSecrets,
    /// Read environments and identities (names only).
    ReadEnvironments,
    /// Create, replace or delete environments and identities.
    ManageEnvironments,
    /// Add a member with `role`.
    AddMember {
        /// The new member's role.
        role: Role,
    },
    /// Change a member's role from `from` to `to`.
    ChangeRole {
        /// Their current role.
        from: Role,
        /// The role asked for.
        to: Role,
    },
    /// Remove a member who has `role`.
    RemoveMember {
        /// Their role.
        role: Role,
    },
    /// List members.
    ListMembers,
    /// Start a run.
    StartRun,
    /// Read every run of the team.
    ReadAllRuns,
    /// Read one's own runs.
    ReadOwnRuns,
    /// Read the audit log.
    ReadAudit,
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The role may not do this.
    #[error("a {role} may not do this")]
    Role {
        /// The caller's role.
        role: Role,
    },
    /// Admins may not add, promote to, demote or remove owners.
    #[error("only an owner may manage owners")]
    OwnersOnly,
}

/// Whether `role` may do `action` (DESIGN §3).
///
/// # Errors
/// [`Denied`] says why not.
pub fn check(role: Role, action: Action) -> Result<(), Denied> {
    let denied = Err(Denied::Role { role });
    match action {
        Action::CreatePersonalKey
        | Action::ManageOwnKeys
        | Action::WriteOwnPersonalSecret
        | Action::ListSecrets
        | Action::ReadEnvironments
        | Action::ListMembers
        | Action::StartRun
        | Action::ReadOwnRuns => Ok(()),
        Action::CreateTeamKey
        | Action::ManageAllKeys
        | Action::WriteTeamSecret
        | Action::ListAllPersonalSecrets
        | Action::ManageEnvironments
        | Action::ReadAllRuns
        | Action::ReadAudit => {
            if role.manages_team() {
                Ok(())
            } else {
                denied
            }
        }
        Action::AddMember { role: target } | Action::RemoveMember { role: target } => {
            manage_member(role, &[target])
        }
        Action::ChangeRole { from, to } => manage_member(role, &[from, to]),
    }
}

/// Owners manage anyone; admins anyone but owners; builders nobody.
fn manage_member(role: Role, involved: &[Role]) -> Result<(), Denied> {
    match role {
        Role::Admin if involved.contains(&Role::Owner) => Err(Denied::OwnersOnly),
        Role::Owner | Role::Admin => Ok(()),
        Role::Builder => Err(Denied::Role { role }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Role::{Admin, Builder, Owner};

    fn allowed(role: Role, action: Action) -> bool {
        check(role, action).is_ok()
    }

    /// Each row of DESIGN §3's table: the action(s) and what owner, admin and builder may do.
    #[test]
    fn the_matrix_row_by_row() {
        let rows: &[(&str, &[Action], [bool; 3])] = &[
            (
                "create own personal key, list/revoke own keys",
                &[Action::CreatePersonalKey, Action::ManageOwnKeys],
                [true, true, true],
            ),
            (
                "create team key",
                &[Action::CreateTeamKey],
                [true, true, false],
            ),
            (
                "list all keys, revoke any key",
                &[Action::ManageAllKeys],
                [true, true, false],
            ),
            (
                "create/update/delete own personal secrets",
                &[Action::WriteOwnPersonalSecret],
                [true, true, true],
            ),
            (
                "create/update/delete team secrets",
                &[Action::WriteTeamSecret],
                [true, true, false],
            ),
            (
                "list secret metadata",
                &[Action::ListSecrets],
                [true, true, true],
            ),
            (
                "--all personal names",
                &[Action::ListAllPersonalSecrets],
                [true, true, false],
            ),
            (
                "manage environments and identities",
                &[Action::ManageEnvironments],
                [true, true, false],
            ),
            ("start a run", &[Action::StartRun], [true, true, true]),
            (
                "read runs: all",
                &[Action::ReadAllRuns],
                [true, true, false],
            ),
            ("read runs: own", &[Action::ReadOwnRuns], [true, true, true]),
            ("read audit log", &[Action::ReadAudit], [true, true, false]),
        ];
        for (row, actions, want) in rows {
            for &action in *actions {
                for (role, &ok) in [Owner, Admin, Builder].iter().zip(want) {
                    assert_eq!(allowed(*role, action), ok, "{row}: {role}");
                }
            }
        }
    }

    #[test]
    fn members_owners_manage_any_role_admins_not_owners_builders_none() {
        for target in [Owner, Admin, Builder] {
            assert!(allowed(Owner, Action::AddMember { role: target }));
            assert!(allowed(Owner, Action::RemoveMember { role: target }));
            assert!(!allowed(Builder, Action::AddMember { role: target }));
            assert!(!allowed(Builder, Action::RemoveMember { role: target }));
            for to in [Owner, Admin, Builder] {
                assert!(allowed(Owner, Action::ChangeRole { from: target, to }));
                assert!(!allowed(Builder, Action::ChangeRole { from: target, to }));
                let admin_ok = target != Owner && to != Owner;
                assert_eq!(
                    allowed(Admin, Action::ChangeRole { from: target, to }),
                    admin_ok
                );
            }
        }
        assert!(allowed(Admin, Action::AddMember { role: Builder }));
        assert!(allowed(Admin, Action::AddMember { role: Admin }));
        assert_eq!(
            check(Admin, Action::AddMember { role: Owner }),
            Err(Denied::OwnersOnly)
        );
        assert_eq!(
            check(Admin, Action::RemoveMember { role: Owner }),
            Err(Denied::OwnersOnly)
        );
        assert!(allowed(Admin, Action::RemoveMember { role: Admin }));
    }

    #[test]
    fn roles_parse_and_print() {
        for role in [Owner, Admin, Builder] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("superuser".parse::<Role>().is_err());
        assert_eq!(
            check(Builder, Action::ReadAudit)
                .expect_err("denied")
                .to_string(),
            "a builder may not do this"
        );
    }
}
