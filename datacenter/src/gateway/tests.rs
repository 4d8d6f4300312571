//! The gateway against real sockets: small hyper upstreams on 127.0.0.1:0
//! that echo their tag and what they received, and clients speaking
//! HTTP/1.1, HTTP/2, TLS, WebSocket and raw TCP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::upstream::Upstreams;
use super::*;
use crate::api::{Balance, HttpRouteSpec, RouteTarget, TcpRouteSpec, ValueMatch};

const TEAM: &str = "t";

// ---- fixtures ---------------------------------------------------------------

/// An upstream that answers every request with JSON: its tag, the request
/// line, the headers it got, the body length and which of its connections
/// carried the request. `/sleep/<ms>` waits first.
struct Echo {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn echo(tag: &'static str) -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let conn = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        let method = req.method().to_string();
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let headers: HashMap<String, String> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        if let Some(ms) = path.strip_prefix("/sleep/") {
                            let ms: u64 = ms.parse().unwrap_or(0);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        let len = match req.into_body().collect().await {
                            Ok(b) => b.to_bytes().len(),
                            Err(_) => 0,
                        };
                        if path == "/chunked" {
                            // No length: hyper sends it chunked.
                            let frames = ["one,", "two,", "three"]
                                .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s))));
                            let body = StreamBody::new(futures_util::stream::iter(frames));
                            return Ok(Response::new(BodyExt::boxed(body)));
                        }
                        let body = serde_json::json!({
                            "tag": tag, "method": method, "path": path,
                            "headers": headers, "len": len, "conn": conn,
                        });
                        let mut resp =
                            Response::new(Full::new(Bytes::from(body.to_string())).boxed());
                        resp.headers_mut()
                            .insert("connection", "keep-alive".parse().unwrap());
                        resp.headers_mut()
                            .insert("keep-alive", "timeout=5".parse().unwrap());
                        Ok::<_, Infallible>(resp)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Echo { addr, connections }
}

fn start(config: GatewayConfig) -> (Gateway, Arc<Upstreams>) {
    let upstreams = Arc::new(Upstreams::default());
    let gw = Gateway::start(config, upstreams.clone()).unwrap();
    (gw, upstreams)
}

fn config() -> GatewayConfig {
    GatewayConfig {
        http: "127.0.0.1:0".parse().unwrap(),
        https: Some("127.0.0.1:0".parse().unwrap()),
        threads: 1,
        ..GatewayConfig::default()
    }
}

fn set_replicas(upstreams: &Upstreams, component: &str, addrs: &[SocketAddr]) {
    upstreams.set(&Upstreams::key(TEAM, "app", component), addrs);
}

fn target(component: &str, weight: u32) -> RouteTarget {
    RouteTarget {
        app: "app".into(),
        component: component.into(),
        weight,
    }
}

fn rule(id: &str, domain: &str, prefix: &str, targets: Vec<RouteTarget>) -> HttpRule {
    HttpRule {
        id: id.into(),
        team: TEAM.into(),
        spec: HttpRouteSpec {
            domain: domain.into(),
            path_prefix: prefix.into(),
            header: None,
            cookie: None,
            targets,
            balance: Balance::RoundRobin,
            https_redirect: false,
        },
    }
}

