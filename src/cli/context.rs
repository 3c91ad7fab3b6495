//! What management commands share: the client built from flags and environment, prompts and
//! confirmations, and plain-text tables. Printing helpers are pure (they build strings).

use std::io::{IsTerminal, Read};
use std::path::Path;

use serde::Serialize;
use zeroize::Zeroizing;

use super::{Error, Global, messages};
use crate::client::{Client, Config};
use crate::core::value::SecretValue;

/// Builds the client: `--url`/`LATCH_URL`; the key from [`api_key`]; `LATCH_CA_CERT` for a
/// private CA.
///
/// # Errors
/// [`Error::Client`] with a configuration message when something is missing or malformed.
pub(crate) fn client(global: &Global) -> Result<Client, Error> {
    let from_env = std::env::var("LATCH_API_KEY").ok().map(Zeroizing::new);
    client_with_key(global, &api_key(global, from_env)?)
}

/// The API key: `--api-key` (with a warning), else `--api-key-file`/`LATCH_API_KEY_FILE`, else
/// `from_env` (the value of `LATCH_API_KEY`, which the launcher takes out of its environment
/// block itself).
///
/// # Errors
/// [`Error::Client`] with a configuration message when there is none or the file is unreadable.
pub(crate) fn api_key(
    global: &Global,
    from_env: Option<Zeroizing<String>>,
) -> Result<Zeroizing<String>, Error> {
    if let Some(key) = &global.api_key {
        tracing::warn!(
            "--api-key is visible to other users in process lists and stays in shell history; prefer LATCH_API_KEY"
        );
        Ok(Zeroizing::new(
            secrecy::ExposeSecret::expose_secret(key).to_owned(),
        ))
    } else if let Some(path) = &global.api_key_file {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "the API key file {} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!(
                "cannot read the API key file {}: {e}",
                path.display()
            ))
        })?;
        Ok(Zeroizing::new(text))
    } else {
        match from_env {
            Some(key) if key.trim().is_empty() => Err(config_error(
                "LATCH_API_KEY is empty: set it to a key from `latch api-key create`".into(),
            )),
            Some(key) => Ok(key),
            None => Err(config_error(
                "no API key: set LATCH_API_KEY (or pass --api-key-file)".into(),
            )),
        }
    }
}

/// Builds the client with `key`.
///
/// # Errors
/// [`Error::Client`] with a configuration message when something is missing or malformed.
pub(crate) fn client_with_key(global: &Global, key: &str) -> Result<Client, Error> {
    let url = global.url.clone().ok_or_else(|| {
        config_error(
            "no platform URL: set LATCH_URL (or pass --url) to the platform's address, such as https://latch.example.com".into(),
        )
    })?;
    let ca = std::env::var_os("LATCH_CA_CERT")
        .filter(|v| !v.is_empty())
        .map(Into::into);
    let mut config = Config::new(&url, key, ca)?;
    if let Some(timeout) = global.request_timeout {
        config.timeout = timeout;
    }
    Ok(Client::new(config)?)
}

fn config_error(message: String) -> Error {
    Error::Client(crate::client::ClientError::Config(message))
}

/// Reads a secret value from `path` (`-` for stdin) byte for byte, or from a no-echo prompt on
/// the terminal (DESIGN §11 "Values from files"). A file's value that ends with a newline is
/// kept as it is, with a warning, unless `trim` (trailing ASCII whitespace removed). A value too
/// short to be masked in full is said at once, not only at each run.
///
/// # Errors
/// [`Error::Usage`] without a file and without a terminal; [`Error::Config`] for an unreadable
/// file or a value the platform would refuse.
pub(crate) fn read_value(
    path: Option<&Path>,
    name: &str,
    trim: bool,
) -> Result<SecretValue, Error> {
    let mut bytes = read_secret(
        path,
        &format!("value for {name} (not echoed): "),
        "value",
        u64::MAX,
    )?;
    if trim {
        let kept = bytes.trim_ascii_end().len();
        // Wiped, not only cut: the removed bytes are part of what was read.
        bytes[kept..].fill(0);
        bytes.truncate(kept);
    } else if path.is_some() && bytes.ends_with(b"\n") {
        messages::warning(&format!(
            "the value of {name} ends with a newline, which is kept as part of it; --trim removes it"
        ));
    }
    let value =
        SecretValue::from_bytes(bytes.to_vec()).map_err(|e| Error::Config(e.to_string()))?;
    warn_if_weak(name, value.expose().as_bytes());
    Ok(value)
}

/// Reads what a person hands latch as a secret, byte for byte: from `path` (`-` for stdin), at
/// most `limit` bytes of it, or else from a no-echo `prompt` on the terminal (`what` names it
/// in the error without one).
///
/// # Errors
/// [`Error::Usage`] without a file and without a terminal; [`Error::Config`] for an unreadable
/// file; [`Error::Io`] for stdin or the terminal.
pub(crate) fn read_secret(
    path: Option<&Path>,
    prompt: &str,
    what: &str,
    limit: u64,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(Vec::new());
    match path {
        Some(p) if p == Path::new("-") => {
            std::io::stdin()
                .take(limit)
                .read_to_end(&mut bytes)
                .map_err(Error::Io)?;
        }
        Some(p) => {
            let unreadable = |e| Error::Config(format!("cannot read {}: {e}", p.display()));
            std::fs::File::open(p)
                .map_err(unreadable)?
                .take(limit)
                .read_to_end(&mut bytes)
                .map_err(unreadable)?;
        }
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(Error::Usage(format!(
                    "no terminal to prompt for the {what}: pass --value-file PATH, or --value-file - to read stdin"
                )));
            }
            *bytes = rpassword::prompt_password(prompt)
                .map_err(Error::Io)?
                .into_bytes();
        }
    }
    Ok(bytes)
}

