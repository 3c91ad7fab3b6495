//! `latch byok set|list|remove|test`: a developer's own model-provider keys, kept on this device
//! only (DESIGN §14). Nothing here talks to the platform; `test` talks to the provider.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use zeroize::Zeroizing;

use super::context::{self, outln};
use super::{Error, Global, messages};
use crate::broker::Resolve;
use crate::byok::{KeyPlace, Location, Store, StoreError, store};
use crate::core::byok::{self, Provider, Verdict};

/// `latch byok …`
#[derive(Debug, Subcommand)]
pub enum ByokCommand {
    /// Store your own key for a provider (openai, anthropic, gemini) on this device: no-echo
    /// prompt, or --value-file. Local runs then get it instead of the team's secret of the
    /// provider's variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY).
    Set(SetArgs),
    /// List the stored keys: provider, variable, the last four characters, when added.
    List,
    /// Remove a provider's key from this device (or every key and the store with --all).
    Remove(RemoveArgs),
    /// Ask each provider (or one) whether its stored key is valid: one free, authenticated
    /// request (its model list); says valid, invalid or rate-limited.
    Test(TestArgs),
}

/// `latch byok set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// openai, anthropic or gemini.
    #[arg(value_name = "PROVIDER", value_parser = parse_provider)]
    provider: Provider,
    /// Read the key from this file (`-` for stdin) instead of prompting; trailing whitespace
    /// and newlines are removed (a key never has any).
    #[arg(long, value_name = "PATH")]
    value_file: Option<PathBuf>,
    /// Keep the store's key in a 0600 file beside the store instead of the OS keyring (for
    /// machines without one). Anyone who can read your files can then read your keys.
    #[arg(long)]
    insecure_store: bool,
}

/// `latch byok remove`
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// openai, anthropic or gemini.
    #[arg(value_name = "PROVIDER", value_parser = parse_provider, required_unless_present = "all", conflicts_with = "all")]
    provider: Option<Provider>,
    /// Remove every key, the store and its key in the keyring (also starts over after a store
    /// that no longer opens).
    #[arg(long)]
    all: bool,
}

/// `latch byok test`
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this provider's key.
    #[arg(value_name = "PROVIDER", value_parser = parse_provider)]
    provider: Option<Provider>,
    /// Connect to ADDR for requests to HOST:PORT, as curl's --resolve (a gateway, a test).
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR", value_parser = Resolve::parse)]
    resolve: Vec<Resolve>,
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    Provider::parse(text).map_err(|e| e.to_string())
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Config(e.to_string())
    }
}

/// Runs a `latch byok` command.
///
/// # Errors
/// [`Error`]: the store, the keyring, the provider.
pub(super) async fn run(command: ByokCommand, global: &Global) -> Result<u8, Error> {
    let location = Location::from_env()?;
    match command {
        ByokCommand::Set(args) => set(&location, args).await,
        ByokCommand::List => list(&location, global).await,
        ByokCommand::Remove(args) => remove(&location, args).await,
        ByokCommand::Test(args) => test(&location, args).await,
    }
}

/// Store work happens off the runtime (file IO and the keyring's own D-Bus runtime).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::Config("the store's work failed".into()))?
}

/// Reads the key: a file, stdin (`-`), or a no-echo prompt; trailing whitespace removed.
fn read_key(
    path: Option<&std::path::Path>,
    provider: Provider,
) -> Result<Zeroizing<String>, Error> {
    let mut bytes = context::read_secret(
        path,
        &format!("your {} key (not echoed): ", provider.title()),
        "key",
        64 * 1024,
    )?;
    let kept = bytes.trim_ascii_end().len();
    bytes[kept..].fill(0);
    bytes.truncate(kept);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Config(byok::ByokError::NotAToken.to_string()))?;
    Provider::check_key(text).map_err(|e| Error::Config(format!("{}: {e}", provider.title())))?;
    let mut key = Zeroizing::new(String::with_capacity(text.len()));
    key.push_str(text);
    Ok(key)
}

async fn set(location: &Location, args: SetArgs) -> Result<u8, Error> {
    let provider = args.provider;
    let key = read_key(args.value_file.as_deref(), provider)?;
    if !key.starts_with(provider.usual_prefix()) {
        messages::warning(&format!(
            "{} keys usually begin with {}; this one does not (is it another provider's?)",
            provider.title(),
            provider.usual_prefix()
        ));
    }
    let owned = location.clone();
    let insecure = args.insecure_store;
    let (replaced, place, path) = blocking(move || {
        let mut store = Store::open_or_create(&owned, insecure)?;
        if insecure && *store.place() == KeyPlace::Keyring {
            messages::note(
                "this store already keeps its key in the OS keyring: --insecure-store changes nothing",
            );
        }
        let replaced = store.contents.set(provider, key, context::now());
        store.save()?;
        Ok((replaced, store.place().clone(), store.path()))
    })
    .await?;
    outln!(
        "{} your {} key in {} ({})",
        if replaced { "replaced" } else { "stored" },
        provider.title(),
        path.display(),
        place_words(&place)
    )?;
    if matches!(place, KeyPlace::File(_)) {
        messages::warning(
            "--insecure-store: the store's key is in a file beside it; anyone who can read your files can read your provider keys",
        );
    }
    messages::hint(&format!(
        "local runs now get it as {} instead of the team's secret of that name; `latch byok test {}` checks it",
        provider.variable(),
        provider.as_str()
    ));
    Ok(0)
}

