//! `latch run`: the launcher (DESIGN §6). This file wires it together: memory hygiene and
//! signals first, then the run resolved through the client, the plan (environment, files,
//! patterns) built, the launcher started, and the run's end reported.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rand_core::TryRng;
use reqwest::Method;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

mod brokered;
mod device;
mod dry;
mod phases;
mod report;
mod sidecar;

pub(super) use self::sidecar::SidecarArgs;
pub use self::sidecar::sidecar;

use self::phases::Phases;
pub use self::phases::mark_main;

use self::report::{ReportFile, Summary};
use super::{Error, Global, context};
use crate::api::{AdHocBroker, FinishRun, ResolveRun, Resolved, RunInfo};
use crate::client::ClientError;
use crate::core::duration::parse_duration;
use crate::core::exit::{self, ChildExit};
use crate::core::launch::{self, Source};
use crate::core::name::{Label, SecretName};
use crate::core::resolve::Trigger;
use crate::core::scrub::{PatternSet, PendingSet};
use crate::core::split::Split;
use crate::launcher::child::{self, SpawnError, Spec};
use crate::launcher::files::SecretDir;
use crate::launcher::hygiene;
use crate::launcher::signals::{self, Signals};
use crate::launcher::supervise::{self, LaunchError, Mode, Outcome};

/// How masked regions are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum MaskStyle {
    /// `[MASKED:NAME]`
    #[default]
    Name,
    /// `***`
    Stars,
    /// `[MASKED]`
    Anon,
}

impl From<MaskStyle> for crate::core::scrub::MaskStyle {
    fn from(style: MaskStyle) -> Self {
        match style {
            MaskStyle::Name => Self::Name,
            MaskStyle::Stars => Self::Stars,
            MaskStyle::Anon => Self::Anon,
        }
    }
}