fn routes(http: Vec<HttpRule>) -> RouteSet {
    RouteSet {
        http,
        ..RouteSet::default()
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn empty() -> Body {
    Empty::new().boxed()
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }
    fn tag(&self) -> String {
        self.json()["tag"].as_str().unwrap_or_default().to_string()
    }
    fn header(&self, name: &str) -> String {
        self.json()["headers"][name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A keep-alive HTTP/1.1 client connection.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Body>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { sender }
    }

    async fn send(&mut self, req: Request<Body>) -> Result<Answer, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn get(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(get_request(host, path, headers)).await.unwrap()
    }
}

fn get_request(host: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::get(path).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(empty()).unwrap()
}

async fn get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    Client::connect(addr).await.get(host, path, headers).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- routing ----------------------------------------------------------------

#[tokio::test]
async fn routes_by_exact_domain_wildcard_and_path_prefix() {
    let (gw, ups) = start(config());
    for (c, tag) in [
        ("exact", "exact"),
        ("wild", "wild"),
        ("deep", "deep"),
        ("api", "api"),
    ] {
        let e = echo(tag).await;
        set_replicas(&ups, c, &[e.addr]);
    }
    gw.apply(routes(vec![
        rule("r-wild", "*.example.com", "/", vec![target("wild", 1)]),
        rule("r-deep", "*.b.example.com", "/", vec![target("deep", 1)]),
        rule("r-exact", "shop.example.com", "/", vec![target("exact", 1)]),
        rule("r-api", "shop.example.com", "/api", vec![target("api", 1)]),
    ]));
    let a = gw.http_addr();
    let mut c = Client::connect(a).await;
    assert_eq!(c.get("shop.example.com", "/", &[]).await.tag(), "exact");
    // Case, port and a trailing dot do not matter.
    assert_eq!(
        c.get("SHOP.example.com.:8080", "/x", &[]).await.tag(),
        "exact"
    );
    assert_eq!(c.get("shop.example.com", "/api", &[]).await.tag(), "api");
    assert_eq!(
        c.get("shop.example.com", "/api/v1?q=1", &[]).await.tag(),
        "api"
    );
    assert_eq!(c.get("shop.example.com", "/apix", &[]).await.tag(), "exact");
    assert_eq!(c.get("a.example.com", "/", &[]).await.tag(), "wild");
    assert_eq!(c.get("x.a.example.com", "/", &[]).await.tag(), "wild");
    // The longest wildcard suffix wins.
    assert_eq!(c.get("x.b.example.com", "/", &[]).await.tag(), "deep");
    let miss = c.get("example.com", "/there", &[]).await;
    assert_eq!(miss.status, StatusCode::NOT_FOUND);
    assert_eq!(
        miss.body.trim(),
        "no route for host example.com path /there"
    );
}

#[tokio::test]
async fn header_and_cookie_matches_are_tried_first() {
    let (gw, ups) = start(config());
    for c in ["plain", "beta", "canary"] {
        let e = echo(c).await;
        set_replicas(&ups, c, &[e.addr]);
    }
    let mut by_header = rule("r-h", "app.test", "/", vec![target("beta", 1)]);
    by_header.spec.header = Some(ValueMatch {
        name: "X-Beta".into(),
        value: "yes".into(),
    });
    let mut by_cookie = rule("r-c", "app.test", "/", vec![target("canary", 1)]);
    by_cookie.spec.cookie = Some(ValueMatch {
        name: "lane".into(),
        value: "canary".into(),
    });
    // Listed first but has no matcher: must still come last.
    gw.apply(routes(vec![
        rule("r-p", "app.test", "/", vec![target("plain", 1)]),
        by_header,
        by_cookie,
    ]));
    let mut c = Client::connect(gw.http_addr()).await;
    assert_eq!(c.get("app.test", "/", &[]).await.tag(), "plain");
    assert_eq!(
        c.get("app.test", "/", &[("x-beta", "yes")]).await.tag(),
        "beta"
    );
    assert_eq!(
        c.get("app.test", "/", &[("x-beta", "no")]).await.tag(),
        "plain"
    );
    let cookie = [("cookie", "a=1; lane=canary; b=2")];
    assert_eq!(c.get("app.test", "/", &cookie).await.tag(), "canary");
    let wrong = [("cookie", "lane=canaryx")];
    assert_eq!(c.get("app.test", "/", &wrong).await.tag(), "plain");
}

#[tokio::test]
async fn weights_split_traffic_in_proportion() {
    let (gw, ups) = start(config());
    let (a, b, z) = (echo("a").await, echo("b").await, echo("z").await);
    set_replicas(&ups, "a", &[a.addr]);
    set_replicas(&ups, "b", &[b.addr]);
    set_replicas(&ups, "z", &[z.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("a", 80), target("b", 20), target("z", 0)],
    )]));
    let mut c = Client::connect(gw.http_addr()).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..1000 {
        *counts
            .entry(c.get("app.test", "/", &[]).await.tag())
            .or_default() += 1;
    }
    let a = counts.get("a").copied().unwrap_or(0);
    let b = counts.get("b").copied().unwrap_or(0);
    assert_eq!(counts.get("z"), None, "weight 0 never gets traffic");
    assert!((750..=850).contains(&a), "a got {a}");
    assert!((150..=250).contains(&b), "b got {b}");
}

