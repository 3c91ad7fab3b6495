//! `latch env` and `latch identity` share one shape, so one command tree: a named list of
//! secret names (an environment's list is a run's default allowlist; an identity's team secrets
//! are reserved for runs executing as it).

use clap::Subcommand;
use reqwest::Method;

use super::{Error, Global, context};
use crate::api::{ListInfo, PutList};
use crate::core::name::{Label, SecretName};
use crate::core::time::relative;

/// Which kind of list, and its URL segment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Environment,
    Identity,
}

impl Kind {
    const fn path(self) -> &'static str {
        match self {
            Self::Environment => "v1/environments",
            Self::Identity => "v1/identities",
        }
    }
    const fn noun(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::Identity => "identity",
        }
    }
}

/// `latch env ...` and `latch identity ...`
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Create or replace one, with its secret names.
    Set {
        /// Its name.
        name: Label,
        /// Secret names, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        secrets: Vec<SecretName>,
        /// What it is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Show one.
    Show {
        /// Its name.
        name: Label,
    },
    /// List them all.
    List,
    /// Delete one.
    Delete {
        /// Its name.
        name: Label,
        /// Do not ask; required when there is no terminal.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the operation.
///
/// # Errors
/// [`Error`] from the client or a refused confirmation.
pub(crate) async fn run(kind: Kind, command: ListCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    let noun = kind.noun();
    match command {
        ListCommand::Set {
            name,
            secrets,
            description,
        } => {
            let body = PutList {
                secrets: Some(secrets),
                description: description.unwrap_or_default(),
            };
            let info: ListInfo = client
                .call(Method::PUT, &format!("{}/{name}", kind.path()), Some(&body))
                .await?;
            if global.json {
                context::print_json(&info)?;
            } else {
                println!(
                    "set {noun} {} ({} secret names)",
                    info.name,
                    info.secrets.as_ref().map_or(0, Vec::len)
                );
            }
        }
        ListCommand::Show { name } => {
            let info: ListInfo = client
                .call::<_, ()>(Method::GET, &format!("{}/{name}", kind.path()), None)
                .await?;
            if global.json {
                context::print_json(&info)?;
            } else {
                print!("{}", show(&info, context::now()));
            }
        }
        ListCommand::List => {
            let list: Vec<ListInfo> = client.call::<_, ()>(Method::GET, kind.path(), None).await?;
            if global.json {
                context::print_json(&list)?;
            } else {
                let now = context::now();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|l| vec![l.name.clone(), names(l), relative(l.updated_at, now)])
                    .collect();
                print!(
                    "{}",
                    context::table(&["NAME", "SECRETS", "LAST UPDATED"], &rows)
                );
            }
        }
        ListCommand::Delete { name, force } => {
            context::confirm(&format!("delete {noun} {name}?"), force, "--force")?;
            client
                .call_empty::<()>(Method::DELETE, &format!("{}/{name}", kind.path()), None)
                .await?;
            if !global.json {
                println!("deleted {noun} {name}");
            }
        }
    }
    Ok(0)
}

fn names(list: &ListInfo) -> String {
    match &list.secrets {
        None => "(no list: every secret)".to_owned(),
        Some(s) if s.is_empty() => "(none)".to_owned(),
        Some(s) => s.join(","),
    }
}

fn show(list: &ListInfo, now: i64) -> String {
    format!(
        "name:         {}\ndescription:  {}\nsecrets:      {}\nlast updated: {}\n",
        list.name,
        list.description,
        names(list),
        relative(list.updated_at, now)
    )
}
