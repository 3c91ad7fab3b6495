//! `latch env` and `latch identity` share one shape, so one command tree: a named list of
//! secret names (an environment's list is a run's default allowlist; an identity's team secrets
//! are reserved for runs executing as it).

use clap::Subcommand;
use reqwest::Method;

use super::{Error, Global, context, messages};
use crate::api::{DeletedList, ListInfo, PutList};
use crate::client::{Client, ClientError};
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
        /// Identities: go ahead when the change makes team secrets available to every run
        /// (no identity reserving them any more), without asking.
        #[arg(long)]
        force: bool,
    },
    /// Show one.
    Show {
        /// Its name.
        name: Label,
    },
    /// List them all.
    List,
    /// Delete one. Deleting an identity makes its reserved team secrets available to every
    /// run and revokes the keys bound to it: latch lists what and asks.
    Delete {
        /// Its name.
        name: Label,
        /// Do not ask (also to release secrets and revoke bound keys); required when there is
        /// no terminal.
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
    match command {
        ListCommand::Set {
            name,
            secrets,
            description,
            force,
        } => set(kind, &client, global, name, secrets, description, force).await?,
        ListCommand::Show { name } => {
            let info: ListInfo = client
                .call::<_, ()>(Method::GET, &format!("{}/{name}", kind.path()), None)
                .await?;
            if global.json {
                context::print_json(&info)?;
            } else {
                context::out(&show(&info, context::now()))?;
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
                context::out(&context::table(&["NAME", "SECRETS", "LAST UPDATED"], &rows))?;
            }
        }
        ListCommand::Delete { name, force } => delete(kind, &client, global, &name, force).await?,
    }
    Ok(0)
}

/// `set`: for an identity, a change that releases team secrets is shown and confirmed, then
/// sent again naming exactly what the platform said it releases.
async fn set(
    kind: Kind,
    client: &Client,
    global: &Global,
    name: Label,
    secrets: Vec<SecretName>,
    description: Option<String>,
    force: bool,
) -> Result<(), Error> {
    let noun = kind.noun();
    let path = format!("{}/{name}", kind.path());
    // Read it first: a write changes only what it names (the description stays unless given),
    // and If-Match makes a change made meanwhile by someone else a 412, not a silent overwrite.
    let current: Option<ListInfo> = match client.call::<_, ()>(Method::GET, &path, None).await {
        Ok(info) => Some(info),
        Err(ClientError::Api { status: 404, .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut body = PutList {
        secrets: Some(secrets),
        description: description
            .or_else(|| current.as_ref().map(|c| c.description.clone()))
            .unwrap_or_default(),
        release: Vec::new(),
    };
    let put = |body: &PutList| {
        let body = body.clone();
        let (path, revision) = (path.clone(), current.as_ref().map(|c| c.revision));
        async move {
            match revision {
                Some(revision) => {
                    client
                        .call_if_match::<ListInfo, _>(Method::PUT, &path, Some(&body), revision)
                        .await
                }
                None => {
                    client
                        .call::<ListInfo, _>(Method::PUT, &path, Some(&body))
                        .await
                }
            }
        }
    };
    let info: ListInfo = match put(&body).await {
        Err(ClientError::Api { code, problem, .. }) if code == "would_release" => {
            // Release exactly what the platform says, once the person agrees.
            let names = problem.would_release;
            messages::warning(&format!(
                "this change makes {} available to every run: no identity \
                 reserves {} any more",
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            ));
            context::confirm("go ahead?", force, "--force")?;
            body.release = names
                .iter()
                .map(|n| n.parse())
                .collect::<Result<_, _>>()
                .map_err(|e| Error::Config(format!("the platform named {e}")))?;
            put(&body).await?
        }
        other => other?,
    };
    if global.json {
        context::print_json(&info)?;
    } else {
        context::outln!(
            "set {noun} {} ({})",
            info.name,
            context::count(
                info.secrets.as_ref().map_or(0, Vec::len),
                "secret name",
                "secret names"
            )
        )?;
        if !body.release.is_empty() {
            context::outln!("released {}", joined(&body.release))?;
        }
    }
    Ok(())
}

/// `delete`: for an identity, what deleting it releases and revokes is shown and confirmed,
/// then sent again naming exactly that.
async fn delete(
    kind: Kind,
    client: &Client,
    global: &Global,
    name: &Label,
    force: bool,
) -> Result<(), Error> {
    let noun = kind.noun();
    context::confirm(&format!("delete {noun} {name}?"), force, "--force")?;
    let path = format!("{}/{name}", kind.path());
    let deleted: DeletedList = match client.call::<_, ()>(Method::DELETE, &path, None).await {
        Err(ClientError::Api { code, problem, .. })
            if code == "would_release" || code == "identity_in_use" =>
        {
            // What deleting it does, as the platform says it; then ask, and send
            // exactly those names back.
            if !problem.would_release.is_empty() {
                messages::warning(&format!(
                    "deleting {noun} {name} makes {} available to every run",
                    problem.would_release.join(", ")
                ));
            }
            if !problem.keys.is_empty() {
                let keys: Vec<String> = problem
                    .keys
                    .iter()
                    .map(|k| format!("{} ({})", k.name, k.id))
                    .collect();
                messages::warning(&format!(
                    "and revokes {} bound to it: {}",
                    context::count(keys.len(), "key", "keys"),
                    keys.join(", ")
                ));
            }
            context::confirm("go ahead?", force, "--force")?;
            let mut query = format!("{path}?force=true");
            if !problem.would_release.is_empty() {
                query.push_str("&release=");
                query.push_str(&problem.would_release.join(","));
            }
            client.call::<_, ()>(Method::DELETE, &query, None).await?
        }
        other => other?,
    };
    if global.json {
        context::print_json(&deleted)?;
    } else {
        context::outln!("deleted {noun} {name}")?;
        if !deleted.released.is_empty() {
            context::outln!("released {}", deleted.released.join(", "))?;
        }
        if !deleted.revoked_keys.is_empty() {
            let keys: Vec<String> = deleted
                .revoked_keys
                .iter()
                .map(|k| format!("{} ({})", k.name, k.id))
                .collect();
            context::outln!("revoked {}", keys.join(", "))?;
        }
    }
    Ok(())
}

fn joined(names: &[SecretName]) -> String {
    let names: Vec<&str> = names.iter().map(SecretName::as_str).collect();
    names.join(", ")
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
