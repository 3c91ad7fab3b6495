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
use crate::core::byok::{self, ERROR_BODY_LIMIT, Failure};

pub(super) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(super) type Answer = Response<BoxBody<Bytes, Error>>;

/// How long an upstream connection is kept for the next request.
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// What every request shares.
pub(super) struct State {
    pub(super) entries: Vec<Entry>,
    routes: Routes,
    client: Client<hyper_rustls::HttpsConnector<Dialer>, BoxBody<Bytes, Error>>,
    /// Forward-proxy mode's CA; `None` when the mode is off.
    pub(super) ca: Option<RunCa>,
    /// `--allow-host`: blind tunnels.
    pub(super) allowed: Vec<Host>,
    /// Connections for blind tunnels (the same resolution rules as the client's).
    pub(super) dialer: Dialer,
    /// Hosts a `CONNECT` was refused for (each said once).
    pub(super) refused: std::sync::Mutex<std::collections::HashSet<Host>>,
    /// When the broker started: the clock of the device keys' `Retry-After` waits.
    started: std::time::Instant,
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
        let https = super::upstream::https(tls, dialer.clone());
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
            started: std::time::Instant::now(),
        }
    }

    /// Every value the broker holds, each with the placeholder it is swapped for in answers: a
    /// device key's fallback (the team's value) too.
    fn swaps(&self) -> Vec<Swap<'_>> {
        let mut swaps = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            swaps.push(Swap {
                real: &e.real,
                placeholder: &e.placeholder,
            });
            if let Some(fallback) = e.byok.as_ref().and_then(|b| b.fallback.as_ref()) {
                swaps.push(Swap {
                    real: fallback,
                    placeholder: &e.placeholder,
                });
            }
        }
        swaps
    }

    /// Milliseconds since the broker started.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
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
    // A fault for the tests of "the broker dies" (debug builds only): end after one connection.
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
                async move { Ok::<_, Infallible>(handle(request, state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            // The fault fires once a connection is over, its answers all delivered: ending as
            // soon as an answer's head is ready raced the body to the client.
            #[cfg(debug_assertions)]
            let _ = served_tx.try_send(());
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
/// the values swapped out. A request that carries a device key's placeholder (DESIGN §14) goes
/// through [`device`].
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
    let body = body.map_err(Error::from).boxed();
    if let Some(at) = device_entry(&parts.headers, host, &state) {
        return device(parts, body, host, state, at).await;
    }
    inject(&mut parts.headers, host, &state, None);
    match send(&state, parts, body, host).await {
        Ok(response) => swapped(response, host, state, None),
        Err(refused) => refused,
    }
}

/// Sends one request upstream; a failure is answered 502 in words.
async fn send(
    state: &State,
    parts: http::request::Parts,
    body: BoxBody<Bytes, Error>,
    host: &Host,
) -> Result<Response<Incoming>, Answer> {
    state
        .client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| {
            let why = upstream_failure(&e);
            tracing::warn!("broker: cannot reach {host}: {why}");
            refuse(
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach {host}: {why}"),
            )
        })
}

/// The largest request body kept for a replay with the team's value (a bigger one is streamed
/// and never replayed).
const REPLAY_LIMIT: usize = 32 * 1024 * 1024;

/// The entry whose device key (DESIGN §14) this request would carry: its placeholder is in one
/// of its policy's headers and the request goes to one of its hosts.
fn device_entry(headers: &HeaderMap, host: &Host, state: &State) -> Option<usize> {
    state.entries.iter().position(|entry| {
        entry.byok.is_some()
            && entry.policy.allows(host)
            && entry.policy.header.headers().iter().any(|(name, _)| {
                headers
                    .get_all(*name)
                    .iter()
                    .any(|v| memchr::memmem::find(v.as_bytes(), &entry.placeholder).is_some())
            })
    })
}

/// A request made with a device key (DESIGN §14 "Failures"): sent with the device key; an
/// answer that says the key is invalid, limited or the provider overloaded is classified from
/// its status and the start of its body. With the team's value kept (`--fallback-to-team`) such
/// a request is replayed once with it (straight away while the provider's `Retry-After` runs);
/// without, the provider's answer goes to the command as it came, marked `x-latch-byok`, and an
/// invalid key is said once on latch's stderr.
async fn device(
    parts: http::request::Parts,
    body: BoxBody<Bytes, Error>,
    host: &Host,
    state: Arc<State>,
    at: usize,
) -> Answer {
    let entry = &state.entries[at];
    let Some(byok) = entry.byok.as_ref() else {
        return refuse(StatusCode::BAD_GATEWAY, "no device key");
    };
    let (provider, fallback) = (byok.provider, byok.fallback.is_some());
    let waiting = fallback && byok.wait_until.load(Ordering::Relaxed) > state.now_ms();
    // The request's headers as the command wrote them (placeholders only), for a replay.
    let original = fallback.then(|| parts.clone());
    let (body, kept) = if fallback {
        match read_up_to(body, REPLAY_LIMIT).await {
            Ok(Ok(whole)) => (full(whole.clone()), Some(whole)),
            Ok(Err(partial)) => (partial, None),
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request: {e}"),
                );
            }
        }
    } else {
        (body, None)
    };
    let mut parts = parts;
    if waiting {
        inject(&mut parts.headers, host, &state, Some(at));
        byok.fell_back.fetch_add(1, Ordering::Relaxed);
    } else {
        inject(&mut parts.headers, host, &state, None);
    }
    let response = match send(&state, parts, body, host).await {
        Ok(response) => response,
        Err(refused) => return refused,
    };
    let status = response.status();
    if waiting || !(status.is_client_error() || status.is_server_error()) {
        return swapped(response, host, state, None);
    }
    let (head, body) = response.into_parts();
    let (start, rest) = match read_up_to(body.map_err(Error::from).boxed(), ERROR_BODY_LIMIT).await
    {
        Ok(Ok(whole)) => (whole, None),
        Ok(Err(partial)) => (Bytes::new(), Some(partial)),
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, &format!("{host}: {e}")),
    };
    let class = rest
        .is_none()
        .then(|| byok::classify(provider, status.as_u16(), &start))
        .flatten();
    let Some(class) = class else {
        let body = rest.unwrap_or_else(|| full(start));
        return swapped(Response::from_parts(head, body), host, state, None);
    };
    if let (Some(mut again), Some(whole)) = (original, kept) {
        if class != Failure::Invalid
            && let Some(seconds) = retry_after(&head.headers)
        {
            byok.wait_until.store(
                state.now_ms().saturating_add(seconds.saturating_mul(1000)),
                Ordering::Relaxed,
            );
        }
        say(entry, class, status, host, true);
        inject(&mut again.headers, host, &state, Some(at));
        byok.fell_back.fetch_add(1, Ordering::Relaxed);
        return match send(&state, again, full(whole), host).await {
            Ok(response) => swapped(response, host, state, None),
            Err(refused) => refused,
        };
    }
    say(entry, class, status, host, false);
    swapped(
        Response::from_parts(head, full(start)),
        host,
        state,
        Some(class),
    )
}