fn place_words(place: &KeyPlace) -> String {
    match place {
        KeyPlace::Keyring => "its key in the OS keyring".into(),
        KeyPlace::File(file) => format!("its key in {}, not in a keyring", file.display()),
    }
}

/// One row of `latch byok list --json`.
#[derive(Serialize)]
struct Listed {
    provider: Provider,
    variable: &'static str,
    preview: String,
    added_at: i64,
}

async fn list(location: &Location, global: &Global) -> Result<u8, Error> {
    let owned = location.clone();
    let opened = blocking(move || Ok(Store::open(&owned)?)).await?;
    let rows: Vec<Listed> = opened.as_ref().map_or_else(Vec::new, |store| {
        store
            .contents
            .keys
            .iter()
            .map(|k| Listed {
                provider: k.provider,
                variable: k.provider.variable(),
                preview: byok::preview(&k.value),
                added_at: k.added_at,
            })
            .collect()
    });
    if global.json {
        context::print_json(&rows)?;
        return Ok(0);
    }
    let Some(store) = opened else {
        outln!("no provider keys on this device; `latch byok set openai` stores one")?;
        return Ok(0);
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.provider.to_string(),
                r.variable.to_owned(),
                r.preview.clone(),
                context::local_time(r.added_at),
            ]
        })
        .collect();
    context::out(&context::table(
        &["PROVIDER", "VARIABLE", "KEY", "ADDED"],
        &table,
    ))?;
    outln!(
        "store: {} ({})",
        store.path().display(),
        place_words(store.place())
    )?;
    Ok(0)
}

async fn remove(location: &Location, args: RemoveArgs) -> Result<u8, Error> {
    let owned = location.clone();
    if args.all {
        blocking(move || Ok(store::remove_all(&owned)?)).await?;
        outln!("removed every provider key from this device")?;
        return Ok(0);
    }
    let Some(provider) = args.provider else {
        return Err(Error::Usage("name a provider, or pass --all".into()));
    };
    let removed = blocking(move || {
        let Some(mut store) = Store::open(&owned)? else {
            return Ok(false);
        };
        let removed = store.contents.remove(provider);
        if removed {
            store.save()?;
        }
        Ok(removed)
    })
    .await?;
    if removed {
        outln!("removed your {} key from this device", provider.title())?;
        Ok(0)
    } else {
        Err(Error::Config(format!(
            "no {} key on this device; `latch byok list` shows what is stored",
            provider.title()
        )))
    }
}

async fn test(location: &Location, args: TestArgs) -> Result<u8, Error> {
    let owned = location.clone();
    let store = blocking(move || Ok(Store::open(&owned)?)).await?;
    let Some(store) = store else {
        return Err(Error::Config(
            "no provider keys on this device; `latch byok set openai` stores one".into(),
        ));
    };
    let keys: Vec<_> = store
        .contents
        .keys
        .iter()
        .filter(|k| args.provider.is_none_or(|p| p == k.provider))
        .collect();
    if keys.is_empty() {
        return Err(Error::Config(format!(
            "no {} key on this device; `latch byok list` shows what is stored",
            args.provider.map_or("", Provider::title)
        )));
    }
    let ca = std::env::var_os("LATCH_CA_CERT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let (mut invalid, mut unreachable) = (Vec::new(), Vec::new());
    for key in keys {
        let provider = key.provider;
        match crate::byok::test_key(provider, &key.value, &args.resolve, ca.as_deref()).await {
            Ok(tested) => {
                let words = match tested.verdict {
                    Verdict::Valid => "valid".to_owned(),
                    Verdict::Invalid => {
                        invalid.push(provider);
                        format!(
                            "INVALID: {} refused it; `latch byok set {}` stores a new one",
                            tested.host,
                            provider.as_str()
                        )
                    }
                    Verdict::Limited(why) => format!(
                        "valid, but {} now ({} said so); runs get it anyway",
                        why.as_str(),
                        tested.host
                    ),
                    Verdict::Unexpected(status) => {
                        unreachable.push(provider);
                        format!("unknown: {} answered HTTP {status}", tested.host)
                    }
                };
                outln!("{provider}: {words}")?;
            }
            Err(e) => {
                unreachable.push(provider);
                outln!("{provider}: unknown: {e}")?;
            }
        }
    }
    if !invalid.is_empty() {
        return Err(Error::KeyRefused(format!(
            "{} refused as invalid",
            invalid
                .iter()
                .map(|p| format!("the {} key was", p.title()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !unreachable.is_empty() {
        return Err(Error::Unreachable(format!(
            "could not check the {} key",
            unreachable
                .iter()
                .map(|p| p.title())
                .collect::<Vec<_>>()
                .join(" and ")
        )));
    }
    Ok(0)
}
