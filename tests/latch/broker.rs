//! The credential broker (DESIGN §13): the real `latch run` with brokered secrets against an
//! in-process platform and a local HTTPS upstream with its own test CA, which records every
//! request it gets. Host names are mapped onto the upstream with `--resolve`, so nothing
//! leaves loopback.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{Value, json};

/// The test upstream's TLS identity, shared with the broker's benchmark.
#[path = "../../benches/support/tls.rs"]
mod tls;

use crate::launcher::{Guard, latch_run, output, scan_memory, start_until, text, wait_for_line};
use crate::server::{Platform, start};

/// A realistic OpenAI project key (never a real one).
const OPENAI: &str = "sk-proj-Qw3rTy8uI0oP2aS4dF6gH8jK0lZ2xC4vB6nM8qW0eR2tY4uI6oP8aS0dF2gH4jK6";
/// A realistic Anthropic key (never a real one).
const ANTHROPIC: &str = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7Zy6Xw5Vu4Ts3Rq2Po1Nm0Lk9Ji8Hg7Fe6Dc5Ba4-AbCdEfAA";
/// A value for ad-hoc brokering.
const OTHER: &str = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0ZYXWVUTS";

/// One request the upstream got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) host: String,
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTPS server for api.openai.com, other.example and api.anthropic.com (the broker's
/// tests), or for the hosts and answers a test gives ([`Upstream::serving`]).
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) ca: tempfile::NamedTempFile,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

/// How a test upstream answers a request it recorded.
pub(crate) type Answering = fn(&Seen) -> Response<UpBody>;

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    async fn start() -> Self {
        Self::serving(
            &["api.openai.com", "other.example", "api.anthropic.com"],
            answer,
        )
        .await
    }

    /// An upstream with a certificate for `hosts` that answers each request with `answering`.
    pub(crate) async fn serving(hosts: &[&str], answering: Answering) -> Self {
        let tls::TestTls { acceptor, ca_file } = tls::test_tls(hosts);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let log = Arc::clone(&log);
                        async move {
                            let seen = record(request, &log).await;
                            Ok::<_, std::convert::Infallible>(answering(&seen))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            ca: ca_file,
            seen,
            task,
        }
    }

    pub(crate) fn resolve(&self, host: &str) -> String {
        format!("{host}:443:{}", self.addr)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

pub(crate) type UpBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Reads a request whole and records it.
async fn record(request: Request<Incoming>, log: &Mutex<Vec<Seen>>) -> Seen {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let seen = Seen {
        host: parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    log.lock().expect("lock").push(seen.clone());
    seen
}

/// `/v1/models`: 200 only with the real key. `/v1/echo`: the Authorization header reflected in a
/// header and the body. `/v1/stream`: three SSE events 400 ms apart, the second holding the real
/// key.
fn answer(seen: &Seen) -> Response<UpBody> {
    let auth = seen.header("authorization").unwrap_or_default().to_owned();
    let api_key = seen.header("x-api-key").unwrap_or_default().to_owned();
    let agent = seen.header("user-agent").unwrap_or_default().to_owned();
    let full = |status: u16, text: String| {
        Response::builder()
            .status(status)
            .header("x-echo", auth.clone())
            .body(Full::new(Bytes::from(text)).boxed())
            .expect("response")
    };
    let path = seen.target.split('?').next().unwrap_or_default();
    match path {
        // What the providers' SDKs expect of a model listing.
        "/v1/models" if agent.starts_with("OpenAI/") && auth == format!("Bearer {OPENAI}") => full(
            200,
            r#"{"object":"list","data":[{"id":"gpt-test","object":"model","created":0,"owned_by":"latch"}]}"#.into(),
        ),
        "/v1/models" if agent.starts_with("Anthropic/")
            && (api_key == ANTHROPIC || auth == format!("Bearer {ANTHROPIC}")) => full(
            200,
            r#"{"data":[{"id":"claude-test","type":"model","display_name":"Claude Test","created_at":"2025-01-01T00:00:00Z"}],"has_more":false,"first_id":"claude-test","last_id":"claude-test"}"#.into(),
        ),
        "/v1/models" if auth == format!("Bearer {OPENAI}") => full(200, "{\"ok\":true}".into()),
        "/v1/models" => full(401, "{\"error\":\"invalid key\"}".into()),
        "/v1/echo" => full(200, json!({ "auth": auth }).to_string()),
        "/v1/gzip" => Response::builder()
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from_static(b"\x1f\x8b compressed")).boxed())
            .expect("response"),
        "/v1/stream" => Response::builder()
            .header("content-type", "text/event-stream")
            .body(sse(auth).boxed())
            .expect("response"),
        _ => full(404, "no such path".into()),
    }
}

/// Three SSE events, 400 ms apart, the second carrying `auth`.
fn sse(auth: String) -> Events {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for i in 0..3 {
            let event = if i == 1 {
                format!("data: {{\"n\":{i},\"echo\":\"{auth}\"}}\n\n")
            } else {
                format!("data: {{\"n\":{i}}}\n\n")
            };
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    Events(rx)
}

/// A body sent as its chunks arrive.
struct Events(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// A platform whose team secret `OPENAI_API_KEY` has the openai preset, and `OTHER_TOKEN` none.
async fn platform() -> Platform {
    let p = start().await;
    p.ok(
        &p.owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "OPENAI_API_KEY", "value": OPENAI, "broker": {"preset": "openai"}})),
    )
    .await;
    p.ok(
        &p.owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "OTHER_TOKEN", "value": OTHER})),
    )
    .await;
    p
}

