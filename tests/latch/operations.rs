//! What a security lead and an operator rely on (DESIGN §4, §8, §9, §10): authentication that
//! slows only failures, the audit log, paging and filters, `If-Match`, metrics, the request
//! log, the bootstrap order and file modes. Real HTTP against an in-process platform, and the
//! real `latch serve` where a process must start, fail or log.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Platform, start, start_behind_proxy};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A well-formed key (its checksum right) with `id`'s kind and id and another secret: what an
/// attacker who read a key id in a listing could send.
fn forged(of: &str, n: usize) -> String {
    let head = &of[..16]; // `latch_p_` and the 8-character id
    let secret: String = (0..32)
        .map(|i| char::from(BASE62[(i * 7 + n) % 62]))
        .collect();
    let body = format!("{head}{secret}");
    let mut crc = u64::from(crc32fast::hash(body.as_bytes()));
    let mut sum = [b'0'; 6];
    for digit in sum.iter_mut().rev() {
        *digit = BASE62[usize::try_from(crc % 62).expect("small")];
        crc /= 62;
    }
    format!("{body}{}", String::from_utf8_lossy(&sum))
}

/// `GET /v1/whoami` with `key` as if from `addr` (the platform trusts loopback as a proxy).
async fn whoami_from(http: &Client, p: &Platform, key: &str, addr: &str) -> reqwest::Response {
    http.get(format!("{}/v1/whoami", p.url))
        .bearer_auth(key)
        .header("x-forwarded-for", addr)
        .header("user-agent", "ops-test/1")
        .send()
        .await
        .expect("answers")
}

