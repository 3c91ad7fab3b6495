//! One request through the broker: the checks of DESIGN §13 "Fail closed", the injection into
//! one header on an exact placeholder match, and the response streamed back with real values
//! replaced by their placeholders.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, Entry as HeaderMapEntry, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

use super::ca::RunCa;
use super::upstream::{Dialer, Resolve};
use super::{Entry, Routes};
use crate::core::broker::{self, Host, StreamSwap, Swap};

pub(super) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(super) type Answer = Response<BoxBody<Bytes, Error>>;

/// How long an upstream connection is kept for the next request.
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// What every request shares.
pub(super) struct State {
    pub(super) entries: Vec<Entry>,
    routes: Routes,
    client: Client<hyper_rustls::HttpsConnector<Dialer>, Incoming>,
    /// Forward-proxy mode's CA; `None` when the mode is off.
    pub(super) ca: Option<RunCa>,
    /// `--allow-host`: blind tunnels.
    pub(super) allowed: Vec<Host>,
    /// Connections for blind tunnels (the same resolution rules as the client's).
    pub(super) dialer: Dialer,
    /// Hosts a `CONNECT` was refused for (each said once).
    pub(super) refused: std::sync::Mutex<std::collections::HashSet<Host>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl State {
    pub(super) fn new(
        entries: Vec<Entry>,
        routes: Routes,
        resolve: &[Resolve],
        tls: rustls::ClientConfig,
        ca: Option<RunCa>,
        allowed: Vec<Host>,
    ) -> Self {
        let dialer = Dialer::new(resolve);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(dialer.clone());
        // A kept connection's write buffer still holds the last request's headers, the value
        // among them: connections are reused for a burst of requests, and closed (their
        // buffers wiped as they are freed, `launcher::alloc`) one second after the last.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        Self {
            entries,
            routes,
            client,
            ca,
            allowed,
            dialer,
            refused: std::sync::Mutex::default(),
        }
    }

    fn swaps(&self) -> Vec<Swap<'_>> {
        self.entries
            .iter()
            .map(|e| Swap {
                real: &e.real,
                placeholder: &e.placeholder,
            })
            .collect()
    }
}

/// Accepts connections until `stop` fires.
pub(super) async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("the credential broker cannot listen: {e}");
            return;
        }
    };
    // A fault for the tests of "the broker dies" (debug builds only): end after one request.
    #[cfg(debug_assertions)]
    let fault = std::env::var_os("LATCH_BROKER_FAULT").is_some_and(|v| v == "exit-after-request");
    #[cfg(debug_assertions)]
    let (served_tx, mut served) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        #[cfg(debug_assertions)]
        let faulted = async {
            if fault {
                served.recv().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(not(debug_assertions))]
        let faulted = std::future::pending::<()>();
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            () = faulted => {
                tracing::error!("LATCH_BROKER_FAULT: the broker ends");
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!("broker accept: {e}");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        #[cfg(debug_assertions)]
        let served_tx = served_tx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                #[cfg(debug_assertions)]
                let served_tx = served_tx.clone();
                async move {
                    let answer = handle(request, state).await;
                    #[cfg(debug_assertions)]
                    let _ = served_tx.try_send(());
                    Ok::<_, Infallible>(answer)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// A refusal: the status and one line saying why, marked as the broker's own.
pub(super) fn refuse(status: StatusCode, why: &str) -> Answer {
    let mut answer = Response::new(
        http_body_util::Full::new(Bytes::from(format!("latch broker: {why}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(why) {
        headers.insert("x-latch-broker", value);
    }
    answer
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), and the proxy's
/// own credentials.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Answer {
    let method = request.method().clone();
    if method == Method::TRACE || method.as_str() == "TRACK" {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "TRACE is never forwarded");
    }
    if method == Method::CONNECT {
        return super::tunnel::connect(request, &state);
    }
    if let Some(authority) = request.uri().authority() {
        // Absolute form: a client using the broker as a plain-HTTP proxy.
        // Brokered as written, or on the HTTPS port (`http://host/` names port 80 of a host
        // whose value goes only to its port 443).
        let brokered = Host::parse(authority.as_str()).is_ok_and(|h| {
            let on_443 = Host::parse(h.name()).ok();
            state
                .entries
                .iter()
                .any(|e| e.policy.allows(&h) || on_443.as_ref().is_some_and(|h| e.policy.allows(h)))
        });
        return refuse(
            StatusCode::FORBIDDEN,
            if brokered {
                "plain HTTP to a brokered host is refused: its value goes over TLS only"
            } else {
                "host not allowed"
            },
        );
    }
    let path = request.uri().path().to_owned();
    let Some((route, rest)) = path
        .strip_prefix('/')
        .map(|p| p.split_once('/').map_or((p, ""), |(r, rest)| (r, rest)))
    else {
        return refuse(StatusCode::NOT_FOUND, "no such route");
    };
    let Some(host) = state.routes.get(route).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!(
                "no route /{route}/: the routes are a preset (/openai/) or a brokered name (/NAME/)"
            ),
        );
    };
    let target = match request.uri().query() {
        Some(query) => format!("https://{}/{rest}?{query}", host.authority()),
        None => format!("https://{}/{rest}", host.authority()),
    };
    let Ok(uri) = target.parse::<Uri>() else {
        return refuse(StatusCode::BAD_REQUEST, "the path is not a valid URL path");
    };
    forward(request, uri, &host, state).await
}

/// Sends `request` to `uri` on `host` with the values injected, and answers what came back with
/// the values swapped out.
pub(super) async fn forward(
    request: Request<Incoming>,
    uri: Uri,
    host: &Host,
    state: Arc<State>,
) -> Answer {
    let (mut parts, body) = request.into_parts();
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    if let Ok(value) = HeaderValue::from_str(&host.authority()) {
        parts.headers.insert(header::HOST, value);
    }
    // Identity only: a compressed body could not be searched for a reflected value.
    parts.headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    inject(&mut parts.headers, host, &state);
    match state.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => swapped(response, host, state),
        Err(e) => {
            let why = upstream_failure(&e);
            tracing::warn!("broker: cannot reach {host}: {why}");
            refuse(
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach {host}: {why}"),
            )
        }
    }
}

/// The upstream's answer with every real value in its headers and body replaced by its
/// placeholder; a compressed one is refused.
fn swapped(response: Response<Incoming>, host: &Host, state: Arc<State>) -> Answer {
    let (mut parts, body) = response.into_parts();
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        // Asked for identity and compressed anyway: a compressed body cannot be searched for a
        // reflected value, so it is not passed on unsearched.
        return refuse(
            StatusCode::BAD_GATEWAY,
            &format!("{host} compressed its answer although asked not to; refused unsearched"),
        );
    }
    strip_hop_by_hop(&mut parts.headers);
    let swaps = state.swaps();
    for value in parts.headers.values_mut() {
        let mut bytes = value.as_bytes().to_vec();
        if broker::replace_in(&mut bytes, &swaps) > 0
            && let Ok(swapped) = HeaderValue::from_bytes(&bytes)
        {
            *value = swapped;
        }
    }
    drop(swaps);
    let body = Swapped {
        inner: body,
        state,
        swap: StreamSwap::default(),
        trailers: None,
        ended: false,
    };
    Response::from_parts(parts, body.boxed())
}

