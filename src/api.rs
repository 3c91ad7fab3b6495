//! Wire types of the HTTP API (DESIGN §9), shared by the server and the client.
//!
//! Requests refuse unknown fields, so a misspelt field is an error instead of being ignored.
//! Only [`ResolvedSecret`] carries a value, and its `Debug` redacts it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::apikey::KeyKind;
pub use crate::core::broker::PolicySpec;
use crate::core::byok::TeamSetting;
use crate::core::name::{Label, SecretName};
use crate::core::perm::{Capability, Role};
use crate::core::resolve::{AllowlistSource, Missing, Scope, Trigger};
pub use crate::core::seal::Sealed;
use crate::core::value::WipingBuf;

/// An error body (`application/problem+json`, RFC 9457) with a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable, machine-readable code, e.g. `trigger_requires_user`.
    pub code: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// For `required_missing`: the names and reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub missing: Vec<Missing>,
    /// For `would_release` and `identity_in_use`: the team secret names the change would make
    /// available to every run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub would_release: Vec<String>,
    /// For `identity_in_use`: the keys bound to the identity, which deleting it revokes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyRefInfo>,
    /// For `name_conflict`: the existing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingSecret>,
}

/// A key as an answer names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyRefInfo {
    /// Key id.
    pub id: String,
    /// Key name.
    pub name: String,
}

/// The secret a new name conflicts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExistingSecret {
    /// Its scope.
    #[schema(value_type = String, example = "team")]
    pub scope: Scope,
    /// Its owner (a personal secret; only to callers allowed to list it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its name.
    pub name: String,
}

/// `GET /v1/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Whoami {
    /// Team name.
    pub team: String,
    /// The key's user (personal keys).
    pub user: Option<String>,
    /// The effective role.
    #[schema(value_type = String, example = "builder")]
    pub role: Role,
    /// Personal or team.
    #[schema(value_type = String, example = "personal")]
    pub key_kind: KeyKind,
    /// The key id.
    pub key_id: String,
    /// What the key may do now: `run` (start runs, finish and read its own, whoami) or
    /// `manage` (everything its role allows). A `manage` team key whose creator is gone shows
    /// `run`.
    #[schema(value_type = String, example = "manage")]
    pub capability: Capability,
    /// The identity runs execute as (team keys bound to one).
    pub identity: Option<String>,
    /// The team's BYOK setting (DESIGN §14): `allowed` or `forbidden` (read as `allowed` from
    /// a platform older than the setting).
    #[serde(default)]
    #[schema(value_type = String, example = "allowed")]
    pub byok: TeamSetting,
}

/// `PATCH /v1/team`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    /// Whether members' device keys may replace the team's provider secrets in their local runs
    /// (DESIGN §14): `allowed` or `forbidden`.
    #[schema(value_type = String, example = "forbidden")]
    pub byok: TeamSetting,
}

/// A team's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TeamInfo {
    /// Team name.
    pub name: String,
    /// `allowed` or `forbidden`.
    #[schema(value_type = String, example = "allowed")]
    pub byok: TeamSetting,
}

/// `POST /v1/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Where the key is used.
    pub name: String,
    /// Personal or team.
    #[schema(value_type = String, example = "personal")]
    pub kind: KeyKind,
    /// `1d`, `30d`, `90d`, `never`, or a duration such as `12h` (default `90d`).
    #[serde(default)]
    pub expires: Option<String>,
    /// For a team key: the identity its runs execute as (such a key is always `run`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub identity: Option<Label>,
    /// `run` or `manage`; default `manage` for a personal key, `run` for a team key. Never more
    /// than the creating key's.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "run")]
    pub capability: Option<Capability>,
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `latch_p_…wxyz`.
    pub preview: String,
    /// Personal or team.
    #[schema(value_type = String, example = "personal")]
    pub kind: KeyKind,
    /// `run` or `manage`, as created.
    #[schema(value_type = String, example = "run")]
    pub capability: Capability,
    /// The user a personal key acts as.
    pub user: Option<String>,
    /// Creator.
    pub created_by: String,
    /// Bound identity.
    pub identity: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms (coalesced: up to a minute behind).
    pub last_used_at: Option<i64>,
    /// Unix ms.
    pub expires_at: Option<i64>,
    /// Unix ms.
    pub revoked_at: Option<i64>,
}

