//! `latch run --dry-run`: the names a run would receive, printed; nothing started (DESIGN §2
//! rule 8, §6).

use super::{RunArgs, post_runs, request_of};
use crate::api::{DryRunInfo, ResolveRun};
use crate::cli::{Error, Global, context};
use crate::client::ClientError;
use crate::core::exit;
use crate::launcher::signals::Signals;

/// `--dry-run`: the names a run would receive, printed; nothing started (DESIGN §6).
pub(super) fn dry_run(
    args: &RunArgs,
    global: &Global,
    key: &str,
    signals: &Signals,
) -> Result<u8, Error> {
    let request = ResolveRun {
        dry_run: true,
        ..request_of(args, None)?
    };
    let info = match post_runs::<DryRunInfo>(global, key, signals, &request) {
        Ok(info) => info,
        Err(Error::Client(ClientError::Api { code, problem, .. }))
            if code == "required_missing" =>
        {
            if global.json {
                context::print_json(&serde_json::json!({
                    "error": {"code": code, "message": problem.detail},
                    "missing": problem.missing,
                }))?;
            }
            for m in &problem.missing {
                tracing::error!(
                    "required secret {} would be missing: {}",
                    m.name,
                    m.reason.explained()
                );
            }
            return Ok(exit::DATA_ERROR);
        }
        Err(e) => return Err(e),
    };
    if global.json {
        context::print_json(&info)?;
    } else {
        context::out(&dry_run_text(&info))?;
    }
    Ok(exit::OK)
}

/// A dry run in words: what would be delivered, what is missing and why, what is shadowed.
fn dry_run_text(info: &DryRunInfo) -> String {
    use std::fmt::Write as _;
    let n = info.secrets.len();
    let mut out = format!(
        "would deliver {} (allowlist: {}, trigger: {}){}\n",
        context::count(n, "secret", "secrets"),
        info.allowlist,
        info.trigger,
        if n == 0 { "" } else { ":" }
    );
    for s in &info.secrets {
        let _ = writeln!(out, "  {:<32} {:<8} v{}", s.name, s.scope, s.version);
    }
    if !info.missing.is_empty() {
        out.push_str("missing:\n");
        for m in &info.missing {
            let _ = writeln!(
                out,
                "  {:<32} {}\n  {:<32} hint: {}",
                m.name.as_str(),
                m.reason.explained(),
                "",
                m.reason.hint()
            );
        }
    }
    if !info.shadowed.is_empty() {
        let _ = writeln!(
            out,
            "shadowed (your personal secret wins): {}",
            info.shadowed.join(", ")
        );
    }
    out
}
