//! Keep-alive connections to one replica: a lean LIFO stack (the most
//! recently used connection is the warmest). Connections idle past
//! `IDLE_TIMEOUT` are dropped before a replica's own keep-alive timeout can
//! close them under a request.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::proxy::ProxyBody;

/// A hyper HTTP/1.1 connection, for requests that came in over HTTP/2.
pub(crate) type Sender = http1::SendRequest<ProxyBody>;

/// A plain upstream connection for the HTTP/1.1 fast path, with its read
/// buffer (kept to reuse the allocation).
pub(crate) struct UpConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

/// Below Node.js's default 5 s keep-alive timeout, the shortest common one.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per replica; more are closed when returned.
const MAX_IDLE: usize = 1024;

pub(crate) trait Reusable {
    /// Still open, as far as can be told without waiting.
    fn usable(&mut self) -> bool;
}

impl Reusable for Sender {
    fn usable(&mut self) -> bool {
        !self.is_closed()
    }
}

impl Reusable for UpConn {
    fn usable(&mut self) -> bool {
        // An idle connection has nothing to read: readiness means the
        // replica closed it (or sent garbage). No syscall unless ready.
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

pub(crate) struct Pool<T> {
    idle: Mutex<VecDeque<(T, Instant)>>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(VecDeque::new()),
        }
    }
}

impl<T> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.idle.lock().map(|q| q.len()).unwrap_or(0);
        f.debug_struct("Pool").field("idle", &n).finish()
    }
}

impl<T: Reusable> Pool<T> {
    /// The most recently returned connection that is still open and fresh.
    /// `now` is the caller's recent clock reading (the hot path reads the
    /// clock as little as it can).
    pub(crate) fn take(&self, now: Instant) -> Option<T> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((mut conn, since)) = idle.pop_back() {
            if now.saturating_duration_since(since) > IDLE_TIMEOUT {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if conn.usable() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end.
    pub(crate) fn put(&self, mut conn: T, now: Instant) {
        if !conn.usable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back((conn, now));
    }

    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Opens a TCP connection with a deadline; a timeout is reported as an
/// `io::ErrorKind::TimedOut` error like any other connect failure.
pub(crate) async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A fresh hyper HTTP/1.1 connection; its driver runs as its own task so the
/// connection outlives the request that opened it.
pub(crate) async fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Sender> {
    let stream = connect_tcp(addr, timeout).await?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        // Upgrades let a WebSocket take the connection over after a 101.
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}

/// A fresh connection for the fast path.
pub(crate) async fn open_raw(addr: SocketAddr, timeout: Duration) -> io::Result<UpConn> {
    Ok(UpConn {
        stream: connect_tcp(addr, timeout).await?,
        buf: BytesMut::with_capacity(8 * 1024),
    })
}