/// The answer to a key creation: the only time the raw key is shown.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key's listing entry.
    pub info: KeyInfo,
    /// The raw key. Shown once.
    pub key: String,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/secrets`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecret {
    /// Team or personal.
    #[schema(value_type = String, example = "team")]
    pub scope: Scope,
    /// Name (the environment variable).
    #[schema(value_type = String, example = "DATABASE_URL")]
    pub name: SecretName,
    /// The value (write-only), in plain text. Give this or `sealed_value`, not both.
    #[serde(default)]
    pub value: Option<String>,
    /// The value sealed to the team's sealing key (`GET /v1/seal-key`, DESIGN §12): the
    /// plaintext never crosses the API. latch's own clients always send this.
    #[serde(default)]
    pub sealed_value: Option<Sealed>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// A broker policy (DESIGN §13): every run that receives the secret gets a placeholder,
    /// and latch puts the value only into requests to these hosts.
    #[serde(default)]
    pub broker: Option<PolicySpec>,
}

impl fmt::Debug for CreateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSecret")
            .field("scope", &self.scope)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `PATCH /v1/secrets/{scope}/{name}`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSecret {
    /// A new value, in plain text. Give this or `sealed_value`, not both.
    #[serde(default)]
    pub value: Option<String>,
    /// A new value sealed to the team's sealing key (`GET /v1/seal-key`, DESIGN §12).
    #[serde(default)]
    pub sealed_value: Option<Sealed>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// A new broker policy; `null` removes it (absent: unchanged).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PolicySpec>)]
    #[allow(clippy::option_option)] // absent (unchanged), null (cleared) or a policy
    pub broker: Option<Option<PolicySpec>>,
}

/// A field that is present (even as `null`) becomes `Some`; an absent one stays `None` through
/// `#[serde(default)]`.
#[allow(clippy::option_option)] // absent, null and a value are three different requests
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl fmt::Debug for UpdateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateSecret")
            .field("value", &self.value.as_ref().map(|_| "[REDACTED]"))
            .field("sealed_value", &self.sealed_value)
            .field("description", &self.description)
            .field("broker", &self.broker)
            .finish()
    }
}

/// `GET /v1/seal-key`: what a writer seals a value to (DESIGN §12). HPKE base mode with the
/// suite named; `info` is the HPKE info; the associated data is the text
/// `latch/v1 sealed value\nteam=TEAM\nscope=SCOPE\nowner=OWNER\nname=NAME\nkey=KEY_ID`, with
/// `OWNER` empty for a team secret and this answer's `owner` for a personal one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SealKey {
    /// The key's id (the first 16 hex digits of SHA-256 of the public key).
    pub key_id: String,
    /// The X25519 public key (32 bytes), standard base64.
    pub public_key: String,
    /// The HPKE suite.
    pub suite: String,
    /// The HPKE info.
    pub info: String,
    /// The team, as the associated data names it.
    pub team: String,
    /// The caller, as the associated data names the owner of a personal secret they write
    /// (absent for a team key: it writes no personal secrets).
    pub owner: Option<String>,
}

/// A secret's metadata (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    /// Name.
    pub name: String,
    /// Scope.
    #[schema(value_type = String, example = "team")]
    pub scope: Scope,
    /// Owner of a personal secret.
    pub owner: Option<String>,
    /// Description.
    pub description: String,
    /// Version.
    pub version: u32,
    /// Value length in bytes.
    pub value_length: u32,
    /// Unix ms.
    pub created_at: i64,
    /// Creator.
    pub created_by: String,
    /// Unix ms.
    pub updated_at: i64,
    /// Last updater.
    pub updated_by: String,
    /// Moved by every change; the `ETag`, for `If-Match`.
    pub revision: u64,
    /// Its broker policy, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<PolicySpec>,
}

