//! `latch run`'s side of BYOK (DESIGN §14): whether this run is local enough to offer the
//! device's provider keys, the store opened to read them, and the keys put in place of the team's
//! secrets the platform says they stand in for. With `--fallback-to-team` the team's value is
//! kept aside for the broker, which replays a request the device key could not make.

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use super::{Error, RunArgs, split_bytes};
use crate::api::{Resolved, ResolvedSecret};
use crate::byok::{KeyPlace, Location, Store};
use crate::core::apikey::{ApiKey, KeyKind};
use crate::core::byok::{self, Choice, Decision, Provider, Situation};
use crate::core::name::SecretName;
use crate::core::resolve::{Scope, Trigger};
use crate::core::split::Split;

/// The device keys a run offers the platform.
pub(super) struct Offer {
    keys: Vec<(Provider, Zeroizing<String>)>,
    forced: bool,
}

impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field(
                "providers",
                &self.keys.iter().map(|k| k.0).collect::<Vec<_>>(),
            )
            .field("forced", &self.forced)
            .finish()
    }
}

impl Offer {
    /// The variables offered (names only: what the platform is told).
    pub(super) fn names(&self) -> Vec<SecretName> {
        self.keys
            .iter()
            .filter_map(|(p, _)| SecretName::new(p.variable().to_owned()).ok())
            .collect()
    }

    /// Whether `--byok` asked for it.
    pub(super) const fn forced(&self) -> bool {
        self.forced
    }
}

/// Decides whether this run offers the device's keys, and reads them: `None` when it does not
/// (said at `-v` when the device has keys), or when the device has none.
///
/// # Errors
/// [`Error::Usage`] when `--byok` cannot be honoured; [`Error::Config`] when `--byok` was given
/// and the store cannot be opened (without `--byok`, that is a warning and the run goes on
/// with the team's secrets).
pub(super) fn offer(args: &RunArgs, api_key: &str) -> Result<Option<Offer>, Error> {
    let choice = if args.no_byok {
        Choice::Off
    } else if args.byok {
        Choice::Force
    } else {
        Choice::Auto
    };
    let location = Location::from_env();
    let has_store = location.as_ref().is_ok_and(|l| l.store_path().exists());
    if !has_store && choice != Choice::Force {
        return Ok(None);
    }
    let kind = ApiKey::parse(api_key).map_or(KeyKind::Personal, |k| k.kind());
    let env = crate::byok::rule_env();
    let signs = crate::byok::container_signs();
    let decision = byok::decide(&Situation {
        choice,
        key: kind,
        trigger: args.trigger.unwrap_or_else(|| Trigger::default_for(kind)),
        env: &env,
        container: &signs,
        team: None,
    });
    match decision {
        Decision::Skip(why) => {
            tracing::info!("your device's provider keys (BYOK) are not used: {why}");
            return Ok(None);
        }
        Decision::Refuse(why) => {
            return Err(Error::Usage(format!("--byok cannot be honoured: {why}")));
        }
        Decision::Use { forced } => {
            if forced && (!env.is_empty() || !signs.is_empty()) {
                tracing::info!(
                    "--byok: your device's provider keys are offered although this looks like CI or a container"
                );
            }
        }
    }
    let opened = location.and_then(|l| Store::open(&l));
    let store = match opened {
        Ok(Some(store)) => store,
        Ok(None) => {
            if args.byok {
                return Err(Error::Config(
                    "--byok: no provider keys on this device; `latch byok set openai` stores one"
                        .into(),
                ));
            }
            return Ok(None);
        }
        Err(e) if args.byok => return Err(Error::Config(format!("--byok: {e}"))),
        Err(e) => {
            tracing::warn!("your device's provider keys (BYOK) are not used: {e}");
            return Ok(None);
        }
    };
    if let KeyPlace::File(file) = store.place() {
        tracing::warn!(
            "the BYOK store's key is in {} (--insecure-store), not in a keyring",
            file.display()
        );
    }
    let keys = store
        .contents
        .keys
        .iter()
        .map(|k| (k.provider, k.value.clone()))
        .collect::<Vec<_>>();
    Ok((!keys.is_empty()).then_some(Offer {
        keys,
        forced: args.byok,
    }))
}