/// `latch run [OPTIONS] -- CMD [ARGS...]`
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each flag is a documented, independent switch
pub struct RunArgs {
    /// Use this environment's secret list as the default allowlist.
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<Label>,
    /// Only these secrets (comma-separated); overrides the environment's list.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B",
        conflicts_with = "no_secrets"
    )]
    pub secrets: Option<Vec<SecretName>>,
    /// No secrets at all.
    #[arg(long)]
    pub no_secrets: bool,
    /// Do not start the command unless these secrets are delivered (exit 65).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub require: Vec<SecretName>,
    /// How the run was started (default: cli for a personal key, integration for a team key).
    #[arg(long, value_name = "TRIGGER")]
    pub trigger: Option<Trigger>,
    /// Deliver this secret as a 0600 file; the variable holds the file's path.
    #[arg(long, value_name = "NAME")]
    pub secret_file: Vec<SecretName>,
    /// Start from a small base environment instead of inheriting the launcher's.
    #[arg(long)]
    pub pristine: bool,
    /// Keep an inherited variable when a secret has the same name.
    #[arg(long)]
    pub preserve_env: bool,
    /// Do not mask output: exec the command directly (same PID; the run's end is not
    /// reported).
    #[arg(
        long,
        conflicts_with_all = ["secret_file", "log", "timeout", "pty", "signal_group", "subreaper", "report", "fail_on_leak", "broker"]
    )]
    pub no_scrub: bool,
    /// Resolve only: print the names the run would receive (scope, version), the missing ones
    /// and the allowlist that applies, and start nothing (exit 65 if a --require is missing).
    #[arg(long)]
    pub dry_run: bool,
    /// When the run ends, write one JSON object to FILE (replaced, mode 0600): run id,
    /// delivered, missing, shadowed, allowlist, exit code or signal, duration, masked counts.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Exit 3 when the command exits 0 but its output held a secret (masked): a CI leak gate.
    #[arg(long)]
    pub fail_on_leak: bool,
    /// Give the command a pseudo-terminal (default when stdout is a terminal).
    #[arg(long, conflicts_with = "no_pty")]
    pub pty: bool,
    /// Never give the command a pseudo-terminal.
    #[arg(long)]
    pub no_pty: bool,
    /// How masked regions are written.
    #[arg(long, value_enum, default_value_t)]
    pub mask_style: MaskStyle,
    /// Also write the scrubbed transcript to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Stop the command after this long (SIGTERM, then SIGKILL after --kill-after); exit 124.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DUR")]
    pub kill_after: Duration,
    /// Forward signals to the command's whole process group.
    #[arg(long)]
    pub signal_group: bool,
    /// Reap orphaned descendants even when not PID 1.
    #[arg(long)]
    pub subreaper: bool,
    /// Broker this secret in this run: the command gets a placeholder, and latch puts the
    /// value only into requests to these hosts (a preset: openai, anthropic, gemini, github).
    /// A well-known name alone (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, GH_TOKEN)
    /// takes its preset. Secrets with a broker policy are brokered without it.
    #[arg(long = "broker", value_name = "NAME[=HOST,...]", value_parser = brokered::parse_broker)]
    pub broker: Vec<AdHocBroker>,
    /// Give the command the real value of a secret that has a broker policy (a policy marked
    /// always still brokers it, with a warning).
    #[arg(long = "no-broker", value_name = "NAME")]
    pub no_broker: Vec<SecretName>,
    /// Let the command reach this host through the broker's proxy (a tunnel latch does not
    /// open): with a brokered secret, HTTPS through HTTPS_PROXY reaches only brokered hosts and
    /// these.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]", value_parser = brokered::parse_host)]
    pub allow_host: Vec<crate::core::broker::Host>,
    /// Connect to ADDR for requests to HOST:PORT, as curl's --resolve (ADDR may be IP:PORT).
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR", value_parser = brokered::parse_resolve)]
    pub resolve: Vec<crate::broker::Resolve>,
    /// Use your own provider keys from this device (`latch byok`) even in CI or a container,
    /// where they are otherwise left alone; refused for a team key, a trigger no person
    /// started, or a team that forbids it.
    #[arg(long, conflicts_with = "no_byok")]
    pub byok: bool,
    /// Never use your device's provider keys in this run: the team's secrets as usual.
    #[arg(long)]
    pub no_byok: bool,
    /// With the broker: a request your device key could not make (invalid key, rate, quota or
    /// overload) is replayed once with the team's secret of that name, which the command never
    /// holds. Off by default: a limit is passed to the command and never spends the team's
    /// credits unasked.
    #[arg(long, conflicts_with_all = ["no_byok", "no_scrub"])]
    pub fallback_to_team: bool,
    /// The command and its arguments (never joined into a shell string). It starts at the
    /// first argument that is not an option, or after `--`; a mistyped option before it is a
    /// usage error, never taken for the command.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The `-v` notes about the machine latch starts on: forwarded signals that were ignored when it
/// started (the command inherits that), and the left-over secret directories of killed
/// launchers, removed now (DESIGN §6).
fn startup_notes() {
    for signal in signals::inherited_ignored() {
        tracing::info!(
            "{signal} was ignored when latch started (nohup, a background job): the command \
             inherits that and will not react to it"
        );
    }
    let swept = SecretDir::sweep_stale();
    if swept > 0 {
        tracing::info!(
            "removed {swept} secret-file {} left by a launcher that was killed",
            if swept == 1 {
                "directory"
            } else {
                "directories"
            }
        );
    }
}

