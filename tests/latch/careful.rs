//! DESIGN §6 and §11 as a careful user meets them (issue 17): options checked before anything
//! happens, every row of the exit-code table provoked for real (against the real platform, and
//! against loopback servers that answer 503, hang, or present an untrusted certificate),
//! signals before the command starts, a killed latch, job control under a real shell, the dry
//! run, the run's id, report and leak gate, and latch's own output.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::json;

use crate::launcher::{Guard, latch_run, output, platform, text};
use crate::server::Platform;

/// `latch ARGS` with `url` and `key`, nothing else of latch's in the environment.
pub(crate) async fn latch_at(url: &str, key: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command
        .args(args)
        .env("LATCH_URL", url)
        .env("LATCH_API_KEY", key)
        .env_remove("LATCH_LOG")
        .env_remove("LATCH_CA_CERT")
        .env_remove("LATCH_REQUEST_TIMEOUT")
        .env_remove("NO_COLOR");
    output(command, None).await
}

pub(crate) async fn latch(p: &Platform, key: &str, args: &[&str]) -> Output {
    latch_at(&p.url, key, args).await
}

pub(crate) fn err(o: &Output) -> String {
    text(&o.stderr)
}

/// Every line latch writes on stderr is one of its own kinds, in words.
pub(crate) fn assert_latch_lines(stderr: &str) {
    for line in stderr.lines() {
        assert!(
            ["error", "warning", "note", "hint"]
                .iter()
                .any(|k| line.starts_with(&format!("latch: {k}: "))),
            "not a latch line: {line:?} in {stderr}"
        );
        for raw in ["Some(", "Os {", "latch::", "panicked", "\x1b["] {
            assert!(!line.contains(raw), "{raw:?} in {line:?}");
        }
    }
}

/// A well-formed key that no platform knows (for the loopback fakes).
fn stranger_key() -> String {
    use rand::SeedableRng;
    let Ok(key) = latch::core::apikey::ApiKey::generate(
        latch::core::apikey::KeyKind::Personal,
        &mut rand::rngs::StdRng::seed_from_u64(17),
    );
    key.expose().to_owned()
}

/// What a [`Fake`] platform does with each request.
#[derive(Clone, Copy)]
enum Answer {
    /// This status, with a body that is not latch's.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// A `whoami` answer.
    Whoami,
    /// latch's problem+json with this status and code.
    Problem(u16, &'static str),
}

/// A loopback HTTP server standing in for the platform: it counts connections and records each
/// request line. Stopped (its threads end) when dropped.
struct Fake {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, r, s) = (connections.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve_one(stream, answer, &r, &s));
            }
        });
        Self {
            url,
            connections,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(
    mut stream: std::net::TcpStream,
    answer: Answer,
    requests: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    requests.lock().expect("lock").push(line);
    let (status, body) = match answer {
        Answer::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        Answer::Status(status) => (status, "<html>busy</html>".to_owned()),
        Answer::Problem(status, code) => (
            status,
            json!({"type": "about:blank", "title": "x", "status": status, "code": code,
                   "detail": "the platform says no"})
            .to_string(),
        ),
        Answer::Whoami => (
            200,
            json!({"team": "t", "user": "u", "role": "owner", "key_kind": "personal",
                   "key_id": "AbCd1234", "capability": "manage", "identity": null})
            .to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/html\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// Waits (bounded) until `check` holds.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..800 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not happen within 20 s");
}

/// The one-letter state of `pid` (`R`, `S`, `T`, `Z`), if it exists.
fn state(pid: Pid) -> Option<char> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().chars().next()))
        .flatten()
}

async fn run_count(p: &Platform) -> usize {
    p.ok(&p.owner, Method::GET, "/v1/runs", None).await["runs"]
        .as_array()
        .map_or(0, Vec::len)
}