/// Says what became of a request a device key could not make: an invalid key once per run on
/// latch's stderr, a limit at `-v`.
fn say(entry: &Entry, class: Failure, status: StatusCode, host: &Host, replayed: bool) {
    let Some(byok) = entry.byok.as_ref() else {
        return;
    };
    let (provider, name) = (byok.provider, &entry.name);
    let status = status.as_u16();
    // Why the team's key was not used instead.
    let instead = if byok.fallback.is_some() {
        "its body was over 32 MiB, too big to keep for a replay with the team's key"
    } else {
        "--fallback-to-team would replay it with the team's key"
    };
    if class == Failure::Invalid {
        if byok.said_invalid.swap(true, Ordering::Relaxed) {
            return;
        }
        let then = if replayed {
            format!("requests go on with the team's {name} (--fallback-to-team)")
        } else {
            format!(
                "the command got the provider's error, and the team's {name} is not used in its place ({instead}; --no-byok runs with the team's)"
            )
        };
        tracing::warn!(
            "your {} key (BYOK) was refused by {host} as invalid (HTTP {status}): {then}. `latch byok set {}` stores a new key",
            provider.title(),
            provider.as_str()
        );
    } else if replayed {
        tracing::info!(
            "your {} key (BYOK): {} (HTTP {status}); the request is replayed with the team's {name}",
            provider.title(),
            class.as_str()
        );
    } else {
        tracing::info!(
            "your {} key (BYOK): {} (HTTP {status}); passed to the command, not retried ({instead})",
            provider.title(),
            class.as_str()
        );
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the providers), at most an hour.
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.min(3600))
}

