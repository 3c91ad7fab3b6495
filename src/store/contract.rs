//! The store contract: one suite that every backend must pass (SQLite always; PostgreSQL when
//! a test database is configured). It checks behaviour handlers rely on, not SQL.

#![allow(
    clippy::too_many_lines,
    reason = "a contract reads best as one story per area"
)]

use crate::core::apikey::{ApiKey, KeyKind};
use crate::core::name::{Label, SecretName};
use crate::core::perm::{Capability, Role};
use std::sync::Arc;

use crate::core::resolve::{Delivery, Resolution, Scope, SecretId, Trigger, UserId};

use super::{
    AuditEvent, Bootstrap, Decide, Decided, Decision, ListKind, NamedList, NewKey, NewSecret,
    RunAsk, RunPlan, SecretUpdate, Store, StoreError, TeamRow,
};

const TEAM: i64 = 4242;

fn l(s: &str) -> Label {
    Label::new(s).expect("label")
}
fn n(s: &str) -> SecretName {
    SecretName::new(s).expect("name")
}

fn new_key(kind: KeyKind, seed: u64, role: Option<Role>, identity: Option<&str>) -> NewKey {
    use rand::SeedableRng;
    let Ok(key) = ApiKey::generate(kind, &mut rand::rngs::StdRng::seed_from_u64(seed));
    NewKey {
        key_id: key.id(),
        digest: key.digest(),
        last4: key.last4().to_owned(),
        kind,
        capability: Capability::default_for(kind),
        role_at_creation: role,
        identity: identity.map(l),
        name: format!("key {seed}"),
        created_at: 1_000,
        expires_at: None,
    }
}

/// An audit maker that writes `e`, whatever the change did.
fn one<T>(e: AuditEvent) -> impl Fn(&T) -> Vec<AuditEvent> + Send + Sync {
    move |_| vec![e.clone()]
}

/// Every audit event, up to `limit`.
fn aq(limit: u32) -> super::AuditQuery {
    super::AuditQuery {
        limit,
        ..super::AuditQuery::default()
    }
}

/// Runs (of `user` only, when given), up to `limit`.
fn rq(user: Option<UserId>, limit: u32) -> super::RunQuery {
    super::RunQuery {
        limit,
        only_user: user,
        ..super::RunQuery::default()
    }
}

fn event(action: &str) -> AuditEvent {
    AuditEvent {
        team: Some(TEAM),
        at: 2_000,
        actor: super::Actor::default(),
        action: action.to_owned(),
        target: "t".to_owned(),
        outcome: "ok".to_owned(),
        detail: "{}".into(),
    }
}

fn secret(id: i64, scope: Scope, owner: Option<UserId>, name: &str, actor: UserId) -> NewSecret {
    NewSecret {
        id: SecretId(id),
        team: TEAM,
        scope,
        owner,
        name: n(name),
        description: format!("about {name}"),
        key_version: 1,
        ciphertext: vec![1, 2, 3, u8::try_from(id % 200).expect("small")],
        value_len: 10,
        broker: None,
        actor,
        at: 3_000,
    }
}

/// Runs every contract check against `store`, which must be empty.
pub(crate) async fn run_all(store: &dyn Store) {
    let owner = bootstrap(store).await;
    let alice = keys_and_members(store, owner).await;
    secrets(store, owner, alice).await;
    lists(store).await;
    runs(store, owner, alice).await;
    audit(store).await;
    decisions_are_shared_until_a_change(store).await;
    kept_state_follows_every_change(store, owner, alice).await;
    auth_failures(store).await;
    capabilities_and_roles_over_time(store, owner).await;
    removal_is_final_and_a_name_comes_back_as_someone_new(store, owner).await;
    identities_release_and_revoke_only_when_asked(store, owner).await;
    a_dry_run_writes_its_event_and_no_run(store).await;
    audit_pages_and_filters(store).await;
    run_pages_and_filters(store).await;
    secret_revisions(store, owner).await;
    team_byok_setting(store).await;
    seal_key_is_made_once(store).await;
    sessions(store).await;
}

/// DESIGN §12: web app sessions are kept by the digest of their id, touched forward only,
/// ended one by one or all of a key's at once (audited when any ended), and pruned when idle
/// or past their end as a new one opens.
async fn sessions(store: &dyn Store) {
    use crate::store::{Millis, SessionRow};
    let session = |digest: u8, key: &str, at: Millis| SessionRow {
        digest: vec![digest; 32],
        team: TEAM,
        key_id: key.to_owned(),
        key_digest: vec![7; 32],
        created_at: at,
        last_seen_at: at,
        expires_at: at + 1_000,
    };
    let opened = event("ui.login");
    store
        .create_session(session(1, "keyAAAA1", 100), 0, opened.clone())
        .await
        .expect("opens");
    store
        .create_session(session(2, "keyAAAA1", 100), 0, opened.clone())
        .await
        .expect("opens");
    assert_eq!(
        store.session(&[1; 32]).await.expect("reads"),
        Some(session(1, "keyAAAA1", 100))
    );
    assert_eq!(store.session(&[9; 32]).await.expect("reads"), None);
    store.touch_session(&[1; 32], 500).await.expect("touches");
    store.touch_session(&[1; 32], 300).await.expect("touches");
    let seen = store.session(&[1; 32]).await.expect("reads").expect("kept");
    assert_eq!(seen.last_seen_at, 500, "forward only");
    // Another key's digest ends nothing of this key.
    let ended = store
        .end_sessions(Some(&[1; 32]), "keyBBBB2", event("ui.logout"))
        .await
        .expect("ends");
    assert_eq!(ended, 0);
    let before = store.audit(TEAM, &aq(1_000)).await.expect("reads").len();
    let ended = store
        .end_sessions(Some(&[1; 32]), "keyAAAA1", event("ui.logout"))
        .await
        .expect("ends");
    assert_eq!(ended, 1);
    assert_eq!(store.session(&[1; 32]).await.expect("reads"), None);
    assert_eq!(
        store.audit(TEAM, &aq(1_000)).await.expect("reads").len(),
        before + 1
    );
    store
        .create_session(session(3, "keyAAAA1", 100), 0, opened.clone())
        .await
        .expect("opens");
    let ended = store
        .end_sessions(None, "keyAAAA1", event("ui.logout_all"))
        .await
        .expect("ends");
    assert_eq!(ended, 2, "every session of the key");
    // Opening a session prunes the idle and the ended ones.
    store
        .create_session(session(4, "keyCCCC3", 100), 0, opened.clone())
        .await
        .expect("opens");
    store
        .create_session(session(5, "keyCCCC3", 2_000), 150, opened.clone())
        .await
        .expect("opens");
    assert_eq!(
        store.session(&[4; 32]).await.expect("reads"),
        None,
        "pruned"
    );
    assert!(store.session(&[5; 32]).await.expect("reads").is_some());
}

/// DESIGN §12: a team's sealing key pair is kept once; a second replica's attempt keeps the
/// first pair (and writes no event), so every writer seals to the key every replica opens with.
async fn seal_key_is_made_once(store: &dyn Store) {
    use crate::store::SealKeyRow;
    assert_eq!(store.seal_key(TEAM).await.expect("reads"), None);
    let first = SealKeyRow {
        key_id: "00112233aabbccdd".into(),
        public: vec![1; 32],
        wrapped_private: vec![2; 73],
    };
    let second = SealKeyRow {
        key_id: "ffeeddccbbaa9988".into(),
        public: vec![3; 32],
        wrapped_private: vec![4; 73],
    };
    let before = store.audit(TEAM, &aq(1_000)).await.expect("reads").len();
    let kept = store
        .init_seal_key(TEAM, first.clone(), event("team.seal_key"))
        .await
        .expect("keeps");
    assert_eq!(kept, first);
    let kept = store
        .init_seal_key(TEAM, second, event("team.seal_key"))
        .await
        .expect("answers");
    assert_eq!(kept, first, "the first pair stays");
    assert_eq!(store.seal_key(TEAM).await.expect("reads"), Some(first));
    let events = store.audit(TEAM, &aq(1_000)).await.expect("reads");
    assert_eq!(events.len(), before + 1, "one event, for the pair kept");
    assert_eq!(events[0].event.action, "team.seal_key");
    assert!(store.seal_key(TEAM + 1000).await.is_err(), "no such team");
}

