//! The platform over real HTTP: an in-process server on 127.0.0.1:0 with a temporary SQLite
//! file, and the real `latch serve` binary where a process must die.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use getrandom::SysRng;
use latch::core::crypto::RootKey;
use latch::core::name::Label;
use latch::server::{self, App, boot};
use latch::store::Store;
use latch::store::sqlite::SqliteStore;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running platform.
pub(crate) struct Platform {
    pub(crate) url: String,
    pub(crate) owner: String,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    http: Client,
}

async fn start_in(dir: tempfile::TempDir, root: RootKey) -> Platform {
    start_trusting(dir, root, Vec::new()).await
}

/// A platform that believes `X-Forwarded-For` from loopback, as behind a reverse proxy there:
/// a test can then speak for any client address.
pub(crate) async fn start_behind_proxy() -> Platform {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = root_of(dir.path());
    let loopback = latch::server::client::parse_trusted_proxy("127.0.0.1/32").expect("cidr");
    start_trusting(dir, root, vec![loopback]).await
}

async fn start_trusting(
    dir: tempfile::TempDir,
    root: RootKey,
    trusted: Vec<ipnet::IpNet>,
) -> Platform {
    let store = SqliteStore::open(&dir.path().join("latch.db"))
        .await
        .expect("opens");
    boot::verify_root(&store, &root)
        .await
        .expect("root key matches");
    let now = 1_000_000;
    let key = boot::bootstrap(
        &store,
        &root,
        Label::new("default").expect("label"),
        Label::new("owner").expect("label"),
        now,
    )
    .await
    .expect("bootstraps");
    let owner = key.map(|k| k.expose().to_owned()).unwrap_or_default();
    let store: Arc<dyn Store> = Arc::new(store);
    let app = App::with_proxies(store, root, trusted);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::serve(listener, app, async {
            let _ = stopped.await;
        })
        .await
        .expect("serves");
    });
    Platform {
        url,
        owner,
        dir,
        stop: Some(stop),
        task,
        http: Client::new(),
    }
}

fn root_of(dir: &Path) -> RootKey {
    let path = dir.join("root.key");
    if let Ok(text) = std::fs::read(&path) {
        return RootKey::parse_hex(&text).expect("valid key file");
    }
    let key = RootKey::generate(&mut SysRng).expect("generates");
    std::fs::write(&path, key.to_hex().as_bytes()).expect("writes");
    key
}

pub(crate) async fn start() -> Platform {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = root_of(dir.path());
    start_in(dir, root).await
}

