//! `cargo run --example quickstart`: latch's whole job in one command, on a fresh machine.
//!
//! It starts an embedded platform (SQLite in a temporary directory) on a loopback port,
//! bootstraps the owner, creates a team key for an agent, team and personal secrets and an
//! environment, then runs a small demo agent through `latch run` and shows what the agent
//! printed (masked) and the run record (delivered names, missing references, masked counts).
//!
//! The launcher is the real one: this program re-executes itself as `latch run` (the same
//! library entry point the `latch` binary calls, in a process of its own, with the same
//! wiping allocator), so no separate build of the binary is needed.

use std::ffi::OsString;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use clap::Parser;
use getrandom::SysRng;
use latch::cli::{Cli, Command as LatchCommand};
use latch::core::crypto::RootKey;
use latch::core::name::Label;
use latch::server::{self, App, boot};
use latch::store::Store;
use latch::store::sqlite::SqliteStore;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: latch::launcher::alloc::Wiping = latch::launcher::alloc::Wiping;

type Error = Box<dyn std::error::Error + Send + Sync>;

const OPENAI: &str = "sk-demo-4f9a8b7c6d5e4f3a2b1c0d9e";
const DATABASE: &str = "postgres://agent:correct-horse-battery@db.internal/app";
const GITHUB: &str = "ghp_demoPersonalToken1234567890abcd";

/// What the demo agent does: list its secrets, then print one plainly, in base64, and split
/// across two writes 200 ms apart, and another on stderr.
const AGENT: &str = r#"echo "agent: my environment has $(env | cut -d= -f1 | grep -E '^(OPENAI_API_KEY|DATABASE_URL|GITHUB_TOKEN)$' | sort | tr '\n' ' ')"
echo "agent: plain   OPENAI_API_KEY=$OPENAI_API_KEY"
echo "agent: base64  $(printf %s "$OPENAI_API_KEY" | base64)"
printf 'agent: split   %s' "$(printf %s "$OPENAI_API_KEY" | cut -c1-12)"; sleep 0.2; printf '%s\n' "$(printf %s "$OPENAI_API_KEY" | cut -c13-)"
echo "agent: stderr  DATABASE_URL=$DATABASE_URL" >&2"#;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "latch") {
        return as_latch(&args[1..]);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quickstart: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// This process as `latch run …`: before any thread starts, like the binary.
fn as_latch(args: &[OsString]) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(latch::cli::messages::clap_error(&e)),
    };
    // latch's own lines (`latch: warning: …`), as the binary writes them.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(latch::cli::messages::Lines { colour: false })
        .init();
    let LatchCommand::Run(run) = cli.command else {
        eprintln!("quickstart: only `latch run` is available here");
        return ExitCode::from(2);
    };
    match latch::cli::launch(run, &cli.global) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            latch::cli::messages::error(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

fn heading(text: &str) {
    println!("\n== {text}");
}

async fn demo() -> Result<bool, Error> {
    heading("1. An embedded platform (SQLite in a temporary directory) on a loopback port");
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("latch.db")).await?;
    let root = RootKey::generate(&mut SysRng)?;
    boot::verify_root(&store, &root).await?;
    let owner = boot::bootstrap(&store, &root, Label::new("demo")?, Label::new("alice")?, 0)
        .await?
        .ok_or("the database was not empty")?;
    let owner = owner.expose().to_owned();
    let store: Arc<dyn Store> = Arc::new(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, App::new(store, root), async {
        let _ = stopped.await;
    }));
    println!("platform at {url}; team `demo`, owner `alice` (bootstrapped)");
    let api = Api {
        http: reqwest::Client::new(),
        url: url.clone(),
    };

    heading("2. Secrets: two team secrets, one personal secret of alice's");
    for (scope, name, value) in [
        ("team", "OPENAI_API_KEY", OPENAI),
        ("team", "DATABASE_URL", DATABASE),
        ("personal", "GITHUB_TOKEN", GITHUB),
    ] {
        api.call(
            &owner,
            reqwest::Method::POST,
            "/v1/secrets",
            Some(json!({"scope": scope, "name": name, "value": value})),
        )
        .await?;
        println!(
            "{scope:<8} {name}  (value write-only: no API returns it except a run's resolution)"
        );
    }

    heading("3. An environment `ci`: the names a CI run may receive");
    api.call(
        &owner,
        reqwest::Method::PUT,
        "/v1/environments/ci",
        Some(json!({"description": "CI agents", "secrets": ["OPENAI_API_KEY", "DATABASE_URL", "GITHUB_TOKEN", "SLACK_TOKEN"]})),
    )
    .await?;
    println!("ci = OPENAI_API_KEY, DATABASE_URL, GITHUB_TOKEN, SLACK_TOKEN");

    heading("4. A team key for the agent (not tied to a person)");
    let created = api
        .call(
            &owner,
            reqwest::Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "demo-agent", "kind": "team", "expires": "1d"})),
        )
        .await?;
    let agent_key = created["key"]
        .as_str()
        .ok_or("no key in the answer")?
        .to_owned();
    println!(
        "created {} (shown once; kept here only in memory)",
        created["info"]["preview"].as_str().unwrap_or("?")
    );

    heading("5. The agent runs through `latch run --env ci -- sh -c AGENT`");
    let exe = std::env::current_exe()?;
    let agent_key_for_run = agent_key.clone();
    let url_for_run = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args(["latch", "run", "--env", "ci", "--", "sh", "-c", AGENT])
            .env("LATCH_URL", url_for_run)
            .env("LATCH_API_KEY", agent_key_for_run)
            .stdin(Stdio::null())
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    println!("--- what latch passed on from the agent's stdout:");
    print!("{stdout}");
    println!("--- from its stderr (the agent's, and latch's own notes):");
    print!("{stderr}");
    match output.status.code() {
        Some(code) => println!("--- latch exited with code {code}"),
        None => println!("--- latch was killed by a signal"),
    }

    show_run(&api, &owner).await?;
    let ok = check(&output, &agent_key);
    web_app(&url, &owner, dir.path()).await?;
    let _ = stop.send(());
    server.await??;
    Ok(ok)
}

