//! The web app over plain HTTP (DESIGN §12): its headers, its cookie and where it counts, the
//! origin check, the sign-in limit, hostile input, and sessions ending when idle or past their
//! end. The browser flows are `webapp.rs`.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::server::Platform;
use crate::webapp::seeded;

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
    let get = |path: &str| http.get(url(path)).header("cookie", &cookie).send();

    // The cookie counts under /ui only: /v1 stays bearer-only.
    let page = get("/ui/secrets").await.expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    let api = get("/v1/whoami").await.expect("answers");
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
    let page = get("/ui/secrets").await.expect("answers");
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
    let page = get("/ui/secrets").await.expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    let missing = get("/ui/secrets/team/%3Cb%3Ex%3C%2Fb%3E")
        .await
        .expect("answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(!missing.text().await.expect("html").contains("<b>x</b>"));
    let nowhere = get("/ui/no/such/page").await.expect("answers");
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    let nobody = get("/ui/environments/nope").await.expect("answers");
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