/// Says at creation what the scrubber will do with a short value (DESIGN §7 classes).
fn warn_if_weak(name: &str, value: &[u8]) {
    use crate::core::scrub::{Class, MIN_MASKED_LEN, STRONG_LEN, classify};
    match classify(value) {
        Class::Unmasked => messages::warning(&format!(
            "the value of {name} is shorter than {MIN_MASKED_LEN} bytes: it will never be masked in a run's output (masking it would reveal it)"
        )),
        Class::Weak => messages::warning(&format!(
            "the value of {name} is short (under {STRONG_LEN} bytes) or a common word: it is masked only as a whole word, never inside other text or in its encodings"
        )),
        Class::Strong => {}
    }
}

/// Asks `question` on the terminal; without one, refuses unless `forced`.
///
/// # Errors
/// [`Error::Usage`] when refused.
pub(crate) fn confirm(question: &str, forced: bool, flag: &str) -> Result<(), Error> {
    if forced {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "no terminal to confirm this: pass {flag} to go ahead"
        )));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(Error::Io)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Usage("cancelled".into()))
    }
}

/// `1 secret`, `2 secrets`: a count with its word agreeing.
#[must_use]
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `: A, B` after a count, or nothing for an empty list.
#[must_use]
pub(crate) fn listed(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join(", "))
    }
}

/// Prints `value` as JSON.
///
/// # Errors
/// [`Error::StdoutClosed`] when the reader went away.
pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Config(e.to_string()))?;
    out(&format!("{text}\n"))
}

/// Writes `text` to stdout. A closed stdout (`latch runs list | head`) is
/// [`Error::StdoutClosed`], which ends latch quietly (DESIGN §11): never a panic.
///
/// # Errors
/// [`Error::StdoutClosed`], or [`Error::Io`] for another failure.
pub(crate) fn out(text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Error::StdoutClosed),
        Err(e) => Err(Error::Io(e)),
    }
}

/// `println!` for command output, through [`out`]: `outln!("...")?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::context::out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// A plain table: a header row and rows, columns padded to their widest cell. On a terminal
/// it fits the terminal's width (DESIGN §11): the widest columns are narrowed, their long cells
/// cut with `…` (the first column, an id or a name to copy, is kept whole; `--json` has
/// everything).
#[must_use]
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    fit_table(header, rows, terminal_width())
}

/// The width of the terminal stdout is, if it is one (`COLUMNS` wins, as for `ls`).
fn terminal_width() -> Option<usize> {
    use std::os::fd::AsFd as _;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(columns);
    }
    crate::launcher::pty::window_size(std::io::stdout().as_fd())
        .map(|size| usize::from(size.ws_col))
        .filter(|&cols| cols > 0)
}

/// [`table`] within `width` columns when given.
fn fit_table(header: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    /// No column is narrowed below this (a cut cell keeps a few characters and the `…`).
    const NARROWEST: usize = 6;
    const GAP: usize = 2;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    if let Some(width) = width {
        let total =
            |widths: &[usize]| widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1);
        while total(&widths) > width {
            let widest = widths
                .iter()
                .enumerate()
                .skip(1)
                .filter(|&(_, &w)| w > NARROWEST)
                .max_by_key(|&(_, &w)| w)
                .map(|(i, _)| i);
            let Some(i) = widest else { break };
            widths[i] -= 1;
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, &w)| format!("{:<w$}", cut(c, w)))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// `text` in at most `width` characters: cut with `…` when longer.
fn cut(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= width {
        return text.into();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…").into()
}

/// `at` (Unix milliseconds) as a local date and time with its zone: `2026-12-05 20:43:30 UTC`
/// (the zone from `TZ` or the system's, as `date` shows it).
#[must_use]
pub(crate) fn local_time(at: i64) -> String {
    use nix::libc;
    let seconds: libc::time_t = at.div_euclid(1000);
    // SAFETY: `tm` is plain data that `localtime_r` fills (glibc's reads `TZ` and the zone
    // files itself; no thread of latch's writes the environment).
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&raw const seconds, &raw mut tm).is_null() {
            return format!("{at} ms since 1970 (UTC)");
        }
        tm
    };
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc's `tm_zone` points at a NUL-terminated zone abbreviation that lives as
        // long as the process.
        format!(
            " {}",
            unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }.to_string_lossy()
        )
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{zone}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Now, in Unix milliseconds.
#[must_use]
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let out = table(
            &["NAME", "SCOPE"],
            &[
                vec!["DATABASE_URL".into(), "team".into()],
                vec!["A".into(), "personal".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME          SCOPE\nDATABASE_URL  team\nA             personal\n"
        );
    }

    #[test]
    fn tables_fit_a_terminal_cutting_the_widest_columns_but_not_the_first() {
        let rows = [vec![
            "run_0123456789".to_owned(),
            "a-very-long-description-of-the-run".to_owned(),
            "ok".to_owned(),
        ]];
        let out = fit_table(&["ID", "DESCRIPTION", "S"], &rows, Some(30));
        for line in out.lines() {
            assert!(line.chars().count() <= 30, "{line:?}");
        }
        assert!(out.contains("run_0123456789  a-very-lo…  ok"), "{out}");
        // Without a terminal, nothing is cut.
        let out = fit_table(&["ID", "DESCRIPTION", "S"], &rows, None);
        assert!(out.contains("a-very-long-description-of-the-run"), "{out}");
        // Too narrow for anything: columns stop at their narrowest, never panic.
        let out = fit_table(&["ID", "DESCRIPTION", "S"], &rows, Some(1));
        assert!(out.contains("a-ver…"), "{out}");
    }
}
