//! The PostgreSQL backend, for several `latch serve` replicas over one database (DESIGN §8).
//! Tested on PostgreSQL 15; a PostgreSQL-compatible engine needs advisory locks, `REPEATABLE
//! READ` and identity columns (CockroachDB and others are not tested).
//!
//! - **Migrations** from `migrations/postgres`; sqlx's migrator holds a PostgreSQL advisory lock
//!   while it runs, so replicas that start together apply them once.
//! - **Writes** that read before they write (the last-owner rule, bootstrap, optimistic secret
//!   updates) take one transaction-scoped advisory lock, so they are serialized across replicas
//!   just as SQLite's single writer serializes them.
//! - **Resolution** reads its snapshot (one `SELECT` of the generation when the team's data is
//!   kept, else a `REPEATABLE READ` read-only transaction), then hands the run record and audit
//!   event to the run writer (`store::writer`), which commits the records of concurrent
//!   resolves together: one statement, so one transaction and one WAL flush a batch. No value
//!   is returned before its record commits (fail closed).
//! - **What is kept in memory is checked in the database**: every configuration write
//!   increments the `generation` row in its own transaction, and a resolve reads that row in
//!   its snapshot before it uses the team's secrets kept from an earlier request
//!   (`store::cache`). Authentication reads the key row on every request. A key revoked, a
//!   member removed or a secret updated through one replica therefore takes effect on every
//!   replica at the next request.
//!
//! The queries both engines share are in `store::common` (with `?` placeholders numbered for
//! PostgreSQL by `sql`); this file holds what is PostgreSQL's own.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};

