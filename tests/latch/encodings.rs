//! DESIGN §7's pattern families as real programs print a secret (issue 18): Python's
//! `json.dumps`, `repr` and `urllib.parse`, PHP-style and Go-style JSON, `bash -x` traces,
//! `printf %q`, `html.escape`, SQL quoting, `base64` at 76 and 64 columns and `xxd -p` of a
//! 2 KB PEM. Each program's output goes through `latch scrub` and through `latch run`, and
//! nothing of the value may be left: the output must be exactly the program's own framing
//! around the marker.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::json;

use crate::launcher::{latch_run, output, text};
use crate::server::start;

/// Space, quote, apostrophe, backslash, slash, `&`, `<`, `>`, non-ASCII and an astral
/// character.
const VALUE: &str = "p@ss w/rd \"q\" it's \\ & <b> é 😀 end";

/// A 2 KB PEM private key (deterministic filler: its shape is what matters).
fn pem() -> String {
    use base64::Engine as _;
    let body: Vec<u8> = (0u32..1540)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    assert!(pem.len() > 2000, "{}", pem.len());
    pem
}

/// A family, the shell command that prints the secret in `$V` its way, and what the output
/// must be once scrubbed.
struct Printer {
    family: &'static str,
    command: &'static str,
    want: &'static str,
}

const PY: &str = "import os, sys; v = os.environ['V']; ";

fn printers() -> Vec<Printer> {
    let py = |family, code: &str, want| Printer {
        family,
        command: Box::leak(format!("python3 -c \"{PY}{code}\"").into_boxed_str()),
        want,
    };
    vec![
        py(
            "JSON (Python json.dumps, ensure_ascii)",
            "import json; print(json.dumps(v))",
            "\"[MASKED:V]\"\n",
        ),
        py(
            "JSON (serde_json, JSON.stringify, ensure_ascii=False)",
            "import json; print(json.dumps(v, ensure_ascii=False))",
            "\"[MASKED:V]\"\n",
        ),
        py(
            "JSON (PHP json_encode: \\/ and \\u escapes)",
            "import json; print(json.dumps(v).replace('/', '\\\\/'))",
            "\"[MASKED:V]\"\n",
        ),
        py(
            "JSON (Go encoding/json, HTML-safe)",
            "import json; print(json.dumps(v, ensure_ascii=False).replace('<', '\\\\u003c').replace('>', '\\\\u003e').replace('&', '\\\\u0026'))",
            "\"[MASKED:V]\"\n",
        ),
        py(
            "language literal (Python repr)",
            "print(repr(v))",
            "'[MASKED:V]'\n",
        ),
        py(
            "form encoding (Python urllib.parse.quote_plus)",
            "import urllib.parse as u; print(u.quote_plus(v))",
            "[MASKED:V]\n",
        ),
        py(
            "percent-encoding (Python urllib.parse.quote, / kept)",
            "import urllib.parse as u; print(u.quote(v))",
            "[MASKED:V]\n",
        ),
        py(
            "percent-encoding, lower-case hex",
            "print(''.join(chr(b) if chr(b).isalnum() and b < 128 or chr(b) in '-._~' else '%%%02x' % b for b in v.encode()))",
            "[MASKED:V]\n",
        ),
        py(
            "entities (Python html.escape)",
            "import html; print(html.escape(v))",
            "[MASKED:V]\n",
        ),
        py(
            "SQL / YAML single quotes",
            "print(chr(39) + v.replace(chr(39), chr(39) * 2) + chr(39))",
            "'[MASKED:V]'\n",
        ),
        py(
            "hex (Python bytes.hex)",
            "print(v.encode().hex())",
            "[MASKED:V]\n",
        ),
        Printer {
            family: "shell trace (bash -x)",
            command: "bash -c 'set -x; : \"$V\"' 2>&1",
            want: "+ : '[MASKED:V]'\n",
        },
        Printer {
            family: "shell quoting (printf %q)",
            command: "bash -c 'printf \"%q\\n\" \"$V\"'",
            want: "[MASKED:V]\n",
        },
        Printer {
            family: "wrapped base64 (base64, 76 columns)",
            command: "printf %s \"$PEM\" | base64",
            want: "",
        },
        Printer {
            family: "wrapped base64 (base64 -w 64, PEM's width)",
            command: "printf %s \"$PEM\" | base64 -w 64",
            want: "",
        },
        Printer {
            family: "wrapped hex (xxd -p)",
            command: "printf %s \"$PEM\" | xxd -p",
            want: "[MASKED:PEM]\n",
        },
    ]
}

/// What a printer's output of the PEM must look like once scrubbed: one marker over every
/// line, and at most the last base64 group (bits of the final newline) and padding after it.
fn assert_pem_masked(family: &str, out: &str, pem: &str) {
    let rest = out
        .strip_prefix("[MASKED:PEM]")
        .unwrap_or_else(|| panic!("{family}: {out:?}"));
    assert!(rest.trim_end().len() <= 4, "{family}: {out:?}");
    for line in pem.lines().filter(|l| l.len() >= 8) {
        assert!(!out.contains(line), "{family}: a line of the PEM survived");
    }
}

fn printed(command: &str, pem: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .args(["-c", command])
        .env("V", VALUE)
        .env("PEM", pem)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{command}: {}", text(&out.stderr));
    out.stdout
}

#[test]
fn every_family_as_real_programs_print_it_is_masked_by_latch_scrub() {
    let pem = pem();
    for p in printers() {
        let raw = printed(p.command, &pem);
        assert!(!raw.is_empty(), "{}", p.family);
        let mut scrub = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["scrub", "--secret-env", "V", "--secret-env", "PEM"])
            .env("V", VALUE)
            .env("PEM", &pem)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latch scrub starts");
        let mut stdin = scrub.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&raw));
        let out = scrub.wait_with_output().expect("waits");
        writer.join().expect("joins").expect("writes");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let out = text(&out.stdout);
        if p.want.is_empty() {
            assert_pem_masked(p.family, &out, &pem);
        } else {
            assert_eq!(out, p.want, "{}", p.family);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_family_as_real_programs_print_it_is_masked_by_latch_run() {
    let p = start().await;
    let pem = pem();
    for (name, value) in [("V", VALUE), ("PEM", pem.as_str())] {
        p.ok(
            &p.owner,
            Method::POST,
            "/v1/secrets",
            Some(json!({"scope": "team", "name": name, "value": value})),
        )
        .await;
    }
    for printer in printers() {
        let mut command = latch_run(
            &p,
            &["--secrets", "V,PEM", "--", "sh", "-c", printer.command],
        );
        command.env("LC_ALL", "C.UTF-8");
        let o = output(command, None).await;
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            printer.family,
            text(&o.stderr)
        );
        let out = text(&o.stdout);
        if printer.want.is_empty() {
            assert_pem_masked(printer.family, &out, &pem);
        } else {
            assert_eq!(out, printer.want, "{}", printer.family);
        }
    }
    p.stop().await;
}
