//! `latch run`: the launcher's command line (DESIGN §6).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::core::duration::parse_duration;
use crate::core::name::{Label, SecretName};
use crate::core::resolve::Trigger;

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
    /// Do not mask output: exec the command directly (same PID).
    #[arg(long)]
    pub no_scrub: bool,
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
    /// The command and its arguments (never joined into a shell string).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}