/// `PUT /v1/environments/{name}` and `PUT /v1/identities/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutList {
    /// Secret names (for an environment, absent means no list).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub secrets: Option<Vec<SecretName>>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Identities only: team secret names this change may make available to every run (no
    /// identity reserving them any more). Without it such a change is 409 `would_release`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub release: Vec<SecretName>,
}

/// An environment or identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Secret names; `null` for an environment without a list.
    pub secrets: Option<Vec<String>>,
    /// Unix ms.
    pub updated_at: i64,
    /// Moved by every change; the `ETag`, for `If-Match`.
    pub revision: u64,
}

/// `POST /v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// User name.
    #[schema(value_type = String, example = "alice")]
    pub name: Label,
    /// Role.
    #[schema(value_type = String, example = "builder")]
    pub role: Role,
    /// When the first (enrolment) key expires: as for `POST /v1/api-keys`, default `7d`. The
    /// new member should make a key of their own with it and let it expire.
    #[serde(default)]
    pub expires: Option<String>,
}

/// `PATCH /v1/members/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// The new role.
    #[schema(value_type = String, example = "builder")]
    pub role: Role,
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    /// User name.
    pub name: String,
    /// Role.
    #[schema(value_type = String, example = "builder")]
    pub role: Role,
    /// Unix ms.
    pub created_at: i64,
}

/// The answer to `DELETE /v1/members/{user}`: what the removal revoked and deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RemovedMember {
    /// Who was removed.
    pub name: String,
    /// Their personal keys, revoked for good.
    pub revoked_keys: Vec<KeyRefInfo>,
    /// Their personal secrets, deleted.
    pub deleted_secrets: Vec<String>,
}

/// The answer to `DELETE /v1/identities/{name}` (and `/v1/environments/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeletedList {
    /// What was deleted.
    pub name: String,
    /// Team secret names now available to every run.
    pub released: Vec<String>,
    /// Keys bound to the identity, revoked with it.
    pub revoked_keys: Vec<KeyRefInfo>,
}

/// The answer to `POST /v1/members`: the member and their first personal key, shown once.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct AddedMember {
    /// The member.
    pub member: MemberInfo,
    /// Their first personal key.
    pub key: CreatedKey,
}

impl fmt::Debug for AddedMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddedMember")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)] // wire fields, each an independent, documented switch
pub struct ResolveRun {
    /// How the run was started.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "cli")]
    pub trigger: Option<Trigger>,
    /// Environment whose list is the default allowlist.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub environment: Option<Label>,
    /// The run's allowlist; absent differs from empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub secrets: Option<Vec<SecretName>>,
    /// Names whose absence must stop the run.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub required: Vec<SecretName>,
    /// Resolve without starting a run: the answer names what would be delivered (never a
    /// value) and no run is recorded (DESIGN §2 rule 8).
    #[serde(default)]
    pub dry_run: bool,
    /// The launcher becomes the command (`latch run --no-scrub` `execve`s it), so the run's
    /// end is never reported: it is recorded as `exec`, not left `started` (DESIGN §6).
    #[serde(default)]
    pub exec: bool,
    /// Names to broker in this run only (DESIGN §13 `--broker NAME=HOST,...`). A secret with a
    /// policy of its own keeps it: a run cannot widen where a value may go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broker: Vec<AdHocBroker>,
    /// Names whose policy this run sets aside (`--no-broker NAME`): the command gets the real
    /// value, unless the policy says `always`. Recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub no_broker: Vec<SecretName>,
    /// Provider variables the launcher holds the user's own device keys for (DESIGN §14:
    /// `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`); names only, never a value.
    /// Those the run would receive are left out of the answer (the device key stands in), unless
    /// `byok_fallback`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub byok: Vec<SecretName>,
    /// `--byok`: the user asked for device keys even in CI or a container; refused (403
    /// `byok_refused`) for a team key, a trigger no person started, or a team that forbids it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub byok_forced: bool,
    /// `--fallback-to-team`: deliver the team's values of the `byok` names too, for the broker
    /// to replay a request the device key could not make (the command never gets them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub byok_fallback: bool,
}

