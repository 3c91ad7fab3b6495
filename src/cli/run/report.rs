//! What `latch run` says about a run besides the command's own output: the resolution on
//! stderr, the `--fail-on-leak` verdict, and the `--report FILE` object (DESIGN §6). Names and
//! counts only, never a value.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Ended;
use crate::api::Resolved;
use crate::cli::Error;
use crate::core::resolve::AllowlistSource;

/// What the launcher says of a resolution on stderr: names not delivered, an unnarrowed pool,
/// shadowed names.
pub(super) fn say_resolution(resolved: &Resolved) {
    for m in &resolved.missing {
        tracing::warn!("{} is not delivered: {}", m.name, m.reason.explained());
    }
    if resolved.allowlist == AllowlistSource::None {
        let n = resolved.secrets.len();
        tracing::warn!(
            "delivering all {n} {} in the pool: name an environment or --secrets to narrow it",
            if n == 1 { "secret" } else { "secrets" }
        );
    }
    for name in &resolved.shadowed {
        tracing::info!("your personal secret {name} overrides the team secret of that name");
    }
}

/// `--fail-on-leak` fired: names the secrets that were masked, and how often.
pub(super) fn leaked(masked: &BTreeMap<String, u64>) {
    let names: Vec<String> = masked
        .iter()
        .map(|(name, n)| format!("{name} ({n})"))
        .collect();
    tracing::error!(
        "--fail-on-leak: the command exited 0, but its output held {}, masked: {}",
        if names.len() == 1 {
            "a secret"
        } else {
            "secrets"
        },
        names.join(", ")
    );
}

/// What the run received, kept (names only) for `--report`.
pub(super) struct Summary {
    delivered: Vec<serde_json::Value>,
    byok: Vec<String>,
    missing: Vec<crate::core::resolve::Missing>,
    shadowed: Vec<String>,
    allowlist: AllowlistSource,
}

impl Summary {
    /// The delivered names, a device key's (BYOK, `byok`) marked with the scope `device`.
    pub(super) fn of(resolved: &Resolved, byok: &[super::device::Applied]) -> Self {
        Self {
            delivered: resolved
                .secrets
                .iter()
                .map(|s| {
                    // A device key is delivered as version 0 (no platform secret has one).
                    if s.version == 0 {
                        serde_json::json!({"name": s.name, "scope": "device"})
                    } else {
                        serde_json::json!({"name": s.name, "scope": s.scope, "version": s.version})
                    }
                })
                .collect(),
            byok: byok.iter().map(|a| a.name.clone()).collect(),
            missing: resolved.missing.clone(),
            shadowed: resolved.shadowed.clone(),
            allowlist: resolved.allowlist,
        }
    }

    /// The `--report` object (DESIGN §6): names only, never a value.
    pub(super) fn report(
        &self,
        run_id: &str,
        (code, signal, masked): &Ended,
        duration: Duration,
    ) -> serde_json::Value {
        serde_json::json!({
            "run_id": run_id,
            "delivered": self.delivered,
            "missing": self.missing,
            "shadowed": self.shadowed,
            "allowlist": self.allowlist,
            "exit_code": code,
            "signal": signal,
            "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "masked": masked,
            "brokered": [],
            "byok": self.byok,
        })
    }
}

/// `--report FILE`, opened before the run starts (an unwritable path is a configuration error
/// before anything happens, DESIGN §6 "options are checked first") and written when it ends: a
/// 0600 file beside the target, renamed over it, so the report is replaced whole or not at all.
/// Dropped unwritten (latch stopped before the command), the file beside it is removed.
pub(super) struct ReportFile {
    path: PathBuf,
    temporary: PathBuf,
    file: Option<File>,
}

impl ReportFile {
    /// Creates the file beside `path`.
    ///
    /// # Errors
    /// [`Error::Config`] when it cannot be created.
    pub(super) fn create(path: &Path) -> Result<Self, Error> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| Error::Config(format!("cannot write --report {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            temporary,
            file: Some(file),
        })
    }

    /// Writes `report` and puts it in place.
    ///
    /// # Errors
    /// [`Error::Config`] when it cannot be written.
    pub(super) fn commit(mut self, report: &serde_json::Value) -> Result<(), Error> {
        let fail = |e: std::io::Error| {
            Error::Config(format!(
                "cannot write --report {}: {e}",
                self.path.display()
            ))
        };
        let text =
            serde_json::to_string_pretty(report).map_err(|e| Error::Config(e.to_string()))?;
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        std::fs::rename(&self.temporary, &self.path).map_err(fail)
    }
}

impl Drop for ReportFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}
