//! The one HTTP client of the platform's API (DESIGN §6 "Network", §10).
//!
//! Built once with connect and request timeouts. `https://` is required except for loopback
//! addresses; `LATCH_CA_CERT` adds a private CA. Connection errors, 429 (honouring
//! `Retry-After`), 502, 503 and 504 are retried with exponential backoff and jitter, bounded in
//! count and time. The API key's checksum is checked before any request. Responses are read
//! into a bounded, zeroizing buffer (a resolve response carries values).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand_core::TryRng;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::api::Problem;
use crate::core::apikey::ApiKey;

/// Attempts per request, the first included.
const ATTEMPTS: u32 = 5;
/// Time budget for all attempts of one request.
const BUDGET: Duration = Duration::from_secs(30);
/// Largest response accepted.
const MAX_BODY: usize = 16 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad or missing settings.
    #[error("{0}")]
    Config(String),
    /// The platform did not answer, after retries.
    #[error("the platform at {url} is unreachable after {attempts} {}: {cause}", if *.attempts == 1 { "attempt" } else { "attempts" })]
    Unreachable {
        /// Where.
        url: String,
        /// How many tries.
        attempts: u32,
        /// The last cause, in words.
        cause: String,
    },
    /// The key was refused (401).
    #[error("the platform refused the API key: {0}")]
    Refused(String),
    /// The platform answered with an error.
    #[error("{detail} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code.
        code: String,
        /// Message.
        detail: String,
        /// For `required_missing`.
        problem: Box<Problem>,
    },
    /// The answer could not be read.
    #[error("the platform's answer could not be read: {0}")]
    Decode(String),
    /// The API key is malformed (found offline, before any request).
    #[error("{0}")]
    KeyFormat(String),
    /// The server's TLS certificate is not trusted: a configuration error, never retried.
    #[error("{0}")]
    Tls(String),
}

/// Where the platform is and how to authenticate.
pub struct Config {
    /// Base URL, its path ending in `/` so that `v1/...` goes under any prefix.
    pub url: Url,
    /// The API key (checked offline).
    pub key: ApiKey,
    /// A PEM file with a private CA to trust.
    pub ca_cert: Option<PathBuf>,
    /// The bound on each request (`--request-timeout`, `LATCH_REQUEST_TIMEOUT`).
    pub timeout: Duration,
}

