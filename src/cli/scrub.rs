//! `latch scrub`: the scrubber as a stdin-to-stdout filter (DESIGN §7).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use clap::Args;
use zeroize::Zeroizing;

use reqwest::Method;
use secrecy::ExposeSecret;

use super::run::MaskStyle;
use super::{Error, Global, context, messages};
use crate::api::{FinishRun, ResolveRun, Resolved, RunInfo};
use crate::core::name::{Label, SecretName};
use crate::core::scrub::PatternSet;
use crate::launcher::pump::{End, Sink, pump};

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

/// Scrubs stdin to stdout: with the values of the named variables of latch's own environment,
/// or (`--run`) with the values of a run resolved by the platform, used only as patterns.
///
/// # Errors
/// [`Error::Config`] for an unset or empty variable, [`Error::Client`] when the platform refuses
/// or cannot be reached, [`Error::Patterns`] when the patterns cannot be built (nothing is
/// passed through unmasked), [`Error::Io`] on a read or write error.
pub(crate) async fn run(args: ScrubArgs, global: &Global) -> Result<u8, Error> {
    let started = std::time::Instant::now();
    let mut values: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    let mut resolved_run = None;
    if args.run {
        let client = context::client(global)?;
        let request = ResolveRun {
            trigger: None,
            environment: args.environment.clone(),
            secrets: args.secrets.clone(),
            required: Vec::new(),
            dry_run: false,
            exec: false,
            ..ResolveRun::default()
        };
        let resolved: Resolved = client.call(Method::POST, "v1/runs", Some(&request)).await?;
        for m in &resolved.missing {
            messages::warning(&format!(
                "{} is not delivered ({}); it will not be masked",
                m.name, m.reason
            ));
        }
        for secret in &resolved.secrets {
            values.push((
                secret.name.clone(),
                Zeroizing::new(secret.value.expose_secret().as_bytes().to_vec()),
            ));
        }
        resolved_run = Some((client, resolved.run_id.clone()));
    } else {
        for name in &args.secret_env {
            values.push((name.clone(), read_var(name)?));
        }
    }
    let set = PatternSet::build(values.iter().map(|(n, v)| (n.as_str(), v.as_slice())))?;
    drop(values);
    for name in set.unmasked() {
        tracing::warn!("secret {name} is shorter than 4 bytes and will not be masked");
    }
    let mut scrubber = set.scrubber(args.mask_style.into());
    let (scrubber, end) = tokio::task::spawn_blocking(move || {
        let end = std_streams()
            .and_then(|(mut stdin, mut sink)| pump(&mut stdin, &mut sink, &mut scrubber, None));
        (scrubber, end.map_err(Error::Io))
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    if let Some((client, run_id)) = resolved_run {
        // Report the run's end with the masked counts; a failed report is only a warning.
        let masked = scrubber
            .counts()
            .into_iter()
            .map(|(n, c)| (n.to_owned(), c))
            .collect();
        let finish = FinishRun {
            exit_code: Some(i32::from(end.is_err())),
            signal: None,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            masked,
            byok_fallbacks: std::collections::BTreeMap::new(),
        };
        if let Err(e) = client
            .call::<RunInfo, _>(
                Method::POST,
                &format!("v1/runs/{run_id}/finish"),
                Some(&finish),
            )
            .await
        {
            tracing::warn!("could not report the end of run {run_id}: {e}");
        }
    }
    match end? {
        End::Eof | End::WriterClosed | End::Stopped => Ok(0),
    }
}

/// Duplicates of stdin and stdout as files: the pump does blocking I/O on them directly,
/// without the buffering of `std::io::Stdout`.
fn std_streams() -> std::io::Result<(File, Sink<File>)> {
    let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    Ok((stdin, Sink::new(stdout, None)))
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
