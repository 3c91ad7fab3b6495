//! Drives the real `latch` binary: the command tree, usage errors and the exit-code contract.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const KEY_LOOKALIKE: &str = "latch_p_AbCd1234ABCDEFGHIJKLMNOPQRSTUVWXYZ0123450xY9z2";

fn latch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .env_remove("LATCH_API_KEY")
        .env_remove("LATCH_URL")
        .env_remove("LATCH_LOG")
        .output()
        .expect("the latch binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_shows_the_whole_product() {
    let out = latch(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for command in [
        "run", "scrub", "serve", "secret", "api-key", "env", "identity", "member", "runs", "audit",
        "whoami",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "`{command}` missing from --help:\n{help}"
        );
    }
    for sub in [
        ["secret", "create"],
        ["api-key", "revoke"],
        ["env", "set"],
        ["identity", "show"],
        ["member", "set-role"],
        ["runs", "show"],
    ] {
        let out = latch(&[sub[0], sub[1], "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub:?}");
    }
}

#[test]
fn run_help_documents_the_launcher_flags() {
    let help = text(&latch(&["run", "--help"]).stdout);
    for flag in [
        "--env",
        "--secrets",
        "--no-secrets",
        "--require",
        "--trigger",
        "--secret-file",
        "--pristine",
        "--preserve-env",
        "--no-scrub",
        "--pty",
        "--no-pty",
        "--mask-style",
        "--log",
        "--timeout",
        "--kill-after",
        "--signal-group",
        "--subreaper",
    ] {
        assert!(help.contains(flag), "`{flag}` missing from run --help");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["run"],
        &["run", "--secrets", "A", "--no-secrets", "--", "true"],
        &["run", "--timeout", "soon", "--", "true"],
        &["run", "--trigger", "cron", "--", "true"],
        &["secret", "create", "--team", "--personal", "TOKEN"],
        &["secret", "create", "TOKEN"],
        &["secret", "create", "--team", "TOKEN", "hunter2-value"],
        &[
            "api-key",
            "create",
            "--name",
            "ci",
            "--personal",
            "--expires",
            "forever",
        ],
        &[
            "api-key",
            "create",
            "--name",
            "ci",
            "--personal",
            "--identity",
            "bot",
        ],
        &["env", "set", "ci", "--secrets", "GOOD,bad-name"],
        &["member", "add", "alice", "--role", "superuser"],
    ] {
        let out = latch(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn refused_secret_name_is_explained_as_configuration() {
    // DESIGN §6: a refused name is 78, wherever it is given, and the reason is said.
    for args in [
        &["secret", "create", "--team", "LD_PRELOAD"][..],
        &["env", "set", "ci", "--secrets", "TOKEN,BASH_ENV"],
        &["run", "--secrets", "HTTPS_PROXY", "--", "true"],
    ] {
        let out = latch(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("latch: error: ") && err.contains("is refused as a secret name: it "),
            "{err}"
        );
    }
    let err = text(&latch(&["secret", "create", "--team", "LD_PRELOAD"]).stderr);
    assert!(err.contains("changes how programs load code"), "{err}");
}

#[test]
fn a_secret_value_is_never_accepted_as_an_argument() {
    // There is no positional or `--value VALUE` form: the extra word is a usage error.
    let out = latch(&[
        "secret",
        "update",
        "--team",
        "TOKEN",
        "--value",
        "hunter2-value",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_api_key_from_the_environment_is_never_echoed() {
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["--help"])
        .env("LATCH_API_KEY", KEY_LOOKALIKE)
        .output()
        .expect("runs");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains(KEY_LOOKALIKE), "help shows the key");
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(["-vvv", "whoami"])
        .env("LATCH_API_KEY", KEY_LOOKALIKE)
        .output()
        .expect("runs");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        !all.contains(&KEY_LOOKALIKE[8..]),
        "output shows the key: {all}"
    );
}

#[test]
fn version_is_printed() {
    let out = latch(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("latch "));
}

// latch scrub ------------------------------------------------------------------------------

const TOKEN: &str = "sk-live-4f9a8b7c6d5e";

fn scrub(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latch"));
    cmd.arg("scrub").args(args).env_remove("LATCH_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("latch scrub starts")
}

/// Reads from `out` on a thread until `want` bytes arrived or 10 s passed.
fn read_some(out: std::process::ChildStdout, want: usize) -> (Vec<u8>, std::process::ChildStdout) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = out;
        let mut got = vec![0u8; want];
        let ok = out.read_exact(&mut got).is_ok();
        let _ = tx.send((ok, got, out));
    });
    let (ok, got, out) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("output within 10 s");
    assert!(ok, "stream ended early");
    (got, out)
}

#[test]
fn scrub_masks_values_of_named_variables_and_their_encodings() {
    let mut child = scrub(
        &["--secret-env", "TOK", "--secret-env", "OTHER"],
        &[("TOK", TOKEN), ("OTHER", "another-secret-value")],
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let input = format!(
        "token={TOKEN} hex={} json={{\"k\":\"another-secret-value\"}}\n",
        TOKEN
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    stdin.write_all(input.as_bytes()).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "token=[MASKED:TOK] hex=[MASKED:TOK] json={\"k\":\"[MASKED:OTHER]\"}\n"
    );
}

#[test]
fn scrub_releases_a_prompt_at_once_and_masks_a_secret_written_in_two_halves() {
    let mut child = scrub(&["--secret-env", "TOK"], &[("TOK", TOKEN)]);
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    stdin.write_all(b"Password: sk-live-").expect("write");
    stdin.flush().expect("flush");
    // The prompt arrives while the secret's first half is still held back.
    let (got, stdout) = read_some(stdout, 10);
    assert_eq!(got, b"Password: ");
    std::thread::sleep(Duration::from_millis(200));
    stdin.write_all(b"4f9a8b7c6d5e\n").expect("write");
    drop(stdin);
    let mut rest = Vec::new();
    let mut stdout = stdout;
    stdout.read_to_end(&mut rest).expect("reads");
    let status = child.wait().expect("waits");
    assert_eq!(status.code(), Some(0), "pid {pid}");
    let rest = text(&rest);
    assert!(
        !rest.contains("sk-live") && !rest.contains("4f9a8b7c6d5e"),
        "{rest}"
    );
    assert_eq!(rest, "[MASKED:TOK:partial][MASKED:TOK:partial]\n");
}

#[test]
fn scrub_passes_binary_input_through_byte_exact() {
    let mut child = scrub(&["--secret-env", "TOK"], &[("TOK", TOKEN)]);
    let mut stdin = child.stdin.take().expect("stdin");
    let input: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expected = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("waits");
    writer.join().expect("joins").expect("writes");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == expected, "binary output differs");
}

#[test]
fn scrub_refuses_unset_or_empty_variables_with_78() {
    for env in [&[][..], &[("TOK", "")]] {
        let mut child = scrub(&["--secret-env", "TOK"], env);
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("waits");
        assert_eq!(out.status.code(), Some(78));
        let err = text(&out.stderr);
        assert!(
            err.contains("TOK") && err.contains("unset or empty"),
            "{err}"
        );
    }
    let out = latch(&["scrub", "--secret-env", "A=B"]);
    assert_eq!(out.status.code(), Some(78));
    let out = latch(&["scrub"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing to mask is a usage error"
    );
}

#[test]
fn scrub_warns_about_values_too_short_to_mask() {
    let mut child = scrub(&["--secret-env", "PIN"], &[("PIN", "q#z")]);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"pin q#z\n")
        .expect("write");
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "pin q#z\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("PIN") && err.contains("shorter than 4 bytes"),
        "{err}"
    );
    // Not digits: the log line's timestamp must not look like the value.
    assert!(!err.contains("q#z"), "the warning shows the value: {err}");
}

#[test]
fn scrub_stops_quietly_when_its_reader_goes_away() {
    let mut child = scrub(&["--secret-env", "TOK"], &[("TOK", TOKEN)]);
    let mut stdin = child.stdin.take().expect("stdin");
    drop(child.stdout.take());
    // Writes until latch exits (its stdout reader is gone): bounded by the 10 s wait below.
    let writer = std::thread::spawn(move || {
        for _ in 0..10_000 {
            if stdin.write_all(&[b'x'; 4096]).is_err() {
                break;
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("exits within 10 s")
        .expect("waits");
    assert_eq!(status.code(), Some(0));
    writer.join().expect("joins");
}

#[test]
fn serve_on_an_unreachable_database_says_so_without_its_password() {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("root.key");
    std::fs::write(&root, "11".repeat(32)).expect("writes");
    // Port 1 on loopback: nothing listens there.
    let out = latch(&[
        "-vvv",
        "serve",
        "--database-url",
        "postgres://app:S3cretDbPass@127.0.0.1:1/latch",
        "--root-key-file",
        root.to_str().expect("utf8"),
        "--db-acquire-timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("--database-url"), "{err}");
    assert!(!err.contains("S3cretDbPass"), "{err}");
    // Without a root key file, replicas could not share one: refused before connecting.
    let out = latch(&["serve", "--database-url", "postgres://127.0.0.1:1/latch"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("--root-key-file"),
        "{}",
        text(&out.stderr)
    );
}
