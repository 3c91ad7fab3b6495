//! What every backend shares: decoding rows into the store's types, and the small conversions
//! between the core's types and column values. Queries stay with each backend (their SQL
//! differs); rows are read through [`Cells`], which each backend's row type implements.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{
    Actor, AuditEvent, AuditRow, KeyRef, KeyRow, ListKind, MemberRow, NamedList, RunRow, SecretRow,
    StoreError,
};
use crate::core::apikey::{KeyDigest, KeyId, KeyKind};
use crate::core::name::{Label, SecretName};
use crate::core::perm::Role;
use crate::core::resolve::{Scope, SecretId, UserId};

/// Typed access to a row's columns by name.
pub(super) trait Cells {
    /// An integer column.
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    /// A nullable integer column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// A binary column.
    fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError>;
}

macro_rules! cells {
    ($row:ty) => {
        impl Cells for $row {
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn blob(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

cells!(SqliteRow);
cells!(PgRow);

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn role(text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(|e| corrupt("role", e))
}

pub(super) fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::Team => "team",
        Scope::Personal => "personal",
    }
}

pub(super) fn scope(text: &str) -> Result<Scope, StoreError> {
    match text {
        "team" => Ok(Scope::Team),
        "personal" => Ok(Scope::Personal),
        other => Err(corrupt("scope", other)),
    }
}

pub(super) fn team_setting(text: &str) -> Result<crate::core::byok::TeamSetting, StoreError> {
    use crate::core::byok::TeamSetting;
    match text {
        "allowed" => Ok(TeamSetting::Allowed),
        "forbidden" => Ok(TeamSetting::Forbidden),
        other => Err(corrupt("BYOK setting", other)),
    }
}

pub(super) fn kind_text(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Personal => "personal",
        KeyKind::Team => "team",
    }
}

/// A stored secret name: its syntax is checked, not the refused names, which grow over time
/// (resolution never delivers a name refused since).
pub(super) fn secret_name(text: String) -> Result<SecretName, StoreError> {
    SecretName::stored(text).map_err(|e| corrupt("secret name", e))
}

pub(super) fn label(text: String) -> Result<Label, StoreError> {
    Label::new(text).map_err(|e| corrupt("name", e))
}

pub(super) fn u32_of(n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|e| corrupt("number", e))
}

pub(super) fn json(value: &serde_json::Value) -> String {
    value.to_string()
}

pub(super) fn parse_json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("json", e))
}

pub(super) fn names_json(names: &[SecretName]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn parse_names(text: &str) -> Result<Vec<SecretName>, StoreError> {
    let names: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt("secret names", e))?;
    names.into_iter().map(secret_name).collect()
}

/// Whether every name of `released` is in `release` (compared ignoring case, as reservation
/// is).
pub(super) fn all_released(released: &[SecretName], release: &[SecretName]) -> bool {
    released
        .iter()
        .all(|n| release.iter().any(|r| r.same_folded(n)))
}

/// The table of environments or identities.
pub(super) const fn list_table(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Environment => "environments",
        ListKind::Identity => "identities",
    }
}

/// A key's id and name, from a row holding `key_id` and `name`.
pub(super) fn key_ref(row: &impl Cells) -> Result<KeyRef, StoreError> {
    Ok(KeyRef {
        key_id: KeyId::try_from(row.text("key_id")?).map_err(|e| corrupt("key id", e))?,
        name: row.text("name")?,
    })
}

/// The columns a new run record is written to, in this order.
pub(super) const RUN_COLUMNS: &str =
    "id, team_id, key_id, user_id, identity, environment, record, decision, status, started_at";

/// The columns a decision's shared record is written to, in this order.
pub(super) const SHARED_COLUMNS: &str = "digest, record";

/// What [`run_row`] reads, from runs `r` with their shared records and their keys' names:
/// `SELECT {RUN_SELECT} WHERE …`.
pub(super) const RUN_SELECT: &str =
    "r.id, r.team_id, r.key_id, r.user_id, r.identity, r.record, d.record AS shared, r.status,
     r.started_at, r.ended_at, r.outcome, k.name AS key_name
     FROM runs r LEFT JOIN run_decisions d ON d.digest = r.decision
     LEFT JOIN api_keys k ON k.key_id = r.key_id";

