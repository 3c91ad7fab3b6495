//! `--secret-file NAME` (DESIGN §6 "File secrets"): each value in a 0600 file inside a private
//! 0700 directory, in `/dev/shm` when it is there (memory, never disk), removed when the run
//! ends whichever way it ends: [`SecretDir`] removes it on drop, which also runs while a panic
//! unwinds, and the launcher drops it before exiting.

use std::fmt::Write as _;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand_core::TryRng;

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
        let path = base.join(format!("latch-run-{name}"));
        DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
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