/// Why an upstream request failed, in words: the innermost cause, a certificate problem said as
/// one.
pub(super) fn upstream_failure(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    loop {
        let tls = cause.downcast_ref::<rustls::Error>();
        if let Some(rustls::Error::InvalidCertificate(why)) = tls {
            let why = match why {
                rustls::CertificateError::UnknownIssuer => {
                    "signed by a CA this machine does not trust"
                }
                rustls::CertificateError::Expired => "expired",
                rustls::CertificateError::NotValidForName => "not valid for this name",
                _ => "not valid",
            };
            return format!(
                "its certificate is {why}; for a private CA or a TLS-inspecting proxy, set LATCH_CA_CERT"
            );
        }
        // An io::Error's `source` skips the error it wraps: step into that one instead.
        let inner = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
        match inner {
            Some(next) => cause = next,
            None => return cause.to_string(),
        }
    }
}

/// Puts each real value into its policy's header, where that header's whole value is the
/// placeholder (with its scheme) and the request goes to one of the policy's hosts. Anything
/// else is left as the command wrote it: a placeholder sent elsewhere authenticates nothing.
fn inject(headers: &mut HeaderMap, host: &Host, state: &State) {
    for entry in &state.entries {
        if !entry.policy.allows(host) {
            continue;
        }
        for (name, form) in entry.policy.header.headers() {
            let HeaderMapEntry::Occupied(mut occupied) = headers.entry(*name) else {
                continue;
            };
            for value in occupied.iter_mut() {
                if let Some(real) =
                    broker::substitute(*form, value.as_bytes(), &entry.placeholder, &entry.real)
                {
                    // The header holds the value in a buffer that is wiped when hyper drops it.
                    if let Ok(new) = HeaderValue::from_maybe_shared(Bytes::from_owner(real)) {
                        *value = new;
                        entry.injected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// A response body with real values replaced by their placeholders as it streams: a chunk goes
/// on at once but for a tail that could be the start of a value; no empty chunk is sent.
struct Swapped {
    inner: Incoming,
    state: Arc<State>,
    swap: StreamSwap,
    trailers: Option<HeaderMap>,
    ended: bool,
}

impl Body for Swapped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.swap.push(&data, &this.state.swaps());
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
                                &out,
                            )))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.ended = true;
                    let rest = this.swap.finish();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(&rest)))));
                    }
                }
            }
        }
    }
}
