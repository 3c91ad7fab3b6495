//! The embedded SQLite backend: WAL journal, `synchronous=FULL` (an acknowledged write survives
//! a crash or power loss), foreign keys on, migrations from `migrations/sqlite`.
//!
//! SQLite has one writer; transactions that read then write start with `BEGIN IMMEDIATE`, so
//! the read snapshot and the write lock are taken together and no other writer can slip in
//! between (resolution reads and records in one transaction, DESIGN §2 rule 7).
//!
//! One `latch serve` process owns the database: it holds an exclusive lock on `<file>.lock`
//! while it runs, and a second server on the same file refuses to start (after waiting a few
//! seconds, in case the first is only finishing). Every change therefore
//! goes through this process, which lets it keep what authentication and resolution read in
//! memory and check it against a generation counter moved on by each committed change
//! (`store::cache`): a resolve then reads no row at all.
//!
//! The queries both engines share are in `store::common`; this file holds what is SQLite's
//! own: opening the file, `BEGIN IMMEDIATE`, group-committed run records and `rowid`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::cache::{Generational, Teams};
use super::common::Write;
use super::rows::{
    AUDIT_COLUMNS, AUDIT_VALUES, KEY_COLUMNS, RUN_COLUMNS, RUN_SELECT, SECRET_COLUMNS,
    SHARED_COLUMNS, all_released, audit_row, json, key_ref, key_row, kind_text, label, list_table,
    member_row, named_list, names_json, parse_names, role, run_row, scope, scope_text, secret_name,
    secret_row, team_setting, u32_of,
};
use super::writer::{RunJob, RunRecords, RunWriter};
use super::{
    AuditEvent, AuditFor, AuditQuery, AuditRow, AuthKey, Bootstrap, Decision, DryRun, Existing,
    KeyRef, KeyRow, ListChange, ListDeleted, ListKind, MemberRow, Millis, NamedList, NewKey,
    NewSecret, PendingRun, Refused, Removed, RunAsk, RunPlan, RunQuery, RunRow, SealKeyRow, Sealed,
    SecretRow, SecretUpdate, SessionRow, SharedRecord, Store, StoreError, TeamRow,
};
use crate::core::apikey::KeyId;
use crate::core::byok::TeamSetting;
use crate::core::name::{Label, SecretName};
use crate::core::perm::{Capability, Role};
use crate::core::resolve::{Environment, PersonalSecret, Scope, SecretId, TeamSecret, UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    runs: RunWriter,
    kept: Arc<Kept>,
    metrics: super::StoreMetrics,
}

/// What this process keeps between requests, valid for one generation (`store::cache`).
#[derive(Debug)]
struct Kept {
    /// Moved on after every committed configuration change.
    generation: Arc<AtomicU64>,
    /// Moved on after every committed last-used write (kept key rows carry the time).
    touches: Arc<AtomicU64>,
    teams: Teams,
    keys: Generational<KeyId, AuthKey>,
    /// The exclusive lock on `<file>.lock`, held while any handle to the store lives.
    _owner: Flock<File>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    ///
    /// # Errors
    /// [`StoreError`] if the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let owner = lock_owner(path).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        migrate(options.clone()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let metrics = super::StoreMetrics::default();
        let runs = RunWriter::start(Records(pool.clone()), metrics.clone());
        let kept = Arc::new(Kept {
            generation: Arc::new(AtomicU64::new(0)),
            touches: Arc::new(AtomicU64::new(0)),
            teams: Teams::default(),
            keys: Generational::default(),
            _owner: owner,
        });
        Ok(Self {
            pool,
            runs,
            kept,
            metrics,
        })
    }

    /// A configuration change: the caches are refilled once it commits.
    async fn write(&self) -> Result<Write<Sqlite>, StoreError> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Write::new(tx, Some(Arc::clone(&self.kept.generation))))
    }

    /// A run record: nothing kept depends on it.
    async fn record(&self) -> Result<Write<Sqlite>, StoreError> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Write::new(tx, None))
    }

    /// Last-used times: the kept key rows are refilled once it commits.
    async fn touch(&self) -> Result<Write<Sqlite>, StoreError> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Write::new(tx, Some(Arc::clone(&self.kept.touches))))
    }

    /// One snapshot of the team (a read transaction; WAL lets many run at once), kept until
    /// the next configuration change.
    async fn team_data(&self, team: i64) -> Result<Arc<super::cache::TeamData>, StoreError> {
        let generation = self.generation();
        if let Some(data) = self.kept.teams.get(&team, generation) {
            return Ok(data);
        }
        let mut read = self.pool.begin().await?;
        let data = Arc::new(read_team(&mut read, team).await?);
        read.rollback().await?;
        self.kept.teams.put(team, generation, Arc::clone(&data));
        Ok(data)
    }

    fn generation(&self) -> u64 {
        self.kept.generation.load(Ordering::SeqCst)
    }

    /// The generation kept key rows are valid for: both counters only grow, so their sum moves
    /// whenever either does.
    fn key_generation(&self) -> u64 {
        self.generation()
            .wrapping_add(self.kept.touches.load(Ordering::SeqCst))
    }
}

