//! Bring your own provider key (DESIGN §14): the real `latch byok` against a private HOME (and a
//! real Secret Service where one can run), and the real `latch run` against an in-process
//! platform and a local HTTPS provider that answers per key, so the failure rules are seen as
//! the provider and the command see them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Response;
use reqwest::Method;
use serde_json::{Value, json};

use crate::broker::{Seen, UpBody, Upstream};
use crate::careful::{assert_latch_lines, latch};
use crate::launcher::{latch_run, output, scan_memory, start_until, text};
use crate::server::{Platform, start};

/// The team's OpenAI key on the platform.
const TEAM: &str = "sk-proj-TeAm0k9f8e7d6c5b4a39281706f5e4d3c2b1a0ZYXWVUTSrqponmlk";
/// A device key the provider accepts.
const DEVICE: &str = "sk-proj-DeVok1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p7q8r9s0tUvWxYz12";
/// A device key the provider refuses as invalid.
const DEVICE_INVALID: &str = "sk-proj-DeVbad9z8y7x6w5v4u3t2s1r0q9p8o7n6m5l4k3j2i1h0gFeDcBa98";
/// A device key the provider rate-limits.
const DEVICE_LIMITED: &str = "sk-proj-DeVrate4f5g6h7j8k9l0z1x2c3v4b5n6m7q8w9e0r1t2y3uIoPaSd45";
/// A device key whose quota is spent, with a `Retry-After`.
const DEVICE_WAIT: &str = "sk-proj-DeVwait7u8i9o0p1a2s3d4f5g6h7j8k9l0q1w2e3r4t5y6uIoPzXc67";
/// A device key for Anthropic.
const ANTHROPIC_DEVICE: &str =
    "sk-ant-api03-DeVok9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7Zy6Xw5Vu4Ts3Rq2Po1Nm0-AbCdEfAA";
/// A device key for Gemini.
const GEMINI_DEVICE: &str = "AIzaSyDeVok0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5";

/// The provider: answers by the key a request carries (`Authorization: Bearer`, `x-api-key` or
/// `x-goog-api-key`), as the real ones do.
fn provider(seen: &Seen) -> Response<UpBody> {
    let key = seen
        .header("authorization")
        .map(|a| a.trim_start_matches("Bearer ").to_owned())
        .or_else(|| seen.header("x-api-key").map(str::to_owned))
        .or_else(|| seen.header("x-goog-api-key").map(str::to_owned))
        .unwrap_or_default();
    let answer = |status: u16, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())).boxed())
            .expect("response")
    };
    if seen.host.starts_with("api.anthropic.com") && seen.header("anthropic-version").is_none() {
        return answer(
            400,
            json!({"error": {"message": "anthropic-version is required"}}),
        );
    }
    match key.as_str() {
        TEAM => answer(200, json!({"key": "team"})),
        DEVICE | ANTHROPIC_DEVICE | GEMINI_DEVICE => answer(200, json!({"key": "device"})),
        DEVICE_LIMITED => answer(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        ),
        DEVICE_WAIT => Response::builder()
            .status(429)
            .header("retry-after", "30")
            .body(
                Full::new(Bytes::from(
                    json!({"error": {"type": "insufficient_quota", "code": "insufficient_quota"}})
                        .to_string(),
                ))
                .boxed(),
            )
            .expect("response"),
        _ => answer(
            401,
            json!({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}),
        ),
    }
}

async fn upstream() -> Upstream {
    Upstream::serving(
        &[
            "api.openai.com",
            "api.anthropic.com",
            "generativelanguage.googleapis.com",
        ],
        provider,
    )
    .await
}

/// Which key each request to the provider carried, in order (`device`, `team`, ...).
fn keys_seen(up: &Upstream) -> Vec<&'static str> {
    up.seen()
        .iter()
        .map(|s| {
            let auth = s.header("authorization").unwrap_or_default();
            [
                (TEAM, "team"),
                (DEVICE, "device"),
                (DEVICE_INVALID, "invalid"),
                (DEVICE_LIMITED, "limited"),
                (DEVICE_WAIT, "wait"),
            ]
            .into_iter()
            .find(|(key, _)| auth == format!("Bearer {key}"))
            .map_or("other", |(_, what)| what)
        })
        .collect()
}

