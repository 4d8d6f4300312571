//! The HTTP/1.1 fast path: one task per client connection parses request
//! heads in place (httparse), writes the rewritten head straight onto a
//! pooled upstream socket and passes bodies through byte for byte. No
//! header maps, channels or extra tasks per request — this is where the
//! gateway's throughput comes from. Anything unusual (HTTP/2 prior
//! knowledge, HTTP/1.0, absolute-form targets, CONNECT) is handed to the
//! hyper path with the bytes already read.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use super::framing::{classify, parse_length, tokens, Chunked, Framing, Known};
use super::metrics::RouteMetrics;
use super::pool::{self, UpConn};
use super::proxy::{Conn, Shared};
use super::server::{self, Http};
use super::table::{normalize_host, Route, Table, Target};
use super::upstream::{ActiveGuard, Backend};

/// Largest request or response head.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;
/// Idle keep-alive connections and stalled clients are closed after this
/// (give or take `REARM`, see `Idle`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const REARM: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 16 * 1024;
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

pub(crate) async fn serve<S>(io: S, conn: Arc<Conn>, shared: Arc<Shared>, http: Arc<Http>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut seen = u64::MAX;
    let mut table = shared.table();
    let mut c = ClientConn {
        io,
        buf: BytesMut::with_capacity(8 * 1024),
        out: Vec::with_capacity(2 * 1024),
        idle: Deadline::new(CLIENT_TIMEOUT, REARM),
        upstream: Deadline::new(shared.request_timeout, shared.request_timeout / 20),
        now: Instant::now(),
        conn,
    };
    loop {
        match c.exchange(&shared, &mut seen, &mut table).await {
            Next::KeepAlive => continue,
            Next::Close => break,
            Next::HandOver => {
                let ClientConn { io, buf, conn, .. } = c;
                let io = Rewind {
                    pre: buf.freeze(),
                    inner: io,
                };
                return server::serve_hyper(io, conn, shared, http).await;
            }
        }
    }
    let _ = c.io.shutdown().await;
}

enum Next {
    KeepAlive,
    Close,
    HandOver,
}

/// A timeout that is re-armed only when the last arming is more than
/// `slack` old, so it fires between `period - slack` and `period` after
/// `rearm`: resetting a timer per request costs more than that precision
/// is worth.
struct Deadline {
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
    period: Duration,
    slack: Duration,
}

impl Deadline {
    fn new(period: Duration, slack: Duration) -> Deadline {
        let now = tokio::time::Instant::now();
        Deadline {
            sleep: Box::pin(tokio::time::sleep_until(now + period)),
            armed: now.into_std(),
            period,
            slack,
        }
    }

    fn rearm(&mut self, now: Instant) {
        if now.saturating_duration_since(self.armed) > self.slack {
            self.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(now + self.period));
            self.armed = now;
        }
    }
}

struct ClientConn<S> {
    io: S,
    /// Bytes read from the client and not yet handled.
    buf: BytesMut,
    /// Head being written (upstream request, then client response).
    out: Vec<u8>,
    /// Client reads and writes.
    idle: Deadline,
    /// The upstream's response head.
    upstream: Deadline,
    /// The last clock reading, end of the previous request.
    now: Instant,
    conn: Arc<Conn>,
}

/// The request id, kept on the stack for the response header.
struct RequestId {
    bytes: [u8; 128],
    len: usize,
}

impl RequestId {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What to do with a parsed request head.
enum Plan<'t> {
    Partial,
    HandOver,
    /// The gateway answers itself; the response is in `out`.
    Answer {
        head_len: usize,
        status: u16,
        close: bool,
        metrics: &'t RouteMetrics,
    },
    Forward(Forward<'t>),
}

struct Forward<'t> {
    head_len: usize,
    route: &'t Route,
    target: &'t Target,
    body: Framing,
    keep_alive: bool,
    websocket: bool,
    expect_continue: bool,
    head_request: bool,
    /// GET, HEAD or OPTIONS: safe to send again when a replica dies holding it.
    idempotent: bool,
    id: RequestId,
}