#[tokio::test]
async fn https_redirect_on_the_plain_listener() {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    let mut r = rule("r", "secure.test", "/", vec![target("web", 1)]);
    r.spec.https_redirect = true;
    gw.apply(routes(vec![r]));
    let resp = get(gw.http_addr(), "secure.test:80", "/a/b?x=1", &[]).await;
    assert_eq!(resp.status, StatusCode::PERMANENT_REDIRECT);
    let port = gw.https_addr().unwrap().port();
    assert_eq!(
        resp.headers["location"],
        format!("https://secure.test:{port}/a/b?x=1").as_str()
    );
}

#[tokio::test]
async fn gateway_answers_404_503_and_400_in_plain_text() {
    let (gw, ups) = start(config());
    set_replicas(&ups, "empty", &[]);
    gw.apply(routes(vec![
        rule("r", "app.test", "/", vec![target("empty", 1)]),
        rule("r0", "zero.test", "/", vec![target("empty", 0)]),
    ]));
    let a = gw.http_addr();
    let nf = get(a, "nope.test", "/x", &[]).await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.body, "no route for host nope.test path /x\n");
    assert!(nf.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let down = get(a, "app.test", "/", &[]).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.body, "no ready replica of app/empty\n");
    assert_eq!(get(a, "zero.test", "/", &[]).await.status, 503);
    // No Host header at all.
    let mut c = Client::connect(a).await;
    let no_host = c
        .send(Request::get("/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(no_host.status, 400);
}

// ---- forwarding -------------------------------------------------------------

#[tokio::test]
async fn forwarding_headers_and_request_id_reach_the_upstream() {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    let mut c = Client::connect(gw.http_addr()).await;
    let r = c
        .get(
            "app.test",
            "/",
            &[
                ("x-forwarded-for", "10.1.2.3"),
                ("x-request-id", "abc-123"),
                ("connection", "x-secret"),
                ("x-secret", "hop"),
                ("proxy-authorization", "Basic eA=="),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-forwarded-for"), "10.1.2.3, 127.0.0.1");
    assert_eq!(r.header("x-forwarded-proto"), "http");
    assert_eq!(r.header("x-forwarded-host"), "app.test");
    assert_eq!(r.header("host"), "app.test");
    assert_eq!(r.header("x-request-id"), "abc-123");
    assert_eq!(r.headers["x-request-id"], "abc-123");
    assert_eq!(r.header("x-secret"), "", "listed in Connection: hop-by-hop");
    assert_eq!(r.header("proxy-authorization"), "");
    // Hop-by-hop headers of the upstream's answer stay behind too.
    assert!(r.headers.get("keep-alive").is_none());

    let r = c
        .get("app.test", "/", &[("x-request-id", "bad id with spaces")])
        .await;
    let id = r.header("x-request-id");
    assert_eq!(id.len(), 32, "generated: {id}");
    assert_eq!(r.header("x-forwarded-for"), "127.0.0.1");
    let other = c.get("app.test", "/", &[]).await.header("x-request-id");
    assert_ne!(id, other);
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    let mut c = Client::connect(gw.http_addr()).await;
    for _ in 0..50 {
        assert_eq!(c.get("app.test", "/", &[]).await.status, 200);
    }
    let opened = e.connections.load(Ordering::SeqCst);
    assert!(opened <= 2, "{opened} upstream connections for 50 requests");
}

#[tokio::test]
async fn request_bodies_are_bounded_with_413() {
    let (gw, ups) = start(GatewayConfig {
        max_body_bytes: 1000,
        ..config()
    });
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    let a = gw.http_addr();
    let post = |body: Body| {
        Request::post("/upload")
            .header("host", "app.test")
            .body(body)
            .unwrap()
    };
    let mut c = Client::connect(a).await;
    let ok = c
        .send(post(Full::new(Bytes::from(vec![b'x'; 1000])).boxed()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["len"], 1000);
    let big = c
        .send(post(Full::new(Bytes::from(vec![b'x'; 1001])).boxed()))
        .await
        .unwrap();
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, no Content-Length: cut off while streaming.
    let chunks = (0..4).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 400]))));
    let streamed = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
    let mut c = Client::connect(a).await;
    let big = c.send(post(streamed)).await.unwrap();
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn slow_upstream_is_504_and_refused_connection_is_502() {
    let (gw, ups) = start(GatewayConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    });
    let e = echo("slow").await;
    set_replicas(&ups, "slow", &[e.addr]);
    set_replicas(
        &ups,
        "dead",
        &[format!("127.0.0.1:{}", free_port()).parse().unwrap()],
    );
    gw.apply(routes(vec![
        rule("r", "slow.test", "/", vec![target("slow", 1)]),
        rule("d", "dead.test", "/", vec![target("dead", 1)]),
    ]));
    let a = gw.http_addr();
    assert_eq!(get(a, "slow.test", "/sleep/1000", &[]).await.status, 504);
    assert_eq!(get(a, "slow.test", "/sleep/10", &[]).await.status, 200);
    let dead = get(a, "dead.test", "/", &[]).await;
    assert_eq!(dead.status, 502);
    assert_eq!(dead.body, "could not connect to app/dead\n");
}

