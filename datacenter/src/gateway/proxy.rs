//! One HTTP request through the gateway: route it, pick a target and a
//! replica, forward it on a pooled HTTP/1.1 connection, and stream the
//! answer back. Everything here runs per request, so it avoids locks and
//! allocations it can do without.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::metrics::{Registry, RouteMetrics};
use super::pool::{self, Sender};
use super::table::{normalize_host, Route, Table, Target};
use super::upstream::{ActiveGuard, Backend, Upstreams};
use crate::api::Balance;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What every request of one gateway shares.
pub(crate) struct Shared {
    pub(crate) table: RwLock<Arc<Table>>,
    /// Bumped by every `apply`, so connections can keep their table until
    /// it changes instead of locking per request.
    pub(crate) generation: AtomicU64,
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: u64,
    /// Port of the HTTPS listener, for redirects.
    pub(crate) https_port: Option<u16>,
    pub(crate) metrics: Registry,
    pub(crate) unmatched: Arc<RouteMetrics>,
    pub(crate) ids: RequestIds,
}

impl Shared {
    pub(crate) fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces `table` with the current one if an `apply` happened since
    /// generation `seen`.
    pub(crate) fn refresh(&self, seen: &mut u64, table: &mut Arc<Table>) {
        let now = self.generation.load(Ordering::Acquire);
        if now != *seen {
            *seen = now;
            *table = self.table();
        }
    }

    pub(crate) fn set_table(&self, table: Table) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// Per client connection, computed once rather than per request.
pub(crate) struct Conn {
    pub(crate) client_ip: HeaderValue,
    pub(crate) tls: bool,
}

impl Conn {
    pub(crate) fn new(ip: IpAddr, tls: bool) -> Conn {
        let ip = ip.to_canonical();
        Conn {
            client_ip: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            tls,
        }
    }
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let start = Instant::now();
    let table = shared.table();
    let route = match find_route(&shared, &conn, &table, &req) {
        Ok(route) => route,
        Err(resp) => {
            shared
                .unmatched
                .record(resp.status().as_u16(), start.elapsed());
            return Ok(resp);
        }
    };
    let resp = match route.pick() {
        Some(target) => forward(&shared, &conn, route, target, req).await,
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("route {} has no target with a weight above 0\n", route.id),
        ),
    };
    route
        .metrics
        .record(resp.status().as_u16(), start.elapsed());
    Ok(resp)
}

/// The matching rule, or the gateway's own answer (400, 404, 308).
#[allow(clippy::result_large_err)] // the answer is returned at once, not stored
fn find_route<'t>(
    shared: &Shared,
    conn: &Conn,
    table: &'t Table,
    req: &Request<Incoming>,
) -> Result<&'t Route, Response<RespBody>> {
    let raw = match req.uri().authority() {
        // Absolute-form and HTTP/2's :authority win over Host (RFC 9112 §3.2.2).
        Some(a) => Some(a.as_str().rsplit('@').next().unwrap_or_default()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    };
    let host = normalize_host(raw.unwrap_or_default());
    if host.is_empty() {
        return Err(text(StatusCode::BAD_REQUEST, "missing Host header\n"));
    }
    let path = req.uri().path();
    let Some(route) = table.find(&host, path, req.headers()) else {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!(
                "no route for host {} path {}\n",
                clip(&host, 255),
                clip(path, 256)
            ),
        ));
    };
    if route.https_redirect && !conn.tls {
        let port = match shared.https_port {
            Some(443) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let location = format!("https://{host}{port}{pq}");
        return Err(match HeaderValue::from_str(&location) {
            Ok(v) => {
                let mut resp = text(
                    StatusCode::PERMANENT_REDIRECT,
                    format!("redirecting to {location}\n"),
                );
                resp.headers_mut().insert(header::LOCATION, v);
                resp
            }
            Err(_) => text(StatusCode::BAD_REQUEST, "invalid Host header\n"),
        });
    }
    Ok(route)
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn forward(
    shared: &Shared,
    conn: &Conn,
    route: &Route,
    target: &Target,
    mut req: Request<Incoming>,
) -> Response<RespBody> {
    if content_length(req.headers()).is_some_and(|n| n > shared.max_body_bytes) {
        return too_large(shared);
    }
    let websocket = req.version() == Version::HTTP_11 && is_websocket(req.headers());
    let request_id = prepare(shared, conn, &mut req, websocket);
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let req = req.map(|body| ProxyBody {
        inner: body,
        remaining: shared.max_body_bytes,
    });

    let (backend, sender) = match checkout(shared, route.balance, target).await {
        Ok(x) => x,
        Err(None) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no ready replica of {}\n", target.label),
            )
        }
        Err(Some(e)) => {
            tracing::debug!(target = %target.label, error = %e, "upstream connect failed");
            return text(
                StatusCode::BAD_GATEWAY,
                format!("could not connect to {}\n", target.label),
            );
        }
    };
    let guard = ActiveGuard::new(backend);
    let sent =
        tokio::time::timeout(shared.request_timeout, send(shared, &guard.0, sender, req)).await;
    let (mut resp, sender) = match sent {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            if e.too_large() {
                return too_large(shared);
            }
            tracing::debug!(target = %target.label, backend = %guard.0.addr, error = %e, "upstream request failed");
            return text(
                StatusCode::BAD_GATEWAY,
                format!("{} failed to answer: {}\n", target.label, e.kind()),
            );
        }
        Err(_) => {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "{} did not answer within {} s\n",
                    target.label,
                    shared.request_timeout.as_secs_f64()
                ),
            )
        }
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("{} switched protocols unasked\n", target.label),
            );
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(tunnel(client_upgrade, upstream_upgrade, guard));
        strip_hop_by_hop(resp.headers_mut(), true);
        resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
        return resp.map(|_| RespBody::Full(None));
    }
    strip_hop_by_hop(resp.headers_mut(), false);
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    resp.map(|body| {
        let mut body = UpstreamBody {
            inner: body,
            lease: Some(Lease { sender, guard }),
        };
        body.release_if_done();
        RespBody::Upstream(body)
    })
}

