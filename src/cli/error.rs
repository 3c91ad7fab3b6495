//! The CLI's error type and its one exhaustive mapping to the exit-code contract.

use crate::client::ClientError;
use crate::core::exit::Failure;
use crate::core::scrub::BuildError;
use crate::launcher::child::SpawnError;
use crate::launcher::supervise::LaunchError;
use crate::server::boot::BootError;
use crate::store::StoreError;

/// Everything a command can fail with. Messages are lowercase, specific, and never hold a
/// secret value or an API key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A setting, file or variable is missing or malformed.
    #[error("{0}")]
    Config(String),
    /// The scrubber's patterns cannot be built: fail closed.
    #[error("cannot build the masking patterns; refusing to pass output unmasked")]
    Patterns(#[from] BuildError),
    /// The platform cannot start: data directory, root key or database.
    #[error("cannot start the platform")]
    Boot(#[from] BootError),
    /// A request to the platform failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A command needs a person at a terminal, or a flag instead.
    #[error("{0}")]
    Usage(String),
    /// The launcher could not start or supervise the command.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Reading input or writing output failed.
    #[error("i/o error")]
    Io(#[source] std::io::Error),
}

impl Error {
    /// The failure class, hence the exit code.
    #[must_use]
    pub fn failure(&self) -> Failure {
        match self {
            Self::Client(ClientError::Unreachable { .. }) => Failure::Unavailable,
            Self::Client(ClientError::Refused(_)) => Failure::AuthRefused,
            Self::Client(ClientError::Api { code, .. }) if code == "required_missing" => {
                Failure::RequiredMissing
            }
            Self::Client(ClientError::Api { .. }) => Failure::Rejected,
            Self::Usage(_) => Failure::Usage,
            Self::Launch(LaunchError::Spawn(SpawnError::NotFound { .. })) => Failure::NotFound,
            Self::Launch(LaunchError::Spawn(SpawnError::NotExecutable { .. })) => {
                Failure::NotExecutable
            }
            Self::Runtime(_)
            | Self::Io(_)
            | Self::Launch(LaunchError::Io { .. })
            | Self::Client(ClientError::Decode(_)) => Failure::Internal,
            Self::Config(_)
            | Self::Patterns(_)
            | Self::Boot(_)
            | Self::Client(ClientError::Config(_)) => Failure::Config,
        }
    }

    /// A line telling the person what to do, where there is one.
    #[must_use]
    pub fn remedy(&self) -> Option<&'static str> {
        match self {
            Self::Patterns(_) => Some("mask fewer or shorter secrets"),
            Self::Boot(BootError::Store(StoreError::InUse(_))) => Some(
                "stop the other `latch serve` on this --data-dir or give this one its own; several replicas need PostgreSQL (--database-url)",
            ),
            Self::Boot(_) => Some(
                "check --data-dir (or that --database-url names a reachable PostgreSQL), --root-key-file, and that the root key is the one this database was created with",
            ),
            Self::Client(ClientError::Refused(_)) => Some(
                "check LATCH_API_KEY; an owner or admin can create a key with `latch api-key create`",
            ),
            Self::Client(ClientError::Unreachable { .. }) => {
                Some("check LATCH_URL and that `latch serve` is running and reachable")
            }
            Self::Client(ClientError::Api { code, .. }) if code == "forbidden" => {
                Some("your role does not allow this; ask an owner or admin")
            }
            Self::Client(ClientError::Api { code, .. }) if code == "precondition_failed" => {
                Some("someone changed it since it was read: run the command again")
            }
            Self::Client(ClientError::Api { code, .. }) if code == "key_cannot_manage" => Some(
                "this is a run-only key, for agents: manage with a personal key, or a team key made with `latch api-key create --team --manage`",
            ),
            Self::Launch(LaunchError::Spawn(SpawnError::NotFound { .. })) => {
                Some("check the command's name, and that it is on the PATH the command gets")
            }
            Self::Launch(LaunchError::Spawn(SpawnError::NotExecutable { .. })) => {
                Some("check the file's execute permission and its #! line")
            }
            Self::Client(ClientError::Api { code, .. }) if code == "required_missing" => Some(
                "create the missing secrets, or drop them from --require; the command was not started",
            ),
            Self::Launch(LaunchError::Io { .. }) => None,
            Self::Client(_) | Self::Usage(_) | Self::Runtime(_) | Self::Config(_) | Self::Io(_) => {
                None
            }
        }
    }
}
