//! Valid keys under a flood of forged ones (DESIGN §4): an in-process platform on 127.0.0.1:0
//! (temporary SQLite) that trusts loopback as its proxy, `VALID` clients calling `GET
//! /v1/whoami` with the owner's key, half of them from the address the forgers use (a CI
//! fleet behind one NAT), and in the flood phases `FORGED` more clients sending well-formed
//! keys that carry the owner's key id (which listings print) with a wrong secret. Phases with
//! and without the flood alternate, `ROUNDS` times `SECONDS` each, so a drift in the machine's
//! speed weighs on both alike.
//!
//! It prints the valid clients' throughput and latency in both, the number of their requests
//! answered 429 (the target is none), and the p99 ratio flood/quiet (the target is under 2).
//! Run: `cargo bench --bench auth_flood` (env `VALID`, `FORGED`, `ROUNDS`, `SECONDS` override
//! the defaults 48, 16, 4, 3).

#![allow(
    clippy::cast_precision_loss,
    reason = "statistics over request counts far below 2^52"
)]

/// The binary's allocator, so the figures are those of what ships.
#[global_allocator]
static ALLOCATOR: latch::launcher::alloc::Wiping = latch::launcher::alloc::Wiping;

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use getrandom::SysRng;
use latch::core::crypto::RootKey;
use latch::core::name::Label;
use latch::server::{self, App, boot};
use latch::store::Store;
use latch::store::sqlite::SqliteStore;
use support::{Phase, cpu_time, env_or};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The address the forgers share with half of the valid clients.
const NAT: &str = "198.51.100.1";

/// A well-formed key with `of`'s kind and id and another secret (the checksum right).
fn forged(of: &str, n: u64) -> String {
    let head = &of[..16];
    let secret: String = (0..32u64)
        .map(|i| char::from(BASE62[usize::try_from((i * 7 + n) % 62).unwrap_or(0)]))
        .collect();
    let body = format!("{head}{secret}");
    let mut crc = u64::from(crc32fast::hash(body.as_bytes()));
    let mut sum = [b'0'; 6];
    for digit in sum.iter_mut().rev() {
        *digit = BASE62[usize::try_from(crc % 62).unwrap_or(0)];
        crc /= 62;
    }
    format!("{body}{}", String::from_utf8_lossy(&sum))
}

/// One phase: the valid clients' latencies (and their 429s), with `forgers` flooding.
async fn phase(
    url: &str,
    owner: &str,
    valid: u64,
    forgers: u64,
    seconds: u64,
) -> (Phase, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_time();
    let limited = Arc::new(AtomicU64::new(0));
    let forged_sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..valid {
        let (url, key, limited) = (
            format!("{url}/v1/whoami"),
            owner.to_owned(),
            Arc::clone(&limited),
        );
        let addr = if i % 2 == 0 {
            NAT.to_owned()
        } else {
            format!("203.0.113.{}", i % 250)
        };
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let start = Instant::now();
                let sent = http
                    .get(&url)
                    .bearer_auth(&key)
                    .header("x-forwarded-for", &addr)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(start.elapsed());
                    }
                    Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        limited.fetch_add(1, Ordering::Relaxed);
                        errors += 1;
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut flood = Vec::new();
    for f in 0..forgers {
        let (url, key, sent) = (
            format!("{url}/v1/whoami"),
            owner.to_owned(),
            Arc::clone(&forged_sent),
        );
        flood.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = f * 1_000_000;
            while Instant::now() < deadline {
                n += 1;
                let r = http
                    .get(&url)
                    .bearer_auth(forged(&key, n))
                    .header("x-forwarded-for", NAT)
                    .send()
                    .await;
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut result = Phase::default();
    for t in tasks {
        let (l, e) = t.await.expect("client");
        result.latencies.extend(l);
        result.errors += e;
    }
    for t in flood {
        t.await.expect("forger");
    }
    result.cpu = cpu_time().saturating_sub(cpu_before);
    result.seconds = started.elapsed().as_secs_f64();
    (
        result,
        limited.load(Ordering::Relaxed),
        forged_sent.load(Ordering::Relaxed),
    )
}

fn main() {
    let valid = env_or("VALID", 48);
    let forged_clients = env_or("FORGED", 16);
    let seconds = env_or("SECONDS", 3);
    let rounds = env_or("ROUNDS", 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("latch.db")).await.expect("opens"));
        let root = RootKey::generate(&mut SysRng).expect("root key");
        boot::verify_root(&*store, &root).await.expect("check value");
        let owner = boot::bootstrap(&*store, &root, Label::new("default").expect("label"), Label::new("owner").expect("label"), 0)
            .await
            .expect("bootstraps")
            .expect("empty")
            .expose()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let loopback = server::client::parse_trusted_proxy("127.0.0.1/32").expect("cidr");
        tokio::spawn(server::serve(listener, App::with_proxies(store, root, vec![loopback]), std::future::pending()));
        println!(
            "GET /v1/whoami: {valid} valid clients (half behind the forgers' address), {forged_clients} forging clients in the flood phases; {rounds} rounds of {seconds} s of each, alternating"
        );
        let (mut quiet, mut flood) = (Phase::default(), Phase::default());
        let (mut limited_quiet, mut limited_flood, mut forged_total) = (0, 0, 0);
        for _ in 0..rounds {
            let (p, l, _) = phase(&url, &owner, valid, 0, seconds).await;
            quiet.add(p);
            limited_quiet += l;
            let (p, l, f) = phase(&url, &owner, valid, forged_clients, seconds).await;
            flood.add(p);
            limited_flood += l;
            forged_total += f;
        }
        for (what, s, limited) in [("quiet", &mut quiet, limited_quiet), ("flood", &mut flood, limited_flood)] {
            println!(
                "{what:<6} valid {:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   429s {limited}   other errors {}",
                s.per_second(),
                s.quantile(0.50).as_secs_f64() * 1e3,
                s.quantile(0.99).as_secs_f64() * 1e3,
                s.errors as u64 - limited,
            );
        }
        println!(
            "forged requests sent: {forged_total} ({:.0}/s); valid p99 flood/quiet = {:.2}",
            forged_total as f64 / flood.seconds,
            flood.quantile(0.99).as_secs_f64() / quiet.quantile(0.99).as_secs_f64().max(1e-9)
        );
    });
}
