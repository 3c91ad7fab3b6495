//! The web app end to end in Chromium (DESIGN §12): sign-in, the secret pane with the value
//! sealed in the browser, environments with the diff and `If-Match`, API keys shown once,
//! a builder's pages, runs and the audit log; CSP and console clean on every page, keyboard-only
//! flows, no horizontal scroll at 390 px, screenshots at 1280 and 390 px.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Platform, start};
use crate::web::{Browser, browser, member};

/// The main pages, for the narrow-screen pass and the screenshots.
const PAGES: [(&str, &str); 9] = [
    ("secrets", "/ui/secrets"),
    ("secret-new", "/ui/secrets/new"),
    ("environments", "/ui/environments"),
    ("identities", "/ui/identities"),
    ("runs", "/ui/runs"),
    ("audit", "/ui/audit"),
    ("account", "/ui/settings/account"),
    ("members", "/ui/settings/members"),
    ("api-keys", "/ui/settings/api-keys"),
];

/// What the secret tests type into the browser.
const VALUE: &str = "sk-typed-in-browser-Zq81vKp0aLmN2pQ7";
const ROTATED: &str = "sk-rotated-in-browser-Hj3bN6cV1xZ5mA0q";

async fn seeded() -> Platform {
    let p = start().await;
    let owner = p.owner.clone();
    for (scope, name, value, description) in [
        (
            "team",
            "DATABASE_URL",
            "postgres://app:pw@db/prod",
            "the production database",
        ),
        (
            "team",
            "OPENAI_API_KEY",
            "sk-proj-seeded-0123456789abcdef",
            "model access for agents",
        ),
        (
            "personal",
            "GITHUB_TOKEN",
            "ghp_seededPersonalToken012345",
            "",
        ),
    ] {
        p.ok(
            &owner,
            Method::POST,
            "/v1/secrets",
            Some(json!({"scope": scope, "name": name, "value": value, "description": description})),
        )
        .await;
    }
    p.ok(
        &owner,
        Method::PUT,
        "/v1/environments/ci",
        Some(json!({"secrets": ["DATABASE_URL", "OPENAI_API_KEY"], "description": "CI jobs"})),
    )
    .await;
    p.ok(
        &owner,
        Method::PUT,
        "/v1/identities/deployer",
        Some(json!({"secrets": ["DATABASE_URL"], "description": "the deploy agent"})),
    )
    .await;
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_takes_a_personal_manage_key_and_refuses_the_rest() {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    // Not signed in: any page leads to the sign-in page, and back after it.
    b.open("/ui/environments").await;
    assert!(
        b.path()
            .await
            .starts_with("/ui/login?next=%2Fui%2Fenvironments"),
        "{}",
        b.path().await
    );
    b.assert_clean_console(&[]).await;
    b.shot("login-1280").await;

    // A wrong key: said inline, 401.
    b.fill(
        "#key",
        "latch_p_AAAAAAAAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb000000",
    )
    .await;
    b.submit("button[type=submit]").await;
    let error = b.text("#form-error").await;
    assert!(
        error.contains("not valid") || error.contains("checksum"),
        "{error}"
    );
    assert_eq!(
        b.find("#key")
            .await
            .prop("value")
            .await
            .expect("value")
            .as_deref(),
        Some("")
    );
    // A team key, and a run-only personal key: refused, each with the reason.
    for (body, reason) in [
        (
            json!({"name": "bot", "kind": "team", "capability": "manage"}),
            "team key cannot sign in",
        ),
        (
            json!({"name": "agent", "kind": "personal", "capability": "run"}),
            "run-only key cannot sign in",
        ),
    ] {
        let created = p
            .ok(&p.owner, Method::POST, "/v1/api-keys", Some(body))
            .await;
        b.fill("#key", created["key"].as_str().expect("key")).await;
        b.submit("button[type=submit]").await;
        let error = b.text("#form-error").await;
        assert!(error.contains(reason), "{error}");
    }
    b.assert_clean_console(&[401, 403]).await;

    // The owner's key, by keyboard alone, back to where they were going.
    b.find("#key").await.clear().await.expect("clears");
    b.sign_in_here(&p.owner).await;
    assert_eq!(b.path().await, "/ui/environments");
    assert_eq!(
        b.js("return document.cookie").await,
        json!(""),
        "the cookie is HttpOnly"
    );
    // Browser storage holds nothing but htmx's note of the current path (its history cache is
    // off): never a key.
    let stored = b
        .js("return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
        .await;
    let stored = stored.as_str().unwrap_or_default().to_owned();
    assert!(!stored.contains("latch_"), "{stored}");
    let keys = b
        .js("return Object.keys(localStorage).concat(Object.keys(sessionStorage).filter(k => k !== 'htmx-current-path-for-history'))")
        .await;
    assert_eq!(keys, json!([]), "{stored}");
    assert!(
        !b.client.source().await.expect("source").contains(&p.owner),
        "the key is not in the page"
    );
    b.assert_clean_console(&[]).await;

    // The audit log has the sign-ins and the failures.
    let events = p
        .ok(&p.owner, Method::GET, "/v1/audit?action=ui.", None)
        .await;
    let actions: Vec<(&str, &str)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(actions.contains(&("ui.login", "ok")), "{actions:?}");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == ("ui.login", "refused"))
            .count(),
        2,
        "{actions:?}"
    );

    // Signing out ends the session: the page needs a new sign-in.
    b.open("/ui/settings/account").await;
    b.submit("form[action='/ui/logout'] button[type=submit]")
        .await;
    assert!(b.path().await.starts_with("/ui/login"));
    b.open("/ui/secrets").await;
    assert!(b.path().await.starts_with("/ui/login"));
    b.assert_clean_console(&[]).await;
    b.finish().await;
    p.stop().await;
}

