//! `latch secret`: write-only secrets (DESIGN §10). A value is never accepted as a plain
//! argument: it comes from a file, stdin (`-`) or a no-echo prompt.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::{Error, Global, context};
use crate::api::{CreateSecret, SealKey, Sealed, SecretInfo, UpdateSecret};
use crate::client::{Client, ClientError};
use crate::core::broker::{Policy, PolicySpec};
use crate::core::name::SecretName;
use crate::core::resolve::Scope;
use crate::core::seal::{self, Target};
use crate::core::time::relative;
use crate::core::value::SecretValue;

/// Which scope a secret command acts on.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArg {
    /// The team scope (owners and admins).
    #[arg(long)]
    pub team: bool,
    /// Your personal scope.
    #[arg(long)]
    pub personal: bool,
}

/// A secret's broker policy on the command line (DESIGN §13).
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Broker the secret in every run: the command gets a placeholder, and latch puts the value
    /// only into requests to these hosts. A preset (openai, anthropic, gemini, github) or
    /// hosts (`api.example.com,uploads.example.com:8443`).
    #[arg(long, value_name = "PRESET|HOST,...")]
    pub broker: Option<String>,
    /// The header the value goes into: authorization-bearer (the default, or the preset's),
    /// x-api-key, x-api-key-or-bearer, x-goog-api-key, basic-password.
    #[arg(long, value_name = "FORM", requires = "broker")]
    pub broker_header: Option<String>,
    /// Broker it even in runs that pass --no-broker for it.
    #[arg(long, requires = "broker")]
    pub broker_always: bool,
}

impl BrokerArgs {
    /// The policy the flags give, checked here so that a mistyped host fails before any
    /// request.
    /// Refuses, before any request, a value no placeholder could stand in for (every run
    /// that receives it would refuse it).
    fn check_value(policy: Option<&PolicySpec>, value: &[u8]) -> Result<(), Error> {
        match policy {
            Some(_) => crate::core::broker::check_value(value)
                .map(|_| ())
                .map_err(|e| Error::Usage(format!("--broker: the secret cannot be brokered: {e}"))),
            None => Ok(()),
        }
    }

    fn spec(&self) -> Result<Option<PolicySpec>, Error> {
        self.broker
            .as_deref()
            .map(|words| {
                Policy::from_words(words, self.broker_header.as_deref(), self.broker_always)
                    .map(|p| p.spec())
                    .map_err(|e| Error::Usage(format!("--broker: {e}")))
            })
            .transpose()
    }
}

/// `latch secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a secret. Without --value-file the value is read from a no-echo prompt.
    Create {
        #[command(flatten)]
        scope: ScopeArg,
        /// The secret's name: the environment variable it is injected as.
        name: SecretName,
        /// Read the value from this file, or from stdin with `-`, byte for byte.
        #[arg(long, value_name = "PATH|-")]
        value_file: Option<PathBuf>,
        /// Remove trailing whitespace (such as the newline an editor or `echo` adds) from the
        /// value read.
        #[arg(long)]
        trim: bool,
        /// What the secret is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Update a secret's value and/or description.
    Update {
        #[command(flatten)]
        scope: ScopeArg,
        /// The secret's name.
        name: SecretName,
        #[command(flatten)]
        change: Change,
    },
    /// Delete a secret (asks for confirmation on a terminal).
    Delete {
        #[command(flatten)]
        scope: ScopeArg,
        /// The secret's name.
        name: SecretName,
        /// Do not ask; required when there is no terminal.
        #[arg(long)]
        force: bool,
    },
    /// List secret metadata: name, scope, description, version, last updated (never values).
    List {
        /// Include every member's personal secret names (owners and admins).
        #[arg(long)]
        all: bool,
    },
}

impl ScopeArg {
    fn scope(&self) -> Scope {
        if self.team {
            Scope::Team
        } else {
            Scope::Personal
        }
    }
}