/// The request timeout when none is given (DESIGN §6).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Config {
    /// Validates `url` (https unless loopback) and `key`.
    ///
    /// # Errors
    /// [`ClientError::Config`] with a message saying what to fix.
    pub fn new(url: &str, key: &str, ca_cert: Option<PathBuf>) -> Result<Self, ClientError> {
        if url.trim().is_empty() {
            return Err(ClientError::Config(
                "LATCH_URL is empty: set it to the platform's address, such as https://latch.example.com"
                    .into(),
            ));
        }
        let mut url = Url::parse(url.trim())
            .map_err(|e| ClientError::Config(format!("LATCH_URL `{url}` is not a URL: {e}")))?;
        // `https://host/prefix` sends `/prefix/v1/...` (a base without a final `/` would lose
        // its last segment when joined).
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::Config(format!(
                "LATCH_URL `{url}` has a query or fragment: give the platform's base address only"
            )));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(ClientError::Config(format!(
                    "refusing plain http to {url}: use https:// (plain http is allowed only for loopback addresses)"
                )));
            }
            other => {
                return Err(ClientError::Config(format!(
                    "unsupported URL scheme `{other}`: use https://"
                )));
            }
        }
        if key.trim().is_empty() {
            return Err(ClientError::Config(
                "the API key is empty: set LATCH_API_KEY to a key from `latch api-key create`"
                    .into(),
            ));
        }
        let key = ApiKey::parse(key.trim()).map_err(|e| ClientError::KeyFormat(e.to_string()))?;
        Ok(Self {
            url,
            key,
            ca_cert,
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The client.
pub struct Client {
    http: reqwest::Client,
    config: Config,
}

impl Client {
    /// Builds the client once.
    ///
    /// # Errors
    /// [`ClientError::Config`] if the CA file cannot be used.
    pub fn new(config: Config) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .timeout(config.timeout)
            .user_agent(concat!("latch/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Config(format!("cannot read LATCH_CA_CERT {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Config(format!("LATCH_CA_CERT {} is not PEM: {e}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(ClientError::Config(format!(
                    "LATCH_CA_CERT {} holds no certificate: give the PEM file of the CA that signed the platform's certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.url.scheme() == "http" {
            // Plain http (loopback only): no TLS, so no trust store to load (several ms).
            builder = builder.tls_certs_only(Vec::new());
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, config })
    }

    /// Sends a request and decodes a JSON answer.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.send(method, path, body, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// As [`Client::call`], sending `If-Match: "revision"`: the platform refuses the write
    /// with 412 if the object changed since it was read at that revision.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_if_match<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        revision: u64,
    ) -> Result<T, ClientError> {
        let bytes = self.send(method, path, body, Some(revision)).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends a request whose answer has no body (204).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn call_empty<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        self.send(method, path, body, None).await.map(drop)
    }

    /// Sends with retries; returns the successful answer's body.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        if_match: Option<u64>,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let url = self
            .config
            .url
            .join(path)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.config.key.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(revision) = if_match {
                request = request.header(reqwest::header::IF_MATCH, format!("\"{revision}\""));
            }
            let retry_after = match request.send().await {
                Ok(response) if !retryable(response.status()) => return finish(response).await,
                Ok(response) => {
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(10)));
                    if attempt >= ATTEMPTS || started.elapsed() >= BUDGET {
                        return finish(response).await;
                    }
                    wait
                }
                Err(e) => {
                    if let Some(why) = trust_failure(&e) {
                        // Configuration, never retried.
                        let ca = self
                            .config
                            .ca_cert
                            .as_ref()
                            .map(|p| p.display().to_string());
                        return Err(ClientError::Tls(why.words(&self.config.url, ca.as_deref())));
                    }
                    if (e.is_connect() || e.is_timeout())
                        && attempt < ATTEMPTS
                        && started.elapsed() < BUDGET
                    {
                        None
                    } else {
                        tracing::debug!(error = %e, "giving up");
                        return Err(ClientError::Unreachable {
                            url: self.config.url.to_string(),
                            attempts: attempt,
                            cause: unreachable_cause(&e, self.config.timeout),
                        });
                    }
                }
            };
            let wait = retry_after.unwrap_or_else(|| jitter(delay));
            tracing::debug!(attempt, wait_ms = wait.as_millis(), "retrying");
            tokio::time::sleep(wait.min(BUDGET.saturating_sub(started.elapsed()))).await;
            delay = delay.saturating_mul(2).min(Duration::from_secs(5));
        }
    }
}

/// Why a request got no answer, in words (DESIGN §11: never a library's chain of causes).
fn unreachable_cause(error: &reqwest::Error, timeout: Duration) -> String {
    use std::io::ErrorKind;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => {
                    return "the connection was refused (nothing listens at that address)".into();
                }
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    return "the connection was closed before an answer".into();
                }
                ErrorKind::TimedOut => return "connecting timed out".into(),
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    return "no route to the host".into();
                }
                _ => {}
            }
        }
        let text = e.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return "its host name does not resolve".into();
        }
        cause = e.source();
    }
    if error.is_timeout() {
        return format!(
            "no answer within {} (--request-timeout)",
            crate::core::duration::words(timeout)
        );
    }
    if error.is_connect() {
        return "cannot connect".into();
    }
    "the connection failed before an answer".into()
}

/// Why the server's certificate was refused, when that is why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Untrusted {
    UnknownIssuer,
    WrongName,
    Expired,
    NotYetValid,
    Other,
}