/// DESIGN §14: a team's BYOK setting, `allowed` until an owner or admin changes it, changed with
/// its audit event, and read back as set (also by the key rows' generation, which it moves).
async fn team_byok_setting(store: &dyn Store) {
    use crate::core::byok::TeamSetting;
    assert_eq!(
        store.team_byok(TEAM).await.expect("reads"),
        TeamSetting::Allowed
    );
    let before = store.audit(TEAM, &aq(1_000)).await.expect("reads").len();
    store
        .set_team_byok(TEAM, TeamSetting::Forbidden, event("team.update"))
        .await
        .expect("sets");
    assert_eq!(
        store.team_byok(TEAM).await.expect("reads"),
        TeamSetting::Forbidden
    );
    let events = store.audit(TEAM, &aq(1_000)).await.expect("reads");
    assert_eq!(events.len(), before + 1);
    assert_eq!(events[0].event.action, "team.update");
    store
        .set_team_byok(TEAM, TeamSetting::Allowed, event("team.update"))
        .await
        .expect("sets");
    assert_eq!(
        store.team_byok(TEAM).await.expect("reads"),
        TeamSetting::Allowed
    );
    assert!(store.team_byok(TEAM + 1000).await.is_err(), "no such team");
}

/// DESIGN §2 rule 7 with group commit, for an engine's run records (`store::writer`): a batch
/// is written whole or not at all, and written record by record after a failure, a record that
/// cannot be written (here a run id used already) fails alone — its values may not leave —
/// while the others are durable and readable, each with its audit event.
pub(super) async fn a_bad_run_record_fails_alone_in_its_batch(
    store: &dyn Store,
    records: &impl super::writer::RunRecords,
) {
    use super::writer::RunJob;
    bootstrap(store).await;
    let first = store
        .resolve_run(
            TEAM,
            ask("batch-taken", None, b"batched", Box::new(|_| decided(&[]))),
        )
        .await
        .expect("resolves");
    first.durable.wait().await.expect("durable");
    let jobs = |ids: &[&str]| -> Vec<RunJob> {
        ids.iter()
            .map(|id| RunJob::new(TEAM, Arc::new(plan(id, None)), Arc::clone(&first.decision)))
            .collect()
    };
    let newest = || async { store.audit(TEAM, &aq(1)).await.expect("reads")[0].id };
    let found = |id: &'static str| async move { store.run(TEAM, id).await.expect("reads") };

    let before = newest().await;
    let batch = jobs(&["batch-a", "batch-taken", "batch-b"]);
    assert!(
        records.together(&batch).await.is_err(),
        "the batch fails as a whole"
    );
    assert!(
        found("batch-a").await.is_none(),
        "nothing of a failed batch is written"
    );
    assert_eq!(newest().await, before, "nor any of its audit events");

    let results = records.each(&batch).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "the bad record fails alone");
    for id in ["batch-a", "batch-b"] {
        let run = found(id).await.expect("found");
        assert_eq!(run.record["trigger"], "cli", "{id}: whole record");
    }
    let events = store.audit(TEAM, &aq(3)).await.expect("reads");
    assert!(
        events[..2].iter().all(|e| e.event.action == "run.start") && events[2].id == before,
        "the two good runs' audit events are written with them, the bad one's is not"
    );

    records
        .together(&jobs(&["batch-c", "batch-d"]))
        .await
        .expect("a good batch commits");
    assert!(found("batch-c").await.is_some() && found("batch-d").await.is_some());
}

/// DESIGN §9, §10: the audit log pages newest first with a cursor (each event once), filters by
/// action prefix, actor (or the creator a team key acted for), outcome and time, keeps who,
/// with what capability and from where, and shows events of no team to every team.
async fn audit_pages_and_filters(store: &dyn Store) {
    let mut events = Vec::new();
    for i in 0..120_i64 {
        let (name, on_behalf_of) = if i % 3 == 0 {
            (None, Some("pat".to_owned()))
        } else {
            (Some(format!("u{}", i % 2)), None)
        };
        events.push(AuditEvent {
            at: 50_000 + i,
            actor: super::Actor {
                name,
                on_behalf_of,
                key: Some("AbCd1234".into()),
                capability: Some(Capability::Run),
                client: Some("203.0.113.7".into()),
                user_agent: Some("test/1".into()),
                ..super::Actor::default()
            },
            outcome: if i % 10 == 0 {
                "denied".into()
            } else {
                "ok".into()
            },
            ..event(&format!("page.{}", if i % 2 == 0 { "even" } else { "odd" }))
        });
    }
    store.record_events(&events).await.expect("writes");
    let query = |f: &dyn Fn(&mut super::AuditQuery)| {
        let mut q = super::AuditQuery {
            limit: 50,
            action: Some("page.".into()),
            ..super::AuditQuery::default()
        };
        f(&mut q);
        q
    };
    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..5 {
        let page = store
            .audit(TEAM, &query(&|q| q.before = before))
            .await
            .expect("reads");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id);
        seen.extend(page.iter().map(|e| e.event.at));
    }
    let expected: Vec<i64> = (0..120).rev().map(|i| 50_000 + i).collect();
    assert_eq!(seen, expected, "every event once, newest first");
    let count = |f: &dyn Fn(&mut super::AuditQuery)| {
        let q = query(&|q| {
            q.limit = 500;
            f(q);
        });
        async move { store.audit(TEAM, &q).await.expect("reads") }
    };
    assert_eq!(
        count(&|q| q.action = Some("page.even".into())).await.len(),
        60
    );
    assert_eq!(
        count(&|q| q.outcome = Some("denied".into())).await.len(),
        12
    );
    assert_eq!(
        count(&|q| q.actor = Some("pat".into())).await.len(),
        40,
        "on behalf of"
    );
    assert_eq!(count(&|q| q.actor = Some("u1".into())).await.len(), 40);
    assert_eq!(
        count(&|q| {
            q.since = Some(50_100);
            q.until = Some(50_110);
        })
        .await
        .len(),
        10
    );
    let one = &count(&|q| q.since = Some(50_119)).await[0].event;
    assert_eq!(
        (
            one.actor.capability,
            one.actor.client.as_deref(),
            one.actor.user_agent.as_deref()
        ),
        (Some(Capability::Run), Some("203.0.113.7"), Some("test/1"))
    );
    // An event of no team (a failed authentication with an unknown key) is shown to a team.
    store
        .record_events(&[AuditEvent {
            team: None,
            ..event("page.nobody")
        }])
        .await
        .expect("writes");
    let nobody = count(&|q| q.action = Some("page.nobody".into())).await;
    assert_eq!(nobody.len(), 1);
    assert_eq!(nobody[0].event.team, None);
}

/// DESIGN §9: runs page newest first with a cursor, and filter by user, key, identity,
/// environment, status and time.
async fn run_pages_and_filters(store: &dyn Store) {
    for i in 0..30_i64 {
        let id = format!("paged-{i:02}");
        let ask = RunAsk {
            start: Box::new(move |_| RunPlan {
                key_id: if i % 2 == 0 {
                    "PageKey1".into()
                } else {
                    "PageKey2".into()
                },
                identity: (i % 3 == 0).then(|| l("pager")),
                environment: (i % 5 == 0).then(|| l("paging")),
                started_at: 90_000 + i,
                ..plan(&id, None)
            }),
            ..ask(
                &format!("paged-{i:02}"),
                None,
                format!("paged-{i}").as_bytes(),
                Box::new(|_| decided(&[])),
            )
        };
        let run = store.resolve_run(TEAM, ask).await.expect("resolves");
        run.durable.wait().await.expect("durable");
    }
    let q = |f: &dyn Fn(&mut super::RunQuery)| {
        let mut q = super::RunQuery {
            limit: 500,
            since: Some(90_000),
            ..super::RunQuery::default()
        };
        f(&mut q);
        q
    };
    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..5 {
        let page = store
            .runs(
                TEAM,
                &q(&|q| {
                    q.limit = 12;
                    q.before.clone_from(&before);
                }),
            )
            .await
            .expect("lists");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| (r.started_at, r.id.clone()));
        seen.extend(page.into_iter().map(|r| r.id));
    }
    let expected: Vec<String> = (0..30).rev().map(|i| format!("paged-{i:02}")).collect();
    assert_eq!(seen, expected, "every run once, newest first");
    let count = |f: &dyn Fn(&mut super::RunQuery)| {
        let query = q(f);
        async move { store.runs(TEAM, &query).await.expect("lists").len() }
    };
    assert_eq!(count(&|q| q.key = Some("PageKey1".into())).await, 15);
    assert_eq!(count(&|q| q.identity = Some("pager".into())).await, 10);
    assert_eq!(count(&|q| q.environment = Some("paging".into())).await, 6);
    assert_eq!(count(&|q| q.status = Some("started".into())).await, 30);
    assert_eq!(count(&|q| q.status = Some("refused".into())).await, 0);
    assert_eq!(count(&|q| q.until = Some(90_010)).await, 10);
    assert_eq!(count(&|q| q.user = Some("nobody-at-all".into())).await, 0);
    let shown = store
        .run(TEAM, "paged-03")
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(shown.identity.as_deref(), Some("pager"));
}