/// Runs a `latch secret` command.
///
/// # Errors
/// [`Error`] from the client, the value input or a refused confirmation.
pub(crate) async fn run(command: SecretCommand, global: &Global) -> Result<u8, Error> {
    let client = context::client(global)?;
    match command {
        SecretCommand::Create {
            scope,
            name,
            value_file,
            trim,
            description,
            broker,
        } => {
            let broker = broker.spec()?;
            let value = context::read_value(value_file.as_deref(), name.as_str(), trim)?;
            BrokerArgs::check_value(broker.as_ref(), value.expose().as_bytes())?;
            let sealed_value = sealed(&client, scope.scope(), &name, &value).await?;
            drop(value);
            let body = CreateSecret {
                scope: scope.scope(),
                name: name.clone(),
                value: None,
                sealed_value: Some(sealed_value),
                description: description.unwrap_or_default(),
                broker,
            };
            let info: SecretInfo = client.call(Method::POST, "v1/secrets", Some(&body)).await?;
            drop(body);
            say_written("created", &info, global)?;
        }
        SecretCommand::Update {
            scope,
            name,
            change,
        } => {
            update(&client, global, scope.scope(), &name, change).await?;
        }
        SecretCommand::Delete { scope, name, force } => {
            let scope = scope.scope();
            context::confirm(&format!("delete {scope} secret {name}?"), force, "--force")?;
            client
                .call_empty::<()>(Method::DELETE, &format!("v1/secrets/{scope}/{name}"), None)
                .await?;
            if !global.json {
                context::outln!("deleted {scope} secret {name}")?;
            }
        }
        SecretCommand::List { all } => {
            let path = if all {
                "v1/secrets?all=true"
            } else {
                "v1/secrets"
            };
            let list: Vec<SecretInfo> = client.call::<_, ()>(Method::GET, path, None).await?;
            if global.json {
                context::print_json(&list)?;
            } else {
                context::out(&secret_table(&list, all, context::now()))?;
            }
        }
    }
    Ok(0)
}

/// What `latch secret update` changes: only what its flags name.
#[derive(Debug, Args)]
pub struct Change {
    /// Prompt (no echo) for a new value.
    #[arg(long, conflicts_with = "value_file")]
    value: bool,
    /// Read the new value from this file, or from stdin with `-`, byte for byte.
    #[arg(long, value_name = "PATH|-")]
    value_file: Option<PathBuf>,
    /// Remove trailing whitespace from the new value read.
    #[arg(long)]
    trim: bool,
    /// A new description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    #[command(flatten)]
    broker: BrokerArgs,
    /// Remove the broker policy: runs get the real value again.
    #[arg(long, conflicts_with = "broker")]
    no_broker: bool,
}

/// `latch secret update`: only what the flags name changes.
async fn update(
    client: &crate::client::Client,
    global: &Global,
    scope: Scope,
    name: &SecretName,
    change: Change,
) -> Result<(), Error> {
    let Change {
        value,
        value_file,
        trim,
        description,
        broker,
        no_broker,
    } = change;
    let broker = if no_broker {
        Some(None)
    } else {
        broker.spec()?.map(Some)
    };
    let new_value = if value || value_file.is_some() {
        Some(context::read_value(
            value_file.as_deref(),
            name.as_str(),
            trim,
        )?)
    } else {
        None
    };
    if let (Some(Some(policy)), Some(value)) = (&broker, &new_value) {
        BrokerArgs::check_value(Some(policy), value.expose().as_bytes())?;
    }
    if new_value.is_none() && description.is_none() && broker.is_none() {
        return Err(Error::Usage(
            "nothing to update: pass --value, --value-file, --description, --broker or --no-broker"
                .into(),
        ));
    }
    let sealed_value = match new_value {
        Some(value) => Some(sealed(client, scope, name, &value).await?),
        None => None,
    };
    let body = UpdateSecret {
        value: None,
        sealed_value,
        description,
        broker,
    };
    let path = format!("v1/secrets/{scope}/{name}");
    let info: SecretInfo = client.call(Method::PATCH, &path, Some(&body)).await?;
    say_written("updated", &info, global)
}

/// Seals `value` for the secret `scope`/`name` to the team's sealing key (DESIGN §12), so the
/// plaintext never crosses the API, whatever proxy or log sits between latch and the platform.
async fn sealed(
    client: &Client,
    scope: Scope,
    name: &SecretName,
    value: &SecretValue,
) -> Result<Sealed, Error> {
    use base64::Engine as _;
    let key: SealKey = match client.call::<_, ()>(Method::GET, "v1/seal-key", None).await {
        Err(ClientError::Api { status: 404, .. }) => {
            return Err(Error::Config(
                "the platform offers no sealing key (it is older than this latch): upgrade it; \
                 latch does not send a value in plain text"
                    .into(),
            ));
        }
        answer => answer?,
    };
    let bad = |what: &str| Error::Client(ClientError::Decode(format!("the sealing key: {what}")));
    let public = base64::engine::general_purpose::STANDARD
        .decode(&key.public_key)
        .map_err(|_| bad("the public key is not base64"))?;
    if seal::key_id(&public) != key.key_id {
        return Err(bad("its id does not match the public key"));
    }
    let team: i64 = key
        .team
        .parse()
        .map_err(|_| bad("the team is not a number"))?;
    let owner = match scope {
        Scope::Team => None,
        Scope::Personal => Some(
            key.owner
                .as_deref()
                .ok_or_else(|| {
                    Error::Usage(
                        "a team key has no user: use a personal key for personal secrets".into(),
                    )
                })?
                .parse::<i64>()
                .map_err(|_| bad("the owner is not a number"))?,
        ),
    };
    let target = Target {
        team,
        scope,
        owner,
        name: name.as_str(),
    };
    seal::seal(&public, &key.key_id, &target, value.expose().as_bytes())
        .map_err(|_| bad("not an X25519 public key"))
}