/// Where the same platform's web app is, and how to sign in. At a terminal the platform stays
/// up until Enter, with alice's key in a 0600 file (never on the screen); otherwise (CI) the
/// demo ends here.
async fn web_app(url: &str, owner: &str, dir: &std::path::Path) -> Result<(), Error> {
    use std::io::IsTerminal as _;
    heading("8. The web app");
    println!("open      {url}/ui");
    println!(
        "sign in   with a personal API key that can manage: alice's bootstrap key, or one made \
         with `latch api-key create --personal`"
    );
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        println!(
            "          (this demo's platform stops now; `latch serve` serves the web app at \
             http://127.0.0.1:8177/ui)"
        );
        return Ok(());
    }
    let key_file = dir.join("alice.key");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)?;
        file.write_all(owner.as_bytes())?;
    }
    println!(
        "key       alice's key is in {} (mode 0600)",
        key_file.display()
    );
    println!("          press Enter to stop the platform and delete everything");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await?;
    Ok(())
}

/// Prints the last run's record: who, delivered names, missing references, masked counts.
async fn show_run(api: &Api, owner: &str) -> Result<(), Error> {
    heading("6. The run record");
    let runs = api
        .call(owner, reqwest::Method::GET, "/v1/runs?limit=1", None)
        .await?;
    let run = &runs["runs"][0];
    // `delivered` maps each scope to its names and their versions.
    let names = |v: &Value| -> Vec<String> {
        ["team", "personal"]
            .iter()
            .filter_map(|scope| Some((scope, v[scope].as_object()?)))
            .flat_map(|(scope, names)| {
                names
                    .iter()
                    .map(move |(name, version)| format!("{name} ({scope}, v{version})"))
            })
            .collect()
    };
    println!("run       {}", run["id"].as_str().unwrap_or("?"));
    println!(
        "who       team key {} (trigger {}: no person, so no personal secrets)",
        text(&run["record"]["who"]["key_id"]),
        text(&run["record"]["trigger"])
    );
    println!(
        "delivered {}",
        names(&run["record"]["delivered"]).join(", ")
    );
    for m in run["record"]["missing"].as_array().into_iter().flatten() {
        println!(
            "missing   {} ({})",
            m["name"].as_str().unwrap_or("?"),
            m["reason"].as_str().unwrap_or("?")
        );
    }
    println!(
        "status    {}; exit code {}; masked regions per secret {}",
        text(&run["status"]),
        run["outcome"]["exit_code"],
        run["outcome"]["masked"]
    );

    Ok(())
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// Whether every secret was delivered and masked and none appeared in the output.
fn check(output: &std::process::Output, agent_key: &str) -> bool {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    heading("7. Check");
    let mut clean = true;
    for (name, value) in [
        ("OPENAI_API_KEY", OPENAI),
        ("DATABASE_URL", DATABASE),
        ("GITHUB_TOKEN", GITHUB),
        ("the agent's API key", agent_key),
    ] {
        if stdout.contains(value) || stderr.contains(value) {
            println!("FAIL: {name} appeared in the output");
            clean = false;
        }
    }
    let masked =
        stdout.contains("[MASKED:OPENAI_API_KEY]") && stderr.contains("[MASKED:DATABASE_URL]");
    if clean && masked && output.status.success() {
        println!("ok: every secret was delivered and masked; none appeared in the output");
    } else if !masked {
        println!("FAIL: the masked markers are missing");
    }
    clean && masked && output.status.success()
}

/// The platform's API, as the demo uses it.
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{method} {path}: {status} {value}").into());
        }
        Ok(value)
    }
}