/// A secret's revision moves with every change, value or description; `If-Match` at an older
/// one is refused and writes nothing.
async fn secret_revisions(store: &dyn Store, owner: UserId) {
    store
        .create_secret(
            secret(901, Scope::Team, None, "REVISED", owner),
            event("secret.create"),
        )
        .await
        .expect("creates");
    let read = || async {
        store
            .secret(TEAM, Scope::Team, None, &n("REVISED"))
            .await
            .expect("reads")
            .expect("found")
    };
    assert_eq!(read().await.revision, 1);
    let update = |version, if_revision| SecretUpdate {
        id: SecretId(901),
        expected_version: version,
        value: None,
        description: Some(format!("at {if_revision:?}")),
        broker: None,
        if_revision,
        actor: owner,
        at: 9_000,
    };
    store
        .update_secret(update(1, Some(1)), event("secret.update"))
        .await
        .expect("current");
    assert_eq!(read().await.revision, 2, "a description alone moves it");
    let stale = store
        .update_secret(update(1, Some(1)), event("secret.update"))
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    assert_eq!(read().await.description, "at Some(1)", "nothing written");
    store
        .update_secret(update(1, None), event("secret.update"))
        .await
        .expect("no If-Match");
    assert_eq!(read().await.revision, 3);
}

async fn add(store: &dyn Store, name: &str, role: Role, seed: u64, by: UserId) -> (UserId, NewKey) {
    let key = new_key(KeyKind::Personal, seed, None, None);
    let user = store
        .add_member(TEAM, &l(name), role, key.clone(), by, event("member.add"))
        .await
        .expect("adds");
    (user, key)
}

async fn auth(store: &dyn Store, key: &NewKey) -> super::AuthKey {
    store
        .key_for_auth(&key.key_id)
        .await
        .expect("reads")
        .expect("found")
}

/// Each key's capability is stored as asked; a team key's creator's current role is read with
/// it, and follows demotion and removal (DESIGN §3 "Roles over time").
async fn capabilities_and_roles_over_time(store: &dyn Store, owner: UserId) {
    let (admin, _) = add(store, "cap-admin", Role::Admin, 601, owner).await;
    let mut keys = Vec::new();
    for (seed, kind, capability) in [
        (602, KeyKind::Team, Capability::Run),
        (603, KeyKind::Team, Capability::Manage),
        (604, KeyKind::Personal, Capability::Run),
    ] {
        let key = NewKey {
            capability,
            ..new_key(
                kind,
                seed,
                (kind == KeyKind::Team).then_some(Role::Admin),
                None,
            )
        };
        let user = (kind == KeyKind::Personal).then_some(admin);
        store
            .create_key(TEAM, user, admin, key.clone(), event("key.create"))
            .await
            .expect("creates");
        keys.push((key, capability));
    }
    for (key, capability) in &keys {
        let found = auth(store, key).await;
        assert_eq!(found.key.capability, *capability, "{:?}", key.kind);
        assert_eq!(found.creator_role, Some(Role::Admin));
        let listed = store.keys(TEAM, Some(admin)).await.expect("lists");
        let row = listed
            .iter()
            .find(|k| k.key_id == key.key_id)
            .expect("listed");
        assert_eq!(row.capability, *capability);
    }
    let team_key = &keys[1].0;
    store
        .set_role(TEAM, admin, Role::Builder, event("member.role"))
        .await
        .expect("demotes");
    let found = auth(store, team_key).await;
    assert_eq!(
        (found.key.role_at_creation, found.creator_role),
        (Some(Role::Admin), Some(Role::Builder)),
        "then and now, for the lower of the two"
    );
    store
        .remove_member(TEAM, admin, 7_000, &one(event("member.remove")))
        .await
        .expect("removes")
        .expect("was a member");
    let found = auth(store, team_key).await;
    assert_eq!(found.creator_role, None, "the creator is gone");
    assert_eq!(
        found.key.revoked_at, None,
        "a team key outlives its creator (as `run`)"
    );
    assert_eq!(auth(store, &keys[2].0).await.key.revoked_at, Some(7_000));
}

/// DESIGN §3 "Member removal is final": personal keys revoked for good, personal secrets
/// deleted (the store hands what it did to the audit maker, in the same transaction), runs
/// kept; the name added again is a new user who inherits nothing.
async fn removal_is_final_and_a_name_comes_back_as_someone_new(store: &dyn Store, owner: UserId) {
    let (dana, first) = add(store, "dana", Role::Builder, 701, owner).await;
    let second = new_key(KeyKind::Personal, 702, None, None);
    store
        .create_key(TEAM, Some(dana), dana, second.clone(), event("key.create"))
        .await
        .expect("creates");
    let gone = new_key(KeyKind::Personal, 703, None, None);
    store
        .create_key(TEAM, Some(dana), dana, gone.clone(), event("key.create"))
        .await
        .expect("creates");
    assert!(
        store
            .revoke_key(TEAM, &gone.key_id, None, event("key.revoke"))
            .await
            .expect("revokes")
    );
    for (id, name) in [(710, "DANA_TOKEN"), (711, "DANA_NPM")] {
        store
            .create_secret(
                secret(id, Scope::Personal, Some(dana), name, dana),
                event("secret.create"),
            )
            .await
            .expect("creates");
    }
    resolve_durably(
        store,
        TEAM,
        Some(dana),
        None,
        "dana-run",
        Box::new(|_| decided(&[])),
    )
    .await
    .expect("runs");
    let before = store.audit(TEAM, &aq(1_000)).await.expect("reads").len();
    let seen = std::sync::Mutex::new(None);
    let audit = |removed: &super::Removed| {
        *seen.lock().expect("lock") = Some(removed.clone());
        vec![
            event("member.remove"),
            event("secret.delete"),
            event("secret.delete"),
        ]
    };
    let removed = store
        .remove_member(TEAM, dana, 9_000, &audit)
        .await
        .expect("removes")
        .expect("was a member");
    assert_eq!(
        seen.into_inner().expect("lock").as_ref(),
        Some(&removed),
        "the audit saw it"
    );
    let revoked: Vec<_> = removed.revoked.iter().map(|k| k.key_id.clone()).collect();
    assert_eq!(
        revoked,
        vec![first.key_id.clone(), second.key_id.clone()],
        "active ones"
    );
    assert_eq!(removed.deleted, vec![n("DANA_NPM"), n("DANA_TOKEN")]);
    assert_eq!(
        store.audit(TEAM, &aq(1_000)).await.expect("reads").len(),
        before + 3
    );
    for key in [&first, &second] {
        let found = auth(store, key).await;
        assert_eq!((found.key.revoked_at, found.member), (Some(9_000), None));
    }
    assert_eq!(
        auth(store, &gone).await.key.revoked_at,
        Some(2_000),
        "kept as it was"
    );
    assert!(
        store
            .secret(TEAM, Scope::Personal, Some(dana), &n("DANA_TOKEN"))
            .await
            .expect("reads")
            .is_none()
    );
    let run = store
        .run(TEAM, "dana-run")
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(run.user, Some(dana));

    // The name again: someone new, with nothing of the old.
    let (again, fresh) = add(store, "dana", Role::Builder, 704, owner).await;
    assert_ne!(again, dana, "a new user id");
    let theirs: Vec<_> = store
        .keys(TEAM, Some(again))
        .await
        .expect("lists")
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(theirs, vec![fresh.key_id.clone()]);
    for key in [&first, &second] {
        let found = auth(store, key).await;
        assert_eq!(
            (found.key.revoked_at, found.member),
            (Some(9_000), None),
            "never revived"
        );
    }
    assert_eq!(
        auth(store, &fresh).await.member,
        Some(("dana".to_owned(), Role::Builder))
    );
    let mine = store.secrets(TEAM, again, false).await.expect("lists");
    assert!(
        mine.iter().all(|s| s.scope == Scope::Team),
        "no personal secret inherited"
    );
    assert_eq!(
        store
            .member(TEAM, &l("dana"))
            .await
            .expect("reads")
            .map(|m| m.user),
        Some(again)
    );
}