#[tokio::test]
async fn dead_replica_is_retried_then_ejected() {
    let (gw, ups) = start(config());
    let (a, b) = (echo("a").await, echo("b").await);
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    set_replicas(&ups, "web", &[dead, a.addr, b.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    let mut c = Client::connect(gw.http_addr()).await;
    let mut tags: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let r = c.get("app.test", "/", &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        *tags.entry(r.tag()).or_default() += 1;
    }
    assert!(tags["a"] >= 10 && tags["b"] >= 10, "{tags:?}");
    let backends = ups.get(&Upstreams::key(TEAM, "app", "web")).backends();
    let dead_backend = backends.iter().find(|b| b.addr == dead).unwrap();
    assert!(dead_backend.ejected_until.load(Ordering::Relaxed) > upstream::now_ms());
    // Least-connections skips it as well.
    let mut lc = rule("r", "app.test", "/", vec![target("web", 1)]);
    lc.spec.balance = Balance::LeastConnections;
    gw.apply(routes(vec![lc]));
    for _ in 0..10 {
        assert_eq!(c.get("app.test", "/", &[]).await.status, 200);
    }
}

#[tokio::test]
async fn replica_changes_apply_without_a_new_route_table() {
    let (gw, ups) = start(config());
    let (a, b) = (echo("a").await, echo("b").await);
    set_replicas(&ups, "web", &[a.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    let mut c = Client::connect(gw.http_addr()).await;
    assert_eq!(c.get("app.test", "/", &[]).await.tag(), "a");
    set_replicas(&ups, "web", &[b.addr]);
    assert_eq!(c.get("app.test", "/", &[]).await.tag(), "b");
}

#[tokio::test]
async fn http2_prior_knowledge_works() {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    let stream = TcpStream::connect(gw.http_addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        let req = Request::get(format!("http://app.test/h2/{i}"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(empty())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["path"], format!("/h2/{i}"));
        assert_eq!(v["headers"]["host"], "app.test");
        assert_eq!(v["headers"]["cookie"], "a=1; b=2");
    }
}

#[tokio::test]
async fn websocket_passes_through() {
    let (gw, ups) = start(config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    set_replicas(&ups, "ws", &[ws_addr]);
    gw.apply(routes(vec![rule(
        "r",
        "ws.test",
        "/",
        vec![target("ws", 1)],
    )]));
    let stream = TcpStream::connect(gw.http_addr()).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://ws.test/socket", stream)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "world"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    let stats = gw.stats();
    let r = stats.iter().find(|s| s.route == "r").unwrap();
    assert_eq!((r.requests, r.status_2xx), (1, 1));
}

// ---- live changes -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_rules_change_under_load() {
    let (gw, ups) = start(GatewayConfig {
        threads: 2,
        ..config()
    });
    let (a, b) = (echo("a").await, echo("b").await);
    set_replicas(&ups, "a", &[a.addr]);
    set_replicas(&ups, "b", &[b.addr]);
    let routes_to = |c: &str| routes(vec![rule("r", "app.test", "/", vec![target(c, 1)])]);
    gw.apply(routes_to("a"));
    let addr = gw.http_addr();
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut seen) =
                (0usize, Vec::new(), HashMap::<String, usize>::new());
            let mut c = Client::connect(addr).await;
            while !done.load(Ordering::Relaxed) {
                match c.send(get_request("app.test", "/", &[])).await {
                    Ok(r) if r.status == 200 => {
                        ok += 1;
                        *seen.entry(r.tag()).or_default() += 1;
                    }
                    Ok(r) => failed.push(format!("{} {}", r.status, r.body)),
                    Err(e) => {
                        failed.push(e);
                        c = Client::connect(addr).await;
                    }
                }
            }
            (ok, failed, seen)
        }));
    }
    for i in 0..100 {
        gw.apply(routes_to(if i % 2 == 0 { "b" } else { "a" }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, Ordering::Relaxed);
    let (mut ok, mut failed, mut seen) = (0, Vec::new(), HashMap::<String, usize>::new());
    for c in clients {
        let (o, f, s) = c.await.unwrap();
        ok += o;
        failed.extend(f);
        for (k, v) in s {
            *seen.entry(k).or_default() += v;
        }
    }
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 500, "only {ok} requests");
    assert!(seen.contains_key("a") && seen.contains_key("b"), "{seen:?}");
}

// ---- TLS --------------------------------------------------------------------

fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn certificate(name: &str, pair: &(String, String)) -> TlsCertificate {
    TlsCertificate {
        name: name.into(),
        team: TEAM.into(),
        cert_pem: pair.0.clone(),
        key_pem: pair.1.clone(),
    }
}

/// Accepts any certificate: the tests check which one was served.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with TLS (SNI `sni`, or none for an IP), returns the DNS names
/// of the certificate served and the negotiated ALPN protocol.
async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> (
    Vec<String>,
    Option<Vec<u8>>,
    tokio_rustls::client::TlsStream<TcpStream>,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let tls = connector.connect(name, stream).await.unwrap();
    let (_, session) = tls.get_ref();
    let leaf = session.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_string());
            }
        }
    }
    let alpn = session.alpn_protocol().map(|p| p.to_vec());
    (names, alpn, tls)
}