/// Applies the migrations on a connection of its own with foreign-key enforcement off, as
/// SQLite's table rebuild (create, copy, drop, rename) requires, then checks every foreign key:
/// a migration that left a dangling reference fails the start instead of being found later.
async fn migrate(options: SqliteConnectOptions) -> Result<(), StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = options.foreign_keys(false).connect().await?;
    MIGRATOR.run(&mut conn).await.map_err(StoreError::Migrate)?;
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await?;
    if let Some(row) = dangling.first() {
        let table: String = row.try_get(0)?;
        return Err(StoreError::Corrupt(format!(
            "{} rows refer to missing rows after migrating (first in table `{table}`)",
            dangling.len()
        )));
    }
    conn.close().await?;
    Ok(())
}

/// How long opening waits for another server to release the database (a restart whose old
/// process is still draining) before it reports the database in use.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Takes the exclusive lock that makes this process the database's only server, waiting up to
/// [`LOCK_WAIT`] for a previous holder to let go.
async fn lock_owner(path: &Path) -> Result<Flock<File>, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((again, nix::errno::Errno::EWOULDBLOCK))
                if tokio::time::Instant::now() < deadline =>
            {
                file = again;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return Err(StoreError::InUse(path.display().to_string())),
        }
    }
}

super::common::sql_store! {
    store: SqliteStore,
    db: Sqlite,
    sql: sql,
    specific: {
    async fn resolve_run(&self, team: i64, ask: RunAsk) -> Result<PendingRun, StoreError> {
        let data = self.team_data(team).await?;
        let decision = data.decide(ask.user, ask.environment.as_ref(), ask.inputs, ask.decide)?;
        let plan = Arc::new((ask.start)(&decision));
        // The record: durable before any value leaves (group-committed by the run writer, which
        // answers once the batch is committed).
        let durable = self
            .runs
            .queue(team, Arc::clone(&plan), Arc::clone(&decision))
            .await?;
        Ok(PendingRun {
            plan,
            decision,
            durable,
        })
    }

    fn metrics(&self) -> super::StoreMetrics {
        self.metrics.clone()
    }

    async fn dry_run(&self, team: i64, ask: DryRun) -> Result<Arc<Decision>, StoreError> {
        let data = self.team_data(team).await?;
        let decision = data.decide(ask.user, ask.environment.as_ref(), ask.inputs, ask.decide)?;
        let mut tx = self.record().await?;
        insert_audit(&mut tx, &(ask.audit)(&decision)).await?;
        tx.commit().await?;
        Ok(decision)
    }

    async fn key_for_auth(&self, key_id: &KeyId) -> Result<Option<AuthKey>, StoreError> {
        let generation = self.key_generation();
        if let Some(found) = self.kept.keys.get(key_id, generation) {
            return Ok(Some(found));
        }
        let found = read_auth_key(&self.pool, key_id).await?;
        if let Some(found) = &found {
            self.kept.keys.put(key_id.clone(), generation, found.clone());
        }
        Ok(found)
    }

    }
}

