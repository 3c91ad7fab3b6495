//! `latch env` and `latch identity` share one shape: a named list of secret names.

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

/// What to do with a list.
#[derive(Debug)]
pub(crate) enum Op {
    Set {
        name: Label,
        secrets: Vec<SecretName>,
        description: Option<String>,
    },
    Show {
        name: Label,
    },
    List,
    Delete {
        name: Label,
        force: bool,
    },
}

/// Runs the operation.
///
/// # Errors
/// [`Error`] from the client or a refused confirmation.
pub(crate) async fn run(kind: Kind, op: Op, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    let noun = kind.noun();
    match op {
        Op::Set {
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
        Op::Show { name } => {
            let info: ListInfo = client
                .call::<_, ()>(Method::GET, &format!("{}/{name}", kind.path()), None)
                .await?;
            if global.json {
                context::print_json(&info)?;
            } else {
                print!("{}", show(&info, context::now()));
            }
        }
        Op::List => {
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
        Op::Delete { name, force } => {
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