#[tokio::test]
async fn tls_certificate_is_chosen_by_sni() {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    let first = self_signed(&["first.test"]);
    let shop = self_signed(&["shop.test"]);
    let wild = self_signed(&["*.wild.test"]);
    gw.apply(RouteSet {
        http: vec![rule("r", "shop.test", "/", vec![target("web", 1)])],
        certificates: vec![
            certificate("first", &first),
            certificate("wild", &wild),
            certificate("shop", &shop),
        ],
        ..RouteSet::default()
    });
    let a = gw.https_addr().unwrap();
    assert_eq!(tls_connect(a, "shop.test", &[]).await.0, ["shop.test"]);
    assert_eq!(tls_connect(a, "a.wild.test", &[]).await.0, ["*.wild.test"]);
    // A wildcard covers one label only; no match falls back to the first.
    assert_eq!(tls_connect(a, "x.a.wild.test", &[]).await.0, ["first.test"]);
    assert_eq!(tls_connect(a, "127.0.0.1", &[]).await.0, ["first.test"]);

    // HTTP/1.1 over TLS reaches the upstream, marked https.
    let (_, alpn, tls) = tls_connect(a, "shop.test", &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(get_request("shop.test", "/", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");

    // HTTP/2 by ALPN.
    let (_, alpn, tls) = tls_connect(a, "shop.test", &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Body>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://shop.test/").body(empty()).unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);

    // Certificates are swapped by apply like routes.
    gw.apply(RouteSet {
        certificates: vec![certificate("shop", &shop)],
        ..RouteSet::default()
    });
    assert_eq!(tls_connect(a, "a.wild.test", &[]).await.0, ["shop.test"]);
}

#[test]
fn parse_certificate_checks_the_pair() {
    let (cert, key) = self_signed(&["a.test", "*.b.test"]);
    let parsed = parse_certificate(&cert, &key).unwrap();
    assert_eq!(parsed.domains, ["a.test", "*.b.test"]);
    assert!(parsed.not_before < parsed.not_after);

    let (_, other_key) = self_signed(&["a.test"]);
    assert_eq!(
        parse_certificate(&cert, &other_key).unwrap_err(),
        "the private key does not belong to the certificate"
    );
    assert_eq!(
        parse_certificate("garbage", &key).unwrap_err(),
        "no certificate found in the PEM text"
    );
    assert!(parse_certificate(&cert, "garbage")
        .unwrap_err()
        .starts_with("no private key found"));
    let broken = cert.replace("MII", "MIX");
    assert!(parse_certificate(&broken, &key).is_err());
}

// ---- TCP --------------------------------------------------------------------

#[tokio::test]
async fn tcp_routes_forward_connections() {
    let (gw, ups) = start(config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    set_replicas(&ups, "db", &[dead, upstream]);
    let port = free_port();
    let tcp = |id: &str, port: u16| TcpRule {
        id: id.into(),
        team: TEAM.into(),
        spec: TcpRouteSpec {
            listen_port: port,
            app: "app".into(),
            component: "db".into(),
            balance: Balance::RoundRobin,
        },
    };
    let taken = gw.http_addr().port();
    let errors = gw.apply(RouteSet {
        tcp: vec![tcp("db", port), tcp("clash", port), tcp("taken", taken)],
        ..RouteSet::default()
    });
    let failed: Vec<&str> = errors.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(failed, ["clash", "taken"], "{errors:?}");

    for i in 0..4 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let msg = format!("ping {i}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, msg.as_bytes());
    }
    let stats = gw.stats();
    let db = stats.iter().find(|s| s.route == "db").unwrap();
    assert_eq!(db.status_2xx, 4);

    // A removed port stops accepting; an open connection carries on.
    let mut open = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    open.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await.unwrap();
    assert!(gw.apply(RouteSet::default()).is_empty());
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    open.write_all(b"y").await.unwrap();
    open.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"y");
    // And can be bound again at once.
    assert!(gw
        .apply(RouteSet {
            tcp: vec![tcp("db", port)],
            ..RouteSet::default()
        })
        .is_empty());
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_ok());
}

// ---- metrics ----------------------------------------------------------------

#[tokio::test]
async fn stats_and_prometheus_metrics_per_route() {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    gw.apply(routes(vec![
        rule("r-ok", "app.test", "/", vec![target("web", 1)]),
        rule("r-idle", "idle.test", "/", vec![target("web", 1)]),
    ]));
    let mut c = Client::connect(gw.http_addr()).await;
    for _ in 0..10 {
        c.get("app.test", "/", &[]).await;
    }
    c.get("nothing.test", "/", &[]).await;
    let stats = gw.stats();
    let ok = stats.iter().find(|s| s.route == "r-ok").unwrap();
    assert_eq!((ok.requests, ok.status_2xx, ok.status_5xx), (10, 10, 0));
    assert!(
        ok.p50_ms > 0.0 && ok.p50_ms <= ok.p99_ms && ok.p99_ms < 1000.0,
        "{ok:?}"
    );
    let idle = stats.iter().find(|s| s.route == "r-idle").unwrap();
    assert_eq!(idle.requests, 0);

    let mut out = String::new();
    gw.render_metrics(&mut out);
    assert!(out.contains("# TYPE cloudport_gateway_requests_total counter"));
    assert!(out.contains("cloudport_gateway_requests_total{route=\"r-ok\",class=\"2xx\"} 10"));
    assert!(out.contains("cloudport_gateway_requests_total{route=\"_unmatched\",class=\"4xx\"} 1"));
    assert!(out.contains("# TYPE cloudport_gateway_request_duration_seconds histogram"));
    assert!(out.contains(
        "cloudport_gateway_request_duration_seconds_bucket{route=\"r-ok\",le=\"+Inf\"} 10"
    ));
    assert!(out.contains("cloudport_gateway_request_duration_seconds_count{route=\"r-ok\"} 10"));

    // A removed route without traffic disappears; one with traffic stays.
    gw.apply(RouteSet::default());
    let routes: Vec<String> = gw.stats().into_iter().map(|s| s.route).collect();
    assert_eq!(routes, ["r-ok"]);
}

#[test]
fn a_taken_port_fails_start_and_drop_frees_it() {
    let upstreams = Arc::new(Upstreams::default());
    let gw = Gateway::start(config(), upstreams.clone()).unwrap();
    let addr = gw.http_addr();
    let again = Gateway::start(
        GatewayConfig {
            http: addr,
            https: None,
            ..config()
        },
        upstreams.clone(),
    );
    assert!(again.is_err());
    drop(gw);
    let gw = Gateway::start(
        GatewayConfig {
            http: addr,
            https: None,
            ..config()
        },
        upstreams,
    );
    assert!(gw.is_ok());
}

// ---- HTTP/1.1 framing on the fast path ---------------------------------------

/// Writes `request` raw and reads until the gateway closes (the last
/// request should say `Connection: close`).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("gateway did not close")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A replica speaking raw HTTP/1.1: answers each request head with
/// `response`, then closes when `close` says so (without telling).
async fn raw_upstream(response: &'static [u8], close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(response).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn fast_path_gateway() -> (Gateway, Arc<Upstreams>) {
    let (gw, ups) = start(config());
    let e = echo("web").await;
    set_replicas(&ups, "web", &[e.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    (gw, ups)
}

#[tokio::test]
async fn chunked_bodies_pass_through_both_ways() {
    let (gw, _ups) = fast_path_gateway().await;
    let mut c = Client::connect(gw.http_addr()).await;
    let chunks = ["abc", "defg", "h"].map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s))));
    let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
    let req = Request::post("/upload")
        .header("host", "app.test")
        .body(body)
        .unwrap();
    let r = c.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["len"], 8);
    assert_eq!(r.header("transfer-encoding"), "chunked");
    let r = c.get("app.test", "/chunked", &[]).await;
    assert_eq!(r.body, "one,two,three");
    // The connection is still good after both.
    assert_eq!(c.get("app.test", "/", &[]).await.status, 200);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (gw, _ups) = fast_path_gateway().await;
    let out = raw(
        gw.http_addr(),
        b"GET /first HTTP/1.1\r\nHost: app.test\r\n\r\nGET /second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let first = out.find("\"/first\"").expect(&out);
    let second = out.find("\"/second\"").expect(&out);
    assert!(first < second);
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
}

