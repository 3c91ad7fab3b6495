//! Values sealed by their writer (DESIGN §12): `GET /v1/seal-key`, `sealed_value` on secret
//! writes, `seal_mismatch` for a value sealed for another secret, team or key, and the CLI
//! sealing every value it writes, against the real server and the real binary.

use std::path::Path;

use base64::Engine as _;
use latch::core::resolve::Scope;
use latch::core::seal::{self, Target};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::byok::Recorder;
use crate::careful::{assert_latch_lines, err, latch, latch_at};
use crate::launcher::text;
use crate::server::{Platform, start};

const TOKEN: &str = "sk-sealed-Qm4vX8pL2nR7tK9w";
const ROTATED: &str = "sk-rotated-Hj3bN6cV1xZ5mA0q";
const MINE: &str = "ghp_personal-Wd2fG7hJ4kL9pS1e";

/// The team's sealing key, as a writer reads it.
struct Key {
    id: String,
    public: Vec<u8>,
    team: i64,
    owner: Option<i64>,
}

async fn seal_key(p: &Platform, key: &str) -> Key {
    let answer = p.ok(key, Method::GET, "/v1/seal-key", None).await;
    assert_eq!(
        answer["suite"],
        "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
    );
    assert_eq!(answer["info"], "latch/v1 secret value");
    Key {
        id: answer["key_id"].as_str().expect("id").to_owned(),
        public: base64::engine::general_purpose::STANDARD
            .decode(answer["public_key"].as_str().expect("public key"))
            .expect("base64"),
        team: answer["team"]
            .as_str()
            .expect("team")
            .parse()
            .expect("number"),
        owner: answer["owner"].as_str().map(|o| o.parse().expect("number")),
    }
}

fn sealed(key: &Key, scope: Scope, name: &str, value: &[u8]) -> Value {
    let owner = match scope {
        Scope::Team => None,
        Scope::Personal => key.owner,
    };
    let target = Target {
        team: key.team,
        scope,
        owner,
        name,
    };
    serde_json::to_value(seal::seal(&key.public, &key.id, &target, value).expect("seals"))
        .expect("json")
}

async fn delivered(p: &Platform, key: &str, name: &str) -> Value {
    let run = p
        .ok(
            key,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": [name], "trigger": "cli"})),
        )
        .await;
    run["secrets"][0]["value"].clone()
}