impl Platform {
    /// The platform's data directory (its SQLite database is `latch.db` there).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("server ends");
        self.dir
    }

    /// Sends a request with `key`; returns status and body (JSON, or a string).
    pub(crate) async fn call(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("answers");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn ok(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(key, method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    /// Creates team secrets `S_0`… `S_{count-1}`, the value of `S_i` being `value(i)`.
    async fn team_secrets(&self, key: &str, count: usize, value: impl Fn(usize) -> String) {
        for i in 0..count {
            let body = json!({"scope": "team", "name": format!("S_{i}"), "value": value(i)});
            self.ok(key, Method::POST, "/v1/secrets", Some(body)).await;
        }
    }
}

/// How many team secrets a run record says were delivered.
pub(crate) fn delivered_team_secrets(record: &Value) -> Option<usize> {
    record["delivered"]["team"]
        .as_object()
        .map(serde_json::Map::len)
}

const DB_URL: &str = "postgres://app:s3cr3t-db-pass@db/prod";
const PERSONAL: &str = "ghp_personal_token_0123456789";
const DEPLOY: &str = "deploy-key-value-abcdef-987654";

#[tokio::test]
async fn a_full_session_shows_values_only_in_run_resolution() {
    let p = start().await;
    let owner = p.owner.clone();
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, v: &Value| bodies.push((what.to_owned(), v.to_string()));

    let v = p.ok(&owner, Method::GET, "/v1/whoami", None).await;
    assert_eq!(v["role"], "owner");
    record("whoami", &v);
    for (scope, name, value) in [
        ("team", "DB_URL", DB_URL),
        ("personal", "GH_TOKEN", PERSONAL),
        ("team", "DEPLOY_KEY", DEPLOY),
    ] {
        let v = p
            .ok(
                &owner,
                Method::POST,
                "/v1/secrets",
                Some(json!({"scope": scope, "name": name, "value": value})),
            )
            .await;
        record("secret create", &v);
    }
    let v = p
        .ok(
            &owner,
            Method::PUT,
            "/v1/identities/deployer",
            Some(json!({"secrets": ["DEPLOY_KEY"]})),
        )
        .await;
    record("identity put", &v);
    let v = p
        .ok(
            &owner,
            Method::PUT,
            "/v1/environments/ci",
            Some(json!({"secrets": ["DB_URL", "GH_TOKEN", "DEPLOY_KEY"]})),
        )
        .await;
    record("env put", &v);
    for path in [
        "/v1/secrets",
        "/v1/secrets?all=true",
        "/v1/environments",
        "/v1/environments/ci",
        "/v1/identities",
        "/v1/identities/deployer",
        "/v1/members",
        "/v1/api-keys",
    ] {
        let v = p.ok(&owner, Method::GET, path, None).await;
        record(path, &v);
    }
    let v = p
        .ok(
            &owner,
            Method::PATCH,
            "/v1/secrets/team/DB_URL",
            Some(json!({"description": "primary database"})),
        )
        .await;
    assert_eq!(
        (v["version"].as_u64(), v["description"].as_str()),
        (Some(1), Some("primary database"))
    );
    record("secret describe", &v);

    // A team key bound to the identity.
    let v = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "ci", "kind": "team", "identity": "deployer", "expires": "30d"})),
        )
        .await;
    let team_key = v["key"].as_str().expect("raw key").to_owned();
    assert_eq!(v["info"]["identity"], "deployer");

    // Runs: the owner's (user context) and the team key's (identity).
    let run = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"environment": "ci"})),
        )
        .await;
    let got: Vec<(&str, &str)> = run["secrets"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name"),
                s["value"].as_str().expect("value"),
            )
        })
        .collect();
    assert_eq!(got, vec![("DB_URL", DB_URL), ("GH_TOKEN", PERSONAL)]);
    assert_eq!(
        run["missing"],
        json!([{"name": "DEPLOY_KEY", "reason": "reserved_for_identity"}])
    );
    let run_id = run["run_id"].as_str().expect("id").to_owned();
    let bot = p
        .ok(
            &team_key,
            Method::POST,
            "/v1/runs",
            Some(json!({"environment": "ci"})),
        )
        .await;
    let names: Vec<&str> = bot["secrets"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["DB_URL", "DEPLOY_KEY"]);
    assert_eq!(bot["trigger"], "integration");
    assert_eq!(
        bot["missing"],
        json!([{"name": "GH_TOKEN", "reason": "not_found"}])
    );

    let v = p
        .ok(
            &owner,
            Method::POST,
            &format!("/v1/runs/{run_id}/finish"),
            Some(json!({"exit_code": 0, "duration_ms": 1200, "masked": {"DB_URL": 2}})),
        )
        .await;
    assert_eq!(v["status"], "finished");
    record("finish", &v);
    // The run record: who, what was asked, what was delivered (scope and version), what was
    // missing and why; then how it ended.
    let detail = p
        .ok(&owner, Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    let r = &detail["record"];
    assert_eq!(
        (
            &r["who"]["user"],
            &r["who"]["identity"],
            &r["trigger"],
            &r["user_context"]
        ),
        (&json!("owner"), &Value::Null, &json!("cli"), &json!(true)),
        "{detail}"
    );
    assert_eq!(
        (&r["environment"], &r["requested"], &r["required"]),
        (&json!("ci"), &Value::Null, &json!([])),
        "{detail}"
    );
    assert_eq!(
        r["delivered"],
        json!({"team": {"DB_URL": 1}, "personal": {"GH_TOKEN": 1}}),
        "{detail}"
    );
    assert_eq!(
        (&r["missing"], &r["shadowed"]),
        (
            &json!([{"name": "DEPLOY_KEY", "reason": "reserved_for_identity"}]),
            &json!([])
        ),
        "{detail}"
    );
    assert_eq!(
        detail["outcome"],
        json!({"exit_code": 0, "signal": null, "duration_ms": 1200, "masked": {"DB_URL": 2}}),
        "{detail}"
    );
    for path in [
        "/v1/runs".to_owned(),
        format!("/v1/runs/{run_id}"),
        "/v1/audit".to_owned(),
    ] {
        let v = p.ok(&owner, Method::GET, &path, None).await;
        record(&path, &v);
    }
    let v = p
        .ok(
            &owner,
            Method::PATCH,
            "/v1/secrets/team/DB_URL",
            Some(json!({"value": "postgres://rotated"})),
        )
        .await;
    assert_eq!(v["version"].as_u64(), Some(2));
    record("secret update", &v);
    let run = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["DB_URL"]})),
        )
        .await;
    assert_eq!(
        run["secrets"][0]["value"], "postgres://rotated",
        "a run receives the new value"
    );

    for (what, body) in &bodies {
        for value in [DB_URL, PERSONAL, DEPLOY, "postgres://rotated"] {
            assert!(!body.contains(value), "{what} leaked a value: {body}");
        }
    }
    let v = p
        .ok(
            &owner,
            Method::DELETE,
            "/v1/secrets/personal/GH_TOKEN",
            None,
        )
        .await;
    assert_eq!(v, Value::String(String::new()));
    let (status, _) = p
        .call(
            &owner,
            Method::DELETE,
            "/v1/secrets/personal/GH_TOKEN",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Environments and identities are deleted; a run naming a deleted environment is refused.
    // Deleting the identity would release DEPLOY_KEY and revoke the key bound to it: refused
    // until both are named, then done and answered with what was done.
    let (status, v) = p
        .call(&owner, Method::DELETE, "/v1/identities/deployer", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "identity_in_use", "{v}");
    assert_eq!(v["would_release"], json!(["DEPLOY_KEY"]), "{v}");
    assert_eq!(v["keys"][0]["name"], "ci", "{v}");
    let v = p
        .ok(
            &owner,
            Method::DELETE,
            "/v1/identities/deployer?force=true&release=DEPLOY_KEY",
            None,
        )
        .await;
    assert_eq!(v["released"], json!(["DEPLOY_KEY"]), "{v}");
    assert_eq!(v["revoked_keys"][0]["name"], "ci", "{v}");
    let (status, _) = p.call(&team_key, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the bound key is revoked");
    let v = p
        .ok(&owner, Method::DELETE, "/v1/environments/ci", None)
        .await;
    assert_eq!(
        v,
        json!({"name": "ci", "released": [], "revoked_keys": []}),
        "an environment reserves nothing"
    );
    for path in ["/v1/environments/ci", "/v1/identities/deployer"] {
        for method in [Method::GET, Method::DELETE] {
            let (status, v) = p.call(&owner, method.clone(), path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        }
    }
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"environment": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["code"], "unknown_environment");
    // The owner's key shows its last use (written once, in the background, not per request).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys = p.ok(&owner, Method::GET, "/v1/api-keys", None).await;
        let used = keys
            .as_array()
            .expect("list")
            .iter()
            .any(|k| k["last_used_at"].as_i64().is_some() && k["created_by"] == "owner");
        if used {
            break;
        }
        assert!(Instant::now() < deadline, "no last use shown: {keys}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.stop().await;
}

/// A row of the permission matrix: what, the request, allowed for owner/admin/builder.
type MatrixRow = (&'static str, Method, String, Option<Value>, [bool; 3]);

#[tokio::test]
async fn the_permission_matrix_row_by_row() {
    let p = start().await;
    let owner = p.owner.clone();
    let mut keys = vec![("owner", owner.clone())];
    for (name, role) in [("ada", "admin"), ("bo", "builder")] {
        let v = p
            .ok(
                &owner,
                Method::POST,
                "/v1/members",
                Some(json!({"name": name, "role": role})),
            )
            .await;
        keys.push((
            role,
            v["key"]["key"].as_str().expect("first key").to_owned(),
        ));
    }
    p.ok(
        &owner,
        Method::POST,
        "/v1/members",
        Some(json!({"name": "extra", "role": "builder"})),
    )
    .await;
    // (row, request, allowed for owner/admin/builder)
    let rows: Vec<MatrixRow> = vec![
        (
            "create own personal key",
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": "k", "kind": "personal"})),
            [true, true, true],
        ),
        (
            "list own keys",
            Method::GET,
            "/v1/api-keys".into(),
            None,
            [true, true, true],
        ),
        (
            "create team key",
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": "t", "kind": "team"})),
            [true, true, false],
        ),
        (
            "own personal secret",
            Method::POST,
            "/v1/secrets".into(),
            Some(json!({"scope": "personal", "name": "MINE", "value": "personal-value-1"})),
            [true, true, true],
        ),
        (
            "team secret",
            Method::POST,
            "/v1/secrets".into(),
            Some(json!({"scope": "team", "name": "T_{ROLE}", "value": "team-value-12345"})),
            [true, true, false],
        ),
        (
            "list secret metadata",
            Method::GET,
            "/v1/secrets".into(),
            None,
            [true, true, true],
        ),
        (
            "list all personal names",
            Method::GET,
            "/v1/secrets?all=true".into(),
            None,
            [true, true, false],
        ),
        (
            "manage environments",
            Method::PUT,
            "/v1/environments/e_{ROLE}".into(),
            Some(json!({"secrets": []})),
            [true, true, false],
        ),
        (
            "manage identities",
            Method::PUT,
            "/v1/identities/i_{ROLE}".into(),
            Some(json!({"secrets": []})),
            [true, true, false],
        ),
        (
            "add a builder",
            Method::POST,
            "/v1/members".into(),
            Some(json!({"name": "new_{ROLE}", "role": "builder"})),
            [true, true, false],
        ),
        (
            "add an owner",
            Method::POST,
            "/v1/members".into(),
            Some(json!({"name": "own_{ROLE}", "role": "owner"})),
            [true, false, false],
        ),
        (
            "change a role",
            Method::PATCH,
            "/v1/members/extra".into(),
            Some(json!({"role": "builder"})),
            [true, true, false],
        ),
        (
            "start a run",
            Method::POST,
            "/v1/runs".into(),
            Some(json!({})),
            [true, true, true],
        ),
        (
            "read runs",
            Method::GET,
            "/v1/runs".into(),
            None,
            [true, true, true],
        ),
        (
            "read audit log",
            Method::GET,
            "/v1/audit".into(),
            None,
            [true, true, false],
        ),
    ];
    for (row, method, path, body, allowed) in rows {
        for ((role, key), ok) in keys.iter().zip(allowed) {
            let path = path.replace("{ROLE}", role);
            let body = body.as_ref().map(|b| {
                serde_json::from_str(&b.to_string().replace("{ROLE}", role)).expect("json")
            });
            let (status, value) = p.call(key, method.clone(), &path, body).await;
            if ok {
                assert!(
                    status.is_success(),
                    "{row}: {role} refused: {status} {value}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{row}: {role} allowed: {value}"
                );
                assert_eq!(value["code"], "forbidden");
            }
        }
    }
    // Builders read only their own runs; owners and admins see all.
    let all = p.ok(&owner, Method::GET, "/v1/runs", None).await["runs"].clone();
    let own = p.ok(&keys[2].1, Method::GET, "/v1/runs", None).await["runs"].clone();
    assert_eq!(all.as_array().expect("list").len(), 3);
    assert_eq!(own.as_array().expect("list").len(), 1);
    // Admins list every key; builders their own.
    let admin_keys = p.ok(&keys[1].1, Method::GET, "/v1/api-keys", None).await;
    let builder_keys = p.ok(&keys[2].1, Method::GET, "/v1/api-keys", None).await;
    assert!(
        admin_keys.as_array().expect("list").len() > builder_keys.as_array().expect("list").len()
    );
    // A demoted admin's personal key is demoted at once; a removed member's key stops working.
    // A `manage` team key the admin made acts with the lower of the admin role it was made
    // with and its creator's role now, and only as `run` once its creator is gone (DESIGN §3).
    let made = p
        .ok(
            &keys[1].1,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "ada's team key", "kind": "team", "capability": "manage"})),
        )
        .await;
    assert_eq!(made["info"]["capability"], "manage");
    let ada_team_key = made["key"].as_str().expect("raw key").to_owned();
    p.ok(&ada_team_key, Method::GET, "/v1/audit", None).await;
    p.ok(
        &owner,
        Method::PATCH,
        "/v1/members/ada",
        Some(json!({"role": "builder"})),
    )
    .await;
    for key in [&keys[1].1, &ada_team_key] {
        let (status, v) = p.call(key, Method::GET, "/v1/audit", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["code"], "forbidden", "demoted with its creator: {v}");
    }
    let whoami = p.ok(&ada_team_key, Method::GET, "/v1/whoami", None).await;
    assert_eq!(
        (&whoami["role"], &whoami["capability"]),
        (&json!("builder"), &json!("manage")),
        "{whoami}"
    );
    p.ok(&owner, Method::DELETE, "/v1/members/ada", None).await;
    let (status, _) = p.call(&keys[1].1, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let whoami = p.ok(&ada_team_key, Method::GET, "/v1/whoami", None).await;
    assert_eq!(whoami["capability"], "run", "its creator is gone: {whoami}");
    let (status, v) = p
        .call(&ada_team_key, Method::GET, "/v1/secrets", None)
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("key_cannot_manage")),
        "{v}"
    );
    p.ok(
        &ada_team_key,
        Method::POST,
        "/v1/runs",
        Some(json!({"secrets": []})),
    )
    .await;
    p.ok(&owner, Method::DELETE, "/v1/members/bo", None).await;
    let (status, v) = p.call(&keys[2].1, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // The last owner cannot be demoted.
    p.ok(&owner, Method::DELETE, "/v1/members/own_owner", None)
        .await;
    let (status, v) = p
        .call(
            &owner,
            Method::PATCH,
            "/v1/members/owner",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    p.stop().await;
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_at_once() {
    let p = start().await;
    let owner = p.owner.clone();
    let v = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "short", "kind": "personal", "expires": "1s"})),
        )
        .await;
    let short = v["key"].as_str().expect("key").to_owned();
    let v = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "doomed", "kind": "team"})),
        )
        .await;
    let doomed = v["key"].as_str().expect("key").to_owned();
    let doomed_id = v["info"]["id"].as_str().expect("id").to_owned();
    p.ok(&doomed, Method::GET, "/v1/whoami", None).await;
    p.ok(
        &owner,
        Method::DELETE,
        &format!("/v1/api-keys/{doomed_id}"),
        None,
    )
    .await;
    let (status, v) = p.call(&doomed, Method::GET, "/v1/whoami", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert!(v["detail"].as_str().expect("detail").contains("revoked"));
    p.ok(&short, Method::GET, "/v1/whoami", None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, v) = p.call(&short, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        v["detail"].as_str().expect("detail").contains("expired"),
        "{v}"
    );
    // A team key claiming a user trigger.
    let v = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "t", "kind": "team"})),
        )
        .await;
    let team = v["key"].as_str().expect("key").to_owned();
    let (status, v) = p
        .call(
            &team,
            Method::POST,
            "/v1/runs",
            Some(json!({"trigger": "slack"})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("trigger_requires_user"))
    );
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"environment": "nope"})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_environment"))
    );
    p.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_never_a_500() {
    let p = start().await;
    let owner = p.owner.clone();
    let raw = |body: &'static str, path: &'static str| {
        let request = p
            .http
            .post(format!("{}{path}", p.url))
            .bearer_auth(&owner)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.expect("answers");
            let status = response.status();
            let ctype = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            (status, ctype, response.text().await.expect("body"))
        }
    };
    let huge = format!(
        "{{\"scope\":\"team\",\"name\":\"BIG\",\"value\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let huge: &'static str = Box::leak(huge.into_boxed_str());
    let body_limit = format!(
        "{{\"scope\":\"team\",\"name\":\"BIG\",\"value\":\"{}\"}}",
        "x".repeat(600_000)
    );
    let body_limit: &'static str = Box::leak(body_limit.into_boxed_str());
    let cases: Vec<(&str, &'static str, &'static str, &str)> = vec![
        (
            "malformed json",
            "{\"scope\": ",
            "/v1/secrets",
            "invalid_json",
        ),
        (
            "wrong type",
            "{\"scope\":\"team\",\"name\":\"A\",\"value\":12}",
            "/v1/secrets",
            "invalid_body",
        ),
        (
            "unknown field",
            "{\"scope\":\"team\",\"name\":\"A\",\"value\":\"abcdefgh\",\"valeu\":1}",
            "/v1/secrets",
            "invalid_body",
        ),
        (
            "invalid name",
            "{\"scope\":\"team\",\"name\":\"1BAD\",\"value\":\"abcdefgh\"}",
            "/v1/secrets",
            "invalid_body",
        ),
        (
            "refused name",
            "{\"scope\":\"team\",\"name\":\"LD_PRELOAD\",\"value\":\"abcdefgh\"}",
            "/v1/secrets",
            "invalid_body",
        ),
        (
            "nul in value",
            "{\"scope\":\"team\",\"name\":\"A\",\"value\":\"ab\\u0000cd\"}",
            "/v1/secrets",
            "invalid_value",
        ),
        (
            "empty value",
            "{\"scope\":\"team\",\"name\":\"A\",\"value\":\"\"}",
            "/v1/secrets",
            "invalid_value",
        ),
        ("value over 64 KiB", huge, "/v1/secrets", "invalid_value"),
        (
            "body over the limit",
            body_limit,
            "/v1/secrets",
            "body_too_large",
        ),
        (
            "bad scope",
            "{\"scope\":\"global\",\"name\":\"A\",\"value\":\"abcdefgh\"}",
            "/v1/secrets",
            "invalid_body",
        ),
        (
            "bad trigger",
            "{\"trigger\":\"cron\"}",
            "/v1/runs",
            "invalid_body",
        ),
        (
            "bad expiry",
            "{\"name\":\"k\",\"kind\":\"personal\",\"expires\":\"forever\"}",
            "/v1/api-keys",
            "invalid_expiry",
        ),
        (
            "unknown identity",
            "{\"name\":\"k\",\"kind\":\"team\",\"identity\":\"ghost\"}",
            "/v1/api-keys",
            "unknown_identity",
        ),
        (
            "bad role",
            "{\"name\":\"x\",\"role\":\"root\"}",
            "/v1/members",
            "invalid_body",
        ),
        ("array body", "[]", "/v1/runs", "invalid_body"),
    ];
    for (what, body, path, code) in cases {
        let (status, ctype, text) = raw(body, path).await;
        assert!(status.is_client_error(), "{what}: {status} {text}");
        assert_eq!(ctype.as_deref(), Some("application/problem+json"), "{what}");
        let v: Value = serde_json::from_str(&text).expect("problem json");
        assert_eq!(v["code"], code, "{what}: {text}");
        assert!(!text.contains(&"x".repeat(100)), "{what}: echoes the body");
    }
    for (method, path) in [
        (Method::PATCH, "/v1/secrets/galaxy/A"),
        (Method::DELETE, "/v1/secrets/team/bad-name"),
        (Method::GET, "/v1/environments/a%2Fb"),
        (Method::DELETE, "/v1/api-keys/short"),
        (Method::GET, "/v1/runs?limit=lots"),
        (Method::GET, "/v1/nothing"),
    ] {
        let (status, v) = p
            .call(
                &owner,
                method.clone(),
                path,
                Some(json!({"value": "abcdefgh"})),
            )
            .await;
        assert!(status.is_client_error(), "{method} {path}: {status} {v}");
    }
    // Authentication input.
    let (status, v) = p
        .call("latch_p_garbage", Method::GET, "/v1/whoami", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let response = p
        .http
        .get(format!("{}/v1/whoami", p.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    p.stop().await;
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_with_retry_after() {
    let p = start().await;
    let mut limited = None;
    for i in 0..40 {
        let response = p
            .http
            .get(format!("{}/v1/whoami", p.url))
            .bearer_auth(format!("latch_p_wrong{i}"))
            .send()
            .await
            .expect("answers");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            break;
        }
    }
    let retry: u64 = limited
        .expect("limited within 40 failures")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    let metrics = p
        .http
        .get(format!("{}/metrics", p.url))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"latch_auth_failures_total{reason="unknown_key"} 21"#),
        "{metrics}"
    );
    assert!(metrics.contains("latch_rate_limited_total 1"), "{metrics}");
    p.stop().await;
}

#[tokio::test]
async fn health_readiness_and_no_store() {
    let p = start().await;
    let health = p
        .http
        .get(format!("{}/healthz", p.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), StatusCode::OK);
    let ready = p
        .http
        .get(format!("{}/readyz", p.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), StatusCode::OK);
    let run = p
        .http
        .post(format!("{}/v1/runs", p.url))
        .bearer_auth(&p.owner)
        .json(&json!({}))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        run.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("no-store")
    );
    assert!(run.headers().get("content-encoding").is_none());
    p.stop().await;
}

/// DESIGN §2.7: when the run's record cannot be written, no value leaves. The failure is real:
/// a trigger, created on the database file from another connection, aborts every insert into
/// `runs`; the values are opened while the record is being committed, and still none is sent.
#[tokio::test]
async fn a_run_whose_record_cannot_be_written_gets_no_value() {
    use sqlx::Connection as _;
    const VALUE: &str = "never-sent-without-a-record-0042";
    let p = start().await;
    let owner = p.owner.clone();
    p.team_secrets(&owner, 20, |i| format!("{VALUE}-{i}")).await;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(p.dir.path().join("latch.db"))
        .busy_timeout(Duration::from_secs(10));
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("opens the database file");
    sqlx::query(
        "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&mut db)
    .await
    .expect("creates the trigger");
    for _ in 0..3 {
        let (status, body) = p
            .call(&owner, Method::POST, "/v1/runs", Some(json!({})))
            .await;
        assert!(status.is_server_error(), "{status} {body}");
        assert!(!body.to_string().contains(VALUE), "a value left: {body}");
    }
    let listed = p.ok(&owner, Method::GET, "/v1/runs", None).await["runs"].clone();
    assert_eq!(listed, json!([]), "no run was recorded");
    let metrics = p
        .http
        .get(format!("{}/metrics", p.url))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("latch_database_errors_total 3"),
        "{metrics}"
    );
    sqlx::query("DROP TRIGGER refuse_runs")
        .execute(&mut db)
        .await
        .expect("drops the trigger");
    db.close().await.expect("closes");
    let run = p
        .ok(&owner, Method::POST, "/v1/runs", Some(json!({})))
        .await;
    assert_eq!(run["secrets"].as_array().map(Vec::len), Some(20), "{run}");
    p.stop().await;
}

/// Runs that repeat their inputs share one stored copy of what they resolved to (names and
/// versions), each run keeping only who started it; every record still reads back whole, and
/// an older run keeps the versions it got after a secret changes.
#[tokio::test]
async fn repeated_runs_store_their_names_once_and_read_back_whole() {
    use sqlx::Connection as _;
    let p = start().await;
    let owner = p.owner.clone();
    p.team_secrets(&owner, 20, |i| format!("value-{i}-abcdefgh"))
        .await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let run = p
            .ok(&owner, Method::POST, "/v1/runs", Some(json!({})))
            .await;
        ids.push(run["run_id"].as_str().expect("run id").to_owned());
    }
    p.ok(
        &owner,
        Method::POST,
        "/v1/runs",
        Some(json!({"secrets": ["S_1"]})),
    )
    .await;
    p.ok(
        &owner,
        Method::PATCH,
        "/v1/secrets/team/S_0",
        Some(json!({"value": "value-0-changed"})),
    )
    .await;
    let after = p
        .ok(&owner, Method::POST, "/v1/runs", Some(json!({})))
        .await;
    let after = after["run_id"].as_str().expect("run id").to_owned();

    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(p.dir.path().join("latch.db"))
        .read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("opens the database file");
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let runs = count("SELECT count(*) FROM runs").fetch_one(&mut db).await;
    let shared = count("SELECT count(*) FROM run_decisions")
        .fetch_one(&mut db)
        .await;
    db.close().await.expect("closes");
    assert_eq!(runs.expect("counts"), 12);
    assert_eq!(
        shared.expect("counts"),
        3,
        "ten alike, one with its own list, one after a change"
    );

    for id in &ids {
        let run = p
            .ok(&owner, Method::GET, &format!("/v1/runs/{id}"), None)
            .await;
        let record = &run["record"];
        assert_eq!(record["who"]["user"], "owner", "{run}");
        assert_eq!(record["trigger"], "cli", "{run}");
        assert_eq!(delivered_team_secrets(record), Some(20), "{run}");
        assert_eq!(
            record["delivered"]["team"]["S_0"], 1,
            "the version this run got: {run}"
        );
    }
    let run = p
        .ok(&owner, Method::GET, &format!("/v1/runs/{after}"), None)
        .await;
    assert_eq!(run["record"]["delivered"]["team"]["S_0"], 2, "{run}");
    let listed = p.ok(&owner, Method::GET, "/v1/runs", None).await["runs"].clone();
    let listed = listed.as_array().expect("list");
    assert_eq!(listed.len(), 12);
    assert!(
        listed
            .iter()
            .all(|r| r["record"]["who"]["key_id"].is_string()
                && r["record"]["delivered"]["team"].is_object()),
        "{listed:?}"
    );
    p.stop().await;
}