#[tokio::test]
async fn http10_head_and_expect_continue() {
    let (gw, _ups) = fast_path_gateway().await;
    let a = gw.http_addr();
    // HTTP/1.0 goes to the hyper path, which answers in kind.
    let out = raw(a, b"GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    assert!(out.contains("\"/old\""));
    // HEAD: the length is announced, no body follows, the connection goes on.
    let mut c = Client::connect(a).await;
    let head = c
        .send(
            Request::head("/")
                .header("host", "app.test")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(c.get("app.test", "/after-head", &[]).await.status, 200);
    // Expect: 100-continue gets its interim answer before the body is sent.
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("\"len\":5"), "{rest}");
}

#[tokio::test]
async fn ambiguous_framing_is_refused() {
    let (gw, _ups) = fast_path_gateway().await;
    let out = raw(
        gw.http_addr(),
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let out = raw(
        gw.http_addr(),
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn replicas_closing_kept_alive_connections_cost_no_request() {
    let (gw, ups) = start(config());
    let flaky = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    set_replicas(&ups, "flaky", &[flaky]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("flaky", 1)],
    )]));
    let mut c = Client::connect(gw.http_addr()).await;
    for i in 0..30 {
        let r = c.get("app.test", "/", &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.body.as_str()),
            (200, "ok"),
            "request {i}"
        );
        if i % 3 == 0 {
            // Give the close time to land before the connection is reused.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn responses_without_length_end_with_the_connection() {
    let (gw, ups) = start(config());
    let old = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
        true,
    )
    .await;
    set_replicas(&ups, "old", &[old]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("old", 1)],
    )]));
    let out = raw(gw.http_addr(), b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    assert!(out.ends_with("\r\n\r\nuntil close"), "{out}");
}