use super::cache::Teams;
use super::common::Write;
use super::rows::{
    AUDIT_COLUMNS, AUDIT_VALUES, KEY_COLUMNS, RUN_COLUMNS, RUN_SELECT, SECRET_COLUMNS,
    SHARED_COLUMNS, all_released, audit_row, json, key_ref, key_row, kind_text, label, list_table,
    member_row, named_list, names_json, parse_names, role, run_row, scope, scope_text, secret_name,
    secret_row, team_setting, u32_of,
};
use super::writer::{RunJob, RunRecords, RunWriter};
use super::{
    AuditEvent, AuditFor, AuditQuery, AuditRow, AuthKey, Bootstrap, DryRun, Existing, KeyRef,
    KeyRow, ListChange, ListDeleted, ListKind, MemberRow, Millis, NamedList, NewKey, NewSecret,
    PendingRun, Refused, Removed, RunAsk, RunPlan, RunQuery, RunRow, SealKeyRow, Sealed, SecretRow,
    SecretUpdate, SessionRow, SharedRecord, Store, StoreError, TeamRow,
};
use crate::core::apikey::KeyId;
use crate::core::byok::TeamSetting;
use crate::core::name::{Label, SecretName};
use crate::core::perm::{Capability, Role};
use crate::core::resolve::{Environment, PersonalSecret, Scope, SecretId, TeamSecret, UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock that serializes read-then-write transactions across replicas.
const WRITE_LOCK: i64 = 0x6c61_7463_6800; // "latch\0"

/// Connection pool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections this replica opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    runs: RunWriter,
    teams: std::sync::Arc<Teams>,
    metrics: super::StoreMetrics,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and applies migrations.
    ///
    /// # Errors
    /// [`StoreError`] if the database cannot be reached or migrated.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        let metrics = super::StoreMetrics::default();
        Ok(Self {
            runs: RunWriter::start(Records(pool.clone()), metrics.clone()),
            pool,
            teams: std::sync::Arc::default(),
            metrics,
        })
    }

    /// The generation as `conn` sees it, and the team's data kept at that generation if any.
    async fn kept<'c>(
        &self,
        conn: impl sqlx::Executor<'c, Database = Postgres>,
        team: i64,
    ) -> Result<(u64, Option<std::sync::Arc<super::cache::TeamData>>), StoreError> {
        let generation: i64 = sqlx::query("SELECT n FROM generation WHERE id = 1")
            .fetch_one(conn)
            .await?
            .try_get("n")?;
        let generation = u64::try_from(generation)
            .map_err(|_| StoreError::Corrupt("negative generation".into()))?;
        Ok((generation, self.teams.get(&team, generation)))
    }

    /// The team's snapshot as of `tx`'s: kept from an earlier request while the generation
    /// read in `tx` is the one it was kept at, else read in `tx` and kept.
    async fn team_data(
        &self,
        tx: &mut sqlx::PgConnection,
        team: i64,
    ) -> Result<std::sync::Arc<super::cache::TeamData>, StoreError> {
        let (generation, kept) = self.kept(&mut *tx, team).await?;
        if let Some(data) = kept {
            return Ok(data);
        }
        let data = std::sync::Arc::new(read_team(tx, team).await?);
        self.teams
            .put(team, generation, std::sync::Arc::clone(&data));
        Ok(data)
    }

    /// The team's snapshot now: kept from an earlier request while the generation (one
    /// `SELECT`) is the one it was kept at, else read with the generation in one `REPEATABLE
    /// READ` snapshot.
    async fn team_data_now(
        &self,
        team: i64,
    ) -> Result<std::sync::Arc<super::cache::TeamData>, StoreError> {
        if let (_, Some(data)) = self.kept(&self.pool, team).await? {
            return Ok(data);
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let data = self.team_data(&mut tx, team).await?;
        tx.commit().await?;
        Ok(data)
    }

    /// A configuration change: serialized by the advisory lock, and the generation moves on
    /// with it (every replica refills what it kept).
    async fn write(&self) -> Result<Write<Postgres>, StoreError> {
        let mut tx = self.record().await?;
        sqlx::query("UPDATE generation SET n = n + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Last-used times: key rows are not kept, so this is a plain [`record`](Self::record).
    async fn touch(&self) -> Result<Write<Postgres>, StoreError> {
        self.record().await
    }

    /// A run record or a last-used time: serialized, but nothing kept depends on it.
    async fn record(&self) -> Result<Write<Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(Write::new(tx, None))
    }
}

super::common::sql_store! {
    store: PgStore,
    db: Postgres,
    sql: sql,
    specific: {
    async fn resolve_run(&self, team: i64, ask: RunAsk) -> Result<PendingRun, StoreError> {
        let data = self.team_data_now(team).await?;
        let decision = data.decide(ask.user, ask.environment.as_ref(), ask.inputs, ask.decide)?;
        let plan = std::sync::Arc::new((ask.start)(&decision));
        // The record: durable before any value leaves (group-committed by the run writer,
        // which answers once the batch is committed).
        let durable = self
            .runs
            .queue(
                team,
                std::sync::Arc::clone(&plan),
                std::sync::Arc::clone(&decision),
            )
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

    async fn dry_run(
        &self,
        team: i64,
        ask: DryRun,
    ) -> Result<std::sync::Arc<super::Decision>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await?;
        let data = self.team_data(&mut tx, team).await?;
        let decision = data.decide(ask.user, ask.environment.as_ref(), ask.inputs, ask.decide)?;
        insert_audit(&mut tx, &(ask.audit)(&decision)).await?;
        tx.commit().await?;
        Ok(decision)
    }

    async fn key_for_auth(&self, key_id: &KeyId) -> Result<Option<AuthKey>, StoreError> {
        read_auth_key(&self.pool, key_id).await
    }


    async fn count_auth_failure(
        &self,
        buckets: &[String],
        window_start: Millis,
    ) -> Result<Option<u32>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut highest = 0i64;
        for bucket in buckets {
            let count: i64 = sqlx::query(
                "INSERT INTO auth_failures (bucket, window_start, count) VALUES ($1, $2, 1)
                 ON CONFLICT (bucket, window_start)
                 DO UPDATE SET count = auth_failures.count + 1 RETURNING count",
            )
            .bind(bucket)
            .bind(window_start)
            .fetch_one(&mut *tx)
            .await?
            .try_get("count")?;
            highest = highest.max(count);
        }
        sqlx::query("DELETE FROM auth_failures WHERE window_start < $1")
            .bind(window_start - AUTH_FAILURES_KEPT_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(u32::try_from(highest).unwrap_or(u32::MAX)))
    }
    }
}

/// PostgreSQL's run records (`store::writer`): a batch is one statement, whose data-modifying
/// `WITH` clauses insert the shared records not stored yet (`ON CONFLICT DO NOTHING`: another
/// replica may have stored the same one), the runs and their audit events from arrays (one
/// statement shape whatever the batch's size, so it stays prepared). One statement is one
/// transaction: all of the batch commits, or none of it.
struct Records(PgPool);