#[tokio::test]
async fn data_survives_a_restart_and_a_wrong_root_key_is_refused() {
    let p = start().await;
    let owner = p.owner.clone();
    p.ok(
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "KEEP", "value": "kept-across-restarts"})),
    )
    .await;
    let dir = p.stop().await;
    let root = root_of(dir.path());
    let p = start_in(dir, root).await;
    let run = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["KEEP"]})),
        )
        .await;
    assert_eq!(run["secrets"][0]["value"], "kept-across-restarts");
    let dir = p.stop().await;
    let store = SqliteStore::open(&dir.path().join("latch.db"))
        .await
        .expect("opens");
    let wrong = RootKey::generate(&mut SysRng).expect("generates");
    let err = boot::verify_root(&store, &wrong)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("does not match"), "{err}");
    let wrong_file = dir.path().join("wrong.key");
    std::fs::write(&wrong_file, wrong.to_hex().as_bytes()).expect("writes");
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .arg("--root-key-file")
            .arg(&wrong_file)
            .output()
            .expect("runs")
    };
    // While this process holds the database, a second server refuses it (exit 78): one SQLite
    // database has one server, which is what lets that server keep what it read.
    let out = serve();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("in use by another `latch serve`"),
        "{stderr}"
    );
    drop(store);
    // Once released, the binary gets as far as the root key, says it does not match, exits 78.
    let out = serve();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("does not match this database"), "{stderr}");
}