/// An upstream connection for `target`, opened (or taken warm from the pool)
/// before the request body is handed over: a refused connection can then be
/// retried on another replica, since nothing was sent. `Err(None)` means the
/// target has no replica at all.
async fn checkout(
    shared: &Shared,
    balance: Balance,
    target: &Target,
) -> Result<(Arc<Backend>, Sender), Option<std::io::Error>> {
    let mut failed: Option<Arc<Backend>> = None;
    let mut error = None;
    for _ in 0..2 {
        let Some(backend) = target.upstream.pick(balance, failed.as_deref()) else {
            break;
        };
        while let Some(mut sender) = backend.pool.take(Instant::now()) {
            if sender.is_ready() {
                return Ok((backend, sender));
            }
            // Just returned: its driver may not have run since the last response.
            if let Ok(Ok(())) = tokio::time::timeout(shared.connect_timeout, sender.ready()).await {
                return Ok((backend, sender));
            }
        }
        match pool::open(backend.addr, shared.connect_timeout).await {
            Ok(sender) => {
                backend.succeeded();
                return Ok((backend, sender));
            }
            Err(e) => {
                backend.eject();
                error = Some(e);
                failed = Some(backend);
            }
        }
    }
    Err(error)
}

enum SendError {
    Connect(std::io::Error),
    Http(hyper::Error),
}

impl SendError {
    fn too_large(&self) -> bool {
        let SendError::Http(e) = self else {
            return false;
        };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if s.downcast_ref::<BodyError>()
                .is_some_and(|b| matches!(b, BodyError::TooLarge))
            {
                return true;
            }
            source = s.source();
        }
        false
    }

    fn kind(&self) -> &'static str {
        match self {
            SendError::Connect(_) => "could not reconnect",
            SendError::Http(e) if e.is_incomplete_message() => "connection closed early",
            SendError::Http(e) if e.is_parse() => "invalid HTTP response",
            SendError::Http(_) => "connection error",
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => e.fmt(f),
            SendError::Http(e) => e.fmt(f),
        }
    }
}

async fn send(
    shared: &Shared,
    backend: &Backend,
    mut sender: Sender,
    req: Request<ProxyBody>,
) -> Result<(Response<Incoming>, Sender), SendError> {
    match sender.try_send_request(req).await {
        Ok(resp) => Ok((resp, sender)),
        Err(mut e) => {
            let Some(req) = e.take_message() else {
                return Err(SendError::Http(e.into_error()));
            };
            // The warm connection closed before the request went out: nothing
            // was sent, so a fresh connection to the same replica is safe.
            let mut fresh = pool::open(backend.addr, shared.connect_timeout)
                .await
                .map_err(SendError::Connect)?;
            let resp = fresh.send_request(req).await.map_err(SendError::Http)?;
            Ok((resp, fresh))
        }
    }
}

async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    _in_flight: ActiveGuard,
) {
    let (client, upstream) = tokio::join!(client, upstream);
    let (Ok(client), Ok(upstream)) = (client, upstream) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}

