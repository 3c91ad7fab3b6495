//! Storage behind one trait, so that handlers never know the engine (DESIGN §8).
//!
//! Every backend implements [`Store`]; `store::contract` (tests) is the one suite every backend must
//! pass. Queries are checked at run time, so no build needs a database. Each mutating method
//! takes the [`AuditEvent`] that records it and writes both in one transaction. The store never
//! sees a secret value: ciphertexts are sealed and opened by the caller, which chooses the row
//! ids that the ciphertexts are bound to.

mod cache;
mod common;
pub mod postgres;
mod rows;
pub mod sqlite;
mod writer;

#[cfg(test)]
pub(crate) mod contract;

use std::sync::Arc;

use async_trait::async_trait;

use crate::core::apikey::{KeyDigest, KeyId, KeyKind};
use crate::core::byok::TeamSetting;
use crate::core::crypto::ValueKey;
use crate::core::name::{Label, SecretName};
use crate::core::perm::{Capability, Role};
use crate::core::resolve::{Resolution, ResolveError, Scope, SecretId, Snapshot, UserId};

/// Unix time in milliseconds.
pub type Millis = i64;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule or an optimistic version check refused the write.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Another `latch serve` holds this SQLite database.
    #[error(
        "the database {0} is in use by another `latch serve`; a SQLite database has one server"
    )]
    InUse(String),
    /// A row holds something this version cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// What is stored forbids the change (each case a 409 naming what stands in the way).
    #[error("refused: {0:?}")]
    Refused(Refused),
    /// The object changed since the revision the caller read (`If-Match`, 412).
    #[error("the object changed since it was read")]
    Stale,
}

/// A change refused because of what is stored, with what the caller needs to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The change would leave these team secret names reserved by no identity, making them
    /// available to every run, and the request did not name them in `release` (DESIGN §3).
    WouldRelease(Vec<SecretName>),
    /// Keys are bound to the identity being deleted and the request did not say `force`; the
    /// names the deletion would release are given too, so one answer shows everything.
    IdentityInUse {
        /// The bound keys, which deleting the identity revokes.
        keys: Vec<KeyRef>,
        /// What deleting it would release.
        would_release: Vec<SecretName>,
    },
    /// A secret's name conflicts with an existing one (DESIGN §5): the same name in another
    /// spelling in its scope, or across the team and a personal scope.
    NameConflict(Existing),
    /// A current member of the team already has this name.
    MemberExists,
}

/// A key, as an answer names it: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// Public key id.
    pub key_id: KeyId,
    /// Its name.
    pub name: String,
}

/// The existing secret a new one conflicts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Its scope.
    pub scope: Scope,
    /// Its owner, for a personal secret.
    pub owner: Option<UserId>,
    /// The owner's name.
    pub owner_name: Option<String>,
    /// Its name, as stored.
    pub name: SecretName,
}

/// What removing a member did (DESIGN §3 "Member removal is final").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Their personal keys, revoked for good.
    pub revoked: Vec<KeyRef>,
    /// Their personal secrets, deleted.
    pub deleted: Vec<SecretName>,
}

/// What replacing an environment or identity changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListChange {
    /// The list before, if it existed.
    pub before: Option<NamedList>,
    /// Team secret names no identity reserves any more (identities only).
    pub released: Vec<SecretName>,
}

/// What deleting an environment or identity did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDeleted {
    /// The list deleted.
    pub before: NamedList,
    /// Team secret names no identity reserves any more (identities only).
    pub released: Vec<SecretName>,
    /// Keys bound to the identity, revoked with it.
    pub revoked: Vec<KeyRef>,
}

/// Makes the audit events of a change from what the change did, inside its transaction (so a
/// removal's event can list what was revoked and deleted).
pub type AuditFor<'a, T> = dyn Fn(&T) -> Vec<AuditEvent> + Send + Sync + 'a;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Self::Conflict("already exists");
        }
        Self::Database(e)
    }
}

/// A team as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRow {
    /// Id, chosen by the caller (it is bound into the wrapped data key).
    pub id: i64,
    /// Name.
    pub name: Label,
    /// Data key wrapped by the root key.
    pub data_key: Vec<u8>,
    /// Version of the data key.
    pub key_version: u32,
}