/// The columns a new audit event is written to, in this order.
pub(super) const AUDIT_COLUMNS: &str =
    "team_id, at, actor_user, actor_key, actor_name, on_behalf_of,
    capability, client_addr, user_agent, action, target, outcome, detail";

/// Placeholders for one row of [`AUDIT_COLUMNS`].
pub(super) const AUDIT_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// An audit event as stored, from a row holding `id` and [`AUDIT_COLUMNS`].
pub(super) fn audit_row(row: &impl Cells) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: row.int("id")?,
        event: AuditEvent {
            team: row.opt_int("team_id")?,
            at: row.int("at")?,
            actor: Actor {
                user: row.opt_int("actor_user")?.map(UserId),
                key: row.opt_text("actor_key")?,
                name: row.opt_text("actor_name")?,
                on_behalf_of: row.opt_text("on_behalf_of")?,
                capability: row
                    .opt_text("capability")?
                    .map(|c| c.parse().map_err(|e| corrupt("capability", e)))
                    .transpose()?,
                client: row.opt_text("client_addr")?,
                user_agent: row.opt_text("user_agent")?,
            },
            action: row.text("action")?,
            target: row.text("target")?,
            outcome: row.text("outcome")?,
            detail: row.text("detail")?,
        },
    })
}

pub(super) const KEY_COLUMNS: &str =
    "k.id, k.key_id, k.digest, k.last4, k.team_id, k.kind, k.capability, k.user_id,
    k.created_by, c.name AS created_by_name, k.role_at_creation, k.identity, k.name,
    k.created_at, k.expires_at, k.last_used_at, k.revoked_at";

pub(super) fn key_row(row: &impl Cells) -> Result<KeyRow, StoreError> {
    let digest: Vec<u8> = row.blob("digest")?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| corrupt("key digest", "length"))?;
    let kind = match row.text("kind")?.as_str() {
        "personal" => KeyKind::Personal,
        "team" => KeyKind::Team,
        other => return Err(corrupt("key kind", other)),
    };
    Ok(KeyRow {
        row: row.int("id")?,
        key_id: KeyId::try_from(row.text("key_id")?).map_err(|e| corrupt("key id", e))?,
        digest: KeyDigest::from_bytes(digest),
        last4: row.text("last4")?,
        team: row.int("team_id")?,
        kind,
        capability: row
            .text("capability")?
            .parse()
            .map_err(|e| corrupt("key capability", e))?,
        user: row.opt_int("user_id")?.map(UserId),
        created_by: UserId(row.int("created_by")?),
        created_by_name: row.text("created_by_name")?,
        role_at_creation: row
            .opt_text("role_at_creation")?
            .map(|r| role(&r))
            .transpose()?,
        identity: row.opt_text("identity")?.map(label).transpose()?,
        name: row.text("name")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        last_used_at: row.opt_int("last_used_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

pub(super) const SECRET_COLUMNS: &str =
    "s.id, s.team_id, s.scope, s.owner_id, o.name AS owner_name, s.name,
    s.description, s.version, s.key_version, s.value_len, s.created_at, c.name AS created_by,
    s.updated_at, u.name AS updated_by, s.revision, s.broker";

pub(super) fn secret_row(row: &impl Cells) -> Result<SecretRow, StoreError> {
    Ok(SecretRow {
        id: SecretId(row.int("id")?),
        team: row.int("team_id")?,
        scope: scope(&row.text("scope")?)?,
        owner: row.opt_int("owner_id")?.map(UserId),
        owner_name: row.opt_text("owner_name")?,
        name: secret_name(row.text("name")?)?,
        description: row.text("description")?,
        version: u32_of(row.int("version")?)?,
        key_version: u32_of(row.int("key_version")?)?,
        value_len: u32_of(row.int("value_len")?)?,
        created_at: row.int("created_at")?,
        created_by: row.text("created_by")?,
        updated_at: row.int("updated_at")?,
        updated_by: row.text("updated_by")?,
        revision: revision(row.int("revision")?)?,
        broker: broker_policy(row.opt_text("broker")?)?,
    })
}

/// A stored broker policy (the JSON of its [`PolicySpec`](crate::core::broker::PolicySpec)).
pub(super) fn broker_policy(
    text: Option<String>,
) -> Result<Option<crate::core::broker::Policy>, StoreError> {
    text.map(|text| {
        let spec = serde_json::from_str(&text).map_err(|e| corrupt("broker policy", e))?;
        crate::core::broker::Policy::from_spec(&spec).map_err(|e| corrupt("broker policy", e))
    })
    .transpose()
}

/// A broker policy as stored.
pub(super) fn broker_text(policy: Option<&crate::core::broker::Policy>) -> Option<String> {
    policy.map(|p| serde_json::to_string(&p.spec()).unwrap_or_default())
}

fn revision(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| corrupt("revision", e))
}

pub(super) fn run_row(row: &impl Cells) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        id: row.text("id")?,
        team: row.int("team_id")?,
        key_id: row.text("key_id")?,
        user: row.opt_int("user_id")?.map(UserId),
        identity: row.opt_text("identity")?,
        record: with_key_name(
            run_record(&row.text("record")?, row.opt_text("shared")?.as_deref())?,
            row.opt_text("key_name")?,
        ),
        status: row.text("status")?,
        started_at: row.int("started_at")?,
        ended_at: row.opt_int("ended_at")?,
        outcome: row
            .opt_text("outcome")?
            .map(|o| parse_json(&o))
            .transpose()?,
    })
}

