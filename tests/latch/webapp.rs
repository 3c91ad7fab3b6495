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

pub(crate) async fn seeded() -> Platform {
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
