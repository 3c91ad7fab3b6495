//! The credential broker (DESIGN §13): the command holds a placeholder, and the broker puts
//! the real value into requests to the hosts its policy names, on 127.0.0.1.
//!
//! Base-URL mode: the command's SDK is pointed at `http://127.0.0.1:PORT/<route>/...` (its own
//! base-URL variable, or `LATCH_BROKER_URL_<NAME>`), and the broker forwards each request over
//! verified TLS to the route's host. Built on hyper directly rather than a MITM framework (the
//! research's measured reasons: an injected resolver for `--resolve`, the checks per request).
//!
//! The broker runs on its own thread and runtime, started before the command. Values are kept
//! as two shares ([`Split`]) and joined only into the one header of one request; responses are
//! streamed back with any real value replaced by its placeholder (same length, so nothing is
//! buffered and `Content-Length` holds).

mod ca;
mod forward;
mod tunnel;
pub mod upstream;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::core::broker::{Policy, Preset};
use crate::core::split::Split;

pub use self::upstream::Resolve;

/// Why the broker could not start or forward.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// It cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// An upstream could not be reached.
    #[error("{0}")]
    Upstream(String),
}

/// One brokered secret.
pub struct Entry {
    /// Its name (the variable the command gets the placeholder in).
    pub name: String,
    /// Where its value may go.
    pub policy: Policy,
    /// What the command holds instead.
    pub placeholder: Vec<u8>,
    /// The value, as two shares.
    pub real: Split,
    injected: AtomicU64,
    /// The value is the user's own device key for this provider (DESIGN §14): its refusals are
    /// classified, said, and replayed with `fallback` when there is one.
    byok: Option<Byok>,
}

/// What the broker keeps for a device key (DESIGN §14 "Failures").
#[derive(Debug)]
pub(crate) struct Byok {
    provider: crate::core::byok::Provider,
    /// The team's value (`--fallback-to-team`), as two shares.
    fallback: Option<Split>,
    /// Requests replayed with the team's value.
    fell_back: AtomicU64,
    /// Whether the invalid-key notice was said (once per run).
    said_invalid: std::sync::atomic::AtomicBool,
    /// Until when the provider asked to wait (`Retry-After`), in ms since the broker started:
    /// requests go straight to the team's value meanwhile.
    wait_until: AtomicU64,
}

impl Entry {
    /// A brokered secret.
    #[must_use]
    pub fn new(name: String, policy: Policy, placeholder: Vec<u8>, real: Split) -> Self {
        Self {
            name,
            policy,
            placeholder,
            real,
            injected: AtomicU64::new(0),
            byok: None,
        }
    }

    /// Marks the value as the user's device key for `provider`, with the team's value to replay
    /// a failed request with (`--fallback-to-team`).
    #[must_use]
    pub fn device_key(
        mut self,
        provider: crate::core::byok::Provider,
        fallback: Option<Split>,
    ) -> Self {
        self.byok = Some(Byok {
            provider,
            fallback,
            fell_back: AtomicU64::new(0),
            said_invalid: std::sync::atomic::AtomicBool::new(false),
            wait_until: AtomicU64::new(0),
        });
        self
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What the broker needs.
#[derive(Debug)]
pub struct Config {
    /// The brokered secrets.
    pub entries: Vec<Entry>,
    /// Where to listen (`127.0.0.1:0` for `latch run`).
    pub listen: SocketAddr,
    /// `--resolve` overrides.
    pub resolve: Vec<Resolve>,
    /// Extra trusted roots for upstreams (`LATCH_CA_CERT`).
    pub ca_cert: Option<std::path::PathBuf>,
    /// Forward-proxy mode: a run CA for the brokered hosts, `CONNECT` served.
    pub proxy: bool,
    /// `--allow-host`: hosts reached through a blind tunnel in forward-proxy mode.
    pub allow_hosts: Vec<crate::core::broker::Host>,
}

/// The routes of base-URL mode: a preset's (`/openai/...`) or a name's (`/NAME/...`), each to
/// its first host. A preset's route wins over a secret that happens to have its name.
#[derive(Debug, Default)]
pub(crate) struct Routes(BTreeMap<String, crate::core::broker::Host>);

impl Routes {
    fn of(entries: &[Entry]) -> Self {
        let mut routes = BTreeMap::new();
        for entry in entries {
            if let Some(preset) = entry.policy.preset.filter(|p| p.base_url().is_some()) {
                routes.insert(preset.as_str().to_owned(), entry.policy.hosts[0].clone());
            }
        }
        for entry in entries {
            routes
                .entry(entry.name.clone())
                .or_insert_with(|| entry.policy.hosts[0].clone());
        }
        Self(routes)
    }

    pub(crate) fn get(&self, route: &str) -> Option<&crate::core::broker::Host> {
        self.0.get(route)
    }
}

/// What a stopped broker counted, per name.
#[derive(Debug, Default)]
pub struct Stopped {
    /// Requests each value went into.
    pub injected: BTreeMap<String, u64>,
    /// Requests replayed with the team's value after the device key failed.
    pub fell_back: BTreeMap<String, u64>,
}

/// A running broker.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Hangs up when the broker's thread ends, for whatever reason: the supervisor watches it.
    alive: Option<io::PipeReader>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<forward::State>,
}

impl Running {
    /// The end of a pipe that hangs up when the broker's thread ends, for whatever reason (once;
    /// the supervisor watches it).
    pub fn take_alive(&mut self) -> Option<io::PipeReader> {
        self.alive.take()
    }