/// What the upstream's response head says.
struct Reply {
    head_len: usize,
    status: u16,
    body: Framing,
    /// The upstream connection cannot carry another request.
    upstream_close: bool,
    /// The client connection ends after this response.
    client_close: bool,
}

enum HeadError {
    /// Closed (or reset) before a byte of response: safe to retry on a
    /// fresh connection when the request was sent whole.
    Closed,
    Timeout,
    Invalid(&'static str),
    Io,
}

impl<S> ClientConn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn read_client(&mut self) -> io::Result<usize> {
        reserve(&mut self.buf);
        self.idle.rearm(self.now);
        tokio::select! {
            biased;
            r = self.io.read_buf(&mut self.buf) => r,
            _ = self.idle.sleep.as_mut() => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Bounded by the idle deadline, re-armed from the last clock reading
    /// (taken when the response head arrived).
    async fn write_client(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.idle.rearm(self.now);
        tokio::select! {
            biased;
            r = self.io.write_all(bytes) => r,
            _ = self.idle.sleep.as_mut() => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// One request and its response.
    /// `table` is refreshed once the request has arrived, not before waiting
    /// for it: a keep-alive connection idle across a rule change must route
    /// its next request by the new rules.
    async fn exchange(&mut self, shared: &Shared, seen: &mut u64, table: &mut Arc<Table>) -> Next {
        let plan = loop {
            if !self.buf.is_empty() {
                if self.buf.starts_with(PREFACE) {
                    return Next::HandOver;
                }
                if !(self.buf.len() < PREFACE.len() && PREFACE.starts_with(&self.buf)) {
                    shared.refresh(seen, table);
                    match plan(&self.buf, &self.conn, shared, table, &mut self.out) {
                        Plan::Partial => {}
                        p => break p,
                    }
                }
                if self.buf.len() >= MAX_HEAD {
                    self.out.clear();
                    answer(&mut self.out, 431, "request head too large\n", true, None);
                    let out = std::mem::take(&mut self.out);
                    let _ = self.write_client(&out).await;
                    return Next::Close;
                }
            }
            match self.read_client().await {
                Ok(0) | Err(_) => return Next::Close,
                Ok(_) => {}
            }
        };
        let start = Instant::now();
        match plan {
            Plan::Partial => Next::Close,
            Plan::HandOver => Next::HandOver,
            Plan::Answer {
                head_len,
                status,
                close,
                metrics,
            } => {
                self.buf.advance(head_len);
                let elapsed = start.elapsed();
                self.now = start + elapsed;
                metrics.record(status, elapsed);
                let out = std::mem::take(&mut self.out);
                let written = self.write_client(&out).await;
                self.out = out;
                if written.is_err() || close {
                    Next::Close
                } else {
                    Next::KeepAlive
                }
            }
            Plan::Forward(f) => {
                self.buf.advance(f.head_len);
                let metrics = &f.route.metrics;
                let mut recorded = false;
                let (status, next) = self.forward(shared, f, start, &mut recorded).await;
                if !recorded {
                    let elapsed = start.elapsed();
                    self.now = start + elapsed;
                    metrics.record(status, elapsed);
                }
                next
            }
        }
    }

    /// Sends a gateway answer (the request body, if any, is not read, so
    /// the connection closes when there is one).
    async fn answer(&mut self, status: u16, msg: &str, close: bool) -> (u16, Next) {
        // Errors may come after a long wait (504): the write deadline must
        // start from now.
        self.now = Instant::now();
        self.out.clear();
        answer(&mut self.out, status, msg, close, None);
        let out = std::mem::take(&mut self.out);
        let written = self.write_client(&out).await;
        self.out = out;
        let next = if close || written.is_err() {
            Next::Close
        } else {
            Next::KeepAlive
        };
        (status, next)
    }

    async fn forward(
        &mut self,
        shared: &Shared,
        mut f: Forward<'_>,
        start: Instant,
        recorded: &mut bool,
    ) -> (u16, Next) {
        let max_body = shared.max_body_bytes;
        let body_close = !f.body.is_empty();
        if matches!(f.body, Framing::Length(n) if n > max_body) {
            return self.answer(413, &too_large(max_body), true).await;
        }

        let (mut backend, mut up, mut reused) = match checkout(shared, f.route, f.target, start)
            .await
        {
            Ok(x) => x,
            Err(None) => {
                let msg = format!("no ready replica of {}\n", f.target.label);
                return self.answer(503, &msg, body_close || !f.keep_alive).await;
            }
            Err(Some(e)) => {
                tracing::debug!(target = %f.target.label, error = %e, "upstream connect failed");
                let msg = format!("could not connect to {}\n", f.target.label);
                return self.answer(502, &msg, body_close || !f.keep_alive).await;
            }
        };
        let mut _in_flight = ActiveGuard::new(backend.clone());
        // Whether the request already went to a second replica.
        let mut moved = false;

        if f.expect_continue
            && !f.body.is_empty()
            && self.buf.is_empty()
            && self
                .write_client(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return (499, Next::Close);
        }
        // The head and whatever body bytes already arrived go out in one write.
        let (take, mut body_done, data) = match f.body.consume(&self.buf) {
            Ok(x) => x,
            Err(_) => {
                return self
                    .answer(400, "malformed chunked request body\n", true)
                    .await
            }
        };
        let mut budget = max_body;
        if data > budget {
            return self.answer(413, &too_large(max_body), true).await;
        }
        budget -= data;
        self.out.extend_from_slice(&self.buf[..take]);
        self.buf.advance(take);
        // The request can be sent again on a fresh connection only while it
        // is whole in `out`.
        let replayable = body_done;

        self.upstream.rearm(start);
        let reply = loop {
            let written = tokio::select! {
                biased;
                r = up.stream.write_all(&self.out) => r,
                _ = self.upstream.sleep.as_mut() => Err(io::ErrorKind::TimedOut.into()),
            };
            if let Err(e) = written {
                if reused && replayable {
                    match fresh(shared, &backend).await {
                        Ok(c) => {
                            (up, reused) = (c, false);
                            continue;
                        }
                        Err(status) => return self.fail(status, &f).await,
                    }
                }
                tracing::debug!(backend = %backend.addr, error = %e, "upstream write failed");
                return self.fail(502, &f).await;
            }
            if !body_done {
                match pump(
                    &mut self.io,
                    &mut self.buf,
                    &mut up.stream,
                    &mut f.body,
                    &mut budget,
                    Some(CLIENT_TIMEOUT),
                    shared.request_timeout,
                )
                .await
                {
                    Ok(()) => {
                        body_done = true;
                        // The wait for the answer starts now, not before the upload.
                        self.upstream.rearm(Instant::now());
                    }
                    Err(PumpError::Limit) => {
                        return self.answer(413, &too_large(max_body), true).await
                    }
                    Err(PumpError::Framing) => {
                        return self
                            .answer(400, "malformed chunked request body\n", true)
                            .await
                    }
                    Err(PumpError::Source(e)) => {
                        tracing::debug!(error = %e, "client request body ended early");
                        return (499, Next::Close);
                    }
                    Err(PumpError::Dest(e)) => {
                        tracing::debug!(backend = %backend.addr, error = %e, "upstream write failed");
                        return self.fail(502, &f).await;
                    }
                }
            }
            match read_reply(&mut up, &mut self.upstream, &mut self.out, &f).await {
                Ok(reply) => break reply,
                Err(HeadError::Closed) if reused && replayable => {
                    match fresh(shared, &backend).await {
                        Ok(c) => (up, reused) = (c, false),
                        Err(status) => return self.fail(status, &f).await,
                    }
                }
                Err(HeadError::Timeout) => {
                    let msg = format!(
                        "{} did not answer within {} s\n",
                        f.target.label,
                        shared.request_timeout.as_secs_f64()
                    );
                    return self.answer(504, &msg, true).await;
                }
                Err(HeadError::Invalid(why)) => {
                    let msg = format!("{} failed to answer: {why}\n", f.target.label);
                    return self.answer(502, &msg, true).await;
                }
                Err(HeadError::Closed | HeadError::Io) if replayable && f.idempotent && !moved => {
                    // The replica went away holding the request (killed, or
                    // stopped by a rolling deploy) without a byte of answer:
                    // an idempotent request goes once more, to another replica.
                    tracing::debug!(backend = %backend.addr, "replica closed before answering; retrying on another");
                    backend.eject();
                    moved = true;
                    match checkout(shared, f.route, f.target, Instant::now()).await {
                        Ok((b, c, r)) => {
                            _in_flight = ActiveGuard::new(b.clone());
                            (backend, up, reused) = (b, c, r);
                        }
                        Err(_) => return self.fail(502, &f).await,
                    }
                }
                Err(HeadError::Closed) | Err(HeadError::Io) => {
                    tracing::debug!(backend = %backend.addr, "upstream closed before answering");
                    let msg = format!(
                        "{} failed to answer: connection closed early\n",
                        f.target.label
                    );
                    return self.answer(502, &msg, true).await;
                }
            }
        };
        up.buf.advance(reply.head_len);
        let status = reply.status;
        if status == 101 && !f.websocket {
            return self.fail(502, &f).await;
        }
        // Latency is to the response head (a WebSocket's lifetime is not),
        // and counted now (a WebSocket may last long).
        let elapsed = start.elapsed();
        self.now = start + elapsed;
        f.route.metrics.record(status, elapsed);
        *recorded = true;

        if status == 101 {
            self.out.extend_from_slice(&up.buf);
            up.buf.clear();
            let out = std::mem::take(&mut self.out);
            if self.write_client(&out).await.is_err() {
                return (status, Next::Close);
            }
            let leftover = self.buf.split();
            if up.stream.write_all(&leftover).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut self.io, &mut up.stream).await;
            }
            return (status, Next::Close);
        }

        let mut body = reply.body;
        let (take, done, _) = match body.consume(&up.buf) {
            Ok(x) => x,
            Err(_) => return (status, Next::Close),
        };
        self.out.extend_from_slice(&up.buf[..take]);
        up.buf.advance(take);
        let out = std::mem::take(&mut self.out);
        let written = self.write_client(&out).await;
        self.out = out;
        if written.is_err() {
            return (status, Next::Close);
        }
        if !done {
            let mut unlimited = u64::MAX;
            let pumped = pump(
                &mut up.stream,
                &mut up.buf,
                &mut self.io,
                &mut body,
                &mut unlimited,
                // An upstream may pause a stream (server-sent events) as long
                // as it likes; a client that stops reading may not.
                None,
                CLIENT_TIMEOUT,
            )
            .await;
            if let Err(PumpError::Source(e) | PumpError::Dest(e)) = &pumped {
                tracing::debug!(backend = %backend.addr, error = %e, "response body cut short");
            }
            if pumped.is_err() {
                return (status, Next::Close);
            }
        }
        if !reply.upstream_close && up.buf.is_empty() {
            backend.raw.put(up, self.now);
        }
        let next = if reply.client_close {
            Next::Close
        } else {
            Next::KeepAlive
        };
        (status, next)
    }

    async fn fail(&mut self, status: u16, f: &Forward<'_>) -> (u16, Next) {
        let msg = match status {
            502 => format!("{} failed to answer\n", f.target.label),
            s => format!("{} answered {s}\n", f.target.label),
        };
        self.answer(status, &msg, true).await
    }
}

/// An upstream connection (a warm one first). A refused connection ejects
/// the replica and is retried once on another: nothing was sent yet.
/// `Err(None)`: the target has no replica at all.
async fn checkout(
    shared: &Shared,
    route: &Route,
    target: &Target,
    now: Instant,
) -> Result<(Arc<Backend>, UpConn, bool), Option<io::Error>> {
    let mut failed: Option<Arc<Backend>> = None;
    let mut error = None;
    for _ in 0..2 {
        let Some(backend) = target.upstream.pick(route.balance, failed.as_deref()) else {
            break;
        };
        if let Some(conn) = backend.raw.take(now) {
            return Ok((backend, conn, true));
        }
        match pool::open_raw(backend.addr, shared.connect_timeout).await {
            Ok(conn) => {
                backend.succeeded();
                return Ok((backend, conn, false));
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

/// A fresh connection to the same replica, after a warm one turned out
/// closed.
async fn fresh(shared: &Shared, backend: &Backend) -> Result<UpConn, u16> {
    match pool::open_raw(backend.addr, shared.connect_timeout).await {
        Ok(c) => Ok(c),
        Err(_) => {
            backend.eject();
            Err(502)
        }
    }
}

/// Reads the upstream's response head (skipping informational answers)
/// and writes the client's response head into `out`.
async fn read_reply(
    up: &mut UpConn,
    deadline: &mut Deadline,
    out: &mut Vec<u8>,
    f: &Forward<'_>,
) -> Result<Reply, HeadError> {
    let mut received = !up.buf.is_empty();
    loop {
        if !up.buf.is_empty() {
            match parse_reply(&up.buf, out, f)? {
                Some(reply) if (100..200).contains(&reply.status) && reply.status != 101 => {
                    up.buf.advance(reply.head_len);
                    continue;
                }
                Some(reply) => return Ok(reply),
                None if up.buf.len() >= MAX_HEAD => {
                    return Err(HeadError::Invalid("response head too large"))
                }
                None => {}
            }
        }
        reserve(&mut up.buf);
        let read = tokio::select! {
            biased;
            r = up.stream.read_buf(&mut up.buf) => Ok(r),
            _ = deadline.sleep.as_mut() => Err(()),
        };
        match read {
            Err(()) => return Err(HeadError::Timeout),
            Ok(Ok(0)) if !received => return Err(HeadError::Closed),
            Ok(Ok(0)) => return Err(HeadError::Invalid("connection closed early")),
            Ok(Ok(_)) => received = true,
            Ok(Err(e)) if !received => {
                return Err(match e.kind() {
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => HeadError::Closed,
                    _ => HeadError::Io,
                })
            }
            Ok(Err(_)) => return Err(HeadError::Io),
        }
    }
}

fn parse_reply(buf: &[u8], out: &mut Vec<u8>, f: &Forward<'_>) -> Result<Option<Reply>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Invalid("invalid HTTP response")),
    };
    let status = resp.code.unwrap_or(502);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Some(Reply {
            head_len,
            status,
            body: Framing::Empty,
            upstream_close: false,
            client_close: false,
        }));
    }
    let headers: &[httparse::Header<'_>] = resp.headers;
    let mut upstream_close = resp.version == Some(0);
    let mut listed = Listed::default();
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in headers {
        match classify(h.name) {
            Known::Connection => {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        upstream_close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        if resp.version == Some(0) {
                            upstream_close = false;
                        }
                    } else {
                        listed.add(t);
                    }
                }
            }
            Known::ContentLength => match parse_length(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Err(HeadError::Invalid("invalid Content-Length")),
            },
            Known::TransferEncoding => {
                chunked = Some(
                    tokens(h.value)
                        .last()
                        .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")),
                )
            }
            _ => {}
        }
    }
    let body = if f.head_request || status == 204 || status == 304 || status == 101 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked(Chunked::default()),
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let until_close = matches!(body, Framing::UntilClose);
    if until_close {
        upstream_close = true;
    }
    let client_close = !f.keep_alive || until_close;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let status3 = status.min(999);
    out.extend_from_slice(&[
        b'0' + (status3 / 100) as u8,
        b'0' + (status3 / 10 % 10) as u8,
        b'0' + (status3 % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in headers {
        let keep = match classify(h.name) {
            Known::Connection | Known::HopByHop | Known::XRequestId => false,
            // Transfer-Encoding wins; both would confuse the client.
            Known::ContentLength => chunked.is_none(),
            Known::Upgrade => status == 101,
            Known::Other => !listed.has(h.name),
            _ => true,
        };
        if keep {
            header(out, h.name.as_bytes(), h.value);
        }
    }
    if status == 101 {
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if client_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    header(out, b"x-request-id", f.id.as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(Some(Reply {
        head_len,
        status,
        body,
        upstream_close,
        client_close,
    }))
}

/// Parses and routes a request head, writing the upstream request head (or
/// the gateway's own answer) into `out`.
fn plan<'t>(
    buf: &[u8],
    conn: &Conn,
    shared: &'t Shared,
    table: &'t Table,
    out: &mut Vec<u8>,
) -> Plan<'t> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Plan::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return bad(out, 431, "too many request headers\n", shared);
        }
        Err(httparse::Error::Version) => return Plan::HandOver,
        Err(_) => return bad(out, 400, "malformed request\n", shared),
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        // HTTP/1.0 and other rarities: hyper knows their rules.
        return Plan::HandOver;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Plan::HandOver;
    }
    let headers: &[httparse::Header<'_>] = req.headers;

    let mut host: Option<&[u8]> = None;
    let mut hosts = 0;
    let mut keep_alive = true;
    let mut conn_upgrade = false;
    let mut listed = Listed::default();
    let mut length: Option<u64> = None;
    let mut transfer: Option<bool> = None;
    let mut ws = false;
    let mut expect_continue = false;
    let mut has_xff = false;
    let mut id: Option<&[u8]> = None;
    for h in headers {
        match classify(h.name) {
            Known::Host => {
                host = Some(h.value);
                hosts += 1;
            }
            Known::Connection => {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        conn_upgrade = true;
                    } else if !t.eq_ignore_ascii_case(b"keep-alive") {
                        listed.add(t);
                    }
                }
            }
            Known::ContentLength => match parse_length(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return bad(out, 400, "invalid Content-Length\n", shared),
            },
            Known::TransferEncoding => {
                let only_chunked =
                    transfer.is_none() && h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
                transfer = Some(only_chunked);
            }
            Known::Upgrade => {
                ws = tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
            }
            Known::Expect => {
                expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue")
            }
            Known::XForwardedFor => has_xff = true,
            Known::XRequestId => id = Some(h.value),
            _ => {}
        }
    }
    let websocket = ws && conn_upgrade && method == "GET";
    let body = match (transfer, length) {
        (Some(true), None) => Framing::Chunked(Chunked::default()),
        (Some(_), _) => {
            return bad(out, 400, "unsupported Transfer-Encoding\n", shared);
        }
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Empty,
    };
    let close = !keep_alive || !body.is_empty();

    let raw_host = match (host, hosts) {
        (Some(h), 1) => h,
        _ => return bad(out, 400, "missing Host header\n", shared),
    };
    let Ok(host_str) = std::str::from_utf8(raw_host) else {
        return bad(out, 400, "invalid Host header\n", shared);
    };
    let host = normalize_host(host_str);
    if host.is_empty() {
        return bad(out, 400, "missing Host header\n", shared);
    }
    let path = target.split('?').next().unwrap_or(target);
    let Some(route) = table.find(&host, path, headers) else {
        out.clear();
        let msg = format!(
            "no route for host {} path {}\n",
            clip(&host, 255),
            clip(path, 256)
        );
        answer(out, 404, &msg, close, None);
        return Plan::Answer {
            head_len,
            status: 404,
            close,
            metrics: &shared.unmatched,
        };
    };
    if route.https_redirect && !conn.tls {
        let port = match shared.https_port {
            Some(443) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        let location = format!("https://{host}{port}{target}");
        out.clear();
        answer(
            out,
            308,
            &format!("redirecting to {location}\n"),
            close,
            Some(&location),
        );
        return Plan::Answer {
            head_len,
            status: 308,
            close,
            metrics: &route.metrics,
        };
    }
    let Some(target_choice) = route.pick() else {
        out.clear();
        let msg = format!("route {} has no target with a weight above 0\n", route.id);
        answer(out, 503, &msg, close, None);
        return Plan::Answer {
            head_len,
            status: 503,
            close,
            metrics: &route.metrics,
        };
    };

    let mut rid = RequestId {
        bytes: [0; 128],
        len: 0,
    };
    match id {
        Some(v) if super::proxy::sane_request_id(v) => {
            rid.bytes[..v.len()].copy_from_slice(v);
            rid.len = v.len();
        }
        _ => {
            shared.ids.write(&mut rid.bytes[..32]);
            rid.len = 32;
        }
    }

    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in headers {
        let keep = match classify(h.name) {
            Known::Host | Known::ContentLength | Known::TransferEncoding => true,
            Known::Upgrade => websocket,
            Known::Other => !listed.has(h.name),
            _ => false,
        };
        if keep {
            header(out, h.name.as_bytes(), h.value);
        }
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if has_xff {
        for h in headers {
            if classify(h.name) == Known::XForwardedFor {
                out.extend_from_slice(h.value.trim_ascii());
                out.extend_from_slice(b", ");
            }
        }
    }
    out.extend_from_slice(conn.client_ip.as_bytes());
    out.extend_from_slice(if conn.tls {
        &b"\r\nx-forwarded-proto: https\r\n"[..]
    } else {
        &b"\r\nx-forwarded-proto: http\r\n"[..]
    });
    header(out, b"x-forwarded-host", raw_host);
    header(out, b"x-request-id", rid.as_bytes());
    if websocket {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");

    Plan::Forward(Forward {
        head_len,
        route,
        target: target_choice,
        body,
        keep_alive,
        websocket,
        expect_continue,
        head_request: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS"),
        id: rid,
    })
}

/// A malformed request: answered, then the connection closes (its framing
/// cannot be trusted).
fn bad<'t>(out: &mut Vec<u8>, status: u16, msg: &str, shared: &'t Shared) -> Plan<'t> {
    out.clear();
    answer(out, status, msg, true, None);
    Plan::Answer {
        head_len: 0,
        status,
        close: true,
        metrics: &shared.unmatched,
    }
}

fn too_large(max: u64) -> String {
    format!("request body larger than {max} bytes\n")
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A short plain-text answer from the gateway itself.
fn answer(out: &mut Vec<u8>, status: u16, msg: &str, close: bool, location: Option<&str>) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", msg.len()).as_bytes());
    if let Some(l) = location {
        header(out, b"location", l.as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg.as_bytes());
}

/// Field names a `Connection` header lists: hop-by-hop as well.
#[derive(Default)]
struct Listed<'a> {
    names: [&'a [u8]; 8],
    len: usize,
}

impl<'a> Listed<'a> {
    fn add(&mut self, name: &'a [u8]) {
        if self.len < self.names.len() {
            self.names[self.len] = name;
            self.len += 1;
        }
    }

    fn has(&self, name: &str) -> bool {
        self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
}

enum PumpError {
    Source(io::Error),
    Dest(io::Error),
    Framing,
    Limit,
}

/// Forwards the rest of a body from `src` to `dst` (`buf` holds bytes read
/// from `src` past what was already sent). Bytes after the body stay in
/// `buf`: for a client they are its next request.
async fn pump<R, W>(
    src: &mut R,
    buf: &mut BytesMut,
    dst: &mut W,
    framing: &mut Framing,
    budget: &mut u64,
    read_timeout: Option<Duration>,
    write_timeout: Duration,
) -> Result<(), PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        if !buf.is_empty() {
            let (take, done, data) = framing.consume(buf).map_err(|_| PumpError::Framing)?;
            if data > *budget {
                return Err(PumpError::Limit);
            }
            *budget -= data;
            if take > 0 {
                match tokio::time::timeout(write_timeout, dst.write_all(&buf[..take])).await {
                    Ok(r) => r.map_err(PumpError::Dest)?,
                    Err(_) => return Err(PumpError::Dest(io::ErrorKind::TimedOut.into())),
                }
                buf.advance(take);
            }
            if done {
                return Ok(());
            }
        }
        reserve(buf);
        let n = match read_timeout {
            Some(t) => match tokio::time::timeout(t, src.read_buf(buf)).await {
                Ok(r) => r,
                Err(_) => Err(io::ErrorKind::TimedOut.into()),
            },
            None => src.read_buf(buf).await,
        }
        .map_err(PumpError::Source)?;
        if n == 0 {
            return match framing {
                Framing::UntilClose => Ok(()),
                _ => Err(PumpError::Source(io::ErrorKind::UnexpectedEof.into())),
            };
        }
    }
}

/// Hands hyper a connection whose first bytes were already read.
struct Rewind<S> {
    pre: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
