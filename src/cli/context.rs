//! What management commands share: the client built from flags and environment, prompts and
//! confirmations, and plain-text tables. Printing helpers are pure (they build strings).

use std::io::{IsTerminal, Read};
use std::path::Path;

use serde::Serialize;
use zeroize::Zeroizing;

use super::{Error, Global};
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

/// Reads a secret value from `path` (`-` for stdin), or from a no-echo prompt on the terminal.
///
/// # Errors
/// [`Error::Usage`] without a file and without a terminal; [`Error::Config`] for a bad value.
pub(crate) fn read_value(path: Option<&Path>, name: &str) -> Result<SecretValue, Error> {
    let bytes = Zeroizing::new(match path {
        Some(p) if p == Path::new("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(Error::Io)?;
            buf
        }
        Some(p) => std::fs::read(p)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))?,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(Error::Usage(
                    "no terminal to prompt for the value: pass --value-file PATH, or --value-file - to read stdin".into(),
                ));
            }
            rpassword::prompt_password(format!("value for {name} (not echoed): "))
                .map_err(Error::Io)?
                .into_bytes()
        }
    });
    SecretValue::from_bytes(bytes.to_vec()).map_err(|e| Error::Config(e.to_string()))
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

/// A plain table: a header row and rows, columns padded to their widest cell.
#[must_use]
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
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
}
