//! latch's own output as a careful user reads it (DESIGN §11, issue 17): colour only on a
//! terminal, errors as JSON under `--json`, a closed stdout, readable run listings and records,
//! writes that change only what they name, values from files, and keys and expiries as people
//! write them. The real binary against an in-process platform.

use std::io::Read;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::json;

use crate::careful::{assert_latch_lines, err, latch, latch_at};
use crate::launcher::{Guard, latch_run, output, platform, text};
use crate::server::Platform;

#[tokio::test(flavor = "multi_thread")]
async fn latch_lines_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    use nix::pty::openpty;
    let p = platform().await;
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let pair = openpty(None, None).expect("pty");
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .args(["env", "show", "nope"])
            .env("LATCH_URL", &p.url)
            .env("LATCH_API_KEY", &p.owner)
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::from(pair.slave));
        if let Some(v) = no_color {
            command.env("NO_COLOR", v);
        }
        let status = tokio::task::spawn_blocking(move || {
            let status = command.status().expect("runs");
            drop(command);
            status
        })
        .await
        .expect("joins");
        assert_eq!(status.code(), Some(66));
        let mut master = std::fs::File::from(pair.master);
        let mut said = Vec::new();
        // The terminal's other side is closed: reading ends (EIO) after what was written.
        let _ = master.read_to_end(&mut said);
        let said = text(&said);
        assert!(said.contains("error:"), "{said:?}");
        assert_eq!(
            said.contains("\x1b["),
            coloured,
            "NO_COLOR={no_color:?}: {said:?}"
        );
    }
    // Not a terminal: never a colour, never tracing's format (levels, targets, times).
    let o = latch(&p, &p.owner, &["-v", "env", "show", "nope"]).await;
    assert_latch_lines(&err(&o));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_json_an_error_is_also_one_object_on_stdout() {
    let p = platform().await;
    for (args, code, status) in [
        (&["--json", "env", "show", "nope"][..], "unknown_name", 66),
        (&["--json", "run", "--evn", "x", "--", "true"], "usage", 2),
        (
            &["--json", "run", "--env", "nope", "--", "true"],
            "unknown_environment",
            78,
        ),
    ] {
        let o = latch(&p, &p.owner, args).await;
        assert_eq!(o.status.code(), Some(status), "{args:?}: {}", err(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o.stdout)));
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(err(&o).starts_with("latch: error: "), "{}", err(&o));
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_latch_quietly() {
    let p = platform().await;
    // Enough to list: a few runs and events.
    for _ in 0..3 {
        let o = output(latch_run(&p, &["--no-secrets", "--", "true"]), None).await;
        assert_eq!(o.status.code(), Some(0));
    }
    for args in [
        &["runs", "list"][..],
        &["audit"],
        &["audit", "--follow"],
        &["completions", "bash"],
        &["api-key", "list"],
        &["secret", "list"],
        &["--json", "runs", "list"],
        &["whoami"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
        command
            .args(args)
            .env("LATCH_URL", &p.url)
            .env("LATCH_API_KEY", &p.owner)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped());
        let o = tokio::task::spawn_blocking(move || {
            let mut child = Guard::spawn(&mut command);
            child.wait_output()
        })
        .await
        .expect("joins");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", err(&o));
        assert_eq!(err(&o), "", "{args:?}");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_list_and_show_read_as_words() {
    let p = platform().await;
    let o = output(
        latch_run(
            &p,
            &[
                "--secrets",
                "TOKEN,NOPE",
                "--",
                "sh",
                "-c",
                "echo $TOKEN; exit 4",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    let runs = p.ok(&p.owner, Method::GET, "/v1/runs", None).await;
    let id = runs["runs"][0]["id"].as_str().expect("id").to_owned();
    let o = latch(&p, &p.owner, &["runs", "list"]).await;
    let list = text(&o.stdout);
    let header: Vec<&str> = list
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "ID", "STARTED", "WHO", "TRIGGER", "ENV", "IDENTITY", "STATUS", "EXIT", "DURATION",
            "MASKED"
        ]
    );
    let row = list.lines().nth(1).expect("a row");
    assert!(
        row.starts_with(&id) && row.contains("bootstrap (owner)"),
        "{list}"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_latch"));
    command
        .args(["runs", "show", &id])
        .env("LATCH_URL", &p.url)
        .env("LATCH_API_KEY", &p.owner)
        .env("TZ", "UTC");
    let o = output(command, None).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let show = text(&o.stdout);
    for line in [
        &format!("run          {id}")[..],
        "status       finished, exit 4, took ",
        "who          bootstrap (owner), key id ",
        "trigger      cli",
        "allowlist    the run's own list (--secrets)",
        "delivered    1 secret",
        "masked 1 time",
        "missing      1 name",
        "no secret of that name that this run can see",
        "hint: create it",
    ] {
        assert!(show.contains(line), "{line:?} missing from:\n{show}");
    }
    let started = show
        .lines()
        .find_map(|l| l.strip_prefix("started      "))
        .expect("started");
    assert!(
        started.ends_with(" UTC (just now)") && started.starts_with("20"),
        "{started}"
    );
    assert!(
        !show
            .split(|c: char| !c.is_ascii_digit())
            .any(|n| n.len() >= 13),
        "no epoch milliseconds: {show}"
    );
    // A run id is checked before it goes into a URL.
    let o = latch(&p, &p.owner, &["runs", "show", "../api-keys"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn env_set_changes_only_what_it_names() {
    let p = platform().await;
    let k = p.owner.clone();
    let show = |p: &Platform| {
        let (p_url, k) = (p.url.clone(), p.owner.clone());
        async move {
            let o = latch_at(&p_url, &k, &["--json", "env", "show", "ci"]).await;
            serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("json")
        }
    };
    // A new environment needs its names (or --all-secrets).
    let o = latch(&p, &k, &["env", "set", "ci", "--description", "CI jobs"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("--secrets"), "{}", err(&o));
    let o = latch(
        &p,
        &k,
        &[
            "env",
            "set",
            "ci",
            "--secrets",
            "TOKEN,TYPO_NAME",
            "--description",
            "CI jobs",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("latch: warning: TYPO_NAME matches no secret you can see"),
        "{}",
        err(&o)
    );
    let v = show(&p).await;
    assert_eq!(
        (v["description"].clone(), v["secrets"].clone()),
        (json!("CI jobs"), json!(["TOKEN", "TYPO_NAME"]))
    );
    // The description alone: the names stay, and no warning about them again.
    let o = latch(
        &p,
        &k,
        &["env", "set", "ci", "--description", "CI and nightly"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(err(&o), "");
    let v = show(&p).await;
    assert_eq!(
        (v["description"].clone(), v["secrets"].clone()),
        (json!("CI and nightly"), json!(["TOKEN", "TYPO_NAME"]))
    );
    // The names alone: the description stays.
    latch(&p, &k, &["env", "set", "ci", "--secrets", "TOKEN"]).await;
    let v = show(&p).await;
    assert_eq!(
        (v["description"].clone(), v["secrets"].clone()),
        (json!("CI and nightly"), json!(["TOKEN"]))
    );
    // '' clears the description; --secrets '' is an empty list; --all-secrets is no list.
    latch(&p, &k, &["env", "set", "ci", "--description", ""]).await;
    assert_eq!(show(&p).await["description"], "");
    latch(&p, &k, &["env", "set", "ci", "--secrets", ""]).await;
    assert_eq!(show(&p).await["secrets"], json!([]));
    let o = latch(&p, &k, &["env", "set", "ci", "--all-secrets"]).await;
    assert!(text(&o.stdout).contains("no list"), "{}", text(&o.stdout));
    assert_eq!(show(&p).await["secrets"], serde_json::Value::Null);
    // An identity reserves team secrets: no --all-secrets, and a personal name is warned about.
    let o = latch(&p, &k, &["identity", "set", "bot", "--all-secrets"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let o = latch(&p, &k, &["identity", "set", "bot", "--secrets", "GH_TOKEN"]).await;
    assert!(
        err(&o).contains("GH_TOKEN matches no team secret"),
        "{}",
        err(&o)
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn values_from_files_keep_their_bytes_and_say_what_they_hold() {
    let p = platform().await;
    let k = p.owner.clone();
    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, bytes: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("writes");
        path.to_str().expect("utf8").to_owned()
    };
    let newline = file("a", "s3cret-value-with-newline\n");
    let o = latch(
        &p,
        &k,
        &[
            "secret",
            "create",
            "--team",
            "KEPT",
            "--value-file",
            &newline,
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains(
            "the value of KEPT ends with a newline, which is kept as part of it; --trim removes it"
        ),
        "{}",
        err(&o)
    );
    let o = latch(
        &p,
        &k,
        &[
            "secret",
            "create",
            "--team",
            "TRIMMED",
            "--value-file",
            &newline,
            "--trim",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(err(&o), "", "--trim: no warning");
    let short = file("b", "abc");
    let o = latch(
        &p,
        &k,
        &["secret", "create", "--team", "PIN", "--value-file", &short],
    )
    .await;
    assert!(
        err(&o).contains("shorter than 4 bytes: it will never be masked"),
        "{}",
        err(&o)
    );
    let weak = file("c", "admin");
    let o = latch(
        &p,
        &k,
        &["secret", "update", "--team", "PIN", "--value-file", &weak],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("masked only as a whole word"),
        "{}",
        err(&o)
    );
    assert!(
        !err(&o).contains("admin") && !err(&o).contains("abc"),
        "{}",
        err(&o)
    );
    // What the command gets: the bytes as stored.
    let o = output(
        latch_run(
            &p,
            &[
                "--secrets",
                "KEPT,TRIMMED",
                "--no-scrub",
                "--",
                "sh",
                "-c",
                "printf '%s|%s' \"$KEPT\" \"$TRIMMED\" | wc -c",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(text(&o.stdout).trim(), "52", "{}", text(&o.stdout));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_revoked_by_id_or_whole_key_and_expiries_read_as_people_write_them() {
    let p = platform().await;
    let k = p.owner.clone();
    let create = |name: &'static str, expires: &'static str| {
        let (url, k) = (p.url.clone(), k.clone());
        async move {
            let args = [
                "api-key",
                "create",
                "--personal",
                "--name",
                name,
                "--expires",
                expires,
            ];
            latch_at(&url, &k, &args).await
        }
    };
    let o = create("a", "2w").await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("expires in 2 weeks"), "{}", err(&o));
    let whole = text(&o.stdout).trim().to_owned();
    let o = create("b", "1y").await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("expires in 1 year"), "{}", err(&o));
    let o = create("c", "500ms").await;
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("under a second"), "{}", err(&o));
    // Revoked by the whole key: it stops working, and the key is never printed back.
    let o = latch(&p, &k, &["api-key", "revoke", &whole, "--yes"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!text(&o.stdout).contains(&whole[8..]) && !err(&o).contains(&whole[8..]));
    assert_eq!(latch(&p, &whole, &["whoami"]).await.status.code(), Some(77));
    // Something that is neither: usage, never quoted back when it looks like a key.
    let mut typo = whole.clone().into_bytes();
    typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    for bad in [typo.as_str(), "abc", "../../v1/members"] {
        let o = latch(&p, &k, &["api-key", "revoke", bad, "--yes"]).await;
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", err(&o));
        assert!(!err(&o).contains(&typo[8..]), "{}", err(&o));
    }
    p.stop().await;
}
