//! Start-up: the root key (read, or generated 0600 in the default data directory), the check
//! that it matches the database, and the bootstrap of an empty database (DESIGN §5, §8).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use getrandom::SysRng;

use crate::core::apikey::{ApiKey, KeyKind};
use crate::core::crypto::{CryptoError, DataKey, RootKey};
use crate::core::name::Label;
use crate::store::{Bootstrap, Millis, NewKey, Store, StoreError, TeamRow};

const CHECK: &str = "root_key_check";

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The root key file cannot be read or written.
    #[error("cannot use the root key file {path}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The root key is malformed or does not match the database.
    #[error(transparent)]
    Key(#[from] CryptoError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bootstrap key file cannot be written.
    #[error("cannot write the bootstrap key file {path}")]
    BootstrapFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the root key from `path`, or with `generate` creates it there (mode 0600) when the
/// file does not exist. Returns the key and whether it was generated.
///
/// # Errors
/// [`BootError`] if the file cannot be read, written or parsed.
pub fn root_key(path: &Path, generate: bool) -> Result<(RootKey, bool), BootError> {
    let io = |source| BootError::KeyFile {
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(content) => {
            let content = zeroize::Zeroizing::new(content);
            Ok((RootKey::parse_hex(&content)?, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let key = RootKey::generate(&mut SysRng)?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(key.to_hex().as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
            Ok((key, true))
        }
        Err(e) => Err(io(e)),
    }
}

/// Checks `root` against the database (storing the check value on first start).
///
/// # Errors
/// [`CryptoError::WrongRootKey`] when the key does not match.
pub async fn verify_root(store: &dyn Store, root: &RootKey) -> Result<(), BootError> {
    if let Some(check) = store.meta(CHECK).await? {
        return Ok(root.verify(&check)?);
    }
    let check = root.check_value(&mut SysRng)?;
    if !store.init_meta(CHECK, &check).await? {
        // Another replica stored its check value first: it must match ours.
        let stored = store.meta(CHECK).await?.unwrap_or_default();
        root.verify(&stored)?;
    }
    Ok(())
}

/// On an empty database, creates `team` and its `owner` and returns the owner's first personal
/// key (to be shown once); `None` when the database already has a team.
///
/// # Errors
/// [`BootError`] if the database fails.
pub async fn bootstrap(
    store: &dyn Store,
    root: &RootKey,
    team: Label,
    owner: Label,
    now: Millis,
) -> Result<Option<ApiKey>, BootError> {
    let mut rng = SysRng;
    let team_id = random_id(&mut rng)?;
    let data_key = DataKey::generate(&mut rng)?;
    let key = ApiKey::generate(KeyKind::Personal, &mut rng).map_err(|_| CryptoError::Rng)?;
    let first = Bootstrap {
        team: TeamRow {
            id: team_id,
            name: team,
            data_key: root.wrap(team_id, &data_key, &mut rng)?,
            key_version: 1,
        },
        owner,
        key: NewKey {
            key_id: key.id(),
            digest: key.digest(),
            last4: key.last4().to_owned(),
            kind: KeyKind::Personal,
            capability: crate::core::perm::Capability::Manage,
            role_at_creation: None,
            identity: None,
            name: "bootstrap".to_owned(),
            created_at: now,
            expires_at: None,
        },
        at: now,
    };
    Ok(store.bootstrap(first).await?.map(|_| key))
}

/// Writes the bootstrap key to `path` with mode 0600.
///
/// # Errors
/// [`BootError::BootstrapFile`].
pub fn write_key_file(path: &Path, key: &ApiKey) -> Result<(), BootError> {
    let io = |source| BootError::BootstrapFile {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    writeln!(file, "{}", key.expose()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A random positive id (team and secret ids are bound into ciphertexts, so the server picks
/// them before the row exists).
///
/// # Errors
/// [`CryptoError::Rng`] if the RNG fails.
pub fn random_id(rng: &mut SysRng) -> Result<i64, CryptoError> {
    use rand_core::TryRng;
    let n = rng.try_next_u64().map_err(|_| CryptoError::Rng)?;
    Ok(i64::try_from(n >> 2).unwrap_or(1).max(1))
}
