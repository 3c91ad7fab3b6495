//! `POST /v1/runs` throughput and latency against `GET /healthz`, measured the same way in the
//! same run: an in-process platform on 127.0.0.1:0 (temporary SQLite, `synchronous=FULL`), a
//! team with 100 secrets, and `CLIENTS` concurrent keep-alive clients. The two phases alternate,
//! `ROUNDS` times `SECONDS` each, so a drift in the machine's speed weighs on both alike; each
//! line also gives the process's CPU time per request (server, clients and SQLite together).
//! Every resolve delivers all 100 secrets, so it reads, decrypts and durably records a run.
//! Run: `cargo bench --bench resolve` (env `CLIENTS`, `ROUNDS`, `SECONDS` override the
//! defaults 64, 6, 3).
//! With `LATCH_BENCH_DATABASE_URL=postgres://…` (an empty database) the platform runs on
//! PostgreSQL instead.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "statistics over request counts far below 2^52"
)]

/// The binary's allocator, so the figures are those of what ships.
#[global_allocator]
static ALLOCATOR: latch::launcher::alloc::Wiping = latch::launcher::alloc::Wiping;

mod support;

use std::sync::Arc;

use support::{MakeRequest, Phase, drive, env_or};

use getrandom::SysRng;
use latch::core::crypto::RootKey;
use latch::core::name::Label;
use latch::server::{self, App, boot};
use latch::store::Store;
use latch::store::postgres::{PgStore, PoolSettings};
use latch::store::sqlite::SqliteStore;
use serde_json::json;

fn main() {
    let clients = env_or("CLIENTS", 64);
    let seconds = env_or("SECONDS", 3);
    let rounds = env_or("ROUNDS", 6);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, engine): (Arc<dyn Store>, &str) = match std::env::var("LATCH_BENCH_DATABASE_URL") {
            Ok(url) => (
                Arc::new(PgStore::connect(&url, PoolSettings::default()).await.expect("connects")),
                "PostgreSQL (16 connections)",
            ),
            Err(_) => (
                Arc::new(SqliteStore::open(&dir.path().join("latch.db")).await.expect("opens")),
                "SQLite synchronous=FULL",
            ),
        };
        let root = RootKey::generate(&mut SysRng).expect("root key");
        boot::verify_root(&*store, &root).await.expect("check value");
        let key = boot::bootstrap(&*store, &root, Label::new("default").expect("label"), Label::new("owner").expect("label"), 0)
            .await
            .expect("bootstraps")
            .expect("empty");
        let owner = key.expose().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(server::serve(listener, App::new(store, root), std::future::pending()));
        let http = reqwest::Client::new();
        for i in 0..100 {
            let body = json!({"scope": "team", "name": format!("SECRET_{i}"), "value": format!("value-{i}-{:032x}", i * 7919)});
            let r = http.post(format!("{url}/v1/secrets")).bearer_auth(&owner).json(&body).send().await.expect("creates");
            assert!(r.status().is_success());
        }
        println!("platform: {engine}, 100 team secrets; {clients} clients; {rounds} rounds of {seconds} s of each, alternating");
        let health_url = format!("{url}/healthz");
        let health_request: MakeRequest = Arc::new(move |c| c.get(&health_url));
        let runs_url = format!("{url}/v1/runs");
        let runs_request: MakeRequest = Arc::new(move |c| c.post(&runs_url).bearer_auth(&owner).json(&json!({})));
        // Alternating rounds, so a drift in the machine's speed weighs on both alike.
        let (mut health, mut runs) = (Phase::default(), Phase::default());
        for _ in 0..rounds {
            health.add(drive(clients, seconds, &health_request).await);
            runs.add(drive(clients, seconds, &runs_request).await);
        }
        for (what, s) in [("GET /healthz", &mut health), ("POST /v1/runs", &mut runs)] {
            println!(
                "{what:<14} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   CPU {:>6.1} µs/req   errors {}",
                s.per_second(),
                s.quantile(0.50).as_secs_f64() * 1e3,
                s.quantile(0.99).as_secs_f64() * 1e3,
                s.cpu_per_request().as_secs_f64() * 1e6,
                s.errors
            );
        }
        println!(
            "resolve throughput = {:.1}% of /healthz; CPU per resolve = {:.1}× a /healthz",
            100.0 * runs.per_second() / health.per_second(),
            runs.cpu_per_request().as_secs_f64() / health.cpu_per_request().as_secs_f64().max(1e-9)
        );
    });
}
