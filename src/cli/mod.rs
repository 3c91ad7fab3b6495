//! The command-line interface: the clap command tree, and the one place that wires the IO
//! modules together for each command.
//!
//! Doc comments on the argument types are the help text. Printing is kept pure (strings built
//! from data, written by the caller) so it can be tested without a terminal.

// Doc comments here are help text read in a terminal, where backticks would show literally.
#![allow(clippy::doc_markdown)]

mod api_key;
mod byok;
mod context;
mod error;
mod lists;
mod member;
pub mod messages;
mod run;
mod runs;
mod scrub;
mod secret;
mod serve;
mod team;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use error::Error;
pub use run::{launch, mark_main, sidecar};

/// latch runs AI agents and any command with exactly the credentials each run is entitled to,
/// and masks those credentials in the command's output as it streams.
///
/// `latch serve` is the platform that stores secrets and resolves runs; `latch run -- CMD`
/// launches a command with its resolved secrets; the other commands manage the platform.
#[derive(Debug, Parser)]
#[command(
    name = "latch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// The platform's URL (`https://` required except for loopback addresses).
    #[arg(long, env = "LATCH_URL", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Read the API key from this file (mode 0600 recommended).
    #[arg(long, env = "LATCH_API_KEY_FILE", global = true, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// The API key. Prefer the LATCH_API_KEY variable: arguments are visible to other users in
    /// process lists and stay in shell history.
    #[arg(long, global = true, value_name = "KEY", value_parser = secret_arg)]
    pub api_key: Option<secrecy::SecretString>,
    /// Machine-readable JSON output on every listing and every create.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The bound on each request to the platform (retries stay within it too).
    #[arg(long, env = "LATCH_REQUEST_TIMEOUT", global = true, value_name = "DUR", value_parser = crate::core::duration::parse_duration)]
    pub request_timeout: Option<std::time::Duration>,
}

/// An argument that holds a credential: kept in a `SecretString`, so the parsed command line's
/// `Debug` shows `[REDACTED]` instead of the key.
#[allow(
    clippy::unnecessary_wraps,
    reason = "clap's value_parser takes a fallible function"
)]
pub(crate) fn secret_arg(text: &str) -> Result<secrecy::SecretString, std::convert::Infallible> {
    Ok(secrecy::SecretString::from(text.to_owned()))
}

/// The command tree.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command with its resolved secrets, masking them in its output.
    Run(run::RunArgs),
    /// Run the credential broker as a pod sidecar: the agent's container gets placeholders and
    /// broker URLs (--print-env or --env-file), never a real value; stops on SIGTERM.
    Broker(run::SidecarArgs),
    /// Mask secret values in a stream (stdin to stdout).
    Scrub(scrub::ScrubArgs),
    /// Start the platform: the HTTP server that stores secrets and resolves runs.
    Serve(serve::ServeArgs),
    /// Create, update, delete and list secrets (values are write-only).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    ApiKey(api_key::ApiKeyCommand),
    /// Manage environments: named lists of secret names used as a run's default allowlist.
    #[command(subcommand)]
    Env(lists::ListCommand),
    /// Manage agent identities: their team secrets are reserved for runs executing as them.
    #[command(subcommand)]
    Identity(lists::ListCommand),
    /// Add, list and remove team members and change their roles.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// List runs and show one run's record.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Show the audit log.
    Audit(runs::AuditArgs),
    /// Show and change the team's settings (whether members may bring their own provider keys).
    #[command(subcommand)]
    Team(team::TeamCommand),
    /// Your own model-provider keys, kept on this device only and used by local runs instead
    /// of the team's (bring your own key).
    #[command(subcommand)]
    Byok(byok::ByokCommand),
    /// Show who the API key acts as: team, user, role, key kind, identity.
    Whoami,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// Parses the process's arguments. Building clap's whole command tree costs about 0.3 ms,
    /// a fifth of what tini takes to start: `latch --version` and `latch run …` (the launcher,
    /// started once per CI job or container) are parsed by trees that hold only what they need,
    /// with the same attributes, so they read, say and answer the same (unit-tested).
    ///
    /// # Errors
    /// clap's error (also for `--help` and `--version`, which clap prints).
    pub fn parse_args() -> Result<Self, clap::Error> {
        let mut args = std::env::args_os().skip(1);
        match (args.next(), args.next()) {
            (Some(only), None) if only == "--version" || only == "-V" => {
                // Always an error: the one that prints the version.
                VersionOnly::try_parse()?;
            }
            (Some(first), _) if first == "run" => {
                return RunOnly::try_parse().map(|line| {
                    let RunCommand::Run(args) = line.command;
                    Self {
                        global: line.global,
                        command: Command::Run(args),
                    }
                });
            }
            _ => {}
        }
        Self::try_parse()
    }
}

