//! `latch serve`: the platform's command line (DESIGN §8).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::core::name::Label;

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
        value_name = "URL"
    )]
    pub database_url: Option<String>,
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
}