#[tokio::test]
async fn a_ciphertext_copied_onto_another_row_fails_with_an_integrity_error() {
    let p = start().await;
    let owner = p.owner.clone();
    for (name, value) in [
        ("FIRST", "first-secret-value"),
        ("SECOND", "second-secret-value"),
    ] {
        p.ok(
            &owner,
            Method::POST,
            "/v1/secrets",
            Some(json!({"scope": "team", "name": name, "value": value})),
        )
        .await;
    }
    // Copy FIRST's ciphertext onto SECOND directly in the database file.
    let db = p.dir.path().join("latch.db");
    let conn = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&db))
        .await
        .expect("connects");
    sqlx::query("UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'FIRST') WHERE name = 'SECOND'")
        .execute(&conn)
        .await
        .expect("tampers");
    conn.close().await;
    let (status, v) = p
        .call(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["SECOND"]})),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("integrity_error")),
        "{v}"
    );
    assert!(!v.to_string().contains("first-secret-value"));
    let run = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["FIRST"]})),
        )
        .await;
    assert_eq!(
        run["secrets"][0]["value"], "first-secret-value",
        "the untouched row still opens"
    );
    p.stop().await;
}

/// Starts the real binary on a free port; returns the child, its URL and the owner key.
fn spawn_serve(dir: &Path) -> (std::process::Child, String, String) {
    spawn_serve_with(dir, &[])
}

