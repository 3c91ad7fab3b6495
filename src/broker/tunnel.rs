//! Forward-proxy mode (DESIGN §13): `CONNECT` to a brokered host is answered by latch with a
//! leaf of the run CA, so each request inside can be checked and given its value; `CONNECT` to
//! an `--allow-host` host gets a blind tunnel once its ClientHello names that host; anything
//! else is 403.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::forward::{Answer, State, forward, refuse};
use crate::core::broker::Host;

/// What a `CONNECT` may open.
enum Opening {
    /// A brokered host: latch terminates TLS.
    Brokered(Host),
    /// An `--allow-host` host: bytes pass through untouched.
    Blind(Host),
}

/// Answers a `CONNECT`: 200 and the tunnel served once the client has the connection, or 403.
pub(super) fn connect(request: Request<Incoming>, state: &Arc<State>) -> Answer {
    let Some(host) = request
        .uri()
        .authority()
        .and_then(|a| Host::parse(a.as_str()).ok())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "CONNECT needs HOST:PORT, a host name or an IPv4 address",
        );
    };
    let opening = if state.entries.iter().any(|e| e.policy.allows(&host)) {
        Opening::Brokered(host)
    } else if state.allowed.contains(&host) {
        Opening::Blind(host)
    } else {
        // Said once per host on latch's stderr: the agent's own error may not say why.
        if state
            .refused
            .lock()
            .is_ok_and(|mut refused| refused.insert(host.clone()))
        {
            tracing::warn!(
                "broker: refused the command's connection to {host}: it is neither brokered nor named by --allow-host"
            );
        }
        return refuse(
            StatusCode::FORBIDDEN,
            &format!("host not allowed: {host} is neither brokered nor named by --allow-host"),
        );
    };
    if matches!(opening, Opening::Brokered(_)) && state.ca.is_none() {
        return refuse(StatusCode::FORBIDDEN, "forward-proxy mode is off");
    }
    let state = Arc::clone(state);
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                match opening {
                    Opening::Brokered(host) => terminate(io, host, state).await,
                    Opening::Blind(host) => blind(io, host, &state).await,
                }
            }
            Err(e) => tracing::debug!("broker: CONNECT upgrade: {e}"),
        }
    });
    let mut answer = Answer::new(
        http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *answer.status_mut() = StatusCode::OK;
    answer
}

use http_body_util::BodyExt as _;