/// A team's sealing key pair (DESIGN §12), the private half wrapped by the root key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKeyRow {
    /// The key's id (derived from the public half).
    pub key_id: String,
    /// The X25519 public key.
    pub public: Vec<u8>,
    /// The private key, wrapped by the root key and bound to the team.
    pub wrapped_private: Vec<u8>,
}

impl std::fmt::Debug for SealKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKeyRow")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A web app session (DESIGN §12): only the digest of its id is kept, and the personal key it
/// stands for, by id and digest (never the key).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the session id the cookie holds.
    pub digest: Vec<u8>,
    /// Team.
    pub team: i64,
    /// The personal key the session was opened with.
    pub key_id: String,
    /// SHA-256 of that key, compared with the key's row on every request.
    pub key_digest: Vec<u8>,
    /// When it was opened.
    pub created_at: Millis,
    /// When it was last used (kept at most once a minute).
    pub last_seen_at: Millis,
    /// When it ends whatever happens (12 h, never past the key's own expiry).
    pub expires_at: Millis,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("team", &self.team)
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A key to store. Only its id, digest and last four characters: never the key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Public key id.
    pub key_id: KeyId,
    /// SHA-256 of the whole key.
    pub digest: KeyDigest,
    /// Last four characters, for the preview.
    pub last4: String,
    /// Personal or team.
    pub kind: KeyKind,
    /// `run` or `manage`.
    pub capability: Capability,
    /// For a team key: its creator's role now, kept for the key's life.
    pub role_at_creation: Option<Role>,
    /// For a team key: the identity its runs execute as.
    pub identity: Option<Label>,
    /// Where it is used.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry, if any.
    pub expires_at: Option<Millis>,
}

/// A stored key with its owner's and creator's names.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// Row id.
    pub row: i64,
    /// Public key id.
    pub key_id: KeyId,
    /// SHA-256 of the whole key.
    pub digest: KeyDigest,
    /// Last four characters.
    pub last4: String,
    /// Team.
    pub team: i64,
    /// Personal or team.
    pub kind: KeyKind,
    /// `run` or `manage`, as created.
    pub capability: Capability,
    /// A personal key's user.
    pub user: Option<UserId>,
    /// Creator.
    pub created_by: UserId,
    /// Creator's name.
    pub created_by_name: String,
    /// A team key's role.
    pub role_at_creation: Option<Role>,
    /// A team key's identity.
    pub identity: Option<Label>,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: Millis,
    /// Expiry.
    pub expires_at: Option<Millis>,
    /// Last use (coalesced).
    pub last_used_at: Option<Millis>,
    /// Revocation time.
    pub revoked_at: Option<Millis>,
}

/// A key as authentication needs it: the row and the current roles in the key's team of its
/// user (personal keys) and of its creator (`None` once they were removed).
#[derive(Debug, Clone)]
pub struct AuthKey {
    /// The key.
    pub key: KeyRow,
    /// The personal key's user's name and current role.
    pub member: Option<(String, Role)>,
    /// The creator's current role.
    pub creator_role: Option<Role>,
}

/// A member of a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// User id.
    pub user: UserId,
    /// User name.
    pub name: Label,
    /// Role in the team.
    pub role: Role,
    /// When they joined.
    pub created_at: Millis,
}

/// A secret's metadata; the ciphertext only where asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Id (chosen by the caller, bound into the ciphertext).
    pub id: SecretId,
    /// Team.
    pub team: i64,
    /// Scope.
    pub scope: Scope,
    /// Owner of a personal secret.
    pub owner: Option<UserId>,
    /// Owner's name.
    pub owner_name: Option<String>,
    /// Name.
    pub name: SecretName,
    /// Description.
    pub description: String,
    /// Value version.
    pub version: u32,
    /// Data key version the value is sealed under.
    pub key_version: u32,
    /// Value length in bytes.
    pub value_len: u32,
    /// Created.
    pub created_at: Millis,
    /// Creator's name.
    pub created_by: String,
    /// Last updated.
    pub updated_at: Millis,
    /// Last updater's name.
    pub updated_by: String,
    /// Moved by every write: the ETag `If-Match` compares.
    pub revision: u64,
    /// Its broker policy (DESIGN §13).
    pub broker: Option<crate::core::broker::Policy>,
}