fn refused_names(
    result: Result<impl std::fmt::Debug, StoreError>,
) -> (&'static str, Vec<String>, Vec<String>) {
    match result {
        Err(StoreError::Refused(super::Refused::WouldRelease(names))) => (
            "would_release",
            names.iter().map(ToString::to_string).collect(),
            vec![],
        ),
        Err(StoreError::Refused(super::Refused::IdentityInUse {
            keys,
            would_release,
        })) => (
            "identity_in_use",
            would_release.iter().map(ToString::to_string).collect(),
            keys.iter().map(|k| k.name.clone()).collect(),
        ),
        other => panic!("refused, not {other:?}"),
    }
}

/// DESIGN §3 "Identities are a boundary": a change that leaves a name reserved by none is
/// refused unless released; deleting an identity with bound keys is refused unless forced,
/// and then revokes them.
async fn identities_release_and_revoke_only_when_asked(store: &dyn Store, owner: UserId) {
    let identity = |name: &str, secrets: &[&str]| NamedList {
        revision: 0,
        name: l(name),
        description: String::new(),
        secrets: Some(secrets.iter().map(|s| n(s)).collect()),
        updated_at: 30_000,
    };
    let put = |list: NamedList, release: Vec<SecretName>| async move {
        store
            .put_list(
                ListKind::Identity,
                TEAM,
                list,
                None,
                &release,
                &one(event("identity.put")),
            )
            .await
    };
    put(identity("ops", &["OPS_KEY", "SHARED_KEY"]), vec![])
        .await
        .expect("a new one releases nothing");
    put(identity("ops-2", &["shared_key"]), vec![])
        .await
        .expect("creates");
    // SHARED_KEY stays reserved by ops-2 (in another spelling): nothing released.
    let change = put(identity("ops", &["OPS_KEY"]), vec![])
        .await
        .expect("narrows");
    assert!(change.released.is_empty());
    assert_eq!(
        refused_names(put(identity("ops", &[]), vec![]).await),
        ("would_release", vec!["OPS_KEY".to_owned()], vec![])
    );
    assert_eq!(
        store
            .list(ListKind::Identity, TEAM, &l("ops"))
            .await
            .expect("reads")
            .and_then(|l| l.secrets),
        Some(vec![n("OPS_KEY")]),
        "nothing written"
    );

    let bound = NewKey {
        name: "ops bot".into(),
        ..new_key(KeyKind::Team, 801, Some(Role::Owner), Some("ops-2"))
    };
    store
        .create_key(TEAM, None, owner, bound.clone(), event("key.create"))
        .await
        .expect("creates");
    let delete = |release: Vec<SecretName>, force: bool| async move {
        store
            .delete_list(
                ListKind::Identity,
                TEAM,
                &l("ops-2"),
                &release,
                force,
                31_000,
                &one(event("identity.delete")),
            )
            .await
    };
    assert_eq!(
        refused_names(delete(vec![], false).await),
        (
            "identity_in_use",
            vec!["shared_key".to_owned()],
            vec!["ops bot".to_owned()]
        ),
        "names both what it releases (as the list spells it) and the keys"
    );
    assert_eq!(
        refused_names(delete(vec![], true).await),
        ("would_release", vec!["shared_key".to_owned()], vec![]),
        "forcing revokes keys, it releases nothing unasked"
    );
    assert_eq!(
        auth(store, &bound).await.key.revoked_at,
        None,
        "nothing written"
    );
    let deleted = delete(vec![n("SHARED_KEY")], true)
        .await
        .expect("deletes")
        .expect("existed");
    assert_eq!(deleted.released, vec![n("shared_key")]);
    assert_eq!(
        deleted
            .revoked
            .iter()
            .map(|k| k.key_id.clone())
            .collect::<Vec<_>>(),
        vec![bound.key_id.clone()]
    );
    assert_eq!(auth(store, &bound).await.key.revoked_at, Some(31_000));
    assert!(
        store
            .list(ListKind::Identity, TEAM, &l("ops-2"))
            .await
            .expect("reads")
            .is_none()
    );
}

/// DESIGN §2 rule 8: a dry run is decided over the same snapshot, writes its audit event, and
/// records no run.
async fn a_dry_run_writes_its_event_and_no_run(store: &dyn Store) {
    let runs = store
        .runs(TEAM, &rq(None, 1_000))
        .await
        .expect("lists")
        .len();
    let events = store.audit(TEAM, &aq(1_000)).await.expect("reads").len();
    let decision = store
        .dry_run(
            TEAM,
            super::DryRun {
                user: None,
                environment: None,
                inputs: b"dry".to_vec(),
                decide: Box::new(|_| decided(&[])),
                audit: Box::new(|_| event("run.dry_run")),
            },
        )
        .await
        .expect("decides");
    assert!(decision.result.is_ok());
    assert_eq!(
        store
            .runs(TEAM, &rq(None, 1_000))
            .await
            .expect("lists")
            .len(),
        runs
    );
    let after = store.audit(TEAM, &aq(1_000)).await.expect("reads");
    assert_eq!(after.len(), events + 1);
    assert_eq!(after[0].event.action, "run.dry_run");
}

/// A database as latch wrote it before key capabilities and final removal (the schema of the
/// earlier migrations): team 9 with `owner` (user 1), `gone` (user 2, removed, who kept two
/// keys and a personal secret) and `stays` (user 3); a team key bound to an identity and one
/// not; a run by `gone`. `blob` writes a binary literal in the engine's syntax.
pub(crate) fn data_before_capabilities(blob: fn(&str) -> String) -> String {
    let b = blob("00");
    let d = blob(&"ab".repeat(32));
    format!(
        "INSERT INTO teams (id, name, data_key, key_version, created_at) VALUES (9, 'old', {b}, 1, 1);
         INSERT INTO users (id, name, created_at) VALUES (1, 'owner', 1), (2, 'gone', 1), (3, 'stays', 1);
         INSERT INTO members (team_id, user_id, role, created_at) VALUES (9, 1, 'owner', 1), (9, 3, 'builder', 1);
         INSERT INTO api_keys (key_id, digest, last4, team_id, kind, user_id, created_by, role_at_creation,
             identity, name, created_at)
         VALUES ('OwnrKey1', {d}, 'aaaa', 9, 'personal', 1, 1, NULL, NULL, 'owner laptop', 1),
                ('GoneKey1', {d}, 'bbbb', 9, 'personal', 2, 2, NULL, NULL, 'gone laptop', 1),
                ('GoneKey2', {d}, 'cccc', 9, 'personal', 2, 1, NULL, NULL, 'gone ci', 1),
                ('TeamKey1', {d}, 'dddd', 9, 'team', NULL, 1, 'owner', NULL, 'old automation', 1),
                ('TeamKey2', {d}, 'eeee', 9, 'team', NULL, 1, 'owner', 'deployer', 'deploy bot', 1);
         INSERT INTO secrets (id, team_id, scope, owner_id, owner_key, name, name_key, description, version,
             key_version, ciphertext, value_len, created_at, created_by, updated_at, updated_by)
         VALUES (11, 9, 'team', NULL, 0, 'DB_URL', 'db_url', '', 1, 1, {b}, 1, 1, 1, 1, 1),
                (12, 9, 'personal', 2, 2, 'GONE_TOKEN', 'gone_token', '', 1, 1, {b}, 1, 1, 2, 1, 2),
                (13, 9, 'personal', 3, 3, 'KEPT', 'kept', '', 1, 1, {b}, 1, 1, 3, 1, 3);
         INSERT INTO runs (id, team_id, key_id, user_id, record, status, started_at)
         VALUES ('run_old', 9, 'GoneKey1', 2, '{{\"who\":{{\"user\":\"gone\"}}}}', 'started', 1);"
    )
}

