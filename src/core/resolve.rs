//! Run resolution (DESIGN §2): which secrets a run receives, which it asked for and did not get
//! (and why), and which team secrets a personal one shadowed.
//!
//! A pure function over plain data. The server reads a [`Snapshot`] in one database snapshot,
//! calls [`resolve`], records the result and only then fetches and decrypts the values of
//! [`Resolution::delivered`]. Nothing here sees a value: only names, ids and versions.
//!
//! Names match exactly (DESIGN §2 rule 3): a secret is delivered under its own spelling, and
//! only that spelling in an allowlist or `required` list names it. The store keeps names that
//! differ only in case from coexisting across a user's scope and the team's (DESIGN §5).
//!
//! Choices where DESIGN is silent (also in the README):
//! - A `required` name that is in the pool but outside the allowlist is missing with reason
//!   [`MissingReason::NotAllowlisted`]: `required` never widens the allowlist.
//! - An environment may have no list (`None`: no allowlist) or an empty one (no secrets).
//! - A name is recorded as *shadowed* only when the personal secret is delivered over a team
//!   secret that was in the pool too.
//! - When an allowlisted name is both a personal secret the run cannot use (no user context) and
//!   a team secret reserved for another identity, the reason given is `personal_unavailable`.
//! - A secret stored under a name that has been refused since (DESIGN §5's list grew) is never
//!   delivered; asked for by an environment's list, it is missing as `refused_name`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::apikey::KeyKind;
use super::name::{Label, SecretName};

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// From a terminal (user-initiated).
    Cli,
    /// From Slack (user-initiated).
    Slack,
    /// From Linear (user-initiated).
    Linear,
    /// Through the API on a user's behalf (user-initiated).
    Api,
    /// On a schedule (no user context).
    Schedule,
    /// By an integration (no user context).
    Integration,
}

impl Trigger {
    /// Every trigger, user-initiated first.
    pub const ALL: [Self; 6] = [
        Self::Cli,
        Self::Slack,
        Self::Linear,
        Self::Api,
        Self::Schedule,
        Self::Integration,
    ];

    /// Whether a person started the run, so that it may act as that person.
    #[must_use]
    pub const fn is_user_initiated(self) -> bool {
        match self {
            Self::Cli | Self::Slack | Self::Linear | Self::Api => true,
            Self::Schedule | Self::Integration => false,
        }
    }

    /// The trigger a run gets when it names none: `cli` for a personal key, `integration` for
    /// a team key.
    #[must_use]
    pub const fn default_for(kind: KeyKind) -> Self {
        match kind {
            KeyKind::Personal => Self::Cli,
            KeyKind::Team => Self::Integration,
        }
    }

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Slack => "slack",
            Self::Linear => "linear",
            Self::Api => "api",
            Self::Schedule => "schedule",
            Self::Integration => "integration",
        }
    }
}

impl std::str::FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown trigger `{s}`; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a secret belongs to the team or to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Shared by the team.
    Team,
    /// Owned by one user.
    Personal,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Team => "team",
            Self::Personal => "personal",
        })
    }
}

/// A user's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub i64);

/// A secret's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretId(pub i64);

/// Who is asking, as established by the API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A personal key: acts as `user` (when the trigger allows user context).
    Personal {
        /// The key's user.
        user: UserId,
    },
    /// A team key: no user; runs as `identity` when the key is bound to one.
    Team {
        /// The agent identity the key is bound to.
        identity: Option<Label>,
    },
}

impl Caller {
    /// The kind of key behind this caller.
    #[must_use]
    pub const fn kind(&self) -> KeyKind {
        match self {
            Self::Personal { .. } => KeyKind::Personal,
            Self::Team { .. } => KeyKind::Team,
        }
    }

    fn identity(&self) -> Option<&Label> {
        match self {
            Self::Personal { .. } => None,
            Self::Team { identity } => identity.as_ref(),
        }
    }
}

/// What the run asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// How the run was started; `None` takes [`Trigger::default_for`] the key's kind.
    pub trigger: Option<Trigger>,
    /// The environment whose list is the default allowlist.
    pub environment: Option<Label>,
    /// The run's own allowlist. `None` (absent) differs from `Some(vec![])` (no secrets).
    pub secrets: Option<Vec<SecretName>>,
    /// Names whose absence must stop the run.
    pub required: Vec<SecretName>,
}

impl RunRequest {
    /// Everything [`resolve`] depends on besides the snapshot, as bytes: two `(caller,
    /// request)` pairs give the same bytes exactly when they are equal *as spelled* (names are
    /// compared by their bytes here, not ignoring case, because a missing name is reported as
    /// asked for). A server keeps a decision per snapshot under these bytes.
    #[must_use]
    pub fn inputs(&self, caller: &Caller) -> Vec<u8> {
        /// Length-prefixed, so no text can run into the next field.
        fn text(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        fn names(out: &mut Vec<u8>, list: &[SecretName]) {
            out.extend_from_slice(&u32::try_from(list.len()).unwrap_or(u32::MAX).to_le_bytes());
            for name in list {
                text(out, name.as_str());
            }
        }
        let mut out = Vec::with_capacity(64);
        match caller {
            Caller::Personal { user } => {
                out.push(b'p');
                out.extend_from_slice(&user.0.to_le_bytes());
            }
            Caller::Team { identity: None } => out.push(b't'),
            Caller::Team {
                identity: Some(identity),
            } => {
                out.push(b'i');
                text(&mut out, identity.as_str());
            }
        }
        text(&mut out, self.trigger.map_or("", Trigger::as_str));
        match &self.environment {
            None => out.push(0),
            Some(name) => {
                out.push(1);
                text(&mut out, name.as_str());
            }
        }
        match &self.secrets {
            None => out.push(0),
            Some(list) => {
                out.push(1);
                names(&mut out, list);
            }
        }
        names(&mut out, &self.required);
        out
    }
}

/// A team secret as resolution sees it: no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSecret {
    /// Store id.
    pub id: SecretId,
    /// Name.
    pub name: SecretName,
    /// Current version.
    pub version: u32,
    /// Identities the secret is attached to; non-empty means *reserved* for them.
    pub reserved_for: Vec<Label>,
}