/// `created team secret NAME (version 1); brokered to api.openai.com (authorization-bearer)`,
/// or the secret's metadata under `--json`.
fn say_written(done: &str, info: &SecretInfo, global: &Global) -> Result<(), Error> {
    if global.json {
        return context::print_json(info);
    }
    let brokered = info.broker.as_ref().map_or_else(String::new, |p| {
        format!(
            "; brokered to {} ({}{})",
            p.hosts.join(", "),
            p.header.as_deref().unwrap_or("authorization-bearer"),
            if p.always { ", always" } else { "" }
        )
    });
    context::outln!(
        "{done} {} secret {} (version {}){brokered}",
        info.scope,
        info.name,
        info.version
    )
}

/// The BROKER column: the preset, else the first host (and how many more).
fn broker_cell(policy: Option<&PolicySpec>) -> String {
    match policy {
        None => "-".into(),
        Some(p) => {
            let mut cell = match (&p.preset, p.hosts.as_slice()) {
                (Some(preset), _) => preset.clone(),
                (None, [one]) => one.clone(),
                (None, [first, rest @ ..]) => format!("{first} +{}", rest.len()),
                (None, []) => "-".into(),
            };
            if p.always {
                cell.push_str(" (always)");
            }
            cell
        }
    }
}

/// `NAME  SCOPE  DESCRIPTION  VERSION  LAST UPDATED` (and `OWNER` with `--all`, `BROKER` when a
/// secret has a policy).
fn secret_table(list: &[SecretInfo], all: bool, now: i64) -> String {
    let brokered = list.iter().any(|s| s.broker.is_some());
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let mut row = vec![s.name.clone(), s.scope.to_string()];
            if all {
                row.push(s.owner.clone().unwrap_or_else(|| "-".into()));
            }
            row.push(if s.description.is_empty() {
                "-".into()
            } else {
                s.description.clone()
            });
            row.push(format!("v{}", s.version));
            if brokered {
                row.push(broker_cell(s.broker.as_ref()));
            }
            row.push(relative(s.updated_at, now));
            row
        })
        .collect();
    let mut header = vec!["NAME", "SCOPE"];
    if all {
        header.push("OWNER");
    }
    header.extend(["DESCRIPTION", "VERSION"]);
    if brokered {
        header.push("BROKER");
    }
    header.push("LAST UPDATED");
    context::table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_table_uses_relative_times() {
        let now = 1_800_000_000_000;
        let info = |name: &str, scope, ago: i64| SecretInfo {
            name: name.into(),
            scope,
            owner: None,
            description: String::new(),
            version: 1,
            value_length: 8,
            created_at: now - ago,
            created_by: "owner".into(),
            updated_at: now - ago,
            updated_by: "owner".into(),
            revision: 1,
            broker: None,
        };
        let list = vec![
            info("DATABASE_URL", Scope::Team, 8 * 86_400_000),
            info("GH", Scope::Personal, 86_400_000),
        ];
        assert_eq!(
            secret_table(&list, false, now),
            "NAME          SCOPE     DESCRIPTION  VERSION  LAST UPDATED\nDATABASE_URL  team      -            v1       1 week ago\nGH            personal  -            v1       yesterday\n"
        );
        let mut list = list;
        list[1].broker = Some(
            Policy::from_words("github", None, true)
                .expect("preset")
                .spec(),
        );
        list[0].broker = Some(
            Policy::from_words("a.example,b.example", None, false)
                .expect("hosts")
                .spec(),
        );
        assert_eq!(
            secret_table(&list, false, now),
            "NAME          SCOPE     DESCRIPTION  VERSION  BROKER           LAST UPDATED\nDATABASE_URL  team      -            v1       a.example +1     1 week ago\nGH            personal  -            v1       github (always)  yesterday\n"
        );
    }
}