/// What [`data_before_capabilities`] must read as once migrated: today's data kept meaningful.
pub(crate) async fn upgraded_before_capabilities(store: &dyn Store) {
    let keys = store.keys(9, None).await.expect("lists");
    let key = |name: &str| keys.iter().find(|k| k.name == name).expect(name);
    assert_eq!(key("owner laptop").capability, Capability::Manage);
    assert_eq!(key("owner laptop").revoked_at, None);
    assert_eq!(
        key("old automation").capability,
        Capability::Run,
        "least power"
    );
    assert_eq!(key("deploy bot").capability, Capability::Run);
    for gone in ["gone laptop", "gone ci"] {
        assert!(key(gone).revoked_at.is_some(), "{gone}: removal is final");
    }
    let names: Vec<String> = store
        .secrets(9, UserId(3), true)
        .await
        .expect("lists")
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["DB_URL", "KEPT"],
        "the removed member's secret is deleted"
    );
    let audit = store.audit(9, &aq(100)).await.expect("reads");
    let recorded = |action: &str, target: &str| {
        audit
            .iter()
            .any(|e| e.event.action == action && e.event.target == target)
    };
    assert!(recorded("api_key.revoke", "GoneKey1") && recorded("api_key.revoke", "GoneKey2"));
    assert!(recorded("secret.delete", "personal/GONE_TOKEN"));
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert_eq!(
        store
            .run(9, "run_old")
            .await
            .expect("reads")
            .map(|r| r.user),
        Some(Some(UserId(2))),
        "runs stay readable"
    );
    // Names are no longer unique for all time: `gone` comes back as someone new.
    let again = store
        .add_member(
            9,
            &l("gone"),
            Role::Builder,
            new_key(KeyKind::Personal, 900, None, None),
            UserId(1),
            AuditEvent {
                team: Some(9),
                ..event("member.add")
            },
        )
        .await
        .expect("adds");
    assert_ne!(again, UserId(2));
    assert_eq!(store.keys(9, Some(again)).await.expect("lists").len(), 1);
}

/// What a resolve saw: team secrets (name, version, reserving identities), the caller's
/// personal secret names, and the named environment's list if it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    team: Vec<(String, u32, Vec<String>)>,
    personal: Vec<String>,
    #[allow(
        clippy::option_option,
        reason = "no environment ≠ an environment without a list"
    )]
    environment: Option<Option<Vec<String>>>,
    delivered: Vec<Vec<u8>>,
}

/// Resolves a run `id` (its inputs are its id: each id is decided once per snapshot), records
/// it, and waits until its record is durable, as the server does before answering.
async fn resolve_durably(
    store: &dyn Store,
    team: i64,
    user: Option<UserId>,
    environment: Option<&Label>,
    id: &str,
    decide: Decide,
) -> Result<(RunPlan, Arc<Decision>), StoreError> {
    let ask = RunAsk {
        environment: environment.cloned(),
        ..ask(id, user, id.as_bytes(), decide)
    };
    let run = store.resolve_run(team, ask).await?;
    run.durable.wait().await?;
    Ok((RunPlan::clone(&run.plan), run.decision))
}

async fn seen(
    store: &dyn Store,
    user: Option<UserId>,
    environment: &str,
    deliver: Vec<SecretId>,
) -> Seen {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "seen-{}",
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let view = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = std::sync::Arc::clone(&view);
    let environment = l(environment);
    let (_, decision) = resolve_durably(
        store,
        TEAM,
        user,
        Some(&environment),
        &id,
        Box::new(move |snapshot| {
            let team = snapshot
                .team
                .iter()
                .map(|s| {
                    let reserved = s.reserved_for.iter().map(ToString::to_string).collect();
                    (s.name.to_string(), s.version, reserved)
                })
                .collect();
            let personal = snapshot
                .personal
                .iter()
                .map(|s| s.name.to_string())
                .collect();
            let environment = snapshot.environment.map(|e| {
                e.secrets
                    .as_ref()
                    .map(|names| names.iter().map(ToString::to_string).collect())
            });
            *slot.lock().expect("lock") = Some((team, personal, environment));
            decided(&deliver)
        }),
    )
    .await
    .expect("resolves");
    let (team, personal, environment) = view.lock().expect("lock").take().expect("decided");
    Seen {
        team,
        personal,
        environment,
        delivered: decision
            .sealed
            .iter()
            .map(|s| s.ciphertext.clone())
            .collect(),
    }
}

/// Whatever a backend keeps between requests, every change is seen by the next request: each
/// step reads first (so anything kept is filled), changes, and reads again.
async fn kept_state_follows_every_change(store: &dyn Store, owner: UserId, alice: UserId) {
    let db_url = |seen: &Seen| seen.team.iter().find(|t| t.0 == "DB_URL").cloned();
    let first = seen(store, Some(alice), "later", vec![SecretId(101)]).await;
    assert_eq!(db_url(&first).map(|t| t.1), Some(2));
    assert_eq!(first.delivered, vec![vec![7, 7, 7]]);
    assert_eq!(first.environment, None);

    // A new value: the next resolve has the new version and the new ciphertext.
    let update = SecretUpdate {
        id: SecretId(101),
        expected_version: 2,
        value: Some((vec![8, 8], 11)),
        description: None,
        broker: None,
        if_revision: None,
        actor: owner,
        at: 10_000,
    };
    store
        .update_secret(update, event("secret.update"))
        .await
        .expect("updates");
    let now = seen(store, Some(alice), "later", vec![SecretId(101)]).await;
    assert_eq!(db_url(&now).map(|t| t.1), Some(3));
    assert_eq!(now.delivered, vec![vec![8, 8]]);

    // An identity attached: the secret is reserved from the next resolve on.
    let reader = NamedList {
        revision: 0,
        name: l("reader"),
        description: String::new(),
        secrets: Some(vec![n("DB_URL")]),
        updated_at: 10_001,
    };
    store
        .put_list(
            ListKind::Identity,
            TEAM,
            reader,
            None,
            &[],
            &one(event("identity.put")),
        )
        .await
        .expect("puts");
    let now = seen(store, Some(alice), "later", vec![]).await;
    assert_eq!(db_url(&now).map(|t| t.2), Some(vec!["reader".to_owned()]));
    store
        .delete_list(
            ListKind::Identity,
            TEAM,
            &l("reader"),
            &[n("DB_URL")],
            false,
            2_000,
            &one(event("identity.delete")),
        )
        .await
        .expect("deletes")
        .expect("existed");
    let now = seen(store, Some(alice), "later", vec![]).await;
    assert_eq!(db_url(&now).map(|t| t.2), Some(vec![]));

    // An environment created, changed and deleted.
    for secrets in [Some(vec![n("DB_URL")]), None] {
        let later = NamedList {
            revision: 0,
            name: l("later"),
            description: String::new(),
            secrets: secrets.clone(),
            updated_at: 10_002,
        };
        store
            .put_list(
                ListKind::Environment,
                TEAM,
                later,
                None,
                &[],
                &one(event("env.put")),
            )
            .await
            .expect("puts");
        let now = seen(store, Some(alice), "later", vec![]).await;
        let expected = secrets.map(|s| s.iter().map(ToString::to_string).collect());
        assert_eq!(now.environment, Some(expected));
    }
    store
        .delete_list(
            ListKind::Environment,
            TEAM,
            &l("later"),
            &[],
            false,
            2_000,
            &one(event("env.delete")),
        )
        .await
        .expect("deletes")
        .expect("existed");
    assert_eq!(
        seen(store, Some(alice), "later", vec![]).await.environment,
        None
    );

    // A personal secret created, then deleted.
    let before = seen(store, Some(alice), "later", vec![]).await;
    store
        .create_secret(
            secret(106, Scope::Personal, Some(alice), "TOKEN", alice),
            event("secret.create"),
        )
        .await
        .expect("creates");
    let now = seen(store, Some(alice), "later", vec![]).await;
    assert!(now.personal.contains(&"TOKEN".to_owned()), "{now:?}");
    assert!(!before.personal.contains(&"TOKEN".to_owned()));
    store
        .delete_secret(SecretId(106), event("secret.delete"))
        .await
        .expect("deletes");
    assert_eq!(seen(store, Some(alice), "later", vec![]).await, before);

    // Keys: a new member's key, a role change, a revocation, the member's removal.
    let carol_key = new_key(KeyKind::Personal, 30, None, None);
    let carol = store
        .add_member(
            TEAM,
            &l("carol"),
            Role::Builder,
            carol_key.clone(),
            owner,
            event("member.add"),
        )
        .await
        .expect("adds");
    let read = || async {
        store
            .key_for_auth(&carol_key.key_id)
            .await
            .expect("reads")
            .expect("found")
    };
    assert_eq!(
        read().await.member,
        Some(("carol".to_owned(), Role::Builder))
    );
    store
        .set_role(TEAM, carol, Role::Admin, event("member.role"))
        .await
        .expect("sets");
    assert_eq!(read().await.member, Some(("carol".to_owned(), Role::Admin)));
    store
        .touch_keys(&[(read().await.key.row, 20_000)])
        .await
        .expect("touches");
    assert_eq!(read().await.key.last_used_at, Some(20_000));
    assert!(
        store
            .revoke_key(TEAM, &carol_key.key_id, None, event("key.revoke"))
            .await
            .expect("revokes")
    );
    assert!(read().await.key.revoked_at.is_some());
    store
        .remove_member(TEAM, carol, 2_000, &one(event("member.remove")))
        .await
        .expect("removes")
        .expect("was a member");
    assert_eq!(
        read().await.member,
        None,
        "a removed member's key has no role"
    );
}

