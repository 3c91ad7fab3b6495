//! `latch broker`: the credential broker as a pod sidecar (DESIGN §13 "Sidecar"). It resolves a
//! run as `latch run` does, starts the same broker on `--listen`, hands the agent container the
//! placeholders and broker URLs (never a real value) on stdout or in a 0600 file, and runs until
//! SIGTERM, when it reports the run's end and exits 0.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use zeroize::Zeroizing;

use super::{Error, Global, brokered, context, post_runs, report_end, split};
use crate::api::{AdHocBroker, ResolveRun, Resolved};
use crate::core::name::{Label, SecretName};
use crate::core::resolve::Trigger;
use crate::launcher::hygiene;
use crate::launcher::signals::Signals;

/// `latch broker --listen 127.0.0.1:PORT (--print-env | --env-file FILE)`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["print_env", "env_file"])))]
pub struct SidecarArgs {
    /// Where the broker listens: a loopback address (the agent's container shares the pod's
    /// network namespace).
    #[arg(long, value_name = "127.0.0.1:PORT")]
    pub listen: std::net::SocketAddr,
    /// Use this environment's secret list as the default allowlist.
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<Label>,
    /// Only these secrets (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub secrets: Option<Vec<SecretName>>,
    /// Do not start unless these secrets are delivered (exit 65).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub require: Vec<SecretName>,
    /// How the run was started (default: cli for a personal key, integration for a team key).
    #[arg(long, value_name = "TRIGGER")]
    pub trigger: Option<Trigger>,
    /// Broker a secret that has no policy, as `latch run --broker`.
    #[arg(long = "broker", value_name = "NAME[=HOST,...]", value_parser = brokered::parse_broker)]
    pub broker: Vec<AdHocBroker>,
    /// Connect to ADDR for requests to HOST:PORT, as curl's --resolve.
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR", value_parser = brokered::parse_resolve)]
    pub resolve: Vec<crate::broker::Resolve>,
    /// Print the agent's variables on stdout as NAME='value' lines.
    #[arg(long)]
    pub print_env: bool,
    /// Write the agent's variables to FILE (mode 0600, replaced whole) as NAME='value' lines.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// Runs the sidecar until SIGTERM, SIGINT or SIGHUP (exit 0), or until the broker dies (70).
///
/// # Errors
/// [`Error`], with `latch run`'s exit codes.
#[allow(clippy::needless_pass_by_value)] // the arguments end here
pub fn sidecar(args: SidecarArgs, global: &Global) -> Result<u8, Error> {
    let hardened = hygiene::harden();
    tracing::debug!(?hardened, "sidecar starting");
    // SAFETY: no other thread exists yet (main calls this before building any runtime).
    let env_key = unsafe { hygiene::take_env_var("LATCH_API_KEY") };
    let signals = Signals::block(false)
        .map_err(|e| Error::Config(format!("cannot set up signal handling: {e}")))?;
    if !args.listen.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "--listen {}: the broker listens on a loopback address only (anyone who can reach it with a placeholder can use the key)",
            args.listen
        )));
    }
    let key = context::api_key(global, env_key)?;
    let request = ResolveRun {
        trigger: args.trigger,
        environment: args.environment.clone(),
        secrets: args.secrets.clone(),
        required: args.require.clone(),
        broker: args.broker.clone(),
        ..ResolveRun::default()
    };
    let resolved: Resolved = post_runs(global, &key, &signals, &request)?;
    let started = Instant::now();
    let finish_key = split(&key)?;
    drop(key);
    let run_id = resolved.run_id.clone();
    let finish = |code: i32| {
        report_end(
            global,
            &finish_key,
            &run_id,
            (
                (Some(code), None, std::collections::BTreeMap::new()),
                std::collections::BTreeMap::new(),
            ),
            started.elapsed(),
            &signals,
        );
    };
    let served = serve(&args, &resolved, &signals);
    drop(resolved);
    match served {
        Ok(()) => {
            finish(0);
            Ok(0)
        }
        Err(e) => {
            finish(i32::from(e.exit_code()));
            Err(e)
        }
    }
}

