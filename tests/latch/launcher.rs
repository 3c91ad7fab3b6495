//! The launcher (DESIGN §6): the real `latch run` against an in-process platform, with real
//! processes, pipes, pseudo-terminals and signals. Every spawned process is killed by PID when
//! a test ends, whichever way it ends.

use std::io::{BufRead, BufReader, Read, Write};

use base64::Engine as _;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::{Value, json};

use crate::server::{Platform, start};

pub(crate) const TOKEN: &str = "sk-live-0123456789abcdefXYZ";
const DB_PASSWORD: &str = "correct-horse-battery-staple-42";
const PERSONAL: &str = "ghp_personalTokenValue_98765";

/// A platform with two team secrets and one personal secret of the owner.
pub(crate) async fn platform() -> Platform {
    let p = start().await;
    for (scope, name, value) in [
        ("team", "TOKEN", TOKEN),
        ("team", "DB_PASSWORD", DB_PASSWORD),
        ("personal", "GH_TOKEN", PERSONAL),
    ] {
        p.ok(
            &p.owner,
            Method::POST,
            "/v1/secrets",
            Some(json!({"scope": scope, "name": name, "value": value})),
        )
        .await;
    }
    p
}

/// The signals latch forwards (`latch::launcher::signals::FORWARDED`).
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// `latch run ARGS` against `p` with the owner's key in `LATCH_API_KEY`.
pub(crate) fn latch_run(p: &Platform, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command
        .arg("run")
        .args(args)
        .env("LATCH_URL", &p.url)
        .env("LATCH_API_KEY", &p.owner)
        .env_remove("LATCH_LOG")
        .stdin(Stdio::null());
    default_dispositions(&mut command);
    command
}

/// Starts `command` with every forwarded signal at its default disposition, whatever this test
/// process inherited.
///
/// Regression (issue 24): a CI runner started under `nohup` ignores SIGHUP, and a background job
/// of a non-interactive shell ignores SIGINT and SIGQUIT. An ignored disposition survives `fork`
/// and `execve` (that is how `nohup` works, and latch keeps it, as tini does), and a
/// non-interactive shell cannot trap a signal that was ignored when it started (POSIX `trap`).
/// So the trapping children of these tests never saw the signal latch forwarded, and the tests
/// failed whenever the suite was started that way.
pub(crate) fn default_dispositions(command: &mut Command) {
    // SAFETY: `signal` is async-signal-safe; nothing is allocated.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, || {
            for signal in FORWARDED {
                nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)?;
            }
            Ok(())
        });
    }
}

/// Starts `command` as the leader of a new session whose controlling terminal, and standard
/// streams, are the pseudo-terminal side `slave`: as a shell starts a program on a terminal.
pub(crate) fn on_terminal(command: &mut Command, slave: &std::os::fd::OwnedFd) {
    command
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    // SAFETY: setsid and ioctl are async-signal-safe; nothing is allocated.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, || {
            nix::unistd::setsid()?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs to the end on a blocking thread, with `input` on stdin.
pub(crate) async fn output(mut command: Command, input: Option<Vec<u8>>) -> Output {
    tokio::task::spawn_blocking(move || {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = Guard::spawn(&mut command);
        let writer = input.map(|bytes| {
            let mut stdin = child.0.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            })
        });
        let out = child.wait_output();
        if let Some(w) = writer {
            w.join().expect("writer");
        }
        out
    })
    .await
    .expect("joins")
}

/// A child killed by PID (SIGKILL) when dropped, unless it was waited for.
pub(crate) struct Guard(pub(crate) Child, pub(crate) bool);