/// A secret to create.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// Id, chosen by the caller.
    pub id: SecretId,
    /// Team.
    pub team: i64,
    /// Scope.
    pub scope: Scope,
    /// Owner of a personal secret.
    pub owner: Option<UserId>,
    /// Name.
    pub name: SecretName,
    /// Description.
    pub description: String,
    /// Data key version.
    pub key_version: u32,
    /// Sealed value (version 1).
    pub ciphertext: Vec<u8>,
    /// Value length.
    pub value_len: u32,
    /// Its broker policy.
    pub broker: Option<crate::core::broker::Policy>,
    /// Who.
    pub actor: UserId,
    /// When.
    pub at: Millis,
}

/// A change to a secret, applied only if its version is still `expected_version`.
#[derive(Debug, Clone)]
pub struct SecretUpdate {
    /// Which secret.
    pub id: SecretId,
    /// The version the caller read.
    pub expected_version: u32,
    /// A new value sealed for version `expected_version + 1`, and its length.
    pub value: Option<(Vec<u8>, u32)>,
    /// A new description.
    pub description: Option<String>,
    /// A new broker policy (`Some(None)` clears it).
    #[allow(clippy::option_option)] // unchanged, cleared or set
    pub broker: Option<Option<crate::core::broker::Policy>>,
    /// The revision the caller read (`If-Match`); a different one is [`StoreError::Stale`].
    pub if_revision: Option<u64>,
    /// Who.
    pub actor: UserId,
    /// When.
    pub at: Millis,
}

/// Environments and identities have the same shape: a named list of secret names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// An environment: its list is a run's default allowlist.
    Environment,
    /// An agent identity: its team secrets are reserved for it.
    Identity,
}

/// An environment or identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedList {
    /// Name.
    pub name: Label,
    /// Description.
    pub description: String,
    /// Secret names; `None` only for an environment without a list.
    pub secrets: Option<Vec<SecretName>>,
    /// Last change.
    pub updated_at: Millis,
    /// Moved by every write: the ETag `If-Match` compares (ignored when writing).
    pub revision: u64,
}

/// What happened, by whom: never a value.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Team; `None` for a failed authentication whose key matches no key of any team.
    pub team: Option<i64>,
    /// When.
    pub at: Millis,
    /// Who, with what key, from where.
    pub actor: Actor,
    /// What, e.g. `secret.create`.
    pub action: String,
    /// On what, e.g. `team/DB_URL`.
    pub target: String,
    /// `ok`, `denied`, `refused`, `failed`.
    pub outcome: String,
    /// More, as JSON text (names, never values).
    pub detail: String,
}

/// Who acted (DESIGN §10): the user and key, or a team key and the creator it acts on behalf
/// of; the key's capability; the client's address and user agent. Empty for the platform's own
/// events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The acting user's id (a personal key's user, else a team key's creator).
    pub user: Option<UserId>,
    /// The acting key's id.
    pub key: Option<String>,
    /// The acting user's name (personal keys).
    pub name: Option<String>,
    /// The creator a team key acts on behalf of.
    pub on_behalf_of: Option<String>,
    /// The acting key's capability then.
    pub capability: Option<Capability>,
    /// The client's address (after `--trusted-proxy`).
    pub client: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// An audit event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Sequence number.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

/// One run to record: what is its own (the shared part of its record is its [`Decision`]'s).
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Run id.
    pub id: String,
    /// Key id used.
    pub key_id: String,
    /// The key's user, if a personal key.
    pub user: Option<UserId>,
    /// The identity the run executes as (for filters).
    pub identity: Option<Label>,
    /// The environment the run names (for filters).
    pub environment: Option<Label>,
    /// This run's own part of its record (who started it), as a JSON object; the rest is the
    /// decision's [`SharedRecord`]. Names only, never values.
    pub record: String,
    /// `started` or `refused`.
    pub status: &'static str,
    /// When.
    pub started_at: Millis,
    /// The audit event, written in the same transaction.
    pub audit: AuditEvent,
}

