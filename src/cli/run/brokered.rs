//! `latch run`'s side of the credential broker (DESIGN §13): the `--broker` flags, the
//! placeholders the command gets instead of brokered values, and the broker started before the
//! command and stopped after its output is drained.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::{Error, split_bytes};
use crate::api::{AdHocBroker, Resolved};
use crate::broker::{self, Entry, Resolve, Running};
use crate::core::broker::{Host, Policy, Preset, placeholder};
use crate::core::name::SecretName;
use crate::launcher::files::SecretDir;

/// `--broker NAME[=PRESET|HOST,...]`: a well-known name alone takes its preset
/// (`OPENAI_API_KEY` → openai).
///
/// # Errors
/// A message for clap (exit 2 before any request).
pub(super) fn parse_broker(text: &str) -> Result<AdHocBroker, String> {
    let (name, words) = match text.split_once('=') {
        Some((name, words)) => (name, Some(words)),
        None => (text, None),
    };
    let name = SecretName::new(name.to_owned()).map_err(|e| e.to_string())?;
    let words = match words {
        Some(words) => words.to_owned(),
        None => Preset::for_name(name.as_str())
            .map(|p| p.as_str().to_owned())
            .ok_or_else(|| {
                format!(
                    "say where {name}'s value may go: --broker {name}=HOST[,HOST...] or --broker {name}=PRESET (openai, anthropic, gemini, github)"
                )
            })?,
    };
    let policy = Policy::from_words(&words, None, false).map_err(|e| e.to_string())?;
    Ok(AdHocBroker {
        name,
        policy: policy.spec(),
    })
}

/// `--allow-host HOST[:PORT]`.
///
/// # Errors
/// A message for clap.
pub(super) fn parse_host(text: &str) -> Result<Host, String> {
    Host::parse(text).map_err(|e| e.to_string())
}

/// `--resolve HOST:PORT:ADDR`.
///
/// # Errors
/// A message for clap.
pub(super) fn parse_resolve(text: &str) -> Result<Resolve, String> {
    Resolve::parse(text)
}

/// The placeholders of a run's brokered secrets (by delivery index) and the broker's entries.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// `Some(placeholder)` where the command gets a placeholder instead of the value.
    pub(super) placeholders: Vec<Option<Vec<u8>>>,
    /// What the broker needs.
    pub(super) entries: Vec<Entry>,
}

/// Makes a placeholder and keeps the value as shares for each secret the platform says this
/// run brokers; warns about `--broker`/`--no-broker` names that changed nothing.
///
/// # Errors
/// [`Error::Config`] when a brokered value cannot go into a header (or is too short for its
/// placeholder to be unguessable), or when `--no-scrub` would hand it to the command.
pub(super) fn prepare(
    resolved: &Resolved,
    asked: &[AdHocBroker],
    waived: &[SecretName],
    no_scrub: bool,
    mut byok: Vec<super::device::Applied>,
) -> Result<Prepared, Error> {
    let mut prepared = Prepared::default();
    for secret in &resolved.secrets {
        let Some(spec) = &secret.broker else {
            if waived.iter().any(|w| w.as_str() == secret.name) {
                tracing::info!("--no-broker {}: the command gets its value", secret.name);
            }
            prepared.placeholders.push(None);
            continue;
        };
        let policy = Policy::from_spec(spec).map_err(|e| {
            Error::Config(format!(
                "the platform's broker policy of {}: {e}",
                secret.name
            ))
        })?;
        if no_scrub {
            return Err(Error::Config(format!(
                "secret {} is brokered, and --no-scrub makes latch the command, with no broker: drop --no-scrub{}",
                secret.name,
                if policy.always {
                    ""
                } else {
                    " or pass --no-broker for it"
                }
            )));
        }
        if waived.iter().any(|w| w.as_str() == secret.name) {
            tracing::warn!(
                "secret {} is always brokered (its policy says so): --no-broker does not apply",
                secret.name
            );
        }
        if let Some(own) = asked.iter().find(|a| a.name.as_str() == secret.name)
            && own.policy != *spec
        {
            tracing::warn!(
                "secret {} has a broker policy on the platform ({}); --broker's hosts are ignored",
                secret.name,
                spec.hosts.join(", ")
            );
        }
        let value = secret.value.expose_secret().as_bytes();
        let fake = placeholder(value, &mut getrandom::SysRng).map_err(|e| {
            Error::Config(format!("secret {} cannot be brokered: {e}", secret.name))
        })?;
        let real = split_bytes(value)?;
        let mut entry = Entry::new(secret.name.clone(), policy, fake.clone(), real);
        if let Some(at) = byok.iter().position(|a| a.name == secret.name) {
            let device = byok.swap_remove(at);
            entry = entry.device_key(device.provider, device.fallback);
        }
        prepared.entries.push(entry);
        prepared.placeholders.push(Some(fake));
    }
    for asked in asked {
        if !resolved
            .secrets
            .iter()
            .any(|s| s.name == asked.name.as_str())
        {
            tracing::warn!(
                "--broker {}: the secret is not delivered to this run",
                asked.name
            );
        }
    }
    Ok(prepared)
}

/// A started broker and the directory of its CA files (removed when dropped).
#[derive(Debug)]
pub(super) struct Started {
    pub(super) running: Running,
    _files: Option<SecretDir>,
}

