//! The pure core: names and values, the API key format, run resolution, durations and the
//! exit-code contract.
//!
//! Nothing in here performs I/O or needs an async runtime: no tokio, reqwest, sqlx, nix,
//! `std::process`, `std::fs`, `std::net` or `std::env`. Randomness and time come in as
//! arguments. Everything here is tested inline with table-driven and property tests.

pub mod apikey;
pub mod broker;
pub mod byok;
pub mod crypto;
pub mod duration;
pub mod exit;
pub mod launch;
pub mod name;
pub mod perm;
pub mod resolve;
pub mod scrub;
pub mod seal;
pub mod split;
pub mod time;
pub mod value;
