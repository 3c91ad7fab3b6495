//! `latch runs` and `latch audit`: the run records and the audit log (never values).

use clap::{Args, Subcommand};
use reqwest::Method;

use super::{Error, Global, context, messages};
use crate::api::{AuditInfo, AuditPage, RunInfo, RunPage, Whoami};
use crate::core::perm::Capability;
use crate::core::time::relative;

/// Which runs `latch runs list` shows.
#[derive(Debug, Args)]
pub struct RunFilters {
    /// At most this many, newest first (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Only runs of this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only runs made with this key id.
    #[arg(long, value_name = "ID")]
    pub key: Option<String>,
    /// Only runs executing as this identity.
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// Only runs naming this environment.
    #[arg(long = "env", value_name = "NAME")]
    pub environment: Option<String>,
    /// Only runs in this state.
    #[arg(long, value_parser = ["started", "refused", "finished"])]
    pub status: Option<String>,
    /// Only runs started since: a duration ago (`1d`, `2h`) or Unix milliseconds.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub since: Option<i64>,
    /// Only runs started before: a duration ago or Unix milliseconds.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<i64>,
    /// The page after the one that printed this cursor.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

/// `latch runs ...`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first (builders see their own).
    List(RunFilters),
    /// Show one run: who, trigger, delivered and missing names, exit status, masked counts.
    Show {
        /// The run id.
        id: String,
    },
}

/// `latch audit`: the audit log, newest first (owners and admins).
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// At most this many events (1 to 500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Only actions starting with this (`secret.`, `auth.failed`).
    #[arg(long, value_name = "PREFIX")]
    pub action: Option<String>,
    /// Only events by this user, or by team keys acting on their behalf.
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["ok", "denied", "refused", "failed"])]
    pub outcome: Option<String>,
    /// Only events since: a duration ago (`1d`, `2h`) or Unix milliseconds.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub since: Option<i64>,
    /// Only events before: a duration ago or Unix milliseconds.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<i64>,
    /// The page after the one that printed this cursor.
    #[arg(long, value_name = "CURSOR", conflicts_with = "follow")]
    pub cursor: Option<String>,
    /// Keep printing new events as they happen, oldest first, until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `1d` (a duration ago) or Unix milliseconds.
fn parse_when(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let ago = crate::core::duration::parse_duration(text)
        .map_err(|e| format!("{e}; give a duration such as 1d or 2h, or Unix milliseconds"))?;
    Ok(context::now().saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)))
}

/// `path?name=value&…` with the given (present) parameters, URL-encoded.
fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Runs a `latch runs` command.
///
/// # Errors
/// [`Error`] from the client.
pub(crate) async fn run(command: RunsCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    match command {
        RunsCommand::List(f) => {
            let path = with_query(
                "v1/runs",
                &[
                    ("limit", Some(f.limit.to_string())),
                    ("user", f.user),
                    ("key", f.key),
                    ("identity", f.identity),
                    ("environment", f.environment),
                    ("status", f.status),
                    ("since", f.since.map(|t| t.to_string())),
                    ("until", f.until.map(|t| t.to_string())),
                    ("cursor", f.cursor),
                ],
            );
            let page: RunPage = client.call::<_, ()>(Method::GET, &path, None).await?;
            if global.json {
                context::print_json(&page)?;
            } else {
                context::out(&run_table(&page.runs, context::now()))?;
                if let Some(next) = &page.next_cursor {
                    messages::note(&format!("more runs: --cursor {next}"));
                }
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

fn run_table(runs: &[RunInfo], now: i64) -> String {
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
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
            vec![
                r.id.clone(),
                who,
                text(&r.record["trigger"]),
                text(&r.record["environment"]),
                text(&r.record["who"]["identity"]),
                r.status.clone(),
                delivered.to_string(),
                exit,
                relative(r.started_at, now),
            ]
        })
        .collect();
    context::table(
        &[
            "ID", "WHO", "TRIGGER", "ENV", "IDENTITY", "STATUS", "SECRETS", "EXIT", "STARTED",
        ],
        &rows,
    )
}

/// Runs `latch audit`.
///
/// # Errors
/// [`Error`] from the client.
pub(crate) async fn audit(args: AuditArgs, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    let path = |limit: u32, cursor: Option<String>| {
        with_query(
            "v1/audit",
            &[
                ("limit", Some(limit.to_string())),
                ("action", args.action.clone()),
                ("actor", args.actor.clone()),
                ("outcome", args.outcome.clone()),
                ("since", args.since.map(|t| t.to_string())),
                ("until", args.until.map(|t| t.to_string())),
                ("cursor", cursor),
            ],
        )
    };
    let page: AuditPage = client
        .call::<_, ()>(Method::GET, &path(args.limit, args.cursor.clone()), None)
        .await?;
    if !args.follow {
        if global.json {
            context::print_json(&page)?;
        } else {
            context::out(&audit_table(&page.events, context::now(), true))?;
            if let Some(next) = &page.next_cursor {
                messages::note(&format!("more events: --cursor {next}"));
            }
        }
        return Ok(0);
    }
    // Follow: the newest page, oldest first, then every new event as it comes.
    let mut last = page.events.first().map_or(0, |e| e.id);
    print_events(page.events.iter().rev(), global.json, true)?;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let page: AuditPage = client
            .call::<_, ()>(Method::GET, &path(500, None), None)
            .await?;
        let new: Vec<&AuditInfo> = page.events.iter().filter(|e| e.id > last).collect();
        if let Some(newest) = new.first() {
            last = newest.id;
        }
        print_events(new.into_iter().rev(), global.json, false)?;
    }
}

/// Prints events as they come (`--follow`): JSON lines, or table rows.
fn print_events<'a>(
    events: impl Iterator<Item = &'a AuditInfo>,
    json: bool,
    header: bool,
) -> Result<(), Error> {
    use std::io::Write as _;
    let events: Vec<AuditInfo> = events.cloned().collect();
    let text = if json {
        let mut out = String::new();
        for e in &events {
            out.push_str(&serde_json::to_string(e).map_err(|e| Error::Config(e.to_string()))?);
            out.push('\n');
        }
        out
    } else {
        audit_table(&events, context::now(), header)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).map_err(Error::Io)?;
    stdout.flush().map_err(Error::Io)
}

fn audit_table(events: &[AuditInfo], now: i64, header: bool) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let actor = match (&e.actor, &e.on_behalf_of, &e.key_id) {
                (Some(user), _, _) => user.clone(),
                (None, Some(creator), Some(key)) => format!("key {key} for {creator}"),
                (None, None, Some(key)) => format!("key {key}"),
                _ => "-".to_owned(),
            };
            vec![
                relative(e.at, now),
                actor,
                e.action.clone(),
                e.target.clone(),
                e.outcome.clone(),
                e.client_address.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let table = context::table(
        &["WHEN", "ACTOR", "ACTION", "TARGET", "OUTCOME", "CLIENT"],
        &rows,
    );
    if header {
        table
    } else {
        table.lines().skip(1).fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
    }
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
        context::outln!(
            "team:       {}\nuser:       {}\nrole:       {}\nkey:        {} ({})\ncapability: {can}\nidentity:   {}",
            me.team,
            me.user.as_deref().unwrap_or("(none: team key)"),
            me.role,
            me.key_id,
            me.key_kind,
            me.identity.as_deref().unwrap_or("-")
        )?;
    }
    Ok(0)
}
