//! The device's BYOK store (DESIGN §14 "Store"): `$XDG_CONFIG_HOME/latch/byok.v1` (0600, in a
//! 0700 directory), sealed with XChaCha20-Poly1305 under a random device key that lives in the
//! OS keyring — or, with `--insecure-store`, in `byok.key` beside it (0600).
//!
//! One keyring entry for the device key, not one per provider: the keyring cannot list its
//! entries portably (`list` needs to), and provider keys never cross the keyring's IPC.
//! The `keyring` crate is built with a real store for each OS (Secret Service over zbus on
//! Linux, Keychain, Credential Manager) and never its in-memory mock: on another OS there is no
//! keyring, and every write is read back through a new entry, so a store that silently keeps
//! nothing is refused instead of trusted.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::core::byok::{ByokError, StoreContents};
use crate::core::crypto::{CryptoError, DeviceKey};

/// The store's file name.
const STORE_FILE: &str = "byok.v1";
/// The device key's file with `--insecure-store`.
const KEY_FILE: &str = "byok.key";
/// The keyring service.
const SERVICE: &str = "latch";

/// Why the store cannot be used. Never holds a key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No home or config directory to keep it in.
    #[error("no place for the BYOK store: set HOME or XDG_CONFIG_HOME")]
    NoHome,
    /// The OS keyring cannot be used.
    #[error("{0}")]
    Keyring(String),
    /// A file could not be read or written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store does not open with its key.
    #[error(
        "the BYOK store {path} does not open with its device key ({source}): it was altered, or \
         the key in the keyring was replaced. `latch byok remove --all` starts over"
    )]
    Sealed {
        /// The store.
        path: PathBuf,
        /// Why.
        source: CryptoError,
    },
    /// The key file is not a key.
    #[error(
        "{path} is not a BYOK device key (64 hex characters); `latch byok remove --all` starts over"
    )]
    KeyFile {
        /// The key file.
        path: PathBuf,
    },
    /// The store's plaintext does not parse.
    #[error("the BYOK store {path}: {source}")]
    Format {
        /// The store.
        path: PathBuf,
        /// Why.
        source: ByokError,
    },
}

/// Where the device key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    /// The OS keyring.
    Keyring,
    /// A 0600 file beside the store (`--insecure-store`).
    File(PathBuf),
}

/// The store's directory.
#[derive(Debug, Clone)]
pub struct Location {
    dir: PathBuf,
}

impl Location {
    /// `$XDG_CONFIG_HOME/latch`, else `$HOME/.config/latch`.
    ///
    /// # Errors
    /// [`StoreError::NoHome`].
    pub fn from_env() -> Result<Self, StoreError> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|d| !d.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })
            .ok_or(StoreError::NoHome)?;
        Ok(Self {
            dir: base.join("latch"),
        })
    }

    /// The store file.
    #[must_use]
    pub fn store_path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    /// The key file of an insecure store.
    #[must_use]
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// The keyring entry's user name: one per store directory, so two stores (two HOMEs, a
    /// test's) never share a key.
    fn keyring_user(&self) -> String {
        format!("byok-device-key {}", self.dir.display())
    }

    /// Where an existing store keeps its key: the key file if there is one, else the keyring.
    fn place(&self) -> KeyPlace {
        let file = self.key_path();
        if file.exists() {
            KeyPlace::File(file)
        } else {
            KeyPlace::Keyring
        }
    }
}

/// An open store: its keys in memory (wiped on drop) and where its device key lives.
#[derive(Debug)]
pub struct Store {
    location: Location,
    place: KeyPlace,
    key: DeviceKey,
    /// The keys.
    pub contents: StoreContents,
}

impl Store {
    /// Opens the store, or `None` when there is none (no key was ever set).
    ///
    /// # Errors
    /// [`StoreError`]: the keyring, the files, or a store that does not open.
    pub fn open(location: &Location) -> Result<Option<Self>, StoreError> {
        let path = location.store_path();
        let sealed = match std::fs::read(&path) {
            Ok(sealed) => sealed,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    what: "read",
                    path,
                    source,
                });
            }
        };
        warn_if_open(&path);
        let place = location.place();
        let key = match &place {
            KeyPlace::File(file) => read_key_file(file)?,
            KeyPlace::Keyring => keyring_get(location)?,
        };
        let plain = key.open(&sealed).map_err(|source| StoreError::Sealed {
            path: path.clone(),
            source,
        })?;
        let contents =
            StoreContents::parse(&plain).map_err(|source| StoreError::Format { path, source })?;
        Ok(Some(Self {
            location: location.clone(),
            place,
            key,
            contents,
        }))
    }

    /// Opens the store, or makes a new empty one (its device key in the keyring, or in a file
    /// with `insecure`) that [`Store::save`] writes.
    ///
    /// # Errors
    /// As [`Store::open`]; the keyring refusing the new key.
    pub fn open_or_create(location: &Location, insecure: bool) -> Result<Self, StoreError> {
        if let Some(store) = Self::open(location)? {
            return Ok(store);
        }
        let key =
            DeviceKey::generate(&mut getrandom::SysRng).map_err(|source| StoreError::Sealed {
                path: location.store_path(),
                source,
            })?;
        make_dir(&location.dir)?;
        let place = if insecure {
            let file = location.key_path();
            write_private(&file, key.to_hex().as_bytes())?;
            KeyPlace::File(file)
        } else {
            keyring_set(location, &key)?;
            KeyPlace::Keyring
        };
        Ok(Self {
            location: location.clone(),
            place,
            key,
            contents: StoreContents::default(),
        })
    }

    /// Where the device key lives.
    #[must_use]
    pub const fn place(&self) -> &KeyPlace {
        &self.place
    }

    /// The store file.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.location.store_path()
    }

    /// Writes the store (sealed, replaced whole through a 0600 temporary file). A store left
    /// with no key is removed with its device key instead: nothing stays behind.
    ///
    /// # Errors
    /// [`StoreError`] for the files or the keyring.
    pub fn save(&self) -> Result<(), StoreError> {
        if self.contents.keys.is_empty() {
            return remove_all(&self.location);
        }
        let plain = self.contents.to_plain();
        let sealed = self
            .key
            .seal(&plain, &mut getrandom::SysRng)
            .map_err(|source| StoreError::Sealed {
                path: self.path(),
                source,
            })?;
        drop(plain);
        write_private(&self.path(), &sealed)
    }
}

