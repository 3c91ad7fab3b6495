//! `latch scrub`: the scrubber as a stdin-to-stdout filter (DESIGN §7).

use clap::Args;

use super::run::MaskStyle;
use crate::core::name::{Label, SecretName};

/// `latch scrub --secret-env NAME... | --run`
#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// Mask the value of this environment variable of latch's own process (repeatable).
    #[arg(long, value_name = "NAME", required_unless_present = "run")]
    pub secret_env: Vec<String>,
    /// Take the values from the platform: a resolved run whose values are used only as patterns.
    #[arg(long, conflicts_with = "secret_env")]
    pub run: bool,
    /// With --run: the environment whose list is the allowlist.
    #[arg(long = "env", requires = "run", value_name = "NAME")]
    pub environment: Option<Label>,
    /// With --run: only these secrets.
    #[arg(long, requires = "run", value_delimiter = ',', value_name = "A,B")]
    pub secrets: Option<Vec<SecretName>>,
    /// How masked regions are written.
    #[arg(long, value_enum, default_value_t)]
    pub mask_style: MaskStyle,
}