/// Every request Chromium made, as its performance log recorded it: URL, headers and body.
async fn requests(b: &Browser) -> String {
    let mut all = String::new();
    for entry in b.log("performance").await {
        let Ok(message) = serde_json::from_str::<Value>(entry["message"].as_str().unwrap_or("{}"))
        else {
            continue;
        };
        if message["message"]["method"] == "Network.requestWillBeSent" {
            all.push_str(&message["message"]["params"]["request"].to_string());
            all.push('\n');
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_added_edited_and_deleted_in_the_pane_and_its_value_never_leaves_the_browser_in_plain_text()
 {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    b.sign_in(&p.owner).await;
    b.open("/ui/secrets").await;
    b.shot("secrets-1280").await;
    b.log("performance").await; // what came before is not this test's

    // Add, by keyboard alone: the Add link, then the form's fields in order.
    b.tab_to("a.button[href='/ui/secrets/new']").await;
    let before = b.js("return performance.timeOrigin").await;
    b.keys("\u{E007}").await;
    b.wait_navigated(&before).await;
    b.tab_to("#name").await;
    b.keys("STRIPE_KEY").await;
    b.tab_to("#value").await;
    b.keys(VALUE).await;
    b.tab_to("#description").await;
    b.keys("payments <b>sandbox</b>").await;
    let before = b.js("return performance.timeOrigin").await;
    b.keys("\u{E007}").await;
    b.wait_navigated(&before).await;
    assert!(
        b.path().await.starts_with("/ui/secrets?q=STRIPE_KEY"),
        "{}",
        b.path().await
    );
    let row = b.text("#results tbody").await;
    assert!(
        row.contains("STRIPE_KEY") && row.contains("payments <b>sandbox</b>"),
        "{row}"
    );
    assert!(!b.client.source().await.expect("source").contains(VALUE));

    // The value crossed no request in plain text (nor base64 of it), and the platform stored
    // exactly it: a run receives what was typed.
    let sent = requests(&b).await;
    assert!(
        sent.contains("sealed_value"),
        "the form sent a sealed value: {sent}"
    );
    assert!(!sent.contains(VALUE), "the typed value was in a request");
    assert!(
        !sent.contains("sk-typed-in-browser"),
        "part of the value was in a request"
    );
    let run = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["STRIPE_KEY"]})),
        )
        .await;
    assert_eq!(run["secrets"][0]["value"], VALUE);
    let created = p
        .ok(
            &p.owner,
            Method::GET,
            "/v1/audit?action=secret.create",
            None,
        )
        .await;
    assert_eq!(created["events"][0]["detail"]["sealed"], true);

    // A refused name keeps name and description, never the value, and says why.
    b.open("/ui/secrets/new").await;
    b.fill("#name", "LD_PRELOAD").await;
    b.fill("#value", "whatever-value-123").await;
    b.fill("#description", "kept after the error").await;
    b.submit("form[data-seal] button[type=submit]").await;
    assert!(
        b.text("#form-error").await.contains("load code"),
        "{}",
        b.text("#form-error").await
    );
    assert_eq!(
        b.find("#name")
            .await
            .prop("value")
            .await
            .expect("v")
            .as_deref(),
        Some("LD_PRELOAD")
    );
    assert_eq!(
        b.find("#description")
            .await
            .prop("value")
            .await
            .expect("v")
            .as_deref(),
        Some("kept after the error")
    );
    assert_eq!(
        b.find("#value")
            .await
            .prop("value")
            .await
            .expect("v")
            .as_deref(),
        Some("")
    );
    assert!(b.text("#form-error").await.contains("not kept"));
    b.assert_clean_console(&[422]).await;

    // Edit: a new value (sealed again), then the run gets it.
    b.open("/ui/secrets/team/STRIPE_KEY").await;
    b.fill("#value", ROTATED).await;
    b.submit("form[data-seal] button[type=submit]").await;
    let run = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": ["STRIPE_KEY"]})),
        )
        .await;
    assert_eq!(run["secrets"][0]["value"], ROTATED);
    let sent = requests(&b).await;
    assert!(!sent.contains(ROTATED) && !sent.contains("sk-rotated-in-browser"));

    // Delete by typing the name: the button waits for it.
    b.open("/ui/secrets/team/STRIPE_KEY/delete").await;
    assert!(
        !b.find("button.danger")
            .await
            .is_enabled()
            .await
            .expect("state")
    );
    b.fill("#confirm", "STRIPE_KE").await;
    assert!(
        !b.find("button.danger")
            .await
            .is_enabled()
            .await
            .expect("state")
    );
    b.fill("#confirm", "STRIPE_KEY").await;
    b.submit("button.danger").await;
    assert_eq!(b.path().await, "/ui/secrets");
    assert!(!b.text("main").await.contains("STRIPE_KEY"));
    b.assert_clean_console(&[]).await;

    // The live filter (htmx) narrows the list in place, keeping the URL.
    b.open("/ui/secrets").await;
    b.fill("#q", "openai").await;
    for _ in 0..200 {
        if !b.text("#results").await.contains("DATABASE_URL") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let shown = b.text("#results").await;
    assert!(
        shown.contains("OPENAI_API_KEY") && !shown.contains("DATABASE_URL"),
        "{shown}"
    );
    assert!(b.path().await.contains("q=openai"));
    // Badges: reserved for an identity, shadowing.
    b.open("/ui/secrets").await;
    let all = b.text("#results").await;
    assert!(all.contains("reserved for deployer"), "{all}");
    b.assert_clean_console(&[]).await;
    b.finish().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_edit_shows_the_diff_first_and_never_overwrites_a_newer_one() {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    b.sign_in(&p.owner).await;
    b.open("/ui/environments/ci").await;
    // Uncheck one name, add another by hand.
    b.find("input[name=secret][value=OPENAI_API_KEY]")
        .await
        .click()
        .await
        .expect("click");
    b.fill("#other", "SOMEONE_ELSES").await;
    b.submit("form[data-guard] button[type=submit]").await;
    let diff = b.text(".diff").await;
    assert!(
        diff.contains("+ SOMEONE_ELSES") && diff.contains("− OPENAI_API_KEY"),
        "{diff}"
    );
    b.shot("environment-diff-1280").await;
    // Save: the list is what the review showed.
    b.submit("form[action='/ui/environments/ci'] button[type=submit]")
        .await;
    let ci = p
        .ok(&p.owner, Method::GET, "/v1/environments/ci", None)
        .await;
    assert_eq!(ci["secrets"], json!(["DATABASE_URL", "SOMEONE_ELSES"]));
    // The saved page flags the name nobody can see.
    assert!(b.text("main").await.contains("no such secret for you"));

    // Two editors: this page was read, then someone else saved; saving this one is refused
    // and shows the list as it is now.
    b.open("/ui/environments/ci").await;
    b.fill("#description", "my edit").await;
    b.submit("form[data-guard] button[type=submit]").await;
    p.ok(
        &p.owner,
        Method::PUT,
        "/v1/environments/ci",
        Some(json!({"secrets": ["DATABASE_URL"], "description": "their edit"})),
    )
    .await;
    b.submit("form[action='/ui/environments/ci'] button[type=submit]")
        .await;
    assert!(
        b.text("#form-error").await.contains("changed"),
        "{}",
        b.text("main").await
    );
    assert_eq!(
        p.ok(&p.owner, Method::GET, "/v1/environments/ci", None)
            .await["description"],
        "their edit",
        "nothing was overwritten"
    );
    b.assert_clean_console(&[409]).await;

    // A new environment from the checklist.
    b.open("/ui/environments/new").await;
    b.fill("#name", "nightly").await;
    b.find("input[name=secret][value=DATABASE_URL]")
        .await
        .click()
        .await
        .expect("click");
    b.submit("form[data-guard] button[type=submit]").await;
    b.submit("form[action='/ui/environments/new'] button[type=submit]")
        .await;
    let nightly = p
        .ok(&p.owner, Method::GET, "/v1/environments/nightly", None)
        .await;
    assert_eq!(nightly["secrets"], json!(["DATABASE_URL"]));

    // An identity change that releases a reserved name asks first, as the API does.
    b.open("/ui/identities/deployer").await;
    b.find("input[name=secret][value=DATABASE_URL]")
        .await
        .click()
        .await
        .expect("click");
    b.submit("form[data-guard] button[type=submit]").await;
    b.submit("form[action='/ui/identities/deployer'] button[type=submit]")
        .await;
    assert!(
        b.text("main [role=alert]")
            .await
            .contains("releases DATABASE_URL")
    );
    b.find("input[name=release]")
        .await
        .click()
        .await
        .expect("click");
    b.submit("form[action='/ui/identities/deployer'] button[type=submit]")
        .await;
    let deployer = p
        .ok(&p.owner, Method::GET, "/v1/identities/deployer", None)
        .await;
    assert_eq!(deployer["secrets"], json!([]));
    b.assert_clean_console(&[409]).await;
    b.finish().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_shown_once_then_revoked_and_revoking_the_sessions_key_signs_out() {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    // A second personal key of the owner's for the session, so revoking it is a real case.
    let session_key = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "browser", "kind": "personal"})),
        )
        .await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    b.sign_in(&session_key).await;
    b.open("/ui/settings/api-keys").await;
    b.fill("#key-name", "ci-runner").await;
    b.find("input[name=kind][value=team]")
        .await
        .click()
        .await
        .expect("click");
    b.submit("form[action='/ui/settings/api-keys'] button[type=submit]")
        .await;
    let shown = b.text("#new-key").await;
    assert!(shown.starts_with("latch_t_"), "{shown}");
    // Hidden before the screenshot: no key in any file a test leaves behind.
    b.find("button[data-toggle-hidden]")
        .await
        .click()
        .await
        .expect("hide");
    b.shot("key-created-1280").await;
    // It works, exactly once shown: the list and every other page hold only its preview.
    let (status, _) = p.call(&shown, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        b.find("#new-key")
            .await
            .attr("class")
            .await
            .expect("class")
            .unwrap_or_default()
            .contains("hidden")
    );
    b.submit("#copied").await;
    assert_eq!(b.path().await, "/ui/settings/api-keys");
    assert!(!b.client.source().await.expect("source").contains(&shown));
    assert!(
        b.text("main table").await.contains("Created by"),
        "owners see who made each key"
    );

    // Revoke it.
    b.open(&format!("/ui/settings/api-keys/{}/revoke", &shown[8..16]))
        .await;
    b.submit("button.danger").await;
    let (status, _) = p.call(&shown, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");

    // Members: add one (their first key shown once, and working), change the role, remove
    // by typing the name.
    b.open("/ui/settings/members").await;
    b.fill("#member-name", "carol").await;
    b.submit("form[action='/ui/settings/members'] button[type=submit]")
        .await;
    let first = b.text("#new-key").await;
    assert!(first.starts_with("latch_p_"), "{first}");
    let (status, me) = p.call(&first, Method::GET, "/v1/whoami", None).await;
    assert_eq!(
        (status, me["user"].as_str()),
        (StatusCode::OK, Some("carol"))
    );
    b.open("/ui/settings/members").await;
    assert!(!b.client.source().await.expect("source").contains(&first));
    b.find("#role-carol")
        .await
        .select_by_value("admin")
        .await
        .expect("select");
    b.submit("form[action='/ui/settings/members/carol/role'] button[type=submit]")
        .await;
    let members = p.ok(&p.owner, Method::GET, "/v1/members", None).await;
    assert!(
        members
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["name"] == "carol" && m["role"] == "admin"),
        "{members}"
    );
    b.open("/ui/settings/members/carol/remove").await;
    b.fill("#confirm", "carol").await;
    b.submit("button.danger").await;
    assert!(b.text("main").await.contains("carol was removed"));
    let (status, _) = p.call(&first, Method::GET, "/v1/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "her keys went with her");

    // Revoking the key behind the session warns, then signs out.
    b.open(&format!(
        "/ui/settings/api-keys/{}/revoke",
        &session_key[8..16]
    ))
    .await;
    assert!(b.text("main [role=alert]").await.contains("signed out"));
    b.submit("button.danger").await;
    assert!(
        b.path().await.starts_with("/ui/login"),
        "{}",
        b.path().await
    );
    b.open("/ui/secrets").await;
    assert!(b.path().await.starts_with("/ui/login"));
    b.assert_clean_console(&[]).await;
    b.finish().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_sees_only_what_a_builder_may_and_a_demotion_shows_at_the_next_page() {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    let bob = member(&p, "bob", "builder").await;
    b.sign_in(&bob).await;
    // No Audit in the navigation; the page itself says why not.
    assert!(!b.exists("nav.main a[href='/ui/audit']").await);
    b.open("/ui/audit").await;
    assert!(
        b.text("h1").await.contains("cannot"),
        "{}",
        b.text("main").await
    );
    assert!(
        b.text("main").await.contains("builder"),
        "the reason names the role"
    );
    // Team scope is offered but disabled, with the reason.
    b.open("/ui/secrets/new").await;
    assert!(
        !b.find("input[name=scope][value=team]")
            .await
            .is_enabled()
            .await
            .expect("state")
    );
    assert!(
        b.text("fieldset")
            .await
            .contains("may not write team secrets")
    );
    // Team secrets have no Edit for a builder.
    b.open("/ui/secrets").await;
    assert!(!b.exists("a[href='/ui/secrets/team/DATABASE_URL']").await);
    // Environments are read-only.
    b.open("/ui/environments/ci").await;
    assert!(b.text("main").await.contains("may not change it"));
    assert!(!b.exists("form[data-guard] button[type=submit]").await);
    // API keys: own only, no Created by, no team keys.
    b.open("/ui/settings/api-keys").await;
    let keys = b.text("main").await;
    assert!(!keys.contains("Created by"), "{keys}");
    assert!(
        !b.find("input[name=kind][value=team]")
            .await
            .is_enabled()
            .await
            .expect("state")
    );
    b.shot("builder-keys-1280").await;
    b.assert_clean_console(&[403]).await;

    // An owner promotes bob to admin: his next page has Audit; demoted again, it is gone.
    p.ok(
        &p.owner,
        Method::PATCH,
        "/v1/members/bob",
        Some(json!({"role": "admin"})),
    )
    .await;
    b.open("/ui/secrets").await;
    assert!(b.exists("nav.main a[href='/ui/audit']").await);
    p.ok(
        &p.owner,
        Method::PATCH,
        "/v1/members/bob",
        Some(json!({"role": "builder"})),
    )
    .await;
    b.open("/ui/secrets").await;
    assert!(!b.exists("nav.main a[href='/ui/audit']").await);
    // Removed: the session ends at once.
    p.ok(&p.owner, Method::DELETE, "/v1/members/bob", None)
        .await;
    b.open("/ui/secrets").await;
    assert!(
        b.path().await.starts_with("/ui/login"),
        "{}",
        b.path().await
    );
    assert!(b.text("main").await.contains("no longer a member"));
    b.assert_clean_console(&[]).await;
    b.finish().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_the_audit_log_page_filter_and_show_a_runs_detail() {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    let owner = p.owner.clone();
    let run = p
        .ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(
                json!({"environment": "ci", "secrets": ["DATABASE_URL", "NOPE", "OPENAI_API_KEY"]}),
            ),
        )
        .await;
    let id = run["run_id"].as_str().expect("id").to_owned();
    p.ok(
        &owner,
        Method::POST,
        &format!("/v1/runs/{id}/finish"),
        Some(json!({"exit_code": 0, "duration_ms": 1234, "masked": {"OPENAI_API_KEY": 3}})),
    )
    .await;
    for _ in 0..55 {
        p.ok(
            &owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"secrets": []})),
        )
        .await;
    }
    b.sign_in(&owner).await;
    b.open("/ui/runs").await;
    assert_eq!(
        b.client
            .find_all(fantoccini::Locator::Css("#results tbody tr"))
            .await
            .expect("rows")
            .len(),
        50
    );
    b.submit("a[href^='/ui/runs?cursor=']").await;
    let older = b.text("#results").await;
    assert!(
        older.contains("missing"),
        "the oldest page holds the run with a missing name: {older}"
    );
    b.open(&format!("/ui/runs/{id}")).await;
    let detail = b.text("main").await;
    assert!(
        detail.contains("NOPE") && detail.contains("no secret of that name"),
        "{detail}"
    );
    assert!(detail.contains("How to fix it"));
    b.shot("run-detail-1280").await;

    // Audit: filter by action prefix.
    b.open("/ui/audit?action=secret.").await;
    let rows = b.text("#results").await;
    assert!(
        rows.contains("secret.create") && !rows.contains("run.resolve"),
        "{rows}"
    );
    b.open("/ui/audit?outcome=bogus").await;
    assert!(b.text("main [role=alert]").await.contains("outcome"));
    b.assert_clean_console(&[422]).await;
    b.finish().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_main_page_fits_a_390_px_screen_and_is_photographed_at_both_widths() {
    let p = seeded().await;
    let Some(mut wide) = browser(&p, 1280, 800).await else {
        return;
    };
    wide.sign_in(&p.owner).await;
    for (name, path) in PAGES {
        wide.open(path).await;
        wide.shot(&format!("{name}-1280")).await;
    }
    wide.assert_clean_console(&[]).await;
    wide.finish().await;
    let Some(mut narrow) = browser(&p, 390, 844).await else {
        return;
    };
    narrow.sign_in(&p.owner).await;
    for (name, path) in PAGES {
        narrow.open(path).await;
        narrow.assert_no_horizontal_scroll(path).await;
        narrow.shot(&format!("{name}-390")).await;
    }
    narrow.assert_clean_console(&[]).await;
    narrow.finish().await;
    p.stop().await;
}