/// A delivered secret's sealed value and what it is bound to.
#[derive(Debug)]
pub struct Sealed {
    /// Id.
    pub id: SecretId,
    /// Scope.
    pub scope: Scope,
    /// Owner of a personal secret.
    pub owner: Option<UserId>,
    /// Name.
    pub name: SecretName,
    /// Value version.
    pub version: u32,
    /// Data key version.
    pub key_version: u32,
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
    /// Its broker policy (DESIGN §13).
    pub broker: Option<crate::core::broker::Policy>,
    /// The ciphertext's own cipher, made by the server on first open and kept with it (so
    /// until the team's next change): derived key material, never a value.
    pub key: std::sync::OnceLock<ValueKey>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Team.
    pub team: i64,
    /// Key id used.
    pub key_id: String,
    /// The key's user.
    pub user: Option<UserId>,
    /// The identity it executed as.
    pub identity: Option<String>,
    /// Record as JSON.
    pub record: serde_json::Value,
    /// `started`, `exec` (the launcher became the command), `refused` or `finished`.
    pub status: String,
    /// Start.
    pub started_at: Millis,
    /// End.
    pub ended_at: Option<Millis>,
    /// Exit status, duration, masked counts, as JSON.
    pub outcome: Option<serde_json::Value>,
}

/// Which audit events to read, newest first (DESIGN §9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// At most this many.
    pub limit: u32,
    /// Only events older than this id (the cursor of a previous page).
    pub before: Option<i64>,
    /// Only actions starting with this (`secret.`).
    pub action: Option<String>,
    /// Only events whose acting user, or creator acted for, has this name.
    pub actor: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Millis>,
    /// Only events before this time.
    pub until: Option<Millis>,
}

/// Which runs to read, newest first (DESIGN §9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// At most this many.
    pub limit: u32,
    /// Only runs after this one in the order (the cursor of a previous page): its start and id.
    pub before: Option<(Millis, String)>,
    /// Only runs of this user (visibility: a builder's own).
    pub only_user: Option<UserId>,
    /// Only runs of users with this name.
    pub user: Option<String>,
    /// Only runs made with this key id.
    pub key: Option<String>,
    /// Only runs executing as this identity.
    pub identity: Option<String>,
    /// Only runs naming this environment.
    pub environment: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs started at or after this time.
    pub since: Option<Millis>,
    /// Only runs started before this time.
    pub until: Option<Millis>,
}

/// What the first start creates.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The team.
    pub team: TeamRow,
    /// Its owner's user name.
    pub owner: Label,
    /// The owner's first personal key.
    pub key: NewKey,
    /// When.
    pub at: Millis,
}

/// What resolution decided over a snapshot, as the caller's `decide` returns it.
#[derive(Debug)]
pub struct Decided {
    /// The resolution, or why the run is refused.
    pub result: Result<Resolution, ResolveError>,
    /// The part of the run record that follows from the decision (environment, names asked
    /// for, trigger, delivered names and versions, missing, shadowed) as a JSON object. Names
    /// only, never values.
    pub record: String,
}

/// A decision's part of the run record, stored once and referred to by each run that shares
/// it: a run of a hundred secrets writes its own few fields, not every name again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRecord {
    /// SHA-256 of `json`: the row the runs refer to.
    pub digest: [u8; 32],
    /// The JSON object.
    pub json: String,
}

impl SharedRecord {
    /// The shared record for `json`.
    #[must_use]
    pub fn new(json: String) -> Self {
        use sha2::Digest as _;
        Self {
            digest: sha2::Sha256::digest(json.as_bytes()).into(),
            json,
        }
    }
}

/// A run's decision over one team snapshot. Every run with the same inputs over the same
/// snapshot (until the team's next change) shares it, so a repeated run is not resolved again.
#[derive(Debug)]
pub struct Decision {
    /// The resolution, or why the run is refused.
    pub result: Result<Resolution, ResolveError>,
    /// The sealed values it delivers, in the resolution's order (shared with the kept team
    /// snapshot, see `store::cache`); empty when refused.
    pub sealed: Vec<Arc<Sealed>>,
    /// Its part of every such run's record.
    pub record: SharedRecord,
    /// Whether this process has stored `record` already (backends that store it apart from
    /// the runs referring to it).
    pub(crate) stored: std::sync::atomic::AtomicBool,
}