/// What the platform decided about a run's device keys (DESIGN §14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ByokAnswer {
    /// The team's setting.
    #[schema(value_type = String, example = "allowed")]
    pub setting: TeamSetting,
    /// Names the device key stands in for, each with its broker policy when the run brokers it.
    pub applied: Vec<ByokApplied>,
    /// Why no device key is used, when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A name a device key stands in for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ByokApplied {
    /// The variable.
    pub name: String,
    /// Its broker policy, when the run brokers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<PolicySpec>,
}

/// A name brokered by one run only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdHocBroker {
    /// The secret's name.
    #[schema(value_type = String)]
    pub name: SecretName,
    /// Where its value may go.
    pub policy: PolicySpec,
}

/// A name a dry run would deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WouldDeliver {
    /// Name.
    pub name: String,
    /// Scope.
    #[schema(value_type = String, example = "team")]
    pub scope: Scope,
    /// Version.
    pub version: u32,
}

/// The answer to a dry run: names only, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DryRunInfo {
    /// Effective trigger.
    #[schema(value_type = String, example = "cli")]
    pub trigger: Trigger,
    /// Which allowlist applied: `run`, `environment` or `none`.
    #[schema(value_type = String, example = "environment")]
    pub allowlist: AllowlistSource,
    /// What a run would receive.
    pub secrets: Vec<WouldDeliver>,
    /// Names asked for and not deliverable, with reasons.
    #[schema(value_type = Vec<Object>)]
    pub missing: Vec<Missing>,
    /// Names where a personal secret would override a team secret.
    pub shadowed: Vec<String>,
}

/// A delivered secret: name, scope, version and the value.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ResolvedSecret {
    /// Name (the environment variable).
    pub name: String,
    /// Scope.
    #[schema(value_type = String, example = "team")]
    pub scope: Scope,
    /// Version.
    pub version: u32,
    /// The value.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub value: SecretString,
    /// Present when the run brokers it (DESIGN §13): the command gets a placeholder, and the
    /// value goes only into this header of requests to these hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<PolicySpec>,
}

fn expose<S: serde::Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.expose_secret())
}

impl fmt::Debug for ResolvedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedSecret")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("version", &self.version)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

/// The answer to `POST /v1/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Resolved {
    /// Run id, for `POST /v1/runs/{id}/finish`.
    pub run_id: String,
    /// Effective trigger.
    #[schema(value_type = String, example = "cli")]
    pub trigger: Trigger,
    /// Which allowlist applied: `run`, `environment` or `none` (the whole pool).
    #[schema(value_type = String, example = "environment")]
    pub allowlist: AllowlistSource,
    /// What the run receives.
    pub secrets: Vec<ResolvedSecret>,
    /// Names asked for and not delivered, with reasons.
    #[schema(value_type = Vec<Object>)]
    pub missing: Vec<Missing>,
    /// Names where a personal secret overrode a team secret.
    pub shadowed: Vec<String>,
    /// The device keys' part, when the run offered some (`byok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byok: Option<ByokAnswer>,
}

/// Writes the answer to `POST /v1/runs` as the values are opened, into one [`WipingBuf`]: the
/// bytes serde_json writes for the same [`Resolved`] (a property test holds it to that),
/// without first building a `Resolved` that holds its own copy of every value.
#[derive(Debug)]
pub struct ResolvedWriter {
    out: WipingBuf,
    first: bool,
}

fn put(out: &mut WipingBuf, value: &(impl Serialize + ?Sized)) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, value)
}

