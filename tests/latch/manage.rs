//! The management CLI (DESIGN §10): the real `latch` binary against an in-process platform.

use std::process::{Command, Output, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{Platform, start};

/// Runs `latch` against `p` with `key`; stdin is empty (no terminal).
async fn latch(p: &Platform, key: &str, args: &[&str]) -> Output {
    latch_at(&p.url, key, args).await
}

/// Runs `latch` with `LATCH_URL=url` and `key`; stdin is empty (no terminal).
async fn latch_at(url: &str, key: &str, args: &[&str]) -> Output {
    let (url, key) = (url.to_owned(), key.to_owned());
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

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", err(o));
    serde_json::from_slice(&o.stdout).expect("json output")
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_round_trip_create_list_update_run() {
    let p = start().await;
    let k = p.owner.clone();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("value");
    std::fs::write(&file, "first-value-123").expect("writes");
    let f = file.to_str().expect("utf8");
    let o = latch(
        &p,
        &k,
        &[
            "secret",
            "create",
            "--team",
            "DB_PASSWORD",
            "--value-file",
            f,
            "--description",
            "db",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "created team secret DB_PASSWORD (version 1)\n");
    let list = latch(&p, &k, &["secret", "list"]).await;
    assert_eq!(
        out(&list),
        "NAME         SCOPE  DESCRIPTION  VERSION  LAST UPDATED\nDB_PASSWORD  team   db           v1       just now\n"
    );
    std::fs::write(&file, "second-value-456").expect("writes");
    let o = latch(
        &p,
        &k,
        &[
            "--json",
            "secret",
            "update",
            "--team",
            "DB_PASSWORD",
            "--value-file",
            f,
        ],
    )
    .await;
    assert_eq!(json_of(&o)["version"], 2);
    let run = p
        .ok(
            &k,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["DB_PASSWORD"]})),
        )
        .await;
    assert_eq!(
        run["secrets"][0]["value"], "second-value-456",
        "the run receives the new value"
    );
    assert!(!out(&list).contains("value-"), "a listing shows a value");
    // --json shapes.
    let v = json_of(&latch(&p, &k, &["--json", "secret", "list"]).await);
    assert_eq!(v[0]["name"], "DB_PASSWORD");
    assert_eq!(v[0]["value_length"], 16);
    assert!(v[0].get("value").is_none());
    // Delete: refused without a terminal, done with --force.
    let o = latch(&p, &k, &["secret", "delete", "--team", "DB_PASSWORD"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("--force"), "{}", err(&o));
    let o = latch(
        &p,
        &k,
        &["secret", "delete", "--team", "DB_PASSWORD", "--force"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // No file and no terminal: a clear refusal.
    let o = latch(&p, &k, &["secret", "create", "--personal", "X_TOKEN"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("--value-file"), "{}", err(&o));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_members_lists_runs_audit_and_whoami() {
    let p = start().await;
    let k = p.owner.clone();
    // api-key create prints the key once, on stdout.
    let o = latch(
        &p,
        &k,
        &[
            "api-key",
            "create",
            "--name",
            "ci",
            "--team",
            "--expires",
            "30d",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let team_key = out(&o).trim().to_owned();
    assert!(team_key.starts_with("latch_t_") && team_key.len() == 54);
    assert!(err(&o).contains("shown once"));
    let v = json_of(&latch(&p, &k, &["--json", "api-key", "list"]).await);
    let listed = v.as_array().expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        !v.to_string().contains(&team_key[8..48]),
        "a listing shows a key"
    );
    let id = listed.iter().find(|k| k["name"] == "ci").expect("listed")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let table = out(&latch(&p, &k, &["api-key", "list"]).await);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("in 4 weeks") || table.contains("in 1 month"),
        "{table}"
    );
    let o = latch(&p, &k, &["api-key", "revoke", &id]).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "revoking asks for --yes without a terminal"
    );
    let o = latch(&p, &k, &["api-key", "revoke", &id, "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // A revoked key: 77 with a line saying what to do.
    let o = latch(&p, &team_key, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(77));
    assert!(
        err(&o).contains("revoked") && err(&o).contains("latch api-key create"),
        "{}",
        err(&o)
    );

    // Environments and identities.
    let o = latch(
        &p,
        &k,
        &[
            "env",
            "set",
            "ci",
            "--secrets",
            "A,B",
            "--description",
            "CI jobs",
        ],
    )
    .await;
    assert_eq!(
        out(&o),
        "set environment ci (2 secret names)\n",
        "{}",
        err(&o)
    );
    assert!(out(&latch(&p, &k, &["env", "show", "ci"]).await).contains("secrets:      A,B"));
    assert_eq!(
        json_of(&latch(&p, &k, &["--json", "env", "list"]).await)[0]["secrets"],
        json!(["A", "B"])
    );
    assert_eq!(
        latch(
            &p,
            &k,
            &["identity", "set", "deployer", "--secrets", "DEPLOY_KEY"]
        )
        .await
        .status
        .code(),
        Some(0)
    );
    assert!(out(&latch(&p, &k, &["identity", "list"]).await).contains("deployer  DEPLOY_KEY"));
    assert_eq!(
        latch(&p, &k, &["env", "delete", "ci", "--force"])
            .await
            .status
            .code(),
        Some(0)
    );
    let o = latch(&p, &k, &["env", "show", "ci"]).await;
    assert_eq!(o.status.code(), Some(66), "not found is 66: {}", err(&o));

    // Members.
    let o = latch(&p, &k, &["member", "add", "alice", "--role", "builder"]).await;
    let alice = out(&o).trim().to_owned();
    assert!(alice.starts_with("latch_p_"), "{}", err(&o));
    let me = json_of(&latch(&p, &alice, &["--json", "whoami"]).await);
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("alice"), Some("builder"))
    );
    let o = latch(&p, &alice, &["audit"]).await;
    assert_eq!(
        o.status.code(),
        Some(77),
        "builders may not read the audit log"
    );
    assert!(err(&o).contains("may not"), "{}", err(&o));
    assert_eq!(
        latch(&p, &k, &["member", "set-role", "alice", "--role", "admin"])
            .await
            .status
            .code(),
        Some(0)
    );
    assert!(out(&latch(&p, &k, &["member", "list"]).await).contains("alice  admin"));
    assert_eq!(
        latch(&p, &k, &["member", "remove", "alice", "--yes"])
            .await
            .status
            .code(),
        Some(0)
    );
    assert_eq!(latch(&p, &alice, &["whoami"]).await.status.code(), Some(77));

    // Runs and audit.
    for name in ["RUN_A", "RUN_B"] {
        p.ok(
            &k,
            Method::POST,
            "/v1/secrets",
            Some(json!({"scope": "team", "name": name, "value": "a-run-value-123"})),
        )
        .await;
    }
    let run = p.ok(&k, Method::POST, "/v1/runs", Some(json!({}))).await;
    let run_id = run["run_id"].as_str().expect("id");
    let runs = out(&latch(&p, &k, &["runs", "list"]).await);
    assert!(runs.contains(run_id) && runs.contains("started"), "{runs}");
    let delivered = run["secrets"].as_array().expect("secrets").len();
    assert!(delivered >= 2, "{run}");
    let row: Vec<&str> = runs
        .lines()
        .find(|l| l.starts_with(run_id))
        .expect("the run's row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[1..],
        [
            "just",
            "now",
            "bootstrap",
            "(owner)",
            "cli",
            "-",
            "-",
            "started",
            "-",
            "-",
            "0"
        ],
        "ID STARTED WHO TRIGGER ENV IDENTITY STATUS EXIT DURATION MASKED: {runs}"
    );
    let shown = json_of(&latch(&p, &k, &["--json", "runs", "show", run_id]).await);
    assert_eq!(shown["id"], run_id);
    let audit = out(&latch(&p, &k, &["audit", "--limit", "50"]).await);
    for action in [
        "api_key.create",
        "api_key.revoke",
        "member.add",
        "run.start",
        "environment.put",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
    let who = out(&latch(&p, &k, &["whoami"]).await);
    assert!(who.contains("role:       owner"), "{who}");
    assert!(who.contains("capability: manage"), "{who}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_and_connection_exit_codes() {
    let p = start().await;
    let k = p.owner.clone();
    // 78: no URL, a mistyped key, plain http to a remote host.
    let o = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_latch"))
            .arg("whoami")
            .env_remove("LATCH_URL")
            .env("LATCH_API_KEY", "x")
            .output()
            .expect("runs")
    })
    .await
    .expect("joins");
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    assert!(err(&o).contains("LATCH_URL"));
    let mut typo = k.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let o = latch(&p, &typo, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(77), "caught offline: {}", err(&o));
    assert!(
        err(&o).contains("checksum") && !err(&o).contains(&typo[8..]),
        "{}",
        err(&o)
    );
    let o = latch_at("http://latch.example.com", &k, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(78));
    assert!(err(&o).contains("https"), "{}", err(&o));
    // 69: nothing listens.
    let o = latch_at("http://127.0.0.1:9", &k, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(69), "{}", err(&o));
    // 77: a well-formed key the platform does not know.
    let unknown = {
        use rand::SeedableRng;
        let Ok(key) = latch::core::apikey::ApiKey::generate(
            latch::core::apikey::KeyKind::Personal,
            &mut rand::rngs::StdRng::seed_from_u64(99),
        );
        key.expose().to_owned()
    };
    let o = latch(&p, &unknown, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(77), "{}", err(&o));
    // --api-key-file: the key read from a file (a trailing newline is fine).
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("key");
    std::fs::write(&file, format!("{k}\n")).expect("writes");
    let o = latch(
        &p,
        "",
        &["--api-key-file", file.to_str().expect("utf8"), "whoami"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = latch(&p, "", &["--api-key-file", "/nonexistent/key", "whoami"]).await;
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    // --api-key works, with a warning.
    let o = latch(&p, "", &["--api-key", &k, "whoami"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("prefer LATCH_API_KEY"));
    assert!(!err(&o).contains(&k[8..]), "the warning shows the key");
    p.stop().await;
}

#[test]
fn shell_completions() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(0));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            script.contains("api-key") && script.contains("secret"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scrub_run_masks_the_values_of_a_resolved_run_and_reports_its_end() {
    let p = start().await;
    let k = p.owner.clone();
    p.ok(
        &k,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "DB_URL", "value": "postgres://u:pw-123456@db/x"})),
    )
    .await;
    let (url, key) = (p.url.clone(), k.clone());
    let o = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["scrub", "--run", "--secrets", "DB_URL,NOPE"])
            .env("LATCH_URL", url)
            .env("LATCH_API_KEY", key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"connecting to postgres://u:pw-123456@db/x\n")
            .expect("writes");
        drop(stdin);
        child.wait_with_output().expect("waits")
    })
    .await
    .expect("joins");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "connecting to [MASKED:DB_URL]\n");
    assert!(
        err(&o).contains("NOPE is not delivered (not_found)"),
        "{}",
        err(&o)
    );
    assert!(!err(&o).contains("pw-123456"));
    let runs = p.ok(&k, Method::GET, "/v1/runs", None).await["runs"].clone();
    let run = &runs[0];
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["outcome"]["masked"]["DB_URL"], 1);
    // Without an API key: a configuration error, nothing read.
    let o = latch_at(&p.url, "", &["scrub", "--run"]).await;
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    p.stop().await;
}