/// A private HOME for the device store, with nothing that would make a run look like CI or
/// let a keyring be found by accident.
fn private(command: &mut Command, home: &Path) {
    command
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("CODESPACES")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("LATCH_LOG")
        .env_remove("NO_COLOR");
    for ci in latch::core::byok::CI_VARIABLES {
        command.env_remove(ci);
    }
}

/// `latch ARGS` with HOME at `home`, `input` on stdin.
async fn byok(home: &Path, args: &[&str], input: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command.args(args);
    private(&mut command, home);
    if input.is_none() {
        command.stdin(Stdio::null());
    }
    output(command, input.map(|i| i.as_bytes().to_vec())).await
}

/// Stores `key` for `provider` in an insecure store under `home`.
async fn store(home: &Path, provider: &str, key: &str) {
    let out = byok(
        home,
        &[
            "byok",
            "set",
            provider,
            "--value-file",
            "-",
            "--insecure-store",
        ],
        Some(&format!("{key}\n")),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Every file under `dir`, read.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("reads").flatten() {
            let path = entry.path();
            let kind = entry.file_type().expect("type");
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_file() {
                found.push((path.clone(), std::fs::read(&path).expect("reads")));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_round_trips_in_a_private_home_and_holds_no_plaintext() {
    let home = tempfile::tempdir().expect("home");
    let empty = byok(home.path(), &["byok", "list"], None).await;
    assert!(empty.status.success());
    assert!(
        text(&empty.stdout).contains("no provider keys on this device"),
        "{}",
        text(&empty.stdout)
    );
    store(home.path(), "openai", DEVICE).await;
    store(home.path(), "google", GEMINI_DEVICE).await;
    let dir = home.path().join(".config/latch");
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    for (path, bytes) in files_under(home.path()) {
        assert_eq!(
            std::fs::metadata(&path).expect("file").permissions().mode() & 0o777,
            0o600,
            "{}",
            path.display()
        );
        for key in [DEVICE, GEMINI_DEVICE, "DeVok", "AIza"] {
            assert!(!contains(&bytes, key), "{} holds {key}", path.display());
        }
    }
    let listed = byok(home.path(), &["byok", "list"], None).await;
    let shown = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(shown.contains("openai    OPENAI_API_KEY  …Yz12"), "{shown}");
    assert!(shown.contains("gemini    GEMINI_API_KEY  …n4o5"), "{shown}");
    assert!(shown.contains("not in a keyring"), "{shown}");
    assert!(!shown.contains("DeVok"), "{shown}");
    let json_list = byok(home.path(), &["--json", "byok", "list"], None).await;
    let rows: Value = serde_json::from_slice(&json_list.stdout).expect("json");
    assert_eq!(rows[0]["variable"], "OPENAI_API_KEY");
    assert_eq!(rows[0]["preview"], "…Yz12");
    assert_eq!(rows[1]["provider"], "gemini");
    assert!(!json_list.stdout.is_empty() && !contains(&json_list.stdout, DEVICE));
    // Replacing says so; removing one leaves the other; removing the last leaves nothing.
    let replaced = byok(
        home.path(),
        &["byok", "set", "openai", "--value-file", "-"],
        Some(DEVICE_INVALID),
    )
    .await;
    assert!(text(&replaced.stdout).starts_with("replaced your OpenAI key"));
    let removed = byok(home.path(), &["byok", "remove", "openai"], None).await;
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let again = byok(home.path(), &["byok", "remove", "openai"], None).await;
    assert_eq!(again.status.code(), Some(78));
    assert!(text(&again.stderr).contains("no OpenAI key on this device"));
    byok(home.path(), &["byok", "remove", "gemini"], None).await;
    assert!(files_under(home.path()).is_empty(), "nothing stays behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let home = tempfile::tempdir().expect("home");
    let cases: [(&[&str], Option<&str>, i32, &str); 7] = [
        (
            &["byok", "set", "azure", "--value-file", "-"],
            Some(DEVICE),
            2,
            "unknown provider `azure`",
        ),
        (
            &["byok", "set", "openai", "--value-file", "-"],
            Some(""),
            78,
            "the key is empty",
        ),
        (
            &["byok", "set", "openai", "--value-file", "-"],
            Some("sk-proj-has a space in it 12345"),
            78,
            "one token of printable ASCII",
        ),
        (
            &["byok", "set", "openai", "--value-file", "-"],
            Some("sk-short"),
            78,
            "20 to 512 characters",
        ),
        (
            &["byok", "set", "openai", "--value-file", "/nonexistent/key"],
            None,
            78,
            "cannot read /nonexistent/key",
        ),
        (
            &["byok", "set", "openai"],
            None,
            2,
            "no terminal to prompt for the key",
        ),
        (&["byok", "remove"], None, 2, "PROVIDER"),
    ];
    for (args, input, code, says) in cases {
        let out = byok(home.path(), args, input).await;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("sk-proj-has"), "{err}");
    }
    // 1 MiB of key on stdin: refused, not read whole.
    let huge = "k".repeat(1 << 20);
    let out = byok(
        home.path(),
        &[
            "byok",
            "set",
            "openai",
            "--value-file",
            "-",
            "--insecure-store",
        ],
        Some(&huge),
    )
    .await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(!home.path().join(".config/latch/byok.v1").exists());
    // A store someone altered does not open, and says how to start over.
    store(home.path(), "openai", DEVICE).await;
    let path = home.path().join(".config/latch/byok.v1");
    let mut sealed = std::fs::read(&path).expect("store");
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    std::fs::write(&path, sealed).expect("writes");
    let out = byok(home.path(), &["byok", "list"], None).await;
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("does not open with its device key"), "{err}");
    assert!(err.contains("latch byok remove --all"), "{err}");
    assert_latch_lines(&err);
    let out = byok(home.path(), &["byok", "remove", "--all"], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(files_under(home.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_keyring_the_store_refuses_and_says_why() {
    let home = tempfile::tempdir().expect("home");
    let out = byok(
        home.path(),
        &["byok", "set", "openai", "--value-file", "-"],
        Some(DEVICE),
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("the OS keyring cannot be used"), "{err}");
    assert!(err.contains("--insecure-store"), "{err}");
    assert!(err.contains("dbus-run-session"), "{err}");
    assert_latch_lines(&err);
    assert!(!home.path().join(".config/latch/byok.v1").exists());
    assert!(!home.path().join(".config/latch/byok.key").exists());
}

/// A real Secret Service (gnome-keyring in a private D-Bus session), where the machine has one
/// to start (`.ci/run` installs it): the device key goes into the keyring, never a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_secret_service_keeps_the_device_key_in_the_keyring() {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !have("dbus-run-session") || !have("gnome-keyring-daemon") {
        eprintln!(
            "skipped: no dbus-run-session or gnome-keyring-daemon here (.ci/run installs both)"
        );
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let elsewhere = tempfile::tempdir().expect("dir");
    let key_file = elsewhere.path().join("key");
    std::fs::write(&key_file, DEVICE).expect("writes");
    let script = format!(
        "printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 || exit 90
L={latch}
$L byok set openai --value-file {key} || exit 91
$L byok list || exit 92
ls -a {home}/.config/latch
$L byok remove openai || exit 93
ls -a {home}/.config/latch",
        latch = env!("CARGO_BIN_EXE_latch"),
        key = key_file.display(),
        home = home.path().display()
    );
    let mut command = Command::new("dbus-run-session");
    command.args(["--", "sh", "-c", &script]);
    private(&mut command, home.path());
    command.env("XDG_DATA_HOME", home.path().join("data"));
    let out = output(command, None).await;
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("its key in the OS keyring"), "{shown}");
    assert!(shown.contains("openai    OPENAI_API_KEY  …Yz12"), "{shown}");
    // The store held only the sealed file: its key never touched the disk.
    let listing: Vec<&str> = shown.lines().filter(|l| l.starts_with("byok")).collect();
    assert_eq!(listing, ["byok.v1"], "{shown}");
    for (path, bytes) in files_under(home.path()) {
        assert!(!contains(&bytes, DEVICE), "{}", path.display());
    }
}

/// The team's `OPENAI_API_KEY`, brokered with the openai preset when `brokered`.
async fn platform(brokered: bool) -> Platform {
    let p = start().await;
    let mut secret = json!({"scope": "team", "name": "OPENAI_API_KEY", "value": TEAM});
    if brokered {
        secret["broker"] = json!({"preset": "openai"});
    }
    p.ok(&p.owner, Method::POST, "/v1/secrets", Some(secret))
        .await;
    p
}

/// `latch run ARGS` with HOME at `home`.
fn run_in(p: &Platform, home: &Path, args: &[&str]) -> Command {
    let mut command = latch_run(p, args);
    private(&mut command, home);
    command
}

/// A script that says which key the command got, without printing it.
const WHICH: &str = r#"if [ "$OPENAI_API_KEY" = "$WANT_DEVICE" ]; then echo device; elif [ "$OPENAI_API_KEY" = "$WANT_TEAM" ]; then echo team; else echo other; fi"#;

fn which(mut command: Command) -> Command {
    command.env("WANT_DEVICE", DEVICE).env("WANT_TEAM", TEAM);
    command
}

/// A plain-HTTP relay to the platform that keeps every byte latch sends it.
pub(crate) struct Recorder {
    pub(crate) url: String,
    pub(crate) sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub(crate) async fn start(to: &str) -> Self {
        let target = to.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&sent);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_server, mut to_server) = server.into_split();
                    let (mut from_client, mut to_client) = client.split();
                    let upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = from_client.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                let _ = to_server.shutdown().await;
                                return;
                            }
                            kept.lock().expect("lock").extend_from_slice(&buf[..n]);
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let downstream = tokio::io::copy(&mut from_server, &mut to_client);
                    let _ = tokio::join!(upstream, downstream);
                });
            }
        });
        Self { url, sent, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_run_gets_the_device_key_and_the_platform_never_sees_it() {
    let p = platform(false).await;
    let home = tempfile::tempdir().expect("home");
    store(home.path(), "openai", DEVICE).await;
    let recorder = Recorder::start(&p.url).await;
    // --byok: this machine may be a container or a CI runner, where the rule otherwise skips.
    let mut command = which(run_in(
        &p,
        home.path(),
        &[
            "-v",
            "--byok",
            "--secrets",
            "OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            &format!("{WHICH}; printf '%s\\n' \"$OPENAI_API_KEY\""),
        ],
    ));
    command.env("LATCH_URL", &recorder.url);
    let out = output(command, None).await;
    let (shown, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    // The command got the device key, masked like any secret when it printed it.
    assert_eq!(shown, "device\n[MASKED:OPENAI_API_KEY]\n", "{err}");
    assert!(
        err.contains(
            "OPENAI_API_KEY: your own OpenAI key from this device (BYOK) instead of the team's"
        ),
        "{err}"
    );
    assert!(
        err.contains("(--insecure-store), not in a keyring"),
        "{err}"
    );
    assert!(!err.contains(DEVICE), "{err}");
    // latch told the platform the name, never the key.
    let sent = recorder.sent.lock().expect("lock").clone();
    assert!(
        contains(&sent, "\"byok\":[\"OPENAI_API_KEY\"]"),
        "{}",
        text(&sent)
    );
    assert!(!contains(&sent, DEVICE) && !contains(&sent, "DeVok"));
    // The record says the name came from the device; nothing the platform holds has the key.
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    let record = &runs["runs"][0]["record"];
    assert_eq!(record["byok"], json!(["OPENAI_API_KEY"]), "{record}");
    assert_eq!(record["byok_fallback"], json!(false), "{record}");
    let audit = p.ok(&p.owner, Method::GET, "/v1/audit", None).await;
    let id = runs["runs"][0]["id"].as_str().expect("id").to_owned();
    let shown_run = latch(&p, &p.owner, &["runs", "show", &id]).await;
    let dir = p.stop().await;
    for (path, bytes) in files_under(dir.path()) {
        assert!(
            !contains(&bytes, DEVICE),
            "{} holds the device key",
            path.display()
        );
    }
    assert!(
        text(&shown_run.stdout).contains("the user's own device key stood in (BYOK)"),
        "{}",
        text(&shown_run.stdout)
    );
    for answer in [runs.to_string(), audit.to_string(), text(&shown_run.stdout)] {
        assert!(!answer.contains(DEVICE), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_run_rule_and_the_team_setting_hold_in_real_runs() {
    let p = platform(false).await;
    let home = tempfile::tempdir().expect("home");
    store(home.path(), "openai", DEVICE).await;
    let got = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["-v", "--secrets", "OPENAI_API_KEY"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "sh", "-c", WHICH]);
        let mut command = which(run_in(&p, home.path(), &all));
        for (n, v) in env {
            command.env(n, v);
        }
        output(command, None)
    };
    // In CI (whatever the machine), the team's key, and the reason at -v.
    let ci = got(&[], &[("CI", "true")]).await;
    assert_eq!(text(&ci.stdout), "team\n", "{}", text(&ci.stderr));
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    assert!(runs["runs"][0]["record"].get("byok").is_none());
    assert!(
        text(&ci.stderr)
            .contains("your device's provider keys (BYOK) are not used: CI=true is set (a CI run)"),
        "{}",
        text(&ci.stderr)
    );
    let spaces = got(&[], &[("CODESPACES", "true")]).await;
    assert_eq!(text(&spaces.stdout), "team\n");
    // --byok overrides CI; --no-byok always wins.
    assert_eq!(
        text(&got(&["--byok"], &[("CI", "true")]).await.stdout),
        "device\n"
    );
    assert_eq!(text(&got(&["--no-byok"], &[]).await.stdout), "team\n");
    let both = got(&["--byok", "--no-byok"], &[]).await;
    assert_eq!(both.status.code(), Some(2));
    // A schedule trigger is no person: --byok is refused before anything starts.
    let scheduled = got(&["--byok", "--trigger", "schedule"], &[]).await;
    assert_eq!(
        scheduled.status.code(),
        Some(2),
        "{}",
        text(&scheduled.stderr)
    );
    assert!(text(&scheduled.stderr).contains("trigger schedule is not user-initiated"));
    // A team key never gets device keys.
    let team_key = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "ci", "kind": "team"})),
        )
        .await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let mut command = which(run_in(
        &p,
        home.path(),
        &[
            "--byok",
            "--secrets",
            "OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            WHICH,
        ],
    ));
    command.env("LATCH_API_KEY", &team_key);
    let refused = output(command, None).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("a team key never uses device keys"));
    // The API refuses it too, whatever a client claims.
    let (status, body) = p
        .call(
            &team_key,
            Method::POST,
            "/v1/runs",
            Some(json!({"byok": ["OPENAI_API_KEY"], "byok_forced": true})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (403, Some("byok_refused"))
    );
    // A builder may not change the team's setting; the owner may, and whoami shows it.
    let builder = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "bo", "role": "builder"})),
        )
        .await["key"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let denied = latch(&p, &builder, &["team", "set", "--byok", "forbidden"]).await;
    assert_eq!(denied.status.code(), Some(77), "{}", text(&denied.stderr));
    let set = latch(&p, &p.owner, &["team", "set", "--byok", "forbidden"]).await;
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(text(&set.stdout).contains("byok: forbidden"));
    let me = latch(&p, &builder, &["whoami"]).await;
    assert!(
        text(&me.stdout)
            .contains("byok:       forbidden (members' own provider keys are never used)"),
        "{}",
        text(&me.stdout)
    );
    // Forbidden: the team's key, the reason said; --byok refused by the platform (exit 77).
    let auto = got(&["--byok"], &[]).await;
    assert_eq!(auto.status.code(), Some(77), "{}", text(&auto.stderr));
    assert!(
        text(&auto.stderr).contains("the team forbids BYOK"),
        "{}",
        text(&auto.stderr)
    );
    let audit = p
        .ok(&p.owner, Method::GET, "/v1/audit?action=team.update", None)
        .await;
    assert_eq!(
        audit["events"][0]["detail"],
        json!({"byok": {"before": "allowed", "after": "forbidden"}})
    );
    // Bad settings are refused in words.
    let bad = latch(&p, &p.owner, &["team", "set", "--byok", "maybe"]).await;
    assert_eq!(bad.status.code(), Some(2));
    let (status, _) = p
        .call(
            &p.owner,
            Method::PATCH,
            "/v1/team",
            Some(json!({"byok": "maybe"})),
        )
        .await;
    assert_eq!(status.as_u16(), 400);
    let (status, body) = p
        .call(
            &p.owner,
            Method::POST,
            "/v1/runs",
            Some(json!({"byok": ["SOME_TOKEN"]})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_byok"))
    );
}

/// `latch run --broker` of curl calls to the provider through the broker, with the device key
/// `key` stored, and the provider's answers printed.
async fn brokered_calls(
    p: &Platform,
    up: &Upstream,
    home: &Path,
    extra: &[&str],
    calls: usize,
) -> std::process::Output {
    let script = (0..calls)
        .map(|i| {
            format!(
                "curl -sS -D - -o /tmp/latch-byok-$$ -H \"Authorization: Bearer $OPENAI_API_KEY\" --data-binary 'call-{i}' \"$OPENAI_BASE_URL/chat/completions\" | grep -i -E '^(HTTP|x-latch-byok)' | tr -d '\\r'; cat /tmp/latch-byok-$$; echo; rm -f /tmp/latch-byok-$$"
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let resolve = up.resolve("api.openai.com");
    let mut args = vec![
        "-v",
        "--byok",
        "--resolve",
        &resolve,
        "--secrets",
        "OPENAI_API_KEY",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let mut command = run_in(p, home, &args);
    command.env("LATCH_CA_CERT", up.ca.path());
    output(command, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_device_key_halts_the_request_and_a_limit_is_passed_on() {
    let p = platform(true).await;
    let up = upstream().await;
    let home = tempfile::tempdir().expect("home");
    store(home.path(), "openai", DEVICE_INVALID).await;
    let out = brokered_calls(&p, &up, home.path(), &[], 2).await;
    let (shown, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    // Each call got the provider's 401, marked; the team's key was never tried.
    assert_eq!(shown.matches("HTTP/1.1 401").count(), 2, "{shown}");
    assert_eq!(shown.matches("x-latch-byok: invalid").count(), 2, "{shown}");
    assert!(shown.contains("Incorrect API key provided"), "{shown}");
    assert_eq!(keys_seen(&up), ["invalid", "invalid"]);
    // One clear line, naming the provider and what to do.
    let notice = "latch: warning: your OpenAI key (BYOK) was refused by api.openai.com as invalid (HTTP 401): the command got the provider's error, and the team's OPENAI_API_KEY is not used in its place";
    assert_eq!(err.matches(notice).count(), 1, "{err}");
    assert!(
        err.contains("(--fallback-to-team would replay it with the team's key; --no-byok runs with the team's)"),
        "{err}"
    );
    assert!(
        err.contains("`latch byok set openai` stores a new key"),
        "{err}"
    );
    assert!(
        !err.contains(DEVICE_INVALID) && !err.contains(TEAM),
        "{err}"
    );

    // A rate limit goes to the command as it came, and is not retried with the team's key.
    store(home.path(), "openai", DEVICE_LIMITED).await;
    let out = brokered_calls(&p, &up, home.path(), &[], 1).await;
    let shown = text(&out.stdout);
    assert!(shown.contains("HTTP/1.1 429"), "{shown}");
    assert!(shown.contains("x-latch-byok: rate_limited"), "{shown}");
    assert!(shown.contains("rate_limit_exceeded"), "{shown}");
    assert_eq!(keys_seen(&up)[2..], ["limited"]);
    assert!(
        text(&out.stderr).contains(
            "passed to the command, not retried (--fallback-to-team would replay it with the team's key)"
        ),
        "{}",
        text(&out.stderr)
    );
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    assert_eq!(runs["runs"][0]["record"]["byok"], json!(["OPENAI_API_KEY"]));
    assert!(runs["runs"][0]["outcome"].get("byok_fallbacks").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_to_team_replays_once_and_is_recorded() {
    let p = platform(true).await;
    let up = upstream().await;
    let home = tempfile::tempdir().expect("home");
    store(home.path(), "openai", DEVICE_INVALID).await;
    let out = brokered_calls(&p, &up, home.path(), &["--fallback-to-team"], 2).await;
    let (shown, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert_eq!(shown.matches("HTTP/1.1 200").count(), 2, "{shown}");
    assert_eq!(shown.matches("{\"key\":\"team\"}").count(), 2, "{shown}");
    // Device key first, then exactly one replay with the team's, the same body each time.
    assert_eq!(keys_seen(&up), ["invalid", "team", "invalid", "team"]);
    let bodies: Vec<String> = up.seen().iter().map(|s| text(&s.body)).collect();
    assert_eq!(bodies, ["call-0", "call-0", "call-1", "call-1"]);
    assert_eq!(
        err.matches("your OpenAI key (BYOK) was refused by api.openai.com as invalid (HTTP 401): requests go on with the team's OPENAI_API_KEY (--fallback-to-team)").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(
            "OPENAI_API_KEY: 2 requests made with your device key were replayed with the team's"
        ),
        "{err}"
    );
    assert!(
        !err.contains(TEAM) && !err.contains(DEVICE_INVALID),
        "{err}"
    );
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs?limit=1", None).await;
    let run = &runs["runs"][0];
    assert_eq!(run["record"]["byok"], json!(["OPENAI_API_KEY"]));
    assert_eq!(run["record"]["byok_fallback"], json!(true));
    assert_eq!(
        run["outcome"]["byok_fallbacks"],
        json!({"OPENAI_API_KEY": 2})
    );
    let shown = latch(
        &p,
        &p.owner,
        &["runs", "show", run["id"].as_str().expect("id")],
    )
    .await;
    assert!(
        text(&shown.stdout).contains(
            "the user's own device key stood in (BYOK); 2 requests replayed with this secret (--fallback-to-team)"
        ),
        "{}",
        text(&shown.stdout)
    );

    // A quota answer with Retry-After: replayed, then the team's key straight away while it runs.
    store(home.path(), "openai", DEVICE_WAIT).await;
    let out = brokered_calls(&p, &up, home.path(), &["--fallback-to-team"], 3).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).matches("{\"key\":\"team\"}").count(), 3);
    assert_eq!(keys_seen(&up)[4..], ["wait", "team", "team", "team"]);

    // Without the broker there is no fallback: said before anything starts.
    let p2 = platform(false).await;
    let out = which(run_in(
        &p2,
        home.path(),
        &[
            "--byok",
            "--fallback-to-team",
            "--secrets",
            "OPENAI_API_KEY",
            "--",
            "sh",
            "-c",
            WHICH,
        ],
    ));
    let out = output(out, None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--fallback-to-team needs the broker for OPENAI_API_KEY"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_byok_test_says_valid_invalid_or_limited() {
    let up = upstream().await;
    let home = tempfile::tempdir().expect("home");
    let test = |args: &[&str]| {
        let mut all = vec!["byok", "test"];
        all.extend_from_slice(args);
        let resolves = [
            up.resolve("api.openai.com"),
            up.resolve("api.anthropic.com"),
            up.resolve("generativelanguage.googleapis.com"),
        ];
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command.args(&all);
        for r in &resolves {
            command.args(["--resolve", r]);
        }
        private(&mut command, home.path());
        command
            .env("LATCH_CA_CERT", up.ca.path())
            .stdin(Stdio::null());
        output(command, None)
    };
    let none = test(&[]).await;
    assert_eq!(none.status.code(), Some(78));
    assert!(text(&none.stderr).contains("no provider keys on this device"));
    store(home.path(), "openai", DEVICE).await;
    store(home.path(), "anthropic", ANTHROPIC_DEVICE).await;
    store(home.path(), "gemini", GEMINI_DEVICE).await;
    let all = test(&[]).await;
    assert!(all.status.success(), "{}", text(&all.stderr));
    assert_eq!(
        text(&all.stdout),
        "openai: valid\nanthropic: valid\ngemini: valid\n"
    );
    // Each provider's own header, never the key in the URL.
    for s in up.seen() {
        assert!(!s.target.contains("key="), "{}", s.target);
    }
    store(home.path(), "openai", DEVICE_LIMITED).await;
    let limited = test(&["openai"]).await;
    assert!(limited.status.success(), "{}", text(&limited.stderr));
    assert_eq!(
        text(&limited.stdout),
        "openai: valid, but rate limited now (api.openai.com said so); runs get it anyway\n"
    );
    store(home.path(), "openai", DEVICE_INVALID).await;
    let invalid = test(&["openai"]).await;
    assert_eq!(invalid.status.code(), Some(77), "{}", text(&invalid.stderr));
    assert!(text(&invalid.stdout).contains(
        "openai: INVALID: api.openai.com refused it; `latch byok set openai` stores a new one"
    ));
    assert!(text(&invalid.stderr).contains("the OpenAI key was refused as invalid"));
    // The provider unreachable: said in words, exit 69.
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command.args([
        "byok",
        "test",
        "openai",
        "--resolve",
        "api.openai.com:443:127.0.0.1:9",
    ]);
    private(&mut command, home.path());
    command.stdin(Stdio::null());
    let down = output(command, None).await;
    assert_eq!(down.status.code(), Some(69), "{}", text(&down.stderr));
    assert!(
        text(&down.stdout).contains("openai: unknown: cannot connect to 127.0.0.1:9"),
        "{}",
        text(&down.stdout)
    );
    for out in [&all, &limited, &invalid, &down] {
        for key in [
            DEVICE,
            DEVICE_INVALID,
            DEVICE_LIMITED,
            ANTHROPIC_DEVICE,
            GEMINI_DEVICE,
        ] {
            assert!(!text(&out.stdout).contains(key) && !text(&out.stderr).contains(key));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_the_launchers_memory_finds_no_device_key() {
    let home = tempfile::tempdir().expect("home");
    store(home.path(), "openai", DEVICE).await;
    let device_key = std::fs::read_to_string(home.path().join(".config/latch/byok.key"))
        .expect("key file")
        .trim()
        .to_owned();
    let wait = "echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done";
    for (brokered, extra) in [
        (false, &[][..]),
        (true, &[][..]),
        (true, &["--fallback-to-team"][..]),
    ] {
        let p = platform(brokered).await;
        let mut args = vec!["--byok", "--no-pty", "--secrets", "OPENAI_API_KEY"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", wait]);
        let mut command = run_in(&p, home.path(), &args);
        let device_key = device_key.clone();
        let what = format!("brokered {brokered} {extra:?}");
        tokio::task::spawn_blocking(move || {
            let (child, _out, _) = start_until(&mut command, Stdio::null(), "ready");
            let needles: [(&str, &[u8]); 3] = [
                ("the device key", DEVICE.as_bytes()),
                ("the team's key", TEAM.as_bytes()),
                ("the store's key", device_key.as_bytes()),
            ];
            let (scanned, found) = scan_memory(child.pid(), &needles);
            assert!(scanned > 1 << 20, "{what}: scanned only {scanned} bytes");
            assert!(found.is_empty(), "{what}: {found:#?}");
        })
        .await
        .expect("joins");
    }
}