impl ResolvedWriter {
    /// Starts the answer of run `run_id`, with room for `capacity` bytes before it first grows.
    ///
    /// # Errors
    /// Only if serde_json refuses to write a string, which it does not.
    pub fn new(
        run_id: &str,
        trigger: Trigger,
        allowlist: AllowlistSource,
        capacity: usize,
    ) -> Result<Self, serde_json::Error> {
        let mut out = WipingBuf::with_capacity(capacity);
        out.extend(b"{\"run_id\":");
        put(&mut out, run_id)?;
        out.extend(b",\"trigger\":");
        put(&mut out, &trigger)?;
        out.extend(b",\"allowlist\":");
        put(&mut out, &allowlist)?;
        out.extend(b",\"secrets\":[");
        Ok(Self { out, first: true })
    }

    /// Adds one delivered secret, fields in [`ResolvedSecret`]'s order.
    ///
    /// # Errors
    /// As [`ResolvedWriter::new`].
    pub fn secret(
        &mut self,
        name: &SecretName,
        scope: Scope,
        version: u32,
        value: &str,
        broker: Option<&PolicySpec>,
    ) -> Result<(), serde_json::Error> {
        let out = &mut self.out;
        out.extend(if self.first {
            b"{\"name\":\""
        } else {
            b",{\"name\":\""
        });
        self.first = false;
        // A name is `[A-Za-z_][A-Za-z0-9_]*`: nothing in it needs escaping.
        out.extend(name.as_str().as_bytes());
        out.extend(match scope {
            Scope::Team => b"\",\"scope\":\"team\",\"version\":".as_slice(),
            Scope::Personal => b"\",\"scope\":\"personal\",\"version\":".as_slice(),
        });
        put(out, &version)?;
        out.extend(b",\"value\":");
        put(out, value)?;
        if let Some(policy) = broker {
            out.extend(b",\"broker\":");
            put(out, policy)?;
        }
        out.extend(b"}");
        Ok(())
    }

    /// Ends the answer with the missing and shadowed names.
    ///
    /// # Errors
    /// As [`ResolvedWriter::new`].
    pub fn finish(
        mut self,
        missing: &[Missing],
        shadowed: &[SecretName],
        byok: Option<&ByokAnswer>,
    ) -> Result<WipingBuf, serde_json::Error> {
        self.out.extend(b"],\"missing\":");
        put(&mut self.out, missing)?;
        self.out.extend(b",\"shadowed\":");
        put(&mut self.out, shadowed)?;
        if let Some(byok) = byok {
            self.out.extend(b",\"byok\":");
            put(&mut self.out, byok)?;
        }
        self.out.extend(b"}");
        Ok(self.out)
    }
}

/// `POST /v1/runs/{id}/finish`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRun {
    /// The child's exit code, or `None` when it died of a signal.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Masked regions per secret name.
    #[serde(default)]
    pub masked: std::collections::BTreeMap<String, u64>,
    /// Requests the broker replayed with the team's value after the device key failed
    /// (`--fallback-to-team`), per name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub byok_fallbacks: std::collections::BTreeMap<String, u64>,
}