/// Runs the command with its resolved secrets (DESIGN §6). Synchronous: it must start before
/// any thread does (signals are blocked and the API key is taken out of the environment block
/// first), and it builds short-lived runtimes only for its two requests.
///
/// # Errors
/// [`Error`], mapped to the launcher's exit codes: 65 a required secret missing, 69 platform
/// unreachable, 77 key refused, 78 configuration, 126/127 command not executable / not found.
#[allow(clippy::needless_pass_by_value)] // the arguments end here
pub fn launch(args: RunArgs, global: &Global) -> Result<u8, Error> {
    let mut phases = Phases::start();
    phases.mark("start and argument parsing");
    let hardened = hygiene::harden();
    // SAFETY: no other thread exists yet (main calls this before building any runtime).
    let env_key = unsafe { hygiene::take_env_var("LATCH_API_KEY") };
    let mode = output_mode(&args);
    // Blocked before any thread starts (every later thread inherits the mask), also for
    // --no-scrub and --dry-run: a SIGTERM before the command starts must end latch at once.
    let signals = Signals::block(mode == Some(Mode::Pty))
        .map_err(|e| Error::Config(format!("cannot set up signal handling: {e}")))?;
    tracing::debug!(?hardened, ?mode, "launcher starting");
    phases.mark("hardening and signals");
    startup_notes();
    let log = args.log.as_deref().map(open_log).transpose()?;
    let key = context::api_key(global, env_key)?;
    if args.dry_run {
        return dry::dry_run(&args, global, &key, &signals);
    }
    let report_file = args.report.as_deref().map(ReportFile::create).transpose()?;
    let offer = device::offer(&args, &key)?;
    let started = std::time::Instant::now();
    phases.mark("key and files");
    let mut resolved = resolve(&args, global, &key, &signals, offer.as_ref())?;
    phases.mark("resolve request");
    let run_id = resolved.run_id.clone();
    let finish_key = split(&key)?;
    drop(key);
    tracing::info!("run {run_id} started");

    let finish = |ended: Ended, fallbacks: BTreeMap<String, u64>| {
        report_end(
            global,
            &finish_key,
            &run_id,
            (ended, fallbacks),
            started.elapsed(),
            &signals,
        );
    };
    let planned = device::apply(&mut resolved, offer, &args).and_then(|byok| {
        report::say_resolution(&resolved);
        let summary = Summary::of(&resolved, &byok);
        plan_brokered(&args, &resolved, byok, mode.is_some(), &signals).map(|p| (p, summary))
    });
    drop(resolved);
    let (((mut spec, patterns, files), entries), summary) = match planned {
        Ok(planned) => planned,
        Err(e) => {
            // The run is recorded as started: say that it ended without starting the command.
            finish(
                (Some(i32::from(e.exit_code())), None, BTreeMap::new()),
                BTreeMap::new(),
            );
            return Err(e);
        }
    };
    hygiene::wipe_stack();
    phases.mark("plan (environment, masking patterns)");
    // The last moment a stop request can still prevent the start (the files go as `files`
    // drops). Then the broker starts before the command, and the command not without it.
    let broker = match stop_requested(&signals)? {
        Some(signal) => Err((Error::Interrupted(signal), (None, Some(signal)))),
        None => brokered::start(
            entries,
            &brokered::Start::run(&args.resolve, &args.allow_host),
            &mut spec.env,
        )
        .map_err(|e| (e, (Some(i32::from(exit::INTERNAL)), None))),
    };
    let mut broker = match broker {
        Ok(running) => running,
        Err((e, (code, signal))) => {
            drop(files);
            finish((code, signal, BTreeMap::new()), BTreeMap::new());
            return Err(e);
        }
    };
    let Some(mode) = mode else {
        // --no-scrub: become the command. Returns only if it could not start.
        return Err(Error::Launch(LaunchError::Spawn(child::exec(spec))));
    };
    let patterns = patterns.unwrap_or_else(empty_patterns);
    let result = supervise::supervise(
        supervise::Plan {
            spec,
            mode,
            signal_group: args.signal_group,
            subreaper: args.subreaper,
            timeout: args.timeout,
            kill_after: args.kill_after,
            patterns,
            style: args.mask_style.into(),
            log,
            broker_alive: broker.as_mut().and_then(|b| b.running.take_alive()),
        },
        &signals,
        |name| phases.mark(name),
    );
    let fallbacks = broker.map(brokered::stop).unwrap_or_default();
    drop(files);
    let ended = ended(&result);
    finish(ended.clone(), fallbacks);
    phases.mark("end report");
    if let Some(file) = report_file {
        let duration = result.as_ref().map_or(started.elapsed(), |o| o.duration);
        file.commit(&summary.report(&run_id, &ended, duration))?;
    }
    exit_code(&result?, args.fail_on_leak)
}