/// As [`spawn_serve`], with extra arguments.
pub(crate) fn spawn_serve_with(
    dir: &Path,
    extra: &[&str],
) -> (std::process::Child, String, String) {
    let key_file = dir.join("owner.key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .arg("--bootstrap-key-file")
        .arg(&key_file)
        .env("LATCH_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let url = {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next()
                .expect("server prints its address")
                .expect("line");
            if let Some(addr) = line.strip_prefix("latch: note: listening on ") {
                std::thread::spawn(move || for _ in lines {});
                break addr.to_owned();
            }
        }
    };
    let key = std::fs::read_to_string(&key_file)
        .unwrap_or_default()
        .trim()
        .to_owned();
    (child, url, key)
}

#[tokio::test]
async fn kill_9_during_a_burst_of_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, url, owner) = spawn_serve(dir.path());
    assert!(owner.starts_with("latch_p_"));
    // The bootstrap key file and the root key generated on first start: owner-only.
    for file in ["owner.key", "root.key"] {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(dir.path().join(file)).expect(file);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
    }
    let http = Client::new();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url, owner, acknowledged) = (
            http.clone(),
            url.clone(),
            owner.clone(),
            Arc::clone(&acknowledged),
        );
        writers.push(tokio::spawn(async move {
            for i in 0..500 {
                let name = format!("W{w}_{i}");
                let body = json!({"scope": "team", "name": name, "value": format!("value-{w}-{i}-padding")});
                match http.post(format!("{url}/v1/secrets")).bearer_auth(&owner).json(&body).send().await {
                    Ok(r) if r.status() == StatusCode::CREATED => acknowledged.lock().expect("lock").push(name),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = i32::try_from(child.id()).expect("pid");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill -9");
    let _ = child.wait();
    for w in writers {
        let _ = w.await;
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 10,
        "the burst was under way: {}",
        acknowledged.len()
    );
    let (mut child, url, _) = spawn_serve(dir.path());
    let listed: Value = http
        .get(format!("{url}/v1/secrets"))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let stored: std::collections::HashSet<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    child.kill().expect("stops");
    let _ = child.wait();
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let p = start().await;
    let doc: Value = p
        .http
        .get(format!("{}/v1/openapi.json", p.url))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/v1/openapi.json", &["get"]),
        ("/v1/whoami", &["get"]),
        ("/v1/team", &["patch"]),
        ("/v1/seal-key", &["get"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{id}", &["delete"]),
        ("/v1/secrets", &["get", "post"]),
        ("/v1/secrets/{scope}/{name}", &["patch", "delete"]),
        ("/v1/environments", &["get"]),
        ("/v1/environments/{name}", &["put", "get", "delete"]),
        ("/v1/identities", &["get"]),
        ("/v1/identities/{name}", &["put", "get", "delete"]),
        ("/v1/members", &["get", "post"]),
        ("/v1/members/{user}", &["patch", "delete"]),
        ("/v1/runs", &["get", "post"]),
        ("/v1/runs/{id}", &["get"]),
        ("/v1/runs/{id}/finish", &["post"]),
        ("/v1/audit", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} undocumented"
            );
        }
    }
    assert_eq!(paths.len(), 21, "every documented path is served");
    for schema in ["Problem", "Resolved", "CreateSecret", "RunInfo"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
    p.stop().await;
}

/// Makes a private CA and a server certificate for 127.0.0.1 with `openssl`; returns the CA,
/// certificate and key paths.
fn make_certificates(dir: &Path) -> (String, String, String) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-subj",
            "/CN=latch-test-ca",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
    ]
    .concat());
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").expect("writes");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext",
        "-out",
        "leaf.pem",
    ]);
    let path = |name: &str| dir.join(name).to_str().expect("utf8").to_owned();
    (path("ca.pem"), path("leaf.pem"), path("leaf.key"))
}

