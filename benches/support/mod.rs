//! What the HTTP benchmarks share: phases of concurrent keep-alive clients, their latencies,
//! and the process's CPU time per request.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    dead_code,
    reason = "statistics over request counts far below 2^52; each bench uses part of this"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) mod tls;

pub(crate) fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one phase measured; phases of the same kind from several rounds add up.
#[derive(Default)]
pub(crate) struct Phase {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) errors: usize,
    pub(crate) seconds: f64,
    /// Process CPU time (user + system, every thread: server, clients, SQLite).
    pub(crate) cpu: Duration,
}

impl Phase {
    pub(crate) fn add(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.cpu += other.cpu;
    }

    pub(crate) fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    pub(crate) fn cpu_per_request(&self) -> Duration {
        self.cpu / u32::try_from(self.latencies.len().max(1)).unwrap_or(u32::MAX)
    }

    pub(crate) fn quantile(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        self.latencies
            .get(((self.latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// CPU time this process has used so far, all threads.
pub(crate) fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    time(usage.user_time()) + time(usage.system_time())
}

pub(crate) type MakeRequest =
    Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

/// `clients` keep-alive clients sending `make`'s request for `seconds`.
pub(crate) async fn drive(clients: u64, seconds: u64, make: &MakeRequest) -> Phase {
    drive_with(clients, seconds, &reqwest::Client::new, make).await
}

/// [`drive`] with each client built by `client` (its own connection pool).
pub(crate) async fn drive_with(
    clients: u64,
    seconds: u64,
    client: &(dyn Fn() -> reqwest::Client + Sync),
    make: &MakeRequest,
) -> Phase {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_time();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let make = Arc::clone(make);
        let http = client();
        tasks.push(tokio::spawn(async move {
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
    let mut phase = Phase::default();
    for t in tasks {
        let (l, e) = t.await.expect("client");
        phase.latencies.extend(l);
        phase.errors += e;
    }
    phase.cpu = cpu_time().saturating_sub(cpu_before);
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}
