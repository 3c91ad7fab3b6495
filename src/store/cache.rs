//! What resolution and authentication read, kept between requests and checked against a
//! *generation*: a number that moves after every committed configuration change (secrets,
//! environments, identities, members, keys; never run records or last-used times).
//!
//! Each backend says where its generation comes from:
//! - **SQLite**: one `latch serve` process owns the database file (it holds a lock on it), so
//!   every change goes through this process; a counter in memory, moved on after each commit.
//! - **PostgreSQL**: a row every configuration write increments inside its own transaction, read
//!   inside the resolving transaction's snapshot; every replica sees every change that way.
//!
//! An entry is filled under the generation read *before* its rows were read, so an entry filled
//! while a change commits carries the older number and is refilled at the next request: a
//! cached entry never outlives the change that made it stale. Only ciphertexts are kept, never a
//! value; values are opened per request.
//!
//! A team's snapshot also keeps the [`Decision`]s made over it, by their exact inputs: a run
//! that repeats another's inputs (the same key kind and user or identity, trigger, environment,
//! lists) over the same snapshot gets the same resolution, so it is not resolved again. They go
//! with the snapshot at the team's next change.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Decide, Decision, Sealed, SharedRecord, StoreError};
use crate::core::name::Label;
use crate::core::resolve::{Environment, PersonalSecret, SecretId, Snapshot, TeamSecret, UserId};

/// Entries kept per cache; beyond it the cache starts over (bounded memory whatever the number
/// of teams or keys).
const MAX_ENTRIES: usize = 4096;

/// Decisions kept per team snapshot; beyond it, new ones are made per run and not kept.
const MAX_DECISIONS: usize = 64;

/// Most bytes of decisions kept per team snapshot (their inputs, shared records and lists of
/// values), whatever the team's size.
const MAX_KEPT_BYTES: usize = 1024 * 1024;

/// The decisions kept for one team snapshot, and what they weigh.
#[derive(Debug, Default)]
pub(super) struct Decisions {
    by_inputs: HashMap<Vec<u8>, Arc<Decision>>,
    bytes: usize,
}

/// Longest inputs whose decision is kept (a run naming a few hundred secrets): a caller cannot
/// make the server keep much by asking for long lists.
const MAX_KEPT_INPUTS: usize = 8 * 1024;

/// A map whose entries are valid for one generation.
#[derive(Debug)]
pub(super) struct Generational<K, V> {
    entries: Mutex<HashMap<K, (u64, V)>>,
}

impl<K, V> Default for Generational<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Generational<K, V> {
    /// The entry for `key` if it was filled at `generation`.
    pub(super) fn get(&self, key: &K, generation: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(filled, _)| *filled == generation)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `key`, read at `generation`, unless a newer entry is already there.
    pub(super) fn put(&self, key: K, generation: u64, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        match entries.get(&key) {
            Some((filled, _)) if *filled > generation => {}
            _ => {
                entries.insert(key, (generation, value));
            }
        }
    }
}

/// Everything resolution may read about one team, in one snapshot: its team secrets (with the
/// identities that reserve them), every member's personal secrets, its environments and the
/// ciphertexts of all of these.
#[derive(Debug, Default)]
pub(super) struct TeamData {
    pub(super) team: Vec<TeamSecret>,
    pub(super) personal: HashMap<UserId, Vec<PersonalSecret>>,
    pub(super) environments: HashMap<Label, Environment>,
    pub(super) sealed: HashMap<SecretId, Arc<Sealed>>,
    /// Decisions made over this snapshot, by their exact inputs.
    pub(super) decisions: Mutex<Decisions>,
}

impl TeamData {
    /// The view resolution takes for a run by `user` (with user context) naming `environment`.
    #[must_use]
    pub(super) fn snapshot(
        &self,
        user: Option<UserId>,
        environment: Option<&Label>,
    ) -> Snapshot<'_> {
        Snapshot {
            team: &self.team,
            personal: user
                .and_then(|u| self.personal.get(&u))
                .map_or(&[], Vec::as_slice),
            environment: environment.and_then(|name| self.environments.get(name)),
        }
    }

    /// The decision kept for `inputs`, or the one `decide` makes over this snapshot (kept for
    /// the next run with these inputs, within bounds).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a delivered secret is not in this snapshot.
    pub(super) fn decide(
        &self,
        user: Option<UserId>,
        environment: Option<&Label>,
        inputs: Vec<u8>,
        decide: Decide,
    ) -> Result<Arc<Decision>, StoreError> {
        let decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(decision) = decisions.by_inputs.get(&inputs) {
            return Ok(Arc::clone(decision));
        }
        drop(decisions);
        let decided = decide(self.snapshot(user, environment));
        let sealed = match &decided.result {
            Ok(resolution) => resolution
                .delivered
                .iter()
                .map(|d| self.sealed.get(&d.id).cloned())
                .collect::<Option<Vec<Arc<Sealed>>>>()
                .ok_or_else(|| {
                    StoreError::Corrupt("a delivered secret is not in the snapshot".into())
                })?,
            Err(_) => Vec::new(),
        };
        let decision = Arc::new(Decision {
            result: decided.result,
            sealed,
            record: SharedRecord::new(decided.record),
            stored: AtomicBool::new(false),
        });
        let mut decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = decisions.by_inputs.get(&inputs) {
            // Another run made it meanwhile: share that one.
            return Ok(Arc::clone(kept));
        }
        let size = inputs.len()
            + decision.record.json.len()
            + decision.sealed.len() * std::mem::size_of::<Arc<Sealed>>();
        if decisions.by_inputs.len() < MAX_DECISIONS
            && inputs.len() <= MAX_KEPT_INPUTS
            && decisions.bytes + size <= MAX_KEPT_BYTES
        {
            decisions.bytes += size;
            decisions.by_inputs.insert(inputs, Arc::clone(&decision));
        }
        Ok(decision)
    }
}

