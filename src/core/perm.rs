//! The permission model of DESIGN §3, in one place: what each role may do, what a key's
//! capability allows, and how both follow a key's user or creator over time.
//!
//! The server decides every request through [`check`]; nothing else compares roles or
//! capabilities. [`standing`] turns what is stored about a key (its kind, capability, the role
//! its creator had) and the current state of its user or creator into the role and capability
//! it acts with now.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::apikey::KeyKind;

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

    /// The lower of two roles (owner > admin > builder).
    #[must_use]
    pub fn lower(self, other: Self) -> Self {
        // The derived order lists the highest role first.
        self.max(other)
    }
}

/// What a key may do (DESIGN §3 "Key capabilities").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Start runs, finish and read the runs it started, `whoami`: what an agent needs.
    Run,
    /// Everything its role allows, and run.
    Manage,
}

impl Capability {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Manage => "manage",
        }
    }

    /// The capability a new key gets when its request names none: a team key `run`, a
    /// personal key `manage` (DESIGN §3).
    #[must_use]
    pub const fn default_for(kind: KeyKind) -> Self {
        match kind {
            KeyKind::Personal => Self::Manage,
            KeyKind::Team => Self::Run,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Capability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "run" => Ok(Self::Run),
            "manage" => Ok(Self::Manage),
            _ => Err(format!("unknown capability `{s}`; expected run or manage")),
        }
    }
}

/// What is known about a key when a request arrives: what was stored with it, and the current
/// role of its user (personal keys) or of its creator (team keys), `None` once they are no
/// longer members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFacts {
    /// Personal or team.
    pub kind: KeyKind,
    /// The capability it was created with.
    pub capability: Capability,
    /// Whether it is bound to an agent identity (team keys).
    pub bound: bool,
    /// A team key's creator's role when it was made.
    pub role_at_creation: Option<Role>,
    /// A personal key's user's current role.
    pub user_role: Option<Role>,
    /// A team key's creator's current role.
    pub creator_role: Option<Role>,
}

/// The role and capability a key acts with now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Effective role.
    pub role: Role,
    /// Effective capability.
    pub capability: Capability,
}

/// How a key acts now (DESIGN §3 "Roles over time"), or `None` when it cannot act at all (a
/// personal key whose user is no longer a member: such keys are revoked at removal, and this
/// refuses them even if one were not).
///
/// - A personal key acts with its user's current role, and the capability it was made with.
/// - A team key acts with the lower of its creator's role at creation and now. Once its
///   creator is gone it acts as `run` (it keeps running agents but manages nothing), with the
///   lowest role.
/// - A key bound to an identity is `run`, whatever was stored.
#[must_use]
pub fn standing(key: KeyFacts) -> Option<Standing> {
    let run_if_bound = |capability| {
        if key.bound {
            Capability::Run
        } else {
            capability
        }
    };
    match key.kind {
        KeyKind::Personal => key.user_role.map(|role| Standing {
            role,
            capability: run_if_bound(key.capability),
        }),
        KeyKind::Team => Some(match (key.role_at_creation, key.creator_role) {
            (Some(then), Some(now)) => Standing {
                role: then.lower(now),
                capability: run_if_bound(key.capability),
            },
            _ => Standing {
                role: Role::Builder,
                capability: Capability::Run,
            },
        }),
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
    /// Say who the key is (`GET /v1/whoami`).
    Whoami,
    /// Read or finish a run this very key started.
    UseOwnKeyRun,
    /// Change the team's settings (BYOK allowed or forbidden).
    ManageTeamSettings,
    /// Read the team's sealing public key, to seal a value one writes (DESIGN §12).
    ReadSealKey,
}

impl Action {
    /// The permission this action needs, as the audit log names it when it is missing.
    #[must_use]
    pub fn permission(self) -> String {
        let name = match self {
            Self::CreatePersonalKey => "create_personal_key",
            Self::ManageOwnKeys => "manage_own_keys",
            Self::CreateTeamKey => "create_team_key",
            Self::ManageAllKeys => "manage_all_keys",
            Self::WriteOwnPersonalSecret => "write_own_personal_secret",
            Self::WriteTeamSecret => "write_team_secret",
            Self::ListSecrets => "list_secrets",
            Self::ListAllPersonalSecrets => "list_all_personal_secrets",
            Self::ReadEnvironments => "read_environments",
            Self::ManageEnvironments => "manage_environments",
            Self::AddMember { role } => return format!("add_member:{role}"),
            Self::ChangeRole { from, to } => return format!("change_role:{from}:{to}"),
            Self::RemoveMember { role } => return format!("remove_member:{role}"),
            Self::ListMembers => "list_members",
            Self::StartRun => "start_run",
            Self::ReadAllRuns => "read_all_runs",
            Self::ReadOwnRuns => "read_own_runs",
            Self::ReadAudit => "read_audit",
            Self::Whoami => "whoami",
            Self::UseOwnKeyRun => "use_own_key_run",
            Self::ManageTeamSettings => "manage_team_settings",
            Self::ReadSealKey => "read_seal_key",
        };
        name.to_owned()
    }
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// A `run` key may only start runs, finish and read its own, and ask `whoami`.
    #[error(
        "this key has the `run` capability: it may start runs, finish and read its own runs and \
         ask whoami, nothing else"
    )]
    KeyCannotManage,
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