/// Decides a run from the snapshot. Called at most once per [`RunAsk::inputs`] and snapshot.
pub type Decide = Box<dyn FnOnce(Snapshot<'_>) -> Decided + Send>;

/// Makes one run's own record and audit event from its decision.
pub type Start = Box<dyn FnOnce(&Decision) -> RunPlan + Send>;

/// A run to resolve and record.
pub struct RunAsk {
    /// The key's user (personal keys): whose personal secrets the snapshot holds.
    pub user: Option<UserId>,
    /// The environment the run names.
    pub environment: Option<Label>,
    /// Everything `decide` depends on besides the snapshot, exactly (names as spelled): runs
    /// with equal inputs over the same snapshot share one [`Decision`].
    pub inputs: Vec<u8>,
    /// Resolves the run, when no decision for these inputs is kept.
    pub decide: Decide,
    /// This run's own part.
    pub start: Start,
}

impl std::fmt::Debug for RunAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunAsk")
            .field("user", &self.user)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// A dry run (DESIGN §2 rule 8): decided like a run, recorded only as an audit event.
pub struct DryRun {
    /// As [`RunAsk::user`].
    pub user: Option<UserId>,
    /// As [`RunAsk::environment`].
    pub environment: Option<Label>,
    /// As [`RunAsk::inputs`].
    pub inputs: Vec<u8>,
    /// As [`RunAsk::decide`].
    pub decide: Decide,
    /// Its audit event, from the decision.
    pub audit: Box<dyn FnOnce(&Decision) -> AuditEvent + Send>,
}

impl std::fmt::Debug for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRun")
            .field("user", &self.user)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// A run being recorded: its plan, its decision, and whether its record is durable.
#[derive(Debug)]
pub struct PendingRun {
    /// This run's own part of the record.
    pub plan: Arc<RunPlan>,
    /// What was decided (shared with other runs of the same inputs).
    pub decision: Arc<Decision>,
    /// When the record and its audit event are durable.
    pub durable: Durable,
}

/// Resolves once a run's record and audit event are durable, or says why they are not.
///
/// No value of the run may leave before it resolves `Ok` (DESIGN §2.7, fail closed). Until
/// then the caller may prepare its answer (open the values), so that work overlaps the commit
/// instead of waiting for it.
#[derive(Debug)]
#[must_use = "no value may leave before the run's record is durable"]
pub struct Durable(tokio::sync::oneshot::Receiver<Result<(), StoreError>>);

impl Durable {
    /// Durable when the run writer answers on `reply`.
    fn after(reply: tokio::sync::oneshot::Receiver<Result<(), StoreError>>) -> Self {
        Self(reply)
    }

    /// Waits until the record is durable.
    ///
    /// # Errors
    /// [`StoreError`] if it was not written; the run's values must then not be sent.
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0
            .await
            .map_err(|_| StoreError::Corrupt("the run writer stopped".into()))?
    }
}

/// What a store measures of itself, for `/metrics`: shared handles, updated as it works.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// How many run records each commit wrote together (SQLite's group commit; one per
    /// commit on PostgreSQL).
    pub batch_sizes: prometheus_client::metrics::histogram::Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            batch_sizes: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 8),
            ),
        }
    }
}