impl Untrusted {
    /// The failure in words, with what to do (DESIGN §6: never a library's debug output).
    fn words(self, url: &Url, ca: Option<&str>) -> String {
        let host = url.host_str().unwrap_or("the platform");
        match (self, ca) {
            (Self::UnknownIssuer, Some(ca)) => format!(
                "the server's certificate is not signed by a CA in LATCH_CA_CERT ({ca}): point it at the CA that signed {host}'s certificate"
            ),
            (Self::UnknownIssuer, None) => format!(
                "the server's certificate for {host} is not signed by a CA this machine trusts: set LATCH_CA_CERT to your private CA's PEM file"
            ),
            (Self::WrongName, _) => format!(
                "the server's certificate is not valid for {host}: check LATCH_URL, or give the server a certificate for that name"
            ),
            (Self::Expired, _) => format!("the server's certificate for {host} has expired"),
            (Self::NotYetValid, _) => format!(
                "the server's certificate for {host} is not valid yet: check this machine's clock"
            ),
            (Self::Other, _) => format!(
                "the server's certificate for {host} was refused (for example a CA certificate used as the server's own): give the server a certificate signed by a CA, for its name"
            ),
        }
    }
}

/// The certificate failure behind `error`, if it is one (read through its causes).
fn trust_failure(error: &reqwest::Error) -> Option<Untrusted> {
    use rustls::CertificateError as C;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref::<rustls::Error>() {
            return Some(match c {
                C::UnknownIssuer => Untrusted::UnknownIssuer,
                C::NotValidForName | C::NotValidForNameContext { .. } => Untrusted::WrongName,
                C::Expired | C::ExpiredContext { .. } => Untrusted::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => Untrusted::NotYetValid,
                _ => Untrusted::Other,
            });
        }
        // An `io::Error` wrapping rustls's error skips it in `source()`: look inside.
        cause = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Between half and one and a half times `delay`.
fn jitter(delay: Duration) -> Duration {
    let r = getrandom::SysRng.try_next_u32().unwrap_or(u32::MAX / 2);
    let factor = 0.5 + f64::from(r) / f64::from(u32::MAX);
    delay.mul_f64(factor)
}

/// Reads a final answer (bounded), turning errors into [`ClientError`].
async fn finish(mut response: reqwest::Response) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let status = response.status();
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ClientError::Decode(format!(
                "the answer is larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(body);
    }
    let problem: Problem = serde_json::from_slice(&body).unwrap_or_else(|_| Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        code: "http_error".into(),
        detail: format!("the server answered {status}, not with a latch error"),
        missing: Vec::new(),
        would_release: Vec::new(),
        keys: Vec::new(),
        existing: None,
    });
    if status == StatusCode::UNAUTHORIZED {
        return Err(ClientError::Refused(problem.detail));
    }
    Err(ClientError::Api {
        status: status.as_u16(),
        code: problem.code.clone(),
        detail: problem.detail.clone(),
        problem: Box::new(problem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "latch_p_AbCd1234ABCDEFGHIJKLMNOPQRSTUVWXYZ0123453MbE1T";

    fn key() -> String {
        use rand::SeedableRng;
        let Ok(k) = ApiKey::generate(
            crate::core::apikey::KeyKind::Personal,
            &mut rand::rngs::StdRng::seed_from_u64(1),
        );
        k.expose().to_owned()
    }

    #[test]
    fn https_is_required_except_for_loopback() {
        for ok in [
            "https://latch.example.com",
            "http://127.0.0.1:8177",
            "http://localhost:1",
            "http://[::1]:8177",
            "http://127.8.9.10",
        ] {
            assert!(Config::new(ok, &key(), None).is_ok(), "{ok}");
        }
        for bad in [
            "http://latch.example.com",
            "http://10.0.0.1:8177",
            "ftp://x",
            "latch.example.com",
            "",
        ] {
            assert!(
                matches!(Config::new(bad, &key(), None), Err(ClientError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_key_is_checked_offline() {
        let err = Config::new("https://x", KEY, None)
            .err()
            .expect("bad checksum");
        assert!(
            err.to_string().contains("checksum") || err.to_string().contains("mistyped"),
            "{err}"
        );
        let err = Config::new("https://x", "sk-not-latch", None)
            .err()
            .expect("not a key");
        assert!(
            !err.to_string().contains("sk-not-latch"),
            "the message quotes the key"
        );
        assert!(
            Config::new("https://x", &format!("{}\n", key()), None).is_ok(),
            "a trailing newline from a file is fine"
        );
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(1));
            assert!((500..=1500).contains(&d.as_millis()), "{d:?}");
        }
    }
}
