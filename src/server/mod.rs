//! The platform's HTTP server (DESIGN §8, §9): axum handlers over a [`Store`].
//!
//! The caller hands in the listener and the shutdown future; [`router`] holds every route and
//! layer; authentication is the [`auth::Caller`] extractor; permissions are decided by
//! [`crate::core::perm::check`] only; handlers are short and return [`error::ApiError`].

pub mod auth;
pub mod boot;
pub mod client;
pub mod error;
pub mod failures;
mod handlers;
pub mod metrics;
mod openapi;
mod router;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::core::crypto::RootKey;
use crate::store::{Millis, Store};

pub use router::router;

/// Everything handlers share.
pub struct App {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The root key (checked against the database at start).
    pub root: RootKey,
    limiter: failures::Limiter,
    failures: failures::FailureLog,
    last_used: auth::LastUsed,
    /// Where `X-Forwarded-For` is believed from (`--trusted-proxy`).
    trusted_proxies: Vec<ipnet::IpNet>,
    /// `/metrics`.
    pub metrics: metrics::Metrics,
    /// Team rows already read (see [`App::team`]); the data key stays wrapped here and is
    /// unwrapped per request.
    teams: std::sync::Mutex<std::collections::HashMap<i64, crate::store::TeamRow>>,
}

impl App {
    /// Shared state over `store` with `root` (already checked by [`boot::verify_root`]), no
    /// trusted proxy.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, root: RootKey) -> Arc<Self> {
        Self::with_proxies(store, root, Vec::new())
    }

    /// As [`App::new`], believing `X-Forwarded-For` from the `trusted` networks.
    #[must_use]
    pub fn with_proxies(
        store: Arc<dyn Store>,
        root: RootKey,
        trusted: Vec<ipnet::IpNet>,
    ) -> Arc<Self> {
        Self::configured(store, root, trusted, failures::MAX_FAILURES)
    }

    /// As [`App::with_proxies`], allowing `failure_budget` failed authentications per client
    /// address a minute before further failing ones get 429.
    #[must_use]
    pub fn configured(
        store: Arc<dyn Store>,
        root: RootKey,
        trusted: Vec<ipnet::IpNet>,
        failure_budget: u32,
    ) -> Arc<Self> {
        let metrics = metrics::Metrics::new(&store.metrics());
        Arc::new(Self {
            store,
            root,
            limiter: failures::Limiter::with_budget(failure_budget),
            failures: failures::FailureLog::default(),
            last_used: auth::LastUsed::default(),
            trusted_proxies: trusted,
            metrics,
            teams: std::sync::Mutex::default(),
        })
    }

    /// A team's row: read once, then kept (a team is never renamed and its data key never
    /// changes, so every replica may keep it).
    ///
    /// # Errors
    /// The store's error, or an internal error if the team does not exist.
    pub(crate) async fn team(&self, team: i64) -> Result<crate::store::TeamRow, error::ApiError> {
        let kept = self
            .teams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&team)
            .cloned();
        if let Some(row) = kept {
            return Ok(row);
        }
        let row = self
            .store
            .team(team)
            .await?
            .ok_or_else(|| error::ApiError::internal("missing team"))?;
        self.teams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(row.id, row.clone());
        Ok(row)
    }

    /// Now, in Unix milliseconds.
    #[must_use]
    pub fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
///
/// # Errors
/// An I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router(Arc::clone(&app)).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    app.failures.flush(&app).await;
    served
}

/// Serves `app` over TLS (rustls) on `listener` with the PEM certificate chain and key at
/// `cert` and `key`, until `shutdown` resolves; in-flight requests get up to 10 s to finish.
///
/// # Errors
/// An I/O error: unreadable or invalid certificate or key, or a listener failure.
pub async fn serve_tls(
    listener: TcpListener,
    app: Arc<App>,
    cert: &std::path::Path,
    key: &std::path::Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let service = router(Arc::clone(&app)).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum_server::from_tcp_rustls(listener.into_std()?, tls)?
        .handle(handle)
        .serve(service)
        .await;
    app.failures.flush(&app).await;
    served
}