// Options ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_option_is_a_usage_error_before_any_request() {
    let p = platform().await;
    let o = output(latch_run(&p, &["--evn", "ci", "--", "env"]), None).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).starts_with("latch: error: unexpected argument '--evn'"),
        "{}",
        err(&o)
    );
    assert_latch_lines(&err(&o));
    assert!(o.stdout.is_empty());
    // An option with no command after it is a usage error too.
    let o = output(latch_run(&p, &["--env", "ci"]), None).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert_eq!(run_count(&p).await, 0, "no run was resolved");
    // The command starts at the first argument that is not an option: what follows is its own.
    let o = output(
        latch_run(
            &p,
            &[
                "--no-secrets",
                "sh",
                "-c",
                "echo \"$@\"",
                "sh",
                "--env",
                "x",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(text(&o.stdout), "--env x\n");
    assert_eq!(run_count(&p).await, 1);
    p.stop().await;
}

// The exit-code table ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn each_row_of_the_exit_code_table_against_the_real_platform() {
    let p = platform().await;
    let k = p.owner.clone();
    let builder = p
        .ok(
            &k,
            Method::POST,
            "/v1/members",
            Some(json!({"name": "bob", "role": "builder"})),
        )
        .await["key"]["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let team = p
        .ok(
            &k,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "agent", "kind": "team"})),
        )
        .await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let value = dir.path().join("value");
    std::fs::write(&value, "a-long-enough-value").expect("writes");
    let value = value.to_str().expect("utf8");
    let mut typo = k.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    let cases: Vec<(&str, String, Vec<&str>, i32, &str)> = vec![
        (
            "403: a builder reads the audit log",
            builder.clone(),
            vec!["audit"],
            77,
            "may not",
        ),
        (
            "a mistyped key, refused offline",
            typo.clone(),
            vec!["whoami"],
            77,
            "checksum",
        ),
        (
            "400 trigger_requires_user",
            team.clone(),
            vec!["run", "--trigger", "cli", "--", "true"],
            77,
            "trigger_requires_user",
        ),
        (
            "404: an environment that does not exist",
            k.clone(),
            vec!["env", "show", "nope"],
            66,
            "nope",
        ),
        (
            "404: a run that does not exist",
            k.clone(),
            vec!["runs", "show", "run_0000"],
            66,
            "",
        ),
        (
            "an unknown environment in latch run",
            k.clone(),
            vec!["run", "--env", "nope", "--", "true"],
            78,
            "latch env list",
        ),
        (
            "an unknown identity for a new key",
            k.clone(),
            vec![
                "api-key",
                "create",
                "--team",
                "--name",
                "x",
                "--identity",
                "ghost",
            ],
            78,
            "ghost",
        ),
        (
            "409: the secret exists already",
            k.clone(),
            vec!["secret", "create", "--team", "TOKEN", "--value-file", value],
            73,
            "TOKEN",
        ),
        (
            "a required secret is missing",
            k.clone(),
            vec!["run", "--require", "NOPE", "--", "true"],
            65,
            "NOPE",
        ),
        (
            "409: the member exists already",
            k.clone(),
            vec!["member", "add", "bob", "--role", "builder"],
            73,
            "already",
        ),
        (
            "the platform refused the input (400)",
            k.clone(),
            vec!["api-key", "create", "--personal", "--name", ""],
            65,
            "name",
        ),
    ];
    for (what, key, args, code, says) in cases {
        let o = latch(&p, &key, &args).await;
        assert_eq!(o.status.code(), Some(code), "{what}: {}", err(&o));
        assert!(err(&o).contains(says), "{what}: {}", err(&o));
        assert_latch_lines(&err(&o));
        assert!(!err(&o).contains(&key[8..]), "{what} shows the key");
    }
    // 412 (someone changed it since it was read), as the platform says it: 73.
    let changed = Fake::start(Answer::Problem(412, "precondition_failed"));
    let o = latch_at(
        &changed.url,
        &stranger_key(),
        &["env", "set", "ci", "--secrets", "A"],
    )
    .await;
    assert_eq!(o.status.code(), Some(73), "{}", err(&o));
    assert!(err(&o).contains("run the command again"), "{}", err(&o));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_that_stays_busy_or_silent_is_69_and_a_bad_answer_says_so() {
    let key = stranger_key();
    // 503 from every attempt: retried, then 69, with what to do.
    let busy = Fake::start(Answer::Status(503));
    let o = latch_at(&busy.url, &key, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(69), "{}", err(&o));
    assert!(busy.connections() > 1, "503 is retried");
    assert!(
        err(&o).contains("503") && err(&o).contains("try again later"),
        "{}",
        err(&o)
    );
    assert_latch_lines(&err(&o));
    // 429 too.
    let limited = Fake::start(Answer::Status(429));
    let o = latch_at(&limited.url, &key, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(69), "{}", err(&o));
    // A 404 that is not latch's (a wrong LATCH_URL): 66, and the hint says it was not latch.
    let website = Fake::start(Answer::Status(404));
    let o = latch_at(&website.url, &key, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(66), "{}", err(&o));
    assert!(err(&o).contains("did not come from latch"), "{}", err(&o));
    // A platform that never answers: bounded by --request-timeout, then 69.
    let silent = Fake::start(Answer::Hang);
    let o = latch_at(&silent.url, &key, &["--request-timeout", "300ms", "whoami"]).await;
    assert_eq!(o.status.code(), Some(69), "{}", err(&o));
    assert!(err(&o).contains("unreachable"), "{}", err(&o));
    let o = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .arg("whoami")
            .env("LATCH_URL", &silent.url)
            .env("LATCH_API_KEY", &key)
            .env("LATCH_REQUEST_TIMEOUT", "300ms");
        output(command, None).await
    };
    assert_eq!(
        o.status.code(),
        Some(69),
        "LATCH_REQUEST_TIMEOUT: {}",
        err(&o)
    );
    let o = latch_at(&silent.url, &key, &["--request-timeout", "soon", "whoami"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

/// What is wrong, the variables that make it so, and what latch must say.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_checked_before_any_connection_and_explained() {
    let key = stranger_key();
    let fake = Fake::start(Answer::Whoami);
    let dir = tempfile::tempdir().expect("dir");
    let empty_ca = dir.path().join("empty.pem");
    std::fs::write(&empty_ca, "not a certificate\n").expect("writes");
    let cases: [Case; 6] = [
        (
            "an empty LATCH_URL",
            &[("LATCH_URL", "")],
            "LATCH_URL is empty",
        ),
        (
            "an empty LATCH_API_KEY",
            &[("LATCH_API_KEY", "")],
            "LATCH_API_KEY is empty",
        ),
        (
            "a URL that is not one",
            &[("LATCH_URL", "latch.example.com")],
            "is not a URL",
        ),
        (
            "plain http to a remote host",
            &[("LATCH_URL", "http://latch.example.com")],
            "https",
        ),
        (
            "a CA file with no certificate",
            &[("LATCH_CA_CERT", empty_ca.to_str().expect("utf8"))],
            "holds no certificate",
        ),
        (
            "a CA file that is missing",
            &[("LATCH_CA_CERT", "/nonexistent/ca.pem")],
            "cannot read LATCH_CA_CERT",
        ),
    ];
    for (what, env, says) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .arg("whoami")
            .env("LATCH_URL", &fake.url)
            .env("LATCH_API_KEY", &key)
            .env_remove("LATCH_CA_CERT");
        for &(name, value) in env {
            command.env(name, value);
        }
        let o = output(command, None).await;
        assert_eq!(o.status.code(), Some(78), "{what}: {}", err(&o));
        assert!(err(&o).contains(says), "{what}: {}", err(&o));
        assert_latch_lines(&err(&o));
    }
    let unreadable = dir.path().join("key");
    let o = latch_at(
        &fake.url,
        "",
        &[
            "--api-key-file",
            unreadable.to_str().expect("utf8"),
            "whoami",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    assert_eq!(fake.connections(), 0, "nothing was sent");
    // A prefix in LATCH_URL is kept: requests go under it.
    let o = latch_at(&format!("{}/latch", fake.url), &key, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = latch_at(&format!("{}/a/b/", fake.url), &key, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let requests = fake.requests.lock().expect("lock").clone();
    assert_eq!(
        requests,
        [
            "GET /latch/v1/whoami HTTP/1.1",
            "GET /a/b/v1/whoami HTTP/1.1"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_is_78_at_once_in_words() {
    let dir = tempfile::tempdir().expect("dir");
    // A self-signed certificate, and a leaf signed by a CA this machine does not trust.
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-days",
        "1",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ]);
    let data = dir.path().join("data");
    let (mut server, url, owner) = crate::server::spawn_serve_with(
        &data,
        &[
            "--tls-cert",
            dir.path().join("cert.pem").to_str().expect("utf8"),
            "--tls-key",
            dir.path().join("key.pem").to_str().expect("utf8"),
        ],
    );
    // Counted on the way in, so a retry would show.
    let counter = TcpListener::bind("127.0.0.1:0").expect("binds");
    let front = counter.local_addr().expect("addr");
    let back: std::net::SocketAddr = url.trim_start_matches("https://").parse().expect("address");
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    counter.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let relay = std::thread::spawn(move || {
        while !stopping.load(Ordering::SeqCst) {
            let Ok((inbound, _)) = counter.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = inbound.set_nonblocking(false);
            let Ok(outbound) = std::net::TcpStream::connect(back) else {
                continue;
            };
            for (mut from, mut to) in [
                (
                    inbound.try_clone().expect("dup"),
                    outbound.try_clone().expect("dup"),
                ),
                (outbound, inbound),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    let o = latch_at(&format!("https://{front}"), &owner, &["whoami"]).await;
    stop.store(true, Ordering::SeqCst);
    relay.join().expect("relay");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    let said = err(&o);
    assert!(
        said.contains("certificate") && said.contains("127.0.0.1"),
        "{said}"
    );
    for raw in [
        "Other(",
        "OtherError",
        "CaUsedAsEndEntity",
        "unreachable",
        "attempts",
    ] {
        assert!(!said.contains(raw), "{raw} in {said}");
    }
    assert_latch_lines(&said);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "a trust failure is not retried"
    );
}

// Signals and a killed latch ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_the_platform_hangs_ends_latch_at_once_with_128_plus_n() {
    let silent = Fake::start(Answer::Hang);
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("started");
    let key = stranger_key();
    for (signal, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
    ] {
        let requests = silent.requests.clone();
        let before = requests.lock().expect("lock").len();
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .args(["run", "--secret-file", "TOKEN", "--", "touch"])
            .arg(&marker)
            .env("LATCH_URL", &silent.url)
            .env("LATCH_API_KEY", &key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::launcher::default_dispositions(&mut command);
        let (o, took) = tokio::task::spawn_blocking(move || {
            let mut child = Guard::spawn(&mut command);
            // The request is on its way: the platform holds it.
            until("the request", || {
                requests.lock().expect("lock").len() > before
            });
            kill(child.pid(), signal).expect("signals latch");
            let sent = Instant::now();
            let out = child.wait_output();
            (out, sent.elapsed())
        })
        .await
        .expect("joins");
        // The default request timeout is 30 s: ending well before it is "at once" (the
        // figure is printed; the bound only tells a hang from an answer).
        println!("{signal}: latch ended {took:?} after the signal");
        assert!(took < Duration::from_secs(10), "{signal}: took {took:?}");
        assert_eq!(o.status.code(), Some(code), "{signal}: {}", err(&o));
        assert!(!marker.exists(), "{signal}: the command started");
        assert!(
            err(&o).contains("before the command started"),
            "{}",
            err(&o)
        );
        assert_latch_lines(&err(&o));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_latch_kills_the_child_and_the_next_run_removes_its_files() {
    let p = platform().await;
    let mut command = latch_run(
        &p,
        &[
            "--secret-file",
            "TOKEN",
            "--",
            "sh",
            "-c",
            "echo \"file $TOKEN\"; echo \"pid $$\"; exec sleep 60",
        ],
    );
    let (child, file) = tokio::task::spawn_blocking(move || {
        let (mut latch, _out, seen) =
            crate::launcher::start_until(&mut command, Stdio::null(), "pid ");
        let field = |name: &str| {
            seen.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name:?} in {seen:?}"))
                .trim()
                .to_owned()
        };
        let file = field("file ");
        let pid = Pid::from_raw(field("pid ").parse().expect("pid"));
        assert!(std::path::Path::new(&file).exists(), "{file}");
        kill(latch.pid(), Signal::SIGKILL).expect("kills latch");
        let _ = latch.0.wait();
        latch.1 = true;
        (pid, file)
    })
    .await
    .expect("joins");
    // PR_SET_PDEATHSIG: the child dies with latch.
    until("the child's death", || {
        matches!(state(child), None | Some('Z'))
    });
    let dir = std::path::Path::new(&file)
        .parent()
        .expect("dir")
        .to_owned();
    // The next run on the machine removes the directory of the latch that is gone (another
    // test's run may have done it first: what matters is that it goes, and that a live
    // launcher's directory stays, which every concurrent test with --secret-file checks).
    let o = output(latch_run(&p, &["-v", "--no-secrets", "--", "true"]), None).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!dir.exists(), "the next run removes {}", dir.display());
    p.stop().await;
}

// Job control -------------------------------------------------------------------------------------

/// An interactive bash on a pseudo-terminal the test holds, as a person's terminal: what it
/// prints is collected for [`Terminal::wait_for`].
struct Terminal {
    master: std::fs::File,
    /// The terminal's own side, to read its settings.
    outer: std::os::fd::OwnedFd,
    seen: Arc<Mutex<String>>,
    shell: Guard,
}

impl Terminal {
    fn open(env: &[(&str, &str)]) -> Self {
        use nix::pty::{Winsize, openpty};
        let size = Winsize {
            ws_row: 24,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pair = openpty(Some(&size), None).expect("pty");
        let mut bash = Command::new("bash");
        bash.args(["--norc", "--noprofile", "--noediting", "-i"])
            .env("PS1", "prompt$ ")
            .env("TERM", "dumb")
            .env_remove("LATCH_LOG")
            .env_remove("NO_COLOR");
        for (name, value) in env {
            bash.env(name, value);
        }
        crate::launcher::on_terminal(&mut bash, &pair.slave);
        crate::launcher::default_dispositions(&mut bash);
        let shell = Guard::spawn(&mut bash);
        let master = std::fs::File::from(pair.master);
        let seen = Arc::new(Mutex::new(String::new()));
        let (mut reader, into) = (master.try_clone().expect("dup"), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            master,
            outer: pair.slave,
            seen,
            shell,
        }
    }

    fn type_in(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("types");
    }

    fn wait_for(&self, what: &str) -> String {
        let seen = self.seen.clone();
        until(&format!("{what:?} on the terminal"), || {
            seen.lock().expect("lock").contains(what)
        });
        self.seen.lock().expect("lock").clone()
    }

    /// Whether the terminal is in canonical (cooked) mode, as a shell leaves it.
    fn cooked(&self) -> bool {
        nix::sys::termios::tcgetattr(&self.outer)
            .expect("termios")
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ICANON)
    }

    /// The highest `tickN` printed so far.
    fn last_tick(&self) -> u32 {
        self.seen
            .lock()
            .expect("lock")
            .split("tick")
            .skip(1)
            .filter_map(|t| {
                t.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    }
}

/// The parent of `pid`.
fn parent_of(pid: Pid) -> Pid {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let parent = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .expect("PPid")
        .trim()
        .parse()
        .expect("pid");
    Pid::from_raw(parent)
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_z_in_pty_mode_suspends_the_command_and_latch_and_fg_resumes_both() {
    let p = platform().await;
    let (url, key) = (p.url.clone(), p.owner.clone());
    tokio::task::spawn_blocking(move || {
        let mut terminal = Terminal::open(&[("LATCH_URL", &url), ("LATCH_API_KEY", &key)]);
        terminal.wait_for("prompt$ ");
        terminal.type_in(&format!(
            "{} run --no-secrets -- sh -c 'echo \"child $$\"; i=0; while [ $i -lt 4000 ]; do echo tick$i; i=$((i+1)); sleep 0.05; done'\n",
            env!("CARGO_BIN_EXE_latch")
        ));
        let seen = terminal.wait_for("tick3");
        let child: Pid = Pid::from_raw(
            seen.split("child ")
                .skip(1)
                .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
                .expect("the child's pid"),
        );
        let latch = parent_of(child);
        assert!(!terminal.cooked(), "latch holds the terminal in raw mode");

        // Ctrl-Z: both stop, the shell says so and has its terminal back.
        terminal.type_in("\x1a");
        until("the command to stop", || state(child) == Some('T'));
        until("latch to stop", || state(latch) == Some('T'));
        terminal.wait_for("Stopped");
        terminal.wait_for("prompt$ ");
        assert!(terminal.cooked(), "the terminal is restored while stopped");
        let stopped_at = terminal.last_tick();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            terminal.last_tick() <= stopped_at + 1,
            "the command kept running while stopped"
        );

        // fg: both run again, the terminal raw again for the command.
        terminal.type_in("fg\n");
        until("the command to tick again", || {
            terminal.last_tick() > stopped_at + 2
        });
        assert_ne!(state(child), Some('T'));
        assert_ne!(state(latch), Some('T'));
        until("raw mode again", || !terminal.cooked());

        // Ctrl-C reaches the command through its terminal: 130, and the shell's prompt back.
        terminal.type_in("\x03");
        terminal.wait_for("prompt$ ");
        until("latch to end", || matches!(state(latch), None | Some('Z')));
        terminal.type_in("echo \"rc=$?\"\n");
        terminal.wait_for("rc=130");
        assert!(terminal.cooked());
        terminal.type_in("exit\n");
        let mut shell = terminal.shell;
        until("the shell to exit", || {
            matches!(shell.0.try_wait(), Ok(Some(_)))
        });
        shell.1 = true;
    })
    .await
    .expect("joins");
    p.stop().await;
}

// The command, the dry run, the run's id, report and leak gate ---------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_script_whose_interpreter_is_missing_is_said_so_with_127() {
    let p = platform().await;
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("agent.py");
    std::fs::write(&script, "#!/nonexistent/python3 -u\nprint('hi')\n").expect("writes");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let o = output(
        latch_run(&p, &["--no-secrets", "--", script.to_str().expect("utf8")]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(
        err(&o).contains("its interpreter /nonexistent/python3 (from its #! line) is not there"),
        "{}",
        err(&o)
    );
    assert_latch_lines(&err(&o));
    // On PATH too, and a command that is really missing is still said as such.
    let mut command = latch_run(&p, &["--no-secrets", "--", "agent.py"]);
    command.env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()));
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(err(&o).contains("/nonexistent/python3"), "{}", err(&o));
    let o = output(
        latch_run(&p, &["--no-secrets", "--", "no-such-command-x"]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(!err(&o).contains("interpreter"), "{}", err(&o));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_names_what_a_run_would_receive_and_starts_nothing() {
    let p = platform().await;
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("started");
    let touch = ["--", "touch", marker.to_str().expect("utf8")];
    let args = |extra: &[&'static str]| -> Vec<String> {
        extra
            .iter()
            .map(|s| (*s).to_owned())
            .chain(touch.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        latch_run(&p, &refs)
    };
    let o = output(
        run(args(&["--dry-run", "--secrets", "TOKEN,GH_TOKEN,NOPE"])),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("would deliver 2 secrets (allowlist: run, trigger: cli):"),
        "{out}"
    );
    assert!(
        out.contains("TOKEN") && out.contains("GH_TOKEN") && out.contains("personal"),
        "{out}"
    );
    assert!(
        out.contains("NOPE") && out.contains("(not_found)") && out.contains("hint:"),
        "{out}"
    );
    assert!(
        !out.contains(crate::launcher::TOKEN),
        "a dry run shows no value: {out}"
    );
    // --json: one object on stdout.
    let o = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .args(["--json", "run", "--dry-run", "--secrets", "TOKEN"])
            .args(touch)
            .env("LATCH_URL", &p.url)
            .env("LATCH_API_KEY", &p.owner);
        output(command, None).await
    };
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["allowlist"], "run", "{v}");
    assert_eq!(v["secrets"][0]["name"], "TOKEN", "{v}");
    assert!(v["secrets"][0].get("value").is_none(), "{v}");
    // A required name that would be missing: 65, still nothing started.
    let o = output(run(args(&["--dry-run", "--require", "NOPE"])), None).await;
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(err(&o).contains("NOPE"), "{}", err(&o));
    assert!(!marker.exists(), "a dry run starts nothing");
    // No run record; an audit event per dry run.
    assert_eq!(run_count(&p).await, 0);
    let audit = p
        .ok(&p.owner, Method::GET, "/v1/audit?action=run.dry_run", None)
        .await;
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(3), "{audit}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_id_reaches_the_child_the_verbose_line_the_record_and_the_report() {
    let p = platform().await;
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("report.json");
    std::fs::write(&report, "an older report, replaced whole").expect("writes");
    let o = output(
        latch_run(
            &p,
            &[
                "-v",
                "--secrets",
                "TOKEN,NOPE",
                "--report",
                report.to_str().expect("utf8"),
                "--",
                "sh",
                "-c",
                "echo \"id $LATCH_RUN_ID\"; echo $TOKEN; exit 3",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    let id = text(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .expect("LATCH_RUN_ID")
        .to_owned();
    assert!(id.starts_with("run_"), "{id}");
    assert!(
        err(&o).contains(&format!("latch: note: run {id} started")),
        "{}",
        err(&o)
    );
    let record = p
        .ok(&p.owner, Method::GET, &format!("/v1/runs/{id}"), None)
        .await;
    assert_eq!(record["id"], id.as_str());
    let mode = std::fs::metadata(&report).expect("report").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let body = std::fs::read_to_string(&report).expect("reads");
    assert!(!body.contains(crate::launcher::TOKEN), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("one JSON object");
    assert_eq!(v["run_id"], id.as_str());
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["signal"], serde_json::Value::Null);
    assert_eq!(v["allowlist"], "run");
    assert_eq!(v["delivered"][0]["name"], "TOKEN");
    assert_eq!(v["missing"][0]["name"], "NOPE");
    assert_eq!(v["missing"][0]["reason"], "not_found");
    assert_eq!(v["masked"]["TOKEN"], 1);
    assert!(v["duration_ms"].is_u64() && v["shadowed"].is_array() && v["brokered"].is_array());
    // A command killed by a signal: the report says which.
    let o = output(
        latch_run(
            &p,
            &[
                "--no-secrets",
                "--report",
                report.to_str().expect("utf8"),
                "--",
                "sh",
                "-c",
                "kill -TERM $$",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(143), "{}", err(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("reads")).expect("json");
    assert_eq!(
        (v["exit_code"].clone(), v["signal"].clone()),
        (serde_json::Value::Null, json!(15))
    );
    // An unwritable report is configuration, found before the run: nothing starts.
    let marker = dir.path().join("started");
    let o = output(
        latch_run(
            &p,
            &[
                "--no-secrets",
                "--report",
                "/nonexistent/dir/r.json",
                "--",
                "touch",
                marker.to_str().expect("utf8"),
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(78), "{}", err(&o));
    assert!(err(&o).contains("--report"), "{}", err(&o));
    assert!(!marker.exists(), "the command started");
    let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(
        leftovers, 1,
        "only the report itself: nothing half-written beside it"
    );
    // --report needs latch to stay: not with --no-scrub.
    let o = output(
        latch_run(&p, &["--no-scrub", "--report", "r.json", "--", "true"]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_on_leak_exits_3_only_when_the_command_succeeded_and_something_was_masked() {
    let p = platform().await;
    for (script, want, names) in [
        ("echo $TOKEN; echo ok", 3, true),
        ("echo $TOKEN; exit 5", 5, false),
        ("echo nothing to hide", 0, false),
    ] {
        let o = output(
            latch_run(
                &p,
                &[
                    "--secrets",
                    "TOKEN",
                    "--fail-on-leak",
                    "--",
                    "sh",
                    "-c",
                    script,
                ],
            ),
            None,
        )
        .await;
        assert_eq!(o.status.code(), Some(want), "{script}: {}", err(&o));
        assert_eq!(
            err(&o).contains("--fail-on-leak") && err(&o).contains("TOKEN (1)"),
            names,
            "{script}: {}",
            err(&o)
        );
        assert!(!text(&o.stdout).contains(crate::launcher::TOKEN));
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_becomes_its_command_is_recorded_as_exec() {
    let p = platform().await;
    let o = output(
        latch_run(
            &p,
            &[
                "--no-scrub",
                "--secrets",
                "TOKEN",
                "--",
                "sh",
                "-c",
                "echo $$",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let runs = p
        .ok(&p.owner, Method::GET, "/v1/runs?status=exec", None)
        .await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    let id = runs["runs"][0]["id"].as_str().expect("id").to_owned();
    let o = latch(&p, &p.owner, &["runs", "show", &id]).await;
    assert!(
        text(&o.stdout).contains("exec (--no-scrub: latch became the command"),
        "{}",
        text(&o.stdout)
    );
    let started = p
        .ok(&p.owner, Method::GET, "/v1/runs?status=started", None)
        .await;
    assert_eq!(
        started["runs"].as_array().map(Vec::len),
        Some(0),
        "{started}"
    );
    p.stop().await;
}
