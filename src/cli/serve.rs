//! `latch serve`: the platform's command line (DESIGN §8).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;

use super::{Error, messages};
use crate::core::crypto::RootKey;
use crate::core::name::Label;
use crate::server::boot::{self, BootError};
use crate::server::{self, App};
use crate::store::Store;
use crate::store::postgres::{PgStore, PoolSettings};
use crate::store::sqlite::SqliteStore;

/// `latch serve [OPTIONS]`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8177", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Data directory for the embedded SQLite database and the generated root key.
    #[arg(long, env = "LATCH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the embedded SQLite: postgres://...
    #[arg(
        long,
        env = "LATCH_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        value_parser = super::secret_arg
    )]
    pub database_url: Option<secrecy::SecretString>,
    /// With --database-url: most database connections this replica opens.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// With --database-url: how long a request waits for a free database connection.
    #[arg(long, default_value = "10s", value_parser = crate::core::duration::parse_duration, value_name = "DUR")]
    pub db_acquire_timeout: std::time::Duration,
    /// File holding the 32-byte root key as 64 hex characters (`openssl rand -hex 32`).
    #[arg(long, env = "LATCH_ROOT_KEY_FILE", value_name = "PATH")]
    pub root_key_file: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Team created on first start with an empty database.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub team: Label,
    /// Owner created on first start with an empty database.
    #[arg(long, default_value = "owner", value_name = "NAME")]
    pub owner: Label,
    /// Write the owner's first API key to this file (mode 0600) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub bootstrap_key_file: Option<PathBuf>,
    /// A reverse proxy (CIDR or address) whose `X-Forwarded-For` names the client; repeatable.
    /// Without it the connection's peer is the client.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = crate::server::client::parse_trusted_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Failed authentications allowed per client address a minute; past it, further failing
    /// requests get 429 (a request with a valid key is always served).
    #[arg(long, default_value_t = crate::server::failures::MAX_FAILURES, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failure_budget: u32,
}

/// The store (PostgreSQL with `--database-url`, else SQLite in the data directory) and the root
/// key. Replicas on PostgreSQL share one root key, so it must be given; SQLite generates one in
/// the data directory on first start.
async fn open_store(args: &ServeArgs) -> Result<(Arc<dyn Store>, RootKey), Error> {
    if let Some(url) = &args.database_url {
        let url = secrecy::ExposeSecret::expose_secret(url);
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(Error::Config(
                "--database-url must be a postgres:// URL (SQLite is the default without it)"
                    .into(),
            ));
        }
        let Some(path) = &args.root_key_file else {
            return Err(Error::Config(
                "with --database-url, pass --root-key-file (or LATCH_ROOT_KEY_FILE): every replica must use the same root key".into(),
            ));
        };
        let (root, _) = boot::root_key(path, false)?;
        let settings = PoolSettings {
            max_connections: args.db_max_connections,
            acquire_timeout: args.db_acquire_timeout,
        };
        let store = PgStore::connect(url, settings)
            .await
            .map_err(BootError::from)?;
        return Ok((Arc::new(store), root));
    }
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    private_dir(&data_dir)?;
    let db = data_dir.join("latch.db");
    let store = SqliteStore::open(&db).await.map_err(BootError::from)?;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        owner_only(std::path::Path::new(&path), 0o600);
    }
    let (root, generated) = match &args.root_key_file {
        Some(path) => boot::root_key(path, false)?,
        None => boot::root_key(&data_dir.join("root.key"), true)?,
    };
    if generated {
        tracing::warn!(
            "generated a new root key in {}: back it up, apart from the database — without it the stored secrets cannot be decrypted",
            data_dir.join("root.key").display()
        );
    }
    let key_path = args
        .root_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("root.key"));
    if inside(&key_path, &data_dir) {
        tracing::warn!(
            "the root key {} is inside the data directory: move it away and pass --root-key-file (a backup holding both is a backup of the plaintext)",
            key_path.display()
        );
    }
    Ok((Arc::new(store), root))
}

/// Creates `dir` owner-only (0700, whatever the umask), or makes an existing one so.
fn private_dir(dir: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        return Err(Error::Config(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        )));
    }
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the data directory {} was readable by others: made it 0700",
            dir.display()
        );
        owner_only(dir, 0o700);
    }
    Ok(())
}

/// Sets `path`'s mode, if it exists.
fn owner_only(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if path.exists()
        && let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    {
        tracing::warn!("cannot make {} owner-only: {e}", path.display());
    }
}

/// Whether `path` lies inside `dir` (comparing the canonical paths where they exist).
fn inside(path: &std::path::Path, dir: &std::path::Path) -> bool {
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    canonical(path).starts_with(canonical(dir))
}

/// Starts the platform and serves until SIGTERM or SIGINT.
///
/// # Errors
/// [`Error::Boot`] when the data directory, root key or database cannot be used.
pub(crate) async fn run(args: ServeArgs) -> Result<u8, Error> {
    // Every file the server creates (database, WAL, key files) is owner-only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let (store, root) = open_store(&args).await?;
    boot::verify_root(&*store, &root).await?;
    // Everything that can fail comes before the bootstrap (DESIGN §8): a start that fails
    // leaves the database empty, so the next start bootstraps again and no key is lost.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot use --tls-cert {} / --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?,
        ),
        _ => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener.local_addr().map_err(Error::Io)?;
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            "listening on {local} without TLS: API keys and values would cross the network in the clear; pass --tls-cert/--tls-key or put a TLS-terminating proxy in front"
        );
    }
    let app = App::configured(
        Arc::clone(&store),
        root,
        args.trusted_proxies.clone(),
        args.auth_failure_budget,
    );
    if let Some(key) = boot::bootstrap(
        &*store,
        &app.root,
        args.team.clone(),
        args.owner.clone(),
        app.now(),
    )
    .await?
    {
        if let Some(path) = &args.bootstrap_key_file {
            boot::write_key_file(path, &key)?;
            messages::note(&format!(
                "created team `{}` and owner `{}`; the owner's API key is in {}",
                args.team,
                args.owner,
                path.display()
            ));
        } else {
            messages::note(&format!(
                "created team `{}` and owner `{}`; the owner's API key (shown once):",
                args.team, args.owner
            ));
            super::context::outln!("{}", key.expose())?;
        }
        messages::note(
            "this bootstrap key never expires (it is the recovery path of a fresh server): create a personal key with it (`latch api-key create --personal --name laptop`), then revoke it",
        );
    }
    if let (Some(_), Some(cert), Some(key)) = (tls, &args.tls_cert, &args.tls_key) {
        messages::note(&format!("listening on https://{local}"));
        messages::note(&format!("the web app is at https://{local}/ui"));
        server::serve_tls(listener, app, cert, key, shutdown_signal())
            .await
            .map_err(Error::Io)?;
    } else {
        messages::note(&format!("listening on http://{local}"));
        messages::note(&format!(
            "the web app is at http://{local}/ui{}",
            if local.ip().is_loopback() {
                ""
            } else {
                " (browsers keep its session only over HTTPS or on a loopback address)"
            }
        ));
        server::serve(listener, app, shutdown_signal())
            .await
            .map_err(Error::Io)?;
    }
    Ok(0)
}

/// The platform's data directory: `$XDG_DATA_HOME/latch`, else `~/.local/share/latch`.
fn default_data_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("latch"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".local/share/latch"))
        .ok_or_else(|| {
            Error::Config("no data directory: pass --data-dir or set LATCH_DATA_DIR".into())
        })
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    messages::note("shutting down");
}