/// `latch run` with the upstream's CA and host mapping.
fn brokered_run(p: &Platform, up: &Upstream, args: &[&str]) -> Command {
    let resolve = [up.resolve("api.openai.com"), up.resolve("other.example")];
    let mut all: Vec<&str> = vec!["--resolve", &resolve[0], "--resolve", &resolve[1]];
    all.extend_from_slice(args);
    let mut command = latch_run(p, &all);
    command.env("LATCH_CA_CERT", up.ca.path());
    command
}

/// [`brokered_run`] of `sh -c SCRIPT` with `OPENAI_API_KEY` alone.
fn openai_script(p: &Platform, up: &Upstream, script: &str) -> Command {
    brokered_run(
        p,
        up,
        &["--secrets", "OPENAI_API_KEY", "--", "sh", "-c", script],
    )
}

fn lines(stdout: &[u8]) -> Vec<String> {
    text(stdout).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_holds_a_placeholder_and_the_upstream_gets_the_real_key() {
    let p = platform().await;
    let up = Upstream::start().await;
    let script = r#"printf '%s\n' "$OPENAI_API_KEY" "$OPENAI_BASE_URL" "$LATCH_BROKER_URL_OPENAI_API_KEY"
curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/models"; echo
curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "${LATCH_BROKER_URL_OPENAI_API_KEY}v1/models"; echo"#;
    let run = || output(openai_script(&p, &up, script), None);
    let first = run().await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = lines(&first.stdout);
    let placeholder = &out[0];
    // Same length, vendor prefix and character classes; never the value.
    assert_eq!(placeholder.len(), OPENAI.len());
    assert!(placeholder.starts_with("sk-proj-"), "{placeholder}");
    assert_ne!(placeholder, OPENAI);
    for (a, b) in placeholder.bytes().zip(OPENAI.bytes()) {
        assert_eq!(a.is_ascii_digit(), b.is_ascii_digit());
        assert_eq!(a.is_ascii_uppercase(), b.is_ascii_uppercase());
    }
    assert!(
        out[1].starts_with("http://127.0.0.1:") && out[1].ends_with("/openai/v1"),
        "{}",
        out[1]
    );
    assert!(out[2].ends_with("/OPENAI_API_KEY/"), "{}", out[2]);
    // Both ways in reached the real API, authenticated with the real key.
    assert_eq!(out[3..5], ["{\"ok\":true}", "{\"ok\":true}"]);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.host, "api.openai.com");
        assert_eq!(s.target, "/v1/models");
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {OPENAI}").as_str())
        );
        assert_eq!(s.header("accept-encoding"), Some("identity"));
    }
    // A new run, a new placeholder.
    let second = run().await;
    assert_ne!(lines(&second.stdout)[0], *placeholder);
    // The run record names the brokered secret (never a value).
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    assert_eq!(
        runs["runs"][0]["record"]["brokered"],
        json!(["OPENAI_API_KEY"])
    );
    assert!(!runs.to_string().contains(OPENAI));
    let id = runs["runs"][0]["id"].as_str().expect("id");
    let shown = crate::careful::latch(&p, &p.owner, &["runs", "show", id]).await;
    assert!(
        text(&shown.stdout).contains(
            "OPENAI_API_KEY                 team     v1  brokered (the command held a placeholder)"
        ),
        "{}",
        text(&shown.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_value_goes_only_into_its_header_and_comes_back_as_the_placeholder() {
    let p = platform().await;
    let up = Upstream::start().await;
    let script = r#"printf '%s\n' "$OPENAI_API_KEY"
curl -sS -D - -H "Authorization: Bearer $OPENAI_API_KEY" -H "X-Other: $OPENAI_API_KEY" --data-binary "$OPENAI_API_KEY" "$OPENAI_BASE_URL/echo?key=$OPENAI_API_KEY"; echo
curl -sS -H "x-api-key: $OPENAI_API_KEY" "$OPENAI_BASE_URL/echo"; echo
curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "${LATCH_BROKER_URL_OTHER_TOKEN}v1/echo"; echo
curl -sS -o /dev/null -w '%{http_code}\n' -X TRACE "$OPENAI_BASE_URL/models"
curl -sS -o /dev/null -w '%{http_code}\n' -x "$LATCH_BROKER_URL_OTHER_TOKEN" http://api.openai.com/v1/models
curl -sS -o /dev/null -w '%{http_code}\n' "${OPENAI_BASE_URL%/openai/v1}/nowhere/v1/models""#;
    let o = output(
        brokered_run(
            &p,
            &up,
            &[
                "--broker",
                "OTHER_TOKEN=other.example",
                "--",
                "sh",
                "-c",
                script,
            ],
        ),
        None,
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let placeholder = stdout.lines().next().expect("placeholder").to_owned();
    let seen = up.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // 1: only the Authorization header got the value; query, body and other headers kept the
    // placeholder. The reflected value came back as the placeholder, in headers and body.
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {OPENAI}").as_str())
    );
    assert_eq!(seen[0].header("x-other"), Some(placeholder.as_str()));
    assert_eq!(seen[0].target, format!("/v1/echo?key={placeholder}"));
    assert_eq!(seen[0].body, placeholder.as_bytes());
    assert_eq!(seen[0].method, "POST");
    assert!(
        stdout.contains(&format!("x-echo: Bearer {placeholder}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{{\"auth\":\"Bearer {placeholder}\"}}")),
        "{stdout}"
    );
    // 2: the placeholder in a header the policy does not name stays a placeholder.
    assert_eq!(seen[1].header("x-api-key"), Some(placeholder.as_str()));
    assert_eq!(seen[1].header("authorization"), None);
    // 3: OPENAI's placeholder sent to another brokered host is not substituted.
    assert_eq!(seen[2].host, "other.example");
    assert_eq!(
        seen[2].header("authorization"),
        Some(format!("Bearer {placeholder}").as_str())
    );
    // TRACE 405, plain HTTP through the broker as a proxy 403, an unknown route 404: and none
    // of them reached the upstream (three requests in all, above).
    let codes: Vec<&str> = stdout.lines().rev().take(3).collect();
    assert_eq!(codes, ["404", "403", "405"], "{stdout}");
    assert!(!stdout.contains(OPENAI) && !text(&o.stderr).contains(OPENAI));
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    assert_eq!(
        runs["runs"][0]["record"]["brokered"],
        json!(["OPENAI_API_KEY", "OTHER_TOKEN"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_keep_their_spacing_with_the_value_replaced() {
    let p = platform().await;
    let up = Upstream::start().await;
    let mut command = openai_script(
        &p,
        &up,
        r#"printf '%s\n' "$OPENAI_API_KEY"; curl -sSN -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/stream""#,
    );
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let got = tokio::task::spawn_blocking(move || {
        let mut child = Guard::spawn(&mut command);
        let reader = BufReader::new(child.0.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        for line in reader.lines() {
            let line = line.expect("line");
            if !line.is_empty() {
                lines.push((Instant::now(), line));
            }
        }
        let status = child.0.wait().expect("waits");
        child.1 = true;
        (status, lines)
    })
    .await
    .expect("joins");
    let (status, lines) = got;
    assert!(status.success());
    let placeholder = &lines[0].1;
    let events: Vec<&(Instant, String)> = lines[1..].iter().collect();
    assert_eq!(events.len(), 3, "{lines:?}");
    assert_eq!(
        events[1].1,
        format!("data: {{\"n\":1,\"echo\":\"Bearer {placeholder}\"}}")
    );
    // Streamed, not buffered: each event came on its own, well apart (they are sent 400 ms
    // apart; a buffering broker would deliver them together at the end).
    for pair in events.windows(2) {
        assert!(
            pair[1].0.duration_since(pair[0].0) >= Duration::from_millis(100),
            "{lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_is_killed_and_latch_exits_70_when_the_broker_dies() {
    let p = platform().await;
    let up = Upstream::start().await;
    let mut command = openai_script(
        &p,
        &up,
        r#"curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/models"; echo; exec sleep 60"#,
    );
    command.env("LATCH_BROKER_FAULT", "exit-after-request");
    let started = Instant::now();
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(70), "{}", text(&o.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the command was not killed"
    );
    let stderr = text(&o.stderr);
    assert!(
        stderr
            .contains("latch: error: credential broker: the broker stopped while the command ran"),
        "{stderr}"
    );
    assert_eq!(text(&o.stdout).trim(), "{\"ok\":true}");

    // A broker that cannot start: the command never starts, exit 70, and the run is ended.
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("started");
    let mut command = brokered_run(&p, &up, &["--secrets", "OPENAI_API_KEY", "--", "touch"]);
    command.arg(&marker).env("LATCH_BROKER_FAULT", "fail-start");
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(70), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("latch: error: credential broker:"),
        "{}",
        text(&o.stderr)
    );
    assert!(!marker.exists(), "the command started without its broker");
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    assert_eq!(runs["runs"][0]["status"], "finished");
    assert_eq!(runs["runs"][0]["outcome"]["exit_code"], 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_broker_hands_the_value_unless_the_policy_says_always_and_no_scrub_refuses() {
    let p = platform().await;
    let up = Upstream::start().await;
    let show = [
        "--",
        "sh",
        "-c",
        "printf '%s' \"$OPENAI_API_KEY\" | sha256sum",
    ];
    let digest = |bytes: &[u8]| {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(bytes);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut args = vec!["--no-broker", "OPENAI_API_KEY"];
    args.extend(show);
    let o = output(brokered_run(&p, &up, &args), None).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with(&digest(OPENAI.as_bytes())),
        "the real value"
    );
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    assert_eq!(
        runs["runs"][0]["record"]["unbrokered"],
        json!(["OPENAI_API_KEY"])
    );
    let id = runs["runs"][0]["id"].as_str().expect("id");
    let shown = crate::careful::latch(&p, &p.owner, &["runs", "show", id]).await;
    assert!(
        text(&shown.stdout).contains(
            "OPENAI_API_KEY                 team     v1  its broker policy set aside (--no-broker)"
        ),
        "{}",
        text(&shown.stdout)
    );
    assert_eq!(runs["runs"][0]["record"]["brokered"], Value::Null);

    // --no-scrub makes latch the command: no broker, so a brokered secret refuses it.
    let o = output(brokered_run(&p, &up, &["--no-scrub", "--", "true"]), None).await;
    assert_eq!(o.status.code(), Some(78), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("secret OPENAI_API_KEY is brokered"),
        "{}",
        text(&o.stderr)
    );

    // `always`: --no-broker does not apply, and says so.
    p.ok(
        &p.owner,
        Method::PATCH,
        "/v1/secrets/team/OPENAI_API_KEY",
        Some(json!({"broker": {"preset": "openai", "always": true}})),
    )
    .await;
    let o = output(brokered_run(&p, &up, &args), None).await;
    assert!(o.status.success());
    assert!(!text(&o.stdout).starts_with(&digest(OPENAI.as_bytes())));
    assert!(
        text(&o.stderr).contains("always brokered"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test]
async fn broker_policies_are_checked_kept_changed_and_cleared() {
    let p = start().await;
    let create = |name: &str, broker: Value| json!({"scope": "team", "name": name, "value": OPENAI, "broker": broker});
    for (broker, wants) in [
        (json!({}), "needs a preset"),
        (json!({"preset": "aws"}), "unknown broker preset"),
        (json!({"hosts": ["https://api.example.com"]}), "not a URL"),
        (json!({"hosts": ["[::1]:8443"]}), "IPv6"),
        (json!({"hosts": [" a.example"]}), "letters, digits"),
        (json!({"hosts": ["*.example.com"]}), "wildcards"),
        (
            json!({"hosts": ["a.example"], "header": "cookie"}),
            "unknown broker header",
        ),
        (
            json!({"preset": "openai", "hosts": ["evil.example"]}),
            "not both",
        ),
        (json!({"hosts": ["a.example"], "extra": 1}), "unknown field"),
        (json!("openai"), "invalid type"),
    ] {
        let (status, body) = p
            .call(
                &p.owner,
                Method::POST,
                "/v1/secrets",
                Some(create("K", broker.clone())),
            )
            .await;
        assert_eq!(status, 400, "{broker}: {body}");
        assert!(body.to_string().contains(wants), "{broker}: {body}");
    }
    let made = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/secrets",
            Some(create(
                "K",
                json!({"hosts": ["API.Example.com", "b.example:8443"], "header": "x-api-key"}),
            )),
        )
        .await;
    assert_eq!(
        made["broker"],
        json!({"hosts": ["api.example.com", "b.example:8443"], "header": "x-api-key", "always": false})
    );
    // A change that names no broker keeps it; null clears it.
    let kept = p
        .ok(
            &p.owner,
            Method::PATCH,
            "/v1/secrets/team/K",
            Some(json!({"description": "d"})),
        )
        .await;
    assert_eq!(kept["broker"], made["broker"]);
    let cleared = p
        .ok(
            &p.owner,
            Method::PATCH,
            "/v1/secrets/team/K",
            Some(json!({"broker": null})),
        )
        .await;
    assert_eq!(cleared.get("broker"), None);
    // The audit log says where the value may go, before and after.
    let audit = p
        .ok(
            &p.owner,
            Method::GET,
            "/v1/audit?action=secret.update&limit=1",
            None,
        )
        .await;
    assert_eq!(audit["events"][0]["detail"]["broker"], Value::Null);
    assert_eq!(
        audit["events"][0]["detail"]["broker_before"]["header"],
        "x-api-key"
    );
    // A value a placeholder could not stand in for: the CLI refuses it with its policy, before
    // any request (the platform takes it, and each run that receives it refuses to start).
    let dir = tempfile::tempdir().expect("dir");
    let short = dir.path().join("short");
    std::fs::write(&short, "abc12345").expect("writes");
    let short = short.to_str().expect("utf-8");
    let o = crate::careful::latch(
        &p,
        &p.owner,
        &[
            "secret",
            "create",
            "--team",
            "SHORT",
            "--value-file",
            short,
            "--broker",
            "a.example",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("too short to broker"),
        "{}",
        text(&o.stderr)
    );
    let o = crate::careful::latch(
        &p,
        &p.owner,
        &[
            "secret",
            "update",
            "--team",
            "K",
            "--value-file",
            short,
            "--broker",
            "openai",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let (status, _) = p
        .call(&p.owner, Method::GET, "/v1/secrets/team/SHORT", None)
        .await;
    assert_eq!(status, 404, "nothing was sent");
    // A run's ad-hoc policy is checked too.
    let (status, body) = p
        .call(
            &p.owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"broker": [{"name": "K", "policy": {"hosts": ["a b"]}}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_broker", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_keeps_a_brokered_value_only_as_shares() {
    let p = platform().await;
    let up = Upstream::start().await;
    let script = r#"echo ready; read _; curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/models"; echo; echo done; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"#;
    let mut command = brokered_run(&p, &up, &["--no-pty", "--", "sh", "-c", script]);
    command.stdin(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let (mut child, mut out, _) = start_until(&mut command, Stdio::null(), "ready");
        let needles: [(&str, &[u8]); 2] = [
            ("OPENAI_API_KEY", OPENAI.as_bytes()),
            ("OTHER_TOKEN", OTHER.as_bytes()),
        ];
        // Between requests, no contiguous copy of the value is anywhere in latch's memory: the
        // broker holds two shares (the command holds only the placeholder).
        let (scanned, found) = scan_memory(child.pid(), &needles);
        assert!(scanned > 1 << 20, "scanned only {scanned} bytes");
        assert!(found.is_empty(), "{found:#?}");
        // A request joins it into its header, and the upstream connection's write buffer
        // holds it until the connection closes, a second after its last request: then it is
        // wiped as it is freed.
        std::io::Write::write_all(child.0.stdin.as_mut().expect("stdin"), b"go\n").expect("writes");
        let seen = wait_for_line(&mut out, "done");
        assert!(seen.contains("{\"ok\":true}"), "{seen}");
        let mut found = Vec::new();
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(250));
            found = scan_memory(child.pid(), &needles).1;
            if found.is_empty() {
                break;
            }
        }
        assert!(found.is_empty(), "10 s after a request: {found:#?}");
    })
    .await
    .expect("joins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_and_a_compressed_answer_get_502_in_words() {
    let p = platform().await;
    let up = Upstream::start().await;
    let script =
        r#"curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/gzip"; echo"#;
    let o = output(brokered_run(&p, &up, &["--", "sh", "-c", script]), None).await;
    assert!(
        text(&o.stdout).contains("compressed its answer although asked not to"),
        "{}",
        text(&o.stdout)
    );
    // Without the upstream's CA (LATCH_CA_CERT) the broker does not trust it: nothing is sent.
    let before = up.seen().len();
    let mut command = brokered_run(&p, &up, &["--", "sh", "-c", script]);
    command.env_remove("LATCH_CA_CERT");
    let o = output(command, None).await;
    assert!(
        text(&o.stdout).contains("its certificate is signed by a CA this machine does not trust"),
        "{} {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        text(&o.stdout).contains("LATCH_CA_CERT"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(up.seen().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_hands_out_placeholders_only_and_reports_the_run_on_sigterm() {
    let p = platform().await;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("latch.env");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let resolve = up.resolve("api.openai.com");
    let mut sidecar = Command::new(env!("CARGO_BIN_EXE_latch"));
    sidecar
        .args(["broker", "--listen", &listen, "--env-file"])
        .arg(&env_file)
        .args(["--resolve", &resolve])
        .env("LATCH_URL", &p.url)
        .env("LATCH_API_KEY", &p.owner)
        .env("LATCH_CA_CERT", up.ca.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::launcher::default_dispositions(&mut sidecar);
    let file = env_file.clone();
    let (o, agent) = tokio::task::spawn_blocking(move || {
        let mut child = Guard::spawn(&mut sidecar);
        for _ in 0..200 {
            if file.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The agent's container: the variables sourced, the real API named by its base URL.
        let agent = Command::new("sh")
            .arg("-c")
            .arg(r#"set -a; . "$1"; set +a; curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/models""#)
            .arg("sh")
            .arg(&file)
            .output()
            .expect("agent runs");
        nix::sys::signal::kill(child.pid(), nix::sys::signal::Signal::SIGTERM).expect("signals");
        (child.wait_output(), agent)
    })
    .await
    .expect("joins");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&agent.stdout),
        "{\"ok\":true}",
        "{}",
        text(&agent.stderr)
    );
    assert_eq!(
        up.seen()[0].header("authorization"),
        Some(format!("Bearer {OPENAI}").as_str())
    );
    // The file: 0600, placeholders and URLs only; OTHER_TOKEN has no policy, so it is not
    // handed out at all (a warning says so).
    let mode = std::fs::metadata(&env_file)
        .expect("file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::read_to_string(&env_file).expect("reads");
    assert!(
        !written.contains(OPENAI) && !written.contains(OTHER),
        "{written}"
    );
    assert!(!written.contains("OTHER_TOKEN"), "{written}");
    assert!(
        written.contains(&format!("OPENAI_BASE_URL='http://{listen}/openai/v1'")),
        "{written}"
    );
    assert!(
        text(&o.stderr).contains("secret OTHER_TOKEN has no broker policy"),
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stdout).is_empty());
    // The run is recorded, and ended when the sidecar stopped.
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    let run = &runs["runs"][0];
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["outcome"]["exit_code"], 0, "{run}");
    assert_eq!(run["record"]["brokered"], json!(["OPENAI_API_KEY"]));
    // Bad input: a listen address other hosts can reach, and no output named.
    let refuse = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .arg("broker")
            .args(args)
            .env("LATCH_URL", &p.url)
            .env("LATCH_API_KEY", &p.owner);
        command
    };
    let o = output(refuse(&["--listen", "0.0.0.0:9", "--print-env"]), None).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("loopback address only"),
        "{}",
        text(&o.stderr)
    );
    let o = output(refuse(&["--listen", "127.0.0.1:9"]), None).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--print-env"),
        "{}",
        text(&o.stderr)
    );
}

/// The JSON array after `key: ` on the line of the recipe that starts with it (after its
/// indentation), e.g. a container's `args: [...]`, nth match.
fn recipe_array(yaml: &str, key: &str, nth: usize) -> Vec<String> {
    let line = yaml
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(&format!("{key}: [")))
        .nth(nth)
        .unwrap_or_else(|| panic!("no {key} #{nth} in the recipe"));
    serde_json::from_str(&line[key.len() + 2..]).expect("a JSON array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_recipe_runs_its_sidecar_and_its_wrapped_agent() {
    let p = platform().await;
    let up = Upstream::start().await;
    for (env, secret) in [
        ("agent-models", "OPENAI_API_KEY"),
        ("agent-tools", "OTHER_TOKEN"),
    ] {
        p.ok(
            &p.owner,
            Method::PUT,
            &format!("/v1/environments/{env}"),
            Some(json!({"secrets": [secret]})),
        )
        .await;
    }
    let key = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "agent-pod", "kind": "team"})),
        )
        .await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/recipes/kubernetes-broker.yaml"
    ))
    .expect("recipe");
    let dir = tempfile::tempdir().expect("dir");
    let shared = dir.path().join("env");
    std::fs::create_dir(&shared).expect("mkdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr")
        .port();
    // The pod's paths and port, mapped onto this machine.
    let local = |arg: &str| {
        arg.replace("/latch/env", &shared.display().to_string())
            .replace("127.0.0.1:8787", &format!("127.0.0.1:{port}"))
            .replace("exec python agent.py", r#"printf '%s\n' "$OTHER_TOKEN"; curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" "$OPENAI_BASE_URL/models""#)
    };
    let sidecar_args: Vec<String> = recipe_array(&yaml, "args", 0)
        .iter()
        .map(|a| local(a))
        .collect();
    assert_eq!(sidecar_args[0], "broker");
    let agent_command = recipe_array(&yaml, "command", 1);
    assert_eq!(agent_command[0], "/latch/bin/latch");
    let agent_args: Vec<String> = recipe_array(&yaml, "args", 1)
        .iter()
        .map(|a| local(a))
        .collect();
    let resolve = up.resolve("api.openai.com");
    let ca = up.ca.path().to_owned();
    let with_env = |command: &mut Command| {
        command
            .env("LATCH_URL", &p.url)
            .env("LATCH_API_KEY", &key)
            .env("LATCH_CA_CERT", &ca)
            .stdin(Stdio::null());
        crate::launcher::default_dispositions(command);
    };
    let mut sidecar = Command::new(env!("CARGO_BIN_EXE_latch"));
    sidecar.args(&sidecar_args).args(["--resolve", &resolve]);
    with_env(&mut sidecar);
    sidecar.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut agent = Command::new(env!("CARGO_BIN_EXE_latch"));
    agent.args(&agent_command[1..]).args(&agent_args);
    with_env(&mut agent);
    let file = shared.join("agent.env");
    let (sidecar_out, agent_out) = tokio::task::spawn_blocking(move || {
        let mut child = Guard::spawn(&mut sidecar);
        // The startup probe: `test -s` on the file.
        for _ in 0..200 {
            if std::fs::metadata(&file).is_ok_and(|m| m.len() > 0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let agent_out = agent.output().expect("agent runs");
        nix::sys::signal::kill(child.pid(), nix::sys::signal::Signal::SIGTERM).expect("signals");
        (child.wait_output(), agent_out)
    })
    .await
    .expect("joins");
    assert_eq!(
        sidecar_out.status.code(),
        Some(0),
        "{}",
        text(&sidecar_out.stderr)
    );
    assert!(agent_out.status.success(), "{}", text(&agent_out.stderr));
    // The agent got its tool secret from `latch run` (masked in its output) and reached the
    // model API through the sidecar with the real key, which it never held.
    assert_eq!(
        lines(&agent_out.stdout),
        ["[MASKED:OTHER_TOKEN]", "{\"ok\":true}"]
    );
    assert_eq!(
        up.seen()[0].header("authorization"),
        Some(format!("Bearer {OPENAI}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_proxy_mode_brokers_the_real_url_and_refuses_what_it_must() {
    let p = platform().await;
    let up = Upstream::start().await;
    let script = r#"set -u
printf 'proxy=%s no_proxy=%s node=%s\n' "$HTTPS_PROXY" "$NO_PROXY" "$NODE_USE_ENV_PROXY"
printf 'files %s %s %s %s\n' "$SSL_CERT_FILE" "$REQUESTS_CA_BUNDLE" "$CURL_CA_BUNDLE" "$GIT_SSL_CAINFO"
printf 'ca %s\n' "$NODE_EXTRA_CA_CERTS"
echo "1 $(curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" https://api.openai.com/v1/models)"
echo "2 $(curl -sS -o /dev/null -w '%{http_code}' -H 'Host: evil.example' -H "Authorization: Bearer $OPENAI_API_KEY" https://api.openai.com/v1/models)"
echo "3 $(curl -sS -o /dev/null -w '%{http_code}' -X TRACE https://api.openai.com/v1/models)"
echo "4 $(curl -sS -o /dev/null -w '%{http_code}' http://api.openai.com/v1/models)"
echo "5 $(curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" https://api.anthropic.com/v1/echo 2>&1 | grep -c 403)"
echo "6 $(curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" https://other.example/v1/echo)"
echo "7 $(curl -sS --connect-to api.anthropic.com:443:other.example:443 https://api.anthropic.com/v1/echo 2>&1)"
cat "$NODE_EXTRA_CA_CERTS" > "$1/ca"; tail -c 2000 "$SSL_CERT_FILE" > "$1/bundle-tail"; echo "$SSL_CERT_FILE" > "$1/bundle-path""#;
    let dir = tempfile::tempdir().expect("dir");
    let resolve = up.resolve("api.anthropic.com");
    let mut command = brokered_run(
        &p,
        &up,
        &[
            "--secrets",
            "OPENAI_API_KEY",
            "--allow-host",
            "other.example",
            "--allow-host",
            "api.anthropic.com:8443",
            "--resolve",
            &resolve,
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ],
    );
    command.arg(dir.path());
    // The roots the bundle starts from: the upstream's test CA stands for the machine's roots,
    // so the blind tunnel to other.example verifies its real certificate.
    command.env("SSL_CERT_FILE", up.ca.path());
    let o = output(command, None).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = lines(&o.stdout);
    assert!(
        out[0].starts_with("proxy=http://127.0.0.1:")
            && out[0].ends_with(" no_proxy=127.0.0.1,localhost,::1 node=1"),
        "{}",
        out[0]
    );
    let files: Vec<&str> = out[1].split(' ').skip(1).collect();
    assert!(
        files.iter().all(|f| *f == files[0]) && files[0].ends_with("ca-bundle.pem"),
        "{}",
        out[1]
    );
    assert!(out[2].ends_with("run-ca.pem"), "{}", out[2]);
    // 1: the real URL, through the proxy: the upstream got the real key.
    assert_eq!(out[3], "1 {\"ok\":true}");
    // 2: a request inside the api.openai.com tunnel that names another host: 421.
    assert_eq!(out[4], "2 421");
    // 3: TRACE 405; 4: plain HTTP to a brokered host 403.
    assert_eq!(out[5], "3 405");
    assert_eq!(out[6], "4 403");
    // 5: api.anthropic.com on 443 is neither brokered nor allowed (only :8443 is): the CONNECT
    // is refused.
    assert_eq!(out[7], "5 1", "{}", text(&o.stdout));
    // 6: an allowed host gets a blind tunnel: latch does not see inside, so the placeholder
    // arrives as the command sent it.
    let seen = up.seen();
    let placeholder_sent = seen
        .iter()
        .find(|s| s.host == "other.example")
        .expect("other.example reached");
    let auth = placeholder_sent.header("authorization").expect("sent");
    assert!(
        auth.starts_with("Bearer sk-proj-") && auth != format!("Bearer {OPENAI}"),
        "{auth}"
    );
    assert!(
        out[8].starts_with("6 {\"auth\":\"Bearer sk-proj-"),
        "{}",
        out[8]
    );
    assert!(
        text(&o.stderr).contains("refused the command's connection to api.anthropic.com: it is neither brokered nor named by --allow-host"),
        "{}",
        text(&o.stderr)
    );
    // 7: a tunnel opened for other.example whose TLS names another host is closed.
    assert!(out[9].starts_with("7 curl: (35)"), "{}", text(&o.stdout));
    // Only what was allowed reached the upstream: the key once, to api.openai.com.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].host, "api.openai.com");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {OPENAI}").as_str())
    );
    // The CA files: the run CA alone, and the bundle ending with it; removed after the run.
    let ca = std::fs::read_to_string(dir.path().join("ca")).expect("ca");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let tail = std::fs::read_to_string(dir.path().join("bundle-tail")).expect("bundle");
    assert!(tail.ends_with(&ca), "the bundle ends with the run CA");
    let bundle = std::fs::read_to_string(dir.path().join("bundle-path")).expect("path");
    assert!(
        !std::path::Path::new(bundle.trim()).exists(),
        "{bundle} left behind"
    );
}

/// Which of `modules` `python3` can import (the Python clients are exercised where installed;
/// `.ci/run` installs them). When none is, says that the test skips.
fn python_modules(modules: &[&'static str]) -> Vec<&'static str> {
    let installed: Vec<&'static str> = modules
        .iter()
        .copied()
        .filter(|module| {
            Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if installed.is_empty() {
        eprintln!(
            "skipped: none of {} is installed for python3",
            modules.join(", ")
        );
    }
    installed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_and_httpx_reach_the_real_url_through_the_proxy() {
    let clients = python_modules(&["requests", "httpx"]);
    if clients.is_empty() {
        return;
    }
    let p = platform().await;
    let up = Upstream::start().await;
    for client in &clients {
        // Each reads its own CA variable: requests REQUESTS_CA_BUNDLE, httpx SSL_CERT_FILE.
        let code = format!(
            "import os, {client}\n\
             r = {client}.get('https://api.openai.com/v1/models', headers={{'Authorization': 'Bearer ' + os.environ['OPENAI_API_KEY']}})\n\
             print(r.status_code, r.text)\n\
             r = {client}.get(os.environ['OPENAI_BASE_URL'] + '/models', headers={{'Authorization': 'Bearer ' + os.environ['OPENAI_API_KEY']}})\n\
             print(r.status_code, r.text)"
        );
        let o = output(
            brokered_run(
                &p,
                &up,
                &["--secrets", "OPENAI_API_KEY", "--", "python3", "-c", &code],
            ),
            None,
        )
        .await;
        assert!(o.status.success(), "{client}: {}", text(&o.stderr));
        assert_eq!(
            lines(&o.stdout),
            ["200 {\"ok\":true}", "200 {\"ok\":true}"],
            "{client}"
        );
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 2 * clients.len());
    assert!(
        seen.iter()
            .all(|s| s.header("authorization") == Some(format!("Bearer {OPENAI}").as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_and_anthropic_python_sdks_work_unchanged_through_their_base_urls() {
    let sdks = python_modules(&["openai", "anthropic"]);
    if sdks.is_empty() {
        return;
    }
    let p = platform().await;
    p.ok(
        &p.owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "ANTHROPIC_API_KEY", "value": ANTHROPIC, "broker": {"preset": "anthropic"}})),
    )
    .await;
    let up = Upstream::start().await;
    let anthropic = up.resolve("api.anthropic.com");
    for sdk in &sdks {
        let code = match *sdk {
            "openai" => "from openai import OpenAI\nprint([m.id for m in OpenAI().models.list()])",
            _ => {
                "from anthropic import Anthropic\nprint([m.id for m in Anthropic().models.list()])"
            }
        };
        let o = output(
            brokered_run(
                &p,
                &up,
                &["--resolve", &anthropic, "--", "python3", "-c", code],
            ),
            None,
        )
        .await;
        assert!(o.status.success(), "{sdk}: {}", text(&o.stderr));
        let want = if *sdk == "openai" {
            "['gpt-test']"
        } else {
            "['claude-test']"
        };
        assert_eq!(text(&o.stdout).trim(), want, "{sdk}");
    }
    let seen = up.seen();
    assert_eq!(seen.len(), sdks.len());
    for s in &seen {
        match s.host.as_str() {
            "api.openai.com" => assert_eq!(
                s.header("authorization"),
                Some(format!("Bearer {OPENAI}").as_str())
            ),
            // The Anthropic SDK sends its key as a bearer token: the preset takes either form.
            _ => assert_eq!(
                s.header("authorization"),
                Some(format!("Bearer {ANTHROPIC}").as_str())
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_fetch_reaches_the_api_through_its_broker_url() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("skipped: node is not installed");
        return;
    }
    let p = platform().await;
    let up = Upstream::start().await;
    // Node 20 ignores the proxy variables; a base URL works for every version.
    let script = "const r = await fetch(process.env.LATCH_BROKER_URL_OPENAI_API_KEY + 'v1/models', \
                  {headers: {authorization: 'Bearer ' + process.env.OPENAI_API_KEY}}); \
                  console.log(r.status, await r.text());";
    let o = output(
        brokered_run(
            &p,
            &up,
            &[
                "--secrets",
                "OPENAI_API_KEY",
                "--",
                "node",
                "--input-type=module",
                "-e",
                script,
            ],
        ),
        None,
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "200 {\"ok\":true}");
    assert_eq!(
        up.seen()[0].header("authorization"),
        Some(format!("Bearer {OPENAI}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_to_the_broker_is_refused_and_it_keeps_serving() {
    let p = platform().await;
    let up = Upstream::start().await;
    // Raw sockets against the broker's port: garbage, a CONNECT to no host, a tunnel to an
    // allowed host that never speaks TLS, a 70 KiB "ClientHello", a header block of 1 MiB; then
    // a good request still works and latch ends normally.
    let code = r"
import os, socket
host, port = os.environ['HTTPS_PROXY'].rsplit('/', 1)[1].split(':')
def talk(data, read=True):
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(data)
        return s.recv(200).split(b'\r\n')[0].decode() if read else ''
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()
print('garbage', talk(b'\x16\x03\x01\x00\xff' + os.urandom(300) + b'\r\n\r\n') or 'closed')
print('bad-target', talk(b'CONNECT *.openai.com:443 HTTP/1.1\r\nHost: x\r\n\r\n'))
print('big-header', talk(b'GET /openai/v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * (1 << 20) + b'\r\n\r\n') or 'closed')
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b'CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n')
print('tunnel', s.recv(200).split(b'\r\n')[0].decode())
s.sendall(b'\x16\x03\x01\xff\xff' + b'\x01' * 65535 + b'\x16\x03\x01\xff\xff' + b'\x01' * 65535)
try:
    print('huge-hello', 'closed' if s.recv(10) == b'' else 'answered')
except OSError as e:
    print('huge-hello', type(e).__name__)
s.close()
import urllib.request
r = urllib.request.Request(os.environ['OPENAI_BASE_URL'] + '/models', headers={'Authorization': 'Bearer ' + os.environ['OPENAI_API_KEY']})
print('after', urllib.request.urlopen(r).read().decode())
";
    let o = output(
        brokered_run(
            &p,
            &up,
            &[
                "--secrets",
                "OPENAI_API_KEY",
                "--allow-host",
                "other.example",
                "--",
                "python3",
                "-c",
                code,
            ],
        ),
        None,
    )
    .await;
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let out = lines(&o.stdout);
    assert!(
        out[0].starts_with("garbage HTTP/1.1 400") || out[0] == "garbage closed",
        "{out:?}"
    );
    assert_eq!(out[1], "bad-target HTTP/1.1 400 Bad Request", "{out:?}");
    assert!(
        out[2].starts_with("big-header HTTP/1.1 431")
            || out[2].starts_with("big-header HTTP/1.1 400")
            || out[2] == "big-header closed"
            || out[2].starts_with("big-header Connection"),
        "{out:?}"
    );
    assert_eq!(out[3], "tunnel HTTP/1.1 200 OK", "{out:?}");
    assert!(
        out[4] == "huge-hello closed" || out[4].starts_with("huge-hello Connection"),
        "{out:?}"
    );
    assert_eq!(out[5], "after {\"ok\":true}", "{out:?}");
    // Nothing of that reached the upstream but the last request.
    assert_eq!(up.seen().len(), 1);
}
