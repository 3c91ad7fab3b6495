//! `latch env` and `latch identity` share one shape, so one command tree: a named list of
//! secret names (an environment's list is a run's default allowlist; an identity's team secrets
//! are reserved for runs executing as it).

use clap::Subcommand;
use reqwest::Method;

use super::{Error, Global, context, messages};
use crate::api::{DeletedList, ListInfo, PutList, SecretInfo};
use crate::client::{Client, ClientError};
use crate::core::name::{Label, SecretName};
use crate::core::resolve::Scope;
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
    /// Create one, or change what you name of it: the secret names with --secrets (or, for
    /// an environment, --all-secrets), the description with --description ('' clears it).
    /// What you do not name is kept.
    Set {
        /// Its name.
        name: Label,
        /// Secret names, comma-separated (`''` for none at all).
        #[arg(long, value_name = "A,B", value_parser = parse_names)]
        secrets: Option<Names>,
        /// Environments: no list, so a run that names it may receive every secret in its pool.
        #[arg(long, conflicts_with = "secrets")]
        all_secrets: bool,
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
            all_secrets,
            description,
            force,
        } => {
            let secrets = match (secrets, all_secrets) {
                (Some(Names(names)), _) => Change::To(Some(names)),
                (None, true) => match kind {
                    Kind::Environment => Change::To(None),
                    Kind::Identity => {
                        return Err(Error::Usage(
                            "--all-secrets is for environments: an identity reserves the team secrets it names".into(),
                        ));
                    }
                },
                (None, false) => Change::Keep,
            };
            set(kind, &client, global, name, secrets, description, force).await?;
        }
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

/// Secret names as `--secrets` takes them: comma-separated, `''` for an empty list.
#[derive(Debug, Clone)]
pub struct Names(Vec<SecretName>);

fn parse_names(text: &str) -> Result<Names, crate::core::name::NameError> {
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::parse::<SecretName>)
        .collect::<Result<_, _>>()
        .map(Names)
}

/// What `set` does to the list of names.
enum Change {
    /// Keep the current list.
    Keep,
    /// Replace it (`None`: no list).
    To(Option<Vec<SecretName>>),
}

/// `set`: changes only what it is given (DESIGN §11). For an identity, a change that releases
/// team secrets is shown and confirmed, then sent again naming exactly what the platform said it
/// releases.
async fn set(
    kind: Kind,
    client: &Client,
    global: &Global,
    name: Label,
    secrets: Change,
    description: Option<String>,
    force: bool,
) -> Result<(), Error> {
    let noun = kind.noun();
    let path = format!("{}/{name}", kind.path());
    // Read it first: a write changes only what it names, and If-Match makes a change made
    // meanwhile by someone else a 412, not a silent overwrite.
    let current: Option<ListInfo> = match client.call::<_, ()>(Method::GET, &path, None).await {
        Ok(info) => Some(info),
        Err(ClientError::Api { status: 404, .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let given = matches!(secrets, Change::To(_));
    let secrets = match (secrets, &current) {
        (Change::To(list), _) => list,
        (Change::Keep, Some(current)) => current
            .secrets
            .as_ref()
            .map(|names| names.iter().map(|n| n.parse()).collect::<Result<_, _>>())
            .transpose()
            .map_err(|e| Error::Config(format!("the platform named {e}")))?,
        (Change::Keep, None) => {
            let all = match kind {
                Kind::Environment => " or --all-secrets",
                Kind::Identity => "",
            };
            return Err(Error::Usage(format!(
                "{noun} {name} does not exist yet: name its secrets with --secrets A,B{all}"
            )));
        }
    };
    if let (true, Some(names)) = (given, &secrets) {
        warn_unknown(kind, client, names).await?;
    }
    let mut body = PutList {
        secrets,
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
        let names = info.secrets.as_ref().map_or_else(
            || "no list: every secret in a run's pool".to_owned(),
            |names| context::count(names.len(), "secret name", "secret names"),
        );
        context::outln!("set {noun} {} ({names})", info.name)?;
        if !body.release.is_empty() {
            context::outln!("released {}", joined(&body.release))?;
        }
    }
    Ok(())
}

/// Warns about names that match no secret the caller can see (the write still goes ahead: a
/// run reports such a name missing). An identity reserves team secrets only.
async fn warn_unknown(kind: Kind, client: &Client, names: &[SecretName]) -> Result<(), Error> {
    let visible: Vec<SecretInfo> = client
        .call::<_, ()>(Method::GET, "v1/secrets", None)
        .await?;
    let unknown: Vec<&str> = names
        .iter()
        .map(SecretName::as_str)
        .filter(|name| {
            !visible.iter().any(|s| {
                s.name == *name && (matches!(kind, Kind::Environment) || s.scope == Scope::Team)
            })
        })
        .collect();
    if !unknown.is_empty() {
        let what = match kind {
            Kind::Environment => "no secret you can see",
            Kind::Identity => "no team secret",
        };
        messages::warning(&format!(
            "{} {} {what}: {} anyway, and a run will report {} missing",
            unknown.join(", "),
            if unknown.len() == 1 {
                "matches"
            } else {
                "match"
            },
            if unknown.len() == 1 {
                "it is listed"
            } else {
                "they are listed"
            },
            if unknown.len() == 1 { "it" } else { "them" },
        ));
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
