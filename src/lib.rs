//! latch: run AI agents (and any command) with exactly the credentials each run is entitled
//! to, without those credentials leaking into logs.
//!
//! One library crate behind one binary with three faces: the launcher (`latch run`), the
//! management CLI (`latch secret|api-key|env|identity|member|runs|audit|whoami`) and the
//! platform (`latch serve`). The contract is DESIGN.md; this crate map says who owns what.
//!
//! # Crate map
//!
//! | module | owns | may use |
//! |---|---|---|
//! | [`core`] | pure logic: [`core::name`] (secret names, labels), [`core::value`] (zeroizing secret values), [`core::apikey`] (key format), [`core::resolve`] (DESIGN §2), [`core::perm`] (DESIGN §3), [`core::crypto`] (DESIGN §5), [`core::launch`] (the child's environment plan), [`core::split`] (a key kept as two shares), [`core::broker`] (broker policies, placeholders, header injection, DESIGN §13), [`core::scrub`] (the streaming scrubber, DESIGN §7), [`core::duration`], [`core::exit`] (exit-code contract) | nothing with I/O |
//! | [`api`] | wire types shared by client and server | `core` |
//! | [`client`] | the one HTTP client of the platform's API | `api`, `core` |
//! | [`store`] | the [`store::Store`] trait, its SQLite and PostgreSQL backends and the contract suite every backend passes | `core` |
//! | [`server`] | the platform's HTTP server (axum) | `store`, `api`, `core` |
//! | [`broker`] | the credential broker (hyper, rustls): base-URL routes, upstream TLS, injection and response swapping | `core` |
//! | [`launcher`] | the supervisor: memory hygiene, signals, the child, pseudo-terminal, pumps through the scrubber | `core` |
//! | [`cli`] | the command tree; wires IO modules together per command | everything |
//!
//! # Dependency rule
//!
//! ```text
//! main → cli → {launcher, broker, client, server, store} → api → core
//! ```
//!
//! Arrows point at what a module may use; nothing points back. Only `cli` wires IO modules
//! together: the launcher never calls the HTTP client itself and the server never calls it.
//! `core` performs no I/O, needs no async runtime and is where the rules live, so it is tested
//! exhaustively and cheaply.

pub mod api;
pub mod broker;
pub mod byok;
pub mod cli;
pub mod client;
pub mod core;
pub mod launcher;
pub mod server;
pub mod store;