/// latch's exit status after a supervised run: the command's, 124 for `--timeout`, 3 for
/// `--fail-on-leak`, 70 when the broker died.
fn exit_code(outcome: &Outcome, fail_on_leak: bool) -> Result<u8, Error> {
    if outcome.broker_died {
        return Err(Error::Broker(
            "the broker stopped while the command ran; the command was killed".into(),
        ));
    }
    if outcome.timed_out {
        return Ok(exit::TIMEOUT);
    }
    let code = exit::child_code(outcome.exit);
    if fail_on_leak && code == 0 && !outcome.masked.is_empty() {
        report::leaked(&outcome.masked);
        return Ok(exit::LEAK);
    }
    Ok(code)
}

/// How the command's output reaches latch: none with `--no-scrub` (latch becomes the command),
/// a pseudo-terminal with `--pty` or when stdout is a terminal, else pipes.
fn output_mode(args: &RunArgs) -> Option<Mode> {
    if args.no_scrub {
        None
    } else if args.pty || (!args.no_pty && std::io::stdout().is_terminal()) {
        Some(Mode::Pty)
    } else {
        Some(Mode::Pipes)
    }
}

/// Runs `future` on a short-lived runtime, ending at once with [`Error::Interrupted`] if a
/// SIGTERM, SIGINT or SIGHUP arrives first (DESIGN §6: `docker stop` must not wait for a
/// platform that hangs). Other signals that arrive meanwhile are read and dropped: there is
/// no command yet to forward them to.
fn with_signal_watch<T>(
    signals: &Signals,
    future: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(async {
        let watch = async {
            let watch_error =
                |e: std::io::Error| Error::Config(format!("cannot watch for signals: {e}"));
            // SAFETY: the signalfd is owned by `signals`, which outlives this runtime (dropped
            // below, before this function returns), so the descriptor stays open and the same.
            let fd = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    signals.raw_fd(),
                    tokio::io::Interest::READABLE,
                )
            }
            .map_err(|e| watch_error(e.into()))?;
            loop {
                let mut ready = fd.readable().await.map_err(watch_error)?;
                if let Some(signal) = stop_requested(signals)? {
                    return Err::<T, Error>(Error::Interrupted(signal));
                }
                ready.clear_ready();
            }
        };
        tokio::select! {
            result = future => result,
            stopped = watch => stopped,
        }
    });
    drop(runtime);
    result
}

/// A SIGTERM, SIGINT or SIGHUP waiting to be read, if one is (others are read and dropped).
fn stop_requested(signals: &Signals) -> Result<Option<i32>, Error> {
    use nix::sys::signal::Signal;
    while let Some(signal) = signals
        .next()
        .map_err(|e| Error::Config(format!("cannot read signals: {e}")))?
    {
        if matches!(signal, Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) {
            return Ok(Some(signal as i32));
        }
    }
    Ok(None)
}

fn request_of(args: &RunArgs, offer: Option<&device::Offer>) -> Result<ResolveRun, Error> {
    if let Some(both) = args
        .broker
        .iter()
        .find(|b| args.no_broker.contains(&b.name))
    {
        return Err(Error::Usage(format!(
            "{} is named by both --broker and --no-broker",
            both.name
        )));
    }
    Ok(ResolveRun {
        trigger: args.trigger,
        environment: args.environment.clone(),
        secrets: if args.no_secrets {
            Some(Vec::new())
        } else {
            args.secrets.clone()
        },
        required: args.require.clone(),
        dry_run: false,
        exec: args.no_scrub,
        broker: args.broker.clone(),
        no_broker: args.no_broker.clone(),
        byok: offer.map(device::Offer::names).unwrap_or_default(),
        byok_forced: offer.is_some_and(device::Offer::forced),
        byok_fallback: offer.is_some() && args.fallback_to_team,
    })
}

/// `POST /v1/runs` on a runtime of its own, dropped before the command starts so that none of
/// the HTTP stack's buffers outlive the request.
fn resolve(
    args: &RunArgs,
    global: &Global,
    key: &str,
    signals: &Signals,
    offer: Option<&device::Offer>,
) -> Result<Resolved, Error> {
    let resolved = post_runs::<Resolved>(global, key, signals, &request_of(args, offer)?);
    if let Err(Error::Client(ClientError::Api { code, problem, .. })) = &resolved
        && code == "required_missing"
    {
        // Each name in words; the error line that follows says the run was refused.
        for m in &problem.missing {
            super::messages::note(&format!(
                "required secret {} is missing: {}",
                m.name,
                m.reason.explained()
            ));
        }
    }
    resolved
}

