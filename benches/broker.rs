//! What the credential broker adds to a request (DESIGN §13 "Cost"): the same `GET /v1/models`
//! to a local HTTPS upstream (its own test CA, named `api.openai.com` through the resolver),
//! sent directly and through the broker (plain HTTP on loopback to the broker, which injects the
//! key and forwards over verified TLS, the answer swapped as it streams back). Keep-alive
//! clients; the two phases alternate `ROUNDS` times `SECONDS` each, with `CLIENTS` concurrent
//! clients, so a drift in the machine's speed weighs on both alike.
//! Run: `cargo bench --bench broker` (env `CLIENTS`, `ROUNDS`, `SECONDS`; defaults 1, 6, 3;
//! `CLIENTS=16` for throughput under concurrency).

#![allow(
    clippy::cast_precision_loss,
    reason = "statistics over request counts far below 2^52"
)]

/// The binary's allocator, wiping on free as in the launcher, so the figures are those of what
/// ships.
#[global_allocator]
static ALLOCATOR: latch::launcher::alloc::Wiping = latch::launcher::alloc::Wiping;

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use latch::broker::{self, Entry, Resolve};
use latch::core::broker::{Policy, placeholder};
use latch::core::split::Split;
use support::{MakeRequest, Phase, drive_with, env_or};
use zeroize::Zeroizing;

/// Connections the upstream accepted (each a TLS handshake).
static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

const KEY: &str = "sk-proj-Qw3rTy8uI0oP2aS4dF6gH8jK0lZ2xC4vB6nM8qW0eR2tY4uI6oP8aS0dF2gH4jK6";

fn main() {
    let clients = env_or("CLIENTS", 1);
    let seconds = env_or("SECONDS", 3);
    let rounds = env_or("ROUNDS", 6);
    latch::launcher::alloc::enable();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (upstream, ca_pem, ca_file) = upstream().await;
        let fake = placeholder(KEY.as_bytes(), &mut getrandom::SysRng).expect("placeholder");
        let mut pad = Zeroizing::new(vec![0u8; KEY.len()]);
        rand_core::TryRng::try_fill_bytes(&mut getrandom::SysRng, &mut pad).expect("random");
        let real = Split::new(KEY.as_bytes(), pad).expect("split");
        let running = broker::start(broker::Config {
            entries: vec![Entry::new(
                "OPENAI_API_KEY".into(),
                Policy::from_words("openai", None, false).expect("preset"),
                fake.clone(),
                real,
            )],
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            resolve: vec![Resolve::parse(&format!("api.openai.com:443:{upstream}")).expect("resolve")],
            ca_cert: Some(ca_file.path().to_owned()),
            proxy: false,
            allow_hosts: Vec::new(),
        })
        .expect("broker starts");
        let brokered_url = format!("http://{}/openai/v1/models", running.addr);
        let fake = String::from_utf8(fake).expect("ascii");
        let ca = reqwest::Certificate::from_pem(&ca_pem).expect("pem");
        let direct_client = move || {
            reqwest::Client::builder()
                .resolve("api.openai.com", upstream)
                .tls_certs_only([ca.clone()])
                .build()
                .expect("client")
        };
        let broker_client = || reqwest::Client::builder().no_proxy().build().expect("client");
        let direct_request: MakeRequest =
            Arc::new(|c| c.get("https://api.openai.com/v1/models").bearer_auth(KEY));
        let brokered_request: MakeRequest =
            Arc::new(move |c| c.get(&brokered_url).bearer_auth(&fake));
        let (mut direct, mut brokered) = (Phase::default(), Phase::default());
        for _ in 0..rounds {
            direct.add(drive_with(clients, seconds, &direct_client, &direct_request).await);
            brokered.add(drive_with(clients, seconds, &broker_client, &brokered_request).await);
        }
        let injected = running.stop().injected;
        println!(
            "broker: {clients} keep-alive client(s), {rounds} rounds of {seconds} s each way; the key went into {} requests; the upstream accepted {} connections",
            injected["OPENAI_API_KEY"],
            CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed)
        );
        let line = |name: &str, p: &mut Phase| {
            let (p50, p99) = (p.quantile(0.50), p.quantile(0.99));
            println!(
                "{name:>9}: {:>8.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  CPU {:>5.1} µs/req  errors {}",
                p.per_second(),
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                p.cpu_per_request().as_secs_f64() * 1e6,
                p.errors
            );
            (p50, p99, p.per_second())
        };
        let (d50, d99, drate) = line("direct", &mut direct);
        let (b50, b99, brate) = line("brokered", &mut brokered);
        println!(
            "added by the broker: p50 +{:.1} µs, p99 +{:.1} µs; throughput {:.2}× of direct",
            (b50.as_secs_f64() - d50.as_secs_f64()) * 1e6,
            (b99.as_secs_f64() - d99.as_secs_f64()) * 1e6,
            brate / drate
        );
    });
}

/// An HTTPS server for api.openai.com answering `{"ok":true}` to the real key, 401 otherwise;
/// its address, its CA's PEM and that PEM in a file.
async fn upstream() -> (SocketAddr, Vec<u8>, tempfile::NamedTempFile) {
    let support::tls::TestTls { acceptor, ca_file } = support::tls::test_tls(&["api.openai.com"]);
    let ca_pem = std::fs::read(ca_file.path()).expect("reads");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let ok = request
                            .headers()
                            .get("authorization")
                            .is_some_and(|v| v.as_bytes() == format!("Bearer {KEY}").as_bytes());
                        let (status, body) = if ok {
                            (200, "{\"ok\":true}")
                        } else {
                            (401, "{}")
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .expect("response"),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca_pem, ca_file)
}
