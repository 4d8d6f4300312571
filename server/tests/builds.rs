//! Builds through the console: the source upload route and its size limit,
//! the public webhook route (which only forwards to the datacenter), who may
//! upload, build and roll back, and a real build of an uploaded sample whose
//! versions, replicas and output (stored and live) the console relays.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

on_both_backends!(
    the_source_route_takes_100_mib_and_no_more,
    hooks_are_public_but_only_forward,
    viewers_cannot_build_and_developers_can,
    uploads_are_previewed_before_they_exist,
);

const COMPONENTS: &str = "/api/v1/teams/acme/apps/shop/components";

/// A console with its embedded datacenter, team `acme` (owned by the
/// admin) with a developer `dev` and a viewer `vic`, and app `shop`.
struct World {
    c: TestConsole,
    admin: Client,
    dev: Client,
    vic: Client,
}

impl World {
    async fn new(b: Backend) -> World {
        let c = TestConsole::start_with(b, |cfg| cfg.no_embedded_datacenter = false).await;
        let admin = c.admin().await;
        for user in ["dev", "vic", "otto"] {
            c.create_user(&admin, user).await;
        }
        let post = |path: &str, body: Value| admin.post(c.url(path)).json(&body).send();
        for (path, body) in [
            ("/api/v1/teams", json!({"name": "acme"})),
            ("/api/v1/teams/acme/apps", json!({"name": "shop"})),
            (
                "/api/v1/teams/acme/members",
                json!({"username": "dev", "role": "developer"}),
            ),
            (
                "/api/v1/teams/acme/members",
                json!({"username": "vic", "role": "viewer"}),
            ),
        ] {
            let resp = post(path, body).await.unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED, "{path}");
        }
        let dev = c.login("dev", PASSWORD).await;
        let vic = c.login("vic", PASSWORD).await;
        World { c, admin, dev, vic }
    }

    async fn create(&self, spec: Value) {
        let resp = self
            .admin
            .post(self.c.url(COMPONENTS))
            .json(&json!({"datacenter": "local", "spec": spec}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{:?}",
            resp.text().await
        );
    }

    fn component(&self, name: &str, tail: &str) -> String {
        self.c.url(&format!("{COMPONENTS}/{name}{tail}"))
    }

    /// Waits for an event to finish; returns its status and log.
    async fn finish(&self, event: &str, within: Duration) -> (String, String) {
        let deadline = Instant::now() + within;
        loop {
            let (_, body) = status_and_json(
                self.admin
                    .get(
                        self.c
                            .url(&format!("/api/v1/teams/acme/events/local/{event}")),
                    )
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let status = body["event"]["status"].as_str().unwrap_or("").to_string();
            let log = body["lines"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|l| format!("[{}] {}", l["step"], l["message"]))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            if status == "succeeded" || status == "failed" {
                return (status, log);
            }
            assert!(
                Instant::now() < deadline,
                "event {event} still {status}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `examples/<sample>` as a tar.gz archive.
fn pack(sample: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(sample);
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    tar.append_dir_all(".", &dir).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// A `PUT` with a chunked body of `total` bytes, over a bare connection
/// (the test client only sends bodies of known length); the status and the
/// raw answer.
async fn chunked_put(base: &str, path: &str, token: &str, total: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![0u8; 1024 * 1024];
    let mut sent = 0;
    while sent < total {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if s.write_all(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![];
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn the_source_route_takes_100_mib_and_no_more(b: Backend) {
    let w = World::new(b).await;
    w.create(json!({"name": "web", "source": {"kind": "upload"}}))
        .await;
    let upload = |body: Vec<u8>| {
        w.dev
            .put(w.component("web", "/source"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .timeout(Duration::from_secs(120))
    };

    // 101 MiB: refused for its size, with a JSON error, before it is read.
    let (status, body) = status_and_json(
        upload(vec![0u8; 101 * 1024 * 1024])
            .send()
            .await
            .expect("an answer, not a broken connection"),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "too_large", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("100 MiB"),
        "{body}"
    );

    // The same without a declared length: the console stops keeping it at 100 MiB.
    let token: Value = w
        .dev
        .post(w.c.url("/api/v1/tokens"))
        .json(&json!({"name": "chunked"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, body) = chunked_put(
        &w.c.base,
        &format!("{COMPONENTS}/web/source"),
        token["token"].as_str().unwrap(),
        101 * 1024 * 1024,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");

    // 2 MiB passes the console's limit (other routes stop at 1 MiB) and
    // reaches the datacenter, which reads it and finds no archive.
    let (status, body) =
        status_and_json(upload(vec![7u8; 2 * 1024 * 1024]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid", "{body}");

    // Every other route keeps the 1 MiB limit, and says so in JSON too.
    let big = json!({"name": "x".repeat(2 * 1024 * 1024)});
    let (status, body) =
        status_and_json(send_oversized(|| w.dev.post(w.c.url("/api/v1/teams")).json(&big)).await)
            .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "too_large", "{body}");

    // An empty upload is refused by the console itself.
    let (status, body) = status_and_json(upload(vec![]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A real archive is stored and its build queued; the upload is audited.
    let (status, body) = status_and_json(upload(pack("static-site")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["datacenter"], "local");
    assert!(body["event_id"].as_str().is_some_and(|e| !e.is_empty()));
    let audit: Value = w
        .admin
        .get(w.c.url("/api/v1/audit?team=acme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uploads: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "component.upload")
        .collect();
    assert!(
        uploads
            .iter()
            .any(|e| e["actor"] == "dev" && e["result"] == "ok"),
        "{uploads:?}"
    );
    assert!(
        uploads.iter().any(|e| e["result"] == "failed"),
        "{uploads:?}"
    );
}

async fn hooks_are_public_but_only_forward(b: Backend) {
    let w = World::new(b).await;
    w.create(json!({"name": "site", "source": {"kind": "git", "url": "https://example.invalid/site.git", "reference": "main"}}))
        .await;

    // Team admins (here the owner) see where to point the Git host.
    let (status, hook) = status_and_json(
        w.admin
            .get(w.component("site", "/webhook"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    assert_eq!(hook["url"], w.c.url("/api/v1/hooks/acme/shop/site"));
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 16, "{hook}");

    let anonymous = client();
    let deliver = |path: &str, body: &[u8], headers: &[(&str, String)]| {
        let mut req = anonymous
            .post(w.c.url(path))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req
    };
    let ping = br#"{"zen":"Keep it logically awesome."}"#;

    // No such component (or team): 404, and nothing is forwarded or recorded.
    for path in [
        "/api/v1/hooks/acme/shop/nope",
        "/api/v1/hooks/nobody/shop/site",
    ] {
        let (status, body) = status_and_json(
            deliver(path, ping, &[("X-GitHub-Event", "ping".into())])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"], "not_found");
    }

    // Unsigned or wrongly signed: the datacenter refuses, the console says 401.
    let path = "/api/v1/hooks/acme/shop/site";
    for headers in [
        vec![("X-GitHub-Event", "ping".to_string())],
        vec![
            ("X-GitHub-Event", "ping".to_string()),
            ("X-Hub-Signature-256", github_signature("guessed", ping)),
        ],
        vec![("X-Gitlab-Token", "guessed".to_string())],
    ] {
        let (status, body) =
            status_and_json(deliver(path, ping, &headers).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}: {body}");
        assert_eq!(body["error"], "unauthorized");
    }

    // Signed: accepted without any session or token.
    let (status, body) = status_and_json(
        deliver(
            path,
            ping,
            &[
                ("X-GitHub-Event", "ping".into()),
                ("X-Hub-Signature-256", github_signature(&secret, ping)),
            ],
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["event_id"].is_null(), "{body}");
    // A push to another branch is verified and ignored.
    let push = br#"{"ref":"refs/heads/feature","pusher":{"name":"ada"}}"#;
    let (status, body) = status_and_json(
        deliver(
            path,
            push,
            &[
                ("X-Gitea-Event", "push".into()),
                (
                    "X-Gitea-Signature",
                    github_signature(&secret, push).replace("sha256=", ""),
                ),
            ],
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["event_id"].is_null(), "{body}");

    // Deliveries are bounded at 1 MiB.
    let oversized = vec![b' '; 1024 * 1024 + 1];
    let (status, body) =
        status_and_json(send_oversized(|| deliver(path, &oversized, &[])).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "too_large");

    // Audited as `webhook`, refused ones included; unknown targets are not.
    let audit: Value = w
        .admin
        .get(w.c.url("/api/v1/audit?team=acme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hooks: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "component.webhook")
        .collect();
    assert!(hooks.iter().all(|e| e["actor"] == "webhook"), "{hooks:?}");
    assert_eq!(
        hooks.iter().filter(|e| e["result"] == "denied").count(),
        3,
        "{hooks:?}"
    );
    assert_eq!(
        hooks.iter().filter(|e| e["result"] == "ok").count(),
        2,
        "{hooks:?}"
    );
    assert!(!hooks
        .iter()
        .any(|e| e["target"].as_str().unwrap().contains("nope")));

    // The secret is for team admins only, and never for read-only tokens.
    for who in [&w.dev, &w.vic] {
        let resp = who
            .get(w.component("site", "/webhook"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    let token: Value = w
        .admin
        .post(w.c.url("/api/v1/tokens"))
        .json(&json!({"name": "ro", "scope": "read-only"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = client()
        .get(w.component("site", "/webhook"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

async fn viewers_cannot_build_and_developers_can(b: Backend) {
    let w = World::new(b).await;
    w.create(json!({
        "name": "web",
        "source": {"kind": "upload"},
        "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}],
        "health": {"kind": "http", "port": 8080, "path": "/healthz"},
    }))
    .await;
    let archive = pack("python-hello");
    let upload = |who: &Client| {
        who.put(w.component("web", "/source"))
            .header("content-type", "application/octet-stream")
            .body(archive.clone())
    };
    let act = |who: &Client, action: Value| who.post(w.component("web", "/actions")).json(&action);

    // The viewer sees, but may not upload, build, deploy, roll back or detect.
    assert_eq!(
        upload(&w.vic).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    for action in [
        json!({"action": "build"}),
        json!({"action": "deploy"}),
        json!({"action": "rollback", "version": "v1"}),
    ] {
        let resp = act(&w.vic, action.clone()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{action}");
    }
    let resp = w
        .vic
        .post(w.c.url("/api/v1/teams/acme/datacenters/local/detect"))
        .json(&json!({"source": {"kind": "image", "image": "nginx:1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (status, versions) = status_and_json(
        w.vic
            .get(w.component("web", "/versions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions, json!([]));

    // The developer uploads; the build event builds and deploys it.
    let (status, ev) = status_and_json(upload(&w.dev).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{ev}");
    let (status, log) = w
        .finish(ev["event_id"].as_str().unwrap(), Duration::from_secs(180))
        .await;
    assert_eq!(status, "succeeded", "{log}");

    let (_, versions) = status_and_json(
        w.vic
            .get(w.component("web", "/versions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let versions = versions.as_array().unwrap().clone();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["id"], "v1");
    assert_eq!(versions[0]["current"], true);
    assert_eq!(versions[0]["language"], "python");
    let (status, replicas) = status_and_json(
        w.vic
            .get(w.component("web", "/replicas"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replicas}");
    assert!(
        replicas
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["alive"] == true),
        "{replicas}"
    );

    // Live output through the console's hub, for those who may see it.
    let token_of = |who: &'static str| {
        let c = &w.c;
        async move {
            let session = c.login(who, PASSWORD).await;
            let t: Value = session
                .post(c.url("/api/v1/tokens"))
                .json(&json!({"name": "ws"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            t["token"].as_str().unwrap().to_string()
        }
    };
    let subscribe = |token: String| {
        let url = w.c.url("/api/v1/ws").replacen("http", "ws", 1);
        async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let sub = json!({"op": "subscribe", "team": "acme", "datacenter": "local", "component": "shop/web"});
            ws.send(Message::Text(sub.to_string().into()))
                .await
                .unwrap();
            ws
        }
    };
    let mut ws = subscribe(token_of("vic").await).await;
    let (_, component) =
        status_and_json(w.vic.get(w.component("web", "")).send().await.unwrap()).await;
    let url = component["component"]["url"]
        .as_str()
        .expect("an address")
        .to_string();
    let probe = format!("/probe-{}", std::process::id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        let _ = reqwest::get(format!("{url}{probe}")).await;
        while let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_secs(1), ws.next()).await
        {
            let m: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(m["channel"], "local/logs:acme/shop/web", "{m}");
            assert_ne!(m["type"], "error", "{m}");
            if m["type"] == "line" && m["line"]["message"].as_str().unwrap().contains(&probe) {
                seen = true;
                break;
            }
        }
    }
    assert!(seen, "the request's log line never arrived live");

    // Someone outside the team gets an error and no lines.
    let mut ws = subscribe(token_of("otto").await).await;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let m: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(m["type"], "error", "{m}");

    // The stored output is searchable.
    let (status, page) = status_and_json(
        w.vic
            .get(w.component("web", &format!("/logs?q={probe}&limit=5")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let lines = page["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 5, "{page}");
    assert!(lines
        .iter()
        .all(|l| l["message"].as_str().unwrap().contains(&probe)));

    // The developer may build again and roll back.
    let mut events = vec![];
    for action in [
        json!({"action": "rollback", "version": "v1"}),
        json!({"action": "build"}),
    ] {
        let (status, ev) = status_and_json(act(&w.dev, action.clone()).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{action}: {ev}");
        events.push(ev["event_id"].as_str().unwrap().to_string());
    }
    let resp = act(&w.dev, json!({"action": "rollback"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for ev in &events {
        let (status, log) = w.finish(ev, Duration::from_secs(180)).await;
        assert_eq!(status, "succeeded", "{log}");
    }
    let (_, versions) = status_and_json(
        w.vic
            .get(w.component("web", "/versions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(versions[0]["id"], "v2", "{versions}");
    assert_eq!(versions[0]["current"], true, "{versions}");

    // Leave no process behind.
    let (_, ev) = status_and_json(
        act(&w.admin, json!({"action": "stop"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    w.finish(ev["event_id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, replicas) = status_and_json(
            w.vic
                .get(w.component("web", "/replicas"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if !replicas
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["alive"] == true)
        {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {replicas}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The create form's preview of an upload: the archive goes to the
/// component's future datacenter, which says how it would build it; the
/// caller needs what `detect` needs, and the body what an upload may be.
async fn uploads_are_previewed_before_they_exist(b: Backend) {
    let w = World::new(b).await;
    let otto = w.c.login("otto", PASSWORD).await;
    let url = |query: &str| {
        w.c.url(&format!(
            "/api/v1/teams/acme/datacenters/local/detect/archive{query}"
        ))
    };
    let preview = |who: &Client, query: &str, body: Vec<u8>| {
        who.post(url(query))
            .header("content-type", "application/octet-stream")
            .body(body)
    };

    // A developer sees the plan of python-hello, before any component exists.
    let (status, plan) = status_and_json(
        preview(&w.dev, "", pack("python-hello"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["language"], "python", "{plan}");
    assert_eq!(plan["run_command"], "python3 app.py", "{plan}");
    assert_eq!(plan["runnable"], true, "{plan}");

    // The run command of the form overrides what is detected.
    let (status, plan) = status_and_json(
        preview(
            &w.dev,
            "?run_command=python3%20app.py%20--port%20%24PORT",
            pack("python-hello"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["run_command"], "python3 app.py --port $PORT", "{plan}");
    let (status, plan) = status_and_json(
        preview(&w.dev, "", pack("node-hello"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["language"], "node", "{plan}");

    // Who may not detect may not preview either, with the same answers:
    // the viewer is refused, the outsider does not see the team at all.
    let git =
        json!({"source": {"kind": "git", "url": "https://example.com/x.git", "reference": "main"}});
    for (who, expected) in [
        (&w.vic, StatusCode::FORBIDDEN),
        (&otto, StatusCode::NOT_FOUND),
        (&client(), StatusCode::UNAUTHORIZED),
    ] {
        let archive = preview(who, "", pack("python-hello"))
            .send()
            .await
            .unwrap()
            .status();
        let detect = who
            .post(w.c.url("/api/v1/teams/acme/datacenters/local/detect"))
            .json(&git)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(archive, expected);
        assert_eq!(archive, detect);
    }

    // Bad archives are the user's to fix: 422 with the reason.
    let (status, body) = status_and_json(preview(&w.dev, "", vec![]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("empty"),
        "{body}"
    );
    let (status, body) = status_and_json(
        preview(&w.dev, "", b"not an archive".to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a .tar.gz or .zip"),
        "{body}"
    );
    // The datacenter must be one the team may use, as for `detect`.
    let (status, body) = status_and_json(
        w.dev
            .post(w.c.url("/api/v1/teams/acme/datacenters/nowhere/detect/archive"))
            .header("content-type", "application/octet-stream")
            .body(pack("python-hello"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // It takes what an upload takes (2 MiB passes the 1 MiB of other
    // routes), and no more: 413 with a JSON error.
    let (status, body) = status_and_json(
        preview(&w.dev, "", vec![7u8; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) =
        status_and_json(send_oversized(|| preview(&w.dev, "", vec![0u8; 101 * 1024 * 1024])).await)
            .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "too_large", "{body}");

    // A preview creates nothing: no component, no audit record of an upload.
    let (_, app) = status_and_json(
        w.admin
            .get(w.c.url("/api/v1/teams/acme/apps/shop"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(app["components"], json!([]), "{app}");
}

/// Sends a request whose body is over a limit. The console may answer and
/// close while the body is still being sent, which the client then sees as
/// a broken pipe instead of the answer; asking again gets the answer.
async fn send_oversized(make: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    let mut attempts = 0;
    loop {
        attempts += 1;
        // `close`: the console ends the connection after such an answer, so
        // it must not go back to the client's pool for the next request.
        match make()
            .header(reqwest::header::CONNECTION, "close")
            .send()
            .await
        {
            Ok(resp) => return resp,
            Err(e) if attempts < 5 && e.is_request() => continue,
            Err(e) => panic!("{e}"),
        }
    }
}
