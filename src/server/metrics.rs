//! `/metrics` (DESIGN §8): Prometheus families of requests, runs and authentication, on the
//! official client (`prometheus-client`), encoded in the OpenMetrics text format.
//!
//! Label values are bounded: routes are axum's matched templates (`/v1/secrets/{scope}/{name}`,
//! never the path itself), and every other label comes from a closed set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::StoreMetrics;

/// A request's route and method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `GET`, `POST`...
    pub method: String,
    /// The matched route template, or `unmatched`.
    pub route: String,
}

/// A request's route, method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `GET`, `POST`...
    pub method: String,
    /// The matched route template, or `unmatched`.
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// One label, `reason` or `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// From a closed set (`unknown_key`, `delivered`...).
    pub reason: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// Every family the platform exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route, method and status.
    pub requests: Family<StatusLabels, Counter>,
    /// Request latency, by route and method.
    pub latency: Latency,
    /// Run resolutions, by outcome (`delivered`, `refused`, `dry_run`).
    pub runs: Family<Reason, Counter>,
    /// Secret values delivered to runs.
    pub deliveries: Counter,
    /// Failed authentications, by reason.
    pub auth_failures: Family<Reason, Counter>,
    /// Failing requests answered 429 (rate-limited by client address).
    pub rate_limited: Counter,
    /// Requests that failed on the database.
    pub database_errors: Counter,
}

impl Metrics {
    /// The families, with the store's own (run-record batch sizes) registered beside them.
    #[must_use]
    pub fn new(store: &StoreMetrics) -> Self {
        let mut registry = Registry::with_prefix("latch");
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Latency::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request",
            latency.clone(),
        );
        let runs = Family::<Reason, Counter>::default();
        registry.register("runs", "Run resolutions by outcome", runs.clone());
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Secret values delivered to runs",
            deliveries.clone(),
        );
        let auth_failures = Family::<Reason, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed authentications by reason",
            auth_failures.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Failing requests refused with 429 by client address",
            rate_limited.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Requests that failed on the database",
            database_errors.clone(),
        );
        registry.register(
            "run_record_batch_size",
            "Run records committed together",
            store.batch_sizes.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            runs,
            deliveries,
            auth_failures,
            rate_limited,
            database_errors,
        }
    }

    /// The OpenMetrics text.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts one answered request.
    pub fn answered(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let route = route.to_owned();
        let method = method.to_owned();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&StatusLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Counts one run resolution.
    pub fn run(&self, outcome: &'static str, delivered: usize) {
        self.runs.get_or_create(&Reason { reason: outcome }).inc();
        self.deliveries
            .inc_by(u64::try_from(delivered).unwrap_or(u64::MAX));
    }

    /// Counts one failed authentication.
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&Reason { reason }).inc();
    }
}