/// Shared failure counts, where a backend keeps them, count per bucket and window.
async fn auth_failures(store: &dyn Store) {
    let buckets = ["ip:127.0.0.1".to_owned(), "key:AbCd1234".to_owned()];
    let first = store
        .count_auth_failure(&buckets, 60_000)
        .await
        .expect("counts");
    let Some(first) = first else {
        return; // a single-process backend: the in-memory limiter sees every failure
    };
    assert_eq!(first, 1);
    let second = store
        .count_auth_failure(&buckets[..1], 60_000)
        .await
        .expect("counts");
    assert_eq!(second, Some(2));
    let next_window = store
        .count_auth_failure(&buckets[1..], 120_000)
        .await
        .expect("counts");
    assert_eq!(next_window, Some(1));
}

async fn bootstrap(store: &dyn Store) -> UserId {
    store.ping().await.expect("pings");
    let first = Bootstrap {
        team: TeamRow {
            id: TEAM,
            name: l("default"),
            data_key: vec![9; 73],
            key_version: 1,
        },
        owner: l("owner"),
        key: new_key(KeyKind::Personal, 1, None, None),
        at: 1_000,
    };
    let owner = store
        .bootstrap(first.clone())
        .await
        .expect("bootstraps")
        .expect("empty database");
    assert_eq!(
        store.bootstrap(first).await.expect("runs"),
        None,
        "only once"
    );
    let team = store.team(TEAM).await.expect("reads").expect("exists");
    assert_eq!(
        (team.name.as_str(), team.data_key.len(), team.key_version),
        ("default", 73, 1)
    );
    assert!(store.team(1).await.expect("reads").is_none());
    let members = store.members(TEAM).await.expect("lists");
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].name.as_str(), members[0].role),
        ("owner", Role::Owner)
    );
    owner
}

async fn keys_and_members(store: &dyn Store, owner: UserId) -> UserId {
    let first = new_key(KeyKind::Personal, 1, None, None);
    let auth = store
        .key_for_auth(&first.key_id)
        .await
        .expect("reads")
        .expect("found");
    assert!(auth.key.digest.matches(&first.digest));
    assert_eq!(auth.member, Some(("owner".to_owned(), Role::Owner)));
    assert_eq!(auth.key.user, Some(owner));

    let alice_key = new_key(KeyKind::Personal, 2, None, None);
    let alice = store
        .add_member(
            TEAM,
            &l("alice"),
            Role::Builder,
            alice_key.clone(),
            owner,
            event("member.add"),
        )
        .await
        .expect("adds");
    let again = store
        .add_member(
            TEAM,
            &l("alice"),
            Role::Admin,
            new_key(KeyKind::Personal, 3, None, None),
            owner,
            event("member.add"),
        )
        .await;
    assert!(
        matches!(
            again,
            Err(StoreError::Refused(super::Refused::MemberExists))
        ),
        "{again:?}"
    );
    assert_eq!(
        store
            .member(TEAM, &l("alice"))
            .await
            .expect("reads")
            .expect("found")
            .role,
        Role::Builder
    );

    let team_key = new_key(KeyKind::Team, 4, Some(Role::Admin), Some("deployer"));
    store
        .create_key(TEAM, None, owner, team_key.clone(), event("key.create"))
        .await
        .expect("creates");
    let duplicate = store
        .create_key(TEAM, None, owner, team_key.clone(), event("key.create"))
        .await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))));
    let auth = store
        .key_for_auth(&team_key.key_id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(auth.key.role_at_creation, Some(Role::Admin));
    assert_eq!(auth.key.identity, Some(l("deployer")));
    assert_eq!(auth.member, None, "team keys have no user");
    assert_eq!(auth.key.created_by_name, "owner");

    assert_eq!(store.keys(TEAM, None).await.expect("lists").len(), 3);
    let own = store.keys(TEAM, Some(alice)).await.expect("lists");
    assert_eq!(own.len(), 1, "alice sees her own key only");
    assert!(
        !store
            .revoke_key(TEAM, &team_key.key_id, Some(alice), event("key.revoke"))
            .await
            .expect("runs")
    );
    assert!(
        store
            .revoke_key(TEAM, &team_key.key_id, None, event("key.revoke"))
            .await
            .expect("revokes")
    );
    assert!(
        !store
            .revoke_key(TEAM, &team_key.key_id, None, event("key.revoke"))
            .await
            .expect("once")
    );
    let revoked = store
        .key_for_auth(&team_key.key_id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(revoked.key.revoked_at, Some(2_000));

    store
        .touch_keys(&[(auth.key.row, 5_000)])
        .await
        .expect("touches");
    store
        .touch_keys(&[(auth.key.row, 4_000)])
        .await
        .expect("touches");
    let touched = store
        .key_for_auth(&team_key.key_id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(touched.key.last_used_at, Some(5_000), "never goes back");

    // Roles, and the last owner.
    assert!(
        store
            .set_role(TEAM, alice, Role::Admin, event("member.role"))
            .await
            .expect("sets")
    );
    let auth = store
        .key_for_auth(&alice_key.key_id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        auth.member,
        Some(("alice".to_owned(), Role::Admin)),
        "current role"
    );
    let demote = store
        .set_role(TEAM, owner, Role::Admin, event("member.role"))
        .await;
    assert!(matches!(demote, Err(StoreError::Conflict(_))), "{demote:?}");
    let remove = store
        .remove_member(TEAM, owner, 2_000, &one(event("member.remove")))
        .await;
    assert!(matches!(remove, Err(StoreError::Conflict(_))), "{remove:?}");
    assert_eq!(
        store
            .member(TEAM, &l("owner"))
            .await
            .expect("reads")
            .expect("still there")
            .role,
        Role::Owner
    );

    // A removed member's key no longer carries a role.
    let bob_key = new_key(KeyKind::Personal, 5, None, None);
    let bob = store
        .add_member(
            TEAM,
            &l("bob"),
            Role::Builder,
            bob_key.clone(),
            owner,
            event("member.add"),
        )
        .await
        .expect("adds");
    let audit = one(event("member.remove"));
    let remove = || store.remove_member(TEAM, bob, 2_000, &audit);
    assert!(remove().await.expect("removes").is_some());
    assert!(remove().await.expect("once").is_none());
    let auth = store
        .key_for_auth(&bob_key.key_id)
        .await
        .expect("reads")
        .expect("key row stays");
    assert_eq!(auth.member, None);
    alice
}

async fn secrets(store: &dyn Store, owner: UserId, alice: UserId) {
    store
        .create_secret(
            secret(101, Scope::Team, None, "DB_URL", owner),
            event("secret.create"),
        )
        .await
        .expect("creates");
    let dup = store
        .create_secret(
            secret(102, Scope::Team, None, "db_url", owner),
            event("secret.create"),
        )
        .await;
    let conflict = |result: Result<(), StoreError>| match result {
        Err(StoreError::Refused(super::Refused::NameConflict(existing))) => (
            existing.scope,
            existing.owner_name,
            existing.name.to_string(),
        ),
        other => panic!("a name conflict, not {other:?}"),
    };
    assert_eq!(
        conflict(dup),
        (Scope::Team, None, "DB_URL".into()),
        "unique ignoring case within a scope, naming the existing secret"
    );
    store
        .create_secret(
            secret(103, Scope::Personal, Some(alice), "DB_URL", alice),
            event("secret.create"),
        )
        .await
        .expect("the same name exactly, other scope: it shadows");
    store
        .create_secret(
            secret(104, Scope::Personal, Some(owner), "OWNER_ONLY", owner),
            event("secret.create"),
        )
        .await
        .expect("creates");
    // DESIGN §5: a personal name equals a team name exactly or differs from every team name
    // ignoring case; a team name differs ignoring case from every personal name spelled
    // otherwise. Refused, naming what is there.
    let refused = [
        (
            Scope::Personal,
            Some(owner),
            "db_url",
            (Scope::Team, None, "DB_URL"),
        ),
        (
            Scope::Personal,
            Some(owner),
            "Owner_Only",
            (Scope::Personal, Some("owner"), "OWNER_ONLY"),
        ),
        (
            Scope::Team,
            None,
            "owner_only",
            (Scope::Personal, Some("owner"), "OWNER_ONLY"),
        ),
    ];
    for (id, (scope, who, name, (e_scope, e_owner, e_name))) in (150..).zip(refused) {
        let result = store
            .create_secret(secret(id, scope, who, name, owner), event("secret.create"))
            .await;
        assert_eq!(
            conflict(result),
            (e_scope, e_owner.map(str::to_owned), e_name.to_owned()),
            "{scope} {name}"
        );
    }
    // Another member's personal names may differ in case from each other.
    store
        .create_secret(
            secret(105, Scope::Personal, Some(alice), "Owner_Only_2", alice),
            event("secret.create"),
        )
        .await
        .expect("creates");
    store
        .create_secret(
            secret(106, Scope::Personal, Some(owner), "OWNER_ONLY_2", owner),
            event("secret.create"),
        )
        .await
        .expect("personal names of two members never conflict");
    for id in [105, 106] {
        assert!(
            store
                .delete_secret(SecretId(id), event("secret.delete"))
                .await
                .expect("deletes")
        );
    }

    let row = store
        .secret(TEAM, Scope::Team, None, &n("db_url"))
        .await
        .expect("reads")
        .expect("found by any case");
    assert_eq!(
        (row.id, row.version, row.name.as_str()),
        (SecretId(101), 1, "DB_URL")
    );
    assert_eq!((row.created_by.as_str(), row.value_len), ("owner", 10));
    let mine = store
        .secret(TEAM, Scope::Personal, Some(alice), &n("DB_URL"))
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(mine.owner_name.as_deref(), Some("alice"));

    let seen: Vec<i64> = store
        .secrets(TEAM, alice, false)
        .await
        .expect("lists")
        .iter()
        .map(|s| s.id.0)
        .collect();
    assert_eq!(seen, vec![101, 103], "team and own personal");
    let all = store.secrets(TEAM, alice, true).await.expect("lists");
    assert_eq!(all.len(), 3, "--all adds every member's personal secrets");

    let update = SecretUpdate {
        id: SecretId(101),
        expected_version: 1,
        value: Some((vec![7, 7, 7], 12)),
        description: None,
        broker: None,
        if_revision: None,
        actor: alice,
        at: 4_000,
    };
    store
        .update_secret(update.clone(), event("secret.update"))
        .await
        .expect("updates");
    let stale = store.update_secret(update, event("secret.update")).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict(_))),
        "optimistic version check"
    );
    let row = store
        .secret(TEAM, Scope::Team, None, &n("DB_URL"))
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        (row.version, row.value_len, row.updated_by.as_str()),
        (2, 12, "alice")
    );
    let described = SecretUpdate {
        id: SecretId(101),
        expected_version: 2,
        value: None,
        description: Some("new".into()),
        broker: None,
        if_revision: None,
        actor: owner,
        at: 5_000,
    };
    store
        .update_secret(described, event("secret.update"))
        .await
        .expect("updates");
    let row = store
        .secret(TEAM, Scope::Team, None, &n("DB_URL"))
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        (row.version, row.description.as_str()),
        (2, "new"),
        "description alone keeps the version"
    );

    assert!(
        store
            .delete_secret(SecretId(104), event("secret.delete"))
            .await
            .expect("deletes")
    );
    assert!(
        !store
            .delete_secret(SecretId(104), event("secret.delete"))
            .await
            .expect("once")
    );
}

