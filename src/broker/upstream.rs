//! The broker's way out (DESIGN §13 "Upstream connections"): its own name resolution, with
//! curl-style `--resolve` overrides and private addresses refused unless named, and TLS verified
//! against the platform's roots plus `LATCH_CA_CERT` — never the child's CA variables, which
//! exist only in the child's environment.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpStream;

use super::BrokerError;
use crate::core::broker::Host;

/// How long a connection to an upstream may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `--resolve HOST:PORT:ADDR`: connect to ADDR (an IP, or `IP:PORT` to change the port too)
/// when a request goes to HOST:PORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The host and port requests name.
    pub host: Host,
    /// Where to connect instead.
    pub addr: SocketAddr,
}

impl Resolve {
    /// Parses `HOST:PORT:ADDR`, as curl's `--resolve` (ADDR may carry its own port).
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let usage = || format!("`{text}` is not HOST:PORT:ADDR (api.openai.com:443:10.0.0.7)");
        let (host, rest) = text.split_once(':').ok_or_else(usage)?;
        let (port, addr) = rest.split_once(':').ok_or_else(usage)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(usage)?;
        let host = Host::parse(&format!("{host}:{port}")).map_err(|e| e.to_string())?;
        let addr = if let Ok(addr) = addr.parse::<SocketAddr>() {
            addr
        } else {
            let ip: IpAddr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| usage())?;
            SocketAddr::new(ip, port)
        };
        Ok(Self { host, addr })
    }
}

/// Whether an address is one a public API never has: loopback, private, link-local (the cloud
/// metadata address among them), shared, unspecified, multicast.
#[must_use]
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Opens TCP connections to upstream hosts: `--resolve` first, then an IP literal as it is,
/// then DNS with internal addresses dropped.
#[derive(Debug, Clone)]
pub struct Dialer {
    overrides: Arc<HashMap<(String, u16), SocketAddr>>,
}

impl Dialer {
    /// A dialer with these overrides.
    #[must_use]
    pub fn new(resolve: &[Resolve]) -> Self {
        let overrides = resolve
            .iter()
            .map(|r| ((r.host.name().to_owned(), r.host.port()), r.addr))
            .collect();
        Self {
            overrides: Arc::new(overrides),
        }
    }

    /// Connects to `uri`'s host and port.
    ///
    /// # Errors
    /// [`BrokerError::Upstream`] saying why, in words.
    pub(super) async fn dial(self, uri: Uri) -> Result<TokioIo<TcpStream>, BrokerError> {
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(443);
        let fail = BrokerError::Upstream;
        let candidates: Vec<SocketAddr> = if let Some(addr) =
            self.overrides.get(&(host.clone(), port))
        {
            vec![*addr]
        } else if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            // An address literal is only ever an upstream because a policy names it.
            vec![SocketAddr::new(ip, port)]
        } else {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| fail(format!("cannot resolve the name: {e}")))?
                .collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if public.is_empty() && !all.is_empty() {
                return Err(fail(format!(
                    "the name resolves only to internal addresses ({}); name the address with --resolve {host}:{port}:ADDR if that is intended",
                    all[0].ip()
                )));
            }
            public
        };
        let mut last = None;
        for addr in candidates {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(e)) => last = Some(format!("cannot connect to {addr}: {e}")),
                Err(_) => last = Some(format!("no answer from {addr} within 10 s")),
            }
        }
        Err(fail(
            last.unwrap_or_else(|| "the name has no address".into()),
        ))
    }
}

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<TcpStream>;
    type Error = BrokerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BrokerError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BrokerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().dial(uri))
    }
}

/// The TLS settings of every upstream connection: the platform's roots, plus `LATCH_CA_CERT`'s
/// certificates when it is set (a TLS-inspecting corporate proxy, a test CA).
///
/// # Errors
/// [`BrokerError::Config`] when the CA file cannot be read or holds no certificate.
pub fn tls_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, BrokerError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra = Vec::new();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            BrokerError::Config(format!("cannot read LATCH_CA_CERT {}: {e}", path.display()))
        })?;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            extra.push(cert.map_err(|e| {
                BrokerError::Config(format!("LATCH_CA_CERT {} is not PEM: {e}", path.display()))
            })?);
        }
        if extra.is_empty() {
            return Err(BrokerError::Config(format!(
                "LATCH_CA_CERT {} holds no certificate",
                path.display()
            )));
        }
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| BrokerError::Config(format!("cannot load the trusted roots: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError::Config(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// HTTPS over `dialer` with `tls` ([`tls_config`]), HTTP/1.1 only: every way out of the broker.
pub(super) fn https(
    tls: rustls::ClientConfig,
    dialer: Dialer,
) -> hyper_rustls::HttpsConnector<Dialer> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(dialer)
}

/// One `GET https://HOST{path}` with `headers`, outside any run (`latch byok test`): the same
/// resolution and TLS rules as the broker's, at most `limit` bytes of the answer kept.
/// The headers are wiped when hyper drops them (`launcher::alloc` wipes what it frees).
///
/// # Errors
/// [`BrokerError`] saying in words why the host could not be asked.
pub async fn get_once(
    host: &Host,
    path: &str,
    headers: http::HeaderMap,
    resolve: &[Resolve],
    ca_cert: Option<&Path>,
    limit: usize,
) -> Result<(u16, Vec<u8>), BrokerError> {
    use http_body_util::BodyExt as _;
    let https = https(tls_config(ca_cert)?, Dialer::new(resolve));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Empty<bytes::Bytes>>(https);
    let uri: Uri = format!("https://{}{path}", host.authority())
        .parse()
        .map_err(|_| BrokerError::Config(format!("not a URL path: {path}")))?;
    let mut request = http::Request::get(uri)
        .body(http_body_util::Empty::new())
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    *request.headers_mut() = headers;
    request.headers_mut().insert(
        http::header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
    let answer = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| BrokerError::Upstream(format!("{host} did not answer within 30 s")))?
        .map_err(|e| BrokerError::Upstream(super::forward::upstream_failure(&e)))?;
    let status = answer.status().as_u16();
    let mut body = answer.into_body();
    let mut kept = Vec::new();
    while kept.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = limit - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(e)) => return Err(BrokerError::Upstream(e.to_string())),
            None => break,
        }
    }
    Ok((status, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_entries_parse_like_curls() {
        let r = Resolve::parse("api.openai.com:443:10.0.0.7").expect("ok");
        assert_eq!(
            (r.host.to_string(), r.addr),
            (
                "api.openai.com".into(),
                "10.0.0.7:443".parse().expect("addr")
            )
        );
        let r = Resolve::parse("api.openai.com:443:127.0.0.1:8443").expect("ok");
        assert_eq!(r.addr, "127.0.0.1:8443".parse().expect("addr"));
        let r = Resolve::parse("a.example:8443:[::1]").expect("ok");
        assert_eq!(r.addr, "[::1]:8443".parse().expect("addr"));
        for bad in [
            "api.openai.com",
            "api.openai.com:443",
            "api.openai.com:x:1.2.3.4",
            "a.example:443:not-an-ip",
            "*.x:443:1.2.3.4",
        ] {
            assert!(Resolve::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["1.1.1.1", "162.159.140.245", "2606:4700::1"] {
            assert!(!is_internal(ip.parse().expect("ip")), "{ip}");
        }
    }
}