/// A run as listed and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunInfo {
    /// Run id.
    pub id: String,
    /// `started`, `exec` (the launcher became the command), `refused` or `finished`.
    pub status: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub ended_at: Option<i64>,
    /// Who, trigger, environment, requested, delivered, missing, shadowed (never values).
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
    /// Exit status, duration, masked counts.
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<serde_json::Value>,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunInfo>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// An audit event (DESIGN §10): never a value or a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditInfo {
    /// Sequence number.
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// The acting user (a personal key's user).
    pub actor: Option<String>,
    /// The acting key id.
    pub key_id: Option<String>,
    /// The creator a team key acted on behalf of.
    pub on_behalf_of: Option<String>,
    /// The acting key's capability.
    #[schema(value_type = Option<String>, example = "manage")]
    pub capability: Option<Capability>,
    /// The client's address (after `--trusted-proxy`).
    pub client_address: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// What (`secret.create`, `auth.failed`, `request.denied`, ...).
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `denied`, `refused` or `failed`.
    pub outcome: String,
    /// More (never a value).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditInfo>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::resolve::MissingReason;

    fn name() -> impl Strategy<Value = SecretName> {
        // Names that change how programs load code (`LD_*`, `PATH`, ...) are refused; skip them.
        "[A-Za-z_][A-Za-z0-9_]{0,20}"
            .prop_filter_map("a name latch refuses", |n| SecretName::new(n).ok())
    }

    fn scope() -> impl Strategy<Value = Scope> {
        prop_oneof![Just(Scope::Team), Just(Scope::Personal)]
    }

    fn missing() -> impl Strategy<Value = Missing> {
        let reason = prop_oneof![
            Just(MissingReason::NotFound),
            Just(MissingReason::ReservedForIdentity),
            Just(MissingReason::PersonalUnavailable),
            Just(MissingReason::NotAllowlisted),
            Just(MissingReason::RefusedName),
        ];
        (name(), reason).prop_map(|(name, reason)| Missing { name, reason })
    }

    proptest! {
        /// The streamed answer is exactly what serde_json writes for the same `Resolved`, for
        /// values with quotes, backslashes, control characters and non-ASCII text, and whatever
        /// the starting capacity (so growth is exercised).
        #[test]
        fn the_written_answer_is_what_serde_writes(
            run_id in "run_[0-9a-f]{0,32}",
            trigger in prop::sample::select(Trigger::ALL.to_vec()),
            allowlist in prop::sample::select(vec![AllowlistSource::Run, AllowlistSource::Environment, AllowlistSource::None]),
            secrets in prop::collection::vec(
                (name(), scope(), any::<u32>(), "[^\u{0}]{1,40}|[\"\\\\\u{1}-\u{1f}\u{7f}é✓]{1,10}"),
                0..12,
            ),
            missing in prop::collection::vec(missing(), 0..4),
            shadowed in prop::collection::vec(name(), 0..4),
            capacity in 0usize..4096,
            byok in prop::option::of((prop::collection::vec(name(), 0..3), any::<bool>(), prop::option::of("[a-z =]{0,20}"))),
        ) {
            let mut writer = ResolvedWriter::new(&run_id, trigger, allowlist, capacity).expect("writes");
            // Every third secret brokered: its policy follows its value.
            let policy = |version: u32| {
                version.is_multiple_of(3).then(|| {
                    crate::core::broker::Policy::from_words("openai", None, version.is_multiple_of(2))
                        .expect("preset")
                        .spec()
                })
            };
            for (name, scope, version, value) in &secrets {
                writer.secret(name, *scope, *version, value, policy(*version).as_ref()).expect("writes");
            }
            let byok = byok.map(|(names, forbidden, skipped)| ByokAnswer {
                setting: if forbidden { TeamSetting::Forbidden } else { TeamSetting::Allowed },
                applied: names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| ByokApplied { name: name.to_string(), broker: policy(u32::try_from(i).unwrap_or(0)) })
                    .collect(),
                skipped,
            });
            let written = writer.finish(&missing, &shadowed, byok.as_ref()).expect("writes");
            let typed = Resolved {
                run_id,
                trigger,
                allowlist,
                secrets: secrets
                    .iter()
                    .map(|(name, scope, version, value)| ResolvedSecret {
                        name: name.to_string(),
                        scope: *scope,
                        version: *version,
                        value: SecretString::from(value.as_str()),
                        broker: policy(*version),
                    })
                    .collect(),
                missing,
                shadowed: shadowed.iter().map(ToString::to_string).collect(),
                byok,
            };
            let want = serde_json::to_vec(&typed).expect("serializes");
            prop_assert_eq!(written.as_ref(), want.as_slice());
        }
    }
}