async fn lists(store: &dyn Store) {
    for kind in [ListKind::Environment, ListKind::Identity] {
        // Revisions are the store's: ignored when writing, 1 when created, one more per write.
        let list = NamedList {
            revision: 1,
            name: l("ci"),
            description: "d".into(),
            secrets: Some(vec![n("DB_URL")]),
            updated_at: 1,
        };
        store
            .put_list(kind, TEAM, list.clone(), None, &[], &one(event("list.put")))
            .await
            .expect("puts");
        assert_eq!(
            store.list(kind, TEAM, &l("ci")).await.expect("reads"),
            Some(list.clone())
        );
        let replaced = NamedList {
            secrets: Some(vec![]),
            updated_at: 2,
            revision: 2,
            ..list.clone()
        };
        let put = |release: &'static [&'static str]| {
            let release: Vec<SecretName> = release.iter().map(|r| n(r)).collect();
            let replaced = replaced.clone();
            async move {
                store
                    .put_list(
                        kind,
                        TEAM,
                        replaced,
                        None,
                        &release,
                        &one(event("list.put")),
                    )
                    .await
            }
        };
        let change = if kind == ListKind::Identity {
            // Emptying the identity leaves DB_URL reserved by none: refused unless released
            // (named in any case, as reservation compares).
            let refused = put(&[]).await;
            assert!(
                matches!(
                    &refused,
                    Err(StoreError::Refused(super::Refused::WouldRelease(names)))
                        if *names == [n("DB_URL")]
                ),
                "{refused:?}"
            );
            let partly = put(&["OTHER"]).await;
            assert!(matches!(partly, Err(StoreError::Refused(_))), "{partly:?}");
            put(&["db_url"]).await.expect("released")
        } else {
            put(&[]).await.expect("an environment reserves nothing")
        };
        assert_eq!(change.before, Some(list.clone()));
        let released = if kind == ListKind::Identity {
            vec![n("DB_URL")]
        } else {
            vec![]
        };
        assert_eq!(change.released, released);
        assert_eq!(
            store.lists(kind, TEAM).await.expect("lists"),
            vec![replaced.clone()]
        );
        // If-Match: a write at a revision read before the last one is refused, and writes
        // nothing; at the current one it goes through.
        let at = |revision| {
            let list = NamedList {
                description: "again".into(),
                ..replaced.clone()
            };
            async move {
                store
                    .put_list(
                        kind,
                        TEAM,
                        list,
                        Some(revision),
                        &[],
                        &one(event("list.put")),
                    )
                    .await
            }
        };
        assert!(matches!(at(1).await, Err(StoreError::Stale)));
        assert_eq!(
            store
                .list(kind, TEAM, &l("ci"))
                .await
                .expect("reads")
                .map(|l| l.revision),
            Some(2)
        );
        let change = at(2).await.expect("current");
        assert_eq!(change.before.map(|b| b.revision), Some(2));
        assert_eq!(
            store
                .list(kind, TEAM, &l("ci"))
                .await
                .expect("reads")
                .map(|l| l.revision),
            Some(3)
        );
        let missing = NamedList {
            name: l("nowhere"),
            ..replaced.clone()
        };
        let stale = store
            .put_list(kind, TEAM, missing, Some(1), &[], &one(event("list.put")))
            .await;
        assert!(
            matches!(stale, Err(StoreError::Stale)),
            "If-Match on nothing"
        );
        let release = [n("DB_URL"), n("API_KEY"), n("OTHER")];
        let (name, audit) = (l("ci"), one(event("list.delete")));
        let delete = || store.delete_list(kind, TEAM, &name, &release, false, 2_000, &audit);
        assert!(delete().await.expect("deletes").is_some());
        assert!(delete().await.expect("once").is_none());
        assert_eq!(store.list(kind, TEAM, &l("ci")).await.expect("reads"), None);
    }
    let open = NamedList {
        revision: 1,
        name: l("open"),
        description: String::new(),
        secrets: None,
        updated_at: 3,
    };
    store
        .put_list(
            ListKind::Environment,
            TEAM,
            open.clone(),
            None,
            &[],
            &one(event("env.put")),
        )
        .await
        .expect("puts");
    assert_eq!(
        store
            .list(ListKind::Environment, TEAM, &l("open"))
            .await
            .expect("reads"),
        Some(open),
        "no list ≠ empty list"
    );
}