/// Stores a decision's shared record unless it is stored already.
async fn insert_decision<'c>(
    conn: impl sqlx::Executor<'c, Database = Sqlite>,
    shared: &SharedRecord,
) -> Result<(), StoreError> {
    sqlx::query(sql(format!(
        "INSERT INTO run_decisions ({SHARED_COLUMNS}) VALUES (?, ?) ON CONFLICT DO NOTHING"
    )))
    .bind(shared.digest.as_slice())
    .bind(&shared.json)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes one run record, referring to the shared record `decision` (the digest of one
/// stored already or in the same transaction), and its audit event.
async fn record_run(
    conn: &mut <Sqlite as sqlx::Database>::Connection,
    team: i64,
    plan: &RunPlan,
    decision: &[u8; 32],
) -> Result<(), StoreError> {
    sqlx::query(sql(format!(
        "INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(&plan.id)
    .bind(team)
    .bind(&plan.key_id)
    .bind(plan.user.map(|u| u.0))
    .bind(plan.identity.as_ref().map(Label::as_str))
    .bind(plan.environment.as_ref().map(Label::as_str))
    .bind(&plan.record)
    .bind(decision.as_slice())
    .bind(plan.status)
    .bind(plan.started_at)
    .execute(&mut *conn)
    .await?;
    insert_audit(conn, &plan.audit).await
}

/// SQLite takes the shared queries as written.
fn sql(
    text: impl Into<std::borrow::Cow<'static, str>>,
) -> sqlx::AssertSqlSafe<std::borrow::Cow<'static, str>> {
    sqlx::AssertSqlSafe(text.into())
}

/// SQLite's run records (`store::writer`): a batch is one `BEGIN IMMEDIATE` transaction of three
/// multi-row inserts sent as one statement list; one record that fails is written again in its
/// own savepoint.
struct Records(SqlitePool);

impl RunRecords for Records {
    async fn together(&self, jobs: &[RunJob]) -> Result<(), StoreError> {
        write_together(&self.0, jobs).await
    }

    async fn each(&self, jobs: &[RunJob]) -> Vec<Result<(), StoreError>> {
        write_each(&self.0, jobs).await
    }
}

/// Writes every record of `jobs`, the shared records they refer to (unless stored already) and
/// their audit events in one transaction.
async fn write_together(pool: &SqlitePool, jobs: &[RunJob]) -> Result<(), StoreError> {
    let mut shared: Vec<&SharedRecord> = Vec::new();
    for job in jobs {
        if !shared.iter().any(|s| s.digest == job.shared.record.digest) {
            shared.push(&job.shared.record);
        }
    }
    // One statement list, so the whole batch is one exchange with the connection's thread:
    // under load, each exchange waits for that thread and then for this task to be scheduled.
    let mut batch = QueryBuilder::<Sqlite>::new(format!(
        "BEGIN IMMEDIATE; INSERT INTO run_decisions ({SHARED_COLUMNS}) "
    ));
    batch.push_values(shared, |mut row, record| {
        row.push_bind(record.digest.as_slice())
            .push_bind(record.json.as_str());
    });
    batch.push(format!(
        " ON CONFLICT DO NOTHING; INSERT INTO runs ({RUN_COLUMNS}) "
    ));
    batch.push_values(
        jobs,
        |mut row,
         RunJob {
             team, plan, shared, ..
         }| {
            row.push_bind(plan.id.as_str())
                .push_bind(*team)
                .push_bind(plan.key_id.as_str())
                .push_bind(plan.user.map(|u| u.0))
                .push_bind(plan.identity.as_ref().map(Label::as_str))
                .push_bind(plan.environment.as_ref().map(Label::as_str))
                .push_bind(plan.record.as_str())
                .push_bind(shared.record.digest.as_slice())
                .push_bind(plan.status)
                .push_bind(plan.started_at);
        },
    );
    batch.push(format!("; INSERT INTO audit ({AUDIT_COLUMNS}) "));
    batch.push_values(jobs, |mut row, job| {
        let e = &job.plan.audit;
        row.push_bind(e.team)
            .push_bind(e.at)
            .push_bind(e.actor.user.map(|u| u.0))
            .push_bind(e.actor.key.as_deref())
            .push_bind(e.actor.name.as_deref())
            .push_bind(e.actor.on_behalf_of.as_deref())
            .push_bind(e.actor.capability.map(Capability::as_str))
            .push_bind(e.actor.client.as_deref())
            .push_bind(e.actor.user_agent.as_deref())
            .push_bind(e.action.as_str())
            .push_bind(e.target.as_str())
            .push_bind(e.outcome.as_str())
            .push_bind(e.detail.as_str());
    });
    batch.push("; COMMIT");
    let mut conn = pool.acquire().await?;
    match batch.build().execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(e) => {
            // The transaction may still be open on this connection: close it, rather than
            // hand it back to the pool in that state.
            drop(conn.detach());
            Err(e.into())
        }
    }
}

/// Writes each record of `jobs` in its own savepoint of one transaction: a record that fails
/// rolls back alone and gets its error; the others commit together.
async fn write_each(pool: &SqlitePool, jobs: &[RunJob]) -> Vec<Result<(), StoreError>> {
    let mut results = Vec::with_capacity(jobs.len());
    let committed = async {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        for RunJob {
            team, plan, shared, ..
        } in jobs
        {
            sqlx::query("SAVEPOINT run").execute(&mut *tx).await?;
            let result = async {
                insert_decision(&mut *tx, &shared.record).await?;
                record_run(&mut tx, *team, plan, &shared.record.digest).await
            }
            .await;
            let end = if result.is_ok() {
                "RELEASE run"
            } else {
                "ROLLBACK TO run; RELEASE run"
            };
            sqlx::query(sqlx::AssertSqlSafe(end))
                .execute(&mut *tx)
                .await?;
            results.push(result);
        }
        tx.commit().await?;
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = committed {
        tracing::error!(error = %e, "a batch of run records could not be committed");
        return jobs
            .iter()
            .map(|_| {
                Err(StoreError::Corrupt(
                    "the run record could not be committed".into(),
                ))
            })
            .collect();
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("latch.db"))
            .await
            .expect("opens");
        (store, dir)
    }

    #[tokio::test]
    async fn contract_suite_passes_on_sqlite() {
        let (store, _dir) = store().await;
        super::super::contract::run_all(&store).await;
    }

    #[tokio::test]
    async fn a_bad_run_record_fails_alone_in_its_batch() {
        let (store, _dir) = store().await;
        let records = Records(store.pool.clone());
        super::super::contract::a_bad_run_record_fails_alone_in_its_batch(&store, &records).await;
    }

    #[tokio::test]
    async fn a_database_from_before_capabilities_upgrades_meaningfully() {
        use sqlx::{ConnectOptions, Connection, Executor};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latch.db");
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .expect("opens");
        MIGRATOR.run_to(2, &mut conn).await.expect("the old schema");
        conn.execute(sqlx::AssertSqlSafe(
            super::super::contract::data_before_capabilities(|hex| format!("X'{hex}'")),
        ))
        .await
        .expect("old data");
        conn.close().await.expect("closes");
        let store = SqliteStore::open(&path).await.expect("upgrades");
        super::super::contract::upgraded_before_capabilities(&store).await;
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latch.db");
        {
            let store = SqliteStore::open(&path).await.expect("opens");
            assert!(store.init_meta("check", b"value").await.expect("writes"));
        }
        let store = SqliteStore::open(&path).await.expect("reopens");
        assert_eq!(
            store.meta("check").await.expect("reads"),
            Some(b"value".to_vec())
        );
        assert!(
            !store
                .init_meta("check", b"other")
                .await
                .expect("no overwrite")
        );
    }
}
