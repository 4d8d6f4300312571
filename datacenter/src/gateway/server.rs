//! The gateway's HTTP and HTTPS listeners: accept, set the socket up, and
//! serve each connection with hyper (HTTP/1.1, HTTP/2 by prior knowledge or
//! ALPN, upgrades).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::h1;
use super::proxy::{self, Conn, Shared};

pub(crate) type Http = auto::Builder<TokioExecutor>;

/// Slow clients get this long to send a request head (and a TLS handshake).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn http() -> Arc<Http> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    Arc::new(builder)
}

/// Binds a listening socket (address reuse, a deep backlog) without a
/// runtime, so `start` and `apply` report a taken port synchronously.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accept errors such as running out of file descriptors are survived by
/// pausing, not by spinning or exiting.
async fn accept_pause(e: io::Error) {
    tracing::warn!(error = %e, "gateway accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

pub(crate) async fn serve_plain(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    http: Arc<Http>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "gateway HTTP listener unusable"),
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                accept_pause(e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn::new(peer.ip(), false));
        tokio::spawn(h1::serve(stream, conn, shared.clone(), http.clone()));
    }
}

pub(crate) async fn serve_tls(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    http: Arc<Http>,
    acceptor: TlsAcceptor,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "gateway HTTPS listener unusable"),
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                accept_pause(e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let (shared, http) = (shared.clone(), http.clone());
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            let conn = Arc::new(Conn::new(peer.ip(), true));
            // HTTP/2 by ALPN goes to hyper; HTTP/1.1 takes the fast path.
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                serve_hyper(tls, conn, shared, http).await;
            } else {
                h1::serve(tls, conn, shared, http).await;
            }
        });
    }
}

/// Serves a connection with hyper: HTTP/2, and what the fast path leaves.
pub(crate) async fn serve_hyper<I>(io: I, conn: Arc<Conn>, shared: Arc<Shared>, http: Arc<Http>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| proxy::handle(shared.clone(), conn.clone(), req));
    if let Err(e) = http
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(error = %e, "client connection ended");
    }
}