/// Terminates the client's TLS with the run CA's leaf for `host` (its ClientHello must name
/// `host`), then serves each request inside as a request to `host`.
async fn terminate(io: TokioIo<hyper::upgrade::Upgraded>, host: Host, state: Arc<State>) {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let Ok(start) = acceptor.await else {
        return;
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    if !names(sni.as_deref(), &host) {
        tracing::warn!(
            "broker: a TLS handshake in the tunnel to {host} named {}: closed",
            sni.as_deref().unwrap_or("no host")
        );
        return;
    }
    let Some(config) = state
        .ca
        .as_ref()
        .and_then(|ca| ca.server_config(&host).ok())
    else {
        return;
    };
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    let service = hyper::service::service_fn(move |request| {
        let state = Arc::clone(&state);
        let host = host.clone();
        async move { Ok::<_, std::convert::Infallible>(inside(request, host, state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// One request inside a terminated tunnel: it must name the tunnel's host (421 otherwise).
async fn inside(request: Request<Incoming>, host: Host, state: Arc<State>) -> Answer {
    let method = request.method();
    if *method == Method::TRACE || method.as_str() == "TRACK" {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "TRACE is never forwarded");
    }
    if *method == Method::CONNECT {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "CONNECT inside a tunnel");
    }
    let named = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    if !named.as_deref().is_some_and(|n| host.is_named_by(n)) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "this tunnel is to {host}; the request names {}",
                named.as_deref().unwrap_or("no host")
            ),
        );
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let Ok(uri) = format!("https://{}{path}", host.authority()).parse::<Uri>() else {
        return refuse(StatusCode::BAD_REQUEST, "the path is not a valid URL path");
    };
    forward(request, uri, &host, state).await
}

/// A blind tunnel to an `--allow-host` host, opened once the ClientHello's SNI names it.
async fn blind(mut io: TokioIo<hyper::upgrade::Upgraded>, host: Host, state: &State) {
    let (hello, sni) = match read_client_hello(&mut io).await {
        Ok(read) => read,
        Err(why) => {
            tracing::warn!("broker: tunnel to {host}: {why}");
            return;
        }
    };
    if !names(sni.as_deref(), &host) {
        tracing::warn!(
            "broker: the TLS handshake in the tunnel to {host} named {}: closed",
            sni.as_deref().unwrap_or("no host")
        );
        return;
    }
    let Ok(uri) = format!("https://{}/", host.authority()).parse::<Uri>() else {
        return;
    };
    let mut upstream = match state.dialer.clone().dial(uri).await {
        Ok(stream) => stream.into_inner(),
        Err(e) => {
            tracing::warn!("broker: tunnel to {host}: {e}");
            return;
        }
    };
    if upstream.write_all(&hello).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
}

/// Whether a ClientHello's SNI names `host` (an address is not sent as SNI, so none is right
/// for an address).
fn names(sni: Option<&str>, host: &Host) -> bool {
    match sni {
        Some(sni) => sni.eq_ignore_ascii_case(host.name()),
        None => host.ip().is_some(),
    }
}

/// The largest ClientHello read before a blind tunnel opens.
const HELLO_MAX: usize = 64 * 1024;

/// Reads the client's first TLS handshake message, returning the bytes read (to be sent on)
/// and the host name its SNI extension names.
async fn read_client_hello(
    io: &mut TokioIo<hyper::upgrade::Upgraded>,
) -> Result<(Vec<u8>, Option<String>), String> {
    let mut raw = Vec::new();
    let mut handshake = Vec::new();
    loop {
        let mut header = [0u8; 5];
        io.read_exact(&mut header)
            .await
            .map_err(|e| format!("no TLS ClientHello: {e}"))?;
        if header[0] != 22 {
            return Err("the client did not start TLS".into());
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut record = vec![0u8; len];
        io.read_exact(&mut record)
            .await
            .map_err(|e| format!("a cut ClientHello: {e}"))?;
        raw.extend_from_slice(&header);
        raw.extend_from_slice(&record);
        handshake.extend_from_slice(&record);
        if handshake.len() >= 4 {
            let want = 4
                + (usize::from(handshake[1]) << 16
                    | usize::from(handshake[2]) << 8
                    | usize::from(handshake[3]));
            if handshake.len() >= want {
                return Ok((raw, sni_of(&handshake[..want])));
            }
        }
        if raw.len() > HELLO_MAX {
            return Err("the ClientHello is too large".into());
        }
    }
}

/// The `server_name` of a ClientHello handshake message, if it has one.
fn sni_of(message: &[u8]) -> Option<String> {
    fn take<'a>(at: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if at.len() < n {
            return None;
        }
        let (head, rest) = at.split_at(n);
        *at = rest;
        Some(head)
    }
    fn len8(at: &mut &[u8]) -> Option<usize> {
        take(at, 1).map(|b| usize::from(b[0]))
    }
    fn len16(at: &mut &[u8]) -> Option<usize> {
        take(at, 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    let mut at = message;
    if take(&mut at, 4)?[0] != 1 {
        return None; // not a ClientHello
    }
    take(&mut at, 2 + 32)?; // version, random
    let n = len8(&mut at)?;
    take(&mut at, n)?; // session id
    let n = len16(&mut at)?;
    take(&mut at, n)?; // cipher suites
    let n = len8(&mut at)?;
    take(&mut at, n)?; // compression methods
    let n = len16(&mut at)?;
    let mut extensions = take(&mut at, n)?;
    while !extensions.is_empty() {
        let kind = len16(&mut extensions)?;
        let n = len16(&mut extensions)?;
        let mut body = take(&mut extensions, n)?;
        if kind == 0 {
            let n = len16(&mut body)?;
            let mut names = take(&mut body, n)?;
            while !names.is_empty() {
                let name_type = len8(&mut names)?;
                let n = len16(&mut names)?;
                let name = take(&mut names, n)?;
                if name_type == 0 {
                    return std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls writes it for `name`.
    fn hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let mut out = Vec::new();
        client.write_tls(&mut out).expect("writes");
        out
    }

    #[test]
    fn the_sni_of_a_real_client_hello_and_none_of_garbage() {
        let bytes = hello("API.Example.com");
        // Past the 5-byte record header: the handshake message.
        assert_eq!(sni_of(&bytes[5..]).as_deref(), Some("api.example.com"));
        assert_eq!(sni_of(&bytes[5..40]), None);
        assert_eq!(sni_of(b"\x02\x00\x00\x00"), None);
        assert_eq!(sni_of(&[]), None);
        // An address is not sent as SNI.
        assert_eq!(sni_of(&hello("10.0.0.1")[5..]), None);
    }
}
