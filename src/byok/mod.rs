//! Bring your own provider key (DESIGN §14), the IO part: the device store, the container
//! signs the local-run rule reads, and the one request `latch byok test` makes. The rules
//! themselves are pure, in [`crate::core::byok`].

pub mod store;

use std::path::Path;

use http::{HeaderMap, HeaderValue};
use zeroize::Zeroizing;

use crate::broker::Resolve;
use crate::broker::upstream::get_once;
use crate::core::broker::Host;
use crate::core::byok::{self, ContainerSign, Provider, Verdict};

pub use self::store::{KeyPlace, Location, Store, StoreError};

/// The container signs on this machine's file system (DESIGN §14): `/.dockerenv`,
/// `/run/.containerenv`, PID 1's `container=` and its cgroup's runtime. Unreadable files are
/// no sign (PID 1's environment is root's to read).
#[must_use]
pub fn container_signs() -> Vec<ContainerSign> {
    let mut signs = Vec::new();
    if Path::new("/.dockerenv").exists() {
        signs.push(ContainerSign::DockerEnv);
    }
    if Path::new("/run/.containerenv").exists() {
        signs.push(ContainerSign::ContainerEnv);
    }
    if let Ok(environ) = std::fs::read("/proc/1/environ")
        && let Some(what) = byok::pid1_container(&environ)
    {
        signs.push(ContainerSign::Pid1Container(what));
    }
    if let Ok(cgroup) = std::fs::read_to_string("/proc/1/cgroup")
        && let Some(marker) = byok::cgroup_marker(&cgroup)
    {
        signs.push(ContainerSign::Cgroup(marker));
    }
    signs
}

/// The variables the local-run rule reads, from this process's environment.
#[must_use]
pub fn rule_env() -> Vec<(String, String)> {
    byok::CI_VARIABLES
        .iter()
        .chain(&["CODESPACES", "KUBERNETES_SERVICE_HOST"])
        .filter_map(|name| {
            std::env::var_os(name).map(|v| ((*name).to_owned(), v.to_string_lossy().into_owned()))
        })
        .collect()
}

/// What `latch byok test` found, with the provider's own words when it refused.
#[derive(Debug)]
pub struct Tested {
    /// The conclusion.
    pub verdict: Verdict,
    /// The host asked.
    pub host: Host,
}

/// Asks `provider` for its model list with `key`: its cheapest authenticated request.
///
/// # Errors
/// [`crate::broker::BrokerError`] when the provider cannot be reached.
pub async fn test_key(
    provider: Provider,
    key: &Zeroizing<String>,
    resolve: &[Resolve],
    ca_cert: Option<&Path>,
) -> Result<Tested, crate::broker::BrokerError> {
    let preset = provider.preset();
    let host = Host::parse(preset.hosts()[0])
        .map_err(|e| crate::broker::BrokerError::Config(e.to_string()))?;
    let mut headers = HeaderMap::new();
    let secret = |text: Zeroizing<Vec<u8>>| {
        let mut value =
            HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text)).map_err(|_| {
                crate::broker::BrokerError::Config("the key cannot go into a header".into())
            })?;
        value.set_sensitive(true);
        Ok::<_, crate::broker::BrokerError>(value)
    };
    let with = |prefix: &str| {
        let mut text = Zeroizing::new(Vec::with_capacity(prefix.len() + key.len()));
        text.extend_from_slice(prefix.as_bytes());
        text.extend_from_slice(key.as_bytes());
        text
    };
    match provider {
        Provider::Openai => {
            headers.insert(http::header::AUTHORIZATION, secret(with("Bearer "))?);
        }
        Provider::Anthropic => {
            headers.insert("x-api-key", secret(with(""))?);
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        Provider::Gemini => {
            headers.insert("x-goog-api-key", secret(with(""))?);
        }
    }
    let (status, body) = get_once(
        &host,
        provider.check_path(),
        headers,
        resolve,
        ca_cert,
        byok::ERROR_BODY_LIMIT,
    )
    .await?;
    Ok(Tested {
        verdict: byok::verdict(provider, status, &body),
        host,
    })
}
