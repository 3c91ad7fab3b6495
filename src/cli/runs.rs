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
    #[arg(long, value_parser = ["started", "exec", "refused", "finished"])]
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
            if id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(Error::Usage(
                    "that is not a run id: give one as `latch runs list` shows it (run_…)".into(),
                ));
            }
            let run: RunInfo = client
                .call::<_, ()>(Method::GET, &format!("v1/runs/{id}"), None)
                .await?;
            if global.json {
                context::print_json(&run)?;
            } else {
                context::out(&run_text(&run, context::now(), &context::local_time))?;
            }
        }
    }
    Ok(0)
}

/// `runs list`: id, started, who, trigger, environment, identity, status, exit (code or
/// signal), duration, masked count (DESIGN §11).
fn run_table(runs: &[RunInfo], now: i64) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
            vec![
                r.id.clone(),
                relative(r.started_at, now),
                who(&r.record["who"]),
                text(&r.record["trigger"]),
                text(&r.record["environment"]),
                text(&r.record["who"]["identity"]),
                r.status.clone(),
                exit_of(r.outcome.as_ref()),
                r.outcome
                    .as_ref()
                    .and_then(|o| o["duration_ms"].as_u64())
                    .map_or_else(|| "-".into(), duration),
                masked_total(r.outcome.as_ref()).to_string(),
            ]
        })
        .collect();
    context::table(
        &[
            "ID", "STARTED", "WHO", "TRIGGER", "ENV", "IDENTITY", "STATUS", "EXIT", "DURATION",
            "MASKED",
        ],
        &rows,
    )
}

/// `laptop (alice)`: the key's name and its user; a team key's name alone.
fn who(who: &serde_json::Value) -> String {
    let key = who["key_name"]
        .as_str()
        .or_else(|| who["key_id"].as_str())
        .unwrap_or("?");
    match who["user"].as_str() {
        Some(user) => format!("{key} ({user})"),
        None => key.to_owned(),
    }
}

/// `0`, `SIGTERM`, or `-` while the run is going (or its end was never reported).
fn exit_of(outcome: Option<&serde_json::Value>) -> String {
    let Some(outcome) = outcome else {
        return "-".into();
    };
    if let Some(code) = outcome["exit_code"].as_i64() {
        return code.to_string();
    }
    outcome["signal"].as_i64().map_or_else(
        || "-".into(),
        |n| {
            i32::try_from(n)
                .ok()
                .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
                .map_or_else(|| format!("signal {n}"), |s| s.as_str().to_owned())
        },
    )
}

/// Every masked region of a run.
fn masked_total(outcome: Option<&serde_json::Value>) -> u64 {
    outcome
        .and_then(|o| o["masked"].as_object())
        .map_or(0, |m| {
            m.values().filter_map(serde_json::Value::as_u64).sum()
        })
}

/// `350ms`, `4.2s`, `3m 04s`, `2h 05m`.
fn duration(ms: u64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{}.{}s", ms / 1_000, ms % 1_000 / 100),
        ms if ms < 3_600_000 => format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1_000),
        ms => format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// `runs show`: the record in words, with local times; missing names with a hint each
/// (DESIGN §11). `local` renders a time (a parameter so tests do not depend on the zone).
fn run_text(run: &RunInfo, now: i64, local: &dyn Fn(i64) -> String) -> String {
    use std::fmt::Write as _;
    let record = &run.record;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "{name:<12} {value}");
    };
    field("run", &run.id);
    let ended = match (&run.outcome, run.status.as_str()) {
        (Some(_), _) => format!(
            "{}, exit {}{}",
            run.status,
            exit_of(run.outcome.as_ref()),
            run.outcome
                .as_ref()
                .and_then(|o| o["duration_ms"].as_u64())
                .map_or_else(String::new, |ms| format!(", took {}", duration(ms)))
        ),
        (None, "started") => "started; its end has not been reported".into(),
        (None, "exec") => {
            "exec (--no-scrub: latch became the command, so no end is reported)".into()
        }
        (None, status) => status.to_owned(),
    };
    field("status", &ended);
    field(
        "started",
        &format!(
            "{} ({})",
            local(run.started_at),
            relative(run.started_at, now)
        ),
    );
    if let Some(at) = run.ended_at {
        field("ended", &local(at));
    }
    let mut by = who(&record["who"]);
    if let Some(id) = record["who"]["key_id"].as_str() {
        let _ = write!(by, ", key id {id}");
    }
    field("who", &by);
    field("identity", &text(&record["who"]["identity"]));
    field("trigger", &text(&record["trigger"]));
    field("environment", &text(&record["environment"]));
    field("allowlist", &allowlist_words(&record["allowlist"]));
    out.push_str(&delivered_text(run));
    out.push_str(&missing_text(&record["missing"]));
    let shadowed: Vec<String> = record["shadowed"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    if !shadowed.is_empty() {
        let _ = writeln!(
            out,
            "shadowed     {} (the user's personal secret replaced the team secret)",
            shadowed.join(", ")
        );
    }
    out
}