/// The team data cache every backend keeps.
pub(super) type Teams = Generational<i64, Arc<TeamData>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_its_own_generation() {
        let cache: Generational<i64, &str> = Generational::default();
        cache.put(1, 7, "seven");
        assert_eq!(cache.get(&1, 7), Some("seven"));
        assert_eq!(cache.get(&1, 8), None, "a change moved the generation on");
        assert_eq!(cache.get(&2, 7), None);
    }

    #[test]
    fn an_older_fill_never_replaces_a_newer_one() {
        let cache: Generational<i64, &str> = Generational::default();
        cache.put(1, 8, "new");
        cache.put(1, 7, "read before the change");
        assert_eq!(cache.get(&1, 8), Some("new"));
        cache.put(1, 9, "newer");
        assert_eq!(cache.get(&1, 9), Some("newer"));
    }

    /// A decision is made once per inputs, and kept only within bounds (a caller cannot make
    /// the server keep much by varying or lengthening what it asks for).
    #[test]
    fn decisions_are_kept_per_inputs_within_bounds() {
        use crate::core::resolve::{Resolution, Trigger};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let data = TeamData::default();
        let made = Arc::new(AtomicUsize::new(0));
        let decide_sized = |inputs: Vec<u8>, record: String| {
            let made = Arc::clone(&made);
            data.decide(
                None,
                None,
                inputs,
                Box::new(move |_| {
                    made.fetch_add(1, Ordering::SeqCst);
                    super::super::Decided {
                        result: Ok(Resolution {
                            allowlist: crate::core::resolve::AllowlistSource::None,
                            trigger: Trigger::Integration,
                            user_context: None,
                            identity: None,
                            delivered: Vec::new(),
                            missing: Vec::new(),
                            shadowed: Vec::new(),
                        }),
                        record,
                    }
                }),
            )
            .expect("decides")
        };
        let decide_for = |inputs: Vec<u8>| decide_sized(inputs, "{}".into());
        let first = decide_for(b"a".to_vec());
        assert!(Arc::ptr_eq(&first, &decide_for(b"a".to_vec())));
        assert_eq!(made.load(Ordering::SeqCst), 1, "decided once");

        let long = vec![b'x'; MAX_KEPT_INPUTS + 1];
        decide_for(long.clone());
        decide_for(long);
        assert_eq!(made.load(Ordering::SeqCst), 3, "long inputs are not kept");

        for i in 0..2 * MAX_DECISIONS {
            decide_for(format!("inputs {i}").into_bytes());
        }
        let kept = data.decisions.lock().expect("lock").by_inputs.len();
        assert_eq!(kept, MAX_DECISIONS);
        let before = made.load(Ordering::SeqCst);
        decide_for(format!("inputs {}", 2 * MAX_DECISIONS - 1).into_bytes());
        assert_eq!(
            made.load(Ordering::SeqCst),
            before + 1,
            "beyond the bound: decided per run"
        );

        let data = TeamData::default();
        let big = || format!("[{}]", "1,".repeat(MAX_KEPT_BYTES / 3));
        let decide_sized = |inputs: &[u8]| {
            data.decide(
                None,
                None,
                inputs.to_vec(),
                Box::new(move |_| super::super::Decided {
                    result: Err(crate::core::resolve::ResolveError::EnvironmentNotFound {
                        name: Label::new("gone").expect("label"),
                    }),
                    record: big(),
                }),
            )
            .expect("decides")
        };
        let one = decide_sized(b"one");
        assert!(
            Arc::ptr_eq(&one, &decide_sized(b"one")),
            "the first big one is kept"
        );
        let two = decide_sized(b"two");
        assert!(
            !Arc::ptr_eq(&two, &decide_sized(b"two")),
            "past the byte bound: not kept"
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache: Generational<usize, usize> = Generational::default();
        for i in 0..=MAX_ENTRIES {
            cache.put(i, 0, i);
        }
        let len = cache.entries.lock().expect("lock").len();
        assert!(len <= MAX_ENTRIES, "{len} entries");
        assert_eq!(cache.get(&MAX_ENTRIES, 0), Some(MAX_ENTRIES));
    }
}