/// `POST /v1/runs` with `request`, ended at once by a stop request ([`with_signal_watch`]).
pub(super) fn post_runs<T: serde::de::DeserializeOwned>(
    global: &Global,
    key: &str,
    signals: &Signals,
    request: &ResolveRun,
) -> Result<T, Error> {
    with_signal_watch(signals, async {
        let mut parts = Phases::now();
        let client = context::client_with_key(global, key)?;
        parts.mark("resolve: client set-up");
        let answer = client
            .call::<T, _>(Method::POST, "v1/runs", Some(request))
            .await
            .map_err(Error::from);
        parts.mark("resolve: request and answer");
        answer
    })
}

/// The key as two shares until the run's end is reported.
fn split(key: &str) -> Result<Split, Error> {
    split_bytes(key.as_bytes())
}

/// `secret` as two shares with a pad from the OS RNG.
pub(super) fn split_bytes(secret: &[u8]) -> Result<Split, Error> {
    let mut pad = Zeroizing::new(vec![0u8; secret.len()]);
    getrandom::SysRng
        .try_fill_bytes(&mut pad)
        .map_err(|e| Error::Config(format!("the OS random number generator failed: {e}")))?;
    Split::new(secret, pad).ok_or_else(|| Error::Config("cannot split a secret".into()))
}

/// The child's spec (environment from the plan), the masking patterns, and the directory of
/// file secrets (removed when dropped).
fn plan(
    args: &RunArgs,
    resolved: &Resolved,
    placeholders: &[Option<Vec<u8>>],
    scrub: bool,
    signals: &Signals,
) -> Result<Planned, Error> {
    let names = resolved
        .secrets
        .iter()
        .map(|s| SecretName::new(s.name.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Client(ClientError::Decode(e.to_string())))?;
    let env_plan = launch::plan_env(
        std::env::vars_os(),
        &names,
        &args.secret_file,
        launch::Options {
            pristine: args.pristine,
            preserve_env: args.preserve_env,
        },
    );
    for name in &env_plan.replaced {
        tracing::warn!(
            "secret {name} replaces the inherited variable {name} (--preserve-env keeps the inherited one)"
        );
    }
    for name in &env_plan.preserved {
        tracing::warn!(
            "--preserve-env: the inherited {name} is kept; secret {name} is not injected"
        );
    }
    for name in &env_plan.unfiled {
        tracing::warn!("--secret-file {name}: the secret is not delivered; no file is written");
    }
    // What the command gets: the value, or its placeholder when the run brokers it.
    let value = |i: usize| match placeholders.get(i) {
        Some(Some(fake)) => fake.as_slice(),
        _ => resolved.secrets[i].value.expose_secret().as_bytes(),
    };
    let patterns = if scrub {
        let set = PatternSet::prepare(
            resolved
                .secrets
                .iter()
                .map(|s| (s.name.as_str(), s.value.expose_secret().as_bytes())),
        )?;
        for name in set.unmasked() {
            tracing::warn!("secret {name} is shorter than 4 bytes and will not be masked");
        }
        Some(set)
    } else {
        None
    };
    let files = if env_plan
        .vars
        .iter()
        .any(|(_, s)| matches!(s, Source::File(_)))
    {
        Some(SecretDir::create().map_err(|e| {
            Error::Config(format!(
                "cannot create a private directory for --secret-file: {e}"
            ))
        })?)
    } else {
        None
    };
    let mut env = Vec::with_capacity(env_plan.vars.len());
    for (name, source) in env_plan.vars {
        let bytes = match source {
            Source::Inherited(v) => Zeroizing::new(v.into_vec()),
            Source::Secret(i) => Zeroizing::new(value(i).to_vec()),
            Source::File(i) => {
                let dir = files
                    .as_ref()
                    .ok_or_else(|| Error::Config("no secret directory".into()))?;
                let path = dir
                    .write(&resolved.secrets[i].name, value(i))
                    .map_err(|e| {
                        Error::Config(format!(
                            "cannot write the file for secret {}: {e}",
                            resolved.secrets[i].name
                        ))
                    })?;
                Zeroizing::new(path.into_os_string().into_vec())
            }
        };
        env.push((name, bytes));
    }
    let mut command = args.command.iter().cloned();
    let program = command.next().unwrap_or_default();
    let mask = signals.original();
    // The run is identifiable from inside (DESIGN §6): the only LATCH_* variable the child gets.
    env.push((
        OsString::from("LATCH_RUN_ID"),
        Zeroizing::new(resolved.run_id.clone().into_bytes()),
    ));
    Ok((
        Spec {
            program,
            args: command.collect(),
            env,
            mask,
        },
        patterns,
        files,
    ))
}

/// [`plan`] with the placeholders of the secrets the run brokers, and the broker's entries.
fn plan_brokered(
    args: &RunArgs,
    resolved: &Resolved,
    byok: Vec<device::Applied>,
    scrub: bool,
    signals: &Signals,
) -> Result<(Planned, Vec<crate::broker::Entry>), Error> {
    let prepared = brokered::prepare(resolved, &args.broker, &args.no_broker, args.no_scrub, byok)?;
    let planned = plan(args, resolved, &prepared.placeholders, scrub, signals)?;
    Ok((planned, prepared.entries))
}

/// The child's spec, its masking patterns and its secret files.
type Planned = (Spec, Option<PendingSet>, Option<SecretDir>);

fn empty_patterns() -> PendingSet {
    PatternSet::prepare(std::iter::empty())
        .unwrap_or_else(|_| unreachable!("an empty set is not too large"))
}

/// `--log FILE`: appended to, created 0600.
fn open_log(path: &std::path::Path) -> Result<std::fs::File, Error> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Config(format!("cannot open --log {}: {e}", path.display())))
}