/// The batch statement: `UNNEST` turns the bound arrays, one per column in the order of the
/// column lists, into rows.
static WRITE_RUNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH shared AS (
            INSERT INTO run_decisions ({SHARED_COLUMNS})
            SELECT * FROM UNNEST($1::bytea[], $2::text[])
            ON CONFLICT DO NOTHING
        ), runs AS (
            INSERT INTO runs ({RUN_COLUMNS})
            SELECT * FROM UNNEST($3::text[], $4::int8[], $5::text[], $6::int8[], $7::text[],
                                 $8::text[], $9::text[], $10::bytea[], $11::text[], $12::int8[])
        )
        INSERT INTO audit ({AUDIT_COLUMNS})
        SELECT * FROM UNNEST($13::int8[], $14::int8[], $15::int8[], $16::text[], $17::text[],
                             $18::text[], $19::text[], $20::text[], $21::text[], $22::text[],
                             $23::text[], $24::text[], $25::text[])"
    )
});

impl RunRecords for Records {
    async fn together(&self, jobs: &[RunJob]) -> Result<(), StoreError> {
        write_runs(&self.0, jobs).await
    }

    async fn each(&self, jobs: &[RunJob]) -> Vec<Result<(), StoreError>> {
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            results.push(write_runs(&self.0, std::slice::from_ref(job)).await);
        }
        results
    }
}