/// The audit events of `action` (a prefix), polled until `want` of them are there (failed
/// authentications are written within a second, aggregated).
async fn events(p: &Platform, action: &str, want: usize) -> Vec<Value> {
    for _ in 0..50 {
        let page = p
            .ok(
                &p.owner,
                Method::GET,
                &format!("/v1/audit?action={action}&limit=500"),
                None,
            )
            .await;
        let found = page["events"].as_array().expect("events").clone();
        if found.len() >= want {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {want} `{action}` events");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_key_is_served_whatever_its_address_or_its_key_id_did() {
    let p = start_behind_proxy().await;
    let http = Client::new();
    // 25 bad keys from one address (a CI fleet behind one NAT): its failures are slowed...
    let mut statuses = Vec::new();
    for n in 0..25 {
        let bad = forged(&format!("latch_p_Zz{n:06}"), n);
        statuses.push(whoami_from(&http, &p, &bad, "198.51.100.1").await.status());
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let limited = whoami_from(&http, &p, "latch_p_nonsense", "198.51.100.1").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("s");
    assert!((1..=60).contains(&wait), "{wait}");
    // ...but the valid key behind the same address is served at once.
    assert_eq!(
        whoami_from(&http, &p, &p.owner, "198.51.100.1")
            .await
            .status(),
        StatusCode::OK
    );
    // 25 forged keys with the owner's key id, from another address: the owner is never locked
    // out, from anywhere.
    for n in 0..25 {
        whoami_from(&http, &p, &forged(&p.owner, n), "203.0.113.50").await;
    }
    for addr in ["203.0.113.50", "192.0.2.77"] {
        assert_eq!(
            whoami_from(&http, &p, &p.owner, addr).await.status(),
            StatusCode::OK,
            "{addr}"
        );
    }
    // The audit log has both floods, aggregated (at most one event a second per address),
    // with the client address, the reasons and the key id that was tried.
    let failed = events(&p, "auth.failed", 2).await;
    let from = |addr: &str| -> u64 {
        failed
            .iter()
            .filter(|e| e["client_address"] == addr)
            .map(|e| e["detail"]["count"].as_u64().expect("count"))
            .sum()
    };
    for _ in 0..30 {
        if from("203.0.113.50") == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = events(&p, "auth.failed", 2).await;
    let from = |addr: &str| -> (u64, usize) {
        let mine: Vec<&Value> = failed
            .iter()
            .filter(|e| e["client_address"] == addr)
            .collect();
        (
            mine.iter()
                .map(|e| e["detail"]["count"].as_u64().expect("count"))
                .sum(),
            mine.len(),
        )
    };
    let (count, written) = from("198.51.100.1");
    assert_eq!(count, 26, "{failed:?}");
    assert!(written <= 5, "aggregated: {written} events");
    let owner_id = &p.owner[8..16];
    let forged_events: Vec<&Value> = failed
        .iter()
        .filter(|e| e["client_address"] == "203.0.113.50")
        .collect();
    assert_eq!(
        forged_events
            .iter()
            .map(|e| e["detail"]["count"].as_u64().expect("n"))
            .sum::<u64>(),
        25
    );
    assert_eq!(
        forged_events[0]["detail"]["reasons"],
        json!({"wrong_secret": forged_events[0]["detail"]["count"]})
    );
    assert_eq!(forged_events[0]["detail"]["key_ids"], json!([owner_id]));
    assert_eq!(forged_events[0]["user_agent"], "ops-test/1");
    assert_eq!(forged_events[0]["outcome"], "failed");
    // Without a trusted proxy, X-Forwarded-For is not believed.
    let plain = start().await;
    for _ in 0..21 {
        whoami_from(&http, &plain, "latch_p_nonsense", &format!("10.0.0.{}", 1)).await;
    }
    let limited = whoami_from(&http, &plain, "latch_p_nonsense", "10.9.9.9").await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "all from 127.0.0.1"
    );
    plain.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive() {
    let p = start().await;
    let http = Client::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = http
            .get(format!("{}/v1/whoami", p.url))
            .header("authorization", format!("{scheme} {}", p.owner))
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
    let r = http
        .get(format!("{}/v1/whoami", p.url))
        .header("authorization", format!("Basic {}", p.owner))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn denials_refusals_and_key_creations_are_audited_with_who_and_from_where() {
    let p = start_behind_proxy().await;
    let owner = p.owner.clone();
    let added = p
        .ok(
            &owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "bree", "role": "builder"})),
        )
        .await;
    let bree = added["key"]["key"].as_str().expect("key").to_owned();
    let http = Client::new();
    // A denial: a builder reads the audit log.
    let r = http
        .get(format!("{}/v1/audit", p.url))
        .bearer_auth(&bree)
        .header("x-forwarded-for", "198.51.100.23")
        .header("user-agent", "curl/8.5")
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let denied = events(&p, "request.denied", 1).await;
    let d = &denied[0];
    assert_eq!(d["outcome"], "denied");
    assert_eq!(d["actor"], "bree");
    assert_eq!(d["target"], "GET /v1/audit");
    assert_eq!(d["detail"]["permission"], "read_audit");
    assert_eq!(d["detail"]["code"], "forbidden");
    assert_eq!(
        (&d["client_address"], &d["user_agent"]),
        (&json!("198.51.100.23"), &json!("curl/8.5"))
    );
    // A refused run: a team key claims a person's trigger.
    let team_key = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "bot", "kind": "team", "expires": "30d"})),
        )
        .await;
    let bot = team_key["key"].as_str().expect("key").to_owned();
    let (status, _) = p
        .call(
            &bot,
            Method::POST,
            "/v1/runs",
            Some(json!({"trigger": "cli"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let refused = p
        .ok(
            &owner,
            Method::GET,
            "/v1/audit?action=run.&outcome=refused",
            None,
        )
        .await;
    let r = &refused["events"][0];
    assert_eq!(r["detail"]["code"], "trigger_requires_user", "{r}");
    assert_eq!(r["on_behalf_of"], "owner");
    assert_eq!(r["capability"], "run");
    // The key creation names kind, capability, identity and expiry; the member's addition the
    // enrolment key, which expires in 7 days by default.
    let created = p
        .ok(&owner, Method::GET, "/v1/audit?action=api_key.create", None)
        .await;
    let c = &created["events"][0]["detail"];
    assert_eq!(
        (&c["kind"], &c["capability"], &c["identity"]),
        (&json!("team"), &json!("run"), &Value::Null)
    );
    let expires = c["expires_at"].as_i64().expect("expiry");
    let at = created["events"][0]["at"].as_i64().expect("at");
    // In whole days, rounded: the event's time is read a moment after the key's expiry is set
    // (a floor made this fail at random when the two fell in different milliseconds).
    assert_eq!(days(expires - at), 30);
    let added_event = p
        .ok(&owner, Method::GET, "/v1/audit?action=member.add", None)
        .await;
    let a = &added_event["events"][0]["detail"];
    assert_eq!(a["key_id"], added["key"]["info"]["id"]);
    let enrolment = days(
        a["expires_at"].as_i64().expect("expiry")
            - added_event["events"][0]["at"].as_i64().expect("at"),
    );
    assert_eq!(enrolment, 7);
    // A default key expires in 90 days; revocation names the key.
    let k = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "laptop", "kind": "personal"})),
        )
        .await;
    let lifetime = days(
        k["info"]["expires_at"].as_i64().expect("e") - k["info"]["created_at"].as_i64().expect("c"),
    );
    assert_eq!(lifetime, 90);
    let id = k["info"]["id"].as_str().expect("id");
    p.ok(&owner, Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    let revoked = p
        .ok(&owner, Method::GET, "/v1/audit?action=api_key.revoke", None)
        .await;
    assert_eq!(revoked["events"][0]["detail"]["name"], "laptop");
    // Environment writes say the names before and after: `null` is no list, `[]` none.
    p.ok(
        &owner,
        Method::PUT,
        "/v1/environments/open",
        Some(json!({})),
    )
    .await;
    p.ok(
        &owner,
        Method::PUT,
        "/v1/environments/open",
        Some(json!({"secrets": []})),
    )
    .await;
    let puts = p
        .ok(
            &owner,
            Method::GET,
            "/v1/audit?action=environment.put",
            None,
        )
        .await;
    let latest = &puts["events"][0]["detail"];
    assert_eq!(
        (&latest["before"], &latest["secrets"]),
        (&Value::Null, &json!([]))
    );
    assert_eq!(puts["events"][1]["detail"]["created"], true);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_and_runs_page_with_cursors_and_filter() {
    let p = start().await;
    let owner = p.owner.clone();
    for i in 0..120 {
        p.ok(
            &owner,
            Method::PUT,
            &format!("/v1/environments/e{i}"),
            Some(json!({"secrets": []})),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/audit?action=environment.put&limit=50".to_owned();
    let mut pages = 0;
    loop {
        let page = p.ok(&owner, Method::GET, &path, None).await;
        pages += 1;
        for e in page["events"].as_array().expect("events") {
            seen.push(e["id"].as_i64().expect("id"));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/audit?action=environment.put&limit=50&cursor={c}"),
            None => break,
        }
        assert!(pages < 5, "bounded");
    }
    assert_eq!(seen.len(), 120, "each once");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(pages, 3);
    for (query, code) in [
        ("limit=0", "invalid_query"),
        ("limit=501", "invalid_query"),
        ("cursor=bm9wZQ", "invalid_cursor"),
        ("nope=1", "invalid_query"),
    ] {
        let (status, v) = p
            .call(&owner, Method::GET, &format!("/v1/audit?{query}"), None)
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{query}: {v}"
        );
    }
    // A runs cursor is no audit cursor.
    let since = p.ok(&owner, Method::GET, "/v1/audit?limit=1", None).await["events"][0]["at"]
        .as_i64()
        .expect("at");
    let (status, _) = p
        .call(
            &owner,
            Method::GET,
            &format!("/v1/audit?since={}&until={}", since + 1, since + 2),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Runs: by status, identity, environment, key, user; the CLI passes the filters.
    p.ok(
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "DEPLOY_KEY", "value": "deploy-value-123"})),
    )
    .await;
    p.ok(
        &owner,
        Method::PUT,
        "/v1/identities/deployer",
        Some(json!({"secrets": ["DEPLOY_KEY"]})),
    )
    .await;
    let bot = p
        .ok(
            &owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "deploy", "kind": "team", "identity": "deployer"})),
        )
        .await;
    let bot = bot["key"].as_str().expect("key").to_owned();
    p.ok(
        &bot,
        Method::POST,
        "/v1/runs",
        Some(json!({"environment": "e1"})),
    )
    .await;
    let (status, _) = p
        .call(
            &bot,
            Method::POST,
            "/v1/runs",
            Some(json!({"required": ["NOPE"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    p.ok(&owner, Method::POST, "/v1/runs", Some(json!({})))
        .await;
    let count = |q: &'static str| {
        let p = &p;
        async move {
            p.ok(&p.owner, Method::GET, &format!("/v1/runs?{q}"), None)
                .await["runs"]
                .as_array()
                .expect("runs")
                .len()
        }
    };
    assert_eq!(count("").await, 3);
    assert_eq!(count("status=refused").await, 1);
    assert_eq!(count("identity=deployer").await, 2);
    assert_eq!(count("status=refused&identity=deployer").await, 1);
    assert_eq!(count("environment=e1").await, 1);
    assert_eq!(count("user=owner").await, 1);
    let o = crate::privilege::cli(
        &p,
        &owner,
        &[
            "runs",
            "list",
            "--status",
            "refused",
            "--identity",
            "deployer",
        ],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(table.lines().count(), 2, "a header and one run: {table}");
    assert!(
        table.contains("refused") && table.contains("deployer"),
        "{table}"
    );
    let o = crate::privilege::cli(
        &p,
        &owner,
        &[
            "audit",
            "--action",
            "environment.",
            "--since",
            "1d",
            "--limit",
            "5",
        ],
    )
    .await;
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(table.lines().count(), 6, "{table}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("more events: --cursor "),
        "paging is offered"
    );
    let o = crate::privilege::cli(&p, &owner, &["audit", "--outcome", "denied"]).await;
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        1,
        "no denials yet: only the header"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_refuses_a_stale_write_and_reads_carry_etags() {
    let p = start().await;
    let owner = p.owner.clone();
    let http = Client::new();
    let put = |path: &str, body: Value, etag: Option<&str>| {
        let mut r = http
            .put(format!("{}{path}", p.url))
            .bearer_auth(&owner)
            .json(&body);
        if let Some(tag) = etag {
            r = r.header("if-match", tag);
        }
        r.send()
    };
    let first = put("/v1/environments/ci", json!({"secrets": ["A"]}), None)
        .await
        .expect("answers");
    assert_eq!(first.headers()["etag"], "\"1\"");
    let read = http
        .get(format!("{}/v1/environments/ci", p.url))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("answers");
    let tag = read.headers()["etag"].to_str().expect("text").to_owned();
    // Someone else writes meanwhile.
    put("/v1/environments/ci", json!({"secrets": ["B"]}), None)
        .await
        .expect("answers");
    let stale = put("/v1/environments/ci", json!({"secrets": ["C"]}), Some(&tag))
        .await
        .expect("answers");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = stale.json().await.expect("json");
    assert_eq!(body["code"], "precondition_failed");
    let now = p.ok(&owner, Method::GET, "/v1/environments/ci", None).await;
    assert_eq!(
        (now["secrets"].clone(), now["revision"].clone()),
        (json!(["B"]), json!(2)),
        "nothing written"
    );
    let fresh = put(
        "/v1/environments/ci",
        json!({"secrets": ["C"]}),
        Some("\"2\""),
    )
    .await
    .expect("answers");
    assert_eq!(
        (fresh.status(), fresh.headers()["etag"].to_str().expect("t")),
        (StatusCode::OK, "\"3\"")
    );
    let star = put("/v1/environments/none-yet", json!({}), Some("*"))
        .await
        .expect("answers");
    assert_eq!(
        star.status(),
        StatusCode::PRECONDITION_FAILED,
        "* needs it to exist"
    );
    let bad = put("/v1/environments/ci", json!({}), Some("garbage"))
        .await
        .expect("answers");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // Secrets: one secret's metadata with its ETag; a stale PATCH is refused.
    p.ok(
        &owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "DB_URL", "value": "postgres://x"})),
    )
    .await;
    let one = http
        .get(format!("{}/v1/secrets/team/DB_URL", p.url))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("answers");
    assert_eq!(one.headers()["etag"], "\"1\"");
    let info: Value = one.json().await.expect("json");
    assert_eq!(
        (info["name"].clone(), info.get("value")),
        (json!("DB_URL"), None),
        "never the value"
    );
    let patch = |tag: &'static str, d: &'static str| {
        http.patch(format!("{}/v1/secrets/team/DB_URL", p.url))
            .bearer_auth(&owner)
            .header("if-match", tag)
            .json(&json!({"description": d}))
            .send()
    };
    assert_eq!(
        patch("\"1\"", "one").await.expect("answers").status(),
        StatusCode::OK
    );
    assert_eq!(
        patch("\"1\"", "two").await.expect("answers").status(),
        StatusCode::PRECONDITION_FAILED
    );
    // The CLI reads first and writes with If-Match; it keeps the description it did not name.
    p.ok(
        &owner,
        Method::PUT,
        "/v1/environments/kept",
        Some(json!({"secrets": [], "description": "staging"})),
    )
    .await;
    let o = crate::privilege::cli(&p, &owner, &["env", "set", "kept", "--secrets", "DB_URL"]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let kept = p
        .ok(&owner, Method::GET, "/v1/environments/kept", None)
        .await;
    assert_eq!(
        (kept["description"].clone(), kept["secrets"].clone()),
        (json!("staging"), json!(["DB_URL"]))
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_have_every_family() {
    let p = start().await;
    p.ok(
        &p.owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "S", "value": "value-12345"})),
    )
    .await;
    p.ok(&p.owner, Method::POST, "/v1/runs", Some(json!({})))
        .await;
    let http = Client::new();
    http.get(format!("{}/v1/whoami", p.url))
        .bearer_auth("latch_p_nonsense")
        .send()
        .await
        .expect("answers");
    let r = http
        .get(format!("{}/metrics", p.url))
        .send()
        .await
        .expect("answers");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("t")
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.expect("text");
    for family in [
        r#"latch_http_requests_total{method="POST",route="/v1/runs",status="201"} 1"#,
        "latch_http_request_duration_seconds_bucket{",
        r#"latch_runs_total{reason="delivered"} 1"#,
        "latch_deliveries_total 1",
        r#"latch_auth_failures_total{reason="unknown_key"} 1"#,
        "latch_rate_limited_total 0",
        "latch_database_errors_total 0",
        "latch_run_record_batch_size_count 1",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert!(!text.contains(&p.owner) && !text.contains("value-12345"));
    p.stop().await;
}

/// Starts the real `latch serve` with `args`, its stderr piped; with `umask` set first.
fn serve(args: &[&str], umask: u32) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command
        .arg("serve")
        .args(args)
        .env_remove("LATCH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: umask is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
            Ok(())
        });
    }
    command.spawn().expect("starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_start_loses_no_key_and_files_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf8").to_owned();
    // The port is busy: nothing is bootstrapped, no key printed.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = busy.local_addr().expect("addr").to_string();
    let o = tokio::task::spawn_blocking({
        let (data_arg, port) = (data_arg.clone(), port.clone());
        move || {
            serve(&["--data-dir", &data_arg, "--listen", &port], 0o022)
                .wait_with_output()
                .expect("ends")
        }
    })
    .await
    .expect("joins");
    assert_ne!(o.status.code(), Some(0));
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        !out.contains("latch_p_") && !err.contains("latch_p_"),
        "no key: {out} {err}"
    );
    assert!(err.contains("cannot listen on"), "{err}");
    drop(busy);
    // Bad TLS files: the same.
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").expect("writes");
    let o = tokio::task::spawn_blocking({
        let (data_arg, bogus) = (data_arg.clone(), bogus.to_str().expect("utf8").to_owned());
        move || {
            serve(
                &[
                    "--data-dir",
                    &data_arg,
                    "--listen",
                    "127.0.0.1:0",
                    "--tls-cert",
                    &bogus,
                    "--tls-key",
                    &bogus,
                ],
                0o022,
            )
            .wait_with_output()
            .expect("ends")
        }
    })
    .await
    .expect("joins");
    assert_ne!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("latch_p_"));
    // The next start bootstraps (the database stayed empty), and at -v logs each request with
    // its key id, never the key.
    let mut child = serve(
        &["-v", "--data-dir", &data_arg, "--listen", "127.0.0.1:0"],
        0o022,
    );
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut key = String::new();
    stdout.read_line(&mut key).expect("reads");
    let key = key.trim().to_owned();
    assert!(key.starts_with("latch_p_"), "{key}");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut boot = Vec::new();
    let url = loop {
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("starts");
        if let Some(url) = line.strip_prefix("latch: note: listening on ") {
            break url.to_owned();
        }
        boot.push(line);
    };
    let boot = boot.join("\n");
    assert!(
        boot.contains("is inside the data directory: move it away"),
        "{boot}"
    );
    assert!(
        boot.contains("never expires") && boot.contains("revoke it"),
        "{boot}"
    );
    let who = Client::new()
        .get(format!("{url}/v1/whoami"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("answers");
    assert_eq!(who.status(), StatusCode::OK);
    let logged = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a request line");
        if line.contains("/v1/whoami") {
            break line;
        }
    };
    assert!(
        logged.contains("GET /v1/whoami 200") && logged.contains(&format!("key={}", &key[8..16])),
        "{logged}"
    );
    assert!(logged.contains("client=127.0.0.1"), "{logged}");
    assert!(!logged.contains(&key), "never the key: {logged}");
    // Owner-only, though the umask was 022.
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for file in ["latch.db", "latch.db-wal", "root.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = tokio::task::spawn_blocking(move || child.wait().expect("waits"))
        .await
        .expect("joins");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_follow_prints_new_events_as_they_happen() {
    let p = start().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["audit", "--follow", "--action", "environment.", "--json"])
        .env("LATCH_URL", &p.url)
        .env("LATCH_API_KEY", &p.owner)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    for i in 0..3 {
        p.ok(
            &p.owner,
            Method::PUT,
            &format!("/v1/environments/followed-{i}"),
            Some(json!({})),
        )
        .await;
    }
    let mut targets = Vec::new();
    while targets.len() < 3 {
        let line = tokio::task::block_in_place(|| lines.recv_timeout(Duration::from_secs(20)))
            .expect("an event");
        let event: Value = serde_json::from_str(&line).expect("one JSON object a line");
        targets.push(event["target"].as_str().expect("target").to_owned());
    }
    assert_eq!(
        targets,
        ["followed-0", "followed-1", "followed-2"],
        "oldest first"
    );
    let _ = child.kill();
    let _ = child.wait();
    p.stop().await;
}

/// Regression (issue 19): what the API document promises about fields and parameters is what
/// the server accepts, at the edges schemathesis found: filters outside their enum, cursors of
/// the documented shape whatever their numbers, key names and descriptions counted in
/// characters, no leading zero in a duration.
#[tokio::test]
async fn the_documented_constraints_are_the_ones_the_server_applies() {
    let p = start().await;
    let k = p.owner.clone();
    for (path, want) in [
        ("/v1/runs?status=null", 400),
        ("/v1/runs?status=", 400),
        ("/v1/runs?status=exec", 200),
        ("/v1/audit?outcome=bogus", 400),
        ("/v1/audit?outcome=denied", 200),
        ("/v1/runs?cursor=abc", 400),
        ("/v1/runs?cursor=", 400),
        (
            "/v1/runs?cursor=9999999999999999999.run_0123456789abcdef0123456789abcdef",
            200,
        ),
        ("/v1/audit?cursor=9999999999999999999", 200),
        ("/v1/audit?cursor=-1", 400),
    ] {
        let (got, body) = p.call(&k, Method::GET, path, None).await;
        assert_eq!(got.as_u16(), want, "{path}: {body}");
        if want == 400 {
            assert!(
                body["code"] == "invalid_query" || body["code"] == "invalid_cursor",
                "{body}"
            );
        }
    }
    let key = |name: String| json!({"name": name, "kind": "personal", "expires": "1d"});
    for (name, want) in [
        (" ci".to_owned(), 400),
        ("ci ".to_owned(), 400),
        ("   ".to_owned(), 400),
        ("c\u{7}i".to_owned(), 400),
        ("é".repeat(100), 201),
        ("é".repeat(101), 400),
        ("a laptop".to_owned(), 201),
    ] {
        let (got, body) = p
            .call(&k, Method::POST, "/v1/api-keys", Some(key(name.clone())))
            .await;
        assert_eq!(got.as_u16(), want, "{name:?}: {body}");
    }
    for (expires, want) in [
        ("010d", 400),
        ("10d", 201),
        ("0s", 400),
        ("100y", 201),
        ("101y", 400),
    ] {
        let body = json!({"name": "k", "kind": "personal", "expires": expires});
        let (got, answer) = p.call(&k, Method::POST, "/v1/api-keys", Some(body)).await;
        assert_eq!(got.as_u16(), want, "{expires}: {answer}");
    }
    for (n, want) in [(1024, 201), (1025, 400)] {
        let body = json!({"scope": "team", "name": format!("D{n}"), "value": "a-long-enough-value", "description": "é".repeat(n)});
        let (got, answer) = p.call(&k, Method::POST, "/v1/secrets", Some(body)).await;
        assert_eq!(got.as_u16(), want, "{n}: {answer}");
    }
    p.stop().await;
}

/// Milliseconds in whole days, rounded to the nearest day.
fn days(ms: i64) -> i64 {
    (ms + 43_200_000).div_euclid(86_400_000)
}