/// The delivered names of `run`, with scope, version and how often each was masked.
fn delivered_text(run: &RunInfo) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let record = &run.record;
    let mut delivered: Vec<(String, &str, u64)> = Vec::new();
    for scope in ["team", "personal"] {
        if let Some(names) = record["delivered"][scope].as_object() {
            for (name, version) in names {
                delivered.push((name.clone(), scope, version.as_u64().unwrap_or(0)));
            }
        }
    }
    delivered.sort();
    let masked = run
        .outcome
        .as_ref()
        .and_then(|o| o["masked"].as_object().cloned())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "delivered    {}",
        context::count(delivered.len(), "secret", "secrets")
    );
    for (name, scope, version) in &delivered {
        let times = masked
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let masked = if times == 0 {
            String::new()
        } else {
            format!(
                "  masked {}",
                context::count(
                    usize::try_from(times).unwrap_or(usize::MAX),
                    "time",
                    "times"
                )
            )
        };
        let listed = |list: &str| {
            record[list]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(name.as_str())))
        };
        let broker = if listed("brokered") {
            "  brokered (the command held a placeholder)"
        } else if listed("unbrokered") {
            "  its broker policy set aside (--no-broker)"
        } else {
            ""
        };
        let byok = if listed("byok") {
            byok_words(run, name)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {name:<30} {scope:<8} v{version}{masked}{broker}{byok}"
        );
    }
    if let Some(why) = record["byok_skipped"].as_str() {
        let _ = writeln!(
            out,
            "byok         the user's device keys were not used: {why}"
        );
    }
    out
}

/// What a run record says of a name the user's own device key stood in for (DESIGN §14).
fn byok_words(run: &RunInfo, name: &str) -> String {
    let fell_back = run
        .outcome
        .as_ref()
        .and_then(|o| o["byok_fallbacks"][name].as_u64())
        .unwrap_or(0);
    let fallback = if fell_back > 0 {
        format!(
            "; {} replayed with this secret (--fallback-to-team)",
            context::count(
                usize::try_from(fell_back).unwrap_or(usize::MAX),
                "request",
                "requests"
            )
        )
    } else if run.record["byok_fallback"] == serde_json::Value::Bool(true) {
        "; fallback to this secret allowed, not needed".to_owned()
    } else {
        String::new()
    };
    format!("  the user's own device key stood in (BYOK){fallback}")
}

/// The missing names, with the reason and a hint each.
fn missing_text(missing: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    let missing = missing.as_array().cloned().unwrap_or_default();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "missing      {}",
            context::count(missing.len(), "name", "names")
        );
        for m in &missing {
            let name = text(&m["name"]);
            match serde_json::from_value::<crate::core::resolve::MissingReason>(m["reason"].clone())
            {
                Ok(reason) => {
                    let _ = writeln!(out, "  {name:<30} {}", reason.words());
                    let _ = writeln!(out, "  {:<30} hint: {}", "", reason.hint());
                }
                Err(_) => {
                    let _ = writeln!(out, "  {name:<30} {}", text(&m["reason"]));
                }
            }
        }
    }
    out
}

/// Which allowlist applied, in words.
fn allowlist_words(source: &serde_json::Value) -> String {
    match source.as_str() {
        Some("run") => "the run's own list (--secrets)".into(),
        Some("environment") => "the environment's list".into(),
        Some("none") => "none: every secret in the pool".into(),
        Some(other) => other.into(),
        None => "-".into(),
    }
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
    context::out(&text)
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
            "team:       {}\nuser:       {}\nrole:       {}\nkey:        {} ({})\ncapability: {can}\nidentity:   {}\nbyok:       {}",
            me.team,
            me.user.as_deref().unwrap_or("(none: team key)"),
            me.role,
            me.key_id,
            me.key_kind,
            me.identity.as_deref().unwrap_or("-"),
            super::team::byok_words(me.byok)
        )?;
    }
    Ok(0)
}
