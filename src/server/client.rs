//! Who is on the other end of a request (DESIGN §4, §10): the client's address, taken from
//! `X-Forwarded-For` only when the connection comes from a `--trusted-proxy`, and its user
//! agent, as the audit log and the rate limiter see them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

/// Longest user agent kept (the rest is cut; control characters are dropped).
const MAX_USER_AGENT: usize = 256;

/// The client of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its address, if known.
    pub addr: Option<IpAddr>,
    /// Its `User-Agent`, cleaned and cut.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The client of the request in `parts`, behind the proxies in `trusted`.
    #[must_use]
    pub fn of(parts: &Parts, trusted: &[IpNet]) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Self {
            addr: peer.map(|peer| client_addr(peer, &parts.headers, trusted)),
            user_agent: user_agent(&parts.headers),
        }
    }

    /// The address as the audit log and the limiter write it.
    #[must_use]
    pub fn addr_text(&self) -> String {
        self.addr
            .map_or_else(|| "unknown".to_owned(), |a| canonical(a).to_string())
    }
}

/// An IPv4 address written as IPv6 (`::ffff:1.2.3.4`) is the IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy itself (read from the right, as
/// each proxy appends the address it saw). A malformed header is not believed: the peer is
/// the client then.
fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |a: IpAddr| trusted.iter().any(|net| net.contains(&canonical(a)));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return canonical(peer);
        };
        for hop in text.split(',') {
            match parse_hop(hop.trim()) {
                Some(addr) => hops.push(addr),
                None => return canonical(peer),
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(hop) {
            break;
        }
    }
    canonical(client)
}

/// One `X-Forwarded-For` entry: an address, possibly bracketed or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(addr);
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip())
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(axum::http::header::USER_AGENT)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Parses a `--trusted-proxy` value: a CIDR (`10.0.0.0/8`) or a single address.
///
/// # Errors
/// A message naming the value.
pub fn parse_trusted_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not a CIDR such as 10.0.0.0/8 or an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn with_xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = [parse_trusted_proxy("10.0.0.0/8").expect("cidr")];
        let headers = with_xff(&["203.0.113.7"]);
        assert_eq!(
            client_addr(ip("10.1.2.3"), &headers, &trusted),
            ip("203.0.113.7")
        );
        // A client that is not a trusted proxy cannot claim another address.
        assert_eq!(
            client_addr(ip("198.51.100.9"), &headers, &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(client_addr(ip("10.1.2.3"), &headers, &[]), ip("10.1.2.3"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client_and_spoofed_hops_on_the_left_are_ignored() {
        let trusted = [
            parse_trusted_proxy("10.0.0.0/8").expect("cidr"),
            parse_trusted_proxy("192.0.2.1").expect("address"),
        ];
        // The client wrote "1.1.1.1" itself; the proxies appended what they saw.
        let headers = with_xff(&["1.1.1.1, 203.0.113.7", "192.0.2.1"]);
        assert_eq!(
            client_addr(ip("10.0.0.5"), &headers, &trusted),
            ip("203.0.113.7")
        );
        let all_trusted = with_xff(&["10.9.9.9"]);
        assert_eq!(
            client_addr(ip("10.0.0.5"), &all_trusted, &trusted),
            ip("10.9.9.9")
        );
        let garbage = with_xff(&["not an address"]);
        assert_eq!(
            client_addr(ip("10.0.0.5"), &garbage, &trusted),
            ip("10.0.0.5")
        );
        let ported = with_xff(&["[2001:db8::1]:443", "203.0.113.8:80"]);
        assert_eq!(
            client_addr(ip("10.0.0.5"), &ported, &trusted),
            ip("203.0.113.8")
        );
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.5"), &with_xff(&["203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn user_agents_are_cleaned_and_cut() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::USER_AGENT,
            HeaderValue::from_bytes(format!("curl/8\t{}", "x".repeat(400)).as_bytes())
                .expect("value"),
        );
        let ua = user_agent(&headers).expect("kept");
        assert!(ua.starts_with("curl/8x"), "{ua}");
        assert_eq!(ua.chars().count(), MAX_USER_AGENT);
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("::1").is_ok());
    }
}