/// [`Cli`] for `latch --version` alone.
#[derive(Debug, Parser)]
#[command(name = "latch", version)]
struct VersionOnly {}

/// [`Cli`] for `latch run …`: the same attributes, with only the `run` subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "latch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct RunOnly {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: RunCommand,
}

/// [`Command`]'s `run`.
#[derive(Debug, Subcommand)]
enum RunCommand {
    /// Run a command with its resolved secrets, masking them in its output.
    Run(run::RunArgs),
}

/// Carries out the parsed command line. Returns the process exit code on success (a child's
/// status for `latch run`).
///
/// # Errors
/// [`Error`], which `main` maps to an exit code and one line on stderr.
pub async fn run(cli: Cli) -> Result<u8, Error> {
    let global = &cli.global;
    match cli.command {
        Command::Scrub(args) => scrub::run(args, global).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Secret(c) => secret::run(c, global).await,
        Command::ApiKey(c) => api_key::run(c, global).await,
        Command::Env(c) => lists::run(lists::Kind::Environment, c, global).await,
        Command::Identity(c) => lists::run(lists::Kind::Identity, c, global).await,
        Command::Member(c) => member::run(c, global).await,
        Command::Runs(c) => runs::run(c, global).await,
        Command::Audit(args) => runs::audit(args, global).await,
        Command::Team(c) => team::run(c, global).await,
        Command::Byok(c) => byok::run(c, global).await,
        Command::Whoami => runs::whoami(global).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "latch", &mut script);
            context::out(&String::from_utf8_lossy(&script))?;
            Ok(0)
        }
        // The launcher must start before any runtime or thread exists: `main` calls `launch`
        // for it directly. Inside this async function it cannot run.
        Command::Run(_) | Command::Broker(_) => Err(Error::Usage(
            "`latch run` and `latch broker` must be started through `cli::launch` and `cli::sidecar`, before any async runtime".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short trees of [`Cli::parse_args`] read and say what the whole tree does.
    #[test]
    fn the_run_and_version_trees_match_the_whole_one() {
        use clap::CommandFactory;
        let mut whole = Cli::command();
        let mut short = RunOnly::command();
        let help = |c: &mut clap::Command| {
            c.build();
            let run = c.find_subcommand_mut("run").expect("run");
            (
                run.render_help().to_string(),
                run.render_long_help().to_string(),
            )
        };
        assert_eq!(help(&mut whole), help(&mut short));
        assert_eq!(
            whole.render_version(),
            VersionOnly::command().render_version()
        );
        for line in [
            &["latch", "run", "--env", "ci", "--", "make", "test"][..],
            &[
                "latch",
                "run",
                "-v",
                "--json",
                "--secrets",
                "A,B",
                "sh",
                "-c",
                "x",
            ][..],
            &[
                "latch",
                "run",
                "--url",
                "http://127.0.0.1:1",
                "--pty",
                "--",
                "true",
            ][..],
        ] {
            let a = Cli::try_parse_from(line).expect("parses");
            let RunCommand::Run(b) = RunOnly::try_parse_from(line).expect("parses").command;
            let Command::Run(a_args) = &a.command else {
                panic!("run")
            };
            assert_eq!(format!("{a_args:?}"), format!("{b:?}"));
        }
        for bad in [
            &["latch", "run", "--evn", "ci", "--", "true"][..],
            &["latch", "run", "--env", "ci"][..],
            &["latch", "run", "--no-scrub", "--pty", "--", "true"][..],
        ] {
            let a = Cli::try_parse_from(bad).expect_err("refused");
            let b = RunOnly::try_parse_from(bad).expect_err("refused");
            assert_eq!(a.kind(), b.kind());
            assert_eq!(a.to_string(), b.to_string());
        }
    }

    #[test]
    fn the_parsed_command_line_never_shows_a_credential() {
        let key = "latch_p_AbCd1234ABCDEFGHIJKLMNOPQRSTUVWXYZ012345xxxxxx";
        let cli = Cli::try_parse_from(["latch", "--api-key", key, "whoami"]).expect("parses");
        assert!(!format!("{cli:?}").contains(key), "{cli:?}");
        let url = "postgres://app:S3cretDbPass@db/latch";
        let cli = Cli::try_parse_from(["latch", "serve", "--database-url", url]).expect("parses");
        assert!(!format!("{cli:?}").contains("S3cretDbPass"), "{cli:?}");
    }
}
