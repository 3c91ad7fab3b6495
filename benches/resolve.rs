//! `POST /v1/runs` throughput and latency against `GET /healthz`, measured the same way in the
//! same run: an in-process platform on 127.0.0.1:0 (temporary SQLite, `synchronous=FULL`), a
//! team with 100 secrets, and `CLIENTS` concurrent keep-alive clients for `SECONDS` each.
//! Every resolve delivers all 100 secrets, so it reads, decrypts and durably records a run.
//! Run: `cargo bench --bench resolve` (env `CLIENTS`, `SECONDS` override the defaults 64, 5).
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use getrandom::SysRng;
use latch::core::crypto::RootKey;
use latch::core::name::Label;
use latch::server::{self, App, boot};
use latch::store::Store;
use latch::store::postgres::{PgStore, PoolSettings};
use latch::store::sqlite::SqliteStore;
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn drive(
    clients: u64,
    seconds: u64,
    make: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>,
) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let start = Instant::now();
                match make(&http).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(start.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.expect("client");
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds as f64);
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Stats {
        per_second: all.len() as f64 / elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        errors,
    }
}

fn main() {
    let clients = env_or("CLIENTS", 64);
    let seconds = env_or("SECONDS", 5);
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
        println!("platform: {engine}, 100 team secrets; {clients} clients, {seconds} s each");
        let health_url = format!("{url}/healthz");
        let health = drive(clients, seconds, Arc::new(move |c| c.get(&health_url))).await;
        let runs_url = format!("{url}/v1/runs");
        let owner2 = owner.clone();
        let runs = drive(clients, seconds, Arc::new(move |c| c.post(&runs_url).bearer_auth(&owner2).json(&json!({})))).await;
        for (what, s) in [("GET /healthz", &health), ("POST /v1/runs", &runs)] {
            println!(
                "{what:<14} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
                s.per_second,
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3,
                s.errors
            );
        }
        println!("resolve throughput = {:.1}% of /healthz", 100.0 * runs.per_second / health.per_second);
    });
}