fn files_hold(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("reads").any(|entry| {
        let path = entry.expect("entry").path();
        std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

#[tokio::test]
async fn a_sealed_value_is_kept_delivered_and_bound_to_its_own_secret() {
    let p = start().await;
    let owner = p.owner.clone();
    let key = seal_key(&p, &owner).await;
    assert_eq!(key.id.len(), 16);
    assert_eq!(seal::key_id(&key.public), key.id, "the id is the key's");
    assert_eq!(
        seal_key(&p, &owner).await.id,
        key.id,
        "made once, then kept"
    );
    let made = p
        .ok(&owner, Method::GET, "/v1/audit?action=team.seal_key", None)
        .await;
    assert_eq!(made["events"].as_array().map(Vec::len), Some(1), "{made}");

    // Created sealed, delivered as typed.
    let body = json!({"scope": "team", "name": "TOKEN", "sealed_value": sealed(&key, Scope::Team, "TOKEN", TOKEN.as_bytes())});
    let (status, info) = p
        .call(&owner, Method::POST, "/v1/secrets", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(info["value_length"].as_u64(), Some(TOKEN.len() as u64));
    assert_eq!(delivered(&p, &owner, "TOKEN").await, TOKEN);
    let created = p
        .ok(&owner, Method::GET, "/v1/audit?action=secret.create", None)
        .await;
    assert_eq!(created["events"][0]["detail"]["sealed"], true, "{created}");

    // Updated sealed.
    let body = json!({"sealed_value": sealed(&key, Scope::Team, "TOKEN", ROTATED.as_bytes())});
    let info = p
        .ok(&owner, Method::PATCH, "/v1/secrets/team/TOKEN", Some(body))
        .await;
    assert_eq!(info["version"].as_u64(), Some(2));
    assert_eq!(delivered(&p, &owner, "TOKEN").await, ROTATED);

    // A personal secret binds its owner.
    let body = json!({"scope": "personal", "name": "MINE", "sealed_value": sealed(&key, Scope::Personal, "MINE", MINE.as_bytes())});
    p.ok(&owner, Method::POST, "/v1/secrets", Some(body)).await;
    assert_eq!(delivered(&p, &owner, "MINE").await, MINE);

    // A plain value stays accepted, for scripts.
    p.ok(
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "PLAIN", "value": "plain-value-123"})),
    )
    .await;

    // Sealed for another secret, scope or owner: refused, nothing written.
    let other_server = start().await;
    let foreign = seal_key(&other_server, &other_server.owner.clone()).await;
    let refused = [
        (
            "another name",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&key, Scope::Team, "TOKEN", b"value-123456")}),
            "seal_mismatch",
        ),
        (
            "another scope",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&key, Scope::Personal, "TOKEN2", b"value-123456")}),
            "seal_mismatch",
        ),
        (
            "another team's key",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&foreign, Scope::Team, "TOKEN2", b"value-123456")}),
            "seal_mismatch",
        ),
        (
            "both forms",
            json!({"scope": "team", "name": "TOKEN2", "value": "value-123456", "sealed_value": sealed(&key, Scope::Team, "TOKEN2", b"value-123456")}),
            "invalid_value",
        ),
        (
            "no value",
            json!({"scope": "team", "name": "TOKEN2"}),
            "invalid_value",
        ),
        (
            "enc not base64",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": {"key_id": key.id, "enc": "<script>", "ciphertext": "AAAAAAAAAAAAAAAAAAAAAAAA"}}),
            "invalid_sealed_value",
        ),
        (
            "enc too short",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": {"key_id": key.id, "enc": "AAAA", "ciphertext": "AAAAAAAAAAAAAAAAAAAAAAAA"}}),
            "invalid_sealed_value",
        ),
        (
            "a NUL byte inside",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&key, Scope::Team, "TOKEN2", b"abc\0defgh")}),
            "invalid_value",
        ),
        (
            "not UTF-8 inside",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&key, Scope::Team, "TOKEN2", b"abc\xff\xfedefgh")}),
            "invalid_value",
        ),
        (
            "over 64 KiB inside",
            json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&key, Scope::Team, "TOKEN2", &vec![b'a'; 64 * 1024 + 1])}),
            "invalid_value",
        ),
    ];
    for (what, body, code) in refused {
        let (status, problem) = p
            .call(&owner, Method::POST, "/v1/secrets", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
        assert_eq!(problem["code"], code, "{what}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.contains("value-123456") && !detail.contains('<'),
            "{what}: {detail}"
        );
    }
    let (status, _) = p
        .call(&owner, Method::GET, "/v1/secrets/team/TOKEN2", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
    // An update sealed for another secret leaves the value as it was.
    let body = json!({"sealed_value": sealed(&key, Scope::Team, "PLAIN", b"value-123456")});
    let (status, problem) = p
        .call(&owner, Method::PATCH, "/v1/secrets/team/TOKEN", Some(body))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("seal_mismatch"))
    );
    assert_eq!(delivered(&p, &owner, "TOKEN").await, ROTATED);

    // The mismatch from another key says what to do.
    let body = json!({"scope": "team", "name": "TOKEN2", "sealed_value": sealed(&foreign, Scope::Team, "TOKEN2", b"value-123456")});
    let (_, problem) = p
        .call(&owner, Method::POST, "/v1/secrets", Some(body))
        .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("GET /v1/seal-key")),
        "{problem}"
    );

    // No value, and no sealing key's private half, in the platform's files.
    other_server.stop().await;
    let dir = p.stop().await;
    for value in [TOKEN, ROTATED, MINE] {
        assert!(
            !files_hold(dir.path(), value.as_bytes()),
            "a value in plain text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_seals_every_value_it_writes() {
    let p = start().await;
    let owner = p.owner.clone();
    let recorder = Recorder::start(&p.url).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).expect("writes");
        path.to_str().expect("utf-8").to_owned()
    };
    let (first, second, mine) = (file("a", TOKEN), file("b", ROTATED), file("c", MINE));
    for args in [
        vec![
            "secret",
            "create",
            "--team",
            "TOKEN",
            "--value-file",
            &first,
        ],
        vec![
            "secret",
            "update",
            "--team",
            "TOKEN",
            "--value-file",
            &second,
        ],
        vec![
            "secret",
            "create",
            "--personal",
            "MINE",
            "--value-file",
            &mine,
        ],
    ] {
        let out = latch_at(&recorder.url, &owner, &args).await;
        assert!(out.status.success(), "{args:?}: {}", err(&out));
        assert_latch_lines(&err(&out));
    }
    let sent = recorder.sent.lock().expect("lock").clone();
    let sent = text(&sent);
    assert!(sent.contains("GET /v1/seal-key"), "{sent}");
    assert_eq!(sent.matches("\"sealed_value\"").count(), 3, "{sent}");
    for value in [TOKEN, ROTATED, MINE] {
        assert!(
            !sent.contains(value),
            "a value crossed the API in plain text"
        );
    }
    assert_eq!(delivered(&p, &owner, "TOKEN").await, ROTATED);
    assert_eq!(delivered(&p, &owner, "MINE").await, MINE);

    // A run key may not read the sealing key, so it cannot write: said in words.
    let created = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "agent", "kind": "team"})),
        )
        .await;
    let run_key = created["key"].as_str().expect("key");
    let out = latch(
        &p,
        run_key,
        &["secret", "create", "--team", "X_Y", "--value-file", &first],
    )
    .await;
    assert_eq!(out.status.code(), Some(77), "{}", err(&out));
    assert!(err(&out).contains("run"), "{}", err(&out));
    assert_latch_lines(&err(&out));
    drop(recorder);
    p.stop().await;
}