#[tokio::test]
async fn tls_serving_with_a_private_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = make_certificates(dir.path());
    let data = dir.path().join("data");
    let (mut child, url, owner) =
        spawn_serve_with(&data, &["--tls-cert", &cert, "--tls-key", &key]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let whoami = |ca: Option<String>| {
        let (url, owner) = (url.clone(), owner.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
            cmd.arg("whoami")
                .env("LATCH_URL", url)
                .env("LATCH_API_KEY", owner)
                .env_remove("LATCH_CA_CERT");
            if let Some(ca) = ca {
                cmd.env("LATCH_CA_CERT", ca);
            }
            cmd.output().expect("runs")
        })
    };
    let trusted = whoami(Some(ca)).await.expect("joins");
    assert_eq!(
        trusted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("role:       owner"));
    let untrusted = whoami(None).await.expect("joins");
    // A TLS trust failure is configuration (78), said in words, at once (DESIGN §6).
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(
        untrusted.status.code(),
        Some(78),
        "an unknown CA is refused: {said}"
    );
    assert!(
        said.contains("is not signed by a CA this machine trusts")
            && said.contains("LATCH_CA_CERT")
            && !said.contains("UnknownIssuer")
            && !said.contains("unreachable"),
        "{said}"
    );
    // SIGINT (Ctrl-C) stops it gracefully, as SIGTERM does (tested with trace logging below).
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signals");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("stops");
            let _ = child.wait();
            panic!("SIGINT did not stop the server");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "graceful stop: {status:?}");
    // Unusable certificate files are a configuration error, before listening.
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data2"))
        .args(["--tls-cert", "/nonexistent.pem", "--tls-key", &key])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real `latch serve` at trace level, through a session that writes, rotates, resolves