/// A form body, as a browser sends one (reqwest's own needs a feature latch does not build).
trait Form {
    fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self;
}

impl Form for reqwest::RequestBuilder {
    fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// The web app over plain HTTP: its headers, its cookie, where the cookie counts, the origin
/// check, the sign-in limit, and hostile input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one walk through the edges
async fn the_web_apps_headers_cookie_origin_check_and_limits_hold() {
    let p = seeded().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = |path: &str| format!("{}{path}", p.url);
    let host = p.url.trim_start_matches("http://").to_owned();

    // Headers of every page, assets immutable at hashed names.
    let login = http.get(url("/ui/login")).send().await.expect("answers");
    assert_eq!(login.status(), StatusCode::OK);
    let h = login.headers().clone();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let html = login.text().await.expect("html");
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    let css = html
        .split("href=\"/ui/assets/app.")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("stylesheet link");
    let asset = http
        .get(url(&format!("/ui/assets/app.{css}")))
        .send()
        .await
        .expect("answers");
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .expect("text")
            .contains("immutable")
    );
    let stale = http
        .get(url("/ui/assets/app.00000000.css"))
        .send()
        .await
        .expect("answers");
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    let favicon = http.get(url("/favicon.ico")).send().await.expect("answers");
    assert!(favicon.status().is_redirection());

