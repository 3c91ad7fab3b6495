//! `--secret-file NAME` (DESIGN §6 "File secrets"): each value in a 0600 file inside a private
//! 0700 directory, in `/dev/shm` when it is there (memory, never disk), removed when the run
//! ends whichever way it ends: [`SecretDir`] removes it on drop, which also runs while a panic
//! unwinds, and the launcher drops it before exiting.

use std::fmt::Write as _;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand_core::TryRng;

/// How every secret directory's name starts: `latch-run-<pid>-<random>`.
const PREFIX: &str = "latch-run-";

/// The private directory of one run's file secrets.
#[derive(Debug)]
pub struct SecretDir {
    path: PathBuf,
}

impl SecretDir {
    /// Creates a fresh 0700 directory with a random name, in `/dev/shm` when it is a writable
    /// directory, otherwise in the temporary directory.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn create() -> io::Result<Self> {
        let shm = Path::new("/dev/shm");
        let base =
            if shm.is_dir() && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
        let mut random = [0u8; 12];
        getrandom::SysRng
            .try_fill_bytes(&mut random)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let name: String = random.iter().fold(String::new(), |mut name, b| {
            let _ = write!(name, "{b:02x}");
            name
        });
        // The owner's pid in the name lets a later run tell a left-over directory (its latch
        // was killed: SIGKILL, the OOM killer) from a live one.
        let path = base.join(format!("{PREFIX}{}-{name}", std::process::id()));
        DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
    }

    /// Removes the secret directories this user's killed launchers left behind (DESIGN §6):
    /// those whose owning process no longer exists. Returns how many were removed.
    #[must_use]
    pub fn sweep_stale() -> usize {
        let me = nix::unistd::geteuid().as_raw();
        let mut removed = 0;
        for base in [Path::new("/dev/shm").to_path_buf(), std::env::temp_dir()] {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix(PREFIX))
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<i32>().ok())
                else {
                    continue;
                };
                // Only our own directories (never through a link), of processes that are gone.
                let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    == Err(nix::errno::Errno::ESRCH);
                if meta.is_dir()
                    && meta.uid() == me
                    && gone
                    && std::fs::remove_dir_all(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Writes `value` to a new 0600 file named `name` and returns its path.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn write(&self, name: &str, value: &[u8]) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)?;
        file.write_all(value)?;
        Ok(path)
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(
                "cannot remove the secret files in {}: {e}; remove it by hand",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_removed_on_drop() {
        let dir = SecretDir::create().expect("creates");
        let path = dir.write("TOKEN", b"value-1234").expect("writes");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).expect("reads"), b"value-1234");
        assert!(dir.write("TOKEN", b"again").is_err(), "never overwrites");
        let root = dir.path().to_path_buf();
        drop(dir);
        assert!(!root.exists());
    }
}
