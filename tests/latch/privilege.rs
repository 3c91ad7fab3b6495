//! Least privilege (DESIGN §3, §2 rules 3–4 and 8, §5): what each key can do and receive, over
//! real HTTP and the real CLI, against an in-process platform.
//!
//! The property test builds random teams through the API (members and roles, keys of every
//! kind, identities, secrets in both scopes, then demotions and removals) and holds every key
//! to a model written from DESIGN's tables here, apart from the server's code: the operations
//! it may perform, and the secrets its runs receive.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};

use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Platform, start};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Owner,
    Admin,
    Builder,
}

impl Role {
    const fn wire(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Builder => "builder",
        }
    }
    const fn manages(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
    /// The lower of two roles (the derived order lists the highest first).
    fn lower(self, other: Self) -> Self {
        self.max(other)
    }
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Owner), Just(Role::Admin), Just(Role::Builder)]
}

/// Team secret names; identities reserve some of them. Personal names overlap them (and
/// shadow them when delivered) or not.
const TEAM_NAMES: [&str; 4] = ["A_KEY", "B_KEY", "C_KEY", "D_KEY"];
const PERSONAL_NAMES: [&str; 3] = ["C_KEY", "E_KEY", "F_KEY"];
const IDENTITIES: [&str; 2] = ["id-a", "id-b"];