/// Turns the client's request into the upstream's: origin-form URI,
/// HTTP/1.1, no hop-by-hop headers, forwarding headers. Returns the
/// request id, echoed on the response.
fn prepare(
    shared: &Shared,
    conn: &Conn,
    req: &mut Request<Incoming>,
    websocket: bool,
) -> HeaderValue {
    let from_h2 = req.version() == Version::HTTP_2;
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        if let Some(authority) = req.uri().authority() {
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(host) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    if from_h2 {
        merge_cookies(headers);
    }
    strip_hop_by_hop(headers, websocket);
    // Already answered by the gateway's own HTTP server.
    headers.remove(header::EXPECT);

    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        None => conn.client_ip.clone(),
        Some(_) => {
            let mut chain = String::new();
            for v in headers.get_all(&X_FORWARDED_FOR) {
                if let Ok(v) = v.to_str() {
                    chain.push_str(v);
                    chain.push_str(", ");
                }
            }
            chain.push_str(conn.client_ip.to_str().unwrap_or_default());
            HeaderValue::from_str(&chain).unwrap_or_else(|_| conn.client_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    match headers.get(&X_REQUEST_ID) {
        Some(id) if sane_request_id(id.as_bytes()) => id.clone(),
        _ => {
            let id = shared.ids.next();
            headers.insert(X_REQUEST_ID.clone(), id.clone());
            id
        }
    }
}

pub(crate) fn sane_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b))
}

/// HTTP/2 may split cookies over several fields; HTTP/1.1 wants one.
fn merge_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let joined = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name == header::PROXY_AUTHENTICATE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Removes the headers that concern only one connection. For an upgrade
/// (WebSocket), `Upgrade` stays and `Connection` says so.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One scan first: most messages carry none of these.
    if headers.keys().any(is_hop_by_hop) {
        // Fields named by Connection are hop-by-hop too.
        let mut listed: Vec<HeaderName> = Vec::new();
        for v in headers.get_all(header::CONNECTION) {
            for token in v.to_str().unwrap_or_default().split(',') {
                let token = token.trim();
                if token.is_empty()
                    || token.eq_ignore_ascii_case("close")
                    || token.eq_ignore_ascii_case("keep-alive")
                    || token.eq_ignore_ascii_case("upgrade")
                {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    listed.push(name);
                }
            }
        }
        for name in listed {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
        headers.remove(header::TE);
        headers.remove(header::TRAILER);
        headers.remove(header::TRANSFER_ENCODING);
        headers.remove(header::PROXY_AUTHORIZATION);
        headers.remove(header::PROXY_AUTHENTICATE);
        headers.remove(&KEEP_ALIVE);
        headers.remove(&PROXY_CONNECTION);
        if !upgrade {
            headers.remove(header::UPGRADE);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    upgrade
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large(shared: &Shared) -> Response<RespBody> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than {} bytes\n", shared.max_body_bytes),
    )
}

/// An answer from the gateway itself: a short plain-text message.
pub(crate) fn text(status: StatusCode, message: impl Into<Bytes>) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::Full(Some(message.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Unique request ids without a lock: a per-process random prefix and a
/// counter scrambled by a bijective mix (so ids never repeat).
pub(crate) struct RequestIds {
    prefix: [u8; 16],
    seed: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> RequestIds {
        let a: u64 = rand::random();
        let mut prefix = [0u8; 16];
        hex(a, &mut prefix);
        RequestIds {
            prefix,
            seed: rand::random(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let mut buf = [0u8; 32];
        self.write(&mut buf);
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }

    /// Writes a fresh id as 32 lowercase hex digits.
    pub(crate) fn write(&self, buf: &mut [u8]) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        buf[..16].copy_from_slice(&self.prefix);
        hex(mix(self.seed.wrapping_add(n)), &mut buf[16..32]);
    }
}

fn hex(mut x: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(x & 0xf) as usize];
        x >>= 4;
    }
}

/// splitmix64's finalizer: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// The client's request body on its way upstream, cut off past the limit.
pub(crate) struct ProxyBody {
    inner: Incoming,
    remaining: u64,
}

#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Client(hyper::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("request body too large"),
            BodyError::Client(e) => write!(f, "reading the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body: the gateway's own text, or an upstream's stream.
pub(crate) enum RespBody {
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
}

/// Streams an upstream response, then hands its connection back to the
/// pool once the last byte was read (a half-read connection is dropped).
pub(crate) struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
}

struct Lease {
    sender: Sender,
    guard: ActiveGuard,
}

impl UpstreamBody {
    fn release_if_done(&mut self) {
        if self.inner.is_end_stream() {
            if let Some(lease) = self.lease.take() {
                lease.guard.0.pool.put(lease.sender, Instant::now());
            }
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        self.release_if_done();
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RespBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            RespBody::Upstream(body) => {
                let polled = Pin::new(&mut body.inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        if let Some(lease) = body.lease.take() {
                            lease.guard.0.pool.put(lease.sender, Instant::now());
                        }
                    }
                    Poll::Ready(Some(Ok(_))) => body.release_if_done(),
                    Poll::Ready(Some(Err(_))) => body.lease = None,
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(data) => data.is_none(),
            RespBody::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RespBody::Upstream(body) => body.inner.size_hint(),
        }
    }
}