/// A kept-alive client connection that sat idle across a rule change routes
/// its next request by the new rules, in both directions.
#[tokio::test]
async fn an_idle_kept_alive_connection_sees_rule_changes() {
    let (gw, ups) = fast_path_gateway().await;
    let mut c = Client::connect(gw.http_addr()).await;
    assert_eq!(c.get("new.test", "/", &[]).await.status, 404);
    let e = echo("new").await;
    set_replicas(&ups, "new", &[e.addr]);
    gw.apply(routes(vec![
        rule("r", "app.test", "/", vec![target("web", 1)]),
        rule("n", "new.test", "/", vec![target("new", 1)]),
    ]));
    let r = c.get("new.test", "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.apply(routes(vec![]));
    assert_eq!(c.get("app.test", "/", &[]).await.status, 404);
}

/// A replica that takes a request and dies without answering (killed, or
/// stopped by a deploy) costs a GET nothing: it goes once more to another
/// replica. A POST is not sent twice.
#[tokio::test]
async fn a_replica_dying_with_a_get_in_hand_is_retried_elsewhere() {
    // Reads a request head, then closes without a byte of answer.
    let dying = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dying_addr = dying.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = dying.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
        }
    });
    let (gw, ups) = start(config());
    let live = echo("live").await;
    set_replicas(&ups, "web", &[dying_addr, live.addr]);
    gw.apply(routes(vec![rule(
        "r",
        "app.test",
        "/",
        vec![target("web", 1)],
    )]));
    for _ in 0..4 {
        let r = raw(
            gw.http_addr(),
            b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    set_replicas(&ups, "web", &[dying_addr]);
    let r = raw(
        gw.http_addr(),
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
}