/// One member of a random team: role, personal secret names, whether they also make a
/// run-only personal key, and the team keys they make (owners and admins only): (capability
/// manage, bound identity).
type Member = (Role, Vec<&'static str>, bool, Vec<(bool, Option<usize>)>);

/// A random team, as the test builds it: `members[i]` is user `m{i}` (the bootstrap owner is
/// not among them and is never changed).
#[derive(Debug, Clone)]
struct World {
    members: Vec<Member>,
    team: Vec<&'static str>,
    identities: [Vec<&'static str>; 2],
    /// After the keys exist: a member's new role, or `None` for removal, in order.
    changes: Vec<(usize, Option<Role>)>,
}

fn subset(names: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(names, 0..=names.len())
}

fn world() -> impl Strategy<Value = World> {
    let member = (
        role(),
        subset(&PERSONAL_NAMES),
        any::<bool>(),
        prop::collection::vec((any::<bool>(), prop::option::of(0..2usize)), 0..3),
    );
    (
        prop::collection::vec(member, 1..4),
        subset(&TEAM_NAMES),
        [subset(&TEAM_NAMES), subset(&TEAM_NAMES)],
        prop::collection::vec((0..3usize, prop::option::of(role())), 0..3),
    )
        .prop_map(|(members, team, identities, changes)| {
            let n = members.len();
            World {
                members,
                team,
                identities,
                changes: changes.into_iter().map(|(m, to)| (m % n, to)).collect(),
            }
        })
}

/// One key as the model knows it.
#[derive(Debug, Clone)]
struct Key {
    raw: String,
    label: String,
    /// `Some(member)` for a personal key, `None` for a team key.
    user: Option<usize>,
    /// The member who made it (`None`: the bootstrap owner).
    creator: Option<usize>,
    manage: bool,
    role_at_creation: Option<Role>,
    identity: Option<usize>,
}

/// The model's view of a key's standing now (DESIGN §3): `None` when it cannot authenticate.
fn standing(key: &Key, roles: &[Option<Role>]) -> Option<(Role, bool)> {
    let now = |member: Option<usize>| member.map_or(Some(Role::Owner), |m| roles[m]);
    match key.user {
        Some(m) => roles[m].map(|role| (role, key.manage)),
        None => match now(key.creator) {
            Some(current) => Some((
                key.role_at_creation.expect("team key").lower(current),
                key.manage && key.identity.is_none(),
            )),
            None => Some((Role::Builder, false)),
        },
    }
}

/// What a probe expects: allowed, or refused with this status and code.
type Expect = Result<(), (StatusCode, &'static str)>;

/// DESIGN §3's table as the model states it, for each probe: may a key acting with `role` and
/// capability `manage` (a personal key if `personal`) do it?
fn expected(probe: &str, role: Role, manage: bool, personal: bool) -> Expect {
    const RUN_ONLY: Expect = Err((StatusCode::FORBIDDEN, "key_cannot_manage"));
    const ROLE: Expect = Err((StatusCode::FORBIDDEN, "forbidden"));
    const NO_USER: Expect = Err((StatusCode::FORBIDDEN, "needs_user"));
    let run_allowed = matches!(probe, "whoami" | "run");
    if !manage && !run_allowed {
        return RUN_ONLY;
    }
    let by_role = |ok: bool| if ok { Ok(()) } else { ROLE };
    match probe {
        "whoami" | "run" | "list secrets" | "list members" | "read environments" | "seal key" => {
            Ok(())
        }
        "own personal key" | "own personal secret" => {
            if personal {
                Ok(())
            } else {
                NO_USER
            }
        }
        "team key"
        | "team secret"
        | "all personal names"
        | "manage environments"
        | "audit"
        | "team settings"
        | "add builder" => by_role(role.manages()),
        "add owner" => by_role(role == Role::Owner),
        // Every run, or one's own: a team key has no "own".
        "list runs" => {
            if role.manages() || personal {
                Ok(())
            } else {
                NO_USER
            }
        }
        other => panic!("no such probe {other}"),
    }
}

/// The request for a probe by key number `k` (names unique per key, so probes never collide).
fn probe_request(probe: &str, k: usize) -> (Method, String, Option<Value>) {
    match probe {
        "whoami" => (Method::GET, "/v1/whoami".into(), None),
        "run" => (
            Method::POST,
            "/v1/runs".into(),
            Some(json!({"secrets": [], "trigger": "schedule"})),
        ),
        "list secrets" => (Method::GET, "/v1/secrets".into(), None),
        "seal key" => (Method::GET, "/v1/seal-key".into(), None),
        "list members" => (Method::GET, "/v1/members".into(), None),
        "read environments" => (Method::GET, "/v1/environments".into(), None),
        "own personal key" => (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": format!("p{k}"), "kind": "personal"})),
        ),
        "own personal secret" => (
            Method::POST,
            "/v1/secrets".into(),
            Some(
                json!({"scope": "personal", "name": format!("PROBE_P{k}"), "value": "probe-value-1"}),
            ),
        ),
        "team key" => (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": format!("t{k}"), "kind": "team"})),
        ),
        "team secret" => (
            Method::POST,
            "/v1/secrets".into(),
            Some(json!({"scope": "team", "name": format!("PROBE_T{k}"), "value": "probe-value-2"})),
        ),
        "all personal names" => (Method::GET, "/v1/secrets?all=true".into(), None),
        "manage environments" => (
            Method::PUT,
            format!("/v1/environments/probe-{k}"),
            Some(json!({"secrets": []})),
        ),
        "audit" => (Method::GET, "/v1/audit".into(), None),
        "add builder" => (
            Method::POST,
            "/v1/members".into(),
            Some(json!({"name": format!("probe-b{k}"), "role": "builder"})),
        ),
        "add owner" => (
            Method::POST,
            "/v1/members".into(),
            Some(json!({"name": format!("probe-o{k}"), "role": "owner"})),
        ),
        "list runs" => (Method::GET, "/v1/runs".into(), None),
        // The default setting: probes never change what other probes see.
        "team settings" => (
            Method::PATCH,
            "/v1/team".into(),
            Some(json!({"byok": "allowed"})),
        ),
        other => panic!("no such probe {other}"),
    }
}

const PROBES: [&str; 18] = [
    "whoami",
    "seal key",
    "run",
    "list secrets",
    "list members",
    "read environments",
    "own personal key",
    "own personal secret",
    "team key",
    "team secret",
    "all personal names",
    "manage environments",
    "audit",
    "add builder",
    "add owner",
    "list runs",
    "team settings",
    "whoami",
];

/// The pool of a run by `key` with its default trigger and no allowlist (DESIGN §2 rule 3):
/// names with their scopes.
fn pool(world: &World, key: &Key) -> BTreeMap<String, &'static str> {
    let reserved = |name: &str| world.identities.iter().any(|list| list.contains(&name));
    let mine = |name: &str| {
        key.identity
            .is_some_and(|i| world.identities[i].contains(&name))
    };
    let mut pool: BTreeMap<String, &'static str> = world
        .team
        .iter()
        .filter(|n| !reserved(n) || mine(n))
        .map(|n| ((*n).to_owned(), "team"))
        .collect();
    if let Some(m) = key.user {
        // A personal key's default trigger is `cli`: user context.
        for name in &world.members[m].1 {
            pool.insert((*name).to_owned(), "personal");
        }
    }
    pool
}

/// Builds `world` on `p` through the API; returns every key made.
async fn build(p: &Platform, world: &World) -> Vec<Key> {
    let owner = p.owner.clone();
    for name in &world.team {
        let body = json!({"scope": "team", "name": name, "value": format!("team-value-of-{name}")});
        p.ok(&owner, Method::POST, "/v1/secrets", Some(body)).await;
    }
    for (i, list) in world.identities.iter().enumerate() {
        let body = json!({"secrets": list});
        let path = format!("/v1/identities/{}", IDENTITIES[i]);
        p.ok(&owner, Method::PUT, &path, Some(body)).await;
    }
    let mut keys = vec![Key {
        raw: owner.clone(),
        label: "bootstrap owner".into(),
        user: None,
        creator: None,
        manage: true,
        role_at_creation: None,
        identity: None,
    }];
    for (m, (role, personal, run_only, team_keys)) in world.members.iter().enumerate() {
        let body = json!({"name": format!("m{m}"), "role": role.wire()});
        let added = p.ok(&owner, Method::POST, "/v1/members", Some(body)).await;
        let first = added["key"]["key"].as_str().expect("key").to_owned();
        for name in personal {
            let body = json!({"scope": "personal", "name": name, "value": format!("m{m}-value-of-{name}")});
            p.ok(&first, Method::POST, "/v1/secrets", Some(body)).await;
        }
        let personal_key = |raw: String, label: String, manage: bool| Key {
            raw,
            label,
            user: Some(m),
            creator: Some(m),
            manage,
            role_at_creation: None,
            identity: None,
        };
        keys.push(personal_key(first.clone(), format!("m{m} first"), true));
        if *run_only {
            let body = json!({"name": "agent", "kind": "personal", "capability": "run"});
            let made = p.ok(&first, Method::POST, "/v1/api-keys", Some(body)).await;
            let raw = made["key"].as_str().expect("key").to_owned();
            keys.push(personal_key(raw, format!("m{m} run-only"), false));
        }
        if !role.manages() {
            continue;
        }
        for (j, (manage, identity)) in team_keys.iter().enumerate() {
            // A bound key is always run: ask for manage only when unbound.
            let manage = *manage && identity.is_none();
            let mut body = json!({"name": format!("m{m} team {j}"), "kind": "team"});
            if manage {
                body["capability"] = json!("manage");
            }
            if let Some(i) = identity {
                body["identity"] = json!(IDENTITIES[*i]);
            }
            let made = p.ok(&first, Method::POST, "/v1/api-keys", Some(body)).await;
            keys.push(Key {
                raw: made["key"].as_str().expect("key").to_owned(),
                label: format!("m{m} team {j} (manage {manage}, identity {identity:?})"),
                user: None,
                creator: Some(m),
                manage,
                role_at_creation: Some(*role),
                identity: *identity,
            });
        }
    }
    keys
}

/// Applies the demotions and removals; returns each member's role now (`None`: removed).
async fn change(p: &Platform, world: &World) -> Vec<Option<Role>> {
    let mut roles: Vec<Option<Role>> = world.members.iter().map(|m| Some(m.0)).collect();
    for (m, to) in &world.changes {
        if roles[*m].is_none() {
            continue;
        }
        let path = format!("/v1/members/m{m}");
        match to {
            Some(role) => {
                let body = json!({"role": role.wire()});
                p.ok(&p.owner, Method::PATCH, &path, Some(body)).await;
            }
            None => {
                p.ok(&p.owner, Method::DELETE, &path, None).await;
            }
        }
        roles[*m] = *to;
    }
    roles
}

async fn check_world(world: World) -> Result<(), TestCaseError> {
    let p = start().await;
    let keys = build(&p, &world).await;
    let roles = change(&p, &world).await;
    // The bootstrap owner's key is personal and never changes: model it as a manage key with
    // the owner role (no member index).
    for (k, key) in keys.iter().enumerate() {
        let now = if k == 0 {
            Some((Role::Owner, true))
        } else {
            standing(key, &roles)
        };
        let Some((role, manage)) = now else {
            let (status, v) = p.call(&key.raw, Method::GET, "/v1/whoami", None).await;
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {}", key.label, v);
            continue;
        };
        // The secrets its runs receive: the pool, exactly (checked before any probe writes).
        if k > 0 {
            let (status, v) = p
                .call(&key.raw, Method::POST, "/v1/runs", Some(json!({})))
                .await;
            prop_assert_eq!(status, StatusCode::CREATED, "{}: {}", key.label, v);
            let got: BTreeMap<String, String> = v["secrets"]
                .as_array()
                .expect("secrets")
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().expect("name").to_owned(),
                        s["scope"].as_str().expect("scope").to_owned(),
                    )
                })
                .collect();
            let want: BTreeMap<String, String> = pool(&world, key)
                .into_iter()
                .map(|(n, s)| (n, s.to_owned()))
                .collect();
            prop_assert_eq!(&got, &want, "{}: the pool", key.label);
            prop_assert_eq!(&v["allowlist"], "none");
        }
        let whoami = p.ok(&key.raw, Method::GET, "/v1/whoami", None).await;
        prop_assert_eq!(&whoami["role"], role.wire(), "{}", key.label);
        prop_assert_eq!(
            &whoami["capability"],
            if manage { "manage" } else { "run" },
            "{}",
            key.label
        );
    }
    // Then what each can do, probe by probe.
    for (k, key) in keys.iter().enumerate() {
        let now = if k == 0 {
            Some((Role::Owner, true))
        } else {
            standing(key, &roles)
        };
        let Some((role, manage)) = now else { continue };
        let personal = k == 0 || key.user.is_some();
        for probe in PROBES {
            let (method, path, body) = probe_request(probe, k);
            let (status, v) = p.call(&key.raw, method, &path, body).await;
            match expected(probe, role, manage, personal) {
                Ok(()) => prop_assert!(
                    status.is_success(),
                    "{}: {} refused: {} {}",
                    key.label,
                    probe,
                    status,
                    v
                ),
                Err((want, code)) => {
                    prop_assert_eq!(status, want, "{}: {} allowed: {}", key.label, probe, v);
                    prop_assert_eq!(&v["code"], code, "{}: {}", key.label, probe);
                }
            }
        }
    }
    p.stop().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("LATCH_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(16),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]
    /// For random teams, every key can do exactly what DESIGN §3 allows it now, and its runs
    /// receive exactly the §2 pool.
    #[test]
    fn every_key_can_do_and_receive_exactly_what_the_tables_allow(world in world()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(check_world(world))?;
    }
}