    // Sign-in from another origin, or from nowhere said: refused before anything is checked.
    for origin in [None, Some("http://evil.example")] {
        let mut request = http
            .post(url("/ui/login"))
            .form(&[("key", p.owner.as_str())]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let answer = request.send().await.expect("answers");
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{origin:?}");
        assert!(answer.headers().get("set-cookie").is_none());
    }
    let cross = http
        .post(url("/ui/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("key", p.owner.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    // The same origin (said by Origin alone, as older browsers do): a session cookie.
    let signed = http
        .post(url("/ui/login"))
        .header("origin", format!("http://{host}"))
        .form(&[("key", p.owner.as_str()), ("next", "https://evil.example/")])
        .send()
        .await
        .expect("answers");
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        signed.headers()["location"],
        "/ui/secrets",
        "never elsewhere"
    );
    let set = signed.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_owned();
    let (pair, attributes) = set.split_once(';').expect("attributes");
    assert!(pair.starts_with("__Host-latch_session="));
    assert_eq!(
        pair.len(),
        "__Host-latch_session=".len() + 43,
        "256 random bits"
    );
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.contains(attribute), "{set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let cookie = pair.to_owned();

    // The cookie counts under /ui only: /v1 stays bearer-only.
    let page = http
        .get(url("/ui/secrets"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    let api = http
        .get(url("/v1/whoami"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let forged = http
        .get(url("/ui/secrets"))
        .header(
            "cookie",
            "__Host-latch_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);

    // Renewing says when the session now ends.
    let renewed: Value = http
        .post(url("/ui/session/renew"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert!(
        renewed["idle_ends"]
            .as_i64()
            .is_some_and(|t| t <= renewed["absolute_ends"].as_i64().unwrap_or(0))
    );

    // A cross-site sign-out is refused and the session goes on.
    let out = http
        .post(url("/ui/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .expect("answers");
    assert_eq!(out.status(), StatusCode::FORBIDDEN);
    let page = http
        .get(url("/ui/secrets"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status(), StatusCode::OK);

    // Hostile input: markup is escaped, a forged sealed value is refused in words, the value
    // field is never echoed, an oversized form is refused, unknown pages are 404 pages.
    let post = |path: &str, form: Vec<(&str, String)>| {
        http.post(url(path))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
    };
    let answer = post(
        "/ui/secrets/new",
        vec![
            ("scope", "team".into()),
            ("name", "HOSTILE".into()),
            ("description", "<script>alert(1)</script>".into()),
            (
                "sealed_value",
                r#"{"key_id":"0000000000000000","enc":"AAAA","ciphertext":"AAAA"}"#.into(),
            ),
        ],
    )
    .await
    .expect("answers");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = answer.text().await.expect("html");
    assert!(!page.contains("<script>alert"), "escaped");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the description is kept"
    );
    assert!(page.contains("sealing key"), "said in words");
    for (form, status) in [
        (
            vec![
                ("sealed_value", "not json".to_owned()),
                ("name", "A_B".into()),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            vec![("name", "A_B".into())],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let answer = post("/ui/secrets/new", form).await.expect("answers");
        assert_eq!(answer.status(), status);
    }
    // An oversized form: 413, on a connection of its own (the server closes it rather than
    // read the rest, so a client may also see the connection end first), and the server
    // goes on serving.
    let oversized = reqwest::Client::new()
        .post(url("/ui/secrets/new"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .form(&[("description", "x".repeat(3 * 1024 * 1024))])
        .send()
        .await;
    if let Ok(answer) = oversized {
        assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let page = http
        .get(url("/ui/secrets"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    let missing = http
        .get(url("/ui/secrets/team/%3Cb%3Ex%3C%2Fb%3E"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(!missing.text().await.expect("html").contains("<b>x</b>"));
    let nowhere = http
        .get(url("/ui/no/such/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    let nobody = http
        .get(url("/ui/environments/nope"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers");
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);

    // Failed sign-ins count toward the address's limit like any failed authentication, and
    // are audited: after the budget, 429 with Retry-After.
    let mut last = StatusCode::OK;
    let mut retry = None;
    for _ in 0..25 {
        let answer = http
            .post(url("/ui/login"))
            .header("sec-fetch-site", "same-origin")
            .form(&[(
                "key",
                "latch_p_AAAAAAAAbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb000000",
            )])
            .send()
            .await
            .expect("answers");
        last = answer.status();
        retry = answer.headers().get("retry-after").cloned();
        if last == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(last, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some());
    // A valid key is still served from that address (DESIGN §4).
    let ok = http
        .post(url("/ui/login"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("key", p.owner.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let failed = p
        .ok(&p.owner, Method::GET, "/v1/audit?action=auth.failed", None)
        .await;
    assert!(
        !failed["events"].as_array().expect("events").is_empty(),
        "{failed}"
    );
    p.stop().await;
}

/// Sets every web app session's `column` to `value` in the platform's database, as time would.
async fn age_sessions(p: &Platform, column: &str, value: i64) {
    let url = format!("sqlite://{}", p.dir().join("latch.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE ui_sessions SET {column} = ?"
    )))
    .bind(value)
    .execute(&pool)
    .await
    .expect("updates");
    pool.close().await;
}

/// A session idle for 30 minutes, or past its 12 hours, is over: the next page leads to the
/// sign-in page, saying why and where it leads back to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_idle_or_past_its_end() {
    let p = seeded().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for column in ["last_seen_at", "expires_at"] {
        let signed = http
            .post(format!("{}/ui/login", p.url))
            .header("sec-fetch-site", "same-origin")
            .form(&[("key", p.owner.as_str())])
            .send()
            .await
            .expect("answers");
        let cookie = signed.headers()["set-cookie"]
            .to_str()
            .expect("text")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let page = |path: &'static str| {
            http.get(format!("{}{path}", p.url))
                .header("cookie", cookie.clone())
                .send()
        };
        assert_eq!(
            page("/ui/runs").await.expect("answers").status(),
            StatusCode::OK
        );
        // 31 minutes without a request (or past the end), as the clock would make it.
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("fits");
        age_sessions(&p, column, now - 31 * 60 * 1000).await;
        let gone = page("/ui/runs").await.expect("answers");
        assert_eq!(gone.status(), StatusCode::SEE_OTHER, "{column}");
        assert_eq!(
            gone.headers()["location"],
            "/ui/login?next=%2Fui%2Fruns&reason=expired",
            "{column}"
        );
        let again = page("/ui/runs").await.expect("answers");
        assert_eq!(
            again.status(),
            StatusCode::SEE_OTHER,
            "ended for good: {column}"
        );
    }
    p.stop().await;
}

/// The banner warns a few minutes before the session ends, "Stay signed in" renews it, and an
/// ended session says to sign in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_banner_warns_renews_and_says_when_it_ended() {
    let p = seeded().await;
    let Some(mut b) = browser(&p, 1280, 800).await else {
        return;
    };
    b.sign_in(&p.owner).await;
    b.open("/ui/secrets").await;
    assert_eq!(
        b.js("return document.getElementById('session-banner').hidden")
            .await,
        json!(true)
    );
    b.js("document.getElementById('session').dataset.idleEnds = String(Date.now() + 120000); window.dispatchEvent(new Event('focus'))")
        .await;
    assert_eq!(
        b.js("return document.getElementById('session-banner').hidden")
            .await,
        json!(false)
    );
    assert!(
        b.text("#session-banner")
            .await
            .contains("ends in 2 minutes"),
        "{}",
        b.text("#session-banner").await
    );
    b.find("button[data-renew]")
        .await
        .click()
        .await
        .expect("click");
    for _ in 0..100 {
        if b.js("return document.getElementById('session-banner').hidden")
            .await
            == json!(true)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.js("return document.getElementById('session-banner').hidden")
            .await,
        json!(true),
        "renewed"
    );
    b.js("document.getElementById('session').dataset.idleEnds = '1'; window.dispatchEvent(new Event('focus'))")
        .await;
    assert!(b.text("#session-banner").await.contains("has ended"));
    assert!(
        b.find("a[data-sign-in]")
            .await
            .is_displayed()
            .await
            .expect("shown")
    );
    b.assert_clean_console(&[]).await;
    b.finish().await;
    p.stop().await;
}
