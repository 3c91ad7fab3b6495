//! Drives the real `latch` binary: the command tree, usage errors and the exit-code contract.

use std::process::{Command, Output};

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
fn commands_not_built_yet_say_so_and_exit_70() {
    for args in [
        &["whoami"][..],
        &["audit"],
        &["secret", "list"],
        &["runs", "list"],
        &["serve"],
        &["run", "--", "true"],
        &["scrub", "--secret-env", "X"],
    ] {
        let out = latch(args);
        assert_eq!(out.status.code(), Some(70), "{args:?}");
        assert!(out.stdout.is_empty(), "no fake output for {args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("is not built in this version yet"),
            "{args:?}: {err}"
        );
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
        &["secret", "create", "--team", "LD_PRELOAD"],
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
fn refused_secret_name_is_explained() {
    let out = latch(&["secret", "create", "--team", "LD_PRELOAD"]);
    let err = text(&out.stderr);
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