/// (twice, so once from the kept snapshot), finishes and audits, and a refused key: neither a
/// secret value (nor its base64 or hex) nor an API key reaches its stdout or stderr.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_logs_no_value_and_no_key_even_at_trace() {
    use base64::Engine as _;
    use std::io::Read;
    const VALUE: &str = "trace-never-shows-7f3a9c2e5b1d";
    const ROTATED: &str = "trace-rotated-value-0c4e8a2b6d";
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("owner.key");
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["serve", "-vvv", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--bootstrap-key-file")
        .arg(&key_file)
        .env("LATCH_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let kill = |signal| {
        let _ = nix::sys::signal::kill(pid, signal);
    };
    let mut stdout = child.stdout.take().expect("stdout");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                kill(nix::sys::signal::Signal::SIGKILL);
                panic!("the server did not start")
            });
        if let Some(url) = line.strip_prefix("latch: note: listening on ") {
            break url.to_owned();
        }
    };
    let owner = std::fs::read_to_string(&key_file)
        .expect("bootstrap key")
        .trim()
        .to_owned();
    let http = Client::new();
    let call = |key: String, method: Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{url}{path}"))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("answers");
            (response.status(), response.text().await.expect("body"))
        }
    };
    let (status, _) = call(
        owner.clone(),
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "TRACED", "value": VALUE})),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (_, created) = call(
        owner.clone(),
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "second", "kind": "personal"})),
    )
    .await;
    let created: Value = serde_json::from_str(&created).expect("json");
    let second = created["key"].as_str().expect("raw key").to_owned();
    for (key, value) in [(&owner, VALUE), (&second, VALUE)] {
        let (status, body) = call(key.clone(), Method::POST, "/v1/runs", Some(json!({}))).await;
        assert!(status.is_success(), "{status}");
        assert!(body.contains(value), "the run delivers the value");
    }
    let (status, _) = call(
        owner.clone(),
        Method::PATCH,
        "/v1/secrets/team/TRACED",
        Some(json!({"value": ROTATED})),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (_, body) = call(owner.clone(), Method::POST, "/v1/runs", Some(json!({}))).await;
    let run: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        run["secrets"][0]["value"], ROTATED,
        "the rotated value at once"
    );
    let run_id = run["run_id"].as_str().expect("id").to_owned();
    let finish = format!("/v1/runs/{run_id}/finish");
    let (status, _) = call(
        owner.clone(),
        Method::POST,
        &finish,
        Some(json!({"exit_code": 0, "duration_ms": 5, "masked": {"TRACED": 1}})),
    )
    .await;
    assert!(status.is_success(), "{status}");
    for path in ["/v1/audit", "/v1/runs", &format!("/v1/runs/{run_id}")] {
        let (status, _) = call(owner.clone(), Method::GET, path, None).await;
        assert!(status.is_success(), "{path}: {status}");
    }
    // A key with one character changed: refused, and not echoed.
    let mut wrong = second.clone().into_bytes();
    let i = wrong.len() - 10;
    wrong[i] = if wrong[i] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).expect("ascii");
    let (status, _) = call(wrong.clone(), Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    kill(nix::sys::signal::Signal::SIGTERM);
    let status = tokio::task::spawn_blocking(move || child.wait().expect("waits"))
        .await
        .expect("joins");
    assert_eq!(status.code(), Some(0));
    let logs = format!(
        "{}{}",
        out.join().expect("stdout"),
        err.join().expect("stderr")
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging is on"
    );
    for (what, text) in [("value", VALUE), ("rotated value", ROTATED)] {
        let encodings = [
            text.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(text),
            text.bytes().map(|b| format!("{b:02x}")).collect(),
        ];
        for e in encodings {
            assert!(!logs.contains(&e), "the {what} reached the log as {e:?}");
        }
    }
    for (what, key) in [
        ("owner key", &owner),
        ("new key", &second),
        ("wrong key", &wrong),
    ] {
        assert!(!logs.contains(key.as_str()), "the {what} reached the log");
        // Nor its secret part alone (everything after the 8-character key id).
        assert!(
            !logs.contains(&key[16..46]),
            "part of the {what} reached the log"
        );
    }
}