async fn runs(store: &dyn Store, owner: UserId, alice: UserId) {
    store
        .create_secret(
            secret(105, Scope::Team, None, "DEPLOY_KEY", owner),
            event("secret.create"),
        )
        .await
        .expect("creates");
    let deployer = NamedList {
        revision: 0,
        name: l("deployer"),
        description: String::new(),
        secrets: Some(vec![n("deploy_key")]),
        updated_at: 1,
    };
    store
        .put_list(
            ListKind::Identity,
            TEAM,
            deployer,
            None,
            &[],
            &one(event("identity.put")),
        )
        .await
        .expect("puts");

    let open = l("open");
    let (started, decision) = resolve_durably(
        store,
        TEAM,
        Some(alice),
        Some(&open),
        "run-1",
        Box::new(move |snapshot| {
            let team: Vec<(&str, Vec<&str>)> = snapshot
                .team
                .iter()
                .map(|s| {
                    (
                        s.name.as_str(),
                        s.reserved_for.iter().map(Label::as_str).collect(),
                    )
                })
                .collect();
            assert_eq!(
                team,
                vec![("DB_URL", vec![]), ("DEPLOY_KEY", vec!["deployer"])]
            );
            let personal: Vec<&str> = snapshot.personal.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(
                personal,
                vec!["DB_URL"],
                "only the caller's personal secrets"
            );
            assert_eq!(
                snapshot.environment.as_ref().map(|e| e.name.as_str()),
                Some("open")
            );
            decided(&[SecretId(103)])
        }),
    )
    .await
    .expect("resolves");
    assert_eq!(started.status, "started");
    let sealed = &decision.sealed;
    assert_eq!(sealed.len(), 1);
    assert_eq!(
        (sealed[0].id, sealed[0].scope),
        (SecretId(103), Scope::Personal)
    );
    assert_eq!(*sealed[0].ciphertext, [1, 2, 3, 103]);

    let missing = l("nope");
    resolve_durably(
        store,
        TEAM,
        None,
        Some(&missing),
        "run-2",
        Box::new(|snapshot| {
            assert!(snapshot.environment.is_none());
            assert!(snapshot.personal.is_empty());
            decided(&[])
        }),
    )
    .await
    .expect("resolves");
    let duplicate =
        resolve_durably(store, TEAM, None, None, "run-2", Box::new(|_| decided(&[]))).await;
    assert!(duplicate.is_err(), "a failed write returns no values");

    assert_eq!(
        store.runs(TEAM, &rq(None, 10)).await.expect("lists").len(),
        2
    );
    let own = store.runs(TEAM, &rq(Some(alice), 10)).await.expect("lists");
    assert_eq!(
        own.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["run-1"]
    );
    let outcome = serde_json::json!({ "exit_code": 0 });
    assert!(
        store
            .finish_run(TEAM, "run-1", outcome.clone(), 9_000, event("run.finish"))
            .await
            .expect("finishes")
    );
    assert!(
        !store
            .finish_run(TEAM, "run-1", outcome.clone(), 9_001, event("run.finish"))
            .await
            .expect("once")
    );
    assert!(
        !store
            .finish_run(TEAM, "missing", outcome.clone(), 9_001, event("run.finish"))
            .await
            .expect("runs")
    );
    let run = store
        .run(TEAM, "run-1")
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        (run.status.as_str(), run.ended_at, run.outcome),
        ("finished", Some(9_000), Some(outcome))
    );
    assert!(
        store.run(TEAM + 1, "run-1").await.expect("reads").is_none(),
        "other teams see nothing"
    );
}

/// Runs with equal inputs over one snapshot share one decision (not decided again), each run
/// still reads back whole, and the next configuration change makes the next run decide anew.
async fn decisions_are_shared_until_a_change(store: &dyn Store) {
    let resolve = |id: &'static str, decide: Decide| async move {
        let run = store
            .resolve_run(TEAM, ask(id, None, b"the same inputs", decide))
            .await
            .expect("resolves");
        run.durable.wait().await.expect("durable");
        run.decision
    };
    let first = resolve("shared-1", Box::new(|_| decided(&[SecretId(105)]))).await;
    let second = resolve(
        "shared-2",
        Box::new(|_| panic!("the same inputs were decided again")),
    )
    .await;
    assert!(Arc::ptr_eq(&first, &second), "one decision for both runs");
    assert_eq!(second.sealed.len(), 1);
    for id in ["shared-1", "shared-2"] {
        let run = store.run(TEAM, id).await.expect("reads").expect("found");
        assert_eq!(
            run.record,
            serde_json::json!({"who": {"key_id": "AbCd1234"}, "trigger": "cli"}),
            "{id}: its own part and the shared part, as one record"
        );
    }
    let listed = store.runs(TEAM, &rq(None, 2)).await.expect("lists");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|r| r.record["trigger"] == "cli"));

    let env = NamedList {
        revision: 0,
        name: l("shared"),
        description: String::new(),
        secrets: None,
        updated_at: 20_000,
    };
    store
        .put_list(
            ListKind::Environment,
            TEAM,
            env,
            None,
            &[],
            &one(event("environment.put")),
        )
        .await
        .expect("puts");
    let after = resolve("shared-3", Box::new(|_| decided(&[]))).await;
    assert!(
        !Arc::ptr_eq(&first, &after),
        "a change ends the kept decisions"
    );
    assert!(after.sealed.is_empty());
}

/// Two replicas of one database deciding the same inputs at once: `slow` takes its snapshot,
/// then `fast` stores the shared record and its run, then `slow` goes on and must still record
/// its run (seeing the record stored rather than failing), and both runs read back whole.
pub(crate) async fn replicas_share_one_record(slow: Arc<dyn Store>, fast: Arc<dyn Store>) {
    use std::sync::mpsc;
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(30);
    bootstrap(&*slow).await;
    let (snapshot_taken, taken) = mpsc::channel();
    let (go_on, go) = mpsc::channel::<()>();
    let held = ask(
        "raced-slow",
        None,
        b"raced",
        Box::new(move |_| {
            snapshot_taken.send(()).expect("the test waits");
            tokio::task::block_in_place(|| go.recv_timeout(WAIT)).expect("the test lets it go on");
            decided(&[])
        }),
    );
    let slow_run = tokio::spawn(async move {
        let run = slow.resolve_run(TEAM, held).await?;
        run.durable.wait().await
    });
    tokio::task::spawn_blocking(move || taken.recv_timeout(WAIT))
        .await
        .expect("joins")
        .expect("the slow replica took its snapshot");
    let run = fast
        .resolve_run(
            TEAM,
            ask("raced-fast", None, b"raced", Box::new(|_| decided(&[]))),
        )
        .await
        .expect("the fast replica resolves");
    run.durable.wait().await.expect("durable");
    go_on.send(()).expect("the slow replica waits");
    slow_run
        .await
        .expect("joins")
        .expect("the slow replica records its run too");
    for id in ["raced-slow", "raced-fast"] {
        let run = fast.run(TEAM, id).await.expect("reads").expect("found");
        assert_eq!(run.record["trigger"], "cli", "{id}: whole record");
    }
}

/// A decision delivering `deliver` (each named `S<id>`), with a small shared record.
fn decided(deliver: &[SecretId]) -> Decided {
    let delivered = deliver
        .iter()
        .map(|&id| Delivery {
            id,
            name: n(&format!("S{}", id.0)),
            scope: Scope::Team,
            version: 1,
        })
        .collect();
    Decided {
        result: Ok(Resolution {
            allowlist: crate::core::resolve::AllowlistSource::None,
            trigger: Trigger::Cli,
            user_context: None,
            identity: None,
            delivered,
            missing: Vec::new(),
            shadowed: Vec::new(),
        }),
        record: r#"{"trigger":"cli"}"#.into(),
    }
}

/// Run `id` by `user`'s key (no environment) with `inputs`, decided by `decide`.
fn ask(id: &str, user: Option<UserId>, inputs: &[u8], decide: Decide) -> RunAsk {
    let id = id.to_owned();
    RunAsk {
        user,
        environment: None,
        inputs: inputs.to_vec(),
        decide,
        start: Box::new(move |_| plan(&id, user)),
    }
}

fn plan(id: &str, user: Option<UserId>) -> RunPlan {
    RunPlan {
        identity: None,
        environment: None,
        id: id.to_owned(),
        key_id: "AbCd1234".to_owned(),
        user,
        record: r#"{"who":{"key_id":"AbCd1234"}}"#.into(),
        status: "started",
        started_at: 8_000,
        audit: event("run.start"),
    }
}

async fn audit(store: &dyn Store) {
    let events = store.audit(TEAM, &aq(1_000)).await.expect("reads");
    assert_eq!(
        events.first().map(|e| e.event.action.as_str()),
        Some("run.finish"),
        "newest first"
    );
    assert_eq!(
        events.last().map(|e| e.event.action.as_str()),
        Some("team.bootstrap")
    );
    assert!(events.windows(2).all(|w| w[0].id > w[1].id));
    // Refused changes leave no event: the last-owner demotion was rolled back with its event.
    let roles = events
        .iter()
        .filter(|e| e.event.action == "member.role")
        .count();
    assert_eq!(roles, 1);
    assert_eq!(store.audit(TEAM, &aq(3)).await.expect("reads").len(), 3);
}