    /// The variables the command gets besides the placeholders: each preset's base-URL
    /// variable and `LATCH_BROKER_URL_<NAME>` for every brokered name.
    #[must_use]
    pub fn child_env(&self) -> Vec<(String, String)> {
        let base = format!("http://{}", self.addr);
        let mut env = Vec::new();
        let mut presets: Vec<Preset> = Vec::new();
        for entry in &self.state.entries {
            if let Some(preset) = entry.policy.preset
                && !presets.contains(&preset)
            {
                presets.push(preset);
                if let Some((var, path)) = preset.base_url() {
                    env.push((var.to_owned(), format!("{base}{path}")));
                }
            }
            env.push((
                format!("LATCH_BROKER_URL_{}", entry.name),
                format!("{base}/{}/", entry.name),
            ));
        }
        env
    }

    /// Forward-proxy mode's CA certificate (PEM, public), when the mode is on.
    #[must_use]
    pub fn ca_pem(&self) -> Option<&str> {
        self.state.ca.as_ref().map(ca::RunCa::pem)
    }

    /// Forward-proxy mode's variables, given the paths of the CA bundle (the trusted roots and
    /// the run CA) and of the run CA alone: the proxy for HTTPS and HTTP (both spellings),
    /// `NO_PROXY` for loopback (base-URL mode goes straight to the broker), Node's switch, and
    /// each client's CA variable (DESIGN §13).
    #[must_use]
    pub fn proxy_env(&self, bundle: &str, ca: &str) -> Vec<(String, String)> {
        let proxy = format!("http://{}", self.addr);
        let mut env = Vec::new();
        for name in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
            env.push((name.to_owned(), proxy.clone()));
        }
        for name in ["NO_PROXY", "no_proxy"] {
            env.push((name.to_owned(), "127.0.0.1,localhost,::1".to_owned()));
        }
        env.push(("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned()));
        for name in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
        ] {
            env.push((name.to_owned(), bundle.to_owned()));
        }
        env.push(("NODE_EXTRA_CA_CERTS".to_owned(), ca.to_owned()));
        env
    }

    /// Stops the broker (requests in flight are cut) and says how many requests each name's
    /// value went into, and how many of them were replayed with the team's value instead of a
    /// device key (names that had none left out).
    #[must_use]
    pub fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let entries = &self.state.entries;
        Stopped {
            injected: entries
                .iter()
                .map(|e| (e.name.clone(), e.injected.load(Ordering::Relaxed)))
                .collect(),
            fell_back: entries
                .iter()
                .filter_map(|e| {
                    let n = e.byok.as_ref()?.fell_back.load(Ordering::Relaxed);
                    (n > 0).then(|| (e.name.clone(), n))
                })
                .collect(),
        }
    }
}

/// Starts the broker on a thread of its own; returns once it listens.
///
/// # Errors
/// [`BrokerError`]: the CA file, the trusted roots or the listening socket.
pub fn start(config: Config) -> Result<Running, BrokerError> {
    // A fault for the tests of "the broker cannot start" (debug builds only).
    #[cfg(debug_assertions)]
    if std::env::var_os("LATCH_BROKER_FAULT").is_some_and(|v| v == "fail-start") {
        return Err(BrokerError::Config(
            "LATCH_BROKER_FAULT: the broker does not start".into(),
        ));
    }
    let tls = upstream::tls_config(config.ca_cert.as_deref())?;
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| BrokerError::Listen {
            addr: config.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| BrokerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| BrokerError::Listen {
            addr: config.listen,
            source,
        })?;
    let routes = Routes::of(&config.entries);
    let ca = if config.proxy {
        let hosts: Vec<_> = config
            .entries
            .iter()
            .flat_map(|e| e.policy.hosts.iter().cloned())
            .collect();
        Some(ca::RunCa::new(&hosts)?)
    } else {
        None
    };
    let state = Arc::new(forward::State::new(
        config.entries,
        routes,
        &config.resolve,
        tls,
        ca,
        config.allow_hosts,
    ));
    let (alive, alive_tx) =
        io::pipe().map_err(|e| BrokerError::Config(format!("cannot create a pipe: {e}")))?;
    let (stop, stopped) = oneshot::channel();
    let serving = Arc::clone(&state);
    let thread = std::thread::Builder::new()
        .name("latch-broker".into())
        .spawn(move || {
            let _alive = alive_tx;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!("the credential broker cannot start its runtime: {e}");
                    return;
                }
            };
            runtime.block_on(forward::serve(listener, serving, stopped));
            // Connections still open are dropped with the runtime.
            drop(runtime);
        })
        .map_err(|e| BrokerError::Config(format!("cannot start the broker's thread: {e}")))?;
    Ok(Running {
        addr,
        alive: Some(alive),
        stop: Some(stop),
        thread: Some(thread),
        state,
    })
}
