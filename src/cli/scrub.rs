//! `latch scrub`: the scrubber as a stdin-to-stdout filter (DESIGN §7).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Args;
use zeroize::Zeroizing;

use super::Error;
use super::run::MaskStyle;
use crate::core::name::{Label, SecretName};
use crate::core::scrub::PatternSet;
use crate::launcher::pump::{End, pump};

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

/// Scrubs stdin to stdout with the values of the named variables of latch's own environment.
///
/// # Errors
/// [`Error::Config`] for an unset or empty variable, [`Error::Patterns`] when the patterns
/// cannot be built (nothing is passed through unmasked), [`Error::Io`] on a read or write error.
pub(crate) async fn run(args: ScrubArgs) -> Result<u8, Error> {
    if args.run {
        return Err(Error::NotBuilt("scrub --run"));
    }
    let mut values: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for name in &args.secret_env {
        values.push((name.clone(), read_var(name)?));
    }
    let set = PatternSet::build(values.iter().map(|(n, v)| (n.as_str(), v.as_slice())))?;
    drop(values);
    for name in set.unmasked() {
        tracing::warn!("secret {name} is shorter than 4 bytes and will not be masked");
    }
    let mut scrubber = set.scrubber(args.mask_style.into());
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    match pump(&mut stdin, &mut stdout, &mut scrubber)
        .await
        .map_err(Error::Io)?
    {
        End::Eof | End::WriterClosed => Ok(0),
    }
}

/// The value of variable `name` of this process, as bytes in a zeroizing buffer.
fn read_var(name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(Error::Config(format!(
            "`{name}` is not an environment variable name"
        )));
    }
    let value = Zeroizing::new(
        std::env::var_os(name)
            .map(OsString::into_vec)
            .unwrap_or_default(),
    );
    if value.is_empty() {
        return Err(Error::Config(format!(
            "environment variable {name} (named by --secret-env) is unset or empty; export it \
             before running latch scrub"
        )));
    }
    Ok(value)
}