/// A personal secret as resolution sees it: no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalSecret {
    /// Store id.
    pub id: SecretId,
    /// The user who owns it.
    pub owner: UserId,
    /// Name.
    pub name: SecretName,
    /// Current version.
    pub version: u32,
}

/// An environment: a named list of secret names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its name.
    pub name: Label,
    /// Its allowlist: `None` means it has none, `Some(vec![])` means no secrets.
    pub secrets: Option<Vec<SecretName>>,
}

/// What the store read, in one snapshot, for one run.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every team secret of the team.
    pub team: &'a [TeamSecret],
    /// Personal secrets of the team's users (at least the caller's; others are ignored).
    pub personal: &'a [PersonalSecret],
    /// The environment the request names, if the store found it.
    pub environment: Option<&'a Environment>,
}

/// Why an allowlisted (or required) name was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingReason {
    /// No such secret the run could see (including another user's personal secret).
    NotFound,
    /// A team secret reserved for identities this run does not execute as.
    ReservedForIdentity,
    /// The key's user has this personal secret, but the run has no user context.
    PersonalUnavailable,
    /// Required, and in the pool, but outside the run's allowlist.
    NotAllowlisted,
    /// Stored under a name refused since (it would change what the child runs, trusts or
    /// reaches): never delivered.
    RefusedName,
}

impl MissingReason {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::ReservedForIdentity => "reserved_for_identity",
            Self::PersonalUnavailable => "personal_unavailable",
            Self::NotAllowlisted => "not_allowlisted",
            Self::RefusedName => "refused_name",
        }
    }

    /// The reason in words, for people.
    #[must_use]
    pub const fn words(self) -> &'static str {
        match self {
            Self::NotFound => "no secret of that name that this run can see",
            Self::ReservedForIdentity => {
                "a team secret reserved for identities this run does not execute as"
            }
            Self::PersonalUnavailable => {
                "your personal secret, and this run has no user context (a team key, or a schedule or integration trigger)"
            }
            Self::NotAllowlisted => {
                "not in the run's allowlist (--secrets or the environment's list)"
            }
            Self::RefusedName => {
                "stored under a name latch refuses now (it changes what programs load, trust or reach)"
            }
        }
    }

    /// The words and the wire name: `no secret of that name that this run can see
    /// (not_found)`.
    #[must_use]
    pub fn explained(self) -> String {
        format!("{} ({})", self.words(), self.as_str())
    }

    /// What to do about it.
    #[must_use]
    pub const fn hint(self) -> &'static str {
        match self {
            Self::NotFound => {
                "create it (`latch secret create --team NAME`), or check the spelling: names match exactly"
            }
            Self::ReservedForIdentity => {
                "run with a team key bound to an identity that lists it (`latch identity list`)"
            }
            Self::PersonalUnavailable => {
                "run with your personal key and a user trigger (cli), or make it a team secret"
            }
            Self::NotAllowlisted => "add it to --secrets or to the environment's list",
            Self::RefusedName => "store the value under another name",
        }
    }
}

impl fmt::Display for MissingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name the run asked for and did not get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// The name as asked for.
    pub name: SecretName,
    /// Why it was not delivered.
    pub reason: MissingReason,
}

/// A secret the run receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Store id, to fetch and decrypt the value.
    pub id: SecretId,
    /// Name (the environment variable), spelled as stored.
    pub name: SecretName,
    /// Scope it comes from.
    pub scope: Scope,
    /// Version delivered.
    pub version: u32,
}

/// Which allowlist applied (DESIGN §2 rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowlistSource {
    /// The run's own `secrets` list.
    Run,
    /// The list of the environment the run names.
    Environment,
    /// None: the whole pool is delivered.
    None,
}

impl AllowlistSource {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Environment => "environment",
            Self::None => "none",
        }
    }
}

impl fmt::Display for AllowlistSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a successful resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The effective trigger.
    pub trigger: Trigger,
    /// Which allowlist applied.
    pub allowlist: AllowlistSource,
    /// The user the run acts as, if it has user context.
    pub user_context: Option<UserId>,
    /// The identity the run executes as.
    pub identity: Option<Label>,
    /// What the run receives, sorted by name.
    pub delivered: Vec<Delivery>,
    /// What it asked for and did not get, in the order asked.
    pub missing: Vec<Missing>,
    /// Names where a personal secret was delivered over a team secret, sorted.
    pub shadowed: Vec<SecretName>,
}

/// Why a run cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A team key named a user-initiated trigger (400 `trigger_requires_user`).
    #[error(
        "trigger `{trigger}` needs a user, and a team key has none; use a personal key or a `schedule`/`integration` trigger"
    )]
    TriggerRequiresUser {
        /// The trigger asked for.
        trigger: Trigger,
    },
    /// The run names an environment that does not exist (404).
    #[error("environment `{name}` does not exist")]
    EnvironmentNotFound {
        /// The name asked for.
        name: Label,
    },
    /// Names in `required` were not delivered (422); nothing is delivered.
    #[error("required secrets are missing: {}", list(.missing))]
    RequiredMissing {
        /// The required names not delivered, with reasons.
        missing: Vec<Missing>,
        /// The resolution that would have applied, for the run record.
        resolution: Box<Resolution>,
    },
}

fn list(missing: &[Missing]) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|m| format!("{} ({})", m.name, m.reason))
        .collect();
    parts.join(", ")
}

/// One entry of the pool: where a name would come from (borrowed from the snapshot).
struct Candidate<'a> {
    id: SecretId,
    name: &'a SecretName,
    scope: Scope,
    version: u32,
}