/// A name the device key stood in for, and the team's value kept for the broker's replays.
pub(super) struct Applied {
    /// The variable.
    pub(super) name: String,
    /// Whose key.
    pub(super) provider: Provider,
    /// The team's value, as shares (`--fallback-to-team`).
    pub(super) fallback: Option<Split>,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

/// Puts the device keys into `resolved` where the platform said they stand in for the team's
/// secrets: in place of the value (the team's kept as shares for the broker with
/// `--fallback-to-team`), or as a new entry when the platform left the team's value out. From
/// here on a device key is delivered, masked and brokered like any secret, as a personal secret
/// of version 0 (no platform secret has that version).
///
/// # Errors
/// [`Error::Usage`] when `--fallback-to-team` names a name the run does not broker;
/// [`Error::Config`] for an answer that names a key the device did not offer.
pub(super) fn apply(
    resolved: &mut Resolved,
    offer: Option<Offer>,
    args: &RunArgs,
) -> Result<Vec<Applied>, Error> {
    let (Some(offer), Some(answer)) = (offer, resolved.byok.take()) else {
        return Ok(Vec::new());
    };
    if let Some(why) = &answer.skipped {
        tracing::info!("your device's provider keys (BYOK) are not used: {why}");
    }
    let mut applied = Vec::new();
    for stand_in in &answer.applied {
        let provider = Provider::of_variable(&stand_in.name).ok_or_else(|| {
            Error::Config(format!(
                "the platform named {} for a device key, which is no provider's variable",
                stand_in.name
            ))
        })?;
        let (_, key) = offer
            .keys
            .iter()
            .find(|(p, _)| *p == provider)
            .ok_or_else(|| {
                Error::Config(format!(
                    "the platform named {} for a device key this device did not offer",
                    stand_in.name
                ))
            })?;
        let device = SecretString::from(key.as_str());
        let kept = if args.fallback_to_team {
            Some(keep_team(resolved, stand_in, &device, args)?)
        } else {
            resolved.secrets.push(ResolvedSecret {
                name: stand_in.name.clone(),
                scope: Scope::Personal,
                version: 0,
                value: device.clone(),
                broker: stand_in.broker.clone(),
            });
            None
        };
        for also in provider.also() {
            if !resolved.secrets.iter().any(|s| s.name == *also) {
                resolved.secrets.push(ResolvedSecret {
                    name: (*also).to_owned(),
                    scope: Scope::Personal,
                    version: 0,
                    value: device.clone(),
                    broker: stand_in.broker.clone(),
                });
            }
        }
        tracing::info!(
            "{}: your own {} key from this device (BYOK) instead of the team's{}",
            stand_in.name,
            provider.title(),
            if kept.is_some() {
                "; a request it cannot make is replayed once with the team's (--fallback-to-team)"
            } else {
                ""
            }
        );
        applied.push(Applied {
            name: stand_in.name.clone(),
            provider,
            fallback: kept,
        });
    }
    for (provider, _) in &offer.keys {
        if !answer.applied.iter().any(|a| a.name == provider.variable()) && answer.skipped.is_none()
        {
            tracing::info!(
                "your {} key is not used: this run does not receive {} (a device key stands in only for a secret the run receives)",
                provider.title(),
                provider.variable()
            );
        }
    }
    Ok(applied)
}

/// `--fallback-to-team`: puts the device key in place of the team's value of `stand_in`, which
/// is returned as shares for the broker.
///
/// # Errors
/// [`Error::Usage`] when the run does not broker the name; [`Error::Config`] when the platform
/// did not deliver the team's value.
fn keep_team(
    resolved: &mut Resolved,
    stand_in: &crate::api::ByokApplied,
    device: &SecretString,
    args: &RunArgs,
) -> Result<Split, Error> {
    let name = &stand_in.name;
    if stand_in.broker.is_none() {
        let how = if args.no_broker.iter().any(|n| n.as_str() == name) {
            format!("drop --no-broker {name}")
        } else {
            format!("add --broker {name}")
        };
        return Err(Error::Usage(format!(
            "--fallback-to-team needs the broker for {name} (it decides per request): {how}"
        )));
    }
    let team = resolved
        .secrets
        .iter_mut()
        .find(|s| s.name == *name)
        .ok_or_else(|| {
            Error::Config(format!(
                "the platform did not deliver the team's {name} for --fallback-to-team"
            ))
        })?;
    let shares = split_bytes(team.value.expose_secret().as_bytes())?;
    team.value = device.clone();
    team.scope = Scope::Personal;
    team.version = 0;
    Ok(shares)
}