/// Starts the broker, hands out the variables, and waits for a stop request or the broker's
/// end.
fn serve(args: &SidecarArgs, resolved: &Resolved, signals: &Signals) -> Result<(), Error> {
    super::report::say_resolution(resolved);
    let prepared = brokered::prepare(resolved, &args.broker, &[], false, Vec::new())?;
    for (secret, placeholder) in resolved.secrets.iter().zip(&prepared.placeholders) {
        if placeholder.is_none() {
            tracing::warn!(
                "secret {} has no broker policy: the sidecar never hands out a real value (give it one with `latch secret update --broker`, or pass --broker {}=HOST)",
                secret.name,
                secret.name
            );
        }
    }
    if prepared.entries.is_empty() {
        return Err(Error::Config(
            "no delivered secret is brokered: nothing for the sidecar to do".into(),
        ));
    }
    let mut env = Vec::new();
    for (secret, placeholder) in resolved.secrets.iter().zip(&prepared.placeholders) {
        if let Some(placeholder) = placeholder {
            env.push((
                OsString::from(&secret.name),
                Zeroizing::new(placeholder.clone()),
            ));
        }
    }
    // Base-URL mode only: the agent's container cannot read files in this one (a CA bundle).
    let how = brokered::Start {
        listen: args.listen,
        resolve: &args.resolve,
        allow_hosts: &[],
        proxy: false,
    };
    let mut started = brokered::start(prepared.entries, &how, &mut env)?
        .ok_or_else(|| Error::Config("the broker did not start".into()))?;
    let lines = env_lines(&env);
    if let Some(path) = &args.env_file {
        write_env_file(path, &lines)?;
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(&lines)
            .and_then(|()| out.flush())
            .map_err(Error::Io)?;
    }
    tracing::info!("the broker is ready; SIGTERM stops it");
    let alive = started.running.take_alive();
    let result = wait(signals, alive.as_ref());
    let _ = brokered::stop(started);
    result
}

/// Waits for SIGTERM, SIGINT or SIGHUP (`Ok`), or the broker's end (`Err`).
fn wait(signals: &Signals, alive: Option<&std::io::PipeReader>) -> Result<(), Error> {
    loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(alive) = alive {
            fds.push(PollFd::new(alive.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::Config(format!("cannot wait for signals: {e}"))),
        }
        let gone = fds
            .get(1)
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty());
        drop(fds);
        if super::stop_requested(signals)?.is_some() {
            tracing::info!("stopping the broker");
            return Ok(());
        }
        if gone {
            return Err(Error::Broker("the broker stopped".into()));
        }
    }
}

/// `NAME='value'` lines, each value in single quotes (a `'` inside written as `'\''`).
fn env_lines(env: &[(OsString, Zeroizing<Vec<u8>>)]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for (name, value) in env {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"='");
        for &b in value.iter() {
            if b == b'\'' {
                out.extend_from_slice(b"'\\''");
            } else {
                out.push(b);
            }
        }
        out.extend_from_slice(b"'\n");
    }
    out
}

/// Writes `lines` to `path` whole (a temporary file in the same directory, mode 0600, renamed
/// over it), so the agent never reads half a file.
fn write_env_file(path: &Path, lines: &[u8]) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        Error::Config(format!("cannot write --env-file {}: {e}", path.display()))
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| fail(std::io::Error::other("it names no file")))?;
    let mut temporary = dir.join(".latch-env.tmp");
    temporary.set_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(fail)?;
    let written = file
        .write_all(lines)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_are_single_quoted_for_a_shell() {
        let env = vec![
            (OsString::from("A"), Zeroizing::new(b"sk-proj-x".to_vec())),
            (OsString::from("B"), Zeroizing::new(b"it's".to_vec())),
        ];
        assert_eq!(env_lines(&env).as_slice(), b"A='sk-proj-x'\nB='it'\\''s'\n");
    }
}