/// Removes the store, its key file and its keyring entry; says whether anything was there.
///
/// # Errors
/// [`StoreError`] for a file that exists and cannot be removed.
pub fn remove_all(location: &Location) -> Result<(), StoreError> {
    for path in [location.store_path(), location.key_path()] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    what: "remove",
                    path,
                    source,
                });
            }
        }
    }
    keyring_delete(location);
    Ok(())
}

/// A store another user may read is still sealed, but says so.
fn warn_if_open(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the BYOK store {} is readable by others (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

fn make_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io {
            what: "create the directory",
            path: dir.to_owned(),
            source,
        })
}

/// Writes `bytes` to `path` whole: a 0600 temporary file in the same directory, synced, then
/// renamed over it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    make_dir(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(|| "byok".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let fail = |what, source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail("write", e));
    }
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        fail("replace", e)
    })
}

fn read_key_file(path: &Path) -> Result<DeviceKey, StoreError> {
    let text = Zeroizing::new(std::fs::read(path).map_err(|source| StoreError::Io {
        what: "read",
        path: path.to_owned(),
        source,
    })?);
    DeviceKey::parse_hex(&text).map_err(|_| StoreError::KeyFile {
        path: path.to_owned(),
    })
}

/// How long latch waits for the keyring: long enough to type a password into an unlock prompt,
/// short enough that a keyring that never answers does not hang a run (gh waits 30 s too).
const KEYRING_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a keyring call on a thread of its own, waiting at most [`KEYRING_WAIT`]: the Secret
/// Service client drives D-Bus on a runtime of its own, which cannot start inside another one
/// (the CLI's). A call that does not answer in time is left to end on its own.
fn on_thread<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, keyring::Error> + Send + 'static,
) -> Result<T, keyring::Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("latch-keyring".into())
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| keyring::Error::PlatformFailure(Box::new(e)))?;
    rx.recv_timeout(KEYRING_WAIT).unwrap_or_else(|e| {
        Err(keyring::Error::PlatformFailure(
            match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => {
                    "it did not answer within 30 s (a locked keyring waiting for its password?)"
                }
                std::sync::mpsc::RecvTimeoutError::Disconnected => "the keyring client failed",
            }
            .into(),
        ))
    })
}

/// The keyring's failure in words, with what to do about it.
fn keyring_words(e: &keyring::Error) -> String {
    let cause = match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            inner.to_string()
        }
        other => other.to_string(),
    };
    let hint = if cfg!(target_os = "linux") {
        "latch keeps the BYOK store's key in the Secret Service (GNOME Keyring, KWallet) of \
         your D-Bus session. On a machine without one, start one \
         (`dbus-run-session -- sh -c 'echo PASSWORD | gnome-keyring-daemon --unlock; latch …'`), \
         or pass --insecure-store to keep the key in a 0600 file beside the store"
    } else {
        "pass --insecure-store to keep the key in a 0600 file beside the store"
    };
    format!("the OS keyring cannot be used ({cause}). {hint}")
}

fn entry(location: &Location) -> Result<keyring::Entry, keyring::Error> {
    if !cfg!(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "windows"
    )) {
        // The crate's default elsewhere is an in-memory mock that keeps nothing.
        return Err(keyring::Error::PlatformFailure(
            "no keyring is supported on this operating system".into(),
        ));
    }
    keyring::Entry::new(SERVICE, &location.keyring_user())
}

fn keyring_set(location: &Location, key: &DeviceKey) -> Result<(), StoreError> {
    let location = location.clone();
    let hex = key.to_hex();
    let wrote = on_thread(move || {
        entry(&location)?.set_password(hex.trim_end())?;
        // Read back through a new entry: a store that keeps nothing is refused here.
        let back = Zeroizing::new(entry(&location)?.get_password()?);
        if back.as_str() == hex.trim_end() {
            Ok(())
        } else {
            Err(keyring::Error::PlatformFailure(
                "the keyring did not keep what was written".into(),
            ))
        }
    });
    wrote.map_err(|e| StoreError::Keyring(keyring_words(&e)))
}

fn keyring_get(location: &Location) -> Result<DeviceKey, StoreError> {
    let owned = location.clone();
    let got = on_thread(move || entry(&owned)?.get_password().map(Zeroizing::new));
    match got {
        Ok(hex) => DeviceKey::parse_hex(hex.as_bytes()).map_err(|_| {
            StoreError::Keyring(
                "the BYOK store's key in the OS keyring is not a latch device key; `latch byok remove --all` starts over".into(),
            )
        }),
        Err(keyring::Error::NoEntry) => Err(StoreError::Keyring(format!(
            "the BYOK store {} exists but its key is not in this session's OS keyring (another \
             login, or the keyring was reset); `latch byok remove --all` starts over",
            location.store_path().display()
        ))),
        Err(e) => Err(StoreError::Keyring(keyring_words(&e))),
    }
}

fn keyring_delete(location: &Location) {
    let owned = location.clone();
    let _ = on_thread(move || entry(&owned)?.delete_credential());
}