/// A whole body of `bytes`.
fn full(bytes: Bytes) -> BoxBody<Bytes, Error> {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}

/// Reads `body` to its end if it has at most `limit` bytes: `Ok(Ok(whole))`; else
/// `Ok(Err(body))`, a body that yields what was read and then the rest, unchanged. Trailers of
/// a body read whole are dropped (the providers send none).
async fn read_up_to(
    mut body: BoxBody<Bytes, Error>,
    limit: usize,
) -> Result<Result<Bytes, BoxBody<Bytes, Error>>, Error> {
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            read.extend_from_slice(&data);
            if read.len() > limit {
                let head = Some(read.freeze());
                return Ok(Err(Chained { head, rest: body }.boxed()));
            }
        }
    }
    Ok(Ok(read.freeze()))
}

/// A body read in part (`head`), then the rest of it.
struct Chained {
    head: Option<Bytes>,
    rest: BoxBody<Bytes, Error>,
}

impl Body for Chained {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.head.take() {
            Some(head) => Poll::Ready(Some(Ok(Frame::data(head)))),
            None => Pin::new(&mut self.rest).poll_frame(cx),
        }
    }
}

/// The upstream's answer with every real value in its headers and body replaced by its
/// placeholder; a compressed one is refused. `byok` marks a device key's refusal passed on.
fn swapped<B>(
    response: Response<B>,
    host: &Host,
    state: Arc<State>,
    byok: Option<Failure>,
) -> Answer
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<Error>,
{
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
    if let Some(class) = byok {
        parts
            .headers
            .insert("x-latch-byok", HeaderValue::from_static(class.code()));
    }
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
        inner: body.map_err(Into::into).boxed(),
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
/// The entry at `team` gets the team's value it keeps for a device key instead of the device
/// key (a replay, DESIGN §14).
fn inject(headers: &mut HeaderMap, host: &Host, state: &State, team: Option<usize>) {
    for (at, entry) in state.entries.iter().enumerate() {
        if !entry.policy.allows(host) {
            continue;
        }
        let secret = match (team == Some(at), entry.byok.as_ref()) {
            (true, Some(byok)) => byok.fallback.as_ref().unwrap_or(&entry.real),
            _ => &entry.real,
        };
        for (name, form) in entry.policy.header.headers() {
            let HeaderMapEntry::Occupied(mut occupied) = headers.entry(*name) else {
                continue;
            };
            for value in occupied.iter_mut() {
                if let Some(real) =
                    broker::substitute(*form, value.as_bytes(), &entry.placeholder, secret)
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
    inner: BoxBody<Bytes, Error>,
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
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body in chunks of `size` bytes.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
        }
    }

    fn chunked(bytes: &'static [u8], size: usize) -> BoxBody<Bytes, Error> {
        Chunks(bytes.chunks(size).map(Bytes::from_static).collect()).boxed()
    }

    #[tokio::test]
    async fn a_body_over_the_limit_comes_back_whole_as_read_then_the_rest() {
        let text: &'static [u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let whole = read_up_to(chunked(text, 7), 100).await.expect("reads");
        assert_eq!(whole.expect("under the limit").as_ref(), text);
        let partial = read_up_to(chunked(text, 7), 10).await.expect("reads");
        let Err(rest) = partial else {
            panic!("over the limit")
        };
        let again = rest.collect().await.expect("reads").to_bytes();
        assert_eq!(again.as_ref(), text, "nothing lost, nothing repeated");
    }
}