/// Writes `jobs` with [`struct@WRITE_RUNS`]; marks their shared records stored once it commits.
async fn write_runs(pool: &PgPool, jobs: &[RunJob]) -> Result<(), StoreError> {
    let mut shared: Vec<&SharedRecord> = Vec::new();
    for job in jobs {
        let record = &job.shared.record;
        if !job.shared.stored.load(Ordering::Acquire)
            && !shared.iter().any(|s| s.digest == record.digest)
        {
            shared.push(record);
        }
    }
    // One array per column, in the order of the statement's parameters.
    let runs = |f: &dyn Fn(&RunPlan) -> Option<&str>| -> Vec<Option<&str>> {
        jobs.iter().map(|j| f(&j.plan)).collect()
    };
    let audits = |f: &dyn Fn(&AuditEvent) -> Option<&str>| -> Vec<Option<&str>> {
        jobs.iter().map(|j| f(&j.plan.audit)).collect()
    };
    let numbers =
        |f: &dyn Fn(&RunJob) -> Option<i64>| -> Vec<Option<i64>> { jobs.iter().map(f).collect() };
    sqlx::query(sqlx::AssertSqlSafe(WRITE_RUNS.as_str()))
        .bind(
            shared
                .iter()
                .map(|s| s.digest.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(shared.iter().map(|s| s.json.as_str()).collect::<Vec<_>>())
        .bind(runs(&|p| Some(&p.id)))
        .bind(numbers(&|j| Some(j.team)))
        .bind(runs(&|p| Some(&p.key_id)))
        .bind(numbers(&|j| j.plan.user.map(|u| u.0)))
        .bind(runs(&|p| p.identity.as_ref().map(Label::as_str)))
        .bind(runs(&|p| p.environment.as_ref().map(Label::as_str)))
        .bind(runs(&|p| Some(&p.record)))
        .bind(
            jobs.iter()
                .map(|j| j.shared.record.digest.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(runs(&|p| Some(p.status)))
        .bind(numbers(&|j| Some(j.plan.started_at)))
        .bind(numbers(&|j| j.plan.audit.team))
        .bind(numbers(&|j| Some(j.plan.audit.at)))
        .bind(numbers(&|j| j.plan.audit.actor.user.map(|u| u.0)))
        .bind(audits(&|e| e.actor.key.as_deref()))
        .bind(audits(&|e| e.actor.name.as_deref()))
        .bind(audits(&|e| e.actor.on_behalf_of.as_deref()))
        .bind(audits(&|e| e.actor.capability.map(Capability::as_str)))
        .bind(audits(&|e| e.actor.client.as_deref()))
        .bind(audits(&|e| e.actor.user_agent.as_deref()))
        .bind(audits(&|e| Some(&e.action)))
        .bind(audits(&|e| Some(&e.target)))
        .bind(audits(&|e| Some(&e.outcome)))
        .bind(audits(&|e| Some(&e.detail)))
        .execute(pool)
        .await?;
    for job in jobs {
        job.shared.stored.store(true, Ordering::Release);
    }
    Ok(())
}

/// PostgreSQL numbers its placeholders.
fn sql(
    text: impl Into<std::borrow::Cow<'static, str>>,
) -> sqlx::AssertSqlSafe<std::borrow::Cow<'static, str>> {
    sqlx::AssertSqlSafe(super::common::numbered(&text.into()).into())
}

/// Windows of failed authentications older than this are deleted as new ones are counted.
const AUTH_FAILURES_KEPT_MS: Millis = 10 * 60 * 1000;

/// A fresh, empty database on the server of `LATCH_TEST_DATABASE_URL`, for tests: its URL.
/// `None` when the variable is unset (the PostgreSQL half of the tests is then skipped, unless
/// `LATCH_REQUIRE_POSTGRES` is set, as CI sets it: then the test fails).
///
/// # Panics
/// When the variable is set but the server refuses: a configured test database must work.
#[cfg(test)]
pub(crate) async fn test_database() -> Option<String> {
    use rand_core::TryRng;
    let Ok(url) = std::env::var("LATCH_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("LATCH_REQUIRE_POSTGRES").is_none(),
            "LATCH_REQUIRE_POSTGRES is set but LATCH_TEST_DATABASE_URL is not"
        );
        return None;
    };
    let admin = PgPool::connect(&url)
        .await
        .expect("LATCH_TEST_DATABASE_URL answers");
    let name = format!(
        "latch_test_{:016x}",
        getrandom::SysRng.try_next_u64().expect("random")
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("creates a test database");
    let mut parsed = url::Url::parse(&url).expect("a URL");
    parsed.set_path(&format!("/{name}"));
    Some(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contract_suite_passes_on_postgres() {
        let Some(url) = test_database().await else {
            eprintln!("LATCH_TEST_DATABASE_URL is unset: the PostgreSQL contract suite is skipped");
            return;
        };
        let store = PgStore::connect(&url, PoolSettings::default())
            .await
            .expect("connects");
        super::super::contract::run_all(&store).await;
    }

    #[tokio::test]
    async fn a_bad_run_record_fails_alone_in_its_batch() {
        let Some(url) = test_database().await else {
            return;
        };
        let store = PgStore::connect(&url, PoolSettings::default())
            .await
            .expect("connects");
        let records = Records(store.pool.clone());
        super::super::contract::a_bad_run_record_fails_alone_in_its_batch(&store, &records).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_deciding_the_same_run_at_once_both_record_it() {
        let Some(url) = test_database().await else {
            return;
        };
        let connect = || PgStore::connect(&url, PoolSettings::default());
        let (a, b) = tokio::join!(connect(), connect());
        super::super::contract::replicas_share_one_record(
            std::sync::Arc::new(a.expect("a")),
            std::sync::Arc::new(b.expect("b")),
        )
        .await;
    }

    #[tokio::test]
    async fn a_database_from_before_capabilities_upgrades_meaningfully() {
        use sqlx::{Connection, Executor};
        let Some(url) = test_database().await else {
            return;
        };
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects");
        MIGRATOR.run_to(4, &mut conn).await.expect("the old schema");
        let old =
            super::super::contract::data_before_capabilities(|hex| format!("'\\x{hex}'::bytea"));
        conn.execute(sqlx::AssertSqlSafe(format!(
            "{old} SELECT setval(pg_get_serial_sequence('users', 'id'), 100);"
        )))
        .await
        .expect("old data");
        conn.close().await.expect("closes");
        let store = PgStore::connect(&url, PoolSettings::default())
            .await
            .expect("upgrades");
        super::super::contract::upgraded_before_capabilities(&store).await;
    }

    #[tokio::test]
    async fn replicas_starting_together_migrate_once() {
        let Some(url) = test_database().await else {
            return;
        };
        let (a, b, c) = tokio::join!(
            PgStore::connect(&url, PoolSettings::default()),
            PgStore::connect(&url, PoolSettings::default()),
            PgStore::connect(&url, PoolSettings::default()),
        );
        let (a, b, _c) = (a.expect("a"), b.expect("b"), c.expect("c"));
        assert!(a.init_meta("check", b"one").await.expect("writes"));
        assert!(!b.init_meta("check", b"two").await.expect("no overwrite"));
        assert_eq!(b.meta("check").await.expect("reads"), Some(b"one".to_vec()));
    }
}