/// Resolves `request` made by `caller` over `snapshot`, following DESIGN §2 rule by rule.
///
/// # Errors
/// [`ResolveError`]: rule 1 (trigger needs a user), rule 2 (unknown environment), rule 6
/// (required names missing).
pub fn resolve(
    caller: &Caller,
    request: &RunRequest,
    snapshot: Snapshot<'_>,
) -> Result<Resolution, ResolveError> {
    // Rule 1: trigger and user context.
    let trigger = request
        .trigger
        .unwrap_or(Trigger::default_for(caller.kind()));
    let user_context = match caller {
        Caller::Team { .. } if trigger.is_user_initiated() => {
            return Err(ResolveError::TriggerRequiresUser { trigger });
        }
        Caller::Personal { user } if trigger.is_user_initiated() => Some(*user),
        Caller::Personal { .. } | Caller::Team { .. } => None,
    };
    let identity = caller.identity().cloned();

    // Rule 2: an environment named must exist.
    let environment = match &request.environment {
        None => None,
        Some(name) => match snapshot.environment {
            Some(env) if env.name == *name => Some(env),
            _ => return Err(ResolveError::EnvironmentNotFound { name: name.clone() }),
        },
    };

    // Rule 3: the pool.
    let (pool, shadowed_in_pool) = pool(snapshot, identity.as_ref(), user_context);

    // Rule 4: the allowlist. The run's list, else the environment's, else none.
    let (source, allowlist) = allowlist(request, environment);

    // Rule 5: delivered = pool ∩ allowlist; every other allowlisted name is missing.
    let why_missing = |name: &SecretName| missing_reason(caller, snapshot, user_context, name);
    let mut missing = Vec::new();
    // `None`: no allowlist, the whole pool is delivered.
    let delivered_names: Option<BTreeSet<&SecretName>> = allowlist.map(|list| {
        let mut names = BTreeSet::new();
        for name in list {
            if pool.contains_key(name) {
                names.insert(name);
            } else {
                missing.push(Missing {
                    name: name.clone(),
                    reason: why_missing(name),
                });
            }
        }
        names
    });
    let is_delivered = |name: &SecretName| {
        delivered_names
            .as_ref()
            .map_or_else(|| pool.contains_key(name), |names| names.contains(name))
    };
    let delivery = |c: &Candidate<'_>| Delivery {
        id: c.id,
        name: c.name.clone(),
        scope: c.scope,
        version: c.version,
    };
    let delivered: Vec<Delivery> = match &delivered_names {
        None => pool.values().map(delivery).collect(),
        Some(names) => names
            .iter()
            .filter_map(|&n| pool.get(n))
            .map(delivery)
            .collect(),
    };
    let shadowed: Vec<SecretName> = shadowed_in_pool
        .into_iter()
        .filter(|n| is_delivered(n))
        .cloned()
        .collect();

    // Rule 6: required names not delivered stop the run.
    let mut required_missing = Vec::new();
    for name in dedup(&request.required) {
        if is_delivered(name) {
            continue;
        }
        let reason = if pool.contains_key(name) {
            MissingReason::NotAllowlisted
        } else {
            why_missing(name)
        };
        let entry = Missing {
            name: name.clone(),
            reason,
        };
        if !missing.contains(&entry) {
            missing.push(entry.clone());
        }
        required_missing.push(entry);
    }

    let resolution = Resolution {
        trigger,
        allowlist: source,
        user_context,
        identity,
        delivered,
        missing,
        shadowed,
    };
    if required_missing.is_empty() {
        Ok(resolution)
    } else {
        Err(ResolveError::RequiredMissing {
            missing: required_missing,
            resolution: Box::new(resolution),
        })
    }
}

/// DESIGN §2 rule 4: the run's list, else the environment's, else none (the whole pool); each
/// name once.
fn allowlist<'a>(
    request: &'a RunRequest,
    environment: Option<&'a Environment>,
) -> (AllowlistSource, Option<Vec<&'a SecretName>>) {
    match (
        &request.secrets,
        environment.and_then(|e| e.secrets.as_deref()),
    ) {
        (Some(list), _) => (AllowlistSource::Run, Some(dedup(list))),
        (None, Some(list)) => (AllowlistSource::Environment, Some(dedup(list))),
        (None, None) => (AllowlistSource::None, None),
    }
}

/// Why `name` is not in the pool (DESIGN §2 rule 5). Another user's personal secret is
/// `not_found`: its existence is never revealed.
fn missing_reason(
    caller: &Caller,
    snapshot: Snapshot<'_>,
    user_context: Option<UserId>,
    name: &SecretName,
) -> MissingReason {
    if name.refusal().is_some()
        && (snapshot.team.iter().any(|s| s.name == *name)
            || snapshot.personal.iter().any(|s| s.name == *name))
    {
        return MissingReason::RefusedName;
    }
    if let (Caller::Personal { user }, None) = (caller, user_context)
        && snapshot
            .personal
            .iter()
            .any(|s| s.owner == *user && s.name == *name)
    {
        return MissingReason::PersonalUnavailable;
    }
    if snapshot
        .team
        .iter()
        .any(|s| s.name == *name && !s.reserved_for.is_empty())
    {
        return MissingReason::ReservedForIdentity;
    }
    MissingReason::NotFound
}

/// DESIGN §2 rule 3. Team secrets not reserved, or reserved for `identity`; then, with user
/// context, the user's personal secrets, each overriding a team secret of its name. Returns the
/// pool by name and the names where such an override happened. Secrets stored under a name
/// refused since are never in it.
fn pool<'a>(
    snapshot: Snapshot<'a>,
    identity: Option<&Label>,
    user_context: Option<UserId>,
) -> (
    BTreeMap<&'a SecretName, Candidate<'a>>,
    BTreeSet<&'a SecretName>,
) {
    let mut pool = BTreeMap::new();
    for s in snapshot.team.iter().filter(|s| s.name.refusal().is_none()) {
        let visible =
            s.reserved_for.is_empty() || identity.is_some_and(|i| s.reserved_for.contains(i));
        if visible {
            let team = Candidate {
                id: s.id,
                name: &s.name,
                scope: Scope::Team,
                version: s.version,
            };
            pool.insert(&s.name, team);
        }
    }
    let mut shadowed = BTreeSet::new();
    if let Some(user) = user_context {
        for s in snapshot
            .personal
            .iter()
            .filter(|s| s.owner == user && s.name.refusal().is_none())
        {
            let personal = Candidate {
                id: s.id,
                name: &s.name,
                scope: Scope::Personal,
                version: s.version,
            };
            if pool.insert(&s.name, personal).is_some() {
                shadowed.insert(&s.name);
            }
        }
    }
    (pool, shadowed)
}