/// The record with `who.key_name`: the name of the key that started the run, as it is now (it
/// is not part of what was recorded, so a listing can say which agent ran without a second
/// request).
fn with_key_name(mut record: serde_json::Value, name: Option<String>) -> serde_json::Value {
    if let (Some(name), Some(who)) = (name, record.get_mut("who").and_then(|w| w.as_object_mut())) {
        who.insert("key_name".into(), name.into());
    }
    record
}

/// A run's record: its own part, with its decision's shared part added (runs recorded before
/// records were shared have none, and hold everything in their own).
fn run_record(own: &str, shared: Option<&str>) -> Result<serde_json::Value, StoreError> {
    let mut record = parse_json(own)?;
    if let Some(shared) = shared {
        let serde_json::Value::Object(shared) = parse_json(shared)? else {
            return Err(corrupt("shared run record", "not an object"));
        };
        let Some(own) = record.as_object_mut() else {
            return Err(corrupt("run record", "not an object"));
        };
        own.extend(shared);
    }
    Ok(record)
}

pub(super) fn named_list(row: &impl Cells) -> Result<NamedList, StoreError> {
    Ok(NamedList {
        name: label(row.text("name")?)?,
        description: row.text("description")?,
        secrets: row
            .opt_text("secrets")?
            .map(|s| parse_names(&s))
            .transpose()?,
        updated_at: row.int("updated_at")?,
        revision: revision(row.int("revision")?)?,
    })
}

pub(super) fn member_row(row: &impl Cells) -> Result<MemberRow, StoreError> {
    Ok(MemberRow {
        user: UserId(row.int("id")?),
        name: label(row.text("name")?)?,
        role: role(&row.text("role")?)?,
        created_at: row.int("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_record_is_its_own_part_and_its_shared_part() {
        let own = r#"{"who":{"key_id":"AbCd1234","user":"ann"}}"#;
        let shared = r#"{"trigger":"cli","delivered":{"team":{"DB_URL":3},"personal":{}}}"#;
        assert_eq!(
            run_record(own, Some(shared)).expect("reads"),
            serde_json::json!({
                "who": {"key_id": "AbCd1234", "user": "ann"},
                "trigger": "cli",
                "delivered": {"team": {"DB_URL": 3}, "personal": {}},
            })
        );
        // Runs recorded before records were shared hold everything in their own part.
        let whole = r#"{"who":{"key_id":"AbCd1234"},"trigger":"schedule"}"#;
        assert_eq!(
            run_record(whole, None).expect("reads"),
            serde_json::json!({"who": {"key_id": "AbCd1234"}, "trigger": "schedule"})
        );
    }

    #[test]
    fn a_run_record_that_is_not_two_objects_is_corrupt() {
        for (own, shared) in [
            ("[1]", Some("{}")),
            ("{}", Some("[]")),
            ("{}", Some("not json")),
            ("{", None),
        ] {
            assert!(
                matches!(run_record(own, shared), Err(StoreError::Corrupt(_))),
                "{own} {shared:?}"
            );
        }
    }
}
