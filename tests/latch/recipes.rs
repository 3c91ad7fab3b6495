//! The recipes in `examples/recipes/`, each run as far as this machine allows: the same command
//! lines, against an in-process platform, with the real `latch` binary first on `PATH`. A
//! container runtime, GitHub, GitLab, Codespaces and systemd are not here; the container's
//! ENTRYPOINT runs as PID 1 in a PID namespace instead (`unshare`), the CI and devcontainer
//! commands run in `sh` as the runner would run them, and the systemd unit's `ExecStart` runs as
//! the service would, stopped with its `KillSignal`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{Platform, start};

const OPENAI: &str = "sk-recipe-0123456789abcdef0123";

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/recipes")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(recipe(name)).expect("recipe exists")
}

/// A directory holding a `latch` link to the binary under test, for the front of `PATH`.
fn latch_on_path() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_latch"), dir.path().join("latch"))
        .expect("links");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (dir, path)
}

/// A platform with OPENAI_API_KEY in environments `ci`, `dev` and `prod`.
async fn platform() -> Platform {
    let p = start().await;
    p.ok(
        &p.owner,
        Method::POST,
        "/v1/secrets",
        Some(json!({"scope": "team", "name": "OPENAI_API_KEY", "value": OPENAI})),
    )
    .await;
    for env in ["ci", "dev", "prod"] {
        p.ok(
            &p.owner,
            Method::PUT,
            &format!("/v1/environments/{env}"),
            Some(json!({"secrets": ["OPENAI_API_KEY"]})),
        )
        .await;
    }
    p
}

/// Runs `program args` from the repository root with latch's settings, as a runner would.
async fn run(p: &Platform, program: &str, args: Vec<String>) -> Output {
    let (dir, path) = latch_on_path();
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env("LATCH_URL", &p.url)
        .env("LATCH_API_KEY", &p.owner)
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("joins");
    drop(dir);
    output
}

fn assert_agent_ran_masked(o: &Output) {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("OPENAI_API_KEY=[MASKED:OPENAI_API_KEY]"),
        "{out}"
    );
    assert!(out.contains("agent: done"), "{out}");
    assert!(
        !out.contains(OPENAI) && !err.contains(OPENAI),
        "{out}\n{err}"
    );
}

/// The value of a Dockerfile instruction in exec (JSON array) form.
fn exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction}"));
    serde_json::from_str(line).expect("exec form")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_container_entrypoint_runs_as_pid_1() {
    let p = platform().await;
    let dockerfile = read("Dockerfile");
    let mut argv = exec_form(&dockerfile, "ENTRYPOINT");
    // The image copies agent.sh to /app/agent.sh; here it runs from the repository.
    argv.extend(
        exec_form(&dockerfile, "CMD")
            .into_iter()
            .map(|a| a.replace("/app/agent.sh", "examples/recipes/agent.sh")),
    );
    assert_eq!(argv[0], "latch");
    let mut unshare_args = vec![
        "--pid".into(),
        "--fork".into(),
        "--mount-proc".into(),
        "--kill-child".into(),
    ];
    unshare_args.extend(argv);
    let o = run(&p, "unshare", unshare_args).await;
    assert_agent_ran_masked(&o);
    // latch is PID 1, so the agent is PID 2.
    assert!(String::from_utf8_lossy(&o.stdout).contains("agent: running as pid 2"));
}

/// The command of the step or script line that starts with `latch run`.
fn latch_line(text: &str, prefix: &str) -> String {
    text.lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix(prefix)
                .filter(|rest| rest.starts_with("latch run"))
        })
        .unwrap_or_else(|| panic!("no `{prefix}latch run` line"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_github_actions_step_wraps_the_agent() {
    let p = platform().await;
    let line = latch_line(&read("github-actions.yml"), "run: ");
    let o = run(&p, "sh", vec!["-c".into(), line]).await;
    assert_agent_ran_masked(&o);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gitlab_job_wraps_the_agent() {
    let p = platform().await;
    let line = latch_line(&read("gitlab-ci.yml"), "- ");
    let o = run(&p, "sh", vec!["-c".into(), line]).await;
    assert_agent_ran_masked(&o);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_devcontainer_starts_the_agent_through_latch() {
    let p = platform().await;
    let config: Value = serde_json::from_str(&read("devcontainer.json")).expect("valid JSON");
    let command = config["postAttachCommand"]
        .as_str()
        .expect("command")
        .to_owned();
    assert!(command.starts_with("latch run"), "{command}");
    assert!(config["secrets"]["LATCH_API_KEY"].is_object());
    let o = run(&p, "sh", vec!["-c".into(), command]).await;
    assert_agent_ran_masked(&o);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_systemd_units_exec_start_serves_and_stops_on_its_kill_signal() {
    let unit = read("latch-serve.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}="))
            .to_owned()
    };
    assert_eq!(value("KillSignal"), "SIGTERM");
    let dir = tempfile::tempdir().expect("dir");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).expect("dir");
    let root = latch::core::crypto::RootKey::generate(&mut getrandom::SysRng).expect("key");
    std::fs::write(credentials.join("root.key"), root.to_hex().as_bytes()).expect("writes");
    // ExecStart as systemd would run it: its credentials directory, its state directory, and
    // (for the test) a free loopback port.
    let exec = value("ExecStart")
        .replace(
            "${CREDENTIALS_DIRECTORY}",
            credentials.to_str().expect("utf8"),
        )
        .replace(
            "/var/lib/latch",
            dir.path().join("state").to_str().expect("utf8"),
        )
        .replace("127.0.0.1:8177", "127.0.0.1:0");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/latch"));
    assert!(
        exec.contains("--bootstrap-key-file"),
        "the key goes to a file, not the journal"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    // Killed by PID if the test fails before the service stops.
    let guard = KillOnDrop(pid);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the service did not start");
        };
        if let Some(url) = line.strip_prefix("latch: note: listening on ") {
            break url.to_owned();
        }
    };
    let health = reqwest::get(format!("{url}/healthz"))
        .await
        .expect("answers");
    assert!(health.status().is_success());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signals");
    let status = tokio::task::spawn_blocking(move || child.wait().expect("waits"))
        .await
        .expect("joins");
    std::mem::forget(guard);
    assert_eq!(status.code(), Some(0));
    let key = std::fs::read_to_string(dir.path().join("state/bootstrap.key")).expect("key file");
    assert!(
        key.starts_with("latch_p_"),
        "the bootstrap key is in the file"
    );
}

/// Sends SIGKILL to a process when dropped.
struct KillOnDrop(nix::unistd::Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGKILL);
    }
}