/// Where and how the broker starts.
#[derive(Debug)]
pub(super) struct Start<'a> {
    /// Where it listens.
    pub(super) listen: SocketAddr,
    /// `--resolve`.
    pub(super) resolve: &'a [Resolve],
    /// `--allow-host`.
    pub(super) allow_hosts: &'a [Host],
    /// Forward-proxy mode: a run CA, and the proxy and CA variables in the command's
    /// environment.
    pub(super) proxy: bool,
}

impl Start<'_> {
    /// `latch run`'s broker: 127.0.0.1 on a free port, both ways in.
    pub(super) fn run<'a>(resolve: &'a [Resolve], allow_hosts: &'a [Host]) -> Start<'a> {
        Start {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            resolve,
            allow_hosts,
            proxy: true,
        }
    }
}

/// Starts the broker when the run brokers anything, and adds its variables to the command's
/// environment (DESIGN §13 "Lifecycle": before the command; if it cannot start, the command
/// does not either).
///
/// # Errors
/// [`Error::Broker`].
pub(super) fn start(
    entries: Vec<Entry>,
    how: &Start<'_>,
    env: &mut Vec<(OsString, Zeroizing<Vec<u8>>)>,
) -> Result<Option<Started>, Error> {
    if entries.is_empty() {
        if !how.allow_hosts.is_empty() || !how.resolve.is_empty() {
            tracing::warn!(
                "no secret is brokered in this run: --allow-host and --resolve change nothing"
            );
        }
        return Ok(None);
    }
    let running = broker::start(broker::Config {
        entries,
        listen: how.listen,
        resolve: how.resolve.to_vec(),
        ca_cert: std::env::var_os("LATCH_CA_CERT")
            .filter(|v| !v.is_empty())
            .map(Into::into),
        proxy: how.proxy,
        allow_hosts: how.allow_hosts.to_vec(),
    })
    .map_err(|e| Error::Broker(e.to_string()))?;
    tracing::info!("credential broker listening on {}", running.addr);
    let mut vars = running.child_env();
    let files = match running.ca_pem() {
        Some(pem) => {
            let (dir, bundle, ca) = ca_files(pem)?;
            vars.extend(running.proxy_env(&bundle, &ca));
            Some(dir)
        }
        None => None,
    };
    add_env(env, vars);
    Ok(Some(Started {
        running,
        _files: files,
    }))
}

/// Writes the run CA alone and a bundle of the trusted roots followed by it into a private
/// directory: the roots are those of `SSL_CERT_FILE` when latch was given one, else the
/// machine's (a client given the bundle must still reach the hosts latch does not broker).
fn ca_files(pem: &str) -> Result<(SecretDir, String, String), Error> {
    let fail = |e: std::io::Error| Error::Broker(format!("cannot write the run CA's files: {e}"));
    let dir = SecretDir::create().map_err(fail)?;
    let mut bundle = std::env::var_os("SSL_CERT_FILE")
        .and_then(|path| std::fs::read(path).ok())
        .unwrap_or_else(|| {
            let mut roots = Vec::new();
            for cert in rustls_native_certs::load_native_certs().certs {
                roots.extend_from_slice(pem_of(&cert).as_bytes());
            }
            roots
        });
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(pem.as_bytes());
    let ca = dir.write("run-ca.pem", pem.as_bytes()).map_err(fail)?;
    let bundle = dir.write("ca-bundle.pem", &bundle).map_err(fail)?;
    Ok((dir, bundle.display().to_string(), ca.display().to_string()))
}

/// A certificate as PEM.
fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Adds the broker's variables to the command's environment, each replacing an inherited
/// variable of that name (a stale `OPENAI_BASE_URL` or `HTTPS_PROXY` must not win).
fn add_env(env: &mut Vec<(OsString, Zeroizing<Vec<u8>>)>, vars: Vec<(String, String)>) {
    for (name, value) in vars {
        let value = Zeroizing::new(value.into_bytes());
        match env.iter_mut().find(|(n, _)| *n == *name) {
            Some(slot) => slot.1 = value,
            None => env.push((name.into(), value)),
        }
    }
}

/// Stops the broker and says, at `-v`, how many requests each value went into; a brokered
/// name that no request carried gets a hint (a client that ignored the base URL sent the
/// placeholder straight to the API, which refused it: nothing leaked). Returns the requests
/// replayed with the team's value, per name, for the run's record.
pub(super) fn stop(started: Started) -> std::collections::BTreeMap<String, u64> {
    let stopped = started.running.stop();
    for (name, count) in &stopped.fell_back {
        tracing::info!(
            "{name}: {count} {} made with your device key {} replayed with the team's (--fallback-to-team)",
            if *count == 1 { "request" } else { "requests" },
            if *count == 1 { "was" } else { "were" }
        );
    }
    for (name, count) in stopped.injected {
        if count == 0 {
            tracing::info!(
                "{name} was brokered but no request through the broker carried its placeholder: a client that does not read its base-URL variable (or LATCH_BROKER_URL_{name}) sent the placeholder elsewhere, where it authenticates nothing"
            );
        } else {
            tracing::info!(
                "{name}: its value went into {count} {}",
                if count == 1 { "request" } else { "requests" }
            );
        }
    }
    stopped.fell_back
}
