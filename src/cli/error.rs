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
    /// A signal ended latch before the command started (exit 128+N).
    #[error("stopped by signal {0} before the command started; nothing was started")]
    Interrupted(i32),
    /// The credential broker could not start, or stopped while the command ran (exit 70).
    #[error("credential broker: {0}")]
    Broker(String),
    /// A provider or other service latch asked directly could not be reached (exit 69).
    #[error("{0}")]
    Unreachable(String),
    /// A provider refused a key (`latch byok test`, exit 77).
    #[error("{0}")]
    KeyRefused(String),
    /// The reader of stdout went away (`latch runs list | head`): end quietly.
    #[error("stdout was closed")]
    StdoutClosed,
}

impl Error {
    /// The failure class, hence the exit code (`None`: not a failure of latch's own).
    #[must_use]
    pub fn failure(&self) -> Failure {
        match self {
            Self::Client(ClientError::Unreachable { .. }) | Self::Unreachable(_) => {
                Failure::Unavailable
            }
            Self::Client(ClientError::Refused(_) | ClientError::KeyFormat(_))
            | Self::KeyRefused(_) => Failure::Refused,
            Self::Client(ClientError::Api { status, code, .. }) => {
                Failure::of_answer(*status, code)
            }
            Self::Usage(_) => Failure::Usage,
            Self::Launch(LaunchError::Spawn(
                SpawnError::NotFound { .. } | SpawnError::NoInterpreter { .. },
            )) => Failure::NotFound,
            Self::Launch(LaunchError::Spawn(SpawnError::NotExecutable { .. })) => {
                Failure::NotExecutable
            }
            Self::Runtime(_)
            | Self::Io(_)
            | Self::StdoutClosed
            | Self::Interrupted(_)
            | Self::Broker(_)
            | Self::Launch(LaunchError::Io { .. })
            | Self::Client(ClientError::Decode(_)) => Failure::Internal,
            Self::Config(_)
            | Self::Patterns(_)
            | Self::Boot(_)
            | Self::Client(ClientError::Config(_) | ClientError::Tls(_)) => Failure::Config,
        }
    }

    /// The process exit code: the failure's, 128+N for a signal before the command started, 0
    /// for a closed stdout.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Interrupted(signal) => {
                crate::core::exit::child_code(crate::core::exit::ChildExit::Signaled(*signal))
            }
            Self::StdoutClosed => crate::core::exit::OK,
            other => other.failure().code(),
        }
    }

    /// The stable code under `--json` (`{"error": {"code", "message"}}`).
    #[must_use]
    pub fn code(&self) -> String {
        match self {
            Self::Client(ClientError::Api { code, .. }) => code.clone(),
            Self::Client(ClientError::Refused(_)) => "unauthorized".into(),
            Self::Client(ClientError::KeyFormat(_)) => "malformed_key".into(),
            Self::Client(ClientError::Tls(_)) => "tls_untrusted".into(),
            Self::Client(ClientError::Unreachable { .. }) => "unreachable".into(),
            other => other.failure().name().to_owned(),
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
            Self::Client(ClientError::KeyFormat(_)) => Some(
                "copy the whole key again (latch_p_… or latch_t_…, 54 characters); nothing was sent",
            ),
            Self::Client(ClientError::Api { code, .. })
                if code == "unknown_environment" || code == "unknown_identity" =>
            {
                Some("`latch env list` and `latch identity list` show what exists")
            }
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
            Self::Launch(LaunchError::Spawn(SpawnError::NoInterpreter { .. })) => {
                Some("install the interpreter, or fix the script's #! line")
            }
            Self::Client(ClientError::Api { status, .. })
                if *status == 429 || (500..600).contains(status) =>
            {
                Some(
                    "the platform (or a proxy in front of it) is overloaded or failing; latch retried with backoff: try again later, and see the server's log",
                )
            }
            Self::Client(ClientError::Api { code, .. }) if code == "http_error" => Some(
                "that answer did not come from latch: check LATCH_URL, its path prefix included, and any proxy in front of the platform",
            ),
            Self::Client(ClientError::Api { code, .. }) if code == "byok_refused" => Some(
                "drop --byok to run with the team's secrets; an owner or admin can allow device keys with `latch team set --byok allowed`",
            ),
            Self::Client(ClientError::Api { code, .. }) if code == "trigger_requires_user" => Some(
                "a team key has no user: use --trigger schedule or integration, or run with a personal key",
            ),
            Self::Launch(LaunchError::Io { .. })
            | Self::Broker(_)
            | Self::Client(_)
            | Self::Usage(_)
            | Self::Unreachable(_)
            | Self::KeyRefused(_)
            | Self::Runtime(_)
            | Self::Config(_)
            | Self::Io(_)
            | Self::Interrupted(_)
            | Self::StdoutClosed => None,
        }
    }
}