impl Guard {
    pub(crate) fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("latch starts"), false)
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.0.id()).expect("pid"))
    }

    pub(crate) fn wait_output(&mut self) -> Output {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut err_pipe = self.0.stderr.take();
        let err_thread = std::thread::spawn(move || {
            if let Some(e) = err_pipe.as_mut() {
                let _ = e.read_to_end(&mut stderr);
            }
            stderr
        });
        if let Some(out) = self.0.stdout.as_mut() {
            let _ = out.read_to_end(&mut stdout);
        }
        let status = self.0.wait().expect("waits");
        self.1 = true;
        Output {
            status,
            stdout,
            stderr: err_thread.join().expect("stderr"),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_clean(what: &str, bytes: &[u8], key: &str) {
    let shown = text(bytes);
    for value in [TOKEN, DB_PASSWORD, PERSONAL, key] {
        assert!(
            memchr::memmem::find(bytes, value.as_bytes()).is_none(),
            "{what} shows a secret: {shown}"
        );
    }
}

/// Starts `command` with stdout piped and `stderr` as given, and reads its stdout until a line
/// contains `marker`: the child, the rest of its stdout, and what was read.
pub(crate) fn start_until(
    command: &mut Command,
    stderr: Stdio,
    marker: &str,
) -> (Guard, BufReader<std::process::ChildStdout>, String) {
    command.stdout(Stdio::piped()).stderr(stderr);
    let mut child = Guard::spawn(command);
    let mut out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let seen = wait_for_line(&mut out, marker);
    (child, out, seen)
}

/// Reads lines from a child's stdout until one contains `marker` (bounded by the pipe's end).
pub(crate) fn wait_for_line(reader: &mut impl BufRead, marker: &str) -> String {
    read_until_line(reader, marker)
        .unwrap_or_else(|seen| panic!("no line with {marker:?}; saw {seen:?}"))
}

/// Reads lines until one contains `marker`: what was read, or (as the error) what was read
/// before the stream ended.
fn read_until_line(reader: &mut impl BufRead, marker: &str) -> Result<String, String> {
    let mut seen = String::new();
    for _ in 0..1000 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("reads") == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains(marker) {
            return Ok(seen);
        }
    }
    Err(seen)
}

impl Guard {
    /// [`wait_for_line`] on this child's stdout; when the stream ends first, the panic says
    /// how latch ended and what it printed on stderr.
    fn expect_line(&mut self, reader: &mut impl BufRead, marker: &str) -> String {
        match read_until_line(reader, marker) {
            Ok(seen) => seen,
            Err(seen) => {
                let o = self.wait_output();
                panic!(
                    "no line with {marker:?}; saw {seen:?}; latch ended with {:?}, stderr: {}",
                    o.status,
                    text(&o.stderr)
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_delivered_and_masked_on_stdout_and_stderr() {
    let p = platform().await;
    let script = r#"echo "token=$TOKEN"; echo "db=$DB_PASSWORD" >&2; printf '%s' "$GH_TOKEN" | base64; printf '%s\n' "$TOKEN" | od -An -tx1 | tr -d ' \n'; echo; echo "{\"t\":\"$TOKEN\"}""#;
    let o = output(latch_run(&p, &["--", "sh", "-c", script]), None).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(out.contains("token=[MASKED:TOKEN]"), "{out}");
    assert!(err.contains("db=[MASKED:DB_PASSWORD]"), "{err}");
    assert!(out.contains("[MASKED:GH_TOKEN]"), "base64 masked: {out}");
    assert_clean("stdout", &o.stdout, &p.owner);
    assert_clean("stderr", &o.stderr, &p.owner);
    // The base64 and hex forms are gone too.
    let b64 = base64::engine::general_purpose::STANDARD.encode(PERSONAL);
    assert!(!out.contains(&b64[..b64.len() - 4]), "{out}");
    let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!out.contains(&hex), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_written_in_two_halves_200ms_apart_never_shows() {
    let p = platform().await;
    let (first, second) = TOKEN.split_at(12);
    let script = format!("printf '%s' '{first}'; sleep 0.2; printf '%s\\n' '{second}'");
    for extra in [&[][..], &["--pty"][..]] {
        let mut args = extra.to_vec();
        args.extend(["--", "sh", "-c", &script]);
        let o = output(latch_run(&p, &args), None).await;
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(out.contains("[MASKED:TOKEN:partial]"), "{extra:?}: {out}");
        assert!(
            !out.contains(first) && !out.contains(second),
            "{extra:?}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_pass_through_and_signal_deaths_are_128_plus_n() {
    let p = platform().await;
    let mut cases: Vec<(String, i32)> = (0..=255).map(|c| (format!("exit {c}"), c)).collect();
    for (signal, n) in [("TERM", 15), ("KILL", 9), ("SEGV", 11), ("USR1", 10)] {
        cases.push((format!("kill -{signal} $$"), 128 + n));
    }
    let mut handles = Vec::new();
    for chunk in cases.chunks(cases.len().div_ceil(6)) {
        let chunk = chunk.to_vec();
        let mut commands = Vec::new();
        for (script, _) in &chunk {
            commands.push(latch_run(&p, &["--no-secrets", "--", "sh", "-c", script]));
        }
        handles.push(tokio::task::spawn_blocking(move || {
            let mut wrong = Vec::new();
            for ((script, want), mut command) in chunk.into_iter().zip(commands) {
                command.stdout(Stdio::null()).stderr(Stdio::piped());
                let mut child = Guard::spawn(&mut command);
                let o = child.wait_output();
                if o.status.code() != Some(want) {
                    wrong.push(format!("{script}: {:?} {}", o.status, text(&o.stderr)));
                }
            }
            wrong
        }));
    }
    let mut wrong = Vec::new();
    for h in handles {
        wrong.extend(h.await.expect("joins"));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_is_127_and_not_executable_is_126() {
    let p = platform().await;
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("writes");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = output(latch_run(&p, &["--", "no-such-command-xyz"]), None).await;
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
    let o = output(latch_run(&p, &["--", script.to_str().expect("utf8")]), None).await;
    assert_eq!(o.status.code(), Some(126), "{}", text(&o.stderr));
    let o = output(
        latch_run(&p, &["--no-scrub", "--", "no-such-command-xyz"]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));
    // The run record says so.
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs", None).await["runs"].clone();
    let codes: Vec<&Value> = runs
        .as_array()
        .expect("list")
        .iter()
        .map(|r| &r["outcome"]["exit_code"])
        .collect();
    assert!(
        codes.contains(&&json!(127)) && codes.contains(&&json!(126)),
        "{runs}"
    );
}

/// A child that traps every forwarded signal (`got NAME`), exits 0 on SIGTERM, and 9 if it is
/// still running after 30 s. A shell runs a trap once its foreground `sleep` has ended.
const TRAPPING: &str = r#"for s in INT HUP QUIT USR1 USR2; do trap "echo got $s" $s; done
trap 'echo got TERM; exit 0' TERM
echo ready
i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exit 9"#;

/// The forwarded signals other than SIGTERM, with the names the trapping child prints.
const TRAPPED: [(Signal, &str); 5] = [
    (Signal::SIGINT, "INT"),
    (Signal::SIGHUP, "HUP"),
    (Signal::SIGQUIT, "QUIT"),
    (Signal::SIGUSR1, "USR1"),
    (Signal::SIGUSR2, "USR2"),
];

/// Starts latch over [`TRAPPING`] (with `ignore` ignored when latch starts, if given), runs
/// `drive` against it once the child is ready, then ends it with SIGTERM: what the child printed
/// after `drive`, and how latch ended.
async fn with_trapping_child(
    p: &Platform,
    ignore: Option<Signal>,
    drive: impl FnOnce(&mut Guard, &mut BufReader<std::process::ChildStdout>) + Send + 'static,
) -> (String, Output) {
    let mut command = latch_run(p, &["-v", "--no-secrets", "--", "sh", "-c", TRAPPING]);
    if let Some(signal) = ignore {
        // SAFETY: `signal` is async-signal-safe; nothing is allocated.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn)?;
                Ok(())
            });
        }
    }
    tokio::task::spawn_blocking(move || {
        let (mut child, mut out, _) = start_until(&mut command, Stdio::piped(), "ready");
        drive(&mut child, &mut out);
        kill(child.pid(), Signal::SIGTERM).expect("signals latch");
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("reads");
        child.0.stdout = None;
        (rest, child.wait_output())
    })
    .await
    .expect("joins")
}

#[tokio::test(flavor = "multi_thread")]
async fn each_forwarded_signal_reaches_a_trapping_child() {
    let p = platform().await;
    // One at a time, each awaited: every one arrives, in the order sent, none fatal to latch.
    let (rest, o) = with_trapping_child(&p, None, |child, out| {
        for (signal, name) in TRAPPED {
            kill(child.pid(), signal).expect("signals latch");
            let seen = child.expect_line(out, &format!("got {name}"));
            assert_eq!(seen, format!("got {name}\n"), "in order, nothing else");
        }
    })
    .await;
    assert_eq!(rest, "got TERM\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        !text(&o.stderr).contains("was ignored"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_different_signals_loses_none() {
    let p = platform().await;
    // All five sent back to back, before latch or the child can act on the first: each kind is
    // pending on its own, so every one is forwarded and trapped (in signal-number order when
    // several are pending together, so the order is not asserted).
    let (rest, o) = with_trapping_child(&p, None, |child, out| {
        for (signal, _) in TRAPPED {
            kill(child.pid(), signal).expect("signals latch");
        }
        let mut seen = String::new();
        for (_, name) in TRAPPED {
            if !seen.contains(&format!("got {name}\n")) {
                seen.push_str(&child.expect_line(out, &format!("got {name}")));
            }
        }
        let mut lines: Vec<&str> = seen.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            ["got HUP", "got INT", "got QUIT", "got USR1", "got USR2"]
        );
    })
    .await;
    assert_eq!(rest, "got TERM\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_one_signal_arrives_at_least_once_and_harms_nothing() {
    let p = platform().await;
    // The kernel keeps one pending instance of each ordinary signal: identical signals that
    // arrive before latch reads the first become one (and so again at the child). Three
    // SIGUSR1 back to back reach the child once to three times; latch and the child live on.
    let (rest, o) = with_trapping_child(&p, None, |child, out| {
        for _ in 0..3 {
            kill(child.pid(), Signal::SIGUSR1).expect("signals latch");
        }
        child.expect_line(out, "got USR1");
        kill(child.pid(), Signal::SIGUSR2).expect("signals latch");
        let seen = child.expect_line(out, "got USR2");
        assert!(
            seen.lines().all(|l| l == "got USR1" || l == "got USR2"),
            "{seen}"
        );
        assert!(seen.matches("got USR1").count() <= 2, "{seen}");
    })
    .await;
    assert!(rest.ends_with("got TERM\n"), "{rest}");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_ignored_when_latch_starts_stays_ignored_in_the_child() {
    let p = platform().await;
    // As under `nohup`: SIGHUP is ignored when latch starts. latch still survives it and
    // forwards it, the child inherits the ignored disposition (a shell cannot even trap it),
    // and every other signal still arrives.
    let (rest, o) = with_trapping_child(&p, Some(Signal::SIGHUP), |child, out| {
        kill(child.pid(), Signal::SIGHUP).expect("signals latch");
        kill(child.pid(), Signal::SIGUSR1).expect("signals latch");
        let seen = child.expect_line(out, "got USR1");
        // Had SIGHUP reached a trap, it would have run first: it was sent first and has the
        // lower number.
        assert_eq!(seen, "got USR1\n");
    })
    .await;
    assert_eq!(rest, "got TERM\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // `latch run -v` says why a trap will not fire.
    let err = text(&o.stderr);
    assert!(
        err.contains("SIGHUP was ignored when latch started"),
        "{err}"
    );
    assert_eq!(
        err.matches("was ignored when latch started").count(),
        1,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signal_group_reaches_grandchildren_too() {
    let p = platform().await;
    let script = r#"sh -c 'trap "echo grandchild got TERM; exit 0" TERM; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done' &
trap 'echo child got TERM' TERM
wait; wait"#;
    let mut command = latch_run(
        &p,
        &["--no-secrets", "--signal-group", "--", "sh", "-c", script],
    );
    let o = tokio::task::spawn_blocking(move || {
        let (mut child, mut out, _) = start_until(&mut command, Stdio::piped(), "ready");
        kill(child.pid(), Signal::SIGTERM).expect("signals latch");
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        (child.wait_output(), rest)
    })
    .await
    .expect("joins");
    assert!(o.1.contains("grandchild got TERM"), "{}", o.1);
    assert!(o.1.contains("child got TERM"), "{}", o.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_and_5mb_of_binary_stdout_pass_byte_exact() {
    let p = platform().await;
    let mut data = vec![0u8; 5 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut data {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let o = output(latch_run(&p, &["--", "cat"]), Some(data.clone())).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(o.stdout.len(), data.len());
    assert!(o.stdout == data, "stdout differs from stdin");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_stops_the_command_with_124() {
    let p = platform().await;
    let o = output(
        latch_run(
            &p,
            &["--no-secrets", "--timeout", "1s", "--", "sleep", "30"],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(124), "{}", text(&o.stderr));
    // A command that ignores SIGTERM is killed after --kill-after.
    let o = output(
        latch_run(
            &p,
            &[
                "--no-secrets",
                "--timeout",
                "500ms",
                "--kill-after",
                "500ms",
                "--",
                "sh",
                "-c",
                "trap '' TERM; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(124), "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_scrub_execs_in_place_with_the_same_pid() {
    let p = platform().await;
    let mut command = latch_run(
        &p,
        &["--no-scrub", "--", "sh", "-c", "echo pid=$$; echo $TOKEN"],
    );
    let (pid, o) = tokio::task::spawn_blocking(move || {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Guard::spawn(&mut command);
        let pid = child.0.id();
        (pid, child.wait_output())
    })
    .await
    .expect("joins");
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains(&format!("pid={pid}\n")), "{out}");
    assert!(out.contains(TOKEN), "--no-scrub does not mask: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_secrets_are_private_and_gone_after_the_child_is_killed() {
    let p = platform().await;
    let script = r#"echo "path=$TOKEN"; stat -c '%a' "$TOKEN" "$(dirname "$TOKEN")"; cat "$TOKEN"; echo; kill -KILL $$"#;
    let o = output(
        latch_run(&p, &["--secret-file", "TOKEN", "--", "sh", "-c", script]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(137), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("path="))
        .expect("path printed");
    assert!(out.contains("600\n700\n"), "{out}");
    assert!(out.contains("[MASKED:TOKEN]"), "file content masked: {out}");
    assert!(!std::path::Path::new(path).exists(), "{path} left behind");
    let dir = std::path::Path::new(path).parent().expect("dir");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_child_environment_follows_the_plan() {
    let p = platform().await;
    let mut command = latch_run(&p, &["--", "env"]);
    command
        .env("TOKEN", "inherited")
        .env("AWS_PROFILE", "dev")
        .env("LATCH_API_KEY_FILE", "/nonexistent-but-ignored");
    command.env_remove("LATCH_API_KEY_FILE");
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("TOKEN=[MASKED:TOKEN]"), "{out}");
    assert!(out.contains("AWS_PROFILE=dev"), "{out}");
    // The run id is the only LATCH_* variable the child gets (DESIGN §6).
    let latch_vars: Vec<&str> = out.lines().filter(|l| l.starts_with("LATCH_")).collect();
    assert_eq!(
        latch_vars.len(),
        1,
        "launcher settings leak: {latch_vars:?}"
    );
    assert!(latch_vars[0].starts_with("LATCH_RUN_ID="), "{latch_vars:?}");
    assert!(
        text(&o.stderr).contains("replaces the inherited variable TOKEN"),
        "{}",
        text(&o.stderr)
    );

    let mut command = latch_run(&p, &["--preserve-env", "--", "env"]);
    command.env("TOKEN", "inherited");
    let o = output(command, None).await;
    assert!(
        text(&o.stdout).contains("TOKEN=inherited"),
        "{}",
        text(&o.stdout)
    );

    let mut command = latch_run(&p, &["--pristine", "--", "env"]);
    command.env("AWS_PROFILE", "dev").env("LC_ALL", "C");
    let o = output(command, None).await;
    let out = text(&o.stdout);
    assert!(!out.contains("AWS_PROFILE"), "{out}");
    assert!(out.contains("LC_ALL=C") && out.contains("PATH="), "{out}");
    assert!(out.contains("DB_PASSWORD=[MASKED:DB_PASSWORD]"), "{out}");

    let o = output(latch_run(&p, &["--secrets", "TOKEN", "--", "env"]), None).await;
    let out = text(&o.stdout);
    assert!(
        out.contains("TOKEN=") && !out.contains("DB_PASSWORD="),
        "{out}"
    );
    let o = output(latch_run(&p, &["--no-secrets", "--", "env"]), None).await;
    assert!(!text(&o.stdout).contains("TOKEN="), "{}", text(&o.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_required_secret_exits_65_without_starting_the_command() {
    let p = platform().await;
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("started");
    let o = output(
        latch_run(
            &p,
            &[
                "--require",
                "TOKEN,ABSENT",
                "--",
                "touch",
                marker.to_str().expect("utf8"),
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("ABSENT"), "{}", text(&o.stderr));
    assert!(!marker.exists(), "the command ran");
    // A missing name that is not required is reported and the run goes on.
    let o = output(
        latch_run(&p, &["--secrets", "TOKEN,ABSENT", "--", "true"]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "ABSENT is not delivered: no secret of that name that this run can see (not_found)"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_end_is_reported_and_the_log_is_scrubbed() {
    let p = platform().await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("run.log");
    let o = output(
        latch_run(
            &p,
            &[
                "--log",
                log.to_str().expect("utf8"),
                "--",
                "sh",
                "-c",
                "echo $TOKEN; echo $TOKEN $DB_PASSWORD >&2; exit 3",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(3));
    let transcript = std::fs::read(&log).expect("log written");
    assert_clean("log", &transcript, &p.owner);
    assert!(
        text(&transcript).contains("[MASKED:TOKEN]"),
        "{}",
        text(&transcript)
    );
    let mode = std::fs::metadata(&log).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs", None).await["runs"].clone();
    let id = runs[0]["id"].as_str().expect("id").to_owned();
    let run = p
        .ok(&p.owner, Method::GET, &format!("/v1/runs/{id}"), None)
        .await;
    assert_eq!(run["status"], "finished", "{run}");
    assert_eq!(run["outcome"]["exit_code"], 3, "{run}");
    assert_eq!(run["outcome"]["masked"]["TOKEN"], 2, "{run}");
    assert_eq!(run["outcome"]["masked"]["DB_PASSWORD"], 1, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_absent_from_the_child_and_from_the_launchers_environ() {
    let p = platform().await;
    let mut command = latch_run(
        &p,
        &[
            "--",
            "sh",
            "-c",
            "env | grep -c LATCH_API_KEY; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        ],
    );
    let key = p.owner.clone();
    tokio::task::spawn_blocking(move || {
        let (child, _out, seen) = start_until(&mut command, Stdio::null(), "ready");
        assert!(seen.starts_with("0\n"), "{seen}");
        let environ = std::fs::read(format!("/proc/{}/environ", child.pid())).expect("environ");
        assert!(
            memchr::memmem::find(&environ, key.as_bytes()).is_none(),
            "the key shows in /proc/<launcher>/environ"
        );
        assert!(memchr::memmem::find(&environ, b"LATCH_URL=").is_some());
    })
    .await
    .expect("joins");
}

/// Every readable mapping of `pid`, searched for each needle; returns what was found where.
pub(crate) fn scan_memory(pid: Pid, needles: &[(&str, &[u8])]) -> (usize, Vec<String>) {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem (run as root)");
    let mut scanned = 0;
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().expect("range");
        let perms = fields.next().expect("perms");
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (start, end) = range.split_once('-').expect("range");
        let start = u64::from_str_radix(start, 16).expect("hex");
        let end = u64::from_str_radix(end, 16).expect("hex");
        let mut region = vec![0u8; usize::try_from(end - start).expect("size")];
        let mut got = 0;
        while got < region.len() {
            match mem.read_at(&mut region[got..], start + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        scanned += got;
        for (name, needle) in needles {
            if memchr::memmem::find(&region[..got], needle).is_some() {
                found.push(format!("{name} in {line}"));
            }
        }
    }
    (scanned, found)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_of_the_launchers_memory_finds_no_key_and_no_value() {
    let p = platform().await;
    let key = p.owner.clone();
    for extra in [
        &[][..],
        &["--pty"][..],
        &["--secret-file", "DB_PASSWORD"][..],
    ] {
        let mut args = extra.to_vec();
        args.extend([
            "--",
            "sh",
            "-c",
            "echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        ]);
        let mut command = latch_run(&p, &args);
        let key = key.clone();
        let extra = format!("{extra:?}");
        tokio::task::spawn_blocking(move || {
            let (child, _out, _) = start_until(&mut command, Stdio::null(), "ready");
            let needles: [(&str, &[u8]); 4] = [
                ("api key", key.as_bytes()),
                ("TOKEN", TOKEN.as_bytes()),
                ("DB_PASSWORD", DB_PASSWORD.as_bytes()),
                ("GH_TOKEN", PERSONAL.as_bytes()),
            ];
            let (scanned, found) = scan_memory(child.pid(), &needles);
            assert!(scanned > 1 << 20, "{extra}: scanned only {scanned} bytes");
            assert!(found.is_empty(), "{extra}: {found:#?}");
            // The scan can find what is there: the child's memory holds its environment.
            let _ = std::fs::read_dir(format!("/proc/{}/task", child.pid()));
        })
        .await
        .expect("joins");
    }
}

/// `latch run` of a shell that prints `ready` and its PID, then waits 30 s.
fn waiting_command(p: &Platform) -> std::process::Command {
    latch_run(
        p,
        &[
            "--",
            "sh",
            "-c",
            "echo ready $$; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        ],
    )
}

/// The PID in the `ready PID` line of [`waiting_command`].
fn command_pid(line: &str) -> i32 {
    line.trim()
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("the command's pid")
}

/// The mappings of `pid` (from `/proc/<pid>/smaps`) that are writable and backed by no file,
/// each with whether it is locked (`lo` among its `VmFlags`).
fn anonymous_writable_locked(pid: i32) -> Vec<(String, bool)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut found = Vec::new();
    let mut mapping: Option<String> = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            let anonymous_writable = fields.get(1).is_some_and(|p| p.as_bytes()[1] == b'w')
                && fields.get(4) == Some(&"0");
            mapping = anonymous_writable.then(|| line.to_owned());
        } else if let Some(flags) = line.strip_prefix("VmFlags:")
            && let Some(m) = mapping.take()
        {
            found.push((m, flags.split_whitespace().any(|f| f == "lo")));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_launchers_heap_and_stacks_are_locked_and_the_commands_memory_is_not() {
    let p = platform().await;
    let mut command = waiting_command(&p);
    tokio::task::spawn_blocking(move || {
        let (child, _out, line) = start_until(&mut command, Stdio::null(), "ready");
        // Every mapping where a value can be (heap, allocator arenas, thread stacks: writable,
        // no file behind it) is locked against swap; latch runs as root here, so also those
        // made after it started (the pumps' stacks, the heap's growth).
        let latch = anonymous_writable_locked(child.pid().as_raw());
        assert!(latch.len() >= 3, "heap, stacks: {latch:#?}");
        let unlocked: Vec<_> = latch.iter().filter(|(_, locked)| !locked).collect();
        assert!(unlocked.is_empty(), "not locked: {unlocked:#?}");
        // Locks are not inherited: the command's memory is its own business.
        let pid = command_pid(&line);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().eq(["VmLck:", "0", "kB"])),
            "{status}"
        );
    })
    .await
    .expect("joins");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_scan_finds_a_value_that_is_there() {
    // The scan itself is checked against a process that does hold the values: the child
    // (`sh`), whose environment has them.
    let p = platform().await;
    let mut command = waiting_command(&p);
    tokio::task::spawn_blocking(move || {
        let (_child, _out, line) = start_until(&mut command, Stdio::null(), "ready");
        let pid = command_pid(&line);
        let (_, found) = scan_memory(Pid::from_raw(pid), &[("TOKEN", TOKEN.as_bytes())]);
        assert!(!found.is_empty(), "the scan misses a value in the child");
    })
    .await
    .expect("joins");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_most_verbose_launcher_log_holds_no_secret() {
    let p = platform().await;
    for verbosity in [&["-vvv"][..], &[][..]] {
        let mut args = verbosity.to_vec();
        args.extend(["--", "sh", "-c", "echo $TOKEN $GH_TOKEN; exit 0"]);
        let mut command = latch_run(&p, &args);
        if verbosity.is_empty() {
            command.env("LATCH_LOG", "trace");
        }
        let o = output(command, None).await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        // Tracing's own format (levels, targets) only at -vv and beyond; LATCH_LOG alone
        // raises the level but keeps latch's lines.
        let stderr = text(&o.stderr);
        if verbosity.is_empty() {
            assert!(stderr.contains("latch: note: "), "{stderr}");
            assert!(
                !stderr.contains("TRACE") && !stderr.contains("latch::"),
                "{stderr}"
            );
        } else {
            assert!(
                stderr.contains("TRACE") || stderr.contains("DEBUG"),
                "{stderr}"
            );
        }
        assert_clean("stderr", &o.stderr, &p.owner);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn under_a_terminal_the_child_gets_one_and_window_sizes_follow() {
    use nix::pty::{Winsize, openpty};
    use nix::sys::termios::LocalFlags;
    let p = platform().await;
    let script = r#"[ -t 0 ] && [ -t 1 ] && echo "tty yes"; trap 'echo "size $(stty size)"' WINCH; echo "size $(stty size)"; echo "token $TOKEN"; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"#;
    let mut command = latch_run(&p, &["--", "sh", "-c", script]);
    let size = |rows, cols| Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pair = openpty(Some(&size(24, 80)), None).expect("pty");
    let slave = pair.slave;
    // latch leads a session whose controlling terminal is the test's pty, as under a shell.
    on_terminal(&mut command, &slave);
    let master = pair.master;
    let outer = slave.try_clone().expect("dup");
    let before = nix::sys::termios::tcgetattr(&outer).expect("termios");
    tokio::task::spawn_blocking(move || {
        let child = Guard::spawn(&mut command);
        drop(slave);
        drop(command);
        let mut reader = BufReader::new(std::fs::File::from(master.try_clone().expect("dup")));
        let seen = wait_for_line(&mut reader, "token");
        assert!(seen.contains("tty yes"), "{seen}");
        assert!(seen.contains("size 24 80"), "{seen}");
        assert!(seen.contains("token [MASKED:TOKEN]"), "{seen}");
        let new = size(40, 132);
        nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, nix::libc::winsize);
        unsafe { set_winsize(master.as_raw_fd(), &raw const new) }.expect("resize");
        let seen = wait_for_line(&mut reader, "size 40 132");
        assert!(!seen.contains(TOKEN));
        // While the child runs, the outer terminal is raw; once latch is gone it is restored.
        let raw = nix::sys::termios::tcgetattr(&outer).expect("termios");
        assert!(!raw.local_flags.contains(LocalFlags::ICANON));
        // Job control: SIGTSTP gives the terminal back and stops latch; SIGCONT takes it again.
        let state = |pid: Pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().chars().next()))
                .flatten()
        };
        let until = |what: &str, check: &dyn Fn() -> bool| {
            for _ in 0..400 {
                if check() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            panic!("{what} did not happen");
        };
        kill(child.pid(), Signal::SIGTSTP).expect("signals latch");
        until("stop", &|| state(child.pid()) == Some('T'));
        let stopped = nix::sys::termios::tcgetattr(&outer).expect("termios");
        assert!(
            stopped.local_flags.contains(LocalFlags::ICANON),
            "restored while stopped"
        );
        kill(child.pid(), Signal::SIGCONT).expect("signals latch");
        until("raw mode again", &|| {
            !nix::sys::termios::tcgetattr(&outer)
                .expect("termios")
                .local_flags
                .contains(LocalFlags::ICANON)
        });
        kill(child.pid(), Signal::SIGTERM).expect("signals latch");
        let mut child = child;
        let status = child.0.wait().expect("waits");
        child.1 = true;
        assert_eq!(status.code(), Some(128 + 15));
        let after = nix::sys::termios::tcgetattr(&outer).expect("termios");
        assert_eq!(after.local_flags, before.local_flags);
        assert_eq!(after.input_flags, before.input_flags);
    })
    .await
    .expect("joins");
}

#[tokio::test(flavor = "multi_thread")]
async fn as_pid_1_it_reaps_100_orphans_and_leaves_no_zombie() {
    let p = platform().await;
    // 100 orphans: each subshell forks `sleep` and exits at once, so the sleeps are reparented
    // to PID 1 (latch) and exit 0.2 s later. Unreaped, each would stay a zombie.
    let script = r#"i=0; while [ $i -lt 100 ]; do (sleep 0.2 &); i=$((i+1)); done
j=0; while [ $j -lt 300 ] && grep -qx sleep /proc/[0-9]*/comm 2>/dev/null; do sleep 0.1; j=$((j+1)); done
echo "pid1=$(cat /proc/1/comm)"
echo "zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)""#;
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_latch"))
        .args(["run", "--no-secrets", "--", "sh", "-c", script])
        .env("LATCH_URL", &p.url)
        .env("LATCH_API_KEY", &p.owner)
        .stdin(Stdio::null());
    let o = output(command, None).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out} {}", text(&o.stderr));
    assert!(out.contains("pid1=latch"), "{out}");
    assert!(out.contains("zombies=0\n"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_and_bad_answers_get_clear_errors() {
    let p = platform().await;
    // Malformed key: refused offline, 77 (DESIGN §4, §6).
    let mut command = latch_run(&p, &["--", "true"]);
    command.env("LATCH_API_KEY", "latch_p_not-a-key");
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(77), "{}", text(&o.stderr));
    // A well-formed key the platform does not know: 77.
    let mut command = latch_run(&p, &["--", "true"]);
    let mut unknown = p.owner.clone().into_bytes();
    unknown[9] = if unknown[9] == b'a' { b'b' } else { b'a' };
    command.env("LATCH_API_KEY", String::from_utf8(unknown).expect("ascii"));
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(77), "{}", text(&o.stderr));
    // Nothing listening: 69.
    let mut command = latch_run(&p, &["--", "true"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    command.env("LATCH_URL", url);
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(69), "{}", text(&o.stderr));
    // An unusable --log: 78, nothing started.
    let o = output(
        latch_run(&p, &["--log", "/nonexistent/dir/log", "--", "true"]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(78), "{}", text(&o.stderr));
    // Bad flags: 2.
    for args in [
        &["--timeout", "soon", "--", "true"][..],
        &["--no-scrub", "--secret-file", "TOKEN", "--", "true"][..],
        &["--secrets", "BAD-NAME", "--", "true"][..],
        &[][..],
    ] {
        let o = output(latch_run(&p, args), None).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_platform_answers_fail_closed() {
    // A fake platform on loopback answering garbage, an oversized body, and a secret name that
    // would hijack the child's loader.
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        br#"{"run_id":"r","trigger":"cli","secrets":[{"name":"LD_PRELOAD","scope":"team","version":1,"value":"/tmp/evil.so"}],"missing":[],"shadowed":[]}"#
            .to_vec(),
        vec![b' '; 17 << 20],
    ];
    let p = start().await;
    for body in bodies {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            listener.set_nonblocking(false).expect("blocking");
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        let mut command = latch_run(&p, &["--", "sh", "-c", "echo started"]);
        command.env("LATCH_URL", &url);
        let o = output(command, None).await;
        assert_eq!(o.status.code(), Some(70), "{}", text(&o.stderr));
        assert!(!text(&o.stdout).contains("started"));
        assert!(!text(&o.stderr).contains("panicked"), "{}", text(&o.stderr));
        server.join().expect("server");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exit_status_survives_a_platform_that_is_gone_at_the_end() {
    let p = platform().await;
    let url = p.url.clone();
    let key = p.owner.clone();
    // The run resolves, then the platform stops while the command runs: the report fails with
    // a warning and the exit status stays the command's.
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command
        .args(["run", "--", "sh", "-c", "echo ready; read line; exit 5"])
        .env("LATCH_URL", url)
        .env("LATCH_API_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = tokio::task::spawn_blocking(move || {
        let mut child = Guard::spawn(&mut command);
        let mut out = BufReader::new(child.0.stdout.as_mut().expect("stdout"));
        wait_for_line(&mut out, "ready");
        child
    })
    .await
    .expect("joins");
    let _dir = p.stop().await;
    let started = Instant::now();
    let o = tokio::task::spawn_blocking(move || {
        child
            .0
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("writes");
        child.wait_output()
    })
    .await
    .expect("joins");
    assert_eq!(o.status.code(), Some(5), "{}", text(&o.stderr));
    assert!(o.status.signal().is_none());
    assert!(
        text(&o.stderr).contains("could not report the end"),
        "{}",
        text(&o.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[tokio::test(flavor = "multi_thread")]
async fn trigger_decides_user_context_and_a_team_key_cannot_claim_a_person() {
    let p = platform().await;
    // A personal key with a trigger that has no user context: the personal secret is not
    // delivered, and the reason says why.
    let o = output(
        latch_run(
            &p,
            &[
                "--trigger",
                "schedule",
                "--secrets",
                "TOKEN,GH_TOKEN",
                "--",
                "env",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        !text(&o.stdout).contains("GH_TOKEN="),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains("GH_TOKEN is not delivered: your personal secret")
            && text(&o.stderr).contains("(personal_unavailable)"),
        "{}",
        text(&o.stderr)
    );
    // A team key with a person's trigger is refused before anything starts.
    let created = p
        .ok(
            &p.owner,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "bot", "kind": "team"})),
        )
        .await;
    let team_key = created["key"].as_str().expect("key").to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("started");
    let mut command = latch_run(
        &p,
        &[
            "--trigger",
            "cli",
            "--",
            "touch",
            marker.to_str().expect("utf8"),
        ],
    );
    command.env("LATCH_API_KEY", &team_key);
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(77), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("trigger_requires_user"),
        "{}",
        text(&o.stderr)
    );
    assert!(!marker.exists());
    assert_clean("stderr", &o.stderr, &team_key);
}

#[tokio::test(flavor = "multi_thread")]
async fn subreaper_adopts_and_reaps_orphans() {
    let p = platform().await;
    // The orphan's parent must be latch while it runs, and it must be gone (not a zombie)
    // once it exits.
    let script = r#"(sleep 0.5 & echo "orphan=$!"); echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"#;
    let mut command = latch_run(
        &p,
        &["--no-secrets", "--subreaper", "--", "sh", "-c", script],
    );
    tokio::task::spawn_blocking(move || {
        let (child, _out, seen) = start_until(&mut command, Stdio::null(), "ready");
        let orphan: i32 = seen
            .lines()
            .find_map(|l| l.strip_prefix("orphan="))
            .and_then(|n| n.trim().parse().ok())
            .expect("orphan pid");
        let status = std::fs::read_to_string(format!("/proc/{orphan}/status")).unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(str::trim);
        assert_eq!(ppid, Some(child.pid().to_string().as_str()), "{status}");
        // Bounded wait for the orphan to exit and be reaped.
        let mut gone = false;
        for _ in 0..200 {
            if !std::path::Path::new(&format!("/proc/{orphan}")).exists() {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(gone, "the orphan was not reaped (still in /proc, a zombie)");
    })
    .await
    .expect("joins");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_is_drained_and_the_grace_for_descendants_is_bounded() {
    let p = platform().await;
    // A descendant writes after the command exited: within the grace, so it is kept (masked).
    let o = output(
        latch_run(
            &p,
            &[
                "--",
                "sh",
                "-c",
                "(sleep 0.3; echo \"late $TOKEN\") & echo early",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), "early\nlate [MASKED:TOKEN]\n");
    // A descendant that keeps the pipe for 60 s does not keep latch: it ends after the grace.
    let started = Instant::now();
    let o = output(
        latch_run(
            &p,
            &[
                "--no-secrets",
                "--",
                "sh",
                "-c",
                "sleep 60 & echo parent done",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), "parent done\n");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "latch waited for the descendant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_child_gets_the_original_signal_mask_and_dispositions_and_latch_has_no_core() {
    let p = platform().await;
    // latch starts with SIGUSR2 blocked and blocks many more itself; the child (grep, which
    // leaves its mask alone, unlike a shell) must get exactly the original mask back.
    let mut command = latch_run(
        &p,
        &[
            "--no-secrets",
            "--",
            "grep",
            "-E",
            "^Sig(Blk|Ign)",
            "/proc/self/status",
        ],
    );
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(Signal::SIGUSR2);
            set.thread_block()?;
            // And SIGUSR1 ignored, as a shell leaves it for a background job.
            nix::sys::signal::signal(Signal::SIGUSR1, nix::sys::signal::SigHandler::SigIgn)?;
            Ok(())
        });
    }
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Blocked: SIGUSR2 (signal 12) only. Ignored: what latch inherited from this process (std's
    // Command gives it SIGPIPE back at its default) plus SIGUSR1 (signal 10); SIGPIPE, which the
    // Rust runtime ignores inside latch, is back to its default in the child too.
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    let own_ignored = own
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("SigIgn");
    let sigpipe = 1u64 << (13 - 1);
    let usr1 = 1u64 << (10 - 1);
    // `latch_run` starts latch with the forwarded signals at their defaults.
    let forwarded = FORWARDED
        .iter()
        .fold(0u64, |m, s| m | 1u64 << (*s as i32 - 1));
    let expected = (own_ignored & !sigpipe & !forwarded) | usr1;
    assert_eq!(
        text(&o.stdout),
        format!("SigBlk:\t0000000000000800\nSigIgn:\t{expected:016x}\n")
    );

    let mut command = latch_run(
        &p,
        &[
            "--no-secrets",
            "--",
            "sh",
            "-c",
            "echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        ],
    );
    tokio::task::spawn_blocking(move || {
        let (child, _out, _) = start_until(&mut command, Stdio::null(), "ready");
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", child.pid())).expect("limits");
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .expect("core line");
        assert!(core.split_whitespace().nth(4) == Some("0"), "{core}");
    })
    .await
    .expect("joins");
}