/// Whether a key acting with `standing` may do `action` (DESIGN §3): first its capability,
/// then its role.
///
/// # Errors
/// [`Denied`] says why not.
pub fn check(standing: Standing, action: Action) -> Result<(), Denied> {
    let run_allows = matches!(
        action,
        Action::StartRun | Action::Whoami | Action::UseOwnKeyRun
    );
    if standing.capability == Capability::Run && !run_allows {
        return Err(Denied::KeyCannotManage);
    }
    check_role(standing.role, action)
}

/// Whether `role` may do `action`: the role table of DESIGN §3.
fn check_role(role: Role, action: Action) -> Result<(), Denied> {
    let denied = Err(Denied::Role { role });
    match action {
        Action::Whoami
        | Action::UseOwnKeyRun
        | Action::CreatePersonalKey
        | Action::ManageOwnKeys
        | Action::WriteOwnPersonalSecret
        | Action::ListSecrets
        | Action::ReadEnvironments
        | Action::ListMembers
        | Action::StartRun
        | Action::ReadOwnRuns
        | Action::ReadSealKey => Ok(()),
        Action::CreateTeamKey
        | Action::ManageAllKeys
        | Action::WriteTeamSecret
        | Action::ListAllPersonalSecrets
        | Action::ManageEnvironments
        | Action::ReadAllRuns
        | Action::ReadAudit
        | Action::ManageTeamSettings => {
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
        let manage = Standing {
            role,
            capability: Capability::Manage,
        };
        check(manage, action).is_ok()
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
            (
                "team settings (BYOK)",
                &[Action::ManageTeamSettings],
                [true, true, false],
            ),
            (
                "the sealing key (to write a value)",
                &[Action::ReadSealKey],
                [true, true, true],
            ),
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
            check_role(Admin, Action::AddMember { role: Owner }),
            Err(Denied::OwnersOnly)
        );
        assert_eq!(
            check_role(Admin, Action::RemoveMember { role: Owner }),
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
            check_role(Builder, Action::ReadAudit)
                .expect_err("denied")
                .to_string(),
            "a builder may not do this"
        );
        for c in [Capability::Run, Capability::Manage] {
            assert_eq!(c.as_str().parse::<Capability>(), Ok(c));
        }
        assert!("admin".parse::<Capability>().is_err());
    }

    /// Every action, for the tables below.
    fn every_action() -> Vec<Action> {
        let mut all = vec![
            Action::CreatePersonalKey,
            Action::ManageOwnKeys,
            Action::CreateTeamKey,
            Action::ManageAllKeys,
            Action::WriteOwnPersonalSecret,
            Action::WriteTeamSecret,
            Action::ListSecrets,
            Action::ListAllPersonalSecrets,
            Action::ReadEnvironments,
            Action::ManageEnvironments,
            Action::ListMembers,
            Action::StartRun,
            Action::ReadAllRuns,
            Action::ReadOwnRuns,
            Action::ReadAudit,
            Action::Whoami,
            Action::UseOwnKeyRun,
            Action::ManageTeamSettings,
            Action::ReadSealKey,
        ];
        for role in [Owner, Admin, Builder] {
            all.push(Action::AddMember { role });
            all.push(Action::RemoveMember { role });
            for to in [Owner, Admin, Builder] {
                all.push(Action::ChangeRole { from: role, to });
            }
        }
        all
    }

    #[test]
    fn a_run_key_may_only_run_finish_and_read_its_own_runs_and_ask_whoami() {
        for role in [Owner, Admin, Builder] {
            let run = Standing {
                role,
                capability: Capability::Run,
            };
            for action in every_action() {
                let want_ok = matches!(
                    action,
                    Action::StartRun | Action::Whoami | Action::UseOwnKeyRun
                );
                let got = check(run, action);
                if want_ok {
                    assert_eq!(got, Ok(()), "{role} run key: {action:?}");
                } else {
                    assert_eq!(got, Err(Denied::KeyCannotManage), "{role}: {action:?}");
                }
            }
        }
    }

    fn facts(kind: KeyKind, capability: Capability) -> KeyFacts {
        KeyFacts {
            kind,
            capability,
            bound: false,
            role_at_creation: None,
            user_role: None,
            creator_role: None,
        }
    }

    #[test]
    fn a_personal_key_acts_with_its_users_current_role_and_none_once_they_are_gone() {
        for capability in [Capability::Run, Capability::Manage] {
            for now in [Owner, Admin, Builder] {
                let key = KeyFacts {
                    user_role: Some(now),
                    ..facts(KeyKind::Personal, capability)
                };
                assert_eq!(
                    standing(key),
                    Some(Standing {
                        role: now,
                        capability
                    })
                );
            }
            assert_eq!(standing(facts(KeyKind::Personal, capability)), None);
        }
    }

    #[test]
    fn a_team_key_acts_with_the_lower_role_and_as_run_once_its_creator_is_gone() {
        for then in [Owner, Admin, Builder] {
            for now in [Owner, Admin, Builder] {
                let key = KeyFacts {
                    role_at_creation: Some(then),
                    creator_role: Some(now),
                    ..facts(KeyKind::Team, Capability::Manage)
                };
                let got = standing(key).expect("acts");
                assert_eq!(got.capability, Capability::Manage);
                // Never above either role.
                assert!(got.role >= then && got.role >= now, "{then} {now}: {got:?}");
                assert!(got.role == then || got.role == now);
            }
            let gone = KeyFacts {
                role_at_creation: Some(then),
                ..facts(KeyKind::Team, Capability::Manage)
            };
            assert_eq!(
                standing(gone),
                Some(Standing {
                    role: Builder,
                    capability: Capability::Run
                })
            );
        }
        assert_eq!(Admin.lower(Owner), Admin);
        assert_eq!(Owner.lower(Builder), Builder);
    }

    #[test]
    fn a_key_bound_to_an_identity_is_run_whatever_was_stored() {
        let bound = KeyFacts {
            bound: true,
            role_at_creation: Some(Owner),
            creator_role: Some(Owner),
            ..facts(KeyKind::Team, Capability::Manage)
        };
        assert_eq!(standing(bound).map(|s| s.capability), Some(Capability::Run));
        assert_eq!(Capability::default_for(KeyKind::Team), Capability::Run);
        assert_eq!(
            Capability::default_for(KeyKind::Personal),
            Capability::Manage
        );
    }
}