/// How a run ended, for its report: exit code or signal, and masked counts.
pub(super) type Ended = (Option<i32>, Option<i32>, BTreeMap<String, u64>);

/// The report of a supervised run, or of a command that did not start.
fn ended(result: &Result<Outcome, LaunchError>) -> Ended {
    match result {
        Ok(outcome) => match outcome.exit {
            ChildExit::Exited(code) => (Some(code), None, outcome.masked.clone()),
            ChildExit::Signaled(n) => (None, Some(n), outcome.masked.clone()),
        },
        Err(LaunchError::Spawn(SpawnError::NotFound { .. } | SpawnError::NoInterpreter { .. })) => {
            (Some(i32::from(exit::NOT_FOUND)), None, BTreeMap::new())
        }
        Err(LaunchError::Spawn(SpawnError::NotExecutable { .. })) => {
            (Some(i32::from(exit::NOT_EXECUTABLE)), None, BTreeMap::new())
        }
        Err(LaunchError::Io { .. }) => (Some(i32::from(exit::INTERNAL)), None, BTreeMap::new()),
    }
}

/// `POST /v1/runs/{id}/finish`; a failure is a warning and never changes the exit status.
fn report_end(
    global: &Global,
    key: &Split,
    run_id: &str,
    ((exit_code, signal, masked), byok_fallbacks): (Ended, BTreeMap<String, u64>),
    duration: Duration,
    signals: &Signals,
) {
    let finish = FinishRun {
        exit_code,
        signal,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        masked,
        byok_fallbacks,
    };
    let key = key.join();
    let Ok(key) = std::str::from_utf8(&key) else {
        return;
    };
    // A stop request while the platform is slow ends the wait, not the exit status.
    let sent = with_signal_watch(signals, async {
        let mut parts = Phases::now();
        let client = context::client_with_key(global, key)?;
        parts.mark("end report: client set-up");
        let answer = client
            .call::<RunInfo, _>(
                Method::POST,
                &format!("v1/runs/{run_id}/finish"),
                Some(&finish),
            )
            .await
            .map_err(Error::from);
        parts.mark("end report: request and answer");
        answer
    });
    match sent {
        Ok(_) => {}
        Err(Error::Interrupted(_)) => {
            tracing::warn!("stopped before the end of run {run_id} was reported");
        }
        Err(e) => tracing::warn!("could not report the end of run {run_id}: {e}"),
    }
}