// The escalation chain that worked before (issue 15), step by step -------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the real `latch` with `key`; stdin is empty (no terminal).
pub(crate) async fn cli(p: &Platform, key: &str, args: &[&str]) -> Output {
    let (url, key) = (p.url.clone(), key.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(&args)
            .env("LATCH_URL", url)
            .env("LATCH_API_KEY", key)
            .env_remove("LATCH_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("latch runs")
    })
    .await
    .expect("joins")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_key_can_neither_mint_keys_nor_read_another_identitys_secret_nor_add_an_owner() {
    let p = start().await;
    let owner = p.owner.clone();
    for (name, value) in [
        ("DEPLOY_KEY", "deploy-secret-value-1"),
        ("BILLING_KEY", "billing-secret-value-2"),
    ] {
        let body = json!({"scope": "team", "name": name, "value": value});
        p.ok(&owner, Method::POST, "/v1/secrets", Some(body)).await;
    }
    for (identity, secret) in [("deployer", "DEPLOY_KEY"), ("billing", "BILLING_KEY")] {
        let body = json!({"secrets": [secret]});
        p.ok(
            &owner,
            Method::PUT,
            &format!("/v1/identities/{identity}"),
            Some(body),
        )
        .await;
    }
    let made = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "deploy bot", "kind": "team", "identity": "deployer"})),
        )
        .await;
    assert_eq!(made["info"]["capability"], "run", "a bound key is run");
    let agent = made["key"].as_str().expect("key").to_owned();

    // Step 1: a key for the other identity. Refused.
    let (status, v) = p
        .call(
            &agent,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "pivot", "kind": "team", "identity": "billing"})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_cannot_manage")),
        "{v}"
    );
    // Step 2: the other identity's reserved secret. Not delivered, and not revealed.
    let run = p
        .ok(
            &agent,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["BILLING_KEY", "DEPLOY_KEY"]})),
        )
        .await;
    let names: Vec<&str> = run["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["DEPLOY_KEY"]);
    assert_eq!(
        run["missing"],
        json!([{"name": "BILLING_KEY", "reason": "reserved_for_identity"}])
    );
    assert!(!run.to_string().contains("billing-secret-value-2"));
    // Step 3: a new owner. Refused, over HTTP and through the CLI.
    let (status, v) = p
        .call(
            &agent,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "mallory", "role": "owner"})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_cannot_manage")),
        "{v}"
    );
    let o = cli(&p, &agent, &["member", "add", "mallory", "--role", "owner"]).await;
    assert_ne!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(err.contains("run` capability"), "{err}");
    assert!(
        err.contains("run-only key"),
        "the hint says what to use: {err}"
    );
    assert!(text(&o.stdout).is_empty(), "no key printed");
    // Nor may it change the identity boundary, read the audit log or list keys.
    for (method, path, body) in [
        (
            Method::PUT,
            "/v1/identities/billing",
            Some(json!({"secrets": []})),
        ),
        (
            Method::DELETE,
            "/v1/identities/billing?force=true&release=BILLING_KEY",
            None,
        ),
        (Method::GET, "/v1/audit", None),
        (Method::GET, "/v1/api-keys", None),
        (Method::GET, "/v1/runs", None),
        (
            Method::PATCH,
            "/v1/secrets/team/DEPLOY_KEY",
            Some(json!({"value": "replaced-value-9"})),
        ),
    ] {
        let (status, v) = p.call(&agent, method.clone(), path, body).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("key_cannot_manage")),
            "{method} {path}: {v}"
        );
    }
    let members = p.ok(&owner, Method::GET, "/v1/members", None).await;
    assert_eq!(
        members.as_array().expect("list").len(),
        1,
        "nobody was added"
    );
    // The audit log says which key acted, with its capability.
    let audit = p.ok(&owner, Method::GET, "/v1/audit", None).await["events"].clone();
    let agent_id = made["info"]["id"].as_str().expect("id");
    let started = audit
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["action"] == "run.start" && e["key_id"] == agent_id)
        .expect("the agent's run is audited");
    assert_eq!(started["capability"], "run", "{started}");
    assert_eq!(
        started["on_behalf_of"], "owner",
        "a team key acts for its creator: {started}"
    );
    let created = audit
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["action"] == "api_key.create")
        .expect("audited");
    assert_eq!(
        created["capability"], "manage",
        "the acting key's: {created}"
    );
    assert_eq!(
        created["detail"]["capability"], "run",
        "the new key's: {created}"
    );
    // It still does its job: its own run, finished and read back.
    let id = run["run_id"].as_str().expect("id");
    p.ok(
        &agent,
        Method::POST,
        &format!("/v1/runs/{id}/finish"),
        Some(json!({"exit_code": 0, "duration_ms": 5})),
    )
    .await;
    let shown = p
        .ok(&agent, Method::GET, &format!("/v1/runs/{id}"), None)
        .await;
    assert_eq!(shown["status"], "finished");
    // Another key's run stays out of sight.
    let other = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": []})),
        )
        .await;
    let other_id = other["run_id"].as_str().expect("id");
    for (method, path, body) in [
        (Method::GET, format!("/v1/runs/{other_id}"), None),
        (
            Method::POST,
            format!("/v1/runs/{other_id}/finish"),
            Some(json!({"exit_code": 0, "duration_ms": 5})),
        ),
    ] {
        let (status, _) = p.call(&agent, method, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_never_create_keys_above_themselves() {
    let p = start().await;
    let owner = p.owner.clone();
    let added = p
        .ok(
            &owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "bea", "role": "builder"})),
        )
        .await;
    let builder = added["key"]["key"].as_str().expect("key").to_owned();
    p.ok(
        &owner,
        Method::PUT,
        "/v1/identities/bot",
        Some(json!({"secrets": []})),
    )
    .await;
    let create = |key: String, body: Value| {
        let p = &p;
        async move { p.call(&key, Method::POST, "/v1/api-keys", Some(body)).await }
    };
    // A builder: own personal keys only, run-only if asked.
    let (status, v) = create(
        builder.clone(),
        json!({"name": "b", "kind": "personal", "capability": "run"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["info"]["capability"], "run");
    let builder_run = v["key"].as_str().expect("key").to_owned();
    let (status, v) = create(builder.clone(), json!({"name": "b", "kind": "team"})).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{v}"
    );
    // A run key creates nothing, not even a run key for itself.
    let (status, v) = create(
        builder_run,
        json!({"name": "b", "kind": "personal", "capability": "run"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_cannot_manage")),
        "{v}"
    );
    // Defaults: a team key is run, a personal key manage.
    let (_, team) = create(owner.clone(), json!({"name": "t", "kind": "team"})).await;
    assert_eq!(team["info"]["capability"], "run");
    let (_, personal) = create(owner.clone(), json!({"name": "p", "kind": "personal"})).await;
    assert_eq!(personal["info"]["capability"], "manage");
    // Bound and manage together is a contradiction.
    let (status, v) = create(
        owner.clone(),
        json!({"name": "t", "kind": "team", "identity": "bot", "capability": "manage"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_capability")),
        "{v}"
    );
    // An unbound manage team key of an owner may make keys bound to any identity, and a
    // manage team key, but never a personal key (it has no user).
    let (_, manager) = create(
        owner.clone(),
        json!({"name": "m", "kind": "team", "capability": "manage"}),
    )
    .await;
    let manager = manager["key"].as_str().expect("key").to_owned();
    let (status, v) = create(
        manager.clone(),
        json!({"name": "bound", "kind": "team", "identity": "bot"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = create(manager.clone(), json!({"name": "p", "kind": "personal"})).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("needs_user")),
        "{v}"
    );
    // Listings and whoami say each key's capability; the audit log records it.
    let listed = p.ok(&owner, Method::GET, "/v1/api-keys", None).await;
    for k in listed.as_array().expect("list") {
        assert!(
            k["capability"] == "run" || k["capability"] == "manage",
            "{k}"
        );
    }
    let audit = p.ok(&owner, Method::GET, "/v1/audit", None).await["events"].clone();
    let created: Vec<&Value> = audit
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["action"] == "api_key.create")
        .collect();
    assert!(
        created
            .iter()
            .any(|e| e["detail"]["capability"] == "run" && e["detail"]["identity"] == "bot"),
        "{audit}"
    );
    // The CLI: --manage and --run-only, the capability in the table and in whoami.
    let o = cli(
        &p,
        &owner,
        &[
            "api-key",
            "create",
            "--team",
            "--name",
            "cli-manage",
            "--manage",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("team manage key"),
        "{}",
        text(&o.stderr)
    );
    let o = cli(
        &p,
        &owner,
        &[
            "api-key",
            "create",
            "--team",
            "--name",
            "x",
            "--manage",
            "--identity",
            "bot",
        ],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "clap refuses the pair: {}",
        text(&o.stderr)
    );
    let o = cli(
        &p,
        &owner,
        &[
            "api-key",
            "create",
            "--personal",
            "--name",
            "cli-run",
            "--run-only",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let run_key = text(&o.stdout).trim().to_owned();
    let o = cli(&p, &run_key, &["whoami"]).await;
    assert!(
        text(&o.stdout).contains("capability: run"),
        "{}",
        text(&o.stdout)
    );
    let o = cli(&p, &owner, &["api-key", "list"]).await;
    let table = text(&o.stdout);
    assert!(table.contains("CAPABILITY"), "{table}");
    let line = table
        .lines()
        .find(|l| l.contains("cli-run"))
        .expect("listed");
    assert!(line.contains(" run ") && line.contains("active"), "{line}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_exact_and_never_differ_only_in_case_across_scopes() {
    let p = start().await;
    let owner = p.owner.clone();
    let create =
        |scope: &str, name: &str| json!({"scope": scope, "name": name, "value": "some-value-1234"});
    p.ok(
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(create("team", "OPENAI_API_KEY")),
    )
    .await;
    // Regression (issue 15): a personal `openai_api_key` shadowed the team secret under another
    // spelling, renaming the child's variable, while `--require OPENAI_API_KEY` passed.
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/secrets",
            Some(create("personal", "openai_api_key")),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("name_conflict")),
        "{v}"
    );
    assert_eq!(
        v["existing"],
        json!({"scope": "team", "name": "OPENAI_API_KEY"})
    );
    assert!(
        v["detail"]
            .as_str()
            .expect("detail")
            .contains("OPENAI_API_KEY"),
        "{v}"
    );
    // The same spelling shadows, and is recorded as shadowed.
    p.ok(
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(create("personal", "OPENAI_API_KEY")),
    )
    .await;
    let run = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["OPENAI_API_KEY", "openai_api_key"]})),
        )
        .await;
    assert_eq!(run["secrets"].as_array().expect("secrets").len(), 1);
    assert_eq!(run["secrets"][0]["name"], "OPENAI_API_KEY");
    assert_eq!(run["shadowed"], json!(["OPENAI_API_KEY"]));
    assert_eq!(
        run["missing"],
        json!([{"name": "openai_api_key", "reason": "not_found"}])
    );
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"required": ["openai_api_key"]})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("required_missing")),
        "{v}"
    );
    // Another member's personal name is named to owners and admins only.
    let added = p
        .ok(
            &owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "cy", "role": "builder"})),
        )
        .await;
    let cy = added["key"]["key"].as_str().expect("key").to_owned();
    p.ok(
        &cy,
        Method::POST,
        "/v1/secrets",
        Some(create("personal", "cy_token")),
    )
    .await;
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/secrets",
            Some(create("team", "CY_TOKEN")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["existing"],
        json!({"scope": "personal", "owner": "cy", "name": "cy_token"})
    );
    // Paths name a secret exactly too, with a hint.
    let (status, v) = p
        .call(
            &owner,
            Method::DELETE,
            "/v1/secrets/team/openai_api_key",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .expect("detail")
            .contains("did you mean `OPENAI_API_KEY`"),
        "{v}"
    );
    // Refused names say why.
    for (name, reason) in [
        ("LD_AUDIT", "changes how programs load code"),
        ("SSL_CERT_FILE", "changes whom programs trust"),
        ("https_proxy", "changes where programs connect"),
        ("LATCH_TOKEN", "reserved for latch"),
    ] {
        let (status, v) = p
            .call(
                &owner,
                Method::POST,
                "/v1/secrets",
                Some(create("team", name)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {v}");
        assert!(
            v["detail"].as_str().expect("detail").contains(reason),
            "{name}: {v}"
        );
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_member_is_final_and_the_name_comes_back_as_someone_new() {
    let p = start().await;
    let owner = p.owner.clone();
    let added = p
        .ok(
            &owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "ed", "role": "admin"})),
        )
        .await;
    let first = added["key"]["key"].as_str().expect("key").to_owned();
    let extra = p
        .ok(
            &first,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "ed laptop", "kind": "personal"})),
        )
        .await;
    let extra = extra["key"].as_str().expect("key").to_owned();
    let team = p
        .ok(
            &first,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "ed's bot", "kind": "team", "capability": "manage"})),
        )
        .await;
    let team = team["key"].as_str().expect("key").to_owned();
    for name in ["ED_TOKEN", "ED_NPM"] {
        let body =
            json!({"scope": "personal", "name": name, "value": format!("{name}-value-of-ed")});
        p.ok(&first, Method::POST, "/v1/secrets", Some(body)).await;
    }
    let run = p
        .ok(
            &first,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["ED_TOKEN"]})),
        )
        .await;
    let run_id = run["run_id"].as_str().expect("id").to_owned();

    let o = cli(&p, &owner, &["member", "remove", "ed", "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    assert!(said.contains("removed ed"), "{said}");
    assert!(
        said.contains("revoked 2 personal keys: first key ("),
        "{said}"
    );
    assert!(said.contains("ed laptop"), "{said}");
    assert!(
        said.contains("deleted 2 personal secrets: ED_NPM, ED_TOKEN"),
        "{said}"
    );
    for key in [&first, &extra] {
        let (status, _) = p.call(key, Method::GET, "/v1/whoami", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let who = p.ok(&team, Method::GET, "/v1/whoami", None).await;
    assert_eq!(who["capability"], "run", "its creator is gone: {who}");
    let shown = p
        .ok(&owner, Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(shown["record"]["who"]["user"], "ed", "runs stay readable");
    let audit = p.ok(&owner, Method::GET, "/v1/audit", None).await["events"].clone();
    let events = audit.as_array().expect("list");
    let removal = events
        .iter()
        .find(|e| e["action"] == "member.remove")
        .expect("audited");
    assert_eq!(
        removal["detail"]["deleted_secrets"],
        json!(["ED_NPM", "ED_TOKEN"])
    );
    assert_eq!(
        removal["detail"]["revoked_keys"]
            .as_array()
            .expect("ids")
            .len(),
        2
    );
    for name in ["ED_NPM", "ED_TOKEN"] {
        assert!(
            events.iter().any(
                |e| e["action"] == "secret.delete" && e["target"] == format!("personal/{name}")
            ),
            "{name} deletion audited"
        );
    }
    // The same name again: a new member, who inherits nothing.
    let again = p
        .ok(
            &owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "ed", "role": "builder"})),
        )
        .await;
    let new = again["key"]["key"].as_str().expect("key").to_owned();
    for key in [&first, &extra] {
        let (status, _) = p.call(key, Method::GET, "/v1/whoami", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "never revived");
    }
    let keys = p.ok(&new, Method::GET, "/v1/api-keys", None).await;
    assert_eq!(keys.as_array().expect("list").len(), 1, "{keys}");
    let secrets = p.ok(&new, Method::GET, "/v1/secrets", None).await;
    assert!(
        secrets
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["scope"] == "team"),
        "{secrets}"
    );
    let runs = p.ok(&new, Method::GET, "/v1/runs", None).await["runs"].clone();
    assert!(
        runs.as_array().expect("list").is_empty(),
        "the old runs are not theirs: {runs}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_change_that_releases_secrets_is_explicit_in_the_api_and_the_cli() {
    let p = start().await;
    let owner = p.owner.clone();
    for name in ["DEPLOY_KEY", "SIGNING_KEY"] {
        let body = json!({"scope": "team", "name": name, "value": format!("{name}-value-1234")});
        p.ok(&owner, Method::POST, "/v1/secrets", Some(body)).await;
    }
    p.ok(
        &owner,
        Method::PUT,
        "/v1/identities/deployer",
        Some(json!({"secrets": ["DEPLOY_KEY", "SIGNING_KEY"]})),
    )
    .await;
    let (status, v) = p
        .call(
            &owner,
            Method::PUT,
            "/v1/identities/deployer",
            Some(json!({"secrets": ["DEPLOY_KEY"]})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("would_release")),
        "{v}"
    );
    assert_eq!(v["would_release"], json!(["SIGNING_KEY"]));
    let run = p
        .ok(&owner, Method::POST, "/v1/runs", Some(json!({})))
        .await;
    assert_eq!(
        run["secrets"],
        json!([]),
        "still reserved after the refusal"
    );

    // The CLI: no terminal, no --force: it says what would happen and changes nothing.
    let o = cli(
        &p,
        &owner,
        &["identity", "set", "deployer", "--secrets", "DEPLOY_KEY"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("makes SIGNING_KEY available to every run"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    let o = cli(
        &p,
        &owner,
        &[
            "identity",
            "set",
            "deployer",
            "--secrets",
            "DEPLOY_KEY",
            "--force",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("released SIGNING_KEY"),
        "{}",
        text(&o.stdout)
    );
    let run = p
        .ok(&owner, Method::POST, "/v1/runs", Some(json!({})))
        .await;
    assert_eq!(run["secrets"][0]["name"], "SIGNING_KEY", "released: {run}");

    // Deleting it: the bound key and the release are listed, and need --force.
    p.ok(
        &owner,
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "deploy bot", "kind": "team", "identity": "deployer"})),
    )
    .await;
    let o = cli(&p, &owner, &["identity", "delete", "deployer"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let o = cli(&p, &owner, &["identity", "delete", "deployer", "--force"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (said, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        err.contains("makes DEPLOY_KEY available to every run"),
        "{err}"
    );
    assert!(
        err.contains("revokes 1 key bound to it: deploy bot ("),
        "{err}"
    );
    assert!(
        said.contains("released DEPLOY_KEY") && said.contains("revoked deploy bot"),
        "{said}"
    );
    let audit = p.ok(&owner, Method::GET, "/v1/audit", None).await["events"].clone();
    let deleted = audit
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["action"] == "identity.delete")
        .expect("audited")
        .clone();
    assert_eq!(deleted["detail"]["released"], json!(["DEPLOY_KEY"]));
    assert_eq!(deleted["detail"]["before"], json!(["DEPLOY_KEY"]));
    let put = audit
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["action"] == "identity.put")
        .expect("audited")
        .clone();
    assert_eq!(
        put["detail"]["before"],
        json!(["DEPLOY_KEY", "SIGNING_KEY"]),
        "{put}"
    );
    assert_eq!(put["detail"]["released"], json!(["SIGNING_KEY"]), "{put}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_names_what_a_run_would_get_and_the_allowlist_that_applied() {
    let p = start().await;
    let owner = p.owner.clone();
    for name in ["DB_URL", "OPENAI_API_KEY"] {
        let body = json!({"scope": "team", "name": name, "value": format!("{name}-value-987654")});
        p.ok(&owner, Method::POST, "/v1/secrets", Some(body)).await;
    }
    p.ok(
        &owner,
        Method::PUT,
        "/v1/environments/ci",
        Some(json!({"secrets": ["DB_URL", "NOPE"]})),
    )
    .await;
    let dry = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"environment": "ci", "dry_run": true})),
        )
        .await;
    assert_eq!(
        dry,
        json!({
            "trigger": "cli",
            "allowlist": "environment",
            "secrets": [{"name": "DB_URL", "scope": "team", "version": 1}],
            "missing": [{"name": "NOPE", "reason": "not_found"}],
            "shadowed": [],
        })
    );
    assert!(!dry.to_string().contains("value-987654"), "never a value");
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"required": ["NOPE"], "dry_run": true})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("required_missing"))
    );
    let runs = p.ok(&owner, Method::GET, "/v1/runs", None).await["runs"].clone();
    assert_eq!(runs, json!([]), "a dry run records no run");
    let audit = p.ok(&owner, Method::GET, "/v1/audit", None).await["events"].clone();
    let dry_events: Vec<&Value> = audit
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["action"] == "run.dry_run")
        .collect();
    assert_eq!(dry_events.len(), 2);
    assert_eq!(dry_events[0]["outcome"], "refused");
    assert_eq!(dry_events[1]["detail"]["allowlist"], "environment");

    // The allowlist source in the answer and the run record; the launcher warns when none.
    for (body, source) in [
        (json!({}), "none"),
        (json!({"secrets": []}), "run"),
        (json!({"environment": "ci"}), "environment"),
    ] {
        let run = p.ok(&owner, Method::POST, "/v1/runs", Some(body)).await;
        assert_eq!(run["allowlist"], source);
        let id = run["run_id"].as_str().expect("id");
        let shown = p
            .ok(&owner, Method::GET, &format!("/v1/runs/{id}"), None)
            .await;
        assert_eq!(shown["record"]["allowlist"], source, "{shown}");
    }
    let o = cli(&p, &owner, &["run", "--", "true"]).await;
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "delivering all 2 secrets in the pool: name an environment or --secrets to narrow it"
        ),
        "{err}"
    );
    let narrowed = cli(&p, &owner, &["run", "--env", "ci", "--", "true"]).await;
    assert!(
        !text(&narrowed.stderr).contains("delivering all"),
        "{}",
        text(&narrowed.stderr)
    );
    p.stop().await;
}

#[test]
fn the_model_states_designs_rows_as_written() {
    // The model above states DESIGN §3 apart from the server's code; spot-check a few rows
    // against DESIGN's text, so a slip in the model is caught here too.
    assert_eq!(expected("audit", Role::Admin, true, true), Ok(()));
    assert_eq!(
        expected("audit", Role::Builder, true, true),
        Err((StatusCode::FORBIDDEN, "forbidden"))
    );
    assert_eq!(
        expected("audit", Role::Owner, false, false),
        Err((StatusCode::FORBIDDEN, "key_cannot_manage"))
    );
    assert_eq!(expected("run", Role::Builder, false, false), Ok(()));
    assert_eq!(
        expected("add owner", Role::Admin, true, true),
        Err((StatusCode::FORBIDDEN, "forbidden"))
    );
    let names: BTreeSet<&str> = PROBES.iter().copied().collect();
    assert_eq!(
        expected("team settings", Role::Builder, true, true),
        Err((StatusCode::FORBIDDEN, "forbidden"))
    );
    assert_eq!(names.len(), 17, "every probe is checked");
}