/// The storage contract. See the module documentation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The store's own measurements.
    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::default()
    }
    /// A value of the `meta` table.
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets a `meta` value unless it exists; returns whether it was set.
    async fn init_meta(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Creates the first team, its owner and the owner's key, if no team exists yet; returns
    /// the owner's id, or `None` when the database was not empty.
    async fn bootstrap(&self, first: Bootstrap) -> Result<Option<UserId>, StoreError>;
    /// A team by id.
    async fn team(&self, id: i64) -> Result<Option<TeamRow>, StoreError>;
    /// A team's BYOK setting (DESIGN §14).
    async fn team_byok(&self, team: i64) -> Result<TeamSetting, StoreError>;
    /// A team's sealing key pair (DESIGN §12), once made.
    async fn seal_key(&self, team: i64) -> Result<Option<SealKeyRow>, StoreError>;
    /// Keeps `key` as team's sealing key pair unless it has one already (another replica may
    /// have been first), with `audit` when it is kept; the pair the team has afterwards.
    async fn init_seal_key(
        &self,
        team: i64,
        key: SealKeyRow,
        audit: AuditEvent,
    ) -> Result<SealKeyRow, StoreError>;
    /// Opens a web app session, with its audit event; sessions idle since before
    /// `idle_before` or past their end are removed on the way.
    async fn create_session(
        &self,
        session: SessionRow,
        idle_before: Millis,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;
    /// A session by the digest of its id.
    async fn session(&self, digest: &[u8]) -> Result<Option<SessionRow>, StoreError>;
    /// Notes that a session was used at `at`.
    async fn touch_session(&self, digest: &[u8], at: Millis) -> Result<(), StoreError>;
    /// Ends one session (`Some`) or every session of its key (`None` digest, `key_id` given),
    /// with `audit` if any ended; how many ended.
    async fn end_sessions(
        &self,
        digest: Option<&[u8]>,
        key_id: &str,
        audit: AuditEvent,
    ) -> Result<u64, StoreError>;
    /// Sets a team's BYOK setting, with its audit event.
    async fn set_team_byok(
        &self,
        team: i64,
        setting: TeamSetting,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;

    /// A key by its public id, for authentication.
    async fn key_for_auth(&self, key_id: &KeyId) -> Result<Option<AuthKey>, StoreError>;
    /// Records last-used times (coalesced by the caller).
    async fn touch_keys(&self, used: &[(i64, Millis)]) -> Result<(), StoreError>;
    /// Stores a key of `team` for `user` (personal) made by `creator`.
    async fn create_key(
        &self,
        team: i64,
        user: Option<UserId>,
        creator: UserId,
        key: NewKey,
        audit: AuditEvent,
    ) -> Result<i64, StoreError>;
    /// Keys of `team`; only those made by or for `user` when given.
    async fn keys(&self, team: i64, user: Option<UserId>) -> Result<Vec<KeyRow>, StoreError>;
    /// Revokes a key of `team` (only one made by or for `user` when given); whether it was
    /// found and not yet revoked.
    async fn revoke_key(
        &self,
        team: i64,
        key_id: &KeyId,
        user: Option<UserId>,
        audit: AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Members of `team`.
    async fn members(&self, team: i64) -> Result<Vec<MemberRow>, StoreError>;
    /// One member by name.
    async fn member(&self, team: i64, name: &Label) -> Result<Option<MemberRow>, StoreError>;
    /// Adds a new user called `name` with `role` and their first personal key
    /// ([`Refused::MemberExists`] if a current member has that name). A name used before by a
    /// removed member makes a new user all the same, who inherits nothing.
    async fn add_member(
        &self,
        team: i64,
        name: &Label,
        role: Role,
        key: NewKey,
        creator: UserId,
        audit: AuditEvent,
    ) -> Result<UserId, StoreError>;
    /// Changes a member's role; whether they were a member.
    async fn set_role(
        &self,
        team: i64,
        user: UserId,
        role: Role,
        audit: AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Removes a member for good: revokes their personal keys, deletes their personal secrets,
    /// keeps their runs and audit events; `None` if they were not a member. `audit` makes the
    /// events of what was done, written in the same transaction.
    async fn remove_member(
        &self,
        team: i64,
        user: UserId,
        at: Millis,
        audit: &AuditFor<'_, Removed>,
    ) -> Result<Option<Removed>, StoreError>;

    /// Stores a new secret; [`Refused::NameConflict`] if its name is another spelling of one in
    /// its scope, or conflicts across the team and a personal scope (DESIGN §5: a personal name
    /// equals a team name exactly or differs from every team name ignoring case).
    async fn create_secret(&self, secret: NewSecret, audit: AuditEvent) -> Result<(), StoreError>;
    /// One secret's metadata.
    async fn secret(
        &self,
        team: i64,
        scope: Scope,
        owner: Option<UserId>,
        name: &SecretName,
    ) -> Result<Option<SecretRow>, StoreError>;
    /// Team secrets and `viewer`'s personal secrets; every member's with `all`.
    async fn secrets(
        &self,
        team: i64,
        viewer: UserId,
        all: bool,
    ) -> Result<Vec<SecretRow>, StoreError>;
    /// Applies `update` if the version still matches ([`StoreError::Conflict`] if not).
    async fn update_secret(
        &self,
        update: SecretUpdate,
        audit: AuditEvent,
    ) -> Result<(), StoreError>;
    /// Deletes a secret; whether it existed.
    async fn delete_secret(&self, id: SecretId, audit: AuditEvent) -> Result<bool, StoreError>;

    /// Creates or replaces an environment or identity. For an identity, a change that leaves
    /// names reserved by no identity is refused ([`Refused::WouldRelease`]) unless each of
    /// them is in `release` (compared ignoring case, as reservation is). With `if_revision`
    /// (`If-Match`), the list must exist at that revision ([`StoreError::Stale`] if not).
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one decision of the caller's"
    )]
    async fn put_list(
        &self,
        kind: ListKind,
        team: i64,
        list: NamedList,
        if_revision: Option<u64>,
        release: &[SecretName],
        audit: &AuditFor<'_, ListChange>,
    ) -> Result<ListChange, StoreError>;
    /// One environment or identity.
    async fn list(
        &self,
        kind: ListKind,
        team: i64,
        name: &Label,
    ) -> Result<Option<NamedList>, StoreError>;
    /// Every environment or identity of `team`.
    async fn lists(&self, kind: ListKind, team: i64) -> Result<Vec<NamedList>, StoreError>;
    /// Deletes an environment or identity; `None` if it did not exist. Deleting an identity is
    /// refused while keys are bound to it, unless `force` (then they are revoked with it:
    /// [`Refused::IdentityInUse`]), and while it would release names not in `release`.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one decision of the caller's"
    )]
    async fn delete_list(
        &self,
        kind: ListKind,
        team: i64,
        name: &Label,
        release: &[SecretName],
        force: bool,
        at: Millis,
        audit: &AuditFor<'_, ListDeleted>,
    ) -> Result<Option<ListDeleted>, StoreError>;

    /// Reads the snapshot for a run of `team` by `ask.user` (personal keys) naming
    /// `ask.environment` (from one database snapshot, possibly kept from an earlier request of
    /// the same generation, see `store::cache`), takes the decision kept for `ask.inputs` over
    /// that snapshot or lets `ask.decide` make it, and writes the run (its own part, and the
    /// decision's shared record if new) and its audit event in one transaction. Returns the
    /// plan and decision and a [`Durable`] that resolves once that write is durable, or fails
    /// if it is not (then no value may leave: fail closed).
    async fn resolve_run(&self, team: i64, ask: RunAsk) -> Result<PendingRun, StoreError>;
    /// Decides a dry run over the same snapshot a run would see and writes only its audit
    /// event (no run record, no value).
    async fn dry_run(&self, team: i64, ask: DryRun) -> Result<Arc<Decision>, StoreError>;
    /// Records a run's end; whether the run exists and was started.
    async fn finish_run(
        &self,
        team: i64,
        id: &str,
        outcome: serde_json::Value,
        at: Millis,
        audit: AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Runs of `team` that `query` selects, newest first (by start, then id).
    async fn runs(&self, team: i64, query: &RunQuery) -> Result<Vec<RunRow>, StoreError>;
    /// One run.
    async fn run(&self, team: i64, id: &str) -> Result<Option<RunRow>, StoreError>;

    /// Audit events of `team` (and those of no team) that `query` selects, newest first.
    async fn audit(&self, team: i64, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;

    /// Writes audit events outside any other change (failed authentications, denials).
    async fn record_events(&self, events: &[AuditEvent]) -> Result<(), StoreError>;

    /// Counts one failed authentication for each of `buckets` (a client address, a key id) in
    /// the window starting at `window_start`, for every replica together; returns the highest
    /// count. `None` from a backend that serves one process, whose in-memory limiter already
    /// sees every failure (SQLite).
    async fn count_auth_failure(
        &self,
        buckets: &[String],
        window_start: Millis,
    ) -> Result<Option<u32>, StoreError> {
        let _ = (buckets, window_start);
        Ok(None)
    }
}