/// The team secret names a change to one identity's list releases (DESIGN §3): names its old
/// list reserved that neither its new list nor any other identity's list reserves, in the order
/// of the old list, each once. Reservation compares names ignoring ASCII case: the safer
/// reading, since an identity listing `deploy_key` keeps `DEPLOY_KEY` away from other runs.
#[must_use]
pub fn released<'a>(
    before: &[SecretName],
    after: &[SecretName],
    others: impl IntoIterator<Item = &'a SecretName>,
) -> Vec<SecretName> {
    let still: BTreeSet<String> = after
        .iter()
        .map(SecretName::folded)
        .chain(others.into_iter().map(SecretName::folded))
        .collect();
    let mut seen = BTreeSet::new();
    before
        .iter()
        .filter(|n| !still.contains(&n.folded()) && seen.insert(n.folded()))
        .cloned()
        .collect()
}

/// Drops repeated names, keeping the order.
fn dedup(names: &[SecretName]) -> Vec<&SecretName> {
    let mut seen = BTreeSet::new();
    names.iter().filter(|&n| seen.insert(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);

    fn n(s: &str) -> SecretName {
        SecretName::new(s).expect("valid name")
    }
    fn l(s: &str) -> Label {
        Label::new(s).expect("valid label")
    }
    fn names(list: &[&str]) -> Vec<SecretName> {
        list.iter().map(|s| n(s)).collect()
    }

    /// The team every test runs against:
    /// - team `DB_URL` (id 1), `SHARED` (id 2), `DEPLOY_KEY` (id 3, reserved for `deployer`),
    ///   `OPENAI_KEY` (id 4, shadowed by Alice);
    /// - Alice: `OPENAI_KEY` (id 10), `GITHUB_TOKEN` (id 11);
    /// - Bob: `BOB_ONLY` (id 20), `GITHUB_TOKEN` (id 21).
    struct Team {
        shared: Vec<TeamSecret>,
        personal: Vec<PersonalSecret>,
        envs: Vec<Environment>,
    }

    fn team() -> Team {
        let t = |id, name: &str, reserved: &[&str]| TeamSecret {
            id: SecretId(id),
            name: n(name),
            version: 1,
            reserved_for: reserved.iter().map(|r| l(r)).collect(),
        };
        let p = |id, owner, name: &str| PersonalSecret {
            id: SecretId(id),
            owner,
            name: n(name),
            version: 2,
        };
        Team {
            shared: vec![
                t(1, "DB_URL", &[]),
                t(2, "SHARED", &[]),
                t(3, "DEPLOY_KEY", &["deployer"]),
                t(4, "OPENAI_KEY", &[]),
            ],
            personal: vec![
                p(10, ALICE, "OPENAI_KEY"),
                p(11, ALICE, "GITHUB_TOKEN"),
                p(20, BOB, "BOB_ONLY"),
                p(21, BOB, "GITHUB_TOKEN"),
            ],
            envs: vec![
                Environment {
                    name: l("ci"),
                    secrets: Some(names(&["DB_URL", "GITHUB_TOKEN"])),
                },
                Environment {
                    name: l("locked"),
                    secrets: Some(vec![]),
                },
                Environment {
                    name: l("open"),
                    secrets: None,
                },
            ],
        }
    }

    fn run(t: &Team, caller: &Caller, request: &RunRequest) -> Result<Resolution, ResolveError> {
        let environment = request
            .environment
            .as_ref()
            .and_then(|name| t.envs.iter().find(|e| e.name == *name));
        resolve(
            caller,
            request,
            Snapshot {
                team: &t.shared,
                personal: &t.personal,
                environment,
            },
        )
    }

    fn ok(t: &Team, caller: &Caller, request: &RunRequest) -> Resolution {
        run(t, caller, request).expect("resolves")
    }

    fn delivered(r: &Resolution) -> Vec<(String, Scope, i64)> {
        r.delivered
            .iter()
            .map(|d| (d.name.to_string(), d.scope, d.id.0))
            .collect()
    }

    fn missing(r: &Resolution) -> Vec<(String, MissingReason)> {
        r.missing
            .iter()
            .map(|m| (m.name.to_string(), m.reason))
            .collect()
    }

    fn alice() -> Caller {
        Caller::Personal { user: ALICE }
    }
    fn team_key() -> Caller {
        Caller::Team { identity: None }
    }
    fn deployer() -> Caller {
        Caller::Team {
            identity: Some(l("deployer")),
        }
    }
    fn with_trigger(trigger: Trigger) -> RunRequest {
        RunRequest {
            trigger: Some(trigger),
            ..RunRequest::default()
        }
    }
    fn with_secrets(list: &[&str]) -> RunRequest {
        RunRequest {
            secrets: Some(names(list)),
            ..RunRequest::default()
        }
    }

    // Rule 1 ------------------------------------------------------------------------------

    #[test]
    fn rule1_team_key_defaults_to_integration_without_user_context() {
        let r = ok(&team(), &team_key(), &RunRequest::default());
        assert_eq!(r.trigger, Trigger::Integration);
        assert_eq!(r.user_context, None);
        assert_eq!(
            delivered(&r),
            vec![
                ("DB_URL".into(), Scope::Team, 1),
                ("OPENAI_KEY".into(), Scope::Team, 4),
                ("SHARED".into(), Scope::Team, 2),
            ]
        );
        assert!(r.shadowed.is_empty());
    }

    #[test]
    fn rule1_team_key_with_schedule_trigger_is_allowed() {
        let r = ok(&team(), &team_key(), &with_trigger(Trigger::Schedule));
        assert_eq!(r.trigger, Trigger::Schedule);
        assert_eq!(r.user_context, None);
    }

    #[test]
    fn rule1_team_key_claiming_a_user_trigger_is_refused() {
        for trigger in [Trigger::Cli, Trigger::Slack, Trigger::Linear, Trigger::Api] {
            let err = run(&team(), &team_key(), &with_trigger(trigger)).expect_err("refused");
            assert_eq!(err, ResolveError::TriggerRequiresUser { trigger });
        }
    }

    #[test]
    fn rule1_personal_key_with_a_user_trigger_has_user_context() {
        for trigger in [Trigger::Cli, Trigger::Slack, Trigger::Linear, Trigger::Api] {
            let r = ok(&team(), &alice(), &with_trigger(trigger));
            assert_eq!(r.user_context, Some(ALICE), "{trigger}");
        }
        let r = ok(&team(), &alice(), &RunRequest::default());
        assert_eq!(r.trigger, Trigger::Cli, "personal keys default to cli");
        assert_eq!(r.user_context, Some(ALICE));
    }

    #[test]
    fn rule1_personal_key_with_schedule_or_integration_has_no_user_context() {
        for trigger in [Trigger::Schedule, Trigger::Integration] {
            let r = ok(&team(), &alice(), &with_trigger(trigger));
            assert_eq!(r.user_context, None);
            assert!(
                r.delivered.iter().all(|d| d.scope == Scope::Team),
                "{trigger}"
            );
            assert_eq!(delivered(&r).len(), 3);
        }
    }

    // Rule 2 ------------------------------------------------------------------------------

    #[test]
    fn rule2_unknown_environment_is_an_error_never_a_silent_skip() {
        let request = RunRequest {
            environment: Some(l("nope")),
            ..RunRequest::default()
        };
        let err = run(&team(), &alice(), &request).expect_err("unknown");
        assert_eq!(err, ResolveError::EnvironmentNotFound { name: l("nope") });
    }

    #[test]
    fn rule2_a_snapshot_holding_another_environment_does_not_count() {
        let t = team();
        let request = RunRequest {
            environment: Some(l("prod")),
            ..RunRequest::default()
        };
        let snapshot = Snapshot {
            team: &t.shared,
            personal: &t.personal,
            environment: Some(&t.envs[0]),
        };
        let err = resolve(&alice(), &request, snapshot).expect_err("mismatch");
        assert!(matches!(err, ResolveError::EnvironmentNotFound { .. }));
    }

    // Rule 3 ------------------------------------------------------------------------------

    #[test]
    fn rule3_reserved_secret_is_withheld_from_runs_without_its_identity() {
        let r = ok(
            &team(),
            &team_key(),
            &with_secrets(&["DEPLOY_KEY", "DB_URL"]),
        );
        assert_eq!(delivered(&r), vec![("DB_URL".into(), Scope::Team, 1)]);
        assert_eq!(
            missing(&r),
            vec![("DEPLOY_KEY".into(), MissingReason::ReservedForIdentity)]
        );
        let other = Caller::Team {
            identity: Some(l("reviewer")),
        };
        let r = ok(&team(), &other, &with_secrets(&["DEPLOY_KEY"]));
        assert_eq!(
            missing(&r),
            vec![("DEPLOY_KEY".into(), MissingReason::ReservedForIdentity)]
        );
        let r = ok(&team(), &alice(), &with_secrets(&["DEPLOY_KEY"]));
        assert_eq!(
            missing(&r),
            vec![("DEPLOY_KEY".into(), MissingReason::ReservedForIdentity)]
        );
    }

    #[test]
    fn rule3_reserved_secret_is_delivered_to_its_identity() {
        let r = ok(&team(), &deployer(), &RunRequest::default());
        assert_eq!(r.identity, Some(l("deployer")));
        assert!(delivered(&r).contains(&("DEPLOY_KEY".into(), Scope::Team, 3)));
        assert_eq!(delivered(&r).len(), 4);
    }

    #[test]
    fn rule3_personal_secrets_join_the_pool_only_with_user_context() {
        let r = ok(&team(), &alice(), &RunRequest::default());
        assert_eq!(
            delivered(&r),
            vec![
                ("DB_URL".into(), Scope::Team, 1),
                ("GITHUB_TOKEN".into(), Scope::Personal, 11),
                ("OPENAI_KEY".into(), Scope::Personal, 10),
                ("SHARED".into(), Scope::Team, 2),
            ]
        );
    }

    #[test]
    fn rule3_personal_secret_shadows_team_secret_and_is_recorded() {
        let r = ok(&team(), &alice(), &with_secrets(&["OPENAI_KEY"]));
        assert_eq!(
            delivered(&r),
            vec![("OPENAI_KEY".into(), Scope::Personal, 10)]
        );
        assert_eq!(r.shadowed, names(&["OPENAI_KEY"]));
        assert_eq!(r.delivered[0].version, 2);
        // Without user context the team secret is delivered and nothing is shadowed.
        let mut request = with_secrets(&["OPENAI_KEY"]);
        request.trigger = Some(Trigger::Schedule);
        let r = ok(&team(), &alice(), &request);
        assert_eq!(delivered(&r), vec![("OPENAI_KEY".into(), Scope::Team, 4)]);
        assert!(r.shadowed.is_empty());
        // A shadow outside the allowlist is not recorded: the run never had either.
        let r = ok(&team(), &alice(), &with_secrets(&["DB_URL"]));
        assert!(r.shadowed.is_empty());
    }

    // Rule 4 ------------------------------------------------------------------------------

    #[test]
    fn rule4_environment_list_is_the_default_allowlist() {
        let request = RunRequest {
            environment: Some(l("ci")),
            ..RunRequest::default()
        };
        let r = ok(&team(), &alice(), &request);
        assert_eq!(
            delivered(&r),
            vec![
                ("DB_URL".into(), Scope::Team, 1),
                ("GITHUB_TOKEN".into(), Scope::Personal, 11)
            ]
        );
        assert!(r.missing.is_empty());
    }

    #[test]
    fn rule4_run_list_takes_precedence_over_the_environment() {
        let request = RunRequest {
            environment: Some(l("ci")),
            secrets: Some(names(&["SHARED"])),
            ..RunRequest::default()
        };
        let r = ok(&team(), &alice(), &request);
        assert_eq!(delivered(&r), vec![("SHARED".into(), Scope::Team, 2)]);
    }

    #[test]
    fn rule4_empty_list_means_no_secrets_at_all() {
        let r = ok(&team(), &alice(), &with_secrets(&[]));
        assert!(r.delivered.is_empty());
        assert!(r.missing.is_empty());
        let request = RunRequest {
            environment: Some(l("ci")),
            secrets: Some(vec![]),
            ..RunRequest::default()
        };
        assert!(
            ok(&team(), &alice(), &request).delivered.is_empty(),
            "even with an environment"
        );
        let request = RunRequest {
            environment: Some(l("locked")),
            ..RunRequest::default()
        };
        assert!(
            ok(&team(), &alice(), &request).delivered.is_empty(),
            "an empty environment"
        );
    }

    #[test]
    fn rule4_absent_list_delivers_the_whole_pool() {
        let r = ok(&team(), &alice(), &RunRequest::default());
        assert_eq!(r.delivered.len(), 4);
        let request = RunRequest {
            environment: Some(l("open")),
            ..RunRequest::default()
        };
        assert_eq!(
            ok(&team(), &alice(), &request).delivered.len(),
            4,
            "environment without list"
        );
    }

    // Rule 5 ------------------------------------------------------------------------------

    #[test]
    fn rule5_missing_names_do_not_fail_the_run() {
        let r = ok(&team(), &alice(), &with_secrets(&["DB_URL", "NOPE"]));
        assert_eq!(delivered(&r), vec![("DB_URL".into(), Scope::Team, 1)]);
        assert_eq!(missing(&r), vec![("NOPE".into(), MissingReason::NotFound)]);
    }

    #[test]
    fn rule5_personal_unavailable_without_user_context() {
        let mut request = with_secrets(&["GITHUB_TOKEN", "BOB_ONLY"]);
        request.trigger = Some(Trigger::Integration);
        let r = ok(&team(), &alice(), &request);
        assert!(r.delivered.is_empty());
        assert_eq!(
            missing(&r),
            vec![
                ("GITHUB_TOKEN".into(), MissingReason::PersonalUnavailable),
                ("BOB_ONLY".into(), MissingReason::NotFound),
            ]
        );
    }

    #[test]
    fn rule5_another_users_personal_secret_is_reported_not_found() {
        let r = ok(&team(), &alice(), &with_secrets(&["BOB_ONLY"]));
        assert_eq!(
            missing(&r),
            vec![("BOB_ONLY".into(), MissingReason::NotFound)]
        );
        // Same from a team key: nobody's personal secret is revealed.
        let r = ok(
            &team(),
            &team_key(),
            &with_secrets(&["BOB_ONLY", "GITHUB_TOKEN"]),
        );
        assert_eq!(
            missing(&r),
            vec![
                ("BOB_ONLY".into(), MissingReason::NotFound),
                ("GITHUB_TOKEN".into(), MissingReason::NotFound),
            ]
        );
        // Bob's same-named secret never leaks into Alice's run.
        let r = ok(&team(), &alice(), &with_secrets(&["GITHUB_TOKEN"]));
        assert_eq!(
            delivered(&r),
            vec![("GITHUB_TOKEN".into(), Scope::Personal, 11)]
        );
    }

    #[test]
    fn rule3_names_match_exactly_and_repeats_count_once() {
        // Regression (issue 15): `db_url` used to fetch `DB_URL` (renamed in the child), and a
        // `--require` of the one spelling passed with the other.
        let r = ok(
            &team(),
            &alice(),
            &with_secrets(&["db_url", "DB_URL", "Db_Url", "DB_URL"]),
        );
        assert_eq!(delivered(&r), vec![("DB_URL".into(), Scope::Team, 1)]);
        assert_eq!(
            missing(&r),
            vec![
                ("db_url".into(), MissingReason::NotFound),
                ("Db_Url".into(), MissingReason::NotFound)
            ]
        );
        let request = RunRequest {
            required: names(&["openai_key"]),
            ..RunRequest::default()
        };
        let err = run(&team(), &alice(), &request).expect_err("the spelling differs");
        assert!(
            matches!(err, ResolveError::RequiredMissing { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn rule4_the_answer_says_which_allowlist_applied() {
        let source = |request: &RunRequest| ok(&team(), &alice(), request).allowlist;
        assert_eq!(source(&RunRequest::default()), AllowlistSource::None);
        assert_eq!(source(&with_secrets(&[])), AllowlistSource::Run);
        let env = |name: &str| RunRequest {
            environment: Some(l(name)),
            ..RunRequest::default()
        };
        assert_eq!(source(&env("ci")), AllowlistSource::Environment);
        assert_eq!(source(&env("locked")), AllowlistSource::Environment);
        assert_eq!(
            source(&env("open")),
            AllowlistSource::None,
            "an environment without a list"
        );
        let both = RunRequest {
            secrets: Some(names(&["DB_URL"])),
            ..env("ci")
        };
        assert_eq!(source(&both), AllowlistSource::Run);
        assert_eq!(AllowlistSource::Environment.as_str(), "environment");
    }

    #[test]
    fn a_secret_stored_under_a_name_refused_since_is_never_delivered() {
        let mut t = team();
        t.shared.push(TeamSecret {
            id: SecretId(5),
            name: SecretName::stored("EDITOR").expect("syntax"),
            version: 1,
            reserved_for: vec![],
        });
        t.personal.push(PersonalSecret {
            id: SecretId(12),
            owner: ALICE,
            name: SecretName::stored("https_proxy").expect("syntax"),
            version: 1,
        });
        let r = ok(&t, &alice(), &RunRequest::default());
        assert!(
            r.delivered
                .iter()
                .all(|d| d.id != SecretId(5) && d.id != SecretId(12)),
            "{r:?}"
        );
        t.envs.push(Environment {
            name: l("old"),
            secrets: Some(vec![SecretName::stored("EDITOR").expect("syntax")]),
        });
        let r = ok(
            &t,
            &alice(),
            &RunRequest {
                environment: Some(l("old")),
                ..RunRequest::default()
            },
        );
        assert_eq!(
            missing(&r),
            vec![("EDITOR".into(), MissingReason::RefusedName)]
        );
    }

    #[test]
    fn an_identity_change_releases_what_no_identity_reserves_any_more() {
        let before = names(&["DEPLOY_KEY", "SHARED", "Only_Mine", "only_mine"]);
        let after = names(&["deploy_key"]);
        let others = names(&["SHARED"]);
        assert_eq!(
            released(&before, &after, &others),
            names(&["Only_Mine"]),
            "ignoring case, each once"
        );
        assert_eq!(released(&before, &before, []), Vec::<SecretName>::new());
        assert_eq!(
            released(&before, &[], []),
            names(&["DEPLOY_KEY", "SHARED", "Only_Mine"])
        );
        assert!(
            released(&[], &after, []).is_empty(),
            "a new identity releases nothing"
        );
    }

    // Rule 6 ------------------------------------------------------------------------------

    #[test]
    fn rule6_required_missing_fails_with_the_missing_list() {
        let request = RunRequest {
            secrets: Some(names(&["DB_URL", "NOPE", "DEPLOY_KEY"])),
            required: names(&["NOPE", "DEPLOY_KEY", "DB_URL"]),
            ..RunRequest::default()
        };
        let err = run(&team(), &alice(), &request).expect_err("required missing");
        let ResolveError::RequiredMissing {
            missing,
            resolution,
        } = err.clone()
        else {
            panic!("wrong error {err:?}");
        };
        assert_eq!(
            missing,
            vec![
                Missing {
                    name: n("NOPE"),
                    reason: MissingReason::NotFound
                },
                Missing {
                    name: n("DEPLOY_KEY"),
                    reason: MissingReason::ReservedForIdentity
                },
            ]
        );
        assert_eq!(
            resolution.missing.len(),
            2,
            "the run record keeps the full list"
        );
        assert_eq!(
            err.to_string(),
            "required secrets are missing: NOPE (not_found), DEPLOY_KEY (reserved_for_identity)"
        );
    }

    #[test]
    fn rule6_required_present_resolves() {
        let request = RunRequest {
            required: names(&["DB_URL"]),
            ..RunRequest::default()
        };
        let r = ok(&team(), &alice(), &request);
        assert!(r.missing.is_empty());
        assert_eq!(r.delivered.len(), 4);
    }

    #[test]
    fn rule6_required_never_widens_the_allowlist() {
        let request = RunRequest {
            secrets: Some(names(&["DB_URL"])),
            required: names(&["SHARED"]),
            ..RunRequest::default()
        };
        let err = run(&team(), &alice(), &request).expect_err("not allowlisted");
        let ResolveError::RequiredMissing { missing, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            missing,
            vec![Missing {
                name: n("SHARED"),
                reason: MissingReason::NotAllowlisted
            }]
        );
    }

    #[test]
    fn rule6_required_personal_secret_without_user_context() {
        let request = RunRequest {
            trigger: Some(Trigger::Schedule),
            required: names(&["GITHUB_TOKEN"]),
            ..RunRequest::default()
        };
        let err = run(&team(), &alice(), &request).expect_err("needs a user");
        let ResolveError::RequiredMissing { missing, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(missing[0].reason, MissingReason::PersonalUnavailable);
    }

    #[test]
    fn wire_names_are_stable() {
        let json = serde_json::to_string(&[
            MissingReason::NotFound,
            MissingReason::ReservedForIdentity,
            MissingReason::PersonalUnavailable,
            MissingReason::NotAllowlisted,
        ])
        .expect("serialises");
        assert_eq!(
            json,
            r#"["not_found","reserved_for_identity","personal_unavailable","not_allowlisted"]"#
        );
        for t in [Trigger::Cli, Trigger::Schedule, Trigger::Integration] {
            let json = serde_json::to_string(&t).expect("serialises");
            assert_eq!(json, format!("\"{t}\""));
        }
    }
}

#[cfg(test)]
mod properties {
    //! Invariants that must hold for every team, caller and request, whatever the rules'
    //! details: nobody receives another user's secret or an identity's reserved secret, and
    //! every name asked for is accounted for exactly once.

    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 6] = ["A", "B", "C", "D", "E", "F"];
    const IDENTITIES: [&str; 2] = ["bot", "deployer"];

    fn name() -> impl Strategy<Value = SecretName> {
        prop::sample::select(&NAMES[..]).prop_map(|n| SecretName::new(n).expect("valid"))
    }
    fn names() -> impl Strategy<Value = Vec<SecretName>> {
        prop::collection::vec(name(), 0..5)
    }
    fn label() -> impl Strategy<Value = Label> {
        prop::sample::select(&IDENTITIES[..]).prop_map(|n| Label::new(n).expect("valid"))
    }
    fn trigger() -> impl Strategy<Value = Trigger> {
        prop::sample::select(&Trigger::ALL[..])
    }

    prop_compose! {
        fn world()(
            team in prop::collection::btree_map(name(), prop::collection::vec(label(), 0..2), 0..6),
            personal in prop::collection::vec((0i64..3, name()), 0..10),
        ) -> (Vec<TeamSecret>, Vec<PersonalSecret>) {
            let team = team.into_iter().enumerate().map(|(i, (name, reserved_for))| TeamSecret {
                id: SecretId(i64::try_from(i).expect("small")),
                name,
                version: 1,
                reserved_for,
            }).collect();
            let mut seen = BTreeSet::new();
            let personal = personal.into_iter().enumerate()
                .filter(|(_, (owner, name))| seen.insert((*owner, name.clone())))
                .map(|(i, (owner, name))| PersonalSecret {
                    id: SecretId(100 + i64::try_from(i).expect("small")),
                    owner: UserId(owner),
                    name,
                    version: 1,
                }).collect();
            (team, personal)
        }
    }

    fn caller() -> impl Strategy<Value = Caller> {
        prop_oneof![
            (0i64..3).prop_map(|u| Caller::Personal { user: UserId(u) }),
            prop::option::of(label()).prop_map(|identity| Caller::Team { identity }),
        ]
    }

    /// Callers and requests from small sets, names in several spellings (`A`, `a`, `AB`…) and
    /// lists that differ only in where one name ends and the next begins.
    fn spelled_inputs() -> impl Strategy<Value = (Caller, RunRequest)> {
        let spelled = || {
            prop::collection::vec(
                prop::sample::select(&["A", "a", "B", "AB", "A_B", "_"][..])
                    .prop_map(|n| SecretName::new(n).expect("valid")),
                0..3,
            )
        };
        (
            caller(),
            prop::option::of(trigger()),
            prop::option::of(label()),
            prop::option::of(spelled()),
            spelled(),
        )
            .prop_map(|(caller, trigger, environment, secrets, required)| {
                (
                    caller,
                    RunRequest {
                        trigger,
                        environment,
                        secrets,
                        required,
                    },
                )
            })
    }

    /// Two inputs: the same, unrelated, or one changed in a way that must tell them apart
    /// (every name's case flipped, no list against an empty one, a name moved from the
    /// allowlist to the required list).
    fn input_pairs() -> impl Strategy<Value = ((Caller, RunRequest), (Caller, RunRequest))> {
        let flip = |names: &[SecretName]| -> Vec<SecretName> {
            let flipped = |n: &SecretName| {
                let s: String = n
                    .as_str()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_uppercase() {
                            c.to_ascii_lowercase()
                        } else {
                            c.to_ascii_uppercase()
                        }
                    })
                    .collect();
                SecretName::new(s).expect("valid")
            };
            names.iter().map(flipped).collect()
        };
        (spelled_inputs(), spelled_inputs(), 0..5u8).prop_map(move |(a, other, how)| {
            let mut b = a.clone();
            let request = &mut b.1;
            match how {
                0 => {}
                1 => b = other,
                2 => {
                    request.required = flip(&request.required);
                    request.secrets = request.secrets.as_deref().map(flip);
                }
                3 => {
                    request.secrets = match request.secrets.take() {
                        None => Some(Vec::new()),
                        Some(list) if list.is_empty() => None,
                        list => list,
                    };
                }
                _ => {
                    if let Some(name) = request.secrets.as_mut().and_then(Vec::pop) {
                        request.required.insert(0, name);
                    }
                }
            }
            (a, b)
        })
    }

    proptest! {
        #[test]
        fn resolution_never_leaks_and_accounts_for_every_name(
            (team, personal) in world(),
            caller in caller(),
            trigger in prop::option::of(trigger()),
            secrets in prop::option::of(names()),
            required in names(),
        ) {
            let request = RunRequest { trigger, environment: None, secrets, required };
            let snapshot = Snapshot { team: &team, personal: &personal, environment: None };
            let resolution = match resolve(&caller, &request, snapshot) {
                Ok(r) => r,
                Err(ResolveError::RequiredMissing { missing, resolution }) => {
                    prop_assert!(!missing.is_empty());
                    for m in &missing {
                        prop_assert!(request.required.contains(&m.name));
                        prop_assert!(!resolution.delivered.iter().any(|d| d.name == m.name));
                    }
                    *resolution
                }
                Err(ResolveError::TriggerRequiresUser { trigger }) => {
                    prop_assert!(trigger.is_user_initiated());
                    prop_assert_eq!(caller.kind(), KeyKind::Team);
                    return Ok(());
                }
                Err(e @ ResolveError::EnvironmentNotFound { .. }) => {
                    return Err(TestCaseError::fail(format!("no environment was named: {e}")));
                }
            };
            let me = match caller { Caller::Personal { user } => Some(user), Caller::Team { .. } => None };
            for d in &resolution.delivered {
                match d.scope {
                    Scope::Personal => {
                        let s = personal.iter().find(|s| s.id == d.id).expect("exists");
                        prop_assert_eq!(Some(s.owner), me, "another user's secret delivered");
                        prop_assert!(resolution.user_context.is_some(), "personal without user");
                    }
                    Scope::Team => {
                        let s = team.iter().find(|s| s.id == d.id).expect("exists");
                        if !s.reserved_for.is_empty() {
                            let id = resolution.identity.as_ref();
                            prop_assert!(id.is_some_and(|i| s.reserved_for.contains(i)), "reserved leaked");
                        }
                    }
                }
            }
            let delivered: BTreeSet<_> = resolution.delivered.iter().map(|d| d.name.clone()).collect();
            prop_assert_eq!(delivered.len(), resolution.delivered.len(), "a name delivered twice");
            let missing: BTreeSet<_> = resolution.missing.iter().map(|m| m.name.clone()).collect();
            prop_assert_eq!(missing.len(), resolution.missing.len(), "a name missing twice");
            prop_assert!(delivered.is_disjoint(&missing));
            if let Some(list) = &request.secrets {
                for n in list {
                    prop_assert!(delivered.contains(n) ^ missing.contains(n), "{} unaccounted", n);
                }
                prop_assert!(delivered.iter().all(|n| list.contains(n)), "outside the allowlist");
            }
            if resolution.user_context.is_none() {
                prop_assert!(resolution.missing.iter().all(|m| m.reason != MissingReason::NotAllowlisted
                    || request.required.contains(&m.name)));
            }
        }

        /// The bytes a decision is kept under tell inputs apart exactly as spelled: equal
        /// bytes only for equal inputs, so a kept decision is never served to other inputs
        /// (a name asked for as `a` is reported missing as `a`, not as `A`).
        #[test]
        fn inputs_are_equal_exactly_when_spelled_alike((a, b) in input_pairs()) {
            let spelled = |(caller, request): &(Caller, RunRequest)| {
                let list = |names: &[SecretName]| names.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>();
                (
                    caller.clone(),
                    request.trigger,
                    request.environment.clone(),
                    request.secrets.as_deref().map(list),
                    list(&request.required),
                )
            };
            prop_assert_eq!(a.1.inputs(&a.0) == b.1.inputs(&b.0), spelled(&a) == spelled(&b));
            prop_assert_eq!(a.1.inputs(&a.0), a.1.clone().inputs(&a.0.clone()), "deterministic");
        }
    }
}
