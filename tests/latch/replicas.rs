//! Several `latch serve` replicas on one PostgreSQL (DESIGN §8), when
//! `LATCH_TEST_DATABASE_URL` names a server (`.ci/run` starts one). Each test gets a fresh
//! database; every replica is a real process, killed by PID when the test ends.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use getrandom::SysRng;
use latch::core::crypto::RootKey;
use rand_core::TryRng;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{delivered_team_secrets, spawn_serve_with};

/// A fresh database on the test server, or `None` (with a note) when none is configured.
async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var("LATCH_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("LATCH_REQUIRE_POSTGRES").is_none(),
            "LATCH_REQUIRE_POSTGRES is set but LATCH_TEST_DATABASE_URL is not"
        );
        eprintln!("LATCH_TEST_DATABASE_URL is unset: the replica tests are skipped");
        return None;
    };
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("test database answers");
    let name = format!(
        "latch_replicas_{:016x}",
        SysRng.try_next_u64().expect("random")
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("creates");
    let mut parsed = url::Url::parse(&url).expect("url");
    parsed.set_path(&format!("/{name}"));
    Some(parsed.to_string())
}

/// Replicas killed by PID when dropped.
struct Replicas(Vec<Child>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two replicas started together on `db` with one root key; their URLs and the owner's key.
async fn two_replicas(db: &str, dir: &Path) -> (Replicas, [String; 2], String) {
    let root = dir.join("root.key");
    let key = RootKey::generate(&mut SysRng).expect("generates");
    std::fs::write(&root, key.to_hex().as_bytes()).expect("writes");
    let mut handles = Vec::new();
    for name in ["a", "b"] {
        let replica_dir = dir.join(name);
        std::fs::create_dir_all(&replica_dir).expect("dir");
        let (db, root) = (db.to_owned(), root.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            spawn_serve_with(
                &replica_dir,
                &[
                    "--database-url",
                    &db,
                    "--root-key-file",
                    root.to_str().expect("utf8"),
                ],
            )
        }));
    }
    let mut children = Vec::new();
    let mut urls = Vec::new();
    let mut owner = String::new();
    for h in handles {
        let (child, url, key) = h.await.expect("joins");
        children.push(child);
        urls.push(url);
        // Exactly one of them bootstrapped the empty database.
        if !key.is_empty() {
            assert!(owner.is_empty(), "both replicas bootstrapped");
            owner = key;
        }
    }
    assert!(owner.starts_with("latch_p_"), "no replica bootstrapped");
    let urls: [String; 2] = urls.try_into().expect("two");
    (Replicas(children), urls, owner)
}

async fn call(
    http: &Client,
    url: &str,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `check` until it holds, at most `limit`; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    for _ in 0..1000 {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_agree_on_keys_members_and_secrets() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_replicas, [a, b], owner) = two_replicas(&db, dir.path()).await;
    let http = Client::new();

    // A key created through A works through B; revoked through A, B refuses it within 5 s.
    let (status, created) = call(
        &http,
        &a,
        &owner,
        Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "ci", "kind": "personal"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().expect("raw key").to_owned();
    let id = created["info"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        call(&http, &b, &key, Method::GET, "/v1/whoami", None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = call(
        &http,
        &a,
        &owner,
        Method::DELETE,
        &format!("/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert!(status.is_success(), "{status}");
    let took = within(Duration::from_secs(5), || async {
        call(&http, &b, &key, Method::GET, "/v1/whoami", None)
            .await
            .0
            == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(took.is_some(), "B still accepts a key revoked through A");

    // A member removed through A: their key stops working on B.
    let (status, added) = call(
        &http,
        &a,
        &owner,
        Method::POST,
        "/v1/members",
        Some(json!({"name": "bob", "role": "builder"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let bob = added["key"]["key"].as_str().expect("bob's key").to_owned();
    assert_eq!(
        call(&http, &b, &bob, Method::GET, "/v1/whoami", None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = call(&http, &a, &owner, Method::DELETE, "/v1/members/bob", None).await;
    assert!(status.is_success());
    assert!(
        within(Duration::from_secs(5), || async {
            call(&http, &b, &bob, Method::GET, "/v1/whoami", None)
                .await
                .0
                == StatusCode::UNAUTHORIZED
        })
        .await
        .is_some(),
        "B still accepts a removed member's key"
    );

    // A secret updated through A is delivered by B.
    let (status, v) = call(
        &http,
        &a,
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "TOKEN", "value": "first-value-0001"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = call(
        &http,
        &a,
        &owner,
        Method::PATCH,
        "/v1/secrets/team/TOKEN",
        Some(json!({"value": "second-value-0002"})),
    )
    .await;
    assert!(status.is_success(), "{v}");
    let (status, run) = call(&http, &b, &owner, Method::POST, "/v1/runs", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["secrets"][0]["value"], "second-value-0002", "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_resolves_through_both_replicas_all_succeed() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_replicas, urls, owner) = two_replicas(&db, dir.path()).await;
    let http = Client::new();
    for i in 0..20 {
        let (status, v) = call(&http, &urls[0], &owner, Method::POST, "/v1/secrets", Some(json!({"scope": "team", "name": format!("S{i}"), "value": format!("value-{i}-abcdefgh")}))).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (http, url, key) = (http.clone(), urls[i % 2].clone(), owner.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..5 {
                let (status, v) =
                    call(&http, &url, &key, Method::POST, "/v1/runs", Some(json!({}))).await;
                statuses.push((status, v["secrets"].as_array().map_or(0, Vec::len)));
            }
            statuses
        }));
    }
    let mut ok = 0;
    for t in tasks {
        for (status, delivered) in t.await.expect("joins") {
            assert_eq!(status, StatusCode::CREATED);
            assert_eq!(delivered, 20);
            ok += 1;
        }
    }
    assert_eq!(ok, 320);
    let mut runs = Vec::new();
    let mut path = "/v1/runs?limit=500".to_owned();
    for _ in 0..3 {
        let (_, page) = call(&http, &urls[1], &owner, Method::GET, &path, None).await;
        runs.extend(page["runs"].as_array().expect("list").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/runs?limit=500&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(runs.len(), 320, "every run recorded");
    for run in &runs {
        // Each record is whole: its own part and the shared part, which both replicas stored
        // at once (one of them seeing the other's and going on).
        let record = &run["record"];
        assert!(record["who"]["key_id"].is_string(), "{run}");
        assert_eq!(delivered_team_secrets(record), Some(20), "{run}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failed_authentication_limit_holds_across_replicas() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (_replicas, [a, b], owner) = two_replicas(&db, dir.path()).await;
    let http = Client::new();
    // A well-formed key that does not exist: same key id on both replicas.
    let mut wrong = owner.clone().into_bytes();
    wrong[8] = if wrong[8] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).expect("ascii");
    let wrong = latch::core::apikey::ApiKey::parse(&wrong)
        .map_or_else(|_| "latch_p_zzzzzzzz".to_owned(), |_| wrong);
    for (url, times) in [(&a, 12), (&b, 8)] {
        for _ in 0..times {
            let (status, _) = call(&http, url, &wrong, Method::GET, "/v1/whoami", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    // 20 failures in all (the limit): B, which saw 8 of them, refuses now.
    let (status, _) = call(&http, &b, &wrong, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A lets one more through, learns the shared count, then refuses too.
    let _ = call(&http, &a, &wrong, Method::GET, "/v1/whoami", None).await;
    let (status, _) = call(&http, &a, &wrong, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
