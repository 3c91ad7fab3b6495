//! `latch runs` and `latch audit`: the run records and the audit log (never values).

use clap::{Args, Subcommand};
use reqwest::Method;

use super::{Error, Global, context};
use crate::api::{AuditInfo, RunInfo, Whoami};
use crate::core::perm::Capability;
use crate::core::time::relative;

/// `latch runs ...`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs (builders see their own).
    List {
        /// At most this many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one run: who, trigger, delivered and missing names, exit status, masked counts.
    Show {
        /// The run id.
        id: String,
    },
}

/// `latch audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Runs a `latch runs` command.
///
/// # Errors
/// [`Error`] from the client.
pub(crate) async fn run(command: RunsCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    match command {
        RunsCommand::List { limit } => {
            let runs: Vec<RunInfo> = client
                .call::<_, ()>(Method::GET, &format!("v1/runs?limit={limit}"), None)
                .await?;
            if global.json {
                context::print_json(&runs)?;
            } else {
                let now = context::now();
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        let who = r.record["who"]["user"].as_str().map_or_else(
                            || format!("key {}", r.record["who"]["key_id"].as_str().unwrap_or("?")),
                            ToOwned::to_owned,
                        );
                        let delivered: usize = ["team", "personal"]
                            .iter()
                            .filter_map(|scope| r.record["delivered"][scope].as_object())
                            .map(serde_json::Map::len)
                            .sum();
                        let exit = r
                            .outcome
                            .as_ref()
                            .and_then(|o| o["exit_code"].as_i64())
                            .map_or_else(|| "-".into(), |c| c.to_string());
                        vec![
                            r.id.clone(),
                            who,
                            r.record["trigger"].as_str().unwrap_or("-").to_owned(),
                            r.status.clone(),
                            delivered.to_string(),
                            exit,
                            relative(r.started_at, now),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    context::table(
                        &[
                            "ID", "WHO", "TRIGGER", "STATUS", "SECRETS", "EXIT", "STARTED"
                        ],
                        &rows
                    )
                );
            }
        }
        RunsCommand::Show { id } => {
            let run: RunInfo = client
                .call::<_, ()>(Method::GET, &format!("v1/runs/{id}"), None)
                .await?;
            context::print_json(&run)?;
        }
    }
    Ok(0)
}

/// Runs `latch audit`.
///
/// # Errors
/// [`Error`] from the client.
pub(crate) async fn audit(args: AuditArgs, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    let events: Vec<AuditInfo> = client
        .call::<_, ()>(Method::GET, &format!("v1/audit?limit={}", args.limit), None)
        .await?;
    if global.json {
        context::print_json(&events)?;
    } else {
        let now = context::now();
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    relative(e.at, now),
                    e.actor.clone().unwrap_or_else(|| "-".into()),
                    e.action.clone(),
                    e.target.clone(),
                    e.outcome.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            context::table(&["WHEN", "ACTOR", "ACTION", "TARGET", "OUTCOME"], &rows)
        );
    }
    Ok(0)
}

/// Runs `latch whoami`.
///
/// # Errors
/// [`Error`] from the client.
pub(crate) async fn whoami(global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    let me: Whoami = client.call::<_, ()>(Method::GET, "v1/whoami", None).await?;
    if global.json {
        context::print_json(&me)?;
    } else {
        let can = match me.capability {
            Capability::Run => "run (start runs, finish and read its own runs)",
            Capability::Manage => "manage (everything the role allows)",
        };
        println!(
            "team:       {}\nuser:       {}\nrole:       {}\nkey:        {} ({})\ncapability: {can}\nidentity:   {}",
            me.team,
            me.user.as_deref().unwrap_or("(none: team key)"),
            me.role,
            me.key_id,
            me.key_kind,
            me.identity.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}
